"""The workbook's Ledger sheet: which transactions it shows, the cap, --full-ledger, the complete
table beside it (ledger.parquet; transactions.parquet with -f parquet) and the links into it; on
a handmade log with known answers.

The log: user A has a wallet of 12 debits whose 6th does not add up (a mismatch: high severity,
needs a person) and a clean second wallet in between; user B has 10 debits where the 3rd starts
again from the 2nd's opening balance (a flow break the Lambda explains: not applied, low); user
E is clean. So the Ledger shows A's 3rd to 9th and B's 1st to 5th transaction: 12 of 30.
"""

from __future__ import annotations

import errno
import json
import threading
import time
from decimal import Decimal
from pathlib import Path
from typing import Any

import duckdb
import openpyxl
import polars as pl
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

from calo_polars import AuditResult, audit
from calo_polars.cli.main import cli
from calo_polars.errors import OutputError
from calo_polars.report import bounded, exports, ledger, outputs, tables
from calo_polars.report.outputs import write_outputs
from tests.logbuilder import Log, full_tx, rid, uid

A, B, E = uid(0xA), uid(0xB), uid(0xE)
HOUR = 3600


def tx_id(n: int) -> str:
    return f"01HR{n:022d}"


def build_log() -> str:
    log = Log()
    request = 0

    def block(at: float, fields: dict[str, Any]) -> None:
        nonlocal request
        request += 1
        log.start(rid(request), at).tx(rid(request), at + 0.01, **fields).end(rid(request), at + 0.5)

    balance = Decimal(100)
    for k in range(1, 13):  # A's wallet: 101..112; the 106th moves 0.5 more than it says
        new = balance - 1 - (Decimal("0.5") if k == 6 else 0)
        block(k * HOUR, full_tx(100 + k, A, balance, new, 1))
        balance = new
    second = '{"walletId":"wallet#second","deliveryId":"d"}'
    for k in range(1, 4):  # A's second wallet, between the first one's rows: 121..123, clean
        block(k * HOUR + 60, full_tx(120 + k, A, 50 - k + 1, 50 - k, 1, metadata=second))
    opening = [200, 199, 199, *range(198, 191, -1)]  # the 3rd starts from the 2nd's opening: not applied
    for k, old in enumerate(opening, start=1):  # B: 201..210
        block(k * HOUR + 120, full_tx(200 + k, B, old, old - 1, 1))
    for k in range(1, 6):  # E: 301..305, clean
        block(k * HOUR + 180, full_tx(300 + k, E, 10 - k + 1, 10 - k, 1))
    return log.text()


SHOWN = [tx_id(n) for n in (*range(103, 110), *range(201, 206))]


@pytest.fixture(scope="module")
def result(tmp_path_factory: pytest.TempPathFactory) -> AuditResult:
    path = tmp_path_factory.mktemp("ledger") / "logs.log"
    path.write_text(build_log(), encoding="utf-8")
    return audit([path])


def rows(ws: Any) -> list[dict[str, Any]]:
    values = list(ws.iter_rows(values_only=True))
    return [dict(zip(values[0], r, strict=True)) for r in values[1:]]


def written(result: AuditResult, out: Path, **kwargs: Any) -> tuple[openpyxl.Workbook, dict[str, Any]]:
    done = write_outputs(result, out, **kwargs)
    assert done.workbook is not None
    return openpyxl.load_workbook(done.workbook), json.loads(done.summary_path.read_text())


def test_the_flags_are_the_ones_the_log_was_built_with(result: AuditResult) -> None:
    got = sorted(result.flags.select("tx_id", "check", "severity", "needs_person").rows())
    assert got == [(tx_id(106), "mismatch", "high", True), (tx_id(202), "flow_break", "low", False)]
    assert result.checked.height == 30


def test_the_ledger_shows_each_flag_with_three_before_and_after_in_its_wallet(result: AuditResult) -> None:
    rows_, shown = ledger.choose(tables.ledger(result), result.flags)
    assert rows_["tx_id"].to_list() == SHOWN  # in Ledger order: by user then time; A's second wallet left out
    assert (shown.rows, shown.of, shown.selected, shown.complete, shown.left_out_rows) == (12, 30, 12, False, 0)


def test_the_selection_works_part_by_part(result: AuditResult) -> None:
    """Parts of whole users, each selected on its own, then put together, give the same rows."""
    full = tables.ledger(result)
    parts = [full.filter(pl.col("user_id") == u) for u in (A, B, E)]
    together = pl.concat([ledger.shown_in_part(p, result.flags) for p in parts])
    assert together.equals(ledger.shown_in_part(full, result.flags))
    assert together[ledger.PRIORITY].to_list() == [0] * 7 + [3] * 5  # A's mismatch needs a person; B's is low


def test_context_counts_rows_of_the_same_wallet_only(result: AuditResult) -> None:
    full = tables.ledger(result)
    assert ledger.shown_in_part(full, result.flags, 0)["tx_id"].to_list() == [tx_id(106), tx_id(202)]
    wide = ledger.shown_in_part(full, result.flags, 10)["tx_id"].to_list()
    assert wide == [tx_id(n) for n in (*range(101, 113), *range(201, 211))]  # never A's second wallet, never E


def test_the_cap_keeps_whole_wallets_by_priority_and_says_what_it_left_out(
    result: AuditResult, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(ledger, "MAX_ROWS", 8)  # room for A's 7 rows; B's 5 do not fit
    wb, summary = written(result, tmp_path / "out")
    assert [r["tx_id"] for r in rows(wb["Ledger"])] == SHOWN[:7]
    assert summary["ledger"] == {
        "rows": 7,
        "of": 30,
        "complete": False,
        "shows": "flagged transactions with context",
        "context": 3,
        "max_rows": 8,
        "selected": 12,
        "left_out_by_cap": {"rows": 5, "flagged_transactions": 1, "priorities": ["low"]},
        "parquet": "ledger.parquet",
    }
    text = ledger.ledger_text(summary["ledger"])
    assert text.startswith("The Ledger shows 7 of 30 transactions: the flagged transactions of every wallet")
    assert "The cap left out 5 of the 12 rows chosen, of which 1 flagged transactions (priority low)" in text
    readme = [r[1] for r in wb["README"].iter_rows(values_only=True) if r[0] == "Ledger"]
    assert readme[0] == text and readme[1].startswith("The flagged transactions with their context (which ones")
    monkeypatch.setattr(ledger, "MAX_ROWS", 6)  # A's wallet does not fit; B's does, whole
    wb, summary = written(result, tmp_path / "out4")
    assert [r["tx_id"] for r in rows(wb["Ledger"])] == SHOWN[7:]
    assert summary["ledger"]["left_out_by_cap"] == {
        "rows": 7,
        "flagged_transactions": 1,
        "priorities": ["needs a person"],
    }


def parquet_rows(path: Path) -> dict[str, dict[str, Any]]:
    """A Parquet file read back by DuckDB, by tx_id."""
    con = duckdb.connect()
    cur = con.execute("SELECT * FROM read_parquet(?)", [str(path)])
    names = [d[0] for d in cur.description]
    return {r[names.index("tx_id")]: dict(zip(names, r, strict=True)) for r in cur.fetchall()}


def ids_in_order(table: Any) -> list[str]:
    return [str(t) for t in table.column("tx_id").to_pylist()]


def same(cell: Any, stored: Any) -> bool:
    """A workbook cell equals the Parquet value: money and counts as numbers, times to the millisecond."""
    if isinstance(stored, Decimal):
        return cell is not None and abs(Decimal(str(cell)) - stored) < Decimal("1e-9")
    if hasattr(stored, "tzinfo"):
        return cell == stored.replace(tzinfo=None)
    if isinstance(stored, bool):
        return cell is stored
    return cell == stored


def test_a_capped_ledger_and_its_parquet_hold_every_transaction_once(result: AuditResult, tmp_path: Path) -> None:
    wb, summary = written(result, tmp_path / "out")
    out = tmp_path / "out"
    assert sorted(p.name for p in out.iterdir()) == ["calo_balance_reports.xlsx", "ledger.parquet", "summary.json"]
    stored = parquet_rows(out / "ledger.parquet")
    table = pq.read_table(out / "ledger.parquet")  # pyarrow too: one row per transaction, each id once
    assert table.column_names == [c.value for c in wb["Ledger"][1]]  # the Ledger's columns, in its order
    assert ids_in_order(table) == result.checked["tx_id"].cast(pl.String).to_list()
    ids = table.column("tx_id").to_pylist()
    assert len(ids) == len(set(ids)) == 30 == summary["ledger"]["of"] == summary["transactions"]
    assert set(ids) == set(result.checked["tx_id"].cast(pl.String).to_list())
    shown = rows(wb["Ledger"])
    assert len(shown) == summary["ledger"]["rows"] == 12
    for row in shown:  # every Ledger row is in the Parquet with the same values, column by column
        theirs = stored[row["tx_id"]]
        wrong = {c: (v, theirs[c]) for c, v in row.items() if not same(v, theirs[c])}
        assert wrong == {}, row["tx_id"]


def test_a_small_ledger_is_made_once_and_written_beside_the_workbook_in_a_thread(
    result: AuditResult, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The Ledger of a small run is made once for the sheet's selection, the balance charts and
    ledger.parquet (``ledger.HELD_ROWS``); ledger.parquet is written in a thread beside the
    workbook (and committed with it: the same files, summary.json last)."""
    made, threads = [], []
    ledger_of, write_ledger_parquet = tables.ledger_of, outputs.write_ledger_parquet

    def counted(*args: Any) -> pl.DataFrame:
        made.append(1)
        return ledger_of(*args)

    def recorded(*args: Any) -> Path:
        threads.append(threading.current_thread())
        return write_ledger_parquet(*args)

    monkeypatch.setattr(tables, "ledger_of", counted)
    monkeypatch.setattr(outputs, "write_ledger_parquet", recorded)
    written_ = write_outputs(result, tmp_path / "out")
    assert len(made) == len(result.parts) == 1
    assert threads and threads[0] is not threading.main_thread()
    assert [p.name for p in written_.paths] == ["calo_balance_reports.xlsx", "ledger.parquet", "summary.json"]
    monkeypatch.setattr(ledger, "HELD_ROWS", 0)  # a bigger run makes it again for each output
    made.clear()
    write_outputs(result, tmp_path / "again")
    assert len(made) == 3
    assert pq.read_table(tmp_path / "again" / "ledger.parquet").equals(
        pq.read_table(tmp_path / "out" / "ledger.parquet")
    )


def test_a_full_disk_beside_the_workbook_fails_the_run_and_leaves_the_outputs_as_they_were(
    result: AuditResult, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """ledger.parquet's thread fails (a full disk): the run says which file, in one line, and
    writes nothing (no staging folder left, the earlier outputs kept); a workbook that fails
    while the thread writes leaves nothing either (the folder is removed once the thread is done)."""
    out = tmp_path / "out"
    write_outputs(result, out)
    before = {p.name: p.read_bytes() for p in out.iterdir()}

    def full(stage: Path, *_: Any) -> Path:
        time.sleep(0.2)  # still writing when the workbook is done
        raise OSError(errno.ENOSPC, "No space left on device", str(stage / "ledger.parquet"))

    monkeypatch.setattr(outputs, "write_ledger_parquet", full)
    with pytest.raises(OutputError, match=r"ledger\.parquet: No space left on device"):
        write_outputs(result, out)
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before

    still_there = []

    def slow(stage: Path, parts: Any) -> Path:
        time.sleep(0.3)
        still_there.append(stage.is_dir())  # not removed under the thread
        return write_ledger_parquet(stage, parts)

    def no_workbook(*_: Any) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    write_ledger_parquet = exports.write_ledger_parquet
    monkeypatch.setattr(outputs, "write_ledger_parquet", slow)
    monkeypatch.setattr(outputs, "write_workbook", no_workbook)
    with pytest.raises(OutputError):
        write_outputs(result, out)
    assert still_there == [True]
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before


#: Sheets whose ids are not links into the Ledger: the Ledger itself, the raw sample, the chart data.
NOT_LINKED = {"Ledger", "SampleRaw", "TopUserBalances"}


def test_links_land_on_their_row_or_are_not_made(result: AuditResult, tmp_path: Path) -> None:
    wb, _ = written(result, tmp_path / "out")
    ledger_ws = wb["Ledger"]
    header = [c.value for c in ledger_ws[1]]
    shown = {r["tx_id"] for r in rows(ledger_ws)}
    linked, plain = 0, set()
    for ws in (w for w in wb.worksheets if w.title not in NOT_LINKED):
        names = [c.value for c in ws[1]]
        for column in ("tx_id", "next_tx_id", "user_id"):
            if column not in names or (column == "user_id" and ws.title != "PerUserSummary"):
                continue  # elsewhere a userId opens PerUserSummary
            for r in range(2, ws.max_row + 1):
                cell = ws.cell(r, names.index(column) + 1)
                if cell.value is None:
                    continue
                if cell.hyperlink is None:
                    plain.add(cell.value)
                    continue
                sheet, ref = cell.hyperlink.location.rsplit("!", 1)
                row = int(ref.lstrip("A"))
                want = "user_id" if column == "user_id" else "tx_id"
                assert sheet.strip("'") == "Ledger" and ledger_ws.cell(row, header.index(want) + 1).value == cell.value
                if column == "user_id":  # the user's first Ledger row
                    assert row == 2 or ledger_ws.cell(row - 1, header.index("user_id") + 1).value != cell.value
                linked += 1
    assert not plain & shown  # an id the Ledger shows is always linked
    assert plain == {E}  # E has no flag, so no Ledger row: plain text
    assert linked >= 4


def test_links_are_not_made_to_rows_the_cap_left_out(
    result: AuditResult, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(ledger, "MAX_ROWS", 8)
    wb, _ = written(result, tmp_path / "out")
    flags = rows(wb["RedFlags"])
    header = [c.value for c in wb["RedFlags"][1]]
    cells = {wb["RedFlags"].cell(r, header.index("tx_id") + 1).value: r for r in range(2, len(flags) + 2)}
    linked = {t: wb["RedFlags"].cell(r, header.index("tx_id") + 1).hyperlink for t, r in cells.items()}
    assert linked[tx_id(106)] is not None and linked[tx_id(202)] is None  # B's flag: its rows were left out
    location = linked[tx_id(106)].location
    ledger_rows = rows(wb["Ledger"])
    assert ledger_rows[int(location.rsplit("!A", 1)[1]) - 2]["tx_id"] == tx_id(106)
    summary_cells = {c.value: c for c in wb["PerUserSummary"]["A"][1:]}
    assert summary_cells[B].hyperlink is None


def test_full_ledger_shows_every_transaction_and_writes_no_parquet(result: AuditResult, tmp_path: Path) -> None:
    wb, summary = written(result, tmp_path / "out", full_ledger=True)
    assert [r["tx_id"] for r in rows(wb["Ledger"])] == result.checked["tx_id"].cast(pl.String).to_list()
    assert summary["ledger"]["complete"] and summary["ledger"]["parquet"] is None
    assert summary["ledger"]["rows"] == summary["ledger"]["of"] == 30
    assert not list((tmp_path / "out").glob("*.parquet"))
    overview = [[c.value for c in row] for row in wb["Overview"].iter_rows()]
    assert not any(r[0] == "Every transaction" for r in overview)
    assert any(r[0] == "Transactions in the Ledger" and r[2].startswith("The Ledger shows every") for r in overview)


def test_overview_and_readme_link_the_parquet_beside_the_workbook(result: AuditResult, tmp_path: Path) -> None:
    wb, summary = written(result, tmp_path / "out")
    for sheet, column in (("Overview", "B"), ("README", "B")):
        ws = wb[sheet]
        label = next(r for r in range(1, ws.max_row + 1) if ws.cell(r, 1).value == "Every transaction")
        cell = ws[f"{column}{label}"]
        assert cell.hyperlink is not None and cell.hyperlink.target == "ledger.parquet"  # relative
        assert cell.value == "ledger.parquet"
        assert (tmp_path / "out" / cell.hyperlink.target).is_file()
    overview = {r[0]: r for r in wb["Overview"].iter_rows(values_only=True) if r[0]}
    assert overview["Transactions in the Ledger"][1] == "12"
    assert overview["Transactions in the Ledger"][2] == ledger.ledger_text(summary["ledger"])
    assert "12 of 30 transactions" in overview["Transactions in the Ledger"][2]


def test_with_format_parquet_the_table_is_written_once(result: AuditResult, tmp_path: Path) -> None:
    done = write_outputs(result, tmp_path / "out", ["xlsx", "parquet"])
    names = [p.name for p in done.paths]  # transactions.parquet holds every Ledger column: no ledger.parquet
    assert names.count("transactions.parquet") == 1 and "ledger.parquet" not in names
    summary = json.loads(done.summary_path.read_text())
    assert summary["ledger"]["parquet"] == "transactions.parquet"
    wb = openpyxl.load_workbook(done.workbook)
    stored = parquet_rows(tmp_path / "out" / "transactions.parquet")
    assert len(stored) == 30
    for row in rows(wb["Ledger"]):  # the same values there too
        assert {c: v for c, v in row.items() if not same(v, stored[row["tx_id"]][c])} == {}


def test_without_a_workbook_there_is_no_ledger(result: AuditResult, tmp_path: Path) -> None:
    done = write_outputs(result, tmp_path / "out", ["json"])
    assert json.loads(done.summary_path.read_text())["ledger"] is None
    assert [p.name for p in done.paths] == ["summary.json"]


def test_the_cli_option(tmp_path: Path) -> None:
    log = tmp_path / "logs.log"
    log.write_text(build_log(), encoding="utf-8")
    runner = CliRunner()
    out = tmp_path / "full"
    done = runner.invoke(cli, ["report", str(log), "-o", str(out), "--full-ledger"])
    assert done.exit_code == 0, done.output
    assert done.stdout.splitlines() == [str(out / "calo_balance_reports.xlsx"), str(out / "summary.json")]
    assert json.loads((out / "summary.json").read_text())["ledger"]["complete"] is True
    out = tmp_path / "default"
    done = runner.invoke(cli, ["report", str(log), "-o", str(out)])
    assert done.exit_code == 0, done.output
    assert str(out / "ledger.parquet") in done.stdout.splitlines()
    help_text = runner.invoke(cli, ["report", "--help"]).output
    section = help_text.split("Input and output:", 1)[1].split("\n\n", 1)[0]
    assert "--full-ledger" in section


# ---------------------------------------------------------------- the other sheets that grow with the input


@pytest.fixture(scope="module")
def sample_result() -> AuditResult:
    from tests.test_sample import SAMPLE

    return audit([SAMPLE])


def test_long_signal_sheets_keep_their_most_telling_rows_and_the_rest_is_in_parquet(
    sample_result: AuditResult, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(bounded, "MAX_ROWS", 5)
    wb, summary = written(sample_result, tmp_path / "out")
    out = tmp_path / "out"
    capped = summary["capped_sheets"]
    assert set(capped) == {"SyncErrors", "NegativePaymentBalance", "OtherNotices"}
    assert capped["SyncErrors"] == {
        "rows": 5,
        "of": summary["not_in_sync_errors"],
        "kept": "the largest differences subscription − payment",
        "parquet": "sync_errors.parquet",
    }
    for sheet, info in capped.items():
        whole = pl.read_parquet(out / info["parquet"])
        shown = rows(wb[sheet])
        assert len(shown) == 5 and whole.height == info["of"] > 5
        if sheet == "SyncErrors":  # the five largest differences, in time order
            biggest = sorted(abs(float(d)) for d in whole["sync_difference"].drop_nulls())[-5:]
            assert sorted(abs(r["sync_difference"]) for r in shown) == pytest.approx(biggest)
            assert [r["ts"] for r in shown] == sorted(r["ts"] for r in shown)
        keys = {(r["file"], r["line_no"], r["user_id"]) for r in whole.iter_rows(named=True)}
        assert all((r["file"], r["line_no"], r["user_id"]) in keys for r in shown)  # each logged line once
        readme = [r[1] for r in wb["README"].iter_rows(values_only=True) if r[0] == sheet and r[1]]
        said = f"{sheet} shows 5 of {info['of']:,} rows"
        assert readme[0].startswith(said) and said in readme[1]  # in Run facts and under Sheets
        overview = wb["Overview"]
        label = next(r for r in range(1, overview.max_row + 1) if overview.cell(r, 1).value == f"{sheet}: every row")
        assert overview.cell(label, 2).hyperlink.target == info["parquet"]
    assert len(rows(wb["RedFlags"])) == len(sample_result.flags) > 5  # flags are never capped


def test_short_signal_sheets_stay_whole(sample_result: AuditResult, tmp_path: Path) -> None:
    wb, summary = written(sample_result, tmp_path / "out")
    assert summary["capped_sheets"] == {}
    assert len(rows(wb["SyncErrors"])) == summary["not_in_sync_errors"]
    assert not list(tmp_path.glob("out/sync_errors.parquet"))
