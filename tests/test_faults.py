"""Faults: atomic outputs, never writing inside an input, and determinism whatever the order."""

from __future__ import annotations

import os
import random
import shutil
import zipfile
from pathlib import Path
from typing import Any

import openpyxl
import pytest

from calo_polars import AuditOptions, audit
from calo_polars.errors import OutputError
from calo_polars.parse.ingest import ingest, open_inputs
from calo_polars.read.inflate import Limits
from calo_polars.report.outputs import SUMMARY_NAME, WORKBOOK_NAME, write_outputs
from calo_polars.report.summary import summary, summary_bytes
from calo_polars.report.xlsx import workbook
from tests.harness import good_files, good_log, report
from tests.logbuilder import Log, full_tx, legacy_tx, rid, uid
from tests.test_sample import SAMPLE

# ---------------------------------------------------------------- atomic outputs


def test_interrupted_workbook_leaves_the_previous_outputs_whole(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    files = good_files(tmp_path)
    out = tmp_path / "out"
    write_outputs(audit(files), out)
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    calls = 0
    real = workbook.write_frame

    def crash_on_third_sheet(*args: Any, **kwargs: Any) -> None:
        nonlocal calls
        calls += 1
        if calls == 3:
            raise KeyboardInterrupt  # Ctrl-C half-way through the workbook
        real(*args, **kwargs)

    monkeypatch.setattr(workbook, "write_frame", crash_on_third_sheet)
    with pytest.raises(KeyboardInterrupt):
        write_outputs(audit(files[:1]), out)
    assert calls == 3
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before  # no temporary file left either


def test_failed_summary_write_leaves_the_previous_summary_whole(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    files = good_files(tmp_path)
    out = tmp_path / "out"
    write_outputs(audit(files), out)
    old = (out / SUMMARY_NAME).read_bytes()

    def disk_full(fd: int) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", disk_full)
    with pytest.raises(OutputError, match="No space left on device"):
        write_outputs(audit(files[:1]), out)
    assert (out / SUMMARY_NAME).read_bytes() == old
    assert sorted(p.name for p in out.iterdir()) == [WORKBOOK_NAME, "ledger.parquet", SUMMARY_NAME]  # no flag: beside


def test_unwritable_output_is_one_line_and_exit_2(tmp_path: Path) -> None:
    [good] = good_files(tmp_path, 1)
    blocker = tmp_path / "afile"
    blocker.write_text("x")
    run = report(tmp_path, good, out="afile/sub")
    assert (
        run.exit_code == 2 and run.stderr.startswith("calo-balance: cannot write into ") and run.stderr.count("\n") == 1
    )


# ---------------------------------------------------------------- never write inside an input


@pytest.mark.parametrize("where", ["the folder", "a subfolder", "a file in it"])
def test_output_inside_an_input_is_refused_before_any_work(tmp_path: Path, where: str) -> None:
    export = tmp_path / "export"
    export.mkdir()
    (export / "000000.gz").write_bytes(good_log(1).gz())
    before = sorted(p.name for p in export.rglob("*"))
    out = {"the folder": export, "a subfolder": export / "reports", "a file in it": export / "000000.gz"}[where]
    run = report(tmp_path, export, out=str(out.relative_to(tmp_path)))
    assert run.exit_code == 2
    assert run.stderr.count("\n") == 1 and "Traceback" not in run.stderr
    assert ("is inside the input" in run.stderr) or ("is a file" in run.stderr)
    assert sorted(p.name for p in export.rglob("*")) == before


def test_output_that_would_overwrite_an_input_file_is_refused(tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    victim = out / SUMMARY_NAME  # a log someone named summary.json
    victim.write_text(good_log(1).text())
    run = report(tmp_path, victim)
    assert run.exit_code == 2 and "would overwrite the input" in run.stderr
    assert victim.read_text() == good_log(1).text()


def test_output_inside_a_zip_input_is_refused(tmp_path: Path) -> None:
    [good] = good_files(tmp_path, 1)
    run = report(tmp_path, good, out="good/good0.gz/out")
    assert run.exit_code == 2 and "is inside the input" in run.stderr


# ---------------------------------------------------------------- determinism


def rich_inputs(root: Path, *, reverse: bool) -> list[Path]:
    """A zip, a folder, a .gz and a plain log with transactions of shared users, notices,
    unparsed events, a retried transaction, a corrupt file, out-of-order lines and ties in
    time: everything whose order could leak into an output. ``reverse`` writes the zip
    members and folder files in the opposite order."""
    t = 0.0
    logs: dict[str, bytes] = {}
    for f in range(6):
        log = Log()
        for k in range(4):
            n = f * 10 + k
            user = uid(k % 3)
            log.invocation(rid(n), t, full_tx(n, user, 100 - n, 100 - n - 8, 8), legacy_tx(n, uid(7), 50, 42 - f, 8))
            log.app(
                rid(n),
                t + 0.5,
                "ERROR",
                f"Subscription balance and payment balance are not in sync {{ userId: '{user}', subscriptionBalance: "
                f"{n}, paymentBalance: 1 }}",
            )
            log.app(rid(n), t + 0.6, "INFO", f"brand new message {n}")
            t += 1 if k % 2 else 0  # ties in time across files
        logs[f"2024-02-1{f}-[$LATEST]{f:032x}"] = log.gz()
    logs["retry"] = Log().invocation(rid(99), 0.5, full_tx(0, uid(0), 100, 92, 8)).gz()
    root.mkdir(parents=True, exist_ok=True)
    names = sorted(logs)
    order = reversed if reverse else list
    archive = root / "logs.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        for name in order([*names[:3], "broken"]):
            zf.writestr(f"export/{name}/000000.gz", logs.get(name, b"\x1f\x8b\x08\x00broken"))
    folder = root / "folder"
    folder.mkdir()
    for name in order(names[3:6]):
        (folder / f"{name}.gz").write_bytes(logs[name])
    single = root / "single.gz"
    single.write_bytes(logs[names[6]])
    plain = root / "plain.log"
    plain.write_text(Log().invocation(rid(77), 3, full_tx(77, uid(1), 5, -3, 8)).text())
    return [archive, folder, single, plain]


def workbook_cells(path: Path) -> dict[str, list[tuple[Any, ...]]]:
    wb = openpyxl.load_workbook(path, read_only=True)
    try:
        return {ws.title: list(ws.iter_rows(values_only=True)) for ws in wb.worksheets}
    finally:
        wb.close()


def test_same_outputs_whatever_the_argument_member_and_folder_order_and_threads(tmp_path: Path) -> None:
    root = tmp_path / "in"
    inputs = rich_inputs(root, reverse=False)
    first = report(tmp_path, *inputs, args=("--threads", "2"), out="first")
    assert first.exit_code == 0
    data = first.summary
    assert data["duplicate_transactions"] == 1 and data["input_problems"] >= 2 and data["unparsed_events"] > 0
    summary_first = (first.out / SUMMARY_NAME).read_bytes()
    cells_first = workbook_cells(first.out / WORKBOOK_NAME)

    shutil.rmtree(root)
    inputs = rich_inputs(root, reverse=True)  # same paths, same contents, written in the other order
    shuffled = inputs[:]
    random.Random(7).shuffle(shuffled)
    assert shuffled != inputs
    for threads in ("1", "2"):
        again = report(tmp_path, *shuffled, args=("--threads", threads), out=f"again{threads}")
        assert (again.out / SUMMARY_NAME).read_bytes() == summary_first
        cells = workbook_cells(again.out / WORKBOOK_NAME)
        assert cells.keys() == cells_first.keys()
        for sheet, rows in cells_first.items():
            assert cells[sheet] == rows, sheet


def test_same_tables_whatever_the_batch_size(tmp_path: Path) -> None:
    inputs = rich_inputs(tmp_path / "in", reverse=False)
    whole = audit(inputs)
    tiny = audit(inputs, AuditOptions(batch_bytes=1))  # one file a batch
    assert summary_bytes(summary(whole)) == summary_bytes(summary(tiny))
    for name in ("notices", "invocations", "unparsed", "sample"):
        assert getattr(whole.ingested, name).equals(getattr(tiny.ingested, name)), name
    assert whole.transactions.equals(tiny.transactions) and whole.flags.equals(tiny.flags)
    assert whole.users.equals(tiny.users) and whole.duplicates.equals(tiny.duplicates)
    assert whole.ingested.problems.frame().equals(tiny.ingested.problems.frame())


def test_a_small_input_is_split_among_the_threads() -> None:
    """An input smaller than one batch is still parsed as one batch a thread (``input_bytes``),
    and that gives the tables of one batch."""
    stored = SAMPLE.stat().st_size
    for threads, batches in ((1, 1), (2, 2), (3, 3)):
        reading = open_inputs([SAMPLE], threads=threads, batch_bytes=32 << 20, limits=Limits(), input_bytes=stored)
        assert len(list(reading.batches)) == batches, threads
    whole = audit([SAMPLE], input_bytes=0)  # unknown size: one batch
    split = audit([SAMPLE])  # measured: two batches
    assert summary_bytes(summary(whole)) == summary_bytes(summary(split))
    for name in ("notices", "invocations", "unparsed", "sample"):
        assert getattr(whole.ingested, name).equals(getattr(split.ingested, name)), name
    assert whole.transactions.equals(split.transactions) and whole.flags.equals(split.flags)


def test_same_tables_whatever_the_user_ranges(tmp_path: Path) -> None:
    """The checks run per user range (``partition``): any ranges give the same tables, and
    duplicates across batches are set aside the same way."""
    inputs = [SAMPLE]
    whole = audit(inputs)
    assert len(whole.ingested.transaction_parts) == 1 and whole.duplicates.height > 0
    assert len(ingest(inputs, part_rows=97, batch_bytes=20_000).transaction_parts) > 5  # many ranges, many batches
    ranged = audit(inputs, AuditOptions(part_rows=97, batch_bytes=20_000))
    assert summary_bytes(summary(whole)) == summary_bytes(summary(ranged))
    assert whole.checked.equals(ranged.checked) and whole.transactions.equals(ranged.transactions)
    assert whole.flags.equals(ranged.flags) and whole.users.equals(ranged.users) and whole.totals.equals(ranged.totals)
    assert whole.duplicates.equals(ranged.duplicates) and whole.ingested.transactions.equals(
        ranged.ingested.transactions
    )
