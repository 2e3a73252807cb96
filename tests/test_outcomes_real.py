"""Issue 12 on the real archive: what the Lambda did with each transaction, against an
independent count of the raw text (tests/reference_outcomes.py), per transaction id.

The definitions are ../issues-text/OUTCOMES-SPEC.md; the measured numbers asserted at the end
are the spec's (published 15,803, already_synced 489, refused 8; 0 overdrafts; 496 flow breaks).
"""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from decimal import Decimal
from pathlib import Path

import openpyxl
import polars as pl
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

from calo_polars.checks.registry import CHECKS
from calo_polars.cli.main import cli
from tests.reference import Tx, reference_roll_forward
from tests.reference_outcomes import CAUSES, OUTCOMES, Reference, archive_texts, reference

FLAG_FIELDS = ["cause", "what_happened", "needs_person", "outcome", "request_id"]


@pytest.fixture(scope="module")
def ref(real_archive: Path) -> Reference:
    return reference(archive_texts(real_archive))


@pytest.fixture(scope="module")
def tx(real_result) -> pl.DataFrame:
    return real_result.transactions


@pytest.fixture(scope="module")
def report_dir(real_archive: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("outcomes-report")
    result = CliRunner().invoke(cli, ["report", str(real_archive), "-o", str(out), "--format", "xlsx,parquet,json"])
    assert result.exit_code == 0, result.output
    return out


@pytest.fixture(scope="module")
def summary(report_dir: Path) -> dict:
    return json.loads((report_dir / "summary.json").read_text())


@pytest.fixture(scope="module")
def workbook(report_dir: Path) -> openpyxl.Workbook:
    return openpyxl.load_workbook(report_dir / "calo_balance_reports.xlsx", read_only=True)


def flags_of(result, check: str) -> pl.DataFrame:
    return result.flags.filter(pl.col("check") == check)


def count_key(check: str) -> str:
    """summary.json's key for a check's count (from the registry, so a rename does not hide it)."""
    return next(c.count_key for c in CHECKS if c.name == check)


def money(b) -> tuple[Decimal, ...]:
    return b.amount, b.vat, b.old, b.new


def diff(mine: dict, theirs: dict, limit: int = 10) -> list:
    """The first keys on which the tool and the reference disagree, with both values."""
    keys = sorted(set(mine) | set(theirs))
    return [(k, mine.get(k), theirs.get(k)) for k in keys if mine.get(k) != theirs.get(k)][:limit]


# ---------------------------------------------------------------- the spec's measured numbers


def test_the_reference_finds_the_spec_s_measured_numbers(ref: Reference) -> None:
    """Guards the reference itself: it must read the archive as the spec measured it."""
    assert ref.outcome_counts() == {
        "published": 15_803, "already_synced": 489, "refused": 8, "failed": 0, "skipped": 0, "unknown": 0,
    }  # fmt: skip
    assert sum(b.not_in_sync_after for b in ref.blocks.values()) == 4_361
    assert ref.overdraft == set()
    assert ref.cause_counts() == {
        "refused_applied_later": 2, "sent_again": 223, "not_applied": 59, "after_not_in_sync": 144,
        "logs_missing": 3, "unexplained": 65,
    }  # fmt: skip
    assert Counter(ref.mismatch.values()) == {"legacy_net_of_vat": 5}
    assert {ref.blocks[t].outcome for t in ref.mismatch} == {"already_synced"}
    assert len(ref.negative_amount) == 6
    # every block with a negative balance is one the Lambda refused; 15 refusals, 7 without their block
    negative = {t for t, b in ref.blocks.items() if b.old < 0 or b.new < 0}
    assert negative == {t for t, b in ref.blocks.items() if b.outcome == "refused"}
    assert len(ref.refusals) == 15 and sum(t in ref.blocks for _, _, t in ref.refusals) == 8
    # Lambda errors: 235 raw events, in 91 invocations plus 72 failed inits
    assert (ref.error_events, len(ref.error_invocations), len(ref.failed_inits)) == (235, 91, 72)


# ---------------------------------------------------------------- outcomes, per transaction


def test_outcome_of_every_transaction_matches_the_raw_text(tx: pl.DataFrame, ref: Reference) -> None:
    mine = dict(zip(tx["tx_id"], tx["outcome"], strict=True))
    theirs = {t: b.outcome for t, b in ref.blocks.items()}
    assert diff(mine, theirs) == []
    assert dict(Counter(mine.values())) == {k: v for k, v in ref.outcome_counts().items() if v}


def test_not_in_sync_after_and_applied_match_the_raw_text(tx: pl.DataFrame, ref: Reference) -> None:
    nis = dict(zip(tx["tx_id"], tx["not_in_sync_after"], strict=True))
    assert diff(nis, {t: b.not_in_sync_after for t, b in ref.blocks.items()}) == []
    applied = dict(zip(tx["tx_id"], tx["applied"], strict=True))
    assert diff(applied, {t: b.applied for t, b in ref.blocks.items()}) == []
    assert sum(nis.values()) == 4_361 and sum(not a for a in applied.values()) == 8


def test_every_transaction_keeps_its_request_id(tx: pl.DataFrame, ref: Reference) -> None:
    mine = dict(zip(tx["tx_id"], tx["request_id"], strict=True))
    assert diff(mine, {t: b.request_id for t, b in ref.blocks.items()}) == []


def test_summary_counts_every_outcome_with_zeros_kept(summary: dict, ref: Reference) -> None:
    assert summary["outcomes"] == ref.outcome_counts()
    assert set(summary["outcomes"]) == set(OUTCOMES)


# ---------------------------------------------------------------- the checks follow the money


def test_no_overdraft_on_applied_transactions_and_the_logged_reading_stays_visible(
    real_result, tx: pl.DataFrame, ref: Reference, summary: dict
) -> None:
    assert set(tx.filter("overdraft")["tx_id"]) == ref.overdraft == set()
    assert flags_of(real_result, "overdraft").height == 0 and summary[count_key("overdraft")] == 0
    logged = tx.filter(pl.col("overdraft_before") | pl.col("overdraft_after"))
    refused = {t for t, b in ref.blocks.items() if b.outcome == "refused"}
    assert set(logged["tx_id"]) == refused and len(refused) == 8


def test_mismatches_match_the_raw_text_with_their_pattern_and_outcome(
    real_result, ref: Reference, summary: dict
) -> None:
    flags = flags_of(real_result, "mismatch")
    assert diff(dict(zip(flags["tx_id"], flags["cause"], strict=True)), ref.mismatch) == []
    assert summary[count_key("mismatch")] == len(ref.mismatch) == 5
    for row in flags.iter_rows(named=True):
        assert row["outcome"] == ref.blocks[row["tx_id"]].outcome == "already_synced"
        # the seed's reason may stay as it was; together with what_happened the row names pattern and outcome
        said = f"{row['reason']} {row['what_happened']}".lower().replace("_", " ")
        assert "vat" in said and "already synced" in said, said


def test_flow_breaks_and_their_causes_match_the_raw_text(real_result, ref: Reference, summary: dict) -> None:
    flags = flags_of(real_result, "flow_break")
    mine = dict(zip(flags["tx_id"], flags["cause"], strict=True))
    assert diff(mine, ref.flow_break) == []
    assert summary[count_key("flow_break")] == len(ref.flow_break) == 496
    assert summary["flow_break_causes"] == ref.cause_counts()
    assert set(summary["flow_break_causes"]) == set(CAUSES)


def test_flow_break_severity_and_needs_person_follow_the_cause(real_result) -> None:
    flags = flags_of(real_result, "flow_break")
    seen = set(flags.select("cause", "severity", "needs_person").unique().iter_rows())
    needs_a_person = {"unexplained", "refused_applied_later"}  # money moved and the logs do not say why
    expected = {(c, "low", False) for c in CAUSES if c not in needs_a_person} | {
        (c, "medium", True) for c in needs_a_person
    }
    assert seen == expected


def test_refused_blocks_are_out_of_the_wallet_s_history(tx: pl.DataFrame, ref: Reference) -> None:
    refused = {t for t, b in ref.blocks.items() if b.outcome == "refused"}
    assert tx.filter(pl.col("tx_id").is_in(refused))["next_tx_id"].null_count() == len(refused)
    assert not set(tx["next_tx_id"].drop_nulls()) & refused
    mine = {t: n for t, n in zip(tx["tx_id"], tx["next_tx_id"], strict=True) if n is not None}
    assert diff(mine, ref.next_of) == []
    assert not set(tx.filter("flow_break")["tx_id"]) & refused


def test_the_roll_forward_leaves_refused_blocks_out(real_result, ref: Reference) -> None:
    q = Decimal("0.000001")
    applied = [
        Tx(
            b.tx_id,
            b.user_id,
            b.wallet_id,
            b.ts,
            b.type,
            b.currency,
            b.amount.quantize(q),
            b.vat.quantize(q),
            b.old.quantize(q),
            b.new.quantize(q),
        )
        for b in ref.blocks.values()
        if b.applied
    ]
    expected = reference_roll_forward(applied)
    users = {r["user_id"]: r for r in real_result.users.iter_rows(named=True)}
    wrong = []
    for user, rf in expected.items():
        u = users[user]
        got = (u["opening_balance"], u["credits"], u["debits"], u["closing_balance"])
        if tuple(Decimal(str(g)) for g in got) != (rf.opening, rf.credits, rf.debits, rf.closing):
            wrong.append((user, got, (rf.opening, rf.credits, rf.debits, rf.closing)))
    assert wrong == []


def test_negative_amounts_match_the_raw_text(real_result, ref: Reference, summary: dict) -> None:
    flags = flags_of(real_result, "negative_amount")
    assert set(flags["tx_id"]) == ref.negative_amount and flags.height == 6
    assert set(flags["severity"]) == {"high"}
    assert summary[count_key("negative_amount")] == 6


def test_lambda_error_events_invocations_and_failed_inits_match_the_raw_text(
    real_result, summary: dict, ref: Reference
) -> None:
    """Raw error events 235, in 91 invocations (per request id), and 72 cold starts whose init failed."""
    assert summary["lambda_errors"] == ref.error_events == 235
    inv = real_result.ingested.invocations
    with_errors = set(inv.filter((pl.col("errors") > 0) & (pl.col("request_id") != "undefined"))["request_id"])
    assert with_errors == {r for _, r in ref.error_invocations}
    assert summary["invocations_with_errors"] == len(ref.error_invocations) == 91
    assert summary["failed_inits"] == len(ref.failed_inits) == 72


def test_lambda_error_incidents_are_counted_beside_the_raw_events(summary: dict, ref: Reference) -> None:
    """Incidents = invocations with an error (91) + cold starts whose init failed (72) = 163."""
    incident_keys = [k for k in summary if "incident" in k and not k.endswith("users") and isinstance(summary[k], int)]
    assert incident_keys, f"no incident count in summary.json: {sorted(summary)}"
    assert {k: summary[k] for k in incident_keys} == dict.fromkeys(incident_keys, ref.incidents)
    assert ref.incidents == 163


# ---------------------------------------------------------------- every flag says what happened


def test_every_flag_has_the_new_fields(real_result) -> None:
    flags = real_result.flags
    missing = [c for c in FLAG_FIELDS if c not in flags.columns]
    assert missing == []
    assert (
        flags.filter(pl.col("what_happened").is_null() | (pl.col("what_happened").str.strip_chars() == "")).height == 0
    )
    assert flags["needs_person"].null_count() == 0 and flags["cause"].null_count() == 0


def test_every_flag_carries_its_transaction_s_outcome_and_request_id(real_result, ref: Reference) -> None:
    rows = real_result.flags.filter(pl.col("tx_id").is_not_null()).select("check", "tx_id", "outcome", "request_id")
    wrong = [
        r
        for r in rows.iter_rows(named=True)
        if (r["outcome"], r["request_id"]) != (ref.blocks[r["tx_id"]].outcome, ref.blocks[r["tx_id"]].request_id)
    ]
    assert rows.height > 0 and wrong[:5] == []


def test_every_red_flag_row_in_the_workbook_says_what_happened_and_whether_it_needs_a_person(
    workbook, real_result
) -> None:
    rows = list(workbook["RedFlags"].iter_rows(values_only=True))
    header, body = list(rows[0]), rows[1:]
    assert {"what_happened", "needs_person", "cause", "outcome", "request_id"} <= set(header), header
    what, needs = header.index("what_happened"), header.index("needs_person")
    assert len(body) == real_result.flags.height
    empty = [r for r in body if r[what] is None or not str(r[what]).strip()]
    undecided = [r for r in body if r[needs] not in (True, False, "yes", "no", "TRUE", "FALSE")]
    assert empty == [] and undecided == []


def sheet_dicts(ws) -> list[dict]:
    rows = ws.iter_rows(values_only=True)
    header = next(rows)
    return [dict(zip(header, r, strict=True)) for r in rows]


def test_flow_breaks_sheet_links_both_transactions_by_request_id_file_and_line(workbook, ref: Reference) -> None:
    rows = sheet_dicts(workbook["FlowBreaks"])
    assert len(rows) == len(ref.flow_break)
    wrong = []
    for r in rows:
        a = ref.blocks[r["tx_id"]]
        b = ref.blocks[ref.next_of[a.tx_id]]
        got = (r["next_tx_id"], r["request_id"], r["next_request_id"], r["line_no"], r["next_line_no"])
        want = (b.tx_id, a.request_id, b.request_id, a.line_no, b.line_no)
        # cells name the file as "archive!member"
        files = (r["file"].rsplit("!", 1)[-1], r["next_file"].rsplit("!", 1)[-1])
        if got != want or files != (a.file, b.file):
            wrong.append((a.tx_id, got, want))
    assert wrong[:5] == []


def test_ledger_sheet_shows_every_outcome(workbook, report_dir: Path, summary: dict, ref: Reference) -> None:
    """The Ledger sheet's rows (the flagged ones with context) and the complete Ledger beside it
    (transactions.parquet, read by pyarrow) carry each block's outcome."""
    rows = sheet_dicts(workbook["Ledger"])
    got = {r["tx_id"]: (r["outcome"], r["not_in_sync_after"]) for r in rows if r.get("tx_id")}
    assert len(got) == summary["ledger"]["rows"] < len(ref.blocks)
    want = {t: (b.outcome, b.not_in_sync_after) for t, b in ref.blocks.items()}
    assert diff(got, {t: want[t] for t in got}) == []
    tx = pq.read_table(report_dir / "transactions.parquet").to_pydict()
    every = dict(zip(tx["tx_id"], zip(tx["outcome"], tx["not_in_sync_after"], strict=True), strict=True))
    assert diff(every, want) == []


def test_parquet_exports_carry_the_outcome_columns(report_dir: Path, real_result, ref: Reference) -> None:
    """Read back by pyarrow, not Polars."""
    tx = pq.read_table(report_dir / "transactions.parquet").to_pydict()
    got = {
        t: (o, n, a)
        for t, o, n, a in zip(tx["tx_id"], tx["outcome"], tx["not_in_sync_after"], tx["applied"], strict=True)
    }
    assert diff(got, {t: (b.outcome, b.not_in_sync_after, b.applied) for t, b in ref.blocks.items()}) == []
    flags = pq.read_table(report_dir / "flags.parquet").to_pydict()
    assert set(FLAG_FIELDS) <= set(flags)
    # the causes as the tool found them (their agreement with the raw text is tested above)
    exported = {(t, k): c for t, k, c in zip(flags["tx_id"], flags["check"], flags["cause"], strict=True)}
    mine = real_result.flags
    assert exported == dict(zip(zip(mine["tx_id"], mine["check"], strict=True), mine["cause"], strict=True))
    assert {t for t, k in exported if k == "flow_break"} == set(ref.flow_break)
    assert all(w and w.strip() for w in flags["what_happened"]) and None not in flags["needs_person"]


def test_blocked_overdrafts_are_joined_to_their_refused_blocks(workbook, ref: Reference) -> None:
    rows = sheet_dicts(workbook["BlockedOverdrafts"])
    assert len(rows) == len(ref.refusals) == 15
    joined = {r["transaction_id"]: r["amount"] for r in rows if r["in_ledger"]}
    refused = {t: b for t, b in ref.blocks.items() if b.outcome == "refused"}
    assert set(joined) == set(refused) and len(joined) == 8
    assert all(Decimal(str(joined[t])) == b.amount for t, b in refused.items())


def test_money_totals_leave_refused_blocks_out(summary: dict, ref: Reference) -> None:
    debits: defaultdict[str, Decimal] = defaultdict(Decimal)
    for b in ref.blocks.values():
        if b.applied and b.sign < 0:
            debits[b.currency] += b.amount
    for currency, total in debits.items():
        places = Decimal("0.001") if currency in ("BHD", "KWD") else Decimal("0.01")
        assert summary["totals"][currency]["debit_total"] == str(total.quantize(places)), currency
