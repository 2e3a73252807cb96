"""Shared fixtures: the real archive (skipped when absent, required under CI) and runners."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from calo_polars import AuditOptions, AuditResult, audit

REAL_ARCHIVE = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "balance-sync-logs.zip"


@pytest.fixture(scope="session")
def real_archive() -> Path:
    """The real CloudWatch export; a clone without ../shared skips, CI (CI=true) fails."""
    if not REAL_ARCHIVE.exists():
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"the real archive must exist under CI: {REAL_ARCHIVE}")
        pytest.skip(f"real archive not found at {REAL_ARCHIVE} (it lives in ../shared/data next to the checkout)")
    return REAL_ARCHIVE


@pytest.fixture(scope="session")
def real_result(real_archive: Path) -> AuditResult:
    return audit([real_archive])


def run_audit(tmp_path: Path, *logs_text: str, options: AuditOptions = AuditOptions()) -> AuditResult:
    """Write each text as its own plain log file and audit them."""
    paths = []
    for i, text in enumerate(logs_text):
        p = tmp_path / f"log{i}.log"
        p.write_text(text, encoding="utf-8")
        paths.append(p)
    return audit(paths, options)
