"""Issue 12 on handmade logs with known answers: each outcome, not_in_sync_after, each flow-break
cause, a refused block left out of the wallet's history, interleaved invocations and chunks out
of time order, negative amounts, mismatch patterns.

Definitions: ../issues-text/OUTCOMES-SPEC.md. Every log is also read by the plain-Python
reference (tests/reference_outcomes.py), which must give the same known answers: the tool and
the reference are two readings of the same text.
"""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from typing import Any

import polars as pl
import pytest

from calo_polars import AuditResult
from calo_polars.audit.result import AuditOptions
from calo_polars.audit.run import audit
from calo_polars.partitioned.merge import audit_store
from calo_polars.partitioned.store import ingest_into
from calo_polars.report import tables
from calo_polars.report.summary import summary
from tests.conftest import run_audit
from tests.logbuilder import Log, full_tx, legacy_tx, rid, uid
from tests.reference_outcomes import CAUSES, OUTCOMES, Reference, reference

D = Decimal


def audit_logs(tmp_path: Path, *logs: Log) -> tuple[AuditResult, Reference]:
    """The tool's audit of these logs (one file each) and the reference's reading of them."""
    texts = [log.text() for log in logs]
    return run_audit(tmp_path, *texts), reference([(f"log{i}.log", t) for i, t in enumerate(texts)])


def column(result: AuditResult, name: str) -> dict[str, Any]:
    tx = result.transactions
    return dict(zip(tx["tx_id"], tx[name], strict=True))


def tx_id(fields: dict[str, Any]) -> str:
    return fields["id"]


def block(log: Log, request: str, t: float, fields: dict[str, Any]) -> str:
    """``Processing message`` then the block, 1 ms apart; the block's transaction id."""
    log.processing(request, t)
    log.tx(request, t + 0.001, **fields)
    return tx_id(fields)


def flags_of(result: AuditResult, check: str) -> pl.DataFrame:
    return result.flags.filter(pl.col("check") == check)


# ---------------------------------------------------------------- each outcome


@pytest.fixture
def each_outcome(tmp_path: Path) -> tuple[AuditResult, Reference, dict[str, str]]:
    r = rid(1)
    log = Log().start(r, 0)
    ids = {}
    ids["published"] = block(log, r, 1, full_tx(1, uid(1), 100, 92, 8))
    log.published(r, 1.01)
    ids["already_synced"] = block(log, r, 2, full_tx(2, uid(2), 100, 92, 8))
    log.already_synced(r, 2.01)
    ids["already_synced_skipping"] = block(log, r, 3, full_tx(3, uid(3), 100, 92, 8))
    log.already_synced(r, 3.01, skipping=True)
    ids["refused"] = block(log, r, 4, full_tx(4, uid(4), 10, -30, 40))
    log.refusal(r, 4.01, uid(4), 10, ids["refused"])
    ids["failed"] = block(log, r, 5, full_tx(5, uid(5), 100, 92, 8))
    log.sync_error(r, 5.01)
    ids["skipped"] = block(log, r, 6, full_tx(6, uid(6), 100, 92, 8))
    log.skip_flag_false(r, 6.01)
    ids["unknown"] = block(log, r, 7, full_tx(7, uid(7), 100, 92, 8))
    # the first message decides: published, then a stray already-synced
    ids["published_first"] = block(log, r, 8, full_tx(8, uid(8), 100, 92, 8))
    log.published(r, 8.01).already_synced(r, 8.02)
    # a message after the next Processing message is not this block's
    ids["unknown_boundary"] = block(log, r, 9, full_tx(9, uid(9), 100, 92, 8))
    log.processing(r, 9.5).published(r, 9.6)
    log.end(r, 10).report(r, 10)
    result, ref = audit_logs(tmp_path, log)
    return result, ref, ids


EACH_OUTCOME = {
    "published": "published",
    "already_synced": "already_synced",
    "already_synced_skipping": "already_synced",
    "refused": "refused",
    "failed": "failed",
    "skipped": "skipped",
    "unknown": "unknown",
    "published_first": "published",
    "unknown_boundary": "unknown",
}


def test_each_outcome_from_the_first_message_after_the_block(each_outcome) -> None:
    result, ref, ids = each_outcome
    expected = {ids[k]: v for k, v in EACH_OUTCOME.items()}
    assert column(result, "outcome") == expected
    assert {t: b.outcome for t, b in ref.blocks.items()} == expected


def test_applied_is_everything_but_refused(each_outcome) -> None:
    result, ref, ids = each_outcome
    expected = {ids[k]: k != "refused" for k in EACH_OUTCOME}
    assert column(result, "applied") == expected
    assert {t: b.applied for t, b in ref.blocks.items()} == expected


def test_summary_counts_each_outcome_with_all_six_keys(each_outcome) -> None:
    result, ref, _ = each_outcome
    expected = {"published": 2, "already_synced": 2, "refused": 1, "failed": 1, "skipped": 1, "unknown": 2}
    assert summary(result)["outcomes"] == expected == ref.outcome_counts()
    assert set(expected) == set(OUTCOMES)


def test_a_refused_block_is_no_overdraft_but_its_logged_reading_stays(each_outcome) -> None:
    result, _, ids = each_outcome
    tx = result.transactions.filter(pl.col("tx_id") == ids["refused"])
    assert tx.select("overdraft", "overdraft_before", "overdraft_after").row(0) == (False, False, True)
    assert flags_of(result, "overdraft").height == 0
    assert result.transactions["overdraft"].sum() == 0


# ---------------------------------------------------------------- refused by transactionId


def _refusals_out_of_position() -> tuple[list[Log], dict[str, str]]:
    """Refusals after the next boundary, before their block, and in another file."""
    r1, r2, r3 = rid(1), rid(2), rid(3)
    log = Log().start(r1, 0)
    after_boundary = block(log, r1, 1, full_tx(1, uid(1), 10, -30, 40))
    # the refusal comes after the next Processing message (outside the block's stretch)
    log.processing(r1, 2).refusal(r1, 2.5, uid(1), 10, after_boundary)
    published = block(log, r1, 3, full_tx(2, uid(2), 100, 92, 8))
    log.published(r1, 3.01).end(r1, 4).report(r1, 4)
    # the refusal logged before its block (earlier in time, same invocation)
    log.start(r2, 10).refusal(r2, 10.5, uid(3), 5, "01HR" + f"{3:022d}")
    before = block(log, r2, 11, full_tx(3, uid(3), 5, -15, 20))
    log.end(r2, 12).report(r2, 12)
    # the refusal in another file's invocation
    other = Log().start(r3, 20).refusal(r3, 20.5, uid(4), 1, "01HR" + f"{4:022d}").end(r3, 21).report(r3, 21)
    log.start(rid(4), 15)
    elsewhere = block(log, rid(4), 16, full_tx(4, uid(4), 1, -7, 8))
    log.end(rid(4), 17).report(rid(4), 17)
    expected = {after_boundary: "refused", published: "published", before: "refused", elsewhere: "refused"}
    return [log, other], expected


def test_a_refusal_out_of_position_still_refuses_its_block_by_transaction_id(tmp_path: Path) -> None:
    logs, expected = _refusals_out_of_position()
    result, ref = audit_logs(tmp_path, *logs)
    assert column(result, "outcome") == expected
    assert {t: b.outcome for t, b in ref.blocks.items()} == expected


@pytest.mark.parametrize("how", ["a batch a file", "a store, a batch a file"])
def test_a_refusal_in_another_batch_still_refuses_its_block(tmp_path: Path, how: str) -> None:
    """The refusal's file and its block's file read in different batches (as a big input, or a
    small one split among the threads, is read), in one run and through a store."""
    logs, expected = _refusals_out_of_position()
    paths = []
    for i, log in enumerate(logs):
        paths.append(tmp_path / f"log{i}.log")
        paths[-1].write_text(log.text(), encoding="utf-8")
    if how == "a batch a file":
        result = audit(paths, AuditOptions(batch_bytes=1))
    else:
        ingest_into(paths, tmp_path / "store", partitions=3, batch_bytes=1)
        result = audit_store(tmp_path / "store")
    assert column(result, "outcome") == expected


# ---------------------------------------------------------------- not_in_sync_after


def test_not_in_sync_after_is_the_error_in_the_block_s_stretch(tmp_path: Path) -> None:
    r = rid(1)
    log = Log().start(r, 0)
    after = block(log, r, 1, full_tx(1, uid(1), 100, 92, 8))
    log.published(r, 1.01).not_in_sync(r, 1.02, uid(1), 90, 92)
    past_boundary = block(log, r, 2, full_tx(2, uid(2), 100, 92, 8))
    log.published(r, 2.01).processing(r, 2.5).not_in_sync(r, 2.6, uid(2), 90, 92)
    before_outcome = block(log, r, 3, full_tx(3, uid(3), 100, 92, 8))
    log.not_in_sync(r, 3.01, uid(3), 90, 92).already_synced(r, 3.02)
    clean = block(log, r, 4, full_tx(4, uid(4), 100, 92, 8))
    log.published(r, 4.01).end(r, 5).report(r, 5)
    result, ref = audit_logs(tmp_path, log)
    expected = {after: True, past_boundary: False, before_outcome: True, clean: False}
    assert column(result, "not_in_sync_after") == expected
    assert {t: b.not_in_sync_after for t, b in ref.blocks.items()} == expected
    assert column(result, "outcome") == {
        after: "published",
        past_boundary: "published",
        before_outcome: "already_synced",
        clean: "published",
    }


# ---------------------------------------------------------------- a cause for every flow break


@pytest.fixture
def causes(tmp_path: Path) -> tuple[AuditResult, Reference, dict[str, str], dict[str, str]]:
    """One wallet per cause: A (flagged) then B, the wallet's next applied transaction."""
    log = Log()
    a_ids: dict[str, str] = {}
    b_ids: dict[str, str] = {}
    n = 0

    def posting(user: int, t: float, old: Any, new: Any, amount: Any, *after: str) -> str:
        nonlocal n
        n += 1
        r = rid(n)
        log.start(r, t)
        ident = block(log, r, t + 0.01, full_tx(n, uid(user), old, new, amount))
        for i, what in enumerate(after):
            s = t + 0.02 + i * 0.001
            if what == "published":
                log.published(r, s)
            elif what == "already_synced":
                log.already_synced(r, s)
            elif what == "not_in_sync":
                log.not_in_sync(r, s, uid(user), D(new) - 5, new)
        log.end(r, t + 0.05).report(r, t + 0.05)
        return ident

    def pair(cause: str, user: int, t_a: float, a: tuple, t_b: float, b: tuple) -> None:
        a_ids[cause] = posting(user, t_a, *a)
        b_ids[cause] = posting(user, t_b, *b)

    pair("sent_again", 1, 10, (100, 92, 8, "already_synced"), 20, (100, 92, 8, "published"))
    pair("not_applied", 2, 11, (100, 92, 8, "already_synced"), 21, (100, 95, 5, "published"))
    pair("after_not_in_sync", 3, 12, (100, 92, 8, "published", "not_in_sync"), 22, (80, 75, 5, "published"))
    # not_applied comes first in the table, so it wins over the not-in-sync error that also holds
    pair("not_applied_first", 4, 13, (100, 92, 8, "published", "not_in_sync"), 23, (100, 95, 5, "published"))
    pair("unexplained", 5, 14, (100, 92, 8, "published"), 24, (80, 75, 5, "published"))
    # nothing at all is logged for 30 hours between A and B (every other event is earlier)
    pair("logs_missing", 6, 100, (100, 92, 8, "published"), 100 + 30 * 3600, (80, 75, 5, "published"))
    # a wallet that flows: no break
    pair("none", 7, 15, (100, 92, 8, "published"), 25, (92, 87, 5, "published"))
    result, ref = audit_logs(tmp_path, log)
    return result, ref, a_ids, b_ids


CAUSE_OF = {
    "sent_again": "sent_again",
    "not_applied": "not_applied",
    "after_not_in_sync": "after_not_in_sync",
    "not_applied_first": "not_applied",
    "unexplained": "unexplained",
    "logs_missing": "logs_missing",
}


def test_each_flow_break_gets_its_cause(causes) -> None:
    result, ref, a_ids, _ = causes
    expected = {a_ids[k]: v for k, v in CAUSE_OF.items()}
    flags = flags_of(result, "flow_break")
    assert dict(zip(flags["tx_id"], flags["cause"], strict=True)) == expected
    assert ref.flow_break == expected


def test_severity_and_needs_person_follow_the_cause(causes) -> None:
    result, _, a_ids, _ = causes
    flags = flags_of(result, "flow_break")
    got = {r["tx_id"]: (r["severity"], r["needs_person"]) for r in flags.iter_rows(named=True)}
    assert got == {a_ids[k]: ("medium", True) if v == "unexplained" else ("low", False) for k, v in CAUSE_OF.items()}
    assert all(r["what_happened"] and r["what_happened"].strip() for r in flags.iter_rows(named=True))


def test_summary_counts_breaks_by_cause_with_every_key(causes) -> None:
    result, ref, _, _ = causes
    expected = {
        "refused_applied_later": 0, "sent_again": 1, "not_applied": 2, "after_not_in_sync": 1, "logs_missing": 1,
        "unexplained": 1,
    }  # fmt: skip
    assert summary(result)["flow_break_causes"] == expected == ref.cause_counts()
    assert set(expected) == set(CAUSES)


def test_each_break_links_to_the_wallet_s_next_transaction(causes) -> None:
    result, _, a_ids, b_ids = causes
    nxt = column(result, "next_tx_id")
    assert {k: nxt[a_ids[k]] for k in a_ids} == b_ids and {nxt[b] for b in b_ids.values()} == {None}
    # each flag row carries its transaction's request id and outcome
    request, outcome = column(result, "request_id"), column(result, "outcome")
    flags = flags_of(result, "flow_break")
    assert flags.height == len(CAUSE_OF)
    for row in flags.iter_rows(named=True):
        assert (row["request_id"], row["outcome"]) == (request[row["tx_id"]], outcome[row["tx_id"]])


def _gap_pair(log: Log, silence: int) -> str:
    """A wallet whose next transaction starts elsewhere after ``silence`` whole seconds with no
    event of this file (A's invocation ends at 2 s, B's starts at 2 + silence); A's id."""
    log.start(rid(1), 0)
    a = block(log, rid(1), 1, full_tx(1, uid(1), 100, 92, 8))
    log.published(rid(1), 1.5).end(rid(1), 2).report(rid(1), 2)
    t = 2 + silence
    log.start(rid(2), t)
    block(log, rid(2), t + 0.5, full_tx(2, uid(1), 80, 75, 5))
    log.published(rid(2), t + 0.6).end(rid(2), t + 1).report(rid(2), t + 1)
    return a


@pytest.mark.parametrize(
    ("silence", "other_event_between", "cause"),
    [
        (24 * 3600, False, "logs_missing"),  # 24 hours or more: exactly a day counts
        (24 * 3600 - 1, False, "unexplained"),
        (40 * 3600, True, "unexplained"),  # another file logged something in between: the export is whole there
    ],
)
def test_logs_missing_needs_a_day_with_no_event_at_all_in_the_export(
    tmp_path: Path, silence: int, other_event_between: bool, cause: str
) -> None:
    log = Log()
    a = _gap_pair(log, silence)
    # another file logs in the middle of the silence: no stretch of a day without events then
    mid = 2 + silence // 2
    others = [Log().start(rid(9), mid).end(rid(9), mid + 1).report(rid(9), mid + 1)]
    result, ref = audit_logs(tmp_path, log, *(others if other_event_between else []))
    flags = flags_of(result, "flow_break")
    assert dict(zip(flags["tx_id"], flags["cause"], strict=True)) == {a: cause} == ref.flow_break


# ---------------------------------------------------------------- a refused block moved nothing


def test_a_refused_block_is_left_out_of_the_wallet_s_history(tmp_path: Path) -> None:
    log = Log()
    user = uid(1)
    log.start(rid(1), 0)
    first = block(log, rid(1), 1, full_tx(1, user, 100, 60, 40))
    log.published(rid(1), 1.01).end(rid(1), 2).report(rid(1), 2)
    log.start(rid(2), 10)
    refused = block(log, rid(2), 11, full_tx(2, user, 60, -40, 100))
    log.refusal(rid(2), 11.01, user, 60, refused).end(rid(2), 12).report(rid(2), 12)
    log.start(rid(3), 20)
    last = block(log, rid(3), 21, full_tx(3, user, 60, 50, 10))
    log.published(rid(3), 21.01).end(rid(3), 22).report(rid(3), 22)
    result, ref = audit_logs(tmp_path, log)

    assert column(result, "outcome") == {first: "published", refused: "refused", last: "published"}
    # no flow break around it, no link to or from it, no overdraft: the wallet never went below zero
    assert column(result, "next_tx_id") == {first: last, refused: None, last: None}
    assert result.flags.filter(pl.col("user_id") == user).height == 0
    assert ref.flow_break == {} and ref.overdraft == set() and ref.next_of == {first: last}
    tx = result.transactions.filter(pl.col("tx_id") == refused)
    assert tx.select("overdraft", "overdraft_after", "flow_break").row(0) == (False, True, False)
    # the roll-forward leaves it out and still closes exactly
    u = result.users.filter(pl.col("user_id") == user).row(0, named=True)
    assert (u["opening_balance"], u["credits"], u["debits"], u["closing_balance"]) == (D(100), D(0), D(50), D(50))
    assert u["difference"] == 0 and u["flow_gaps"] == 0
    # it is listed in BlockedOverdrafts joined to its block
    blocked = tables.blocked_overdrafts(result)
    assert blocked.select("transaction_id", "in_ledger", "amount").rows() == [(refused, True, D(100))]


# ---------------------------------------------------------------- group by requestId, never by position


def test_interleaved_invocations_and_chunks_out_of_time_order(tmp_path: Path) -> None:
    r1, r2, r3, r4, r5 = (rid(i) for i in range(1, 6))
    log = Log()
    # two invocations' lines interleaved in one file
    log.start(r1, 1).processing(r1, 1.1).tx(r1, 1.2, **full_tx(1, uid(1), 100, 92, 8))
    log.start(r2, 1.3).processing(r2, 1.4).tx(r2, 1.5, **full_tx(2, uid(2), 100, 92, 8))
    log.already_synced(r1, 1.6).published(r2, 1.7)
    log.end(r1, 1.8).report(r1, 1.8).end(r2, 1.9).report(r2, 1.9)
    # a chunk written out of time order: the outcome is written before the block
    log.published(r3, 5.3).start(r3, 5.0).processing(r3, 5.1).tx(r3, 5.2, **full_tx(3, uid(3), 100, 92, 8))
    log.end(r3, 5.4).report(r3, 5.4)
    # the Processing message written after the block it comes before in time
    log.start(r4, 6.0).tx(r4, 6.2, **full_tx(4, uid(4), 100, 92, 8)).processing(r4, 6.1).published(r4, 6.3)
    log.end(r4, 6.4).report(r4, 6.4)
    # lines sharing a millisecond: the position in the file breaks the tie
    log.start(r5, 7.0).processing(r5, 7.0).tx(r5, 7.0, **full_tx(5, uid(5), 100, 92, 8))
    log.already_synced(r5, 7.0).published(r5, 7.0).end(r5, 7.0).report(r5, 7.0)
    result, ref = audit_logs(tmp_path, log)
    ids = [f"01HR{n:022d}" for n in range(1, 6)]
    expected = dict(zip(ids, ["already_synced", "published", "published", "published", "already_synced"], strict=True))
    assert column(result, "outcome") == expected
    assert {t: b.outcome for t, b in ref.blocks.items()} == expected
    assert column(result, "request_id") == dict(zip(ids, [r1, r2, r3, r4, r5], strict=True))


def test_an_invocation_is_grouped_within_its_file(tmp_path: Path) -> None:
    """The same requestId in two files is two invocations: the other file's message is not the outcome."""
    r = rid(1)
    one = Log().start(r, 1).processing(r, 1.1).tx(r, 1.2, **full_tx(1, uid(1), 100, 92, 8))
    two = Log().published(r, 1.3).end(r, 1.4).report(r, 1.4)
    result, ref = audit_logs(tmp_path, one, two)
    assert column(result, "outcome") == {"01HR" + f"{1:022d}": "unknown"}
    assert ref.outcome_counts()["unknown"] == 1


# ---------------------------------------------------------------- negative amounts, mismatch patterns


def test_negative_amount_beyond_tolerance_is_flagged_high(tmp_path: Path) -> None:
    r = rid(1)
    log = Log().start(r, 0)
    negative = block(log, r, 1, full_tx(1, uid(1), 10, 28, -18))  # a DEBIT of -18 BHD that raised the balance
    log.published(r, 1.01)
    within = block(log, r, 2, full_tx(2, uid(2), 10, D("10.0004"), D("-0.0004")))
    log.published(r, 2.01)
    sar = block(log, r, 3, full_tx(3, uid(3), 10, D("10.006"), D("-0.006"), currency="SAR"))
    log.published(r, 3.01)
    sar_within = block(log, r, 4, full_tx(4, uid(4), 10, D("10.004"), D("-0.004"), currency="SAR"))
    log.published(r, 4.01).end(r, 5).report(r, 5)
    result, ref = audit_logs(tmp_path, log)
    flags = flags_of(result, "negative_amount")
    assert set(flags["tx_id"]) == {negative, sar} == ref.negative_amount
    assert set(flags["severity"]) == {"high"}
    assert column(result, "negative_amount") == {negative: True, within: False, sar: True, sar_within: False}
    # the movement matches the signed amount: no mismatch hides it, none is added
    assert flags_of(result, "mismatch").height == 0 and ref.mismatch == {}


def test_mismatch_pattern_net_of_vat_on_a_legacy_block_names_the_outcome(tmp_path: Path) -> None:
    r = rid(1)
    log = Log().start(r, 0)
    net = block(log, r, 1, legacy_tx(1, uid(1), 100, D("92.727"), 8))  # 8 BHD net of 10 % VAT: 7.273
    log.already_synced(r, 1.01)
    sar = block(log, r, 2, legacy_tx(2, uid(2), 1000, D("765.22"), 270, currency="SAR"))  # 270 at 15 %: 234.78
    log.already_synced(r, 2.01)
    odd = block(log, r, 3, legacy_tx(3, uid(3), 100, 95, 8))
    log.published(r, 3.01).end(r, 4).report(r, 4)
    result, ref = audit_logs(tmp_path, log)
    flags = flags_of(result, "mismatch")
    expected = {net: "legacy_net_of_vat", sar: "legacy_net_of_vat", odd: "unexplained"}
    assert dict(zip(flags["tx_id"], flags["cause"], strict=True)) == expected == ref.mismatch
    # the flag's words (the seed's reason may stay as it was; what_happened explains) name the pattern and outcome
    said = {
        r["tx_id"]: f"{r['reason']} {r['what_happened']}".lower().replace("_", " ") for r in flags.iter_rows(named=True)
    }
    assert "already synced" in said[net] and "vat" in said[net] and "15 %" in said[sar].replace("15%", "15 %")
    assert {r["tx_id"]: r["outcome"] for r in flags.iter_rows(named=True)} == {
        net: "already_synced",
        sar: "already_synced",
        odd: "published",
    }


# ---------------------------------------------------------------- Lambda error incidents


def _failed_cold_start(log: Log, t: float, *, phase: str) -> Log:
    """INIT_START, the uncaught exception under the pseudo-id ``undefined``, INIT_REPORT Status: error."""
    log.raw(t, "INIT_START Runtime Version: nodejs:20.v13\tRuntime Version ARN: arn:aws:lambda:us-east-1::runtime:x")
    log.app(
        "undefined",
        t + 0.2,
        "ERROR",
        'Uncaught Exception \t{"errorType":"Error","errorMessage":"Cannot find module \'/var/task/x\'","stack":[]}',
    )
    return log.raw(
        t + 0.3, f"INIT_REPORT Init Duration: 766.09 ms\tPhase: {phase}\tStatus: error\tError Type: Runtime.ExitError"
    )


def _error_log() -> Log:
    log = Log()
    # an invocation with two failed syncs: one incident, two events
    r1 = rid(1)
    log.start(r1, 0)
    block(log, r1, 1, full_tx(1, uid(1), 100, 92, 8))
    log.sync_error(r1, 1.01)
    block(log, r1, 2, full_tx(2, uid(2), 100, 92, 8))
    log.sync_error(r1, 2.01).end(r1, 3).report(r1, 3)
    # a cold start whose init failed, no invocation ran: one incident (uncaught exception + INIT_REPORT)
    _failed_cold_start(log, 10, phase="init")
    # a failed init in the invoke phase, then the invocation crashed: the cold start and the invocation
    _failed_cold_start(log, 20, phase="invoke")
    r2 = rid(2)
    log.start(r2, 20.3).raw(20.31, "Unknown application error occurred\nRuntime.Unknown").end(r2, 20.32)
    log.report(r2, 20.32, init_ms=766.09)
    # a timeout and an invoke error: one incident each
    r3, r4 = rid(3), rid(4)
    log.start(r3, 30).raw(33, f"{r3} Task timed out after 3.00 seconds").end(r3, 33).report(r3, 33)
    log.start(r4, 40).app(
        r4, 40.1, "ERROR", 'Invoke Error \t{"errorType":"TypeError","errorMessage":"e is not iterable"}'
    )
    log.end(r4, 40.2).report(r4, 40.2)
    # a clean invocation: none
    log.start(rid(5), 50)
    block(log, rid(5), 51, full_tx(5, uid(5), 100, 92, 8))
    log.published(rid(5), 51.01).end(rid(5), 52).report(rid(5), 52)
    return log


def test_lambda_error_incidents_are_invocations_or_failed_cold_starts(tmp_path: Path) -> None:
    result, ref = audit_logs(tmp_path, _error_log())
    s = summary(result)
    # events: 2 sync errors, 2 × (uncaught exception + failed INIT_REPORT), 1 crash, 1 timeout, 1 invoke error
    assert s["lambda_errors"] == ref.error_events == 9
    # incidents: r1, r2, r3, r4 and the two failed cold starts
    assert {r for _, r in ref.error_invocations} == {rid(1), rid(2), rid(3), rid(4)} and len(ref.failed_inits) == 2
    assert s["lambda_error_incidents"] == ref.incidents == 6
    assert (s["invocations_with_errors"], s["failed_inits"]) == (4, 2)


def test_a_failed_init_right_after_an_invocation_is_its_own_incident(tmp_path: Path) -> None:
    """INIT_REPORT has no requestId: it must not be taken for the preceding invocation's error."""
    log = Log()
    r1 = rid(1)
    log.start(r1, 0)
    block(log, r1, 1, full_tx(1, uid(1), 100, 92, 8))
    log.sync_error(r1, 1.01).end(r1, 2).report(r1, 2)
    log.raw(5, "INIT_START Runtime Version: nodejs:20.v13\tRuntime Version ARN: arn:aws:lambda:us-east-1::runtime:x")
    log.raw(5.3, "INIT_REPORT Init Duration: 226.09 ms\tPhase: init\tStatus: error\tError Type: Runtime.ExitError")
    result, ref = audit_logs(tmp_path, log)
    s = summary(result)
    assert s["lambda_errors"] == ref.error_events == 2
    assert s["lambda_error_incidents"] == ref.incidents == 2
