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
