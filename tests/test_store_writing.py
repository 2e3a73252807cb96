"""Stage 1's writing path: rows buffered into few row groups, the same rows in the same order."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pyarrow.parquet as pq
import pytest

from calo_polars.partitioned import store
from calo_polars.partitioned.store import ingest_into, open_store
from calo_polars.synth import SynthOptions, synthesize


@pytest.fixture(scope="module")
def archive(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("arch") / "a.zip"
    synthesize(SynthOptions(users=150, days=20, seed=3, workers=1), path)
    return path


def tables(path: Path) -> dict[str, pl.DataFrame]:
    s = open_store(path)
    out = {f"part-{k}": pl.read_parquet(s.part(k)) for k in range(s.partitions)}
    out |= {name: pl.read_parquet(path / f"{name}.parquet") for name in [*store.TABLES, "cross_duplicates", "files"]}
    return out


def test_buffered_row_groups_hold_the_rows_of_one_group_a_batch(
    archive: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(store, "BUFFER_BYTES", 0)  # flush after every batch: a row group a batch, as before
    every = ingest_into([archive], tmp_path / "every", partitions=3, batch_bytes=1 << 18)
    monkeypatch.setattr(store, "BUFFER_BYTES", 1 << 40)  # never before the end: one row group a file
    once = ingest_into([archive], tmp_path / "once", partitions=3, batch_bytes=1 << 18)
    assert every["counts"] == once["counts"] and every["counts"]["transactions"] > 0
    a, b = tables(tmp_path / "every"), tables(tmp_path / "once")
    assert a.keys() == b.keys()
    for name in a:
        assert a[name].equals(b[name]), name  # every row, in order
    groups = pq.ParquetFile(tmp_path / "every" / "transactions" / "part-0000.parquet").metadata.num_row_groups
    assert groups > 3 and pq.ParquetFile(store.part_path(tmp_path / "once", 0)).metadata.num_row_groups == 1


def test_notes_become_the_same_problems_with_an_index_of_the_files_they_name() -> None:
    from calo_polars.parse.events import FileIndex
    from calo_polars.parse.ingest import add_notes
    from calo_polars.problems import NOTE_SCHEMA, PROBLEM_KINDS, Problems

    kinds = sorted(PROBLEM_KINDS)[:5]
    files = FileIndex([f"f{i}" for i in range(100)], list(range(100)), list(range(100)))
    notes = pl.DataFrame(
        {"file_id": [7, 3, 7, 99, 0], "line_no": [1, 2, 3, 4, 5], "kind": kinds, "message": list("vwxyz")},
        schema=NOTE_SCHEMA,
    )
    whole, named = Problems(), Problems()
    joined = notes.join(files.frame().select("file_id", "file"), on="file_id", how="left")  # every file, as before
    for file, line, kind, message in joined.select("file", "line_no", "kind", "message").iter_rows():
        whole.add(file, kind, message, line)
    add_notes(named, notes, files)
    assert named.items == whole.items and [p.file for p in named.items] == ["f7", "f3", "f7", "f99", "f0"]
    empty = Problems()
    add_notes(empty, pl.DataFrame(schema=NOTE_SCHEMA), files)
    assert empty.items == []


@pytest.mark.parametrize("ranges", [1, 2, 16, 64])
def test_hashes_crossing_partitions_are_found_a_range_at_a_time_as_all_at_once(ranges: int) -> None:
    import random

    rnd = random.Random(ranges)
    schema = {"tx_id": pl.UInt64, "partition": pl.UInt16}
    frames = [
        pl.DataFrame(
            {"tx_id": [rnd.getrandbits(64) for _ in range(500)], "partition": [rnd.randrange(5) for _ in range(500)]},
            schema=schema,
        )
        for _ in range(20)
    ]
    edges = pl.DataFrame(
        {"tx_id": [0, 0, (1 << 64) - 1, (1 << 64) - 1, 1 << 63], "partition": [1, 2, 0, 4, 3]}, schema=schema
    )
    frames += [
        frames[3].head(25).with_columns(partition=(pl.col("partition") + 1) % 5),  # the same id in another partition
        frames[7].head(25),  # repeated within its partition: not crossing
        edges,
    ]
    pairs = pl.concat(frames).sort("tx_id", "partition")
    neighbours = (pl.col("tx_id") == pl.col("tx_id").shift(1)) & (pl.col("partition") != pl.col("partition").shift(1))
    expected = pairs.filter(neighbours)["tx_id"].unique().sort()
    assert expected.len() == 27
    assert store.crossing_hashes(frames, ranges).sort().equals(expected)
    assert store.crossing_hashes([], ranges).is_empty()
