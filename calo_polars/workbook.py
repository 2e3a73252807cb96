"""The Excel workbook: a README first, then one formatted sheet per finding.

Formats are declared once (``STYLES``) and created once per workbook. Every data sheet has
a styled, frozen header, an autofilter, widths that fit, money shown with the currency's
decimals (negatives red), real Excel datetimes (UTC) and conditional highlighting of flagged
cells. Log text is always written as text: the workbook never turns a string into a formula
or a link.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import polars as pl
import xlsxwriter
from xlsxwriter.format import Format
from xlsxwriter.worksheet import Worksheet

from . import __version__
from .audit import AuditResult
from .checks import CHECKS
from .columns import COLUMNS, describe
from .events import EVENT_KINDS
from .money import minor_unit

EXCEL_MAX_ROWS = 1_048_576
EXCEL_MAX_CHARS = 32_767

STYLES: dict[str, dict[str, Any]] = {
    "title": {"bold": True, "font_size": 16, "font_color": "#1F3864"},
    "subtitle": {"bold": True, "font_size": 12, "font_color": "#1F3864"},
    "header": {"bold": True, "font_color": "#FFFFFF", "bg_color": "#1F3864", "border": 1, "text_wrap": True, "valign": "top"},
    "text": {},
    "wrap": {"text_wrap": True, "valign": "top"},
    "datetime": {"num_format": "yyyy-mm-dd hh:mm:ss.000"},
    "count": {"num_format": "#,##0"},
    "float": {"num_format": "#,##0.000"},
    "money0": {"num_format": "#,##0;[Red]-#,##0"},
    "money2": {"num_format": "#,##0.00;[Red]-#,##0.00"},
    "money3": {"num_format": "#,##0.000;[Red]-#,##0.000"},
    "flag_red": {"bg_color": "#FFC7CE", "font_color": "#9C0006"},
    "flag_amber": {"bg_color": "#FFEB9C", "font_color": "#9C5700"},
    "flag_yellow": {"bg_color": "#FFF2CC"},
}


class Styles:
    """The workbook's formats, created once from ``STYLES`` and looked up by role."""

    def __init__(self, workbook: xlsxwriter.Workbook) -> None:
        self._formats = {name: workbook.add_format(spec) for name, spec in STYLES.items()}

    def __getitem__(self, name: str) -> Format:
        return self._formats[name]

    def money(self, decimals: int) -> Format:
        return self._formats[f"money{decimals}" if decimals in (0, 2, 3) else "money2"]


@dataclass
class Sheet:
    """A data sheet: its name, what it shows (for the README), its rows and highlights."""

    name: str
    about: str
    frame: pl.DataFrame
    #: column → highlight rule: "nonblank" (red), "negative" (red), "positive" (amber), "true" (red)
    highlight: dict[str, str] = field(default_factory=dict)


# ---------------------------------------------------------------- writing a frame


def _width(name: str, values: list[Any], kind: str) -> float:
    fixed = {"datetime": 23, "money": 14, "float": 12, "flag": 9, "count": 10}
    if kind in fixed:
        return max(fixed[kind], len(name) + 2)
    longest = max((len(str(v)) for v in values[:1000] if v is not None), default=0)
    cap = 80 if kind == "long_text" else 48
    return min(cap, max(len(name) + 2, longest + 2, 8))


def _writer(ws: Worksheet, kind: str, styles: Styles) -> Callable[[int, int, Any], None]:
    if kind == "datetime":
        return lambda r, c, v: ws.write_datetime(r, c, v, styles["datetime"])
    if kind == "flag":
        return lambda r, c, v: ws.write_boolean(r, c, bool(v))
    if kind in ("count", "float"):
        return lambda r, c, v: ws.write_number(r, c, float(v), styles[kind])
    wrap = styles["wrap"] if kind == "long_text" else None

    def text(r: int, c: int, v: Any) -> None:
        s = str(v)
        ws.write_string(r, c, s if len(s) <= EXCEL_MAX_CHARS else s[: EXCEL_MAX_CHARS - 1] + "…", wrap)

    return text


def write_frame(ws: Worksheet, frame: pl.DataFrame, styles: Styles, *, top: int = 0, highlight: dict[str, str] | None = None) -> None:
    """Write a frame as a table at row ``top``: header, typed cells, filter, widths, highlights."""
    n = frame.height
    decimals = [minor_unit(c) for c in frame["currency"].to_list()] if "currency" in frame.columns else None
    for c, name in enumerate(frame.columns):
        kind = describe(name).kind
        ws.write_string(top, c, name, styles["header"])
        values = frame[name].to_list()
        if kind == "money":
            for r, v in enumerate(values):
                if v is not None:
                    ws.write_number(top + 1 + r, c, float(v), styles.money(decimals[r] if decimals else 2))
        else:
            write = _writer(ws, kind, styles)
            for r, v in enumerate(values):
                if v is not None:
                    write(top + 1 + r, c, v)
        ws.set_column(c, c, _width(name, values, kind))
    last_row = top + max(n, 1)
    last_col = max(frame.width - 1, 0)
    ws.freeze_panes(top + 1, 0)
    ws.autofilter(top, 0, top + n, last_col)
    ws.set_landscape()
    ws.fit_to_pages(1, 0)
    ws.repeat_rows(top)
    _highlight(ws, frame, styles, top, last_row, highlight or {})


def _highlight(ws: Worksheet, frame: pl.DataFrame, styles: Styles, top: int, last_row: int, extra: dict[str, str]) -> None:
    rules = {
        "true": {"type": "cell", "criteria": "==", "value": "TRUE", "format": styles["flag_red"]},
        "nonblank": {"type": "no_blanks", "format": styles["flag_red"]},
        "negative": {"type": "cell", "criteria": "<", "value": 0, "format": styles["flag_red"]},
        "positive": {"type": "cell", "criteria": ">", "value": 0, "format": styles["flag_amber"]},
    }
    for c, name in enumerate(frame.columns):
        rule = extra.get(name)
        if rule is None and describe(name).kind == "flag" and name in CHECKS.keys() | {
            "overdraft_before", "overdraft_after", "overdraft_cross"
        }:
            rule = "true"
        if rule:
            ws.conditional_format(top + 1, c, last_row, c, rules[rule])
        if name == "severity":
            for value, style in (("high", "flag_red"), ("medium", "flag_amber"), ("low", "flag_yellow")):
                ws.conditional_format(
                    top + 1, c, last_row, c, {"type": "cell", "criteria": "==", "value": f'"{value}"', "format": styles[style]}
                )


# ---------------------------------------------------------------- the sheets


TX_VIEW = ["user_id", "currency", "ts", "tx_id", "type", "source", "action", "amount", "vat", "old_balance", "new_balance"]


def data_sheets(result: AuditResult) -> list[Sheet]:
    """Every data sheet, in the order an accountant reads them."""
    tx = result.with_file(result.transactions)
    ing = result.ingested
    where = ["file", "line_no"]
    flag_counts = {k: "positive" for k in ("overdrafts", "mismatches", "flow_breaks", "delta_anomalies", "flags")}
    problems = ing.problems.frame().rename({"kind": "problem"})
    kinds = pl.DataFrame(
        {
            "kind": list(EVENT_KINDS),
            "count": [ing.kind_counts.get(k, 0) for k in EVENT_KINDS],
            "meaning": [m for m, _ in EVENT_KINDS.values()],
            "understood": [ok for _, ok in EVENT_KINDS.values()],
        }
    )
    return [
        Sheet("PerUserSummary", "One row per user and currency: activity, opening and closing balance, totals and the count of each flag; users with most flags first.", result.users, flag_counts),
        Sheet("RedFlags", "Every flag of every check, one row each, most severe first, with a plain-English reason.", result.with_file(result.flags)),
        Sheet(
            "OverdraftEvents",
            "Transactions where the balance was below zero before or after.",
            tx.filter(pl.col("overdraft")).select(*TX_VIEW, "overdraft_before", "overdraft_after", "overdraft_cross", *where),
            {"new_balance": "negative", "old_balance": "negative"},
        ),
        Sheet(
            "MismatchEvents",
            "Transactions whose balance moved by neither ±amount nor ±(amount − vat).",
            tx.filter(pl.col("mismatch")).select(
                *TX_VIEW, "layout", "sign_source", "delta", "expected_delta", "expected_delta_net", "mismatch_diff", "tolerance", *where
            ),
            {"delta": "nonblank", "mismatch_diff": "nonblank"},
        ),
        Sheet(
            "FlowBreaks",
            "Transactions after which the wallet's next transaction does not start from this newBalance.",
            tx.filter(pl.col("flow_break")).select(
                *TX_VIEW, "wallet_id", "next_tx_id", "next_ts", "next_old", "flow_gap", *where
            ),
            {"new_balance": "nonblank", "next_old": "nonblank", "flow_gap": "nonblank"},
        ),
        Sheet(
            "Anomalies",
            "Transactions whose delta is more than the σ-multiple from the user's recent mean delta.",
            tx.filter(pl.col("delta_anomaly")).select(*TX_VIEW, "delta", "delta_mean", "delta_std", *where),
            {"delta": "nonblank"},
        ),
        Sheet(
            "Notices",
            "Every other message that matters: not-in-sync errors, blocked overdrafts, skips, Lambda errors and crashes, metrics.",
            result.with_file(ing.notices),
        ),
        Sheet(
            "Invocations",
            "Invocations that are incomplete (no START/END/REPORT), timed out, or logged errors.",
            result.with_file(
                ing.invocations.filter((pl.col("status") != "complete") | (pl.col("errors") > 0)).sort(
                    "first_ts", "file_id", "line_no", "request_id"
                )
            ),
            {"status": "nonblank"},
        ),
        Sheet(
            "DuplicateEvents",
            "Transactions logged more than once (a Lambda/SQS retry): each extra copy, set aside so balances and totals "
            "count the transaction once; the first copy in time order is kept. A copy whose fields differ from the kept "
            "one is still set aside, but marked (fields_differ) and listed in InputProblems.",
            result.with_file(result.duplicates),
            {"fields_differ": "true"},
        ),
        Sheet("EventKinds", "How many events of each kind were read, and which kinds the tool understands.", kinds),
        Sheet("UnparsedEvents", "Events the tool did not understand (should be empty), with why.", result.with_file(ing.unparsed)),
        Sheet("InputProblems", "Files or lines that could not be read, with the reason.", problems),
        Sheet("SampleRaw", "The first 200 transaction blocks in time order, exactly as logged.", result.with_file(ing.sample)),
    ]


def _write_readme(ws: Worksheet, result: AuditResult, sheets: list[Sheet], facts: dict[str, Any], styles: Styles) -> None:
    ws.set_column(0, 0, 28)
    ws.set_column(1, 1, 110)
    ws.set_landscape()
    ws.fit_to_pages(1, 0)
    ws.write_string(0, 0, "Calo balance audit", styles["title"])
    ws.write_string(1, 0, "Wallet balances reconstructed from the syncBalanceSQS Lambda logs, checked transaction by transaction.")
    row = 3
    ws.write_string(row, 0, "Run facts", styles["subtitle"])
    for key, value in facts.items():
        row += 1
        ws.write_string(row, 0, key, styles["header"])
        ws.write_string(row, 1, str(value), styles["wrap"])
    row += 2
    ws.write_string(row, 0, "Sheets", styles["subtitle"])
    for sheet in [("ColumnDefinitions", "What every column in this workbook means.", None), *((s.name, s.about, s.frame.height) for s in sheets)]:
        row += 1
        name, about, rows = sheet
        ws.write_url(row, 0, f"internal:'{name}'!A1", string=name)
        ws.write_string(row, 1, about if rows is None else f"{about} ({rows:,} rows)", styles["wrap"])
    row += 2
    ws.write_string(row, 0, "Checks", styles["subtitle"])
    for name, (severity, meaning) in CHECKS.items():
        row += 1
        ws.write_string(row, 0, name, styles["header"])
        ws.write_string(row, 1, f"{meaning} — severity {severity}", styles["wrap"])
    row += 2
    ws.write_string(row, 0, "Conventions", styles["subtitle"])
    for line in (
        "Times are UTC. Money is shown with the currency's decimals (BHD/KWD/OMR 3, others 2); negatives are red.",
        "Cells hold the exact logged value; the display rounds. Totals are never added across currencies.",
        "Two balances are equal when they differ by at most the tolerance (half the currency's minor unit by default).",
        "Highlighted cells are the ones a check flagged.",
    ):
        row += 1
        ws.write_string(row, 1, line, styles["wrap"])


def _write_glossary(ws: Worksheet, sheets: list[Sheet], styles: Styles) -> None:
    used: dict[str, list[str]] = {}
    for s in sheets:
        for col in s.frame.columns:
            used.setdefault(col, []).append(s.name)
    frame = pl.DataFrame(
        {
            "column": list(used),
            "kind": [COLUMNS[c].kind for c in used],
            "meaning": [COLUMNS[c].meaning for c in used],
            "sheets": [", ".join(v) for v in used.values()],
        }
    )
    headers = ["column", "kind", "meaning", "sheets"]
    for c, h in enumerate(headers):
        ws.write_string(0, c, h, styles["header"])
    for r, row in enumerate(frame.iter_rows(), start=1):
        for c, v in enumerate(row):
            ws.write_string(r, c, v, styles["wrap"] if c >= 2 else None)
    for c, w in enumerate([26, 10, 90, 60]):
        ws.set_column(c, c, w)
    ws.freeze_panes(1, 0)
    ws.autofilter(0, 0, frame.height, len(headers) - 1)


def run_facts(result: AuditResult, summary: dict[str, Any]) -> dict[str, Any]:
    """The README's run facts: inputs, period, counts and settings."""
    s = summary
    return {
        "Tool": f"calo-polars {__version__}",
        "Inputs": ", ".join(s["inputs"]),
        "Period (UTC)": f"{s['period']['first']} — {s['period']['last']}",
        "Files read": f"{s['files']:,} (skipped: {', '.join(f'{n} {why}' for why, n in s['skipped_files'].items()) or 'none'})",
        "Events": f"{s['events']:,} ({s['unparsed_events']} not understood)",
        "Invocations": f"{s['invocations']:,} ({s['incomplete_invocations']} incomplete)",
        "Transactions": f"{s['transactions']:,} of {s['users']:,} users",
        "Flags": (
            f"{s['overdraft_events']} overdrafts, {s['mismatches']} mismatches, "
            f"{s['flow_breaks']} flow breaks, {s['delta_anomalies']} delta anomalies"
        ),
        "Lambda signals": (
            f"{s['not_in_sync_errors']:,} not-in-sync errors, {s['blocked_overdrafts']} blocked overdrafts, "
            f"{s['lambda_errors']} Lambda errors, {s['skipped_syncs']} skipped syncs"
        ),
        "Tolerance": s["settings"]["tolerance"],
        "Delta anomaly": f"{s['settings']['sigma']}σ over the user's preceding {s['settings']['window']} deltas (at least {s['settings']['min_history']})",
        "Input problems": f"{s['input_problems']}",
    }


def write_workbook(result: AuditResult, path: Path, summary: dict[str, Any]) -> None:
    """Write the workbook atomically: a temporary file in the same folder, then a rename."""
    sheets = data_sheets(result)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".calo-", suffix=".xlsx", dir=path.parent)
    os.close(fd)
    try:
        options = {"strings_to_formulas": False, "strings_to_urls": False, "strings_to_numbers": False, "remove_timezone": True}
        with xlsxwriter.Workbook(tmp, options) as wb:
            wb.set_properties({"title": "Calo balance audit", "subject": "Wallet balances from balance-sync Lambda logs", "author": "calo-polars"})
            styles = Styles(wb)
            _write_readme(wb.add_worksheet("README"), result, sheets, run_facts(result, summary), styles)
            _write_glossary(wb.add_worksheet("ColumnDefinitions"), sheets, styles)
            for sheet in sheets:
                ws = wb.add_worksheet(sheet.name)
                frame = sheet.frame.head(EXCEL_MAX_ROWS - 1)
                write_frame(ws, frame, styles, highlight=sheet.highlight)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
