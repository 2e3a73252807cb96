"""The hand-laid sheets: Overview (the run at a glance, every count a link), README, glossary.

The Overview's numbers come from ``summary.json``'s dict (``report.summary``), so the workbook,
the summary, the terminal and the alerts cannot disagree. Money is shown per currency, never
added across currencies.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import polars as pl
from xlsxwriter.worksheet import Worksheet

from calo_polars.audit.result import AuditResult
from calo_polars.audit.selection import selection_text
from calo_polars.checks.plan import ROLL_FORWARD
from calo_polars.checks.registry import CHECKS, SEVERITIES, SIGNALS, Signal, check
from calo_polars.money import minor_unit
from calo_polars.parse.outcomes import OUTCOME_MEANINGS
from calo_polars.report.bounded import capped_text
from calo_polars.report.columns import COLUMNS
from calo_polars.report.ledger import ledger_text
from calo_polars.report.xlsx import frames as xlsx
from calo_polars.report.xlsx.frames import (
    LINE_HEIGHT,
    Sheet,
    Styles,
    print_setup,
    sheet_parts,
    wrap_height,
    write_frame,
)
from calo_polars.version import __version__

SEVERITY_STYLES = {"high": "flag_red", "medium": "flag_amber", "low": "flag_yellow"}
ERROR_KIND_NAMES = {
    "uncaught_exception": "uncaught exceptions",
    "runtime_crash": "runtime crashes",
    "sync_error": "failed syncs",
    "invoke_error": "invoke errors",
    "init_report": "failed inits",
    "timeout": "timeouts",
}

ROLL_FORWARD_LABELS = {
    "opening_balance": "opening balance",
    "credits": "+ credits",
    "debits": "− debits",
    "expected_closing": "= expected closing",
    "closing_balance": "closing balance",
    "difference": "difference",
    "flow_gaps": "of which flow gaps",
    "mismatch_diffs": "of which mismatches",
    "rounding": "of which rounding",
}

ROLL_FORWARD_TEXT = [
    "Per user and currency: expected closing = opening balance + credits − debits; difference = closing balance − "
    "expected closing.",
    "Opening balance is the oldBalance of each wallet's first transaction, closing balance the newBalance of its last "
    "(added over the user's wallets).",
    "Credits and debits are what each transaction announced to the wallet: net of VAT where the balance moved net of "
    "VAT (vat_applied), else the gross amount — a mismatch counts its gross amount. They differ from the gross totals "
    "by the VAT kept out of the wallet.",
    "So the difference splits exactly into flow gaps (money that appeared or vanished between transactions: "
    "FlowBreaks), mismatch differences (MismatchEvents) and rounding (the within-tolerance differences no check "
    "flags).",
    "A user is unreconciled when the difference is beyond the tolerance. Every user without a flow break or mismatch "
    "closes to the fils.",
]


def _signal_meaning(signal: Signal, summary: dict[str, Any]) -> str:
    """A Lambda signal's "what it means" cell: Lambda errors say how many of each kind."""
    if signal.name == "lambda_error":
        by_kind = summary["lambda_errors_by_kind"].items()
        return "; ".join(f"{n} {ERROR_KIND_NAMES.get(k, k)}" for k, n in by_kind) or "none"
    return signal.meaning


def _link(ws: Worksheet, row: int, col: int, sheet: str, count: int, styles: Styles) -> None:
    ws.write_url(row, col, f"internal:'{sheet}'!A1", styles["link_count"], string=f"{count:,}")


def _header(ws: Worksheet, row: int, labels: list[str], styles: Styles) -> None:
    ws.set_row(row, 2 * LINE_HEIGHT)
    for c, label in enumerate(labels):
        ws.write_string(row, c, label, styles["header"])


def _when(value: str | None) -> datetime | None:
    return None if value is None else datetime.strptime(value, "%Y-%m-%dT%H:%M:%S.%fZ")


def write_overview(
    ws: Worksheet, result: AuditResult, summary: dict[str, Any], sheets: dict[str, Sheet], styles: Styles
) -> None:
    """The first sheet: period, volumes, money per currency, roll-forward, checks and signals."""
    s = summary
    ws.hide_gridlines(2)
    ws.set_column(0, 0, 30)
    ws.set_column(1, 1, 24)
    ws.set_column(2, 12, 15)
    print_setup(ws)
    ws.write_string(0, 0, "Calo balance audit — overview", styles["title"])
    ws.write_string(
        1,
        0,
        "Wallet balances reconstructed from the syncBalanceSQS Lambda logs. Times UTC. Blue numbers open the rows "
        "behind them.",
        styles["note"],
    )

    row = 3
    ws.write_string(row, 0, "The run", styles["subtitle"])
    first, last = _when(s["period"]["first"]), _when(s["period"]["last"])
    facts: list[tuple[str, Any, str | None]] = [
        ("Period from", first, None),
        ("Period to", last, None),
        ("Files read", s["files"], None),
        *(
            [("Files already read (--state)", s["incremental"]["files_already_read"], None)]
            if s.get("incremental")
            else []
        ),
        ("Events read", s["events"], "EventKinds"),
        ("Events not understood", s["unparsed_events"], "UnparsedEvents"),
        ("Input problems", s["input_problems"], "InputProblems"),
        ("Invocations", s["invocations"], "Invocations"),
        ("Transactions", s["transactions"], "Ledger"),
        ("Users", s["users"], "PerUserSummary"),
    ]
    for label, value, target in facts:
        row += 1
        ws.write_string(row, 0, label, styles["label"])
        if isinstance(value, datetime):
            ws.write_datetime(row, 1, value, styles["datetime"])
        elif target:
            _link(ws, row, 1, target, value, styles)
        elif value is not None:
            ws.write_number(row, 1, value, styles["count"])
    row = _ledger_rows(ws, row, s.get("ledger"), styles)
    row = _capped_rows(ws, row, s, styles)

    row += 2
    ws.write_string(
        row, 0, "Money by currency (gross amounts as logged; never added across currencies)", styles["subtitle"]
    )
    row += 1
    _header(
        ws,
        row,
        ["currency", "transactions", "users", "debits (gross)", "credits (gross)", "VAT", "net change of balances"],
        styles,
    )
    for t in result.totals.iter_rows(named=True):
        row += 1
        money = styles.money(minor_unit(t["currency"]))
        ws.write_string(row, 0, t["currency"], styles["label"])
        ws.write_number(row, 1, t["transactions"], styles["count"])
        ws.write_number(row, 2, t["users"], styles["count"])
        for c, key in enumerate(["debit_total", "credit_total", "vat_total", "net_change"], start=3):
            ws.write_number(row, c, float(t[key]), money)

    row += 2
    ws.write_string(row, 0, "Roll-forward by currency", styles["subtitle"])
    row += 1
    _header(ws, row, ["currency", "users", *ROLL_FORWARD_LABELS.values(), "users unreconciled"], styles)
    for t in result.totals.iter_rows(named=True):
        row += 1
        decimals = minor_unit(t["currency"])
        ws.write_string(row, 0, t["currency"], styles["label"])
        ws.write_number(row, 1, t["users"], styles["count"])
        for c, key in enumerate(ROLL_FORWARD, start=2):
            alert = key == "difference" and round(abs(float(t[key])), decimals) > 0
            ws.write_number(row, c, float(t[key]), styles.money(decimals, alert=alert))
        _link(ws, row, 2 + len(ROLL_FORWARD), "PerUserSummary", t["unreconciled_users"], styles)
    for line in ROLL_FORWARD_TEXT:
        row += 1
        ws.write_string(row, 0, line, styles["note"])

    row += 2
    ws.write_string(row, 0, "Checks on every transaction", styles["subtitle"])
    row += 1
    _header(ws, row, ["check", "severity", "transactions", "users", "what it means"], styles)
    for declared in CHECKS:
        row += 1
        ws.write_string(row, 0, declared.name, styles["label"])
        ws.write_string(row, 1, declared.severity, styles[SEVERITY_STYLES[declared.severity]])
        _link(ws, row, 2, declared.sheet, s[declared.count_key], styles)
        _link(ws, row, 3, declared.sheet, s[declared.users_key], styles)
        ws.write_string(row, 4, declared.definition)
    row += 1
    ws.write_string(row, 0, "All flags, most severe first", styles["label"])
    _link(ws, row, 2, "RedFlags", result.flags.height, styles)
    _link(ws, row, 3, "RedFlags", result.flags["user_id"].n_unique(), styles)
    row += 1
    ws.write_string(row, 0, "of which need a person", styles["label"])
    _link(ws, row, 2, "RedFlags", s["flags_needing_a_person"], styles)
    ws.write_string(row, 4, "the logs do not explain them, or money is wrong: each says what happened (RedFlags)")

    row += 2
    ws.write_string(row, 0, "What the Lambda did with each transaction", styles["subtitle"])
    row += 1
    _header(ws, row, ["outcome", "", "transactions", "", "what it means"], styles)
    for outcome, count in s["outcomes"].items():
        row += 1
        ws.write_string(row, 0, outcome, styles["label"])
        _link(ws, row, 2, "Ledger", count, styles)
        ws.write_string(row, 4, OUTCOME_MEANINGS[outcome])

    row += 2
    ws.write_string(row, 0, "Flow breaks by cause", styles["subtitle"])
    row += 1
    _header(ws, row, ["cause", "severity", "flow breaks", "needs a person", "what it means"], styles)
    breaks = check("flow_break")
    for cause, count in s["flow_break_causes"].items():
        row += 1
        explained = breaks.causes[cause]
        ws.write_string(row, 0, cause, styles["label"])
        ws.write_string(row, 1, explained.severity, styles[SEVERITY_STYLES[explained.severity]])
        _link(ws, row, 2, breaks.sheet, count, styles)
        ws.write_string(row, 3, "yes" if explained.needs_person else "no")
        ws.write_string(row, 4, explained.summary)

    row += 2
    ws.write_string(row, 0, "What the Lambda logged", styles["subtitle"])
    row += 1
    _header(ws, row, ["signal", "sheet", "events", "users", "what it means"], styles)
    for signal in (g for g in SIGNALS if g.group == "lambda"):
        row += 1
        sheet = signal.sheet or "Overview"  # every Lambda signal is listed on a sheet
        ws.write_string(row, 0, signal.label[0].upper() + signal.label[1:], styles["label"])
        ws.write_url(row, 1, f"internal:'{sheet}'!A1", styles["link"], string=sheet)
        _link(ws, row, 2, sheet, s[signal.count_key], styles)
        if signal.users_key and s[signal.users_key]:  # blank when no row names a user
            _link(ws, row, 3, sheet, s[signal.users_key], styles)
        ws.write_string(row, 4, _signal_meaning(signal, s))

    row += 2
    ws.write_string(row, 0, "Invocation health", styles["subtitle"])
    row += 1
    inv = result.ingested.invocation_table.lazy().filter(pl.col("request_id") != "undefined")
    health = [
        ("invocations", s["invocations"], "Invocations"),
        ("cold starts", s["cold_starts"], "Invocations"),
        ("incomplete", s["incomplete_invocations"], "InvocationIssues"),
        ("timed out", s["timed_out_invocations"], "InvocationIssues"),
        ("with errors", s["invocations_with_errors"], "InvocationIssues"),
    ]
    stats = inv.select(
        pl.col("duration_ms").mean().alias("duration avg ms"),
        pl.col("duration_ms").quantile(0.95, "linear").alias("duration p95 ms"),
        pl.col("duration_ms").max().alias("duration max ms"),
        pl.col("max_memory_mb").max().cast(pl.Float64).alias("peak memory MB"),
        pl.col("memory_mb").max().cast(pl.Float64).alias("memory size MB"),
    ).collect(engine="in-memory")
    figures: list[tuple[str, float | None]] = list(stats.row(0, named=True).items())
    _header(ws, row, [label for label, *_ in health] + [label for label, _ in figures], styles)
    row += 1
    for c, (_, value, sheet) in enumerate(health):
        _link(ws, row, c, sheet, value, styles)
    for c, (_, value) in enumerate(figures, start=len(health)):
        if value is not None:
            ws.write_number(row, c, value, styles["float" if "duration" in figures[c - len(health)][0] else "count"])

    row += 2
    ws.write_string(row, 0, "More", styles["subtitle"])
    for sheet, what in [
        ("README", "how to read this workbook: every sheet, the checks, the roll-forward and the conventions"),
        ("Charts", "daily credits and debits per currency, flags per week, balances of the users with most flags"),
        ("ColumnDefinitions", "what every column means"),
    ]:
        row += 1
        ws.write_url(row, 0, f"internal:'{sheet}'!A1", styles["link"], string=sheet)
        ws.write_string(row, 1, what)
    for spec in sheets.values():  # tables longer than an Excel sheet: where the rest is
        for name, what in sheet_entries(spec)[1:]:
            row += 1
            ws.write_url(row, 0, f"internal:'{name}'!A1", styles["link"], string=name)
            ws.write_string(row, 1, what)


def _ledger_rows(ws: Worksheet, row: int, ledger: dict[str, Any] | None, styles: Styles) -> int:
    """What the Ledger sheet shows, and the link to the complete table beside the workbook."""
    if not ledger:
        return row
    row += 1
    ws.write_string(row, 0, "Transactions in the Ledger", styles["label"])
    _link(ws, row, 1, "Ledger", ledger["rows"], styles)
    ws.write_string(row, 2, ledger_text(ledger), styles["note"])
    if ledger["parquet"]:
        row += 1
        ws.write_string(row, 0, "Every transaction", styles["label"])
        _parquet_link(ws, row, 1, ledger["parquet"], styles)
        ws.write_string(row, 2, "the complete table, one row per transaction (Parquet: DuckDB, pandas, Power BI)")
    return row


def _capped_rows(ws: Worksheet, row: int, summary: dict[str, Any], styles: Styles) -> int:
    """Each sheet capped past ``bounded.MAX_ROWS``: what it shows, and the link to its whole table."""
    for sheet, info in (summary.get("capped_sheets") or {}).items():
        row += 1
        ws.write_string(row, 0, f"{sheet}: every row", styles["label"])
        _parquet_link(ws, row, 1, info["parquet"], styles)
        ws.write_string(row, 2, capped_text(sheet, info), styles["note"])
    return row


def _parquet_link(ws: Worksheet, row: int, col: int, name: str, styles: Styles) -> None:
    """A relative link to a file beside the workbook: it keeps working when the folder moves."""
    ws.write_url(row, col, f"external:{name}", styles["link"], string=name)


def sheet_entries(sheet: Sheet) -> list[tuple[str, str]]:
    """README lines of a data sheet: name and what it shows; a table too long for one sheet
    says which continuation sheets hold the rest (``xlsx.sheet_parts``)."""
    rows = sheet.frame.height
    parts = sheet_parts(sheet.name, rows)
    if len(parts) == 1:
        return [(sheet.name, f"{sheet.about} ({rows:,} rows)")]
    size = xlsx.SHEET_ROWS
    note = (
        f"{sheet.about} ({rows:,} rows, more than an Excel sheet holds: rows {size + 1:,} on are in "
        f"{', '.join(parts[1:])}; links land in the sheet that holds the row)"
    )
    rest = [
        (name, f"{sheet.name} continued: its rows {k * size + 1:,}–{min(rows, (k + 1) * size):,}")
        for k, name in enumerate(parts)
        if k
    ]
    return [(sheet.name, note), *rest]


def run_facts(summary: dict[str, Any]) -> dict[str, str]:
    """The README's run facts: inputs, period, counts and settings."""
    s = summary
    return {
        "Tool": f"calo-polars {__version__}",
        "Inputs": ", ".join(s["inputs"]),
        "Period (UTC)": f"{s['period']['first']} — {s['period']['last']}",
        "Selection": selection_text(s.get("selection", {}))
        or "everything read (no --since, --until, --user or --currency)",
        "Files read": (
            f"{s['files']:,} (skipped: {', '.join(f'{n} {why}' for why, n in s['skipped_files'].items()) or 'none'})"
        ),
        "Events": f"{s['events']:,} ({s['unparsed_events']} not understood)",
        "Invocations": (
            f"{s['invocations']:,} ({s['incomplete_invocations']} incomplete, {s['cold_starts']:,} cold starts)"
        ),
        "Transactions": f"{s['transactions']:,} of {s['users']:,} users",
        "Flags": ", ".join(f"{s[c.count_key]:,} {c.label}" for c in CHECKS),
        "Lambda signals": ", ".join(f"{s[g.count_key]:,} {g.label}" for g in SIGNALS if g.group == "lambda"),
        "Tolerance": s["settings"]["tolerance"],
        "Delta anomaly": (
            f"{s['settings']['sigma']}σ over the user's preceding {s['settings']['window']} deltas (at least "
            f"{s['settings']['min_history']})"
        ),
        "Input problems": f"{s['input_problems']}",
        **({"Ledger": ledger_text(s["ledger"])} if s.get("ledger") else {}),
        **{sheet: capped_text(sheet, info) for sheet, info in (s.get("capped_sheets") or {}).items()},
        **incremental_facts(s.get("incremental")),
    }


def incremental_facts(inc: dict[str, Any] | None) -> dict[str, str]:
    """What an incremental run (--state) carried in, for the README sheet; nothing otherwise."""
    if not inc:
        return {}
    return {
        "Incremental run": (
            f"continues {inc['earlier_runs']} earlier run(s) from the state file {inc['state_file']}: this workbook "
            "reports only the transactions read now (per-user roll-forward and totals too)"
        ),
        "Carried in": (
            f"{inc['wallets_carried_in']:,} wallets' last transactions ({inc['wallets_continued']:,} continued now); "
            f"{inc['carried_flow_breaks']} flow breaks on the previous export's last transaction of a wallet (in "
            f"RedFlags and FlowBreaks); {inc['duplicates_of_earlier_runs']} copies of transactions an earlier run read "
            "(in DuplicateEvents)"
        ),
        "Files already read": f"{inc['files_already_read']:,} not read again (listed in summary.json)",
    }


FIXED_SHEETS = {
    "Overview": (
        "The run at a glance: period, volumes, money and roll-forward per currency, every check and Lambda signal with "
        "its count; each count links to its rows."
    ),
    "README": "This sheet: run facts, every sheet, the definitions and the conventions.",
    "ColumnDefinitions": "What every column in this workbook means.",
    "Charts": (
        "Daily credits and debits per currency, flags and Lambda signals per week, logged vs recomputed balance of the "
        "ten users with most flags."
    ),
}

CONVENTIONS = [
    "Times are UTC, shown yyyy-mm-dd hh:mm:ss (the cell keeps the logged milliseconds).",
    "Money is shown with the currency's decimals (BHD/KWD/OMR 3, others 2); negatives are red. Cells hold the exact "
    "logged value; the display rounds.",
    "Totals are never added across currencies.",
    "Two balances are equal when they differ by at most the tolerance (half the currency's minor unit by default).",
    "Red cells are what a check flagged or a difference beyond tolerance; amber ones are worth a look.",
    "Blue, underlined cells are links: a userId in PerUserSummary opens the user's first Ledger row; in other sheets "
    "it opens the user's PerUserSummary row; a transaction id opens its Ledger row. An id or user the Ledger does "
    "not show (see Run facts above) is plain text: its rows are in the complete table beside the workbook.",
    "Sheets of up to 10,000 rows are Excel tables (banded, with filter buttons); longer ones (the Ledger) have an "
    "autofilter. A very large workbook (over 2,000,000 data cells) is written row by row to keep memory flat, and then "
    "has autofilters only.",
    "A sheet holds at most 1,048,575 rows under its header: a longer table (a Ledger of millions of transactions, "
    "with --full-ledger) goes on in continuation sheets named Ledger (2), Ledger (3), …, listed under Sheets above; "
    "links land in the sheet that holds the row. No row is left out.",
    "Log text is always written as text, never as a formula or a link.",
]


README_WIDTH = 120


def _wrapped(ws: Worksheet, row: int, text: str, styles: Styles) -> None:
    """README's text column: wrapped, with the row as tall as the text needs."""
    ws.write_string(row, 1, text, styles["wrap"])
    height = wrap_height(text, README_WIDTH)
    if height > LINE_HEIGHT:
        ws.set_row(row, height)


def _beside(summary: dict[str, Any]) -> dict[str, str]:
    """Sheet → the Parquet file beside the workbook that holds its whole table (when it is capped)."""
    files = {sheet: info["parquet"] for sheet, info in (summary.get("capped_sheets") or {}).items()}
    if summary.get("ledger") and summary["ledger"]["parquet"]:
        files["Ledger"] = summary["ledger"]["parquet"]
    return files


def write_readme(ws: Worksheet, summary: dict[str, Any], sheets: list[Sheet], styles: Styles) -> None:
    """How to read the workbook: run facts, every sheet in order, definitions, conventions."""
    ws.set_column(0, 0, 28)
    ws.set_column(1, 1, README_WIDTH)
    print_setup(ws)
    ws.write_string(0, 0, "Calo balance audit", styles["title"])
    ws.write_string(
        1, 0, "Wallet balances reconstructed from the syncBalanceSQS Lambda logs, checked transaction by transaction."
    )
    row = 3
    ws.write_string(row, 0, "Run facts", styles["subtitle"])
    for key, value in run_facts(summary).items():
        row += 1
        ws.write_string(row, 0, key, styles["label"])
        _wrapped(ws, row, value, styles)
        beside = _beside(summary).get(key)
        if beside:
            row += 1
            ws.write_string(row, 0, "Every transaction" if key == "Ledger" else f"{key}: every row", styles["label"])
            _parquet_link(ws, row, 1, beside, styles)
    row += 2
    ws.write_string(row, 0, "Sheets, in order", styles["subtitle"])
    entries = list(FIXED_SHEETS.items())
    for s in sheets:
        entries += sheet_entries(s)
    for name, about in entries:
        row += 1
        ws.write_url(row, 0, f"internal:'{name}'!A1", styles["link"], string=name)
        _wrapped(ws, row, about, styles)
    row += 2
    ws.write_string(row, 0, "Checks and severities", styles["subtitle"])
    for c in CHECKS:
        row += 1
        ws.write_string(row, 0, c.name, styles["label"])
        _wrapped(ws, row, f"{c.definition} — severity {c.severity}: {SEVERITIES[c.severity][1]}", styles)
    row += 2
    ws.write_string(row, 0, "Roll-forward", styles["subtitle"])
    for line in ROLL_FORWARD_TEXT:
        row += 1
        _wrapped(ws, row, line, styles)
    row += 2
    ws.write_string(row, 0, "Conventions", styles["subtitle"])
    for line in CONVENTIONS:
        row += 1
        _wrapped(ws, row, line, styles)


def write_glossary(ws: Worksheet, sheets: list[Sheet], styles: Styles) -> None:
    """ColumnDefinitions: every column the data sheets use, its kind, meaning and sheets."""
    used: dict[str, list[str]] = {}
    for s in sheets:
        for col in s.columns:
            used.setdefault(col, []).append(s.name)
    frame = pl.DataFrame(
        {
            "column": list(used),
            "kind": [COLUMNS[c].kind for c in used],
            "meaning": [COLUMNS[c].meaning for c in used],
            "sheets": [", ".join(v) for v in used.values()],
        }
    )
    write_frame(ws, frame, styles, name="ColumnDefinitions")
