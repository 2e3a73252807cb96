"""Outputs: write every report file of an audit into one folder."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .audit import AuditResult
from .summary import write_summary
from .workbook import write_workbook

WORKBOOK_NAME = "calo_balance_reports.xlsx"
SUMMARY_NAME = "summary.json"


@dataclass
class Written:
    """Where the outputs went, and the summary that was written."""

    workbook: Path
    summary_path: Path
    summary: dict[str, Any]


def write_outputs(result: AuditResult, outdir: str | Path) -> Written:
    """Write ``summary.json`` and the workbook into ``outdir`` (created if needed)."""
    out = Path(outdir)
    out.mkdir(parents=True, exist_ok=True)
    summary_path = out / SUMMARY_NAME
    data = write_summary(result, summary_path)
    workbook = out / WORKBOOK_NAME
    write_workbook(result, workbook, data)
    return Written(workbook, summary_path, data)
