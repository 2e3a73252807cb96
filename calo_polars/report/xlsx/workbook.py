"""The Excel workbook an accountant opens first: overview, roll-forward, drill-down, signals, charts.

Sheet order (``SHEET_ORDER`` below, documented in the README): the Overview, how to read the
workbook (README, ColumnDefinitions), Charts; then the books (PerUserSummary's roll-forward,
RedFlags and one sheet per check); then what the Lambda itself logged (SyncErrors,
BlockedOverdrafts, NegativePaymentBalance, LambdaErrors, Skipped, Invocations,
InvocationIssues, OtherNotices); then the full Ledger the links drill into; then the data
behind the charts and the run's own bookkeeping (EventKinds, UnparsedEvents, InputProblems,
SampleRaw).

The tables come from ``sheets.py`` (Polars), the cells from ``xlsx.write_frame``, the
hand-laid sheets from ``overview.py`` and the charts from ``charts.py``. The file is written
atomically: a temporary file in the same folder, then a rename.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import polars as pl
import xlsxwriter
import xlsxwriter.exceptions

from calo_polars import atomic
from calo_polars.audit.result import AuditResult
from calo_polars.checks.registry import CHECKS
from calo_polars.parse.events import EVENT_KINDS
from calo_polars.report import tables
from calo_polars.report.bounded import capped, capped_text, describe, full_tables
from calo_polars.report.ledger import LedgerView
from calo_polars.report.ledger import view as ledger_view
from calo_polars.report.tables import LEDGER, PER_USER
from calo_polars.report.xlsx import frames as xlsx
from calo_polars.report.xlsx.charts import DAILY, TOP, WEEKLY, write_charts
from calo_polars.report.xlsx.frames import Sheet, Styles, write_frame
from calo_polars.report.xlsx.overview import FIXED_SHEETS, write_glossary, write_overview, write_readme
from calo_polars.report.xlsx.safe import SafeWorkbook

TX_VIEW = [
    "user_id",
    "currency",
    "ts",
    "tx_id",
    "outcome",
    "type",
    "source",
    "action",
    "amount",
    "vat",
    "old_balance",
    "new_balance",
]
WHERE = ["file", "line_no"]
#: What each flag sheet shows first: what happened, how severe, whether a person must act.
EXPLAINED = ["severity", "needs_person", "cause", "what_happened"]

#: Tab colours by group, so the order reads at a glance.
TAB_COLORS = {"start": "#548235", "books": "#1F3864", "signals": "#C55A11", "detail": "#7F7F7F"}


def _tab(name: str) -> str:
    if name in FIXED_SHEETS:
        return "start"
    if name in {PER_USER, "RedFlags", *(c.sheet for c in CHECKS)}:
        return "books"
    if name in {
        "SyncErrors",
        "BlockedOverdrafts",
        "NegativePaymentBalance",
        "LambdaErrors",
        "Skipped",
        "Invocations",
        "InvocationIssues",
        "OtherNotices",
    }:
        return "signals"
    return "detail"


def _linked(sheet: Sheet) -> Sheet:
    """Turn the frame's link helper columns into the sheet's links."""
    if "_user_link" in sheet.frame.columns:
        sheet.links.setdefault("user_id", "_user_link")
    if "_tx_link" in sheet.frame.columns:
        col = "tx_id" if "tx_id" in sheet.frame.columns else "transaction_id"
        sheet.links.setdefault(col, "_tx_link")
    if "_next_tx_link" in sheet.frame.columns:
        sheet.links.setdefault("next_tx_id", "_next_tx_link")
    return sheet


def data_sheets(
    result: AuditResult, view: LedgerView | None = None, signals: dict[str, pl.DataFrame] | None = None
) -> list[Sheet]:
    """Every data sheet, in the order an accountant reads them (after the fixed first four).

    ``view``: the Ledger and the rows its sheet shows (``report.ledger``; by default the flagged
    transactions with context); links into the Ledger are made only to the rows it shows.
    ``signals``: ``bounded.full_tables`` when the caller has them already."""
    ing = result.ingested
    view = view or ledger_view(result)
    ledger = view.rows
    negative = tables.negative_payment_balances(result) if signals is None else signals["NegativePaymentBalance"]
    users = tables.per_user_summary(result, ledger, negative)
    links = tables.links(ledger, users)
    signals = full_tables(result, negative) if signals is None else signals  # capped past bounded.MAX_ROWS
    too_long = describe(signals)

    def flagged(check: str, *extra: str) -> pl.DataFrame:
        rows = result.with_file(result.derived(result.parts.filter(pl.col(check))))  # by user then time, part by part
        earlier = result.carried_rows() if check == "flow_break" else None  # --state: breaks into this export first
        if earlier is not None:
            rows = pl.concat([earlier.select(rows.columns), rows])
        why = result.flags.filter(pl.col("check") == check).select("tx_id", *EXPLAINED)
        rows = rows.join(why, on="tx_id", how="left", maintain_order="left")
        return links.add(rows.select(*EXPLAINED, *TX_VIEW, *extra, *WHERE))

    kinds = pl.DataFrame(
        {
            "kind": list(EVENT_KINDS),
            "count": [ing.kind_counts.get(k, 0) for k in EVENT_KINDS],
            "meaning": [m for m, _ in EVENT_KINDS.values()],
            "understood": [ok for _, ok in EVENT_KINDS.values()],
        },
        schema_overrides={"count": pl.UInt32},
    )
    flag_counts = dict.fromkeys(
        (
            *(c.per_user for c in CHECKS),
            "flags",
            "not_in_sync",
            "blocked_overdrafts",
            "negative_payment_balances",
        ),
        "positive",
    )
    specs = [
        Sheet(
            PER_USER,
            "The roll-forward per user and currency: first/last seen, opening balance, credits, debits, expected and "
            "actual closing, the difference split into flow gaps, mismatches and rounding; the count of each flag and "
            "Lambda signal. Most flags first; a userId opens the user's rows in the Ledger.",
            users,
            {**flag_counts, "flow_gaps": "nonzero", "mismatch_diffs": "nonzero"},
            alerts={"difference": "_difference_alert"},
        ),
        Sheet(
            "RedFlags",
            "Every flag of every check, one row each, most severe first, with a plain-English reason.",
            links.add(result.with_file(result.flags).drop("wallet_id")),
        ),
        *(Sheet(c.sheet, c.about, flagged(c.name, *c.sheet_columns), dict(c.highlight)) for c in CHECKS),
        Sheet(
            "SyncErrors",
            "'Subscription balance and payment balance are not in sync' errors: both balances, the difference "
            "subscription − payment, and the transaction the invocation had just synced for the user.",
            links.add(capped("SyncErrors", signals["SyncErrors"])),
            {"payment_balance": "negative", "subscription_vs_new": "nonzero"},
        ),
        Sheet(
            "BlockedOverdrafts",
            "Transactions the Lambda refused because the balance would go below zero, with the refused transaction "
            "when it was logged too.",
            links.add(tables.blocked_overdrafts(result)),
            {"would_be_balance": "negative"},
        ),
        Sheet(
            "NegativePaymentBalance",
            "Every negative paymentBalance logged, once: from a transaction block (with the not-in-sync error that "
            "repeated it) or only from a not-in-sync error.",
            links.add(capped("NegativePaymentBalance", signals["NegativePaymentBalance"])),
            {"payment_balance": "negative"},
        ),
        Sheet(
            "LambdaErrors",
            "Uncaught exceptions, runtime crashes, failed syncs, invoke errors, failed inits and timeouts: the error, "
            "its stack head and requestId.",
            links.add(tables.lambda_errors(result)),
        ),
        Sheet("Skipped", "Messages the Lambda skipped, counted by reason and action.", tables.skipped(result)),
        Sheet(
            "Invocations",
            "Invocation health per UTC day: invocations, cold starts, duration, memory, incomplete, timed-out and "
            "failing invocations.",
            tables.invocation_health(result),
            {"incomplete": "positive", "timed_out_invocations": "positive", "with_errors": "positive"},
        ),
        Sheet(
            "InvocationIssues",
            "Invocations that are incomplete (no START/END/REPORT), timed out, ran outside any request, or logged "
            "errors.",
            tables.invocation_issues(result),
            {"status": "nonblank"},
        ),
        Sheet(
            "OtherNotices",
            "Every other notice: CloudWatch metrics the Lambda emitted (EMF) and init reports without error.",
            links.add(capped("OtherNotices", signals["OtherNotices"])),
        ),
        Sheet(
            "DuplicateEvents",
            "Transactions logged more than once (a Lambda/SQS retry): each extra copy, set aside so balances and "
            "totals count the transaction once; the first copy in time order is kept. A copy whose fields differ from "
            "the kept one is still set aside, but marked (fields_differ) and listed in InputProblems.",
            links.add(result.with_file(result.duplicates)),
            {"fields_differ": "true"},
        ),
        Sheet(
            LEDGER,
            (
                "Every transaction"
                if view.shown.complete
                else "The flagged transactions with their context (which ones, and where the others are: Ledger in "
                "Run facts above)"
            )
            + ", by user then time: debit and credit as announced, the logged balances, the balance recomputed from "
            "the wallet's opening and the difference between them (red beyond tolerance), the checks that flagged it.",
            ledger,
            alerts={"running_diff": "_running_alert"},
        ),
        Sheet(
            DAILY,
            "Per currency and UTC day: transactions, credits and debits as in the roll-forward, flags (data of the "
            "daily charts).",
            tables.daily_totals(result),
        ),
        Sheet(
            WEEKLY,
            "Per week (from Monday, UTC): flags of each check and the Lambda's signals (data of the weekly charts).",
            tables.weekly_signals(result),
        ),
        Sheet(
            TOP,
            "Logged and recomputed balance over time of the ten users with most flags (data of the balance charts).",
            tables.top_user_balances(view.parts(), users),
        ),
        Sheet("EventKinds", "How many events of each kind were read, and which kinds the tool understands.", kinds),
        Sheet(
            "UnparsedEvents",
            "Events the tool did not understand (should be empty), with why.",
            result.with_file(ing.unparsed),
        ),
        Sheet(
            "InputProblems",
            "Files or lines that could not be read, with the reason.",
            ing.problems.frame().rename({"kind": "problem"}),
        ),
        Sheet(
            "SampleRaw",
            "The first 200 transaction blocks in time order, exactly as logged.",
            result.with_file(ing.sample),
        ),
    ]
    for s in specs:  # a capped sheet says so (report.bounded)
        if s.name in too_long:
            s.about += " " + capped_text(s.name, too_long[s.name])
    return [_linked(s) for s in specs]


#: Cells (rows × columns of the data sheets) past which the workbook is written in
#: xlsxwriter's ``constant_memory`` mode: each row goes to disk as the next one starts, so
#: memory stays flat (xlsxwriter otherwise holds ~170 bytes a cell: 2 GB for a 600k-row
#: Ledger). Its price: no Excel tables (sheets get a plain autofilter instead).
CONSTANT_MEMORY_CELLS = 2_000_000
#: Cells up to which xlsxwriter keeps the workbook's parts in memory (``in_memory``) rather than
#: in temporary files it writes, reads back and removes (~100 bytes of XML a cell).
IN_MEMORY_CELLS = 1_000_000


def write_sheet(wb: xlsxwriter.Workbook, sheet: Sheet, styles: Styles) -> None:
    """One data sheet, or more: a table longer than a sheet goes on in continuation sheets
    (Ledger, Ledger (2), …; ``xlsx.sheet_parts``), each with its header row. No row is dropped."""
    for part, name in enumerate(xlsx.sheet_parts(sheet.name, sheet.frame.height)):
        ws = wb.add_worksheet(name)
        ws.set_tab_color(TAB_COLORS[_tab(sheet.name)])
        rows = sheet.frame.slice(part * xlsx.SHEET_ROWS, xlsx.SHEET_ROWS)
        write_frame(ws, rows, styles, name=name, highlight=sheet.highlight, links=sheet.links, alerts=sheet.alerts)


def cells(sheets: list[Sheet]) -> int:
    """The data sheets' cells (rows × written columns)."""
    return sum(s.frame.height * len(s.columns) for s in sheets)


def constant_memory(sheets: list[Sheet]) -> bool:
    """Whether the workbook is big enough for ``constant_memory`` mode (``CONSTANT_MEMORY_CELLS``)."""
    return cells(sheets) > CONSTANT_MEMORY_CELLS


@contextmanager
def _os_errors() -> Iterator[None]:
    """xlsxwriter wraps the ``OSError`` of a full disk in ``FileCreateError``: unwrap it, so the
    caller says what could not be written, in one line."""
    try:
        yield
    except xlsxwriter.exceptions.FileCreateError as exc:
        cause = exc.args[0] if exc.args and isinstance(exc.args[0], OSError) else OSError(str(exc))
        raise cause from None


def write_workbook(
    result: AuditResult,
    path: Path,
    summary: dict[str, Any],
    view: LedgerView | None = None,
    signals: dict[str, pl.DataFrame] | None = None,
) -> None:
    """Write the workbook atomically: a temporary file in the same folder, then a rename.

    ``view``: the Ledger and the rows its sheet shows (``report.ledger.view``); summary.json's
    ``ledger`` says the same. ``signals``: the capped sheets' whole tables, if already made."""
    sheets = data_sheets(result, view, signals)
    by_name = {s.name: s for s in sheets}
    options: dict[str, Any] = {
        "strings_to_formulas": False,
        "strings_to_urls": False,
        "strings_to_numbers": False,
        "remove_timezone": True,
        "constant_memory": constant_memory(sheets),
    }
    options["in_memory"] = not options["constant_memory"] and cells(sheets) <= IN_MEMORY_CELLS  # (xlsxwriter: not both)
    with (
        atomic.replacing(path) as tmp,
        atomic.scratch_folder(path) as scratch,  # xlsxwriter's own temporaries: removed even when writing fails
        _os_errors(),
    ):
        options["tmpdir"] = str(scratch)
        with SafeWorkbook(tmp, options) as wb:  # every text through report.text
            period = summary["period"]
            wb.set_properties(
                {
                    "title": "Calo balance audit",
                    "subject": "Wallet balances from balance-sync Lambda logs: roll-forward, checks and Lambda signals",
                    "author": "calo-polars",
                    "company": "Calo",
                    "category": "Finance audit",
                    "keywords": "wallet, balance, audit, roll-forward, reconciliation",
                    "comments": (
                        f"Inputs: {', '.join(summary['inputs'])}; period {period['first']} — {period['last']} (UTC)."
                    ),
                }
            )
            styles = Styles(wb)
            fixed = {}
            for name in FIXED_SHEETS:
                fixed[name] = wb.add_worksheet(name)
                fixed[name].set_tab_color(TAB_COLORS["start"])
            for sheet in sheets:
                write_sheet(wb, sheet, styles)
            write_overview(fixed["Overview"], result, summary, by_name, styles)
            write_readme(fixed["README"], summary, sheets, styles)
            write_glossary(fixed["ColumnDefinitions"], sheets, styles)
            write_charts(wb, fixed["Charts"], by_name, styles)
            fixed["Overview"].activate()
