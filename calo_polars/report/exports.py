"""Exports for data tools: the complete tables as Parquet and CSV, one file per table.

Every table is whole (no row cap, no sampling) and uses the glossary's column names
(``columns.COLUMNS``: the same words as the workbook). Types are chosen for BI tools and
DuckDB alike:

- **Parquet**: money ``DECIMAL(38,6)`` (exact, as parsed), timestamps ``TIMESTAMP(ms)``
  adjusted to UTC, counts ``INT64`` (signed: Power BI and Tableau mis-read unsigned
  integers), flags ``BOOLEAN``; each column carries its glossary meaning as the field's
  ``description`` metadata, and the file names the tool version and the table.
- **CSV** (UTF-8, comma, header, ``\\n``): money as exact decimal text with 6 places
  (``31.500000``), timestamps as ISO 8601 UTC (``2024-02-10T21:00:00.123Z``), flags
  ``true``/``false``, empty for null. Text that a spreadsheet would evaluate (a cell starting
  with ``=``, ``+``, ``-``, ``@``, tab or carriage return, in any text column) is prefixed with ``'``
  (``report.text.csv_safe``, the one escaping path), so Excel,
  LibreOffice and Google Sheets show it as text and never run it (CSV injection); numbers
  are never prefixed. A reader that wants the logged text strips one leading ``'`` from such a
  value.

Each file is written atomically (``atomic.replacing``).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import ExitStack, suppress
from pathlib import Path
from typing import TYPE_CHECKING, Any

import polars as pl
import pyarrow as pa

from calo_polars.atomic import replacing
from calo_polars.audit.result import AuditResult
from calo_polars.report import tables as views
from calo_polars.report.columns import COLUMNS
from calo_polars.report.text import csv_safe
from calo_polars.version import __version__

if TYPE_CHECKING:
    import pyarrow.parquet as pq

#: Export table → what one row is (written into each Parquet file and the README).
TABLES: dict[str, str] = {
    "transactions": (
        "One row per transaction (each id once): as logged, every computed column, every check flag, the recomputed "
        "running balance and where it was logged."
    ),
    "flags": "One row per flag of every check: severity, check, the transaction and a plain-English reason.",
    "users": "The roll-forward per user and currency, with the count of each flag and Lambda signal.",
    "currency_totals": "Per currency: gross totals, VAT and the roll-forward summed over users.",
    "notices": (
        "Every other message the Lambda logged that matters: not-in-sync errors, refused overdrafts, errors, skips, "
        "metrics."
    ),
    "invocations": "One row per Lambda invocation (requestId): completeness, counts, duration and memory.",
    "duplicates": "Extra copies of a transaction id, set aside (the first copy is in transactions).",
    "unparsed_events": "Events the tool did not understand (empty on the real archive), with why.",
    "input_problems": "Every file or line that could not be read or understood, with the reason.",
}

CSV_DATETIME = "%Y-%m-%dT%H:%M:%S%.3fZ"
LEDGER_COLUMNS = ["credit", "debit", "running_balance", "running_diff", "flagged"]


def _transactions(result: AuditResult, part: pl.DataFrame, ledger: pl.DataFrame) -> pl.DataFrame:
    """The transactions table's rows of one part of the checked transactions (``ledger``: its Ledger rows)."""
    table = result.derived(part)
    table = table.cast({name: pl.String for name, dtype in table.schema.items() if dtype == pl.Categorical})
    tx = result.with_file(table).join(
        ledger.select("tx_id", *LEDGER_COLUMNS), on="tx_id", how="left", maintain_order="left"
    )
    where = ["file", "line_no"]
    return tx.select([*(c for c in tx.columns if c not in where), *where]).sort("user_id", "ts", "tx_id")


def transaction_parts(result: AuditResult) -> Iterator[pl.DataFrame]:
    """The transactions export one part at a time, in order: the parts one after another are the
    whole table (parts are user ranges in user order, each sorted as the table is); a run with no
    transaction gives one empty part (the header, the schema)."""
    empty = True
    for part in result.parts:
        empty = False
        yield _helpers_dropped(_transactions(result, part, views.ledger_of(result, part)))
    if empty:
        yield _helpers_dropped(_transactions(result, result.parts.empty(), _no_ledger()))


def _helpers_dropped(frame: pl.DataFrame) -> pl.DataFrame:
    return frame.select(c for c in frame.columns if not c.startswith("_"))


def small_tables(result: AuditResult) -> dict[str, pl.DataFrame]:
    """Every export table but ``transactions``, whole (they are a few rows a user or a flag)."""
    no_ledger = result.parts.empty().select("user_id")  # the users' Ledger links are not exported
    users = views.per_user_summary(result, no_ledger, views.negative_payment_balances(result))
    frames = {
        "flags": result.with_file(result.flags),
        "users": users,
        "currency_totals": result.totals,
        "notices": result.with_file(result.ingested.notices),
        "invocations": result.with_file(result.ingested.invocations).sort("file", "line_no", "request_id"),
        "duplicates": result.with_file(result.duplicates),
        "unparsed_events": result.with_file(result.ingested.unparsed),
        "input_problems": result.ingested.problems.frame().rename({"kind": "problem"}),
    }
    return {name: _helpers_dropped(frame) for name, frame in frames.items()}


def _no_ledger() -> pl.DataFrame:
    return pl.DataFrame(schema={"tx_id": pl.String, **dict.fromkeys(LEDGER_COLUMNS, pl.String)})


def _portable(frame: pl.DataFrame) -> pl.DataFrame:
    """Unsigned integers made Int64: BI tools read signed integers only."""
    unsigned = [c for c, t in frame.schema.items() if t in (pl.UInt8, pl.UInt16, pl.UInt32, pl.UInt64)]
    return frame.with_columns(pl.col(unsigned).cast(pl.Int64)) if unsigned else frame


def _arrow(frame: pl.DataFrame, table: str) -> pa.Table:
    """The frame as Arrow, with each column's glossary meaning and the table's description
    (``TABLES``, or ``bounded.BOUNDED`` for a capped sheet's whole table)."""
    data = _portable(frame).to_arrow()
    fields = []
    for f in data.schema:
        kind = pa.large_string() if pa.types.is_string_view(f.type) else f.type
        fields.append(pa.field(f.name, kind, nullable=True, metadata={"description": COLUMNS[f.name].meaning}))
    schema = pa.schema(
        fields,
        metadata={"calo_polars.version": __version__, "calo_polars.table": table, "description": _about(table)},
    )
    if all(f.type == c.type for f, c in zip(schema, data.columns, strict=True)):
        return pa.Table.from_arrays(data.columns, schema=schema)  # the metadata only: no cast (nor pyarrow.compute)
    return data.cast(schema)


def _about(table: str) -> str:
    if table in TABLES:
        return TABLES[table]
    if table == LEDGER_PARQUET.removesuffix(".parquet"):
        return LEDGER_ABOUT
    from calo_polars.report.bounded import BOUNDED  # a capped sheet's whole table, beside the workbook

    return next(b.about for b in BOUNDED.values() if b.table == table)


class _Parts:
    """A table written part by part into a temporary beside ``path``, renamed into place when
    the block ends without an error (``atomic.replacing``)."""

    def __init__(self, path: Path, table: str) -> None:
        self.path, self.table, self.rows = path, table, 0
        self._replacing = replacing(path)

    def __enter__(self) -> _Parts:
        self.tmp = self._replacing.__enter__()
        return self

    def add(self, frame: pl.DataFrame) -> None:
        raise NotImplementedError

    def finish(self) -> None:
        """Close the file (before the rename)."""

    def discard(self) -> None:
        """Close the file after an error (the temporary is then removed)."""

    def __exit__(self, kind: Any, exc: Any, tb: Any) -> None:
        if kind is None:
            try:
                self.finish()
            except BaseException as failed:  # a full disk when the footer is written: no rename
                self._replacing.__exit__(type(failed), failed, failed.__traceback__)
                raise
        else:
            self.discard()
        self._replacing.__exit__(kind, exc, tb)


class ParquetParts(_Parts):
    """One row group (or more) a part, every part cast to the first one's schema."""

    _writer: pq.ParquetWriter | None = None

    def add(self, frame: pl.DataFrame) -> None:
        import pyarrow.parquet as pq  # (lazy: only for Parquet outputs)

        data = _arrow(frame, self.table)
        if self._writer is None:
            self._writer = pq.ParquetWriter(self.tmp, data.schema, compression="zstd")
        elif data.schema != self._writer.schema:
            data = data.cast(self._writer.schema)
        self._writer.write_table(data)
        self.rows += frame.height

    def finish(self) -> None:
        if self._writer is not None:
            self._writer.close()

    def discard(self) -> None:
        if self._writer is not None:
            with suppress(OSError, pa.ArrowException):
                self._writer.close()


class CsvParts(_Parts):
    """The header once, then each part's rows appended."""

    def add(self, frame: pl.DataFrame) -> None:
        with open(self.tmp, "ab" if self._started else "wb") as out:
            csv_safe(frame).write_csv(
                out, datetime_format=CSV_DATETIME, line_terminator="\n", include_header=not self._started
            )
        self._started = True
        self.rows += frame.height

    _started = False


WRITERS: dict[str, tuple[str, type[_Parts]]] = {
    "parquet": (".parquet", ParquetParts),
    "csv": (".csv", CsvParts),
}


def write_exports(result: AuditResult, outdir: Path, formats: list[str]) -> list[Path]:
    """Write every table in each of ``formats`` (``parquet``, ``csv``) into ``outdir``.

    ``transactions`` is written part by part (``transaction_parts``: one part of the checked
    transactions at a time, in every format at once), the other tables whole."""
    chosen = [f for f in formats if f in WRITERS]
    if not chosen:
        return []
    written = []
    tables: dict[str, Iterable[pl.DataFrame]] = {"transactions": transaction_parts(result)}
    tables.update((name, [frame]) for name, frame in small_tables(result).items())
    for name, frames in tables.items():
        paths = [outdir / f"{name}{WRITERS[fmt][0]}" for fmt in chosen]
        current = paths[0]
        try:
            with ExitStack() as stack:
                writers = [
                    stack.enter_context(WRITERS[fmt][1](path, name)) for fmt, path in zip(chosen, paths, strict=True)
                ]
                for frame in frames:
                    for writer in writers:
                        current = writer.path
                        writer.add(frame)
        except (OSError, pl.exceptions.PolarsError, pa.ArrowException) as exc:  # a full disk, a quota...
            raise named_error(exc, current) from None
        written += paths
    return written


#: The complete Ledger beside a workbook whose Ledger sheet is not complete: the Ledger's own
#: columns, one row per transaction, in its order. With ``-f parquet`` the transactions table
#: holds all of it (every Ledger column, the same values, and more), and is linked instead.
LEDGER_PARQUET = "ledger.parquet"
LEDGER_ABOUT = (
    "The complete Ledger: one row per transaction, by user then time, with the columns and values of the workbook's "
    "Ledger sheet (which shows only the flagged transactions with their context)."
)


def ledger_parquet(formats: list[str]) -> str:
    """The file beside the workbook that holds the complete Ledger: transactions.parquet when it is exported."""
    return "transactions.parquet" if "parquet" in formats else LEDGER_PARQUET


def write_ledger_parquet(outdir: Path, ledger: Iterable[pl.DataFrame]) -> Path:
    """``ledger.parquet`` (``LEDGER_PARQUET``): the complete Ledger, written part by part
    (``tables.ledger_parts``: it is never held whole)."""
    return write_table_parquet(ledger, outdir, LEDGER_PARQUET.removesuffix(".parquet"))


def write_table_parquet(frames: pl.DataFrame | Iterable[pl.DataFrame], outdir: Path, table: str) -> Path:
    """One table (a frame, or its parts in order) as ``<table>.parquet`` in ``outdir``, helper
    columns dropped; errors name the file."""
    path = outdir / f"{table}.parquet"
    try:
        with ParquetParts(path, table) as writer:
            for frame in [frames] if isinstance(frames, pl.DataFrame) else frames:
                writer.add(_helpers_dropped(frame))
    except (OSError, pl.exceptions.PolarsError, pa.ArrowException) as exc:
        raise named_error(exc, path) from None
    return path


def named_error(exc: BaseException, path: Path) -> OSError:
    """An ``OSError`` naming ``path``, from what a writer raised (Polars and Arrow have their own)."""
    if isinstance(exc, OSError) and exc.errno is not None:
        return OSError(exc.errno, exc.strerror or str(exc), str(path))
    why = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
    return OSError(None, why, str(path))


def tables_markdown() -> str:
    """The export tables as a Markdown table, as the README shows it (a test keeps them equal)."""
    rows = ["| file | what it holds |", "|---|---|"]
    rows += [f"| `{name}.parquet` / `{name}.csv` | {meaning} |" for name, meaning in TABLES.items()]
    return "\n".join(rows)
