"""End to end on the real CloudWatch export, against counts the test makes itself from raw text."""

from __future__ import annotations

import gzip
import json
import re
import zipfile
from collections import Counter, defaultdict
from dataclasses import replace
from decimal import Decimal
from pathlib import Path

import openpyxl
import polars as pl
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

from calo_polars.cli.main import cli
from tests.reference import Tx, reference_flags, reference_roll_forward, tolerance

TS_LINE = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z ", re.M)


@pytest.fixture(scope="module")
def raw_texts(real_archive: Path) -> list[str]:
    with zipfile.ZipFile(real_archive) as zf:
        return [
            gzip.decompress(zf.read(n)).decode("utf-8")
            for n in zf.namelist()
            if n.endswith(".gz") and not n.startswith("__MACOSX/")
        ]


@pytest.fixture(scope="module")
def raw_transactions(raw_texts: list[str]) -> list[Tx]:
    """Every transaction block, read with nothing but re and Decimal; a block whose id a
    refusal ("Subscriber will have a negative balance", with its transactionId) names did not
    move the wallet."""
    refused = {
        m
        for text in raw_texts
        for m in re.findall(r"negative balance due to this action.*?transactionId: '([^']*)'", text, re.S)
    }
    txs = []
    for text in raw_texts:
        for event in re.split(r"\n(?=\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z )", text):
            if "\tStart syncing the balance {" not in event.split("\n", 1)[0]:
                continue
            fields = dict(re.findall(r"^    (\w+): (.*?),?$", event, re.M))
            s = {k: v.strip("'`") for k, v in fields.items()}
            wallet = re.search(r'"walletId":"([^"]*)"', fields.get("metadata", ""))
            txs.append(
                Tx(
                    s["id"],
                    s["userId"],
                    wallet.group(1) if wallet else f"wallet#{s['userId']}",
                    event[:24],
                    s.get("type"),
                    s["currency"],
                    Decimal(s["amount"]),
                    Decimal(s["vat"]),
                    Decimal(s["oldBalance"]),
                    Decimal(s["newBalance"]),
                    s["id"] not in refused,
                )
            )
    return txs


@pytest.fixture(scope="module")
def report_dir(real_archive: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("report")
    result = CliRunner().invoke(cli, ["report", str(real_archive), "-o", str(out)])
    assert result.exit_code == 0, result.output
    return out


def test_event_and_invocation_counts_match_the_raw_text(real_result, raw_texts: list[str]) -> None:
    text = "".join(raw_texts)
    ing = real_result.ingested
    assert len(ing.files) == len(raw_texts) == 1672
    assert ing.events == len(TS_LINE.findall(text)) == 82_259
    assert ing.unparsed.height == 0
    assert ing.invocations.filter(pl.col("request_id") != "undefined").height == len(
        set(re.findall(r" START RequestId: (\S+)", text))
    )
    assert ing.kind_counts["not_in_sync"] == text.count("\tSubscription balance and payment balance are not in sync {")
    assert ing.kind_counts["blocked_overdraft"] == text.count(
        "Subscriber will have a negative balance due to this action"
    )
    assert ing.kind_counts["processing_message"] == text.count("\tINFO\tProcessing message ")


def test_transactions_match_an_independent_parse(real_result, raw_transactions: list[Tx]) -> None:
    tx = real_result.transactions
    assert tx.height == len(raw_transactions) == 16_300
    assert tx["user_id"].n_unique() == len({t.user_id for t in raw_transactions})
    assert Counter(tx["layout"].to_list()) == {"full": 14_527, "legacy": 1_773}
    mine = {r["tx_id"]: (r["amount"], r["vat"], r["old_balance"], r["new_balance"]) for r in tx.iter_rows(named=True)}
    theirs = {
        t.tx_id: tuple(x.quantize(Decimal("0.000001")) for x in (t.amount, t.vat, t.old, t.new))
        for t in raw_transactions
    }
    assert mine == theirs


def test_checks_match_the_plain_python_reference(real_result, raw_transactions: list[Tx]) -> None:
    tx = real_result.transactions
    expected = reference_flags(raw_transactions)
    assert set(tx.filter("mismatch")["tx_id"]) == expected.mismatch
    assert set(tx.filter("overdraft")["tx_id"]) == expected.overdraft
    assert set(tx.filter("flow_break")["tx_id"]) == set(expected.flow_break)
    assert set(tx.filter("delta_anomaly")["tx_id"]) == expected.anomaly
    # what the archive holds: all 8 blocks below zero were refused, so no applied overdraft, and
    # the 8 flow breaks around them are gone (504 as logged, 496 between applied transactions)
    assert (len(expected.mismatch), len(expected.overdraft), len(expected.flow_break)) == (5, 0, 496)
    assert sum(not t.applied for t in raw_transactions) == 8


def test_summary_json_holds_the_counts_and_exact_totals(report_dir: Path, raw_transactions: list[Tx]) -> None:
    data = json.loads((report_dir / "summary.json").read_text())
    assert data["files"] == 1672 and data["events"] == 82_259 and data["transactions"] == 16_300
    assert data["unparsed_events"] == 0 and data["input_problems"] == 0 and data["input_problem_kinds"] == {}
    assert data["duplicate_transactions"] == 0 and data["settings"]["personal_data"] == "masked"
    assert data["not_in_sync_errors"] == 4_361
    debits: defaultdict[str, Decimal] = defaultdict(Decimal)
    for t in raw_transactions:
        sign = -1 if t.type == "DEBIT" else 1 if t.type == "CREDIT" else (1 if t.new > t.old else -1)
        if sign < 0 and t.applied:  # a refused debit never left the wallet
            debits[t.currency] += t.amount
    for currency, total in debits.items():
        places = Decimal("0.001") if currency in ("BHD", "KWD") else Decimal("0.01")
        assert data["totals"][currency]["debit_total"] == str(total.quantize(places))
    assert set(data["totals"]) == {"AED", "BHD", "KWD", "QAR", "SAR"}


@pytest.fixture(scope="module")
def workbook(report_dir: Path) -> openpyxl.Workbook:
    return openpyxl.load_workbook(report_dir / "calo_balance_reports.xlsx")


def sheet_rows(ws) -> list[dict]:
    values = list(ws.iter_rows(values_only=True))
    return [dict(zip(values[0], r, strict=True)) for r in values[1:]]


def link_target(cell) -> tuple[str, int]:
    sheet, ref = cell.hyperlink.location.rsplit("!", 1)
    return sheet.strip("'"), int(re.sub(r"[A-Z$]+", "", ref))


def test_workbook_reads_back_with_sheets_headers_panes_and_formats(workbook) -> None:
    wb = workbook
    assert wb.sheetnames == [
        "Overview", "README", "ColumnDefinitions", "Charts",
        "PerUserSummary", "RedFlags", "OverdraftEvents", "MismatchEvents", "FlowBreaks", "Anomalies",
        "NegativeAmounts", "CurrencyChanges",
        "SyncErrors", "BlockedOverdrafts", "NegativePaymentBalance", "LambdaErrors", "Skipped",
        "Invocations", "InvocationIssues", "OtherNotices", "DuplicateEvents",
        "Ledger", "DailyTotals", "WeeklySignals", "TopUserBalances",
        "EventKinds", "UnparsedEvents", "InputProblems", "SampleRaw",
    ]  # fmt: skip
    flags = wb["RedFlags"]
    header = [c.value for c in flags[1]]
    assert header[:5] == ["severity", "needs_person", "check", "cause", "what_happened"] and "reason" in header
    assert flags.freeze_panes == "A2"
    assert flags.tables["tbl_RedFlags"].ref.startswith("A1:")  # small sheets are Excel tables
    shown = sum(1 for _ in wb["Ledger"].iter_rows(min_row=2))  # the flagged transactions with context: a table
    assert 0 < shown < 16_300 and wb["Ledger"].tables["tbl_Ledger"].ref == f"A1:Y{shown + 1}"
    # mismatches, overdrafts (all 8 refused: none applied), flow breaks, anomalies, negative amounts
    assert flags.max_row - 1 == 5 + 0 + 496 + 186 + 6
    assert flags.conditional_formatting  # severity and flag highlighting
    # a BHD money cell shows 3 decimals, negatives red; timestamps are real datetimes
    breaks = wb["FlowBreaks"]
    cols = {c.value: i for i, c in enumerate(breaks[1], start=1)}
    bhd_row = next(r for r in range(2, breaks.max_row + 1) if breaks.cell(r, cols["currency"]).value == "BHD")
    money = breaks.cell(bhd_row, cols["new_balance"])
    assert money.number_format == "#,##0.000;[Red]-#,##0.000" and isinstance(money.value, float)
    assert breaks.cell(bhd_row, cols["ts"]).is_date
    sample = wb["SampleRaw"]
    assert sample.max_row == 201
    assert sample.cell(2, [c.value for c in sample[1]].index("raw") + 1).value.count("\n") >= 10
    glossary = {r[0].value for r in wb["ColumnDefinitions"].iter_rows(min_row=2)}
    used = {c.value for ws in wb.worksheets[4:] for c in ws[1]}
    assert used <= glossary
    assert wb.properties.title == "Calo balance audit" and "roll-forward" in wb.properties.subject


COUNTED_ROWS = {
    "overdraft", "mismatch", "flow_break", "delta_anomaly", "All flags, most severe first", "Not-in-sync errors",
    "Blocked overdrafts", "Negative payment balances", "Lambda errors", "Skipped messages", "Other notices",
}  # fmt: skip


def test_overview_counts_link_to_the_sheets_that_hold_them(workbook) -> None:
    wb = workbook
    links = 0
    for row in wb["Overview"].iter_rows():
        label = row[0].value
        for cell in row:
            if not cell.hyperlink:
                continue
            if cell.hyperlink.location is None:  # the complete Ledger beside the workbook, a relative link
                assert (label, cell.hyperlink.target) == ("Every transaction", "ledger.parquet")
                continue
            links += 1
            sheet, target = link_target(cell)
            assert sheet in wb.sheetnames and target == 1, cell.coordinate
            if cell.column not in (3, 4) or label not in COUNTED_ROWS:
                continue
            data = sheet_rows(wb[sheet])
            count = int(cell.value.replace(",", ""))
            if cell.column == 3:  # events: that many rows (skips: the sum of their counts)
                assert count == (sum(r["count"] for r in data) if sheet == "Skipped" else len(data)), label
            elif data and "user_id" in data[0]:  # users: that many distinct users on the sheet
                assert count == len({r["user_id"] for r in data if r["user_id"]}), label
    assert links >= 30
    texts = {r[0].value: [c.value for c in r] for r in wb["Overview"].iter_rows()}
    assert texts["flow_break"][:4] == ["flow_break", "medium", "496", "198"]
    assert texts["overdraft"][2] == "0" and texts["refused"][2] == "8"  # the 8 refused blocks never moved a wallet
    assert texts["Not-in-sync errors"][1:3] == ["SyncErrors", "4,361"]
    assert texts["Transactions"][1] == "16,300" and texts["Users"][1] == "784"


def test_roll_forward_closes_for_every_clean_user_and_explains_every_difference(
    workbook, raw_transactions: list[Tx]
) -> None:
    wb = workbook
    every = {r["user_id"]: r for r in sheet_rows(wb["PerUserSummary"])}
    # users with a Lambda signal but no applied transaction are listed too, with no books
    only_signals = {u for u, r in every.items() if r["transactions"] == 0}
    assert len(only_signals) == 2 and all(every[u]["blocked_overdrafts"] > 0 for u in only_signals)
    users = {u: r for u, r in every.items() if u not in only_signals}
    # the tool keeps 6 decimals of every logged number (float noise beyond them is dropped)
    q = Decimal("0.000001")
    expected = reference_roll_forward(
        [
            replace(t, amount=t.amount.quantize(q), vat=t.vat.quantize(q), old=t.old.quantize(q), new=t.new.quantize(q))
            for t in raw_transactions
        ]
    )
    assert set(users) == set(expected) and len(users) == 784
    gaps: Counter[str] = Counter()
    for r in sheet_rows(wb["FlowBreaks"]):
        gaps[r["user_id"]] += r["flow_gap"]
    diffs: Counter[str] = Counter()
    for r in sheet_rows(wb["MismatchEvents"]):
        diffs[r["user_id"]] += r["mismatch_diff"]
    clean = 0
    for user, u in users.items():
        rf = expected[user]
        # the workbook's roll-forward is the plain-Python one, from an independent parse
        for got, want in (
            (u["opening_balance"], rf.opening),
            (u["credits"], rf.credits),
            (u["debits"], rf.debits),
            (u["closing_balance"], rf.closing),
        ):
            assert got == pytest.approx(float(want), abs=1e-6), user
        assert u["expected_closing"] == pytest.approx(u["opening_balance"] + u["credits"] - u["debits"], abs=1e-6)
        assert u["difference"] == pytest.approx(u["closing_balance"] - u["expected_closing"], abs=1e-6)
        # every difference is explained: flow gaps (FlowBreaks) + mismatches (MismatchEvents) + rounding
        assert u["flow_gaps"] == pytest.approx(gaps[user], abs=1e-6) == pytest.approx(float(rf.flow_gaps), abs=1e-6)
        assert u["mismatch_diffs"] == pytest.approx(diffs[user], abs=1e-6)
        assert u["difference"] == pytest.approx(u["flow_gaps"] + u["mismatch_diffs"] + u["rounding"], abs=1e-6)
        assert abs(u["rounding"]) <= 2 * rf.transactions * float(tolerance(u["currency"])) + 1e-9
        if u["flow_breaks"] == 0 and u["mismatches"] == 0:
            clean += 1
            assert u["difference"] == 0 and u["expected_closing"] == u["closing_balance"], user
            assert u["unreconciled"] is False
    flagged = set(reference_flags(raw_transactions).flow_break) | reference_flags(raw_transactions).mismatch
    assert clean == len(users) - len({t.user_id for t in raw_transactions if t.tx_id in flagged})


def test_user_links_open_their_ledger_rows_and_the_ledger_ends_at_the_difference(workbook, report_dir: Path) -> None:
    """The Ledger shows the flagged users' rows; the complete Ledger (ledger.parquet, read
    by pyarrow) holds all 16,300, each wallet ending at the user's roll-forward difference."""
    wb = workbook
    summary, ledger = wb["PerUserSummary"], wb["Ledger"]
    rows = sheet_rows(ledger)
    every = pq.read_table(report_dir / "ledger.parquet").to_pylist()
    assert len(every) == len({r["tx_id"] for r in every}) == 16_300
    assert {r["tx_id"] for r in rows} <= {r["tx_id"] for r in every}
    last: dict[str, dict] = {}
    for r in every:
        if r["outcome"] != "refused":  # a refused block has no running balance: it did not move the wallet
            last[r["user_id"]] = r
    shown = {r["user_id"] for r in rows}
    differences = {r["user_id"]: r["difference"] for r in sheet_rows(summary)}
    for i in range(2, summary.max_row + 1):
        cell = summary.cell(i, 1)
        if cell.value not in shown:  # no flag (or signals only): no Ledger row to open
            assert cell.hyperlink is None
            continue
        sheet, target = link_target(cell)
        assert sheet == "Ledger" and rows[target - 2]["user_id"] == cell.value
        assert target == 2 or rows[target - 3]["user_id"] != cell.value  # the user's first row
    for user, row in last.items():  # one wallet each in this archive: the last running_diff is the difference
        assert float(row["running_diff"]) == pytest.approx(differences[user], abs=1e-6)
    assert [(r["user_id"], r["ts"], r["tx_id"]) for r in rows] == sorted(
        (r["user_id"], r["ts"], r["tx_id"]) for r in rows
    )


def test_charts_are_native_and_read_the_right_rows(workbook, report_dir: Path) -> None:
    with zipfile.ZipFile(report_dir / "calo_balance_reports.xlsx") as zf:
        charts = [zf.read(n).decode() for n in zf.namelist() if n.startswith("xl/charts/chart")]
    titles = {re.findall(r"<a:t>([^<]*)</a:t>", c)[0]: c for c in charts}
    currencies = ["AED", "BHD", "KWD", "QAR", "SAR"]
    assert len(charts) == len(currencies) + 2 + 10
    daily = sheet_rows(workbook["DailyTotals"])
    for cur in currencies:
        chart = titles[f"Daily credits and debits, {cur}"]
        series = re.findall(r"<c:val><c:numRef><c:f>DailyTotals!\$([A-Z])\$(\d+):\$[A-Z]\$(\d+)</c:f>", chart)
        assert [s[0] for s in series] == ["D", "E"]  # credits, debits
        lo, hi = int(series[0][1]), int(series[0][2])
        assert {daily[i - 2]["currency"] for i in range(lo, hi + 1)} == {cur}
        assert hi - lo + 1 == sum(1 for r in daily if r["currency"] == cur)
    top = [t for t in titles if t.startswith("#")]
    assert len(top) == 10 and top[0].startswith("#1 ")
    weekly = titles["Flags per week, by check"]
    assert len(re.findall(r"<c:ser>", weekly)) == 6  # one series per check
