"""The two-stage run (``ingest --into`` then ``report --from``) equals the one-shot ``report``.

For several partition counts, in this process and in a process pool: the same flags,
users, totals, duplicates, notices, invocations, problems and summary.json, and the same
workbook read back — on a generated archive with injected faults (duplicates included),
on a handmade log repeating ids across partitions, and on the real archive.
"""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl
import pytest

from calo_polars import AuditOptions, AuditResult, audit
from calo_polars.partitioned.engines import Engine
from calo_polars.partitioned.merge import audit_store
from calo_polars.partitioned.store import FORMAT_VERSION, ingest_into, open_store, partition_column, partition_of
from calo_polars.synth import Rates, SynthOptions, synthesize
from tests.harness import assert_same_result, ingest, report
from tests.logbuilder import Log, full_tx, legacy_tx, rid, uid, write_zip
from tests.test_faults import workbook_cells


@pytest.fixture(scope="module")
def faulty(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A generated export with every kind of fault, duplicates (SQS retries) included."""
    rates = Rates(overdraft=0.01, mismatch=0.01, flow_break=0.01, delta_anomaly=0.01, duplicate=0.02)
    options = SynthOptions(users=120, days=30, seed=5, workers=1, rates=rates, error_rate=0.01, crash_rate=0.2)
    return synthesize(options, tmp_path_factory.mktemp("faulty") / "logs.zip").path


@pytest.fixture(scope="module")
def faulty_one_shot(faulty: Path) -> AuditResult:
    # Small user ranges, so the one-shot run also merges several parts.
    return audit([faulty], AuditOptions(part_rows=700))


@pytest.mark.parametrize(("partitions", "workers"), [(1, 1), (3, 1), (16, 1), (3, 2)])
def test_partitioned_run_equals_one_shot(
    faulty: Path, faulty_one_shot: AuditResult, tmp_path: Path, partitions: int, workers: int
) -> None:
    manifest = ingest_into([faulty], tmp_path / "store", partitions=partitions)
    assert faulty_one_shot.duplicates.height > 0 and faulty_one_shot.flags.height > 0  # the faults are there to compare
    assert (
        sum(manifest["counts"]["partition_rows"]) == faulty_one_shot.checked.height + faulty_one_shot.duplicates.height
    )
    assert (sum(1 for n in manifest["counts"]["partition_rows"] if n) > 1) == (partitions > 1)
    assert_same_result(faulty_one_shot, audit_store(tmp_path / "store", engine=Engine(workers=workers)))


def test_cli_two_stage_writes_the_same_files(faulty: Path, tmp_path: Path) -> None:
    """summary.json byte for byte, the workbook sheet by sheet, the Parquet tables row by row."""
    one = report(tmp_path, faulty, args=("--format", "xlsx,parquet"), out="one")
    code, stderr, store = ingest(tmp_path, faulty, args=("--partitions", "5"))
    assert code == 0 and "into" in stderr and "5 partitions" in stderr
    two = report(tmp_path, args=("--from", str(store), "--workers", "2", "--format", "xlsx,parquet"), out="two")
    assert (one.exit_code, two.exit_code) == (0, 0)
    assert (one.out / "summary.json").read_bytes() == (two.out / "summary.json").read_bytes()
    sheets = workbook_cells(one.out / "calo_balance_reports.xlsx")
    assert len(sheets) > 20 and sheets == workbook_cells(two.out / "calo_balance_reports.xlsx")
    tables = sorted(p.name for p in one.out.glob("**/*.parquet"))
    assert tables and tables == sorted(p.name for p in two.out.glob("**/*.parquet"))
    for name in tables:
        assert pl.read_parquet(next(one.out.glob(f"**/{name}"))).equals(
            pl.read_parquet(next(two.out.glob(f"**/{name}")))
        ), name


def test_options_and_selection_apply_to_a_store(faulty: Path, tmp_path: Path) -> None:
    """Check knobs and --user/--since act on report --from as on report; --fail-on too."""
    args = ("--sigma", "2", "--window", "10", "--since", "2024-01-10", "--format", "json", "--fail-on", "overdraft")
    one = report(tmp_path, faulty, args=args, out="one")
    ingest(tmp_path, faulty, args=("--partitions", "3"))
    two = report(tmp_path, args=("--from", str(tmp_path / "store"), *args), out="two")
    assert one.exit_code == two.exit_code == 3
    assert one.summary == two.summary and one.summary["selection"] == {"since": "2024-01-10T00:00:00.000Z"}


def cross_partition_log(tmp_path: Path) -> Path:
    """Ids logged again under a user of another partition (of 4): a corrupt log.

    uid(0) is in partition 1 and uid(4) in partition 0 (pinned below). Id 1: under both
    users, fields differ. Id 2: twice under uid(0), once under uid(4), the earliest copy
    under uid(4). Id 3: a plain retry under one user (resolved inside its partition)."""
    a, b = uid(0), uid(4)
    first = Log().invocation(rid(1), 10, full_tx(1, a, 100, 92, 8), full_tx(2, a, 92, 80, 12), full_tx(3, a, 80, 75, 5))
    second = Log().invocation(
        rid(2), 5, full_tx(1, b, 50, 42, 8), full_tx(2, b, 42, 30, 12), legacy_tx(9, b, 30, 25, 5)
    )
    retry = Log().invocation(rid(3), 20, full_tx(2, a, 92, 80, 12), full_tx(3, a, 80, 75, 5))
    return write_zip(tmp_path / "corrupt.zip", {"first": first.gz(), "second": second.gz(), "retry": retry.gz()})


def test_ids_repeated_across_partitions_are_set_aside_as_one_shot(tmp_path: Path) -> None:
    assert (partition_of(uid(0), 4), partition_of(uid(4), 4)) == (1, 0)
    logs = cross_partition_log(tmp_path)
    one = audit([logs])
    manifest = ingest_into([logs], tmp_path / "store", partitions=4)
    two = audit_store(tmp_path / "store")
    assert_same_result(one, two)
    cross = open_store(tmp_path / "store").table("cross_duplicates")
    assert manifest["counts"]["cross_partition_copies"] == cross.height == 3  # id 1 once, id 2 twice
    assert sorted(two.duplicates["tx_id"].to_list()) == [f"01HR{n:022d}" for n in (1, 2, 2, 3)]
    kept = two.checked.filter(pl.col("tx_id") == f"01HR{2:022d}")
    assert kept["user_id"].cast(pl.String).to_list() == [uid(4)]  # the earliest copy, whatever its partition
    assert (
        two.ingested.problems.counts()["conflicting_duplicate"]
        == one.ingested.problems.counts()["conflicting_duplicate"]
        >= 2
    )


def test_partition_of_a_user_is_pinned() -> None:
    """The layout is behaviour: a store written today is read the same way by later versions."""
    assert partition_of("a", 16) == 3  # zlib.crc32(b"a") = 0xE8B7BE43
    assert partition_of("8d0c9d5e-1111-4222-8333-444455556666", 16) == 14
    assert partition_of(None, 16) == 0
    users = pl.Series(["a", None, "8d0c9d5e-1111-4222-8333-444455556666", "a"], dtype=pl.Categorical)
    assert partition_column(users, 16).to_list() == [3, 0, 14, 3]


def test_report_from_is_checked_and_fails_in_one_line(tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    run = report(tmp_path, args=("--from", str(empty)))
    assert run.exit_code == 2 and run.stderr.strip() == (
        f"calo-balance: {empty} is not a store (no manifest.json): write one with calo-balance ingest INPUT... "
        f"--into {empty}"
    )
    (empty / "manifest.json").write_text(
        json.dumps({"format": "calo-polars store", "format_version": FORMAT_VERSION + 1})
    )
    run = report(tmp_path, args=("--from", str(empty)))
    assert run.exit_code == 2 and "format version" in run.stderr and "Traceback" not in run.stderr
    assert len(run.stderr.strip().splitlines()) == 1
    logs = cross_partition_log(tmp_path)
    both = report(tmp_path, logs, args=("--from", str(empty)))
    assert both.exit_code == 2 and "not both" in both.stderr
    workers_alone = report(tmp_path, logs, args=("--workers", "2", "--format", "json"), out="alone")
    one_shot = report(tmp_path, logs, args=("--format", "json"), out="one")
    assert workers_alone.exit_code == one_shot.exit_code == 0  # --workers alone: through a temporary store
    assert (workers_alone.out / "summary.json").read_bytes() == (one_shot.out / "summary.json").read_bytes()
    with_state = report(tmp_path, logs, args=("--workers", "2", "--state", str(tmp_path / "w.zip")))
    assert with_state.exit_code == 2 and "--state" in with_state.stderr
    code, _, store = ingest(tmp_path, logs)
    assert code == 0
    for args, text in [
        (("--max-ratio", "5"), "calo-balance ingest"),
        (("--show-pii",), "masked"),
        (("--state", str(tmp_path / "s.zip")), "--state"),
    ]:
        run = report(tmp_path, args=("--from", str(store), *args))
        assert run.exit_code == 2 and text in run.stderr, args


def test_a_failed_ingest_leaves_no_store(tmp_path: Path) -> None:
    code, stderr, store = ingest(tmp_path, tmp_path / "missing.zip")
    assert code == 2 and stderr.startswith("calo-balance: ") and not store.exists()
    assert list(tmp_path.iterdir()) == []  # no temporary folder left behind
    taken = tmp_path / "taken"
    taken.mkdir()
    (taken / "notes.txt").write_text("mine")
    code, stderr, _ = ingest(tmp_path, cross_partition_log(tmp_path), into="taken")
    assert code == 2 and "not a store" in stderr and (taken / "notes.txt").read_text() == "mine"


def test_ingest_again_replaces_the_store(tmp_path: Path) -> None:
    logs = cross_partition_log(tmp_path)
    ingest_into([logs], tmp_path / "store", partitions=2)
    ingest_into([logs], tmp_path / "store", partitions=3)
    assert open_store(tmp_path / "store").partitions == 3
    assert sorted(p.name for p in (tmp_path / "store" / "transactions").iterdir()) == [
        f"part-000{k}.parquet" for k in range(3)
    ]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["corrupt.zip", "store"]


@pytest.mark.real
def test_real_archive_partitioned_equals_one_shot(real_archive: Path, real_result: AuditResult, tmp_path: Path) -> None:
    manifest = ingest_into([real_archive], tmp_path / "store", partitions=3)
    assert manifest["counts"]["transactions"] == 16_300 and manifest["counts"]["files"] == 1_672
    assert_same_result(real_result, audit_store(tmp_path / "store", engine=Engine(workers=2)))


def test_a_damaged_store_is_one_line_in_every_engine(tmp_path: Path) -> None:
    ingest_into([cross_partition_log(tmp_path)], tmp_path / "store", partitions=2)
    (tmp_path / "store" / "transactions" / "part-0001.parquet").write_bytes(b"not parquet")
    for workers in ("1", "2"):
        run = report(tmp_path, args=("--from", str(tmp_path / "store"), "--workers", workers))
        assert (
            run.exit_code == 2
            and "part-0001.parquet cannot be read" in run.stderr
            and "ingest the logs again" in run.stderr
        )
        assert len(run.stderr.strip().splitlines()) == 1, run.stderr
