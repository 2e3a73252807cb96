"""What an audit is asked (``AuditOptions``) and what it hands every output (``AuditResult``).

Kept apart from the run itself so that the outputs depend on these two types only.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import polars as pl

from calo_polars.audit import state
from calo_polars.audit.parts import CheckedParts
from calo_polars.audit.selection import Selection
from calo_polars.checks.plan import CheckOptions, with_derived
from calo_polars.parse.events import FileIndex
from calo_polars.parse.ingest import Ingested
from calo_polars.parse.partition import PART_ROWS
from calo_polars.read.inflate import Limits
from calo_polars.read.s3 import S3Options


@dataclass(frozen=True)
class AuditOptions:
    """Everything that changes what an audit computes (not where it writes)."""

    checks: CheckOptions = field(default_factory=CheckOptions)
    threads: int = 2
    batch_bytes: int = 32 << 20
    sample_size: int = 200
    limits: Limits = field(default_factory=Limits)  # how far inputs may inflate (zip bombs)
    mask_pii: bool = True  # mask emails and phone numbers in every output
    selection: Selection = field(default_factory=Selection)  # what is reported; never what is checked
    s3: S3Options = field(default_factory=S3Options)  # how s3:// inputs are reached
    part_rows: int = PART_ROWS  # transactions checked at once (a user range); bounds memory
    state: str | None = (
        None  # --state FILE: continue the runs before (``state``); the caller saves ``incremental.next``
    )


@dataclass
class AuditResult:
    """The checked tables of one audit, ready for any output format."""

    inputs: list[str]
    options: AuditOptions
    ingested: Ingested
    parts: CheckedParts  # every transaction, its window columns and flags (STORED_CHECK_COLUMNS), by user then time
    flags: pl.DataFrame  # one row per flag, with severity and reason
    users: pl.DataFrame  # one row per user and currency
    totals: pl.DataFrame  # one row per currency
    incremental: state.Incremental | None = None  # with --state: what was carried in, and the next state

    @property
    def checked(self) -> pl.DataFrame:
        """Every checked transaction in one frame (``parts`` collected): for small runs and tests.
        Outputs iterate ``parts`` instead, so a store of any size is read one user range at a time."""
        return self.parts.collect()

    def close(self) -> None:
        """Remove what the result keeps on disk (the spilled parts of a store run)."""
        self.parts.close()

    @property
    def transactions(self) -> pl.DataFrame:
        """Every transaction with every computed column (``with_checks``'s table), by user
        then time, text columns as String. Computed from ``checked`` on each access: use
        ``checked`` where the per-row arithmetic is not needed, or ``derived`` on the rows
        that need it."""
        table = self.derived(self.checked)
        return table.cast({name: pl.String for name, dtype in table.schema.items() if dtype == pl.Categorical})

    def derived(self, rows: pl.DataFrame) -> pl.DataFrame:
        """Rows of ``checked`` with the per-row arithmetic columns added (``with_derived``)."""
        return with_derived(rows.lazy(), self.options.checks).collect(engine="in-memory")

    @property
    def files(self) -> FileIndex:
        return self.ingested.files

    @property
    def duplicates(self) -> pl.DataFrame:
        """One row per extra copy of a transaction id, set aside (see ``duplicates``)."""
        return self.ingested.duplicates

    def with_file(self, frame: pl.DataFrame) -> pl.DataFrame:
        """Replace ``file_id`` (and ``kept_file_id``) by the file's display path."""
        named = [frame[c] for c in ("file_id", "kept_file_id", "next_file_id") if c in frame.columns]
        if not named:
            return frame
        paths = self.files.frame_of(pl.concat([c.cast(pl.UInt32) for c in named])).select("file_id", "file")
        for id_col, name in (("file_id", "file"), ("kept_file_id", "kept_file"), ("next_file_id", "next_file")):
            if id_col in frame.columns:
                frame = frame.join(
                    paths.rename({"file_id": id_col, "file": name}), on=id_col, how="left", maintain_order="left"
                )
                frame = frame.select([name if c == id_col else c for c in frame.columns if c != name])
        return frame

    def carried_rows(self) -> pl.DataFrame | None:
        """The previous exports' last transactions whose flow break this run reports (--state),
        as ``with_file`` shows rows (the file from where the earlier run read it); None without
        one, or when a selection limits the report (it drops carried flags too)."""
        inc = self.incremental
        if inc is None or inc.carried_rows is None or inc.carried_rows.is_empty() or self.options.selection.active:
            return None
        rows = self.with_file(self.derived(inc.carried_rows.drop(state.STATE_FILE)).drop("file_id"))
        return rows.with_columns(inc.carried_rows[state.STATE_FILE].alias("file"))
