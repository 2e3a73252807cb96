"""The library's front door: ``audit(inputs)`` reads the logs and runs every check once."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import polars as pl

from .checks import CheckOptions, currency_totals, per_user, red_flags, with_checks
from .errors import NoUsableInput
from .events import FileIndex
from .ingest import Ingested, ingest


@dataclass(frozen=True)
class AuditOptions:
    """Everything that changes what an audit computes (not where it writes)."""

    checks: CheckOptions = field(default_factory=CheckOptions)
    threads: int = 2
    batch_bytes: int = 32 << 20
    sample_size: int = 200


@dataclass
class AuditResult:
    """The checked tables of one audit, ready for any output format."""

    inputs: list[str]
    options: AuditOptions
    ingested: Ingested
    transactions: pl.DataFrame  # every transaction with its computed columns and flags
    flags: pl.DataFrame  # one row per flag, with severity and reason
    users: pl.DataFrame  # one row per user and currency
    totals: pl.DataFrame  # one row per currency

    @property
    def files(self) -> FileIndex:
        return self.ingested.files

    def with_file(self, frame: pl.DataFrame) -> pl.DataFrame:
        """Replace ``file_id`` by the file's display path."""
        paths = self.files.frame().select("file_id", "file")
        cols = [c if c != "file_id" else "file" for c in frame.columns]
        return frame.join(paths, on="file_id", how="left").select(cols)


def audit(
    inputs: Iterable[str | os.PathLike[str]],
    options: AuditOptions = AuditOptions(),
    *,
    on_batch: Callable[[FileIndex, int], None] | None = None,
) -> AuditResult:
    """Read the inputs, then run the check plan once and return every table.

    Raises ``NoUsableInput`` when not a single log file could be read.
    """
    names = [str(i) for i in inputs]
    ingested = ingest(
        names,
        threads=options.threads,
        batch_bytes=options.batch_bytes,
        sample_size=options.sample_size,
        on_batch=on_batch,
    )
    if len(ingested.files) == 0:
        why = "; ".join(p.one_line() for p in ingested.problems.items[:3]) or "no log files found"
        raise NoUsableInput(f"nothing to audit in {', '.join(names)}: {why}")
    checked = with_checks(ingested.transactions.lazy(), options.checks)
    transactions, flags, users, totals = pl.collect_all(
        [checked, red_flags(checked), per_user(checked), currency_totals(checked)], engine="in-memory"
    )
    return AuditResult(names, options, ingested, transactions, flags, users, totals)
