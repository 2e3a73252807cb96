"""The checked transactions as parts: user ranges that, one after another, are the whole table.

Every output that needs the transactions row by row (the exports, the Ledger, the daily and
weekly aggregates) iterates ``CheckedParts`` one part at a time, so what it holds at once is
one part, not the audit. The parts come in the outputs' order (by user, then time) and never
split a user, so per-user windows, per-part aggregates added up, and rows written part after
part all equal what one whole table gives.

Two homes for the parts:

- in memory (``CheckedParts.of``): the frames a one-shot run checked, user range by user range;
- on disk (``CheckedParts.spilled``): stage 2 of a store writes each partition's checked rows
  split by user range into a scratch folder (``range-RRRRR-part-KKKKK.parquet``); a part is read
  back as the files of one range, from every partition, sorted by user then time. The folder is
  removed by ``close`` (the CLI calls it), and otherwise when the object is collected or the
  interpreter exits.
"""

from __future__ import annotations

import shutil
import weakref
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import polars as pl

from calo_polars.checks.plan import ORDER, USER

#: Where a spilled part's files are: one per (user range, partition) that has rows.
SPILL_NAME = "range-{r:05d}-part-{k:05d}.parquet"


class CheckedParts:
    """The checked transactions (kept columns and flags), part by part, by user then time."""

    def __init__(
        self,
        schema: dict[str, pl.DataType],
        frames: list[pl.DataFrame] | None = None,
        ranges: Sequence[Sequence[Path]] | None = None,
        height: int = 0,
        folder: Path | None = None,
    ) -> None:
        self.schema = dict(schema)
        self._frames = frames
        self._ranges = [list(r) for r in ranges] if ranges is not None else None
        self.height = height if frames is None else sum(f.height for f in frames)
        self.folder = folder
        self._finalizer = weakref.finalize(self, shutil.rmtree, folder, True) if folder is not None else None

    @classmethod
    def of(cls, frames: Sequence[pl.DataFrame], schema: dict[str, pl.DataType] | None = None) -> CheckedParts:
        """Parts held in memory (the frames, in order; empty ones dropped)."""
        kept = [f for f in frames if f.height]
        if schema is None:
            schema = dict(frames[0].schema) if frames else {}
        return cls(schema, frames=kept)

    @classmethod
    def spilled(
        cls, folder: Path, ranges: Sequence[Sequence[Path]], schema: dict[str, pl.DataType], height: int
    ) -> CheckedParts:
        """Parts on disk: ``ranges[r]`` the files of user range ``r``; ``folder`` removed by ``close``."""
        return cls(schema, ranges=ranges, height=height, folder=folder)

    @property
    def on_disk(self) -> bool:
        return self._ranges is not None

    def __len__(self) -> int:
        return len(self._frames) if self._frames is not None else len(self._ranges or [])

    def __iter__(self) -> Iterator[pl.DataFrame]:
        """Each part, in order (read from disk one at a time when spilled)."""
        if self._frames is not None:
            yield from self._frames
            return
        for files in self._ranges or []:
            yield self._read(files)

    def _scan(self, files: list[Path]) -> pl.LazyFrame:
        """One spilled range as a lazy scan of its files (not sorted: the caller sorts what it keeps)."""
        return pl.scan_parquet(files).cast(self.schema)  # type: ignore[arg-type]  # polars#14468

    def _read(self, files: list[Path]) -> pl.DataFrame:
        return self._scan(files).sort(USER, *ORDER).collect(engine="in-memory")

    def lazy(self) -> Iterator[pl.LazyFrame]:
        """Each part as a LazyFrame, its rows in no particular order (for sums and counts: a spilled
        part then reads only the columns the plan uses)."""
        if self._frames is not None:
            yield from (f.lazy() for f in self._frames)
            return
        for files in self._ranges or []:
            yield self._scan(files)

    def empty(self) -> pl.DataFrame:
        return pl.DataFrame(schema=self.schema)

    def collect(self) -> pl.DataFrame:
        """The whole table (for small runs and tests: it holds every row at once)."""
        frames = list(self)
        return pl.concat(frames) if frames else self.empty()

    def filter(self, predicate: pl.Expr, *columns: str | pl.Expr, **named: str | pl.Expr) -> pl.DataFrame:
        """The rows of every part where ``predicate`` holds (``columns`` of them as ``select`` takes
        them, or all), in order: for the few rows an output needs (flags, negative balances, a
        selection). A spilled part is filtered as it is read, then only what is kept is sorted."""
        frames = []
        for part in self.lazy():
            kept = part.filter(predicate)
            if self.on_disk:
                kept = kept.sort(USER, *ORDER)
            if columns or named:
                kept = kept.select(*columns, **named)
            frames.append(kept.collect(engine="in-memory"))
        if frames:
            return pl.concat(frames)
        empty = self.empty().lazy()
        return (empty.select(*columns, **named) if columns or named else empty).collect()

    def aggregate(self, plan: Callable[[pl.LazyFrame], pl.LazyFrame]) -> pl.DataFrame:
        """``plan`` (a group-by, a sum) of every part, concatenated: to be added up by the caller
        over parts (a part never splits a user). ``plan`` of an empty part when there is none."""
        frames = [plan(part).collect(engine="in-memory") for part in self.lazy()]
        return pl.concat(frames) if frames else plan(self.empty().lazy()).collect(engine="in-memory")

    def map(self, fn: Callable[[pl.DataFrame], pl.DataFrame]) -> pl.DataFrame:
        """``fn`` of every part, concatenated in order (``fn`` of an empty part when there is none)."""
        frames = [fn(part) for part in self]
        return pl.concat(frames) if frames else fn(self.empty())

    def close(self) -> None:
        """Remove the scratch folder of spilled parts (idempotent; nothing for parts in memory)."""
        if self._finalizer is not None:
            self._finalizer()


def range_bounds(user_counts: pl.DataFrame, part_rows: int) -> pl.Series:
    """The first user (as text) of each user range after the first, ranges of about ``part_rows``
    transactions in user order (a user is never split): from ``user_id``/``len`` rows, a user
    possibly in several of them (one per partition)."""
    users = (
        user_counts.drop_nulls(USER)
        .group_by(USER)
        .agg(pl.col("len").sum())
        .with_columns(pl.col(USER).cast(pl.String))
        .sort(USER)
    )
    if users.is_empty():
        return pl.Series(USER, [], pl.String)
    start = (users["len"].cum_sum() - users["len"]) // max(1, part_rows)
    return users.filter(start != start.shift(1, fill_value=0))[USER]


def range_of(users: pl.Series, bounds: pl.Series) -> pl.Series:
    """The user range of each row's user (``range_bounds``); a null user is in the first."""
    text = users.cast(pl.String)
    found = (
        bounds.search_sorted(text.fill_null(""), side="right") if len(bounds) else pl.repeat(0, len(text), eager=True)
    )
    return pl.select(pl.when(text.is_null()).then(0).otherwise(found.cast(pl.UInt32))).to_series().rename("_range")
