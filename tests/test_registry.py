"""Every declared check and signal reaches every output, with one number everywhere.

Parametrised over ``checks.registry``: a check or signal declared there but left out of an
output fails here, so a new check cannot be half-added. Run on the bundled sample, where every
check fires, through the command line; the workbook is read back with openpyxl.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import openpyxl
import pytest
from click.testing import CliRunner

from calo_polars.checks.registry import CHECKS, SIGNALS, Check, Signal, alerts
from calo_polars.cli.main import cli
from calo_polars.report.alerts import ALERTS, GROUPS, webhook_payload
from calo_polars.report.columns import COLUMNS
from calo_polars.report.xlsx.charts import CHECK_COLORS
from tests.logbuilder import Log, full_tx, rid, uid

SAMPLE = Path(__file__).resolve().parents[1] / "examples" / "sample-logs.zip"


class Run:
    """One report of the sample: summary.json, the workbook's cells and links, the terminal table."""

    def __init__(self, out: Path, stderr: str) -> None:
        self.summary: dict[str, Any] = json.loads((out / "summary.json").read_text())
        book = openpyxl.load_workbook(out / "calo_balance_reports.xlsx")  # not read-only: links are read too
        self.cells = {ws.title: [[c.value for c in row] for row in ws.iter_rows()] for ws in book.worksheets}
        self.links = {
            ws.title: {(h.ref, h.display): h.location for h in ws._hyperlinks}  # noqa: SLF001 - openpyxl keeps them here
            for ws in book.worksheets
        }
        self.terminal = [line.rstrip() for line in stderr.splitlines()]

    def rows(self, sheet: str) -> list[dict[str, Any]]:
        header, *body = self.cells[sheet]
        return [dict(zip(header, row, strict=True)) for row in body]

    def overview_row(self, label: str) -> list[Any]:
        found = [row for row in self.cells["Overview"] if row and row[0] == label]
        assert len(found) == 1, f"the Overview has {len(found)} rows labelled {label!r}"
        return found[0]

    def terminal_count(self, label: str) -> str:
        found = [m for line in self.terminal if (m := re.fullmatch(rf"{re.escape(label)} +([\d,]+)(?:  .*)?", line))]
        assert len(found) == 1, f"the terminal table has {len(found)} rows labelled {label!r}"
        return found[0].group(1)


def extra_log(folder: Path) -> Path:
    """What the sample does not hold: a negative amount, and a wallet that changes currency."""
    who = uid(900)
    log = Log().invocation(
        rid(900),
        0,
        full_tx(900, who, 36, 54, -18),  # a DEBIT of -18 that raised the balance
        full_tx(901, who, 54, 50, 4, currency="SAR"),  # the same wallet, now in SAR
    )
    path = folder / "extra.log"
    path.write_text(log.text(), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Run:
    folder = tmp_path_factory.mktemp("registry")
    out = folder / "out"
    args = ["report", str(SAMPLE), str(extra_log(folder)), "-o", str(out)]
    result = CliRunner().invoke(cli, args, env={"TTY_COMPATIBLE": "0"})
    assert result.exit_code == 0, result.output
    return Run(out, result.stderr)


def _n(value: int) -> str:
    return f"{value:,}"


@pytest.mark.parametrize("check", CHECKS, ids=lambda c: c.name)
def test_every_check_reaches_every_output(check: Check, run: Run) -> None:
    s = run.summary
    count, users = s[check.count_key], s[check.users_key]
    assert count > 0, "the sample must make every check fire, or this test proves nothing"
    flags = [r for r in run.rows("RedFlags") if r["check"] == check.name]
    assert len(flags) == count and len({r["user_id"] for r in flags}) == users
    by_cause = {name: cause.severity for name, cause in check.causes.items()}
    assert all(r["severity"] == by_cause.get(r["cause"], check.severity) for r in flags)  # severity follows the cause
    assert all(r["reason"] for r in flags)
    assert len(run.rows(check.sheet)) == count  # its own sheet lists each flag once
    assert sum(r[check.per_user] for r in run.rows("PerUserSummary")) == count
    assert sum(r[check.per_user] for r in run.rows("WeeklySignals")) == count
    row = run.overview_row(check.name)
    assert row[1:5] == [check.severity, _n(count), _n(users), check.definition]
    assert check.name in run.cells["README"][0] or any(r and r[0] == check.name for r in run.cells["README"])
    assert check.per_user in {r["column"] for r in run.rows("ColumnDefinitions")}
    assert check.name in COLUMNS and all(name in COLUMNS for name in check.glossary)  # the docs' glossary
    assert run.terminal_count(check.label) == _n(count)
    assert ALERTS[check.name][0] == check.count_key and check.name in GROUPS["checks"]
    payload = webhook_payload(s, [], [], 0)["calo_balance"]["counts"]
    assert payload[check.count_key] == count
    assert CHECK_COLORS[check.per_user] == check.colour


@pytest.mark.parametrize("signal", SIGNALS, ids=lambda g: g.name)
def test_every_signal_reaches_every_output(signal: Signal, run: Run) -> None:
    s = run.summary
    count = s[signal.count_key]
    assert run.terminal_count(signal.label) == _n(count)
    if signal.group == "lambda":
        row = run.overview_row(signal.label[0].upper() + signal.label[1:])
        assert row[1] == signal.sheet and row[2] == _n(count)
        facts = next(r[1] for r in run.cells["README"] if r and r[0] == "Lambda signals")
        assert f"{_n(count)} {signal.label}" in facts
    if signal.sheet is not None:
        assert signal.sheet in run.cells
    if signal.alert is not None:
        assert ALERTS[signal.name] == (signal.count_key, signal.alert)
        assert webhook_payload(s, [], [], 0)["calo_balance"]["counts"][signal.count_key] == count
    else:
        assert signal.name not in ALERTS


def test_lambda_signal_counts_are_the_rows_of_their_sheets(run: Run) -> None:
    """The one number: the Overview's count of a signal is the number of rows its sheet lists."""
    for signal in (g for g in SIGNALS if g.group == "lambda"):
        rows = run.rows(signal.sheet)
        if signal.name == "skipped":
            listed = sum(r["count"] for r in rows)
        elif signal.name == "lambda_error_incident":
            listed = len({r["incident"] for r in rows})
        else:
            listed = len(rows)
        assert run.summary[signal.count_key] == listed, signal.name


def test_alerts_are_the_registry() -> None:
    assert ALERTS == alerts() and list(ALERTS)[: len(CHECKS)] == [c.name for c in CHECKS]
    assert set(GROUPS["all"]) == set(ALERTS)
