"""Fingerprints of a run's outputs: summary.json's bytes and every workbook cell, per sheet.

Recorded before a refactor (``python -m tests.snapshot record``) and compared after it by
``tests/test_snapshot.py``: a move that changes no behaviour changes no fingerprint. Only
hashes are kept for the real archive, so no line of it reaches the repository.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import openpyxl

ROOT = Path(__file__).resolve().parents[1]
SNAPSHOTS = ROOT / "tests" / "snapshots"
INPUTS = {
    "sample": ROOT / "examples" / "sample-logs.zip",
    "real": ROOT.parent / "shared" / "data" / "balance-sync-logs.zip",
}


def sheet_digests(workbook: Path) -> dict[str, dict[str, Any]]:
    """Per sheet, in workbook order: how many non-empty cells and a hash of (row, col, value)."""
    book = openpyxl.load_workbook(workbook, read_only=True)
    out: dict[str, dict[str, Any]] = {}
    for ws in book.worksheets:
        digest = hashlib.sha256()
        cells = 0
        for row in ws.iter_rows():
            for cell in row:
                if cell.value is None:
                    continue
                cells += 1
                digest.update(f"{cell.row}\t{cell.column}\t{type(cell.value).__name__}\t{cell.value!r}\n".encode())
        out[ws.title] = {"cells": cells, "sha256": digest.hexdigest()}
    book.close()
    return out


def fingerprint(archive: Path) -> dict[str, Any]:
    """Run ``calo-balance report`` on ``archive`` and fingerprint what it wrote.

    Run from the archive's folder on its bare name: cells name the file as it was given, and
    the fingerprint must not depend on where the checkout is.
    """
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run(
            [sys.executable, "-m", "calo_polars", "report", archive.name, "-o", tmp, "-q"],
            check=False,
            capture_output=True,
            cwd=archive.parent,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
        )
        summary = (Path(tmp) / "summary.json").read_bytes()
        return {
            "summary_sha256": hashlib.sha256(summary).hexdigest(),
            "sheets": sheet_digests(Path(tmp) / "calo_balance_reports.xlsx"),
        }


def main() -> None:
    names = sys.argv[2:] or list(INPUTS)
    for name in names:
        SNAPSHOTS.mkdir(exist_ok=True)
        (SNAPSHOTS / f"{name}.json").write_text(json.dumps(fingerprint(INPUTS[name]), indent=1) + "\n")
        print(f"recorded {name}")


if __name__ == "__main__":
    main()
