"""Outputs: write every report file of an audit into one folder, never inside an input."""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .atomic import write_bytes
from .audit import AuditResult
from .errors import OutputError, UsageError
from .s3 import is_s3
from .summary import summary, summary_bytes
from .workbook import write_workbook

WORKBOOK_NAME = "calo_balance_reports.xlsx"
SUMMARY_NAME = "summary.json"


@dataclass
class Written:
    """Where the outputs went, and the summary that was written."""

    workbook: Path
    summary_path: Path
    summary: dict[str, Any]


def check_outdir(inputs: Iterable[str | os.PathLike[str]], outdir: str | os.PathLike[str]) -> None:
    """Refuse an output folder that is, or is inside, an input (or would overwrite one).

    Raises ``UsageError`` before any work is done: the tool never writes inside its input.
    """
    out = Path(outdir).resolve()
    if out.exists() and not out.is_dir():
        raise UsageError(f"the output folder {outdir} is a file: give a folder with -o")
    targets = {out / WORKBOOK_NAME, out / SUMMARY_NAME}
    for item in inputs:
        if is_s3(item):
            continue
        src = Path(item).resolve()
        if src == out or src in out.parents:
            raise UsageError(f"the output folder {outdir} is inside the input {item}: give another folder with -o (the tool never writes inside its input)")
        if src in targets:
            raise UsageError(f"writing into {outdir} would overwrite the input {item}: give another folder with -o")


def write_outputs(result: AuditResult, outdir: str | Path) -> Written:
    """Write the workbook, then ``summary.json``, into ``outdir`` (created if needed).

    Each file is written atomically; summary.json comes last, so it never describes a
    workbook that was not written.
    """
    check_outdir(result.inputs, outdir)
    out = Path(outdir)
    data = summary(result)
    workbook, summary_path = out / WORKBOOK_NAME, out / SUMMARY_NAME
    try:
        write_workbook(result, workbook, data)
        write_bytes(summary_path, summary_bytes(data))
    except OSError as exc:
        raise OutputError(f"cannot write into {outdir}: {exc.strerror or exc}") from None
    return Written(workbook, summary_path, data)
