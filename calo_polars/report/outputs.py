"""Outputs: write the report files of an audit (workbook, report.html, Parquet, CSV, summary.json) into one folder,
never inside an input."""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from calo_polars.atomic import write_bytes
from calo_polars.audit.result import AuditResult
from calo_polars.errors import OutputError, UsageError
from calo_polars.read.s3 import is_s3
from calo_polars.report.exports import TABLES, write_exports
from calo_polars.report.html import HTML_NAME, write_html
from calo_polars.report.summary import summary, summary_bytes
from calo_polars.report.xlsx.workbook import write_workbook

WORKBOOK_NAME = "calo_balance_reports.xlsx"
SUMMARY_NAME = "summary.json"


#: Output formats: the workbook, the HTML report, the tables as Parquet or CSV, summary.json alone.
FORMATS: dict[str, str] = {
    "xlsx": "the Excel workbook (calo_balance_reports.xlsx)",
    "html": "one self-contained web page (report.html): overview, charts, flags, a section per flagged user",
    "parquet": "every table as Parquet (transactions.parquet, flags.parquet, users.parquet...)",
    "csv": "every table as CSV (transactions.csv, flags.csv, users.csv...)",
    "json": "summary.json only (it is written with every format)",
}
DEFAULT_FORMATS = ("xlsx",)


@dataclass
class Written:
    """Where the outputs went, the summary that was written, and how long each took."""

    summary_path: Path
    summary: dict[str, Any]
    workbook: Path | None = None
    html: Path | None = None
    exports: list[Path] = field(default_factory=list)
    seconds: dict[str, float] = field(default_factory=dict)

    @property
    def paths(self) -> list[Path]:
        """Every file written, summary.json last."""
        first = [p for p in (self.workbook, self.html) if p is not None]
        return [*first, *self.exports, self.summary_path]


def _targets(out: Path) -> set[Path]:
    names = [WORKBOOK_NAME, HTML_NAME, SUMMARY_NAME] + [f"{t}.{ext}" for t in TABLES for ext in ("parquet", "csv")]
    return {out / n for n in names}


def check_outdir(inputs: Iterable[str | os.PathLike[str]], outdir: str | os.PathLike[str]) -> None:
    """Refuse an output folder that is, or is inside, an input (or would overwrite one).

    Raises ``UsageError`` before any work is done: the tool never writes inside its input.
    S3 inputs cannot overlap a local folder.
    """
    out = Path(outdir).resolve()
    if out.exists() and not out.is_dir():
        raise UsageError(f"the output folder {outdir} is a file: give a folder with -o")
    targets = _targets(out)
    for item in inputs:
        if is_s3(item):
            continue
        src = Path(item).resolve()
        if src == out or src in out.parents:
            raise UsageError(
                f"the output folder {outdir} is inside the input {item}: give another folder with -o (the tool never "
                "writes inside its input)"
            )
        if src in targets:
            raise UsageError(f"writing into {outdir} would overwrite the input {item}: give another folder with -o")


def write_outputs(
    result: AuditResult,
    outdir: str | Path,
    formats: Iterable[str] = DEFAULT_FORMATS,
    *,
    on_step: Callable[[str], None] | None = None,
) -> Written:
    """Write the chosen ``formats`` (``FORMATS``), then ``summary.json``, into ``outdir``.

    summary.json is always written, and last, so it never describes a file that was not
    written. Each file is written atomically. ``on_step(name)`` is called before each format
    (for progress displays).
    """
    check_outdir(result.inputs, outdir)
    chosen = list(dict.fromkeys(formats))
    unknown = [f for f in chosen if f not in FORMATS]
    if unknown:
        raise UsageError(f"unknown output format {unknown[0]!r}: choose among {', '.join(FORMATS)}")
    out = Path(outdir)
    data = summary(result)
    written = Written(out / SUMMARY_NAME, data)

    def step(name: str) -> float:
        if on_step is not None:
            on_step(name)
        return time.perf_counter()

    try:
        if "xlsx" in chosen:
            started = step("xlsx")
            written.workbook = out / WORKBOOK_NAME
            write_workbook(result, written.workbook, data)
            written.seconds["xlsx"] = time.perf_counter() - started
        if "html" in chosen:
            started = step("html")
            written.html = out / HTML_NAME
            write_html(result, written.html, data)
            written.seconds["html"] = time.perf_counter() - started
        exports = [f for f in chosen if f in ("parquet", "csv")]
        if exports:
            started = step("+".join(exports))
            written.exports = write_exports(result, out, exports)
            written.seconds["+".join(exports)] = time.perf_counter() - started
        write_bytes(written.summary_path, summary_bytes(data))
    except OSError as exc:
        raise OutputError(f"cannot write into {outdir}: {exc.strerror or exc}") from None
    return written
