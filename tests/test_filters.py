"""Selections (--since/--until/--user/--currency): a selection never changes a flag, and each
period's roll-forward closes on its own."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import polars as pl
import pytest
from click.testing import CliRunner

from calo_polars import AuditOptions, AuditResult, audit
from calo_polars.audit.filters import apply
from calo_polars.audit.selection import Selection, parse_moment
from calo_polars.cli.main import cli
from tests.logbuilder import Log, full_tx, rid, uid, write_zip

SAMPLE = Path(__file__).resolve().parents[1] / "examples" / "sample-logs.zip"
FEB = datetime(2024, 2, 1, tzinfo=UTC)


@pytest.fixture(scope="module")
def full() -> AuditResult:
    return audit([SAMPLE])


def flag_keys(result: AuditResult) -> set[tuple[str, str]]:
    return set(result.flags.select("tx_id", "check").iter_rows())


def test_dates_and_times_parse_to_utc() -> None:
    assert parse_moment("2024-01-31") == datetime(2024, 1, 31, tzinfo=UTC)
    assert parse_moment("2024-01-31", end_of_day=True) == datetime(2024, 1, 31, 23, 59, 59, 999000, tzinfo=UTC)
    assert parse_moment("2024-01-31T18:30") == datetime(2024, 1, 31, 18, 30, tzinfo=UTC)
    assert parse_moment("2024-01-31 21:30:00+03:00", end_of_day=True) == datetime(2024, 1, 31, 18, 30, tzinfo=UTC)
    assert parse_moment("2024-01-31T18:30:00Z") == datetime(2024, 1, 31, 18, 30, tzinfo=UTC)
    with pytest.raises(ValueError, match="use 2024-01-31"):
        parse_moment("last tuesday")
    with pytest.raises(ValueError, match="is after --until"):
        Selection(since=FEB, until=datetime(2024, 1, 1, tzinfo=UTC))


@pytest.mark.parametrize(
    "selection",
    [
        Selection(since=datetime(2024, 1, 10, tzinfo=UTC), until=parse_moment("2024-01-24", end_of_day=True)),
        Selection(since=FEB),
        Selection(until=parse_moment("2024-01-15", end_of_day=True), currencies=("SAR",)),
    ],
    ids=["middle", "since", "until+currency"],
)
def test_a_selection_never_changes_a_flag_and_its_books_close(full: AuditResult, selection: Selection) -> None:
    chosen = apply(full, selection)
    kept = full.transactions.filter(selection.in_period() & selection.of_who())
    assert 0 < chosen.transactions.height == kept.height < full.transactions.height
    in_full = {k for k in flag_keys(full) if k[0] in set(kept["tx_id"])}
    assert flag_keys(chosen) == in_full and in_full  # the same flags on the same transactions
    assert audit([SAMPLE], AuditOptions(selection=selection)).flags.equals(chosen.flags)
    users = chosen.users
    assert users["transactions"].sum() == kept.filter(pl.col("applied")).height  # refused blocks are not in the books
    identity = users.filter(pl.col("difference") != pl.col("flow_gaps") + pl.col("mismatch_diffs") + pl.col("rounding"))
    assert identity.is_empty()
    assert (
        users["rounding"].abs() <= users["transactions"].cast(pl.Decimal(38, 6)) * Decimal("0.01")
    ).all()  # 2 × tolerance per row
    assert (
        chosen.ingested.notices["ts"]
        .is_between(
            selection.since or datetime.min.replace(tzinfo=UTC), selection.until or datetime.max.replace(tzinfo=UTC)
        )
        .all()
    )


def test_adjacent_periods_add_up_to_the_whole(full: AuditResult) -> None:
    before = apply(full, Selection(until=parse_moment("2024-01-31", end_of_day=True)))
    after = apply(full, Selection(since=FEB))
    key = ["user_id", "currency"]
    parts = (
        pl.concat([before.users, after.users])
        .group_by(key)
        .agg(pl.col("credits", "debits", "transactions").sum())
        .sort(key)
    )
    whole = full.users.select(*key, "credits", "debits", "transactions").sort(key)
    assert parts.equals(whole)
    assert before.flags.height + after.flags.height == full.flags.height


def boundary_archive(tmp_path: Path) -> Path:
    """User 1: 36 → 31.5 on Feb 10, then 36 → 28 on Feb 11 (4.5 appeared between: a flow break on the first)."""
    logs = {
        "2024-02-10-[$LATEST]a": Log().invocation(rid(1), 0, full_tx(1, uid(1), 36, 31.5, 4.5)).gz(),
        "2024-02-11-[$LATEST]b": Log().invocation(rid(2), 86400, full_tx(2, uid(1), 36, 28, 8)).gz(),
        "2024-02-11-[$LATEST]c": Log().invocation(rid(3), 86400 + 60, full_tx(3, uid(2), 5, -3, 8)).gz(),
    }
    return write_zip(tmp_path / "logs.zip", logs)


def report(tmp_path: Path, *args: str) -> tuple[int, dict, str]:
    out = tmp_path / "out"
    result = CliRunner().invoke(
        cli, ["report", str(boundary_archive(tmp_path)), "-o", str(out), "-f", "json,csv", *args]
    )
    data = json.loads((out / "summary.json").read_text()) if result.exit_code != 2 else {}
    return result.exit_code, data, result.stderr


def test_a_flow_break_at_the_end_of_the_period_is_listed_but_its_gap_is_the_next_periods(tmp_path: Path) -> None:
    code, data, _ = report(tmp_path, "--until", "2024-02-10")
    assert code == 0 and data["transactions"] == 1 and data["flow_breaks"] == 1
    assert data["selection"] == {"until": "2024-02-10T23:59:59.999Z"}
    roll = data["totals"]["BHD"]["roll_forward"]
    assert (roll["opening_balance"], roll["closing_balance"], roll["difference"], roll["flow_gaps"]) == (
        "36.000",
        "31.500",
        "0.000",
        "0.000",
    )
    users = pl.read_csv(tmp_path / "out" / "users.csv")
    assert users.select("flow_breaks", "flow_gaps").rows() == [(1, 0.0)]
    code, data, _ = report(tmp_path, "--since", "2024-02-11", "--user", uid(1))
    assert code == 0 and data["transactions"] == 1 and data["flow_breaks"] == 0 and data["overdraft_events"] == 0
    assert data["totals"]["BHD"]["roll_forward"]["opening_balance"] == "36.000"


def test_user_and_currency_choose_rows_and_signals(tmp_path: Path) -> None:
    code, data, _ = report(tmp_path, "--user", uid(2))
    assert code == 0 and (data["transactions"], data["users"], data["overdraft_events"], data["flow_breaks"]) == (
        1,
        1,
        1,
        0,
    )
    assert data["invocations"] == 1 and data["files"] == 3  # input facts stay whole
    code, data, _ = report(tmp_path, "--currency", "sar")
    assert (
        code == 0
        and data["transactions"] == 0
        and data["totals"] == {}
        and data["selection"] == {"currencies": ["SAR"]}
    )


def test_bad_selections_are_usage_errors(tmp_path: Path) -> None:
    code, _, err = report(tmp_path, "--since", "2024-03-01", "--until", "2024-02-01")
    assert code == 2 and "--since (2024-03-01T00:00:00.000Z) is after --until" in err
    code, _, err = report(tmp_path, "--since", "yesterday")
    assert code == 2 and "use 2024-01-31" in err


def test_empty_selection_still_writes_every_output(tmp_path: Path) -> None:
    out = tmp_path / "out"
    result = CliRunner().invoke(
        cli, ["report", str(boundary_archive(tmp_path)), "-o", str(out), "-f", "xlsx,parquet,csv", "--user", "nobody"]
    )
    assert result.exit_code == 0, result.output
    assert json.loads((out / "summary.json").read_text())["transactions"] == 0
    assert (
        pl.read_parquet(out / "transactions.parquet").height == 0
        and (out / "calo_balance_reports.xlsx").stat().st_size > 0
    )
