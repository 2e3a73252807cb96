"""Outputs: write the report files of an audit (workbook, report.html, Parquet, CSV, summary.json) into one folder,
never inside an input.

The outputs of one run appear together or not at all. Every file is first written into a
staging folder inside the output folder (``.calo-outputs-<pid>-<random>.tmp``, the same file
system, so a rename is atomic); the previous outputs stay as they were meanwhile. Only once
every file is written (and flushed) is a ``COMMIT`` list written there, and each file renamed
into place, summary.json last. A run that fails or is interrupted before ``COMMIT`` leaves
nothing but the staging folder, which it removes itself (Ctrl-C, SIGTERM, a full disk) or the
next run removes (``kill -9``). A run killed while renaming (a few microseconds) leaves a
``COMMIT`` list: the next run finishes those renames before anything else (roll forward).
Files of other formats written by an earlier run are left as they are.
"""

from __future__ import annotations

import os
import secrets
import shutil
import time
from collections.abc import Callable, Iterable
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from calo_polars.atomic import is_stale, remove_stale, temp_affixes, write_bytes
from calo_polars.audit.result import AuditResult
from calo_polars.errors import OutputError, UsageError
from calo_polars.read.s3 import is_s3
from calo_polars.read.sources import input_holding
from calo_polars.report import bounded, ledger
from calo_polars.report.exports import (
    LEDGER_PARQUET,
    TABLES,
    ledger_parquet,
    named_error,
    write_exports,
    write_ledger_parquet,
    write_table_parquet,
)
from calo_polars.report.html import HTML_NAME, write_html
from calo_polars.report.summary import summary, summary_bytes
from calo_polars.report.xlsx.workbook import write_workbook

WORKBOOK_NAME = "calo_balance_reports.xlsx"
SUMMARY_NAME = "summary.json"
#: The staging folder of a run's outputs, and the list that says they are all written.
STAGING_PREFIX, STAGING_SUFFIX = ".calo-outputs-", ".tmp"
COMMIT = "COMMIT"


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
    names += [LEDGER_PARQUET, *(f"{b.table}.parquet" for b in bounded.BOUNDED.values())]
    return {out / n for n in names}


def check_outdir(inputs: Iterable[str | os.PathLike[str]], outdir: str | os.PathLike[str]) -> None:
    """Refuse an output folder that is, or is inside, an input (or would overwrite one).

    Raises ``UsageError`` before any work is done: the tool never writes inside its input.
    S3 inputs cannot overlap a local folder.
    """
    out = Path(os.path.realpath(outdir))  # never raises, even on a symlink loop
    if out.exists() and not out.is_dir():
        raise UsageError(f"the output folder {outdir} is a file: give a folder with -o")
    inputs = list(inputs)
    holder = input_holding(out, inputs)
    if holder is not None:
        raise UsageError(
            f"the output folder {outdir} is inside the input {holder}: give another folder with -o (the tool never "
            "writes inside its input)"
        )
    targets = _targets(out)
    for item in inputs:
        if not is_s3(item) and Path(os.path.realpath(item)) in targets:
            raise UsageError(f"writing into {outdir} would overwrite the input {item}: give another folder with -o")


def write_outputs(
    result: AuditResult,
    outdir: str | Path,
    formats: Iterable[str] = DEFAULT_FORMATS,
    *,
    on_step: Callable[[str], None] | None = None,
    full_ledger: bool = False,
) -> Written:
    """Write the chosen ``formats`` (``FORMATS``), then ``summary.json``, into ``outdir``.

    summary.json is always written, and last, so it never describes a file that was not
    written. Each file is written atomically. ``on_step(name)`` is called before each format
    (for progress displays). The workbook's Ledger sheet holds the flagged transactions with
    their context (``report.ledger``), or every transaction with ``full_ledger``; when it is
    not complete, ``ledger.parquet`` (the complete Ledger) is always written beside it (with
    ``parquet`` among the formats, ``transactions.parquet`` holds it, and is not written twice).
    """
    check_outdir(result.inputs, outdir)
    chosen = list(dict.fromkeys(formats))
    unknown = [f for f in chosen if f not in FORMATS]
    if unknown:
        raise UsageError(f"unknown output format {unknown[0]!r}: choose among {', '.join(FORMATS)}")
    out = Path(outdir)
    view = ledger.view(result, full=full_ledger) if "xlsx" in chosen else None
    signals = bounded.full_tables(result) if view is not None else {}  # capped sheets: whole tables beside
    too_long = bounded.describe(signals)
    data = summary(
        result,
        None if view is None else view.shown.describe(ledger_parquet(chosen)),
        None if view is None else too_long,
    )
    written = Written(out / SUMMARY_NAME, data)

    def step(name: str) -> float:
        if on_step is not None:
            on_step(name)
        return time.perf_counter()

    stage = None
    beside: Future[list[tuple[str, str, float]]] | None = None
    try:
        out.mkdir(parents=True, exist_ok=True)
        recover(out)
        stage = out / f"{STAGING_PREFIX}{os.getpid()}-{secrets.token_hex(4)}{STAGING_SUFFIX}"  # named, then made:
        stage.mkdir()  # a signal at any point leaves nothing the finally below does not remove
        names = []
        exports = [f for f in chosen if f in ("parquet", "csv")]
        whole_ledger = view is not None and not view.shown.complete and "parquet" not in exports
        if view is not None and (whole_ledger or too_long):  # the Parquet files beside, written while the workbook is
            pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="calo-beside")
            beside = pool.submit(_write_beside, stage, view if whole_ledger else None, signals, too_long)
            pool.shutdown(wait=False)
        if "xlsx" in chosen:
            started = step("xlsx")
            try:
                write_workbook(result, stage / WORKBOOK_NAME, data, view, signals)
            except OSError as exc:
                raise named_error(exc, stage / WORKBOOK_NAME) from None
            names.append(WORKBOOK_NAME)
            written.workbook = out / WORKBOOK_NAME
            written.seconds["xlsx"] = time.perf_counter() - started
        if "html" in chosen:
            started = step("html")
            try:
                write_html(result, stage / HTML_NAME, data)  # staged, committed with the others
            except OSError as exc:
                raise named_error(exc, stage / HTML_NAME) from None
            names.append(HTML_NAME)
            written.html = out / HTML_NAME
            written.seconds["html"] = time.perf_counter() - started
        if exports:
            started = step("+".join(exports))
            staged = write_exports(result, stage, exports)
            names += [p.name for p in staged]
            written.exports = [out / p.name for p in staged]
            written.seconds["+".join(exports)] = time.perf_counter() - started
        if beside is not None:
            for label, name, seconds in beside.result():  # its error (a full disk, naming the file) raised here
                step(label)
                names.append(name)
                written.exports.append(out / name)
                key = f"{label} (beside xlsx)"  # overlapped the workbook: not added to the run's time
                written.seconds[key] = written.seconds.get(key, 0.0) + seconds
        try:
            write_bytes(stage / SUMMARY_NAME, summary_bytes(data))
        except OSError as exc:
            raise named_error(exc, stage / SUMMARY_NAME) from None
        names.append(SUMMARY_NAME)
        _commit(stage, out, names)
    except OSError as exc:
        raise OutputError(
            f"cannot write into {outdir}: {_what(exc, stage)}{exc.strerror or exc} "
            "(the previous outputs are as they were)"
        ) from None
    finally:
        if beside is not None:
            wait([beside])  # never remove the staging folder under the thread writing into it
        if stage is not None:
            shutil.rmtree(stage, ignore_errors=True)
    return written


def _write_beside(
    stage: Path, view: ledger.LedgerView | None, signals: dict[str, Any], too_long: Iterable[str]
) -> list[tuple[str, str, float]]:
    """The Parquet files beside the workbook: the complete Ledger (``view`` given: its sheet is
    not, and no ``-f parquet`` holds it), the whole tables of capped sheets. Run in a thread
    beside the workbook (mostly Python, holding the GIL; these mostly Arrow and Polars, which
    release it): (progress label, file name, seconds) of each file, in the order they are committed."""
    done = []
    if view is not None:
        started = time.perf_counter()
        name = write_ledger_parquet(stage, view.parts()).name
        done.append(("ledger parquet", name, time.perf_counter() - started))
    for sheet in too_long:
        started = time.perf_counter()
        name = write_table_parquet(signals[sheet], stage, bounded.BOUNDED[sheet].table).name
        done.append(("sheets parquet", name, time.perf_counter() - started))
    return done


def _what(exc: OSError, stage: Path | None) -> str:
    """The output file an error names (``calo_balance_reports.xlsx: ``), never the staging path."""
    name = getattr(exc, "filename", None)
    if not name or stage is None or Path(name) in (stage, stage.parent) or Path(name).parent != stage:
        return ""
    return f"{Path(name).name}: "


def _commit(stage: Path, out: Path, names: list[str]) -> None:
    """Say that every file is staged (``COMMIT``), then rename each into place, summary.json last."""
    write_bytes(stage / COMMIT, "".join(f"{n}\n" for n in names).encode())
    _finish(stage, out)


def _finish(stage: Path, out: Path) -> None:
    """Rename the staged files a ``COMMIT`` lists into ``out`` (those still there), then drop the folder."""
    names = (stage / COMMIT).read_text(encoding="utf-8").splitlines()
    for name in sorted(names, key=lambda n: n == SUMMARY_NAME):
        if name and "/" not in name and (stage / name).is_file():
            os.replace(stage / name, out / name)
    shutil.rmtree(stage, ignore_errors=True)


def recover(out: Path) -> None:
    """Clean up after a run that was killed (``kill -9``) while writing into ``out``: finish the
    renames of one that had staged every file (``COMMIT``), remove the staging folder of one that
    had not, and the temporaries of an older version (written beside the targets)."""
    for stage in sorted(out.glob(f"{STAGING_PREFIX}*{STAGING_SUFFIX}")):
        if not stage.is_dir() or not is_stale(stage, STAGING_PREFIX):
            continue
        if (stage / COMMIT).is_file():
            _finish(stage, out)
        else:
            shutil.rmtree(stage, ignore_errors=True)
    remove_stale(out, [temp_affixes(t) for t in _targets(out)])
