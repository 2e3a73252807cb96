"""End to end on the real CloudWatch export, against counts the test makes itself from raw text."""

from __future__ import annotations

import gzip
import json
import re
import zipfile
from collections import Counter
from decimal import Decimal
from pathlib import Path

import openpyxl
import polars as pl
import pytest
from click.testing import CliRunner

from calo_polars.cli import cli
from tests.reference import Tx, reference_flags

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
    """Every transaction block, read with nothing but re and Decimal."""
    txs = []
    for text in raw_texts:
        for event in re.split(r"\n(?=\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z )", text):
            if "\tStart syncing the balance {" not in event.split("\n", 1)[0]:
                continue
            fields = dict(re.findall(r"^    (\w+): (.*?),?$", event, re.M))
            s = {k: v.strip("'`") for k, v in fields.items()}
            wallet = re.search(r'"walletId":"([^"]*)"', fields.get("metadata", ""))
            txs.append(
                Tx(s["id"], s["userId"], wallet.group(1) if wallet else f"wallet#{s['userId']}", event[:24], s.get("type"),
                   s["currency"], Decimal(s["amount"]), Decimal(s["vat"]), Decimal(s["oldBalance"]), Decimal(s["newBalance"]))
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
    assert ing.invocations.filter(pl.col("request_id") != "undefined").height == len(set(re.findall(r" START RequestId: (\S+)", text)))
    assert ing.kind_counts["not_in_sync"] == text.count("\tSubscription balance and payment balance are not in sync {")
    assert ing.kind_counts["blocked_overdraft"] == text.count("Subscriber will have a negative balance due to this action")
    assert ing.kind_counts["processing_message"] == text.count("\tINFO\tProcessing message ")


def test_transactions_match_an_independent_parse(real_result, raw_transactions: list[Tx]) -> None:
    tx = real_result.transactions
    assert tx.height == len(raw_transactions) == 16_300
    assert tx["user_id"].n_unique() == len({t.user_id for t in raw_transactions})
    assert Counter(tx["layout"].to_list()) == {"full": 14_527, "legacy": 1_773}
    mine = {r["tx_id"]: (r["amount"], r["vat"], r["old_balance"], r["new_balance"]) for r in tx.iter_rows(named=True)}
    theirs = {t.tx_id: tuple(x.quantize(Decimal("0.000001")) for x in (t.amount, t.vat, t.old, t.new)) for t in raw_transactions}
    assert mine == theirs


def test_checks_match_the_plain_python_reference(real_result, raw_transactions: list[Tx]) -> None:
    tx = real_result.transactions
    expected = reference_flags(raw_transactions)
    assert set(tx.filter("mismatch")["tx_id"]) == expected.mismatch
    assert set(tx.filter("overdraft")["tx_id"]) == expected.overdraft
    assert set(tx.filter("flow_break")["tx_id"]) == set(expected.flow_break)
    assert set(tx.filter("delta_anomaly")["tx_id"]) == expected.anomaly
    # what the archive holds, as measured when the tool was written
    assert (len(expected.mismatch), len(expected.overdraft), len(expected.flow_break)) == (5, 8, 504)


def test_summary_json_holds_the_counts_and_exact_totals(report_dir: Path, raw_transactions: list[Tx]) -> None:
    data = json.loads((report_dir / "summary.json").read_text())
    assert data["files"] == 1672 and data["events"] == 82_259 and data["transactions"] == 16_300
    assert data["unparsed_events"] == 0 and data["input_problems"] == 0 and data["input_problem_kinds"] == {}
    assert data["duplicate_transactions"] == 0 and data["settings"]["personal_data"] == "masked"
    assert data["not_in_sync_errors"] == 4_361
    debits: Counter[str] = Counter()
    for t in raw_transactions:
        sign = -1 if t.type == "DEBIT" else 1 if t.type == "CREDIT" else (1 if t.new > t.old else -1)
        if sign < 0:
            debits[t.currency] += t.amount
    for currency, total in debits.items():
        places = Decimal("0.001") if currency in ("BHD", "KWD") else Decimal("0.01")
        assert data["totals"][currency]["debit_total"] == str(total.quantize(places))
    assert set(data["totals"]) == {"AED", "BHD", "KWD", "QAR", "SAR"}


def test_workbook_reads_back_with_sheets_headers_panes_and_formats(report_dir: Path) -> None:
    wb = openpyxl.load_workbook(report_dir / "calo_balance_reports.xlsx")
    assert wb.sheetnames[:10] == [
        "README", "ColumnDefinitions", "PerUserSummary", "RedFlags", "OverdraftEvents",
        "MismatchEvents", "FlowBreaks", "Anomalies", "Notices", "Invocations",
    ]  # fmt: skip
    assert "SampleRaw" in wb.sheetnames
    flags = wb["RedFlags"]
    header = [c.value for c in flags[1]]
    assert header[:3] == ["severity", "check", "user_id"] and "reason" in header
    assert flags.freeze_panes == "A2"
    assert flags.auto_filter.ref is not None and flags.auto_filter.ref.startswith("A1:")
    assert flags.max_row - 1 == 5 + 8 + 504 + 284
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
    used = {c.value for ws in wb.worksheets[2:] for c in ws[1]}
    assert used <= glossary
