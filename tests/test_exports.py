"""Parquet and CSV exports, read back by other engines (DuckDB, pyarrow, openpyxl for the workbook)."""

from __future__ import annotations

import csv
import json
from decimal import Decimal
from pathlib import Path
from typing import Any

import duckdb
import openpyxl
import polars as pl
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

from calo_polars.cli.main import cli
from calo_polars.report.columns import COLUMNS
from calo_polars.report.exports import TABLES, csv_safe
from tests.logbuilder import Log, full_tx, rid, uid

SAMPLE = Path(__file__).resolve().parents[1] / "examples" / "sample-logs.zip"


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("exports") / "out"
    result = CliRunner().invoke(cli, ["report", str(SAMPLE), "-o", str(out), "--format", "xlsx,parquet,csv"])
    assert result.exit_code == 0, result.output
    return out


def q(sql: str) -> list[tuple[Any, ...]]:
    relation = duckdb.sql(sql)
    assert relation is not None, sql  # None: a statement that returns no rows
    return relation.fetchall()


def test_one_file_per_table_in_each_format(exported: Path) -> None:
    names = sorted(p.name for p in exported.iterdir())
    expected = sorted(
        [f"{t}.{ext}" for t in TABLES for ext in ("parquet", "csv")] + ["calo_balance_reports.xlsx", "summary.json"]
    )
    assert names == expected


def test_parquet_types_are_what_bi_tools_read(exported: Path) -> None:
    types = {name: kind for name, kind, *_ in q(f"describe select * from '{exported / 'transactions.parquet'}'")}
    assert types["amount"] == types["new_balance"] == types["running_balance"] == "DECIMAL(38,6)"
    assert types["ts"] == types["next_ts"] == "TIMESTAMP WITH TIME ZONE"
    assert types["line_no"] == "BIGINT" and types["amount_sign"] == "TINYINT"  # signed, never unsigned
    assert types["overdraft"] == types["flow_break"] == "BOOLEAN" and types["delta_mean"] == "DOUBLE"
    schema = pq.read_schema(exported / "transactions.parquet")
    assert str(schema.field("ts").type) == "timestamp[ms, tz=UTC]"
    assert schema.field("amount").metadata[b"description"].decode() == COLUMNS["amount"].meaning
    assert schema.metadata[b"calo_polars.table"] == b"transactions"
    for table in TABLES:
        for field in pq.read_schema(exported / f"{table}.parquet"):
            assert field.name in COLUMNS, (table, field.name)
            assert not str(field.type).startswith("uint"), (table, field.name, field.type)


def test_parquet_values_agree_with_summary_and_workbook(exported: Path) -> None:
    data = json.loads((exported / "summary.json").read_text())
    tx = exported / "transactions.parquet"
    assert q(f"select count(*), count(distinct user_id) from '{tx}'") == [(data["transactions"], data["users"])]
    per_check = q(
        f"select sum(overdraft::int), sum(mismatch::int), sum(flow_break::int), sum(delta_anomaly::int) from '{tx}'"
    )
    assert per_check == [(data["overdraft_events"], data["mismatches"], data["flow_breaks"], data["delta_anomalies"])]
    totals = q(
        "select currency, sum(amount) filter (where amount_sign < 0), sum(amount) filter (where amount_sign > 0) "
        f"from '{tx}' where applied group by all"  # a refused block moved no money
    )
    for currency, debits, credits in totals:
        decimals = len(data["totals"][currency]["debit_total"].split(".")[1])
        assert f"{debits:.{decimals}f}" == data["totals"][currency]["debit_total"]
        assert f"{credits:.{decimals}f}" == data["totals"][currency]["credit_total"]
    flags = q(f"select count(*) from '{exported / 'flags.parquet'}'")[0][0]
    wb = openpyxl.load_workbook(exported / "calo_balance_reports.xlsx", read_only=True)
    assert flags == wb["RedFlags"].max_row - 1
    sheet = list(wb["PerUserSummary"].iter_rows(values_only=True))
    header = sheet[0]
    in_book = {
        (r[header.index("user_id")], r[header.index("currency")]): Decimal(str(r[header.index("difference")]))
        for r in sheet[1:]
    }
    in_parquet = {
        (u, c): d for u, c, d in q(f"select user_id, currency, difference from '{exported / 'users.parquet'}'")
    }
    assert in_parquet == in_book
    wb.close()


def test_csv_holds_exact_text_and_reads_back_equal_to_parquet(exported: Path) -> None:
    with (exported / "transactions.csv").open(newline="", encoding="utf-8") as f:
        row = next(csv.DictReader(f))
    assert row["amount"].count(".") == 1 and len(row["amount"].split(".")[1]) == 6
    assert row["ts"].endswith("Z") and row["ts"][10] == "T" and len(row["ts"]) == 24
    assert row["overdraft"] in ("true", "false")
    header = (exported / "transactions.csv").read_text(encoding="utf-8").split("\n", 1)[0].split(",")
    money = {c: "DECIMAL(38,6)" for c in header if COLUMNS[c].kind == "money"}
    csv_tx = f"read_csv('{exported / 'transactions.csv'}', header=true, types={money!r})"
    columns = "tx_id, ts, amount, vat, old_balance, new_balance, delta, flow_gap, running_diff, overdraft, flagged"
    assert (
        q(f"select count(*) from {csv_tx}")[0][0]
        == q(f"select count(*) from '{exported / 'transactions.parquet'}'")[0][0]
    )
    assert q(f"select {columns} from {csv_tx} except select {columns} from '{exported / 'transactions.parquet'}'") == []


def test_csv_neutralises_formulas_and_parquet_keeps_the_text(tmp_path: Path) -> None:
    log = Log().invocation(rid(1), 0, full_tx(1, uid(1), 10, -3, 13, action='=HYPERLINK("http://evil","x")'))
    log = log.invocation(rid(2), 60, full_tx(2, uid(1), -3, -5, 2, action="@SUM(A1)"))
    path = tmp_path / "x.log"
    path.write_text(log.text())
    out = tmp_path / "out"
    assert CliRunner().invoke(cli, ["report", str(path), "-o", str(out), "-f", "csv,parquet"]).exit_code == 0
    with (out / "transactions.csv").open(newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    assert [r["action"] for r in rows] == ['\'=HYPERLINK("http://evil","x")', "'@SUM(A1)"]
    assert [r["new_balance"] for r in rows] == ["-3.000000", "-5.000000"]  # numbers are never prefixed
    assert q(f"select action from '{out / 'transactions.parquet'}' order by ts") == [
        ('=HYPERLINK("http://evil","x")',),
        ("@SUM(A1)",),
    ]


def test_every_formula_start_is_prefixed_and_nothing_else() -> None:
    frame = pl.DataFrame({"text": ["=1+2", "+1", "-1", "@A1", "\tx", "\rx", "plain", "1-2", None], "n": [-1] * 9})
    assert csv_safe(frame)["text"].to_list() == ["'=1+2", "'+1", "'-1", "'@A1", "'\tx", "'\rx", "plain", "1-2", None]
    assert csv_safe(frame)["n"].to_list() == [-1] * 9
