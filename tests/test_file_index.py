"""The compact file index answers as the list-based one did, at a fraction of its memory; stage 1
puts nothing in Polars' global category map."""

from __future__ import annotations

import hashlib
import tracemalloc
from collections import Counter
from pathlib import Path

import polars as pl
import pytest

from calo_polars.parse.events import FileIndex, member_batches
from calo_polars.parse.ingest import add_notes
from calo_polars.partitioned.store import StoredFiles, _write_files, ingest_into, open_store
from calo_polars.problems import NOTE_SCHEMA, Problems
from calo_polars.read import files as files_module
from calo_polars.read.sources import Member, iter_members
from calo_polars.synth import SynthOptions, synthesize


def export_paths(n: int) -> list[str]:
    """Display paths shaped like a year's export (with a few non-ASCII and odd ones)."""
    out = []
    for i in range(n):
        digest = hashlib.sha1(str(i).encode()).hexdigest()[:32]
        day = f"2024-{1 + i % 12:02d}-01"
        out.append(f"/data/prod.zip!balance-sync-logs/13cf2335/{day}-[$LATEST]{digest}/00000{i % 3}.gz")
    out[5] = "f\u00e9\u00efl\u2603.log"
    out[7] = ""
    out[11] = "\\x00odd\\n"
    return out


def digest(i: int) -> bytes:
    return hashlib.blake2b(str(i).encode(), digest_size=16).digest()


def members(paths: list[str]) -> list[Member]:
    return [Member(p, b"x", 10 + i, 100 + i, digest(i)) for i, p in enumerate(paths)]


def reference_frame(paths: list[str]) -> pl.DataFrame:
    """What the list-based FileIndex's ``frame()`` gave."""
    return pl.DataFrame(
        {
            "file_id": pl.Series(range(len(paths)), dtype=pl.UInt32),
            "file": paths,
            "stored_bytes": pl.Series([10 + i for i in range(len(paths))], dtype=pl.Int64),
            "raw_bytes": pl.Series([100 + i for i in range(len(paths))], dtype=pl.Int64),
        }
    )


@pytest.mark.parametrize("n", [0, 1, files_module.BLOCK, 3 * files_module.BLOCK + 17])
def test_the_compact_index_answers_as_the_lists_did(n: int) -> None:
    paths = export_paths(max(n, 12))[:n]
    index = FileIndex()
    assert [index.add(m) for m in members(paths)] == list(range(n))
    assert len(index) == n and list(index.paths) == paths and index.paths[:] == paths
    assert [index.path(i) for i in range(n)] == paths
    assert index.paths[3 : n - 2] == paths[3 : n - 2] and index.paths[::7] == paths[::7]
    if n:
        assert index.paths[-1] == paths[-1]
        with pytest.raises(IndexError):
            index.path(n)
    assert list(index.stored_bytes) == [10 + i for i in range(n)]
    assert list(index.raw_bytes) == [100 + i for i in range(n)]
    assert index.stored_total == sum(index.stored_bytes) and index.raw_total == sum(index.raw_bytes)
    assert index.digests == [digest(i) for i in range(n)]
    assert index.frame().equals(reference_frame(paths))
    assert index.frame(n // 3, n // 2).equals(reference_frame(paths).slice(n // 3, n // 2 - n // 3))
    ids = sorted({0, n // 2, n - 1} & set(range(n)))
    assert index.named(ids).equals(reference_frame(paths).select("file_id", "file")[ids])
    assert index.frame_of(pl.Series([*ids[-1:], None, *ids], dtype=pl.Int64)).equals(index.named(ids))
    # Built from lists, as a store's index was: the same answers.
    built = FileIndex(paths, [10 + i for i in range(n)], [100 + i for i in range(n)])
    assert built.frame().equals(index.frame())


def test_a_digest_is_found_again_as_its_first_file() -> None:
    index = FileIndex()
    n = 5000  # past several growths of the table
    for i in range(n):
        index.add(Member(f"f{i}", b"", 1, 1, digest(i % 3000)))  # 2,000 repeats
    assert [index.find(digest(i)) for i in range(3000)] == list(range(3000))
    assert index.find(digest(10_000)) is None and index.find(b"") is None
    assert FileIndex(["a"], [1], [1]).find(bytes(16)) is None  # no digest known: never "read before"


def test_a_stores_index_answers_as_the_index_it_was_written_from(tmp_path: Path) -> None:
    paths = export_paths(2500)
    index = FileIndex()
    for m in members(paths):
        index.add(m)
    _write_files(tmp_path / "files.parquet", index, rows=1000)
    stored = StoredFiles(tmp_path / "files.parquet")
    assert len(stored) == len(index) and list(stored.paths) == paths and stored.paths[10:20] == paths[10:20]
    assert stored.frame().equals(index.frame()) and stored.frame(5, 9).equals(index.frame(5, 9))
    assert stored.named([7, 3]).equals(index.named([7, 3])) and stored.path(42) == paths[42]
    assert stored.frame_of(pl.Series([9, 2, 9])).select("file_id", "file").equals(index.named([2, 9]))
    assert (stored.stored_total, stored.raw_total) == (index.stored_total, index.raw_total)
    assert list(stored.raw_bytes) == list(index.raw_bytes) and stored.digest(0) == bytes(16)
    with pytest.raises(TypeError):
        stored.add(members(["x"])[0])


def test_the_index_holds_a_file_in_under_a_hundred_bytes() -> None:
    """The list-based index and the digest dict held ~420 bytes a file (a year: 0.9 GB)."""
    paths = export_paths(20_000)
    batch = members(paths)
    tracemalloc.start()
    try:
        before = tracemalloc.take_snapshot()
        index = FileIndex()
        for m in batch:
            index.add(m)
        grown = sum(s.size_diff for s in tracemalloc.take_snapshot().compare_to(before, "filename"))
    finally:
        tracemalloc.stop()
    assert grown / len(paths) < 100, grown / len(paths)
    assert index.nbytes() / len(paths) < 100


def test_notes_name_their_files_without_a_frame_of_every_file() -> None:
    paths = export_paths(3000)
    index = FileIndex()
    for m in members(paths):
        index.add(m)
    notes = pl.DataFrame(
        {"file_id": [2999, 3, 2999, 0], "line_no": [1, 2, 3, 4], "kind": ["long_line"] * 4, "message": list("wxyz")},
        schema=NOTE_SCHEMA,
    )
    problems = Problems()
    add_notes(problems, notes, index)
    assert [(p.file, p.line, p.message) for p in problems.items] == [
        (paths[2999], 1, "w"),
        (paths[3], 2, "x"),
        (paths[2999], 3, "y"),
        (paths[0], 4, "z"),
    ]


@pytest.fixture(scope="module")
def archive(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("arch") / "a.zip"
    synthesize(SynthOptions(users=120, days=15, seed=4, workers=1), path)
    return path


def test_members_registered_by_iter_members_keep_their_ids_in_batches(archive: Path) -> None:
    alone = FileIndex()
    batches = list(member_batches(iter_members([archive], Problems(), Counter()), alone, batch_bytes=1 << 16))
    shared = FileIndex()
    registered = iter_members([archive], Problems(), Counter(), files=shared)
    assert list(member_batches(registered, shared, batch_bytes=1 << 16)) == batches
    assert shared.frame().equals(alone.frame()) and shared.digests == alone.digests and len(shared) > 100


def test_a_content_read_twice_is_read_once(tmp_path: Path) -> None:
    log = b"2024-01-01T00:00:00.000Z START RequestId: 1 Version: $LATEST\n"
    for name in ["a.log", "b.log", "c.log"]:
        (tmp_path / name).write_bytes(log if name != "b.log" else log + log)
    (tmp_path / "d.log").write_bytes(log)
    problems, index = Problems(), FileIndex()
    read = [m.path for m in iter_members([tmp_path], problems, Counter(), files=index)]
    assert [Path(p).name for p in read] == ["a.log", "b.log"] and len(index) == 2
    assert [(Path(p.file).name, p.kind, p.message) for p in problems.items] == [
        ("c.log", "duplicate_file", f"same content as {read[0]}: read once"),
        ("d.log", "duplicate_file", f"same content as {read[0]}: read once"),
    ]


def test_stage_1_puts_nothing_in_the_global_category_map(archive: Path, tmp_path: Path) -> None:
    """A Categorical alive all along (as one always was among the batches in flight) keeps
    every value ever cast in the global map: the store's batches stay text."""
    alive = pl.Series(["keep"]).cast(pl.Categorical)
    before = pl.Categorical().categories.to_series().len()
    manifest = ingest_into([archive], tmp_path / "store", partitions=3)
    assert manifest["counts"]["transactions"] > 1000
    assert pl.Categorical().categories.to_series().len() == before
    assert open_store(tmp_path / "store").partitions == 3 and alive.len() == 1
