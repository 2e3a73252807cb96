"""The outputs match the recorded fingerprints (``tests/snapshot.py``): a refactor changes nothing.

When behaviour changes on purpose, re-record with ``python -m tests.snapshot record`` in the
same commit and say why in its message.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.snapshot import INPUTS, SNAPSHOTS, fingerprint


@pytest.mark.parametrize("name", sorted(INPUTS))
def test_outputs_match_the_snapshot(name: str, request: pytest.FixtureRequest) -> None:
    if name == "real":
        request.getfixturevalue("real_archive")  # skips (or fails under CI) without ../shared
    expected = json.loads((SNAPSHOTS / f"{name}.json").read_text())
    got = fingerprint(Path(INPUTS[name]))
    assert list(got["sheets"]) == list(expected["sheets"]), "the workbook's sheets changed"
    changed = [s for s in expected["sheets"] if got["sheets"][s] != expected["sheets"][s]]
    assert not changed, f"cells changed in sheets {changed}"
    assert got["summary_sha256"] == expected["summary_sha256"], "summary.json changed"
