"""Stage 2 streamed: the outputs of a store run, read back part by part from disk, equal the one-shot run's.

``report --from`` keeps the checked transactions on disk by user range (``CheckedParts``) and
writes the transaction-level outputs part by part. Here the ranges are made small so every
run has many parts, on several partition counts: every output file is read back by another
reader (Parquet by DuckDB, CSV as bytes, the workbook's cells by openpyxl, summary.json as
bytes) and must equal the one-shot run's, every row in order. A one-shot run above
``CALO_STORE_ABOVE`` goes through a temporary store by itself, gives the same files and leaves
nothing behind.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import duckdb
import polars as pl
import pytest

from calo_polars import AuditOptions, AuditResult, audit
from calo_polars.audit.parts import CheckedParts, range_bounds, range_of
from calo_polars.partitioned import oneshot
from calo_polars.partitioned.engines import Engine
from calo_polars.partitioned.merge import SPILL_PREFIX, audit_store
from calo_polars.partitioned.store import ingest_into
from calo_polars.read.sizes import stored_bytes
from calo_polars.report.outputs import write_outputs
from calo_polars.synth import Rates, SynthOptions, synthesize
from tests.harness import report
from tests.test_faults import workbook_cells

FORMATS = ["xlsx", "parquet", "csv"]
EXPORTED = ["transactions", "flags", "users", "currency_totals", "notices", "invocations", "duplicates"]


@pytest.fixture(scope="module")
def faulty(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A generated export with every kind of fault, duplicates included, and many users."""
    rates = Rates(overdraft=0.01, mismatch=0.01, flow_break=0.01, delta_anomaly=0.01, duplicate=0.02)
    options = SynthOptions(users=150, days=20, seed=9, workers=1, rates=rates, error_rate=0.01, crash_rate=0.2)
    return synthesize(options, tmp_path_factory.mktemp("faulty") / "logs.zip").path


def _outputs(result: AuditResult, out: Path) -> Path:
    write_outputs(result, out, FORMATS)
    return out


@pytest.fixture(scope="module")
def one_shot_out(faulty: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The in-memory run's files (the reference)."""
    return _outputs(audit([faulty]), tmp_path_factory.mktemp("one") / "out")


def parquet_rows(path: Path) -> list[tuple[Any, ...]]:
    """Every row of a Parquet file in its stored order, read by DuckDB (not Polars nor pyarrow)."""
    with duckdb.connect() as con:
        return con.execute("SELECT * FROM read_parquet(?)", [str(path)]).fetchall()


def parquet_columns(path: Path) -> list[tuple[str, str]]:
    with duckdb.connect() as con:
        return [(r[0], r[1]) for r in con.execute("DESCRIBE SELECT * FROM read_parquet(?)", [str(path)]).fetchall()]


def assert_same_files(one: Path, two: Path) -> None:
    """summary.json and every CSV byte for byte, every Parquet row and column type, every workbook cell."""
    assert (one / "summary.json").read_bytes() == (two / "summary.json").read_bytes()
    for name in EXPORTED:
        assert (one / f"{name}.csv").read_bytes() == (two / f"{name}.csv").read_bytes(), name
        assert parquet_columns(one / f"{name}.parquet") == parquet_columns(two / f"{name}.parquet"), name
        assert parquet_rows(one / f"{name}.parquet") == parquet_rows(two / f"{name}.parquet"), name
    cells_one, cells_two = (workbook_cells(d / "calo_balance_reports.xlsx") for d in (one, two))
    assert list(cells_one) == list(cells_two)
    for sheet in cells_one:
        assert cells_one[sheet] == cells_two[sheet], sheet


@pytest.mark.parametrize("partitions", [1, 2, 7, 32])
def test_streamed_outputs_equal_the_in_memory_ones(
    faulty: Path, one_shot_out: Path, tmp_path: Path, partitions: int
) -> None:
    ingest_into([faulty], tmp_path / "store", partitions=partitions)
    result = audit_store(tmp_path / "store", part_rows=400)
    parts = result.parts
    assert parts.on_disk and len(parts) > 5  # many user ranges, each read back from every partition's file
    largest_user = int(result.users.group_by("user_id").agg(pl.col("transactions").sum())["transactions"].max())  # type: ignore[arg-type]  # a count
    heights = [p.height for p in parts]
    assert sum(heights) == parts.height and max(heights) <= 400 + largest_user  # held at once: one range
    assert_same_files(one_shot_out, _outputs(result, tmp_path / "out"))
    spill = parts.folder
    assert spill is not None and spill.is_dir() and spill.name.startswith(SPILL_PREFIX)
    result.close()
    assert not spill.exists() and not list((tmp_path / "store").glob(f"{SPILL_PREFIX}*"))


def test_streamed_parts_are_the_whole_table_in_order(faulty: Path, tmp_path: Path) -> None:
    """The parts one after another are the one-shot table (each user's rows in one part), with a process pool too."""
    one = audit([faulty])
    ingest_into([faulty], tmp_path / "store", partitions=3)
    two = audit_store(tmp_path / "store", engine=Engine(workers=2), part_rows=250)
    users_seen: set[str] = set()
    frames = []
    for part in two.parts:
        users = set(part["user_id"].cast(pl.String).unique().to_list())
        assert not users & users_seen  # a user is never split between parts
        users_seen |= users
        frames.append(part)
    assert len(frames) > 5
    assert pl.concat(frames).equals(one.checked)
    two.close()


def test_range_bounds_cut_by_rows_and_never_split_a_user() -> None:
    counts = pl.DataFrame({"user_id": ["c", "a", "b", "a", "d", None], "len": [5, 3, 4, 2, 1, 9]})
    # a: 5, b: 4, c: 5, d: 1 rows in user order, starting at rows 0, 5, 9, 14: ranges of 6 rows start at c and d
    bounds = range_bounds(counts, 6)
    assert bounds.to_list() == ["c", "d"]
    users = pl.Series("user_id", ["a", "b", "c", "d", None, "bb"], pl.Categorical)
    assert range_of(users, bounds).to_list() == [0, 0, 1, 2, 0, 0]
    assert range_of(users, range_bounds(counts, 1000)).to_list() == [0] * 6


def test_parts_in_memory_filter_and_map_keep_the_order() -> None:
    a = pl.DataFrame({"user_id": ["a", "a"], "ts": [1, 2]})
    b = pl.DataFrame({"user_id": ["b"], "ts": [3]})
    parts = CheckedParts.of([a, a.clear(), b])
    assert len(parts) == 2 and parts.height == 3 and not parts.on_disk
    assert parts.filter(pl.col("ts") > 1)["ts"].to_list() == [2, 3]
    assert parts.filter(pl.col("ts") > 0, "ts", user="user_id").columns == ["ts", "user"]
    assert CheckedParts.of([], dict(a.schema)).collect().schema == a.schema


def test_real_archive_streamed_equals_in_memory(real_archive: Path, tmp_path: Path) -> None:
    one = _outputs(audit([real_archive]), tmp_path / "one")
    ingest_into([real_archive], tmp_path / "store", partitions=7)
    result = audit_store(tmp_path / "store", part_rows=300)
    assert len(result.parts) > 3
    assert_same_files(one, _outputs(result, tmp_path / "two"))
    result.close()


def test_real_archive_parts_in_memory_equal_one_table(real_archive: Path) -> None:
    """A one-shot run's parts (user ranges in memory) give the same files as one part."""
    many = audit([real_archive], AuditOptions(part_rows=300))
    assert len(many.parts) > 3 and not many.parts.on_disk
    assert many.checked.equals(audit([real_archive]).checked)


# ---------------------------------------------------------------- one-shot runs through a temporary store


def test_above_the_threshold_a_one_shot_run_goes_through_a_temporary_store(
    faulty: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(oneshot.STORE_ABOVE_ENV, "off")
    held = report(tmp_path, faulty, args=("--format", ",".join(FORMATS)), out="held")
    monkeypatch.setenv(oneshot.STORE_ABOVE_ENV, "1K")  # the archive is bigger: through a store
    stored = report(tmp_path, faulty, args=("--format", ",".join(FORMATS), "-v"), out="stored")
    assert held.exit_code == stored.exit_code == 0
    assert "read through a temporary store" in stored.stderr and "read through" not in held.stderr
    assert_same_files(held.out, stored.out)
    assert not [p.name for p in stored.out.iterdir() if p.name.startswith(".")]  # the store and its scratch removed


def test_the_threshold_is_a_size_and_a_bad_one_is_one_line(
    faulty: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    size = stored_bytes([faulty])
    assert size == faulty.stat().st_size
    monkeypatch.setenv(oneshot.STORE_ABOVE_ENV, str(size))
    assert not oneshot.needs_store(size) and oneshot.needs_store(size + 1)
    monkeypatch.delenv(oneshot.STORE_ABOVE_ENV)
    assert oneshot.store_above() == oneshot.DEFAULT_STORE_ABOVE and not oneshot.needs_store(size)
    assert oneshot.partitions_for(1) == 2 and oneshot.partitions_for(10 << 30) == 160
    monkeypatch.setenv(oneshot.STORE_ABOVE_ENV, "lots")
    run = report(tmp_path, faulty, args=("--format", "json"))
    assert run.exit_code == 2 and "CALO_STORE_ABOVE" in run.stderr and len(run.stderr.strip().splitlines()) == 1


def test_the_temporary_store_is_removed_after_a_failure_and_after_ctrl_c(
    faulty: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(oneshot.STORE_ABOVE_ENV, "0")
    broken = tmp_path / "broken.gz"
    broken.write_bytes(b"\x1f\x8b not a gzip stream")  # no file can be read: stage 1 fails
    run = report(tmp_path, broken, args=("--format", "json"), out="failed")
    assert run.exit_code == 2 and "nothing to" in run.stderr
    assert not [p for p in (tmp_path / "failed").iterdir() if p.name.startswith(".")]

    def interrupted(*args: Any, **kwargs: Any) -> Any:
        raise KeyboardInterrupt

    monkeypatch.setattr("calo_polars.cli.main.audit_store", interrupted)  # Ctrl-C between the two stages
    run = report(tmp_path, faulty, args=("--format", "json"), out="stopped")
    assert run.exit_code != 0  # (the real command exits 130; click's test runner says "Aborted!")
    assert not [p for p in (tmp_path / "stopped").iterdir() if p.name.startswith(".")]
    assert os.environ[oneshot.STORE_ABOVE_ENV] == "0"
