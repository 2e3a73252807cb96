"""Accuracy: synthetic archives audited by the tool find exactly the faults the generator injected.

Precision and recall must both be exactly 1 for every check, on several shapes and seeds, and
the parse must account for every event the generator wrote.
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

CHECKS = ("overdraft", "mismatch", "flow_break", "delta_anomaly")
#: Every fault kind, duplicates included: a retried transaction is set aside, never counted twice.
FAULTY = Rates(overdraft=0.01, mismatch=0.01, flow_break=0.01, delta_anomaly=0.01, duplicate=0.01)
HEAVY = Rates(overdraft=0.04, mismatch=0.04, flow_break=0.04, delta_anomaly=0.04, duplicate=0.04)

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
}


def generate(tmp_path: Path, name: str = "logs.zip", **options: Any) -> tuple[Path, dict[str, Any]]:
    report = synthesize(SynthOptions(**{"workers": 1, **options}), tmp_path / name)
    return report.path, json.loads(report.truth_path.read_text(encoding="utf-8"))


def injected(truth: dict[str, Any], kind: str) -> set[str]:
    return {f["tx_id"] for f in truth["faults"] if f["kind"] == kind}


def flagged(result: AuditResult, check: str) -> set[str]:
    return set(result.transactions.filter(pl.col(check))["tx_id"])


def assert_exact(result: AuditResult, truth: dict[str, Any]) -> None:
    """Precision and recall exactly 1 for every check, and for the duplicates set aside."""
    for check in CHECKS:
        want, got = injected(truth, check), flagged(result, check)
        assert got == want, f"{check}: missed {sorted(want - got)[:5]}, not injected {sorted(got - want)[:5]}"
    assert set(result.duplicates["tx_id"]) == injected(truth, "duplicate")


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


def test_every_fault_kind_is_injected_and_found(tmp_path: Path) -> None:
    path, truth = generate(tmp_path, users=400, days=45, seed=31, rates=FAULTY)
    result = audit([path])
    assert all(truth["fault_counts"][check] >= 5 for check in CHECKS), truth["fault_counts"]
    assert_exact(result, truth)
    data = summary(result)
    assert (data["overdraft_events"], data["mismatches"], data["flow_breaks"], data["delta_anomalies"]) == tuple(
        truth["fault_counts"][c] for c in CHECKS
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
