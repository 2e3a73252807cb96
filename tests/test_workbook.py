"""The workbook on a handmade log with known answers, read back with openpyxl.

One log holds every kind of row the workbook shows: a user whose books do not close (a flow
break, a net-of-VAT payment, a mismatch), a clean user, a user with two wallets, an overdraft
the Lambda also refused, not-in-sync errors, skips, every kind of Lambda error, a cold start,
an incomplete invocation and an EMF metric. Each test checks one sheet against hand-worked
numbers.
"""

from __future__ import annotations

import re
import zipfile
from decimal import Decimal
from pathlib import Path
from typing import Any

import openpyxl
import polars as pl
import pytest

from calo_polars import AuditResult, audit
from calo_polars.parse.records import NOTICE_KINDS
from calo_polars.report.outputs import write_outputs
from calo_polars.report.tables import NOTICE_SHEETS, other_notice
from tests.logbuilder import Log, full_tx, rid, uid

A, B, C, D = uid(0xA), uid(0xB), uid(0xC), uid(0xD)
DAY = 86_400
EMF = (
    '{"_aws":{"Timestamp":1,"CloudWatchMetrics":[{"Namespace":"apiService","Dimensions":[["service"]],'
    '"Metrics":[{"Name":"negativeBalance","Unit":"Count"}]}]},"service":"syncBalanceSQS","negativeBalance":1,'
    f'"userId":"{D}","action":"LEAVING_THE_COUNTRY"}}'
)


def not_in_sync(user: str, subscription: Any, payment: Any) -> str:
    return (
        "Subscription balance and payment balance are not in sync {\n"
        f"  userId: '{user}',\n  subscriptionBalance: {subscription},\n  paymentBalance: {payment}\n}}"
    )


def refusal(user: str, balance: Any, tx_id: str) -> str:
    return (
        "{\n  message: 'Subscriber will have a negative balance due to this action, the process will terminate.',\n"
        f"  data: {{\n    userId: '{user}',\n    currentBalance: {balance},\n    transactionId: '{tx_id}'\n  }}\n}}"
    )


def one(log: Log, request: str, at: float, fields: dict[str, Any], *after: tuple[str, str]) -> Log:
    """An invocation with one transaction, then extra app lines (level, text) before END."""
    log.start(request, at).app(request, at + 0.01, "INFO", f"Processing message {uid(int(at))}").tx(
        request, at + 0.02, **fields
    )
    for i, (level, text) in enumerate(after):
        log.app(request, at + 0.03 + i / 1000, level, text)
    return log.end(request, at + 0.5).report(request, at + 0.5)


def build_log() -> str:
    log = Log()
    # A (BHD): 36 → 31.5; next starts from 36 (4.5 appeared); PAYMENT credit net of VAT; a mismatch
    one(log, rid(1), 0, full_tx(1, A, 36, 31.5, 4.5))
    one(log, rid(2), DAY, full_tx(2, A, 36, 28, 8), ("ERROR", not_in_sync(A, 28, 30)))
    one(
        log,
        rid(3),
        2 * DAY,
        full_tx(3, A, 28, Decimal("37.091"), 10, type_="CREDIT", source="PAYMENT", action="PAY", vat=Decimal("0.909")),
    )
    one(log, rid(4), 3 * DAY, full_tx(4, A, Decimal("37.091"), 29, 8))
    # B (SAR): clean; a not-in-sync error with a negative payment balance no block logged
    one(log, rid(5), 0.5 * DAY, full_tx(5, B, 100, 90, 10, currency="SAR"))
    one(log, rid(6), 1.5 * DAY,
        full_tx(6, B, 90, 95, 5, type_="CREDIT", source="MANUAL_ADDITION", action="GIFT", currency="SAR"),
        ("ERROR", not_in_sync(B, 95, -7)))  # fmt: skip
    # C (BHD): two wallets, each consistent
    wallet2 = '{"walletId":"wallet#second","deliveryId":"d8"}'
    one(log, rid(7), 0.2 * DAY, full_tx(7, C, 10, 5, 5))
    one(
        log,
        rid(8),
        0.3 * DAY,
        full_tx(8, C, 20, 25, 5, type_="CREDIT", source="MANUAL_ADDITION", action="GIFT", metadata=wallet2),
    )
    # D (BHD): an overdraft the Lambda refused, repeated by a not-in-sync error and an EMF metric
    d_tx = full_tx(9, D, 5, -3, 8)
    one(
        log,
        rid(9),
        4 * DAY,
        d_tx,
        ("ERROR", not_in_sync(D, -3, -3)),
        ("INFO", refusal(D, 5, d_tx["id"])),
        ("INFO", refusal(D, 5, "01UNLOGGED")),
    )
    log.raw(4 * DAY + 0.2, EMF)
    # skips, in one invocation
    log.start(rid(10), 5 * DAY)
    for n, action in enumerate(["DONATE_RAMADAN_MEAL", "DONATE_RAMADAN_MEAL", "PURCHASE_ADDONS_FOR_DELIVERY"]):
        log.app(
            rid(10),
            5 * DAY + n,
            "INFO",
            f"Skipping the process, Update Payment Balance Flag is set to false {{ transactionAction: '{action}' }}",
        )
    log.app(rid(10), 5 * DAY + 5, "INFO", "Skipping the process, balance is already synced from other listeners")
    log.end(rid(10), 5 * DAY + 6).report(rid(10), 5 * DAY + 6)
    # Lambda errors of every kind, a cold start and an incomplete invocation
    r = rid(20)
    log.start(r, 6 * DAY).app(r, 6 * DAY + 0.1, "ERROR",
        "An error occured while syncing the balance TypeError: Cannot read properties of null (reading 'getBalance')\n"
        "    at Zi.exec (/src/syncBalance/useCase.ts:55:37)")  # fmt: skip
    log.app(r, 6 * DAY + 0.2, "ERROR",
        'Invoke Error \t{"errorType":"TypeError","errorMessage":"e is not iterable","stack":["TypeError: e is not '
        'iterable","    at lambdaHandler (/src/syncBalance/listener.ts:24:24)"]}')  # fmt: skip
    log.end(r, 6 * DAY + 0.3).report(r, 6 * DAY + 0.3, init_ms=902.78)
    log.app(
        "undefined",
        7 * DAY,
        "ERROR",
        'Uncaught Exception \t{"errorType":"Error","errorMessage":"Cannot find module","stack":["Error: x","    at '
        'load (node:internal/x:1:1)"]}',
    )
    log.raw(
        7 * DAY + 0.1,
        "INIT_REPORT Init Duration: 766.09 ms\tPhase: invoke\tStatus: error\tError Type: Runtime.ExitError",
    )
    log.raw(7 * DAY + 0.2, "Unknown application error occurred\nRuntime.Unknown")
    log.start(rid(21), 8 * DAY).app(rid(21), 8 * DAY + 0.1, "INFO", f"Processing message {uid(99)}")
    log.raw(8 * DAY + 3, f"{rid(21)} Task timed out after 3.00 seconds")
    log.start(rid(22), 9 * DAY)  # never ends
    return log.text()


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> tuple[AuditResult, openpyxl.Workbook, Path]:
    folder = tmp_path_factory.mktemp("workbook")
    path = folder / "logs.log"
    path.write_text(build_log(), encoding="utf-8")
    result = audit([path])
    written = write_outputs(result, folder / "out")
    assert written.workbook is not None  # xlsx is a default format
    return result, openpyxl.load_workbook(written.workbook), written.workbook


def rows(ws: Any) -> list[dict[str, Any]]:
    """A data sheet as dicts keyed by header."""
    values = list(ws.iter_rows(values_only=True))
    return [dict(zip(values[0], r, strict=True)) for r in values[1:]]


def by(ws: Any, column: str, value: Any) -> dict[str, Any]:
    found = [r for r in rows(ws) if r[column] == value]
    assert len(found) == 1, found
    return found[0]


def link(cell: Any) -> tuple[str, int]:
    """The (sheet, row) an internal link points at."""
    sheet, ref = cell.hyperlink.location.rsplit("!", 1)
    return sheet.strip("'"), int(re.sub(r"[A-Z]+", "", ref))


def approx(value: float) -> Any:
    return pytest.approx(value, abs=1e-9)


# ---------------------------------------------------------------- the roll-forward


def test_roll_forward_of_a_user_whose_books_do_not_close(built) -> None:
    _, wb, _ = built
    a = by(wb["PerUserSummary"], "user_id", A)
    # opening 36; credits 10 − 0.909 (net of VAT); debits 4.5 + 8 + 8 (the mismatch counts its gross amount)
    assert (a["opening_balance"], a["credits"], a["debits"]) == (approx(36), approx(9.091), approx(20.5))
    assert (a["expected_closing"], a["closing_balance"]) == (approx(24.591), approx(29))
    # difference 4.409 = the 4.5 that appeared between transactions − the 0.091 the mismatch moved too far
    assert (a["difference"], a["flow_gaps"], a["mismatch_diffs"], a["rounding"]) == (
        approx(4.409),
        approx(4.5),
        approx(-0.091),
        approx(0),
    )
    assert a["unreconciled"] is True
    assert (a["flow_breaks"], a["mismatches"], a["flags"], a["not_in_sync"]) == (1, 1, 2, 1)


def test_clean_user_and_two_wallet_user_close_exactly(built) -> None:
    _, wb, _ = built
    b = by(wb["PerUserSummary"], "user_id", B)
    assert (b["opening_balance"], b["credits"], b["debits"], b["closing_balance"], b["difference"]) == (
        100,
        5,
        10,
        95,
        0,
    )
    assert b["unreconciled"] is False
    c = by(wb["PerUserSummary"], "user_id", C)
    # opening and closing add up both wallets: (10 + 20) → (5 + 25)
    assert (c["wallets"], c["opening_balance"], c["closing_balance"], c["expected_closing"], c["difference"]) == (
        2,
        30,
        30,
        30,
        0,
    )


def test_difference_beyond_tolerance_is_drawn_red(built) -> None:
    _, wb, _ = built
    ws = wb["PerUserSummary"]
    col = [c.value for c in ws[1]].index("difference") + 1
    fills = {ws.cell(r, 1).value: ws.cell(r, col).fill.fgColor.rgb for r in range(2, ws.max_row + 1)}
    assert fills[A] == "FFFFC7CE"
    assert fills[B] != "FFFFC7CE" and fills[C] != "FFFFC7CE"


def test_currency_roll_forward_in_summary_and_overview(built) -> None:
    _, wb, workbook = built
    import json

    data = json.loads((workbook.parent / "summary.json").read_text())
    bhd = data["totals"]["BHD"]["roll_forward"]
    # A and C: opening 36 + 30, closing 29 + 30; only A's difference. D's one block was refused by
    # the Lambda: it never moved the wallet, so it is in no roll-forward (BlockedOverdrafts lists it)
    assert (bhd["opening_balance"], bhd["closing_balance"], bhd["difference"], bhd["unreconciled_users"]) == (
        "66.000",
        "59.000",
        "4.409",
        1,
    )
    assert data["totals"]["SAR"]["roll_forward"]["difference"] == "0.00"
    overview = wb["Overview"]
    texts = [[c.value for c in row] for row in overview.iter_rows()]
    header = next(r for r in texts if r[0] == "currency" and "= expected closing" in r)
    bhd_row = next(r for r in texts[texts.index(header) :] if r[0] == "BHD")
    assert bhd_row[header.index("difference")] == approx(4.409)
    assert bhd_row[header.index("of which flow gaps")] == approx(4.5)


# ---------------------------------------------------------------- drill-down


def test_user_links_open_the_first_ledger_row_and_running_balance_steps(built) -> None:
    _, wb, _ = built
    summary, ledger = wb["PerUserSummary"], wb["Ledger"]
    row = next(r for r in range(2, summary.max_row + 1) if summary.cell(r, 1).value == A)
    sheet, target = link(summary.cell(row, 1))
    assert sheet == "Ledger" and ledger.cell(target, 1).value == A
    assert target == 2 or ledger.cell(target - 1, 1).value != A
    a_rows = [r for r in rows(ledger) if r["user_id"] == A]
    assert [r["tx_id"][-1] for r in a_rows] == ["1", "2", "3", "4"]  # time order
    assert [r["running_balance"] for r in a_rows] == [approx(31.5), approx(23.5), approx(32.591), approx(24.591)]
    assert [r["running_diff"] for r in a_rows] == [approx(0), approx(4.5), approx(4.5), approx(4.409)]
    assert [r["credit"] for r in a_rows] == [None, None, approx(9.091), None]
    assert a_rows[1]["flagged"] is None and a_rows[0]["flagged"] == "flow_break" and a_rows[3]["flagged"] == "mismatch"


def test_two_wallets_each_run_from_their_own_opening(built, tmp_path: Path) -> None:
    result, wb, _ = built
    assert not [r for r in rows(wb["Ledger"]) if r["user_id"] == C]  # no flag: C is not in the default Ledger
    full = write_outputs(result, tmp_path / "full", full_ledger=True).workbook
    assert full is not None
    c_rows = [r for r in rows(openpyxl.load_workbook(full)["Ledger"]) if r["user_id"] == C]
    assert [(r["wallet_id"], r["running_balance"], r["running_diff"]) for r in c_rows] == [
        (f"wallet#{C}", 5, 0),
        ("wallet#second", 25, 0),
    ]


def test_red_flags_link_back_to_the_user_and_the_transaction(built) -> None:
    _, wb, _ = built
    flags = wb["RedFlags"]
    header = [c.value for c in flags[1]]
    for r in range(2, flags.max_row + 1):
        user, tx = flags.cell(r, header.index("user_id") + 1), flags.cell(r, header.index("tx_id") + 1)
        sheet, target = link(user)
        assert sheet == "PerUserSummary" and wb[sheet].cell(target, 1).value == user.value
        sheet, target = link(tx)
        ledger_header = [c.value for c in wb["Ledger"][1]]
        assert sheet == "Ledger" and wb[sheet].cell(target, ledger_header.index("tx_id") + 1).value == tx.value
    reasons = {r["check"]: r["reason"] for r in rows(flags)}
    assert (
        reasons["flow_break"]
        == "newBalance 31.500 but next oldBalance 36.000: the balance rose by 4.500 between the two transactions"
    )
    assert "overdraft" not in reasons  # D's negative block was refused: the wallet never went below zero
    assert [(r["severity"], r["cause"], r["needs_person"]) for r in rows(flags)] == [
        ("high", "unexplained", True),
        ("low", "not_applied", False),  # the next transaction starts from this one's oldBalance
    ]
    blocked = rows(wb["BlockedOverdrafts"])
    refused = next(r for r in blocked if r["in_ledger"])
    assert (refused["user_id"], refused["old_balance"], refused["new_balance"]) == (D, 5, -3)


# ---------------------------------------------------------------- the Lambda's own signals


def test_sync_errors_show_the_difference_and_the_synced_transaction(built) -> None:
    _, wb, _ = built
    got = {r["user_id"]: r for r in rows(wb["SyncErrors"])}
    assert set(got) == {A, B, D}
    assert (got[A]["subscription_balance"], got[A]["payment_balance"], got[A]["sync_difference"]) == (28, 30, -2)
    assert got[A]["tx_id"] == full_tx(2, A, 0, 0, 0)["id"] and got[A]["currency"] == "BHD"
    assert got[B]["sync_difference"] == 102


def test_negative_payment_balances_are_listed_once(built) -> None:
    _, wb, _ = built
    got = sorted((r["user_id"], r["logged_in"], r["payment_balance"]) for r in rows(wb["NegativePaymentBalance"]))
    assert got == sorted([(D, "transaction and not-in-sync error", -3), (B, "not-in-sync error", -7)])


def test_blocked_overdrafts_join_the_refused_transaction_when_logged(built) -> None:
    _, wb, _ = built
    got = {r["transaction_id"]: r for r in rows(wb["BlockedOverdrafts"])}
    logged = got[full_tx(9, D, 0, 0, 0)["id"]]
    assert (logged["in_ledger"], logged["amount"], logged["current_balance"], logged["would_be_balance"]) == (
        True,
        8,
        5,
        -3,
    )
    assert got["01UNLOGGED"]["in_ledger"] is False and got["01UNLOGGED"]["amount"] is None


def test_lambda_errors_have_error_stack_head_and_request(built) -> None:
    _, wb, _ = built
    got = {r["kind"]: r for r in rows(wb["LambdaErrors"])}
    assert set(got) == {"sync_error", "invoke_error", "uncaught_exception", "init_report", "runtime_crash", "timeout"}
    assert got["invoke_error"]["error"] == "TypeError: e is not iterable"
    assert got["invoke_error"]["stack_head"] == "at lambdaHandler (/src/syncBalance/listener.ts:24:24)"
    assert got["invoke_error"]["request_id"] == rid(20)
    assert got["sync_error"]["stack_head"] == "at Zi.exec (/src/syncBalance/useCase.ts:55:37)"
    assert got["uncaught_exception"]["stack_head"] == "at load (node:internal/x:1:1)"
    assert got["timeout"]["request_id"] == rid(21)


def test_skipped_counts_by_reason_and_action(built) -> None:
    _, wb, _ = built
    got = [(r["kind"], r["action"], r["count"]) for r in rows(wb["Skipped"])]
    assert got == [
        ("skip_update_flag_false", "DONATE_RAMADAN_MEAL", 2),
        ("skip_already_synced", None, 1),
        ("skip_update_flag_false", "PURCHASE_ADDONS_FOR_DELIVERY", 1),
    ]
    assert rows(wb["Skipped"])[0]["skip_reason"] == "Skipping the process, Update Payment Balance Flag is set to false"


def test_invocation_health_counts_cold_starts_and_incomplete(built) -> None:
    _, wb, _ = built
    days = rows(wb["Invocations"])
    assert sum(d["invocations"] for d in days) == 13
    assert sum(d["cold_starts"] for d in days) == 1
    assert sum(d["incomplete"] for d in days) == 1 and sum(d["timed_out_invocations"] for d in days) == 1
    issues = {r["request_id"]: r["status"] for r in rows(wb["InvocationIssues"])}
    assert issues[rid(22)] == "incomplete: no END, REPORT" and issues[rid(21)] == "timed out"


def test_every_notice_is_on_exactly_one_sheet(built) -> None:
    result, wb, _ = built
    shown = sum(wb[s].max_row - 1 for s in ("SyncErrors", "BlockedOverdrafts", "LambdaErrors", "OtherNotices"))
    shown += sum(r["count"] for r in rows(wb["Skipped"]))
    assert shown == result.ingested.notices.height == 16
    assert [r["kind"] for r in rows(wb["OtherNotices"])] == ["emf_metric"]


def test_notice_routing_is_a_partition_of_every_kind() -> None:
    frame = pl.DataFrame(
        {"kind": NOTICE_KINDS * 2, "level": ["ERROR"] * len(NOTICE_KINDS) + ["INFO"] * len(NOTICE_KINDS)}
    )
    hits = frame.select(
        pl.sum_horizontal(*[e.cast(pl.Int8) for e in NOTICE_SHEETS.values()], other_notice().cast(pl.Int8))
    )
    assert hits.to_series().to_list() == [1] * frame.height


# ---------------------------------------------------------------- overview, charts, conventions


def test_overview_counts_link_to_sheets_with_that_many_rows(built) -> None:
    _, wb, _ = built
    overview = wb["Overview"]
    checked = 0
    for row in overview.iter_rows():
        label = row[0].value
        for cell in row:
            if not cell.hyperlink:
                continue
            if cell.hyperlink.location is None:  # the one external link: the complete Ledger beside the workbook
                assert (label, cell.hyperlink.target, cell.value) == ("Every transaction", "ledger.parquet",
                                                                      "ledger.parquet")  # fmt: skip
                continue
            sheet, target = link(cell)
            assert sheet in wb.sheetnames and target == 1
            if label in ("overdraft", "mismatch", "flow_break") and cell.column == 3:
                assert int(cell.value.replace(",", "")) == wb[sheet].max_row - 1
                checked += 1
    assert checked == 3
    texts = {row[0].value: [c.value for c in row] for row in overview.iter_rows()}
    assert texts["flow_break"][:4] == ["flow_break", "medium", "1", "1"]
    assert texts["refused"][2] == "1" and texts["unknown"][2] == "8"  # outcomes: D's block, and 8 without a message
    assert texts["Not-in-sync errors"][1:4] == ["SyncErrors", "3", "3"]


def test_charts_are_native_with_their_series(built) -> None:
    _, wb, workbook = built
    with zipfile.ZipFile(workbook) as zf:
        charts = [zf.read(n).decode() for n in sorted(zf.namelist()) if n.startswith("xl/charts/chart")]
    titles = [re.findall(r"<a:t>([^<]*)</a:t>", c)[0] for c in charts]
    assert "Daily credits and debits, BHD" in titles and "Daily credits and debits, SAR" in titles
    assert "Flags per week, by check" in titles and "Lambda signals per week" in titles
    top = [t for t in titles if t.startswith("#")]
    assert top == [f"#1 {A} (BHD, 2 flags)"]  # D's only block was refused: no flag
    weekly = charts[titles.index("Flags per week, by check")]
    assert re.findall(r"<c:f>WeeklySignals!\$([A-Z])\$1</c:f>", weekly) == ["B", "C", "D", "E", "F", "G"]
    balances = rows(wb["TopUserBalances"])
    first = charts[titles.index(top[0])]
    refs = re.findall(r"<c:f>TopUserBalances!\$[A-Z]\$(\d+):\$[A-Z]\$(\d+)</c:f>", first)
    lo, hi = int(refs[0][0]), int(refs[0][1])
    assert {balances[r - 2]["user_id"] for r in range(lo, hi + 1)} == {A} and hi - lo + 1 == 4


def test_conventions_tables_formats_properties(built) -> None:
    _, wb, _ = built
    assert wb.properties.title == "Calo balance audit" and wb.properties.subject
    assert "tbl_RedFlags" in wb["RedFlags"].tables
    summary = wb["PerUserSummary"]
    cols = {c.value: c.column for c in summary[1]}
    a_row = next(r for r in range(2, summary.max_row + 1) if summary.cell(r, 1).value == A)
    b_row = next(r for r in range(2, summary.max_row + 1) if summary.cell(r, 1).value == B)
    assert summary.cell(a_row, cols["closing_balance"]).number_format == "#,##0.000;[Red]-#,##0.000"
    assert summary.cell(b_row, cols["closing_balance"]).number_format == "#,##0.00;[Red]-#,##0.00"
    assert summary.cell(a_row, cols["first_ts"]).number_format == "yyyy-mm-dd hh:mm:ss"
    assert summary.print_title_rows == "$1:$1" and summary.page_setup.orientation == "landscape"
    assert summary.sheet_properties.pageSetUpPr.fitToPage and summary.page_setup.fitToHeight == 0  # one page wide


def test_a_log_without_transactions_still_gives_every_sheet(tmp_path: Path) -> None:
    path = tmp_path / "quiet.log"
    path.write_text(Log().start(rid(1), 0).end(rid(1), 1).report(rid(1), 1).text(), encoding="utf-8")
    written = write_outputs(audit([path]), tmp_path / "out")
    wb = openpyxl.load_workbook(written.workbook)
    assert wb.sheetnames[:4] == ["Overview", "README", "ColumnDefinitions", "Charts"] and "Ledger" in wb.sheetnames
    assert wb["Ledger"].max_row == 1 and wb["PerUserSummary"].max_row <= 2
    assert rows(wb["Invocations"])[0]["invocations"] == 1
