"""Accuracy: synthetic archives audited by the tool find exactly the faults the generator injected.

Precision and recall must both be exactly 1 for every check, every outcome of a transaction and
every flow-break cause (the definitions of ../issues-text/OUTCOMES-SPEC.md, issue 12), on several
shapes and seeds, and the parse must account for every event the generator wrote. The tool is
read through ``calo_polars.audit``: the transactions' ``outcome``/``applied``/``not_in_sync_after``
columns and the flags table's ``check`` and ``cause``.
"""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path
from typing import Any

import polars as pl
import pytest

from calo_polars import AuditResult, audit
from calo_polars.report.summary import summary
from calo_polars.synth import CLEAN, Rates, SynthOptions, synthesize

CHECKS = ("overdraft", "mismatch", "flow_break", "delta_anomaly", "negative_amount", "currency_change")
OUTCOMES = ("published", "already_synced", "refused", "failed", "skipped", "unknown")
CAUSES = ("refused_applied_later", "sent_again", "not_applied", "after_not_in_sync", "logs_missing", "unexplained")
#: The causes OUTCOMES-SPEC.md fixes, each injected at known places (refused_applied_later is the tool's extra one).
SPEC_CAUSES = CAUSES[1:]
#: Every fault kind, duplicates included: a retried transaction is set aside, never counted twice.
FAULTY = Rates(overdraft=0.01, mismatch=0.01, flow_break=0.01, delta_anomaly=0.01, duplicate=0.01)
HEAVY = Rates(overdraft=0.04, mismatch=0.04, flow_break=0.04, delta_anomaly=0.04, duplicate=0.04)
#: Issue 12's faults besides the above: every outcome and every flow-break cause, at known places.
OUTCOME_FAULTS = dict(
    refused=0.02, sent_again=0.01, not_applied=0.02, not_in_sync=0.01, negative_amount=0.01,
    failed=0.005, skipped=0.005, unknown=0.005, logs_missing=0.04,
)  # fmt: skip
ISSUE12 = Rates(overdraft=0.01, mismatch=0.01, flow_break=0.01, delta_anomaly=0.01, duplicate=0.01, **OUTCOME_FAULTS)
ISSUE12_HEAVY = Rates(
    overdraft=0.04, mismatch=0.04, flow_break=0.04, delta_anomaly=0.04, duplicate=0.04,
    **{k: min(0.1, 3 * v) for k, v in OUTCOME_FAULTS.items()},
)  # fmt: skip

SHAPES: dict[str, dict[str, Any]] = {
    "tiny": dict(users=6, days=21, seed=11, rates=HEAVY),
    "many_users": dict(users=2500, days=4, seed=12, rates=FAULTY),
    "long_histories": dict(users=10, days=400, seed=13, rates=FAULTY),
    "legacy_only": dict(users=150, days=30, seed=14, rates=FAULTY, legacy_until=date(2030, 1, 1)),
    "heavy_out_of_order": dict(
        users=200, days=20, seed=15, rates=FAULTY, out_of_order=1.0, split=1.0, error_rate=0.03, crash_rate=0.5
    ),
    "seed_21": dict(users=300, days=40, seed=21, rates=FAULTY),
    "seed_22": dict(users=300, days=40, seed=22, rates=FAULTY),
    "seed_23": dict(users=300, days=40, seed=23, rates=FAULTY),
    "outcomes_tiny": dict(users=8, days=30, seed=71, rates=ISSUE12_HEAVY),
    "outcomes_mixed": dict(users=300, days=45, seed=72, rates=ISSUE12),
    "outcomes_legacy_only": dict(users=150, days=30, seed=73, rates=ISSUE12, legacy_until=date(2030, 1, 1)),
    "outcomes_out_of_order": dict(
        users=200, days=30, seed=74, rates=ISSUE12_HEAVY, out_of_order=1.0, split=1.0, error_rate=0.03, crash_rate=0.5
    ),
    "outcomes_long_histories": dict(users=12, days=300, seed=75, rates=ISSUE12),
}


def generate(tmp_path: Path, name: str = "logs.zip", **options: Any) -> tuple[Path, dict[str, Any]]:
    report = synthesize(SynthOptions(**{"workers": 1, **options}), tmp_path / name)
    return report.path, json.loads(report.truth_path.read_text(encoding="utf-8"))


def injected(truth: dict[str, Any], kind: str) -> set[str]:
    return {f["tx_id"] for f in truth["faults"] if f["kind"] == kind}


def caused(truth: dict[str, Any], cause: str) -> set[str]:
    return {f["tx_id"] for f in truth["faults"] if f["kind"] == "flow_break" and f["cause"] == cause}


def flagged(result: AuditResult, check: str) -> set[str]:
    return set(result.transactions.filter(pl.col(check))["tx_id"])


def same(name: str, want: set[str], got: set[str]) -> None:
    """Precision and recall exactly 1, with the first few misses and false alarms named."""
    assert got == want, f"{name}: missed {sorted(want - got)[:5]}, not in the truth {sorted(got - want)[:5]}"


def assert_exact(result: AuditResult, truth: dict[str, Any]) -> None:
    """Precision and recall exactly 1 for every check (its column and its RedFlags rows), every
    outcome and every flow-break cause, and for the duplicates set aside."""
    flags = result.flags
    for check in CHECKS:
        want = injected(truth, check)
        same(check, want, flagged(result, check))
        same(f"{check} in the flags table", want, set(flags.filter(pl.col("check") == check)["tx_id"]))
    assert set(result.duplicates["tx_id"]) == injected(truth, "duplicate")
    assert_outcomes_exact(result, truth)
    breaks = flags.filter(pl.col("check") == "flow_break")
    for cause in CAUSES:
        same(f"flow breaks caused {cause}", caused(truth, cause), set(breaks.filter(pl.col("cause") == cause)["tx_id"]))
    assert breaks["cause"].null_count() == 0
    data = summary(result)
    assert data["outcomes"] == truth["outcome_counts"]
    assert data["flow_break_causes"] == truth["flow_break_causes"]


def assert_outcomes_exact(result: AuditResult, truth: dict[str, Any]) -> None:
    """Every transaction's outcome, ``applied`` and ``not_in_sync_after`` as the generator wrote them."""
    txs = result.transactions
    for outcome in OUTCOMES:
        got = set(txs.filter(pl.col("outcome") == outcome)["tx_id"])
        same(f"outcome {outcome}", set(truth["outcomes"][outcome]), got)
    assert txs["outcome"].null_count() == 0
    same("not applied", set(truth["outcomes"]["refused"]), set(txs.filter(~pl.col("applied"))["tx_id"]))
    same("not_in_sync_after", set(truth["not_in_sync_after"]), set(txs.filter(pl.col("not_in_sync_after"))["tx_id"]))


def assert_read_completely(result: AuditResult, truth: dict[str, Any]) -> None:
    """Every event written was read as the kind it was written as; nothing left unparsed."""
    ing = result.ingested
    assert ing.unparsed.height == 0
    assert {k: v for k, v in ing.kind_counts.items() if v} == truth["event_kinds"]
    archive = truth["archive"]
    assert len(ing.files) == archive["files"]
    assert result.transactions["tx_id"].n_unique() == archive["transactions"]
    assert result.transactions["user_id"].n_unique() == archive["users"]
    invocations = ing.invocations.filter(pl.col("request_id") != "undefined")
    assert invocations.height == archive["invocations"]
    incomplete = set(invocations.filter(pl.col("status") != "complete")["request_id"])
    assert incomplete == {i["request_id"] for i in truth["incomplete_invocations"]}
    # the only input problems are the invocations cut short on purpose (timeouts end properly)
    cut = invocations.filter(pl.col("status").str.starts_with("incomplete")).height
    assert ing.problems.counts() == ({"incomplete_invocation": cut} if cut else {})


@pytest.mark.parametrize("shape", list(SHAPES))
def test_audit_finds_exactly_the_injected_faults(tmp_path: Path, shape: str) -> None:
    path, truth = generate(tmp_path, **SHAPES[shape])
    result = audit([path])
    assert_read_completely(result, truth)
    assert_exact(result, truth)
    assert sum(truth["fault_counts"].values()) > 0


def test_every_outcome_and_cause_is_injected_and_found(tmp_path: Path) -> None:
    """Issue 12's kinds at known places: none of these tests is vacuous."""
    path, truth = generate(tmp_path, users=400, days=45, seed=36, rates=ISSUE12)
    assert all(truth["outcome_counts"][o] >= 5 for o in OUTCOMES), truth["outcome_counts"]
    assert all(truth["flow_break_causes"][c] >= 5 for c in SPEC_CAUSES), truth["flow_break_causes"]
    assert truth["fault_counts"]["negative_amount"] >= 5 and truth["missing_days"] and truth["silences"]
    result = audit([path])
    assert_read_completely(result, truth)
    assert_exact(result, truth)
    data = summary(result)
    assert data["overdraft_events"] == truth["fault_counts"]["overdraft"]
    assert data["flow_breaks"] == truth["fault_counts"]["flow_break"]


def test_refused_attempts_leave_the_balance_history(tmp_path: Path) -> None:
    """A refused block is in the Ledger with its outcome but moves nothing: no overdraft, no flow
    break, no anomaly, no window of its own, and the wallet's next block starts from its oldBalance."""
    path, truth = generate(tmp_path, users=200, days=30, seed=33, rates=Rates(refused=0.05))
    refused = set(truth["outcomes"]["refused"])
    assert len(refused) >= 20 and truth["faults"] == []
    result = audit([path])
    txs = result.transactions
    rows = txs.filter(pl.col("tx_id").is_in(sorted(refused)))
    assert rows.height == len(refused)
    assert (rows["new_balance"] < 0).all() and rows["overdraft_after"].all()  # the logged reading stays visible
    assert result.flags.height == 0, result.flags.head(5)
    assert_outcomes_exact(result, truth)


def test_every_fault_kind_is_injected_and_found(tmp_path: Path) -> None:
    path, truth = generate(tmp_path, users=400, days=45, seed=31, rates=FAULTY)
    result = audit([path])
    seeded = ("overdraft", "mismatch", "flow_break", "delta_anomaly")  # negative amounts: the outcome tests
    assert all(truth["fault_counts"][check] >= 5 for check in seeded), truth["fault_counts"]
    assert_exact(result, truth)
    data = summary(result)
    assert (data["overdraft_events"], data["mismatches"], data["flow_breaks"], data["delta_anomalies"]) == tuple(
        truth["fault_counts"][c] for c in seeded
    )


@pytest.mark.parametrize(
    "shape",
    [dict(users=500, days=45, seed=41), dict(users=80, days=200, seed=42, legacy_until=date(2024, 4, 1))],
    ids=["mixed", "long_legacy_then_full"],
)
def test_a_clean_archive_audits_with_zero_flags(tmp_path: Path, shape: dict[str, Any]) -> None:
    path, truth = generate(tmp_path, rates=CLEAN, **shape)
    result = audit([path])
    assert truth["faults"] == []
    assert result.flags.height == 0, result.flags.head(5)
    assert_read_completely(result, truth)


def test_the_output_forms_audit_alike(tmp_path: Path) -> None:
    """The zip, the unzipped folder and the single multi-member .gz hold the same logs."""
    options = dict(users=60, days=15, seed=51, rates=FAULTY)
    zipped, truth = generate(tmp_path, "a.zip", **options)
    folder, _ = generate(tmp_path, "folder", **options)
    single, _ = generate(tmp_path, "logs.gz", **options)
    results = [audit([p]) for p in (zipped, folder, single)]
    columns = ["tx_id", "old_balance", "new_balance", "mismatch", "flow_break", "delta_anomaly", "overdraft"]
    frames = [r.transactions.select(columns).sort("tx_id") for r in results]
    assert frames[0].equals(frames[1]) and frames[0].equals(frames[2])
    for r in results:
        assert_exact(r, truth)


def test_duplicates_are_found(tmp_path: Path) -> None:
    rates = Rates(overdraft=0.01, mismatch=0.01, flow_break=0.01, delta_anomaly=0.01, duplicate=0.03)
    path, truth = generate(tmp_path, users=300, days=30, seed=61, rates=rates)
    result = audit([path])
    want = injected(truth, "duplicate")
    assert len(want) >= 10
    assert set(result.duplicates["tx_id"]) == want
    assert summary(result)["duplicate_transactions"] == len(want)


def test_duplicates_are_not_counted_twice_by_the_checks(tmp_path: Path) -> None:
    rates = Rates(overdraft=0.01, mismatch=0.01, flow_break=0.01, delta_anomaly=0.01, duplicate=0.03)
    path, truth = generate(tmp_path, users=300, days=30, seed=62, rates=rates)
    assert_exact(audit([path]), truth)
