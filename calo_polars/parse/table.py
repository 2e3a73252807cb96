"""One of a run's event tables (notices, invocations), held in memory or kept in a store's file.

A one-shot run holds its tables; stage 2 of a store need not: a year's ~10 M notices and
~28 M invocations are several GB as frames, and summary.json needs only counts and a few
flagged rows of them. So every output asks the table for what it uses: ``lazy()`` (a count,
a group-by: a store's file is then read only for the columns the query names, filtered as it
is read) or ``filter(...)`` (the few rows of one sheet, in the table's order); ``frame()``
is the whole table, for the outputs that write it whole (its export).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import polars as pl


@dataclass(frozen=True)
class Table:
    """A table in memory (``of``) or in a Parquet file of a store (``stored``), in ``order``."""

    held: pl.DataFrame | None = None
    path: Path | None = None
    schema: dict[str, pl.DataType] | None = None
    order: tuple[str, ...] = ()  # the columns the rows are sorted by when read (a stored table)

    @classmethod
    def of(cls, frame: pl.DataFrame) -> Table:
        """A table held in memory, in its frame's order."""
        return cls(held=frame, schema=dict(frame.schema))

    @classmethod
    def stored(cls, path: Path, schema: dict[str, pl.DataType], order: tuple[str, ...] = ()) -> Table:
        """A table read from ``path`` when asked, cast to ``schema``, sorted by ``order``."""
        return cls(path=path, schema=dict(schema), order=order)

    def lazy(self) -> pl.LazyFrame:
        """The table as a query, in order, with its schema (a stored table: scanned, so only the
        columns used are read; ``filter``/``count``/``scan`` read less still)."""
        if self.held is not None:
            return self.held.lazy()
        return self._sorted(self._cast(self.scan()))

    def scan(self) -> pl.LazyFrame:
        """The rows in no particular order, a stored table's Categorical columns as the text they
        hold: for counts, sums and distinct counts (the same on either), which a stored table then
        streams from its file, the predicates read with the columns (a cast would stop them there)."""
        if self.held is not None:
            return self.held.lazy()
        assert self.path is not None
        return pl.scan_parquet(self.path)

    def _cast(self, query: pl.LazyFrame) -> pl.LazyFrame:
        return query.cast(self.schema or {})  # type: ignore[arg-type]  # polars#14468

    def _sorted(self, query: pl.LazyFrame) -> pl.LazyFrame:
        return query.sort(*self.order, maintain_order=True) if self.order else query

    def frame(self) -> pl.DataFrame:
        """The whole table (a stored one read whole: only for outputs that write every row)."""
        if self.held is not None:
            return self.held
        return self.lazy().collect(engine="in-memory")

    def filter(self, *predicates: pl.Expr) -> pl.DataFrame:
        """The rows where every predicate holds, in the table's order (a stored table: filtered as
        its file is read, then cast: equality and membership of text give the same rows on either)."""
        if self.held is not None:
            return self.held.filter(*predicates)
        return self._sorted(self._cast(self.scan().filter(*predicates))).collect(engine="in-memory")

    def count(self, *predicates: pl.Expr) -> int:
        """How many rows (where every predicate holds)."""
        query = self.scan().filter(*predicates) if predicates else self.scan()
        return int(query.select(pl.len()).collect(engine="streaming").item())

    @property
    def height(self) -> int:
        return self.count()
