"""Run the command line on files made in a test, and read back what it wrote.

Bad-input tests all ask the same three things: what did stderr say (the one-line warning
naming file and line), what was the exit code (with and without --strict), and was anything
else lost (every transaction of the good files still there).
"""

from __future__ import annotations

import json
import os
import zipfile
from collections.abc import Set as AbstractSet
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import openpyxl
from click.testing import CliRunner
from polars.testing import assert_frame_equal

from calo_polars import AuditResult
from calo_polars.cli.main import cli
from calo_polars.report.summary import summary, summary_bytes
from tests.logbuilder import Log, full_tx, rid, uid

#: Transaction ids of the good files ``good_files`` writes, by file index.
GOOD_BASE = 900


@dataclass
class Run:
    """One CLI run: exit code, stderr, and the outputs (when written)."""

    exit_code: int
    stderr: str
    out: Path

    @property
    def summary(self) -> dict[str, Any]:
        return json.loads((self.out / "summary.json").read_text(encoding="utf-8"))

    @property
    def warnings(self) -> list[str]:
        return [line for line in self.stderr.splitlines() if line.startswith("warning: ")]

    def sheet(self, name: str) -> list[dict[str, Any]]:
        """A data sheet's rows as dicts keyed by its header."""
        wb = openpyxl.load_workbook(self.out / "calo_balance_reports.xlsx", read_only=True)
        try:
            rows = list(wb[name].iter_rows(values_only=True))
        finally:
            wb.close()
        return [dict(zip(rows[0], r, strict=True)) for r in rows[1:]]

    def workbook_xml(self) -> str:
        """Every XML part of the written workbook, as one text."""
        with zipfile.ZipFile(self.out / "calo_balance_reports.xlsx") as zf:
            return "\n".join(zf.read(n).decode("utf-8") for n in zf.namelist())


def report(tmp_path: Path, *inputs: Path | str, args: tuple[str, ...] = (), out: str = "out") -> Run:
    """Run ``calo-balance report INPUTS -o tmp_path/out ARGS``."""
    outdir = tmp_path / out
    result = CliRunner().invoke(cli, ["report", *map(str, inputs), "-o", str(outdir), *args])
    if result.exception and not isinstance(result.exception, SystemExit):
        raise result.exception
    return Run(result.exit_code, result.stderr, outdir)


def good_log(i: int) -> Log:
    """One complete invocation with one transaction, id ``GOOD_BASE + i``."""
    n = GOOD_BASE + i
    return Log().invocation(rid(n), 1000 + i, full_tx(n, uid(n), 50, 42, 8))


def good_files(tmp_path: Path, count: int = 2) -> list[Path]:
    """``count`` good .gz files, each with one transaction."""
    folder = tmp_path / "good"
    folder.mkdir(exist_ok=True)
    paths = []
    for i in range(count):
        path = folder / f"good{i}.gz"
        path.write_bytes(good_log(i).gz())
        paths.append(path)
    return paths


def good_ids(count: int = 2) -> set[str]:
    return {f"01HR{GOOD_BASE + i:022d}" for i in range(count)}


def tx_ids(run: Run) -> set[str]:
    """Transaction ids the run read, from SampleRaw (the first 200: more than a test writes)."""
    return {row["tx_id"] for row in run.sheet("SampleRaw")}


def assert_problem(run: Run, kind: str, file: Path | str, text: str, line: int | None = None) -> None:
    """The problem is on stderr as one line naming the file (and line), and in summary.json."""
    where = f"{file}:{line}: " if line is not None else f"{file}: "
    lines = [w for w in run.warnings if w.startswith(f"warning: {where}") and text in w]
    assert lines, f"no warning '{where}…{text}' in:\n{run.stderr}"
    assert run.summary["input_problem_kinds"].get(kind, 0) >= 1, run.summary["input_problem_kinds"]
    rows = [r for r in run.sheet("InputProblems") if r["problem"] == kind and text in r["message"]]
    assert rows and rows[0]["file"] == str(file) and rows[0]["line"] == line, rows


def assert_nothing_else_lost(run: Run, good: int = 2, extra: AbstractSet[str] = frozenset()) -> None:
    """Every good file's transaction (and the ``extra`` ids) were read, and nothing more."""
    assert tx_ids(run) == good_ids(good) | set(extra)
    assert run.summary["transactions"] == good + len(extra)


def ingest(
    tmp_path: Path, *inputs: Path | str, args: tuple[str, ...] = (), into: str = "store"
) -> tuple[int, str, Path]:
    """Run ``calo-balance ingest INPUTS --into tmp_path/into ARGS``: (exit code, stderr, store)."""
    store = tmp_path / into
    result = CliRunner().invoke(cli, ["ingest", *map(str, inputs), "--into", str(store), *args])
    if result.exception and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result.exit_code, result.stderr, store


def assert_same_result(one: AuditResult, other: AuditResult) -> None:
    """Two audits of the same logs agree on every table any output is written from."""
    for name in ("checked", "flags", "users", "totals", "duplicates"):
        assert_frame_equal(getattr(one, name), getattr(other, name), check_dtypes=True)
    for name in ("notices", "invocations", "unparsed", "sample"):
        assert_frame_equal(getattr(one.ingested, name), getattr(other.ingested, name))
    assert one.ingested.kind_counts == other.ingested.kind_counts and one.ingested.skipped == other.ingested.skipped
    assert one.files.frame().equals(other.files.frame())
    assert one.ingested.problems.ordered() == other.ingested.problems.ordered()
    assert summary_bytes(summary(one)) == summary_bytes(summary(other))


def drain(leader: int) -> bytes:
    """Everything a child wrote to the pseudo-terminal whose leader end is ``leader``, until it
    closed it; the leader is closed after."""
    chunks = []
    while True:
        try:
            chunk = os.read(leader, 1 << 16)
        except OSError:  # the child closed the terminal
            break
        if not chunk:
            break
        chunks.append(chunk)
    os.close(leader)
    return b"".join(chunks)
