"""Ingest: drive inputs through sources → events → records/invocations, batch by batch.

Each batch of whole files is parsed on its own and only its compact tables are kept
(transactions, notices, invocations, unparsed events, counts), so memory follows the
number of transactions, not the size of the logs.
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
import io
import os
import tempfile
from collections import Counter, deque
from collections.abc import Callable, Iterable, Iterator, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TypeVar

import polars as pl

from calo_polars.errors import OutputError
from calo_polars.parse.duplicates import DUPLICATE_SCHEMA, conflict_notes, drop_duplicates
from calo_polars.parse.events import (
    EVENT_KINDS,
    MAX_LINE_CHARS,
    FileIndex,
    Lines,
    cut_long_lines,
    key_values,
    member_batches,
    split_events,
)
from calo_polars.parse.invocations import INVOCATION_SCHEMA, incomplete_notes, invocations
from calo_polars.parse.outcomes import refused_by_id, refused_ids, with_context, with_outcomes
from calo_polars.parse.partition import PART_ROWS, user_ranges
from calo_polars.parse.records import (
    NOTICE_SCHEMA,
    TRANSACTION_SCHEMA,
    UNPARSED_SCHEMA,
    notices,
    refine_objects,
    transactions,
    unparsed,
)
from calo_polars.parse.table import Table
from calo_polars.parse.tokenize import events_of
from calo_polars.pii import mask_frame, mask_strings
from calo_polars.problems import NOTE_SCHEMA, Problems, notes
from calo_polars.read.inflate import Limits
from calo_polars.read.s3 import S3Source
from calo_polars.read.sources import iter_members

T = TypeVar("T")

SAMPLE_SCHEMA: dict[str, pl.DataType] = {
    "file_id": pl.UInt32(),
    "line_no": pl.UInt32(),
    "ts": pl.Datetime("ms", "UTC"),
    "tx_id": pl.String(),
    "raw": pl.String(),
}


@dataclass
class BatchResult:
    """The compact tables one batch of lines yields."""

    kind_counts: pl.DataFrame
    transactions: pl.DataFrame
    notices: pl.DataFrame
    invocations: pl.DataFrame
    unparsed: pl.DataFrame
    sample: pl.DataFrame
    notes: pl.DataFrame  # input problems found in the batch (problems.NOTE_SCHEMA)


@dataclass
class Ingested:
    """Everything read from the inputs, ready for the checks.

    The transactions hold each transaction id once (``duplicates`` has the extra copies set
    aside), as user ranges (``partition.user_ranges``) until the audit has checked them.
    """

    files: FileIndex
    kind_counts: dict[str, int]
    transaction_parts: list[pl.DataFrame]
    notice_table: Table  # in memory, or kept in a store's file (``table``): ``notices`` is the whole of it
    invocation_table: Table
    unparsed: pl.DataFrame
    sample: pl.DataFrame
    problems: Problems
    skipped: Counter[str] = field(default_factory=Counter)
    read_before: list[str] = field(default_factory=list)  # files not read: an earlier run read them (``state``)
    duplicates: pl.DataFrame = field(default_factory=lambda: pl.DataFrame(schema=DUPLICATE_SCHEMA))

    @property
    def events(self) -> int:
        return sum(self.kind_counts.values())

    @property
    def notices(self) -> pl.DataFrame:
        """Every notice, in file order (a stored table is read whole: outputs that need a count or
        a few rows ask ``notice_table`` instead)."""
        return self.notice_table.frame()

    @property
    def invocations(self) -> pl.DataFrame:
        """Every invocation (read whole, as ``notices``: ``invocation_table`` for counts)."""
        return self.invocation_table.frame()

    @property
    def transactions(self) -> pl.DataFrame:
        """Every transaction (the parts one after another: no copy)."""
        return _concat(self.transaction_parts, TRANSACTIONS)


def _sample_blocks(lines: Lines, tx: pl.DataFrame, heads: pl.DataFrame, size: int) -> pl.DataFrame:
    """The raw text of this batch's first ``size`` transaction blocks in time order."""
    first = (
        tx.sort("ts", "tx_id", "file_id", "line_no")
        .head(size)  # before the join with the heads, which then has 200 rows, not all
        .join(heads.select("file_id", "line_no", "event"), on=["file_id", "line_no"], maintain_order="left")
        .select("event", "file_id", "line_no", "ts", "tx_id")
    )
    chosen = pl.col("event").is_in(first["event"].implode())
    text = (
        pl.concat([lines.heads.select("event", "text").filter(chosen), lines.body.filter(chosen)])
        .sort("event", maintain_order=True)  # each head before its continuation lines
        .group_by("event", maintain_order=True)
        .agg(raw=pl.col("text").str.join("\n"))
    )
    # tx_id as its own copy: a string view into the batch's text (or the scan's tx_text) would
    # keep that whole buffer alive with the 200 kept rows (4 MB a batch, measured).
    copied = pl.concat_str([pl.col("tx_id"), pl.lit("")])
    return first.join(text, on="event").drop("event").with_columns(tx_id=copied).cast(SAMPLE_SCHEMA)  # type: ignore[arg-type]  # polars#14468: the cast() stub rejects dict[str, DataType]


def _batch_notes(long_lines: pl.DataFrame, invalid: pl.DataFrame, not_understood: pl.DataFrame) -> list[pl.DataFrame]:
    """Input problems of a batch, as frames: cut lines, unread blocks, events of no known shape."""
    tx_id = (
        pl.when(pl.col("tx_id").is_not_null()).then(pl.lit(" ") + pl.col("tx_id").str.head(40)).otherwise(pl.lit(""))
    )
    unknown = (
        not_understood.filter(pl.col("kind") != "invalid_transaction")
        .group_by("file_id")
        .agg(line_no=pl.col("line_no").min(), n=pl.len())
    )
    return [
        notes(
            long_lines,
            "long_line",
            pl.format(
                "line is {} characters long: only its first {} were read", pl.col("chars"), pl.lit(MAX_LINE_CHARS)
            ),
        ),
        notes(invalid, "invalid_transaction", pl.format("transaction block{} not read: {}", tx_id, pl.col("reason"))),
        notes(
            unknown,
            "unparsed_events",
            pl.format("{} event(s) of no known shape, the first here (see UnparsedEvents)", pl.col("n")),
        ),
    ]


def read_batch(batch: pl.DataFrame, *, sample_size: int = 200) -> BatchResult:
    """Parse one batch of lines (``events.lines_frame``) into its compact tables."""
    batch, long_lines = cut_long_lines(batch)
    lines = split_events(batch)
    return read_events(lines, long_lines, key_values(lines), sample_size=sample_size)


def read_events(
    lines: Lines,
    long_lines: pl.DataFrame,
    kv: pl.DataFrame,
    scanned: pl.DataFrame | None = None,
    figures: pl.DataFrame | None = None,
    *,
    sample_size: int = 200,
) -> BatchResult:
    """A batch's compact tables from its events (``tokenize.events_of``: lines, long lines,
    key/value pairs, and the transaction rows and REPORT figures the compiled scan read, if it ran)."""
    heads = refine_objects(lines.heads, kv)
    tx, invalid, block_notes = transactions(heads, kv, scanned)
    heads = heads.with_columns(
        kind=pl.when(pl.col("event").is_in(invalid["event"].implode()))
        .then(pl.lit("invalid_transaction"))
        .otherwise(pl.col("kind"))
    )
    not_understood = unparsed(heads, invalid)
    calls = invocations(heads, figures)
    found = [block_notes, incomplete_notes(calls), *_batch_notes(long_lines, invalid, not_understood)]
    said = notices(heads, kv)
    return BatchResult(
        kind_counts=heads.group_by("kind").agg(count=pl.len()),
        transactions=with_context(with_outcomes(tx, heads, said), heads, calls),
        notices=said,
        invocations=calls,
        unparsed=not_understood,
        sample=_sample_blocks(lines, tx, heads, sample_size),
        notes=pl.concat(found),
    )


#: The batch tables that may hold personal data (notes are masked later, with the messages).
MASKED = ["transactions", "notices", "invocations", "unparsed", "sample"]

#: Text columns kept as Categorical: few distinct values (currencies, kinds) or each value on
#: many rows (a user on every transaction). A String column costs 16 bytes a row plus the text,
#: a Categorical 4. Not request ids: a million distinct values cost Polars' global category
#: map ~600 bytes each (measured: +900 MB at 4 GB of logs), more than the rows saved.
COMPACT: dict[str, list[str]] = {
    "transactions": [
        "user_id",
        "wallet_id",
        "wallet_sk",
        "currency",
        "type",
        "source",
        "action",
        "layout",
        "metadata_state",
        "outcome",
    ],
    "notices": ["kind", "level", "user_id", "action"],
    "invocations": [],
}


def compact_schema(table: str, schema: dict[str, pl.DataType]) -> dict[str, pl.DataType]:
    """The schema a kept table has: ``schema`` with its ``COMPACT`` columns Categorical."""
    return {name: pl.Categorical() if name in COMPACT[table] else dtype for name, dtype in schema.items()}


TRANSACTIONS = compact_schema("transactions", TRANSACTION_SCHEMA)
NOTICES = compact_schema("notices", NOTICE_SCHEMA)
INVOCATIONS = compact_schema("invocations", INVOCATION_SCHEMA)


#: The big batch tables, kept packed until every batch is read.
PACKED = ["transactions", "notices", "invocations"]


@dataclass
class Packed:
    """A batch's big tables as zstd-compressed Arrow IPC bytes (2.9 MB a 28 MB batch).

    Kept as Polars frames, the small tables of every batch sat among the large, short-lived
    allocations of the batches after them, and the process grew by ~0.6 bytes a byte of log
    read (allocator fragmentation); kept as bytes in memory, they still grew the heap twice
    their size. So the main thread writes them to a spill file (``Spill``), and the tables
    are read back once every batch is read.
    """

    frames: dict[str, bytes]
    rows: int  # transactions

    @classmethod
    def of(cls, result: BatchResult) -> Packed:
        frames = {name: getattr(result, name).write_ipc(None, compression="zstd").getvalue() for name in PACKED}
        return cls(frames, result.transactions.height)


class Spill:
    """An anonymous temporary file holding packed tables: (offset, length) per table."""

    def __init__(self) -> None:
        self._file = tempfile.TemporaryFile(prefix="calo-spill-")  # noqa: SIM115  (held open by the Spill; __exit__ closes it)
        self._places: list[dict[str, tuple[int, int]]] = []

    def put(self, packed: Packed) -> None:
        place = {}
        try:
            for name, data in packed.frames.items():
                place[name] = (self._file.tell(), len(data))
                self._file.write(data)
        except OSError as exc:  # a full disk, a quota, ulimit -f: one line, nothing written
            raise OutputError(
                f"cannot write the spill file (temporary tables, in {tempfile.gettempdir()}; set TMPDIR to a folder "
                f"with more room): {exc.strerror or exc}; no output was written"
            ) from None
        self._places.append(place)

    def tables(self, name: str) -> Iterator[pl.DataFrame]:
        """Every batch's table ``name``, in batch order."""
        for place in self._places:
            offset, length = place[name]
            self._file.seek(offset)
            yield pl.read_ipc(io.BytesIO(self._file.read(length)))

    def __enter__(self) -> Spill:
        return self

    def __exit__(self, *exc: object) -> None:
        self._file.close()


def parse_texts(
    file_ids: list[int], texts: list[bytes], sample_size: int, mask_pii: bool, *, compact: bool = True
) -> BatchResult:
    """A worker's parse of one batch: events (``tokenize.events_of``), ``read_events``, masking, compacting.

    Masking is row by row, so masking each batch equals masking the whole table; done
    here it runs in parallel (at the end it was 0.5 s a GB on one core). ``compact=False``
    leaves the ``COMPACT`` columns as text, for a batch written out at once (the store):
    every distinct value cast to Categorical stays in Polars' global category map for as
    long as any Categorical column is alive, which in a stream of batches is always (a
    wallet_sk per transaction: ~110 bytes a transaction, never given back).
    """
    result = read_events(*events_of(file_ids, texts), sample_size=sample_size)
    if mask_pii:
        for name in MASKED:
            setattr(result, name, mask_frame(getattr(result, name)))
    if compact:
        for name, columns in COMPACT.items():  # after masking, which reads String columns
            setattr(result, name, getattr(result, name).cast({c: pl.Categorical() for c in columns}))
    return result


def _read_texts(
    file_ids: list[int], texts: list[bytes], sample_size: int, mask_pii: bool
) -> tuple[BatchResult, Packed]:
    """``parse_texts``, then packing (the small tables stay in the result, the big ones are packed)."""
    result = parse_texts(file_ids, texts, sample_size, mask_pii)
    packed = Packed.of(result)
    for name in PACKED:
        setattr(result, name, getattr(result, name).clear())
    return result, packed


def _concat(frames: list[pl.DataFrame], schema: dict[str, pl.DataType], *, rechunk: bool = False) -> pl.DataFrame:
    """The frames one after another; ``rechunk``: in one chunk, so that a float sum or mean over
    it (an invocation's duration) is the same whether the rows came in one batch or several."""
    return pl.concat(frames, how="vertical", rechunk=rechunk) if frames else pl.DataFrame(schema=schema)


def add_notes(problems: Problems, notes: pl.DataFrame, files: FileIndex) -> None:
    """Turn note frames (file_id, line_no, kind, message) into input problems."""
    paths = files.frame_of(notes["file_id"]).select("file_id", "file")
    for file, line, kind, message in (
        notes.join(paths, on="file_id", how="left").select("file", "line_no", "kind", "message").iter_rows()
    ):
        problems.add(file, kind, message, line)


@dataclass
class Reading:
    """Inputs being read: the batches of whole files (a generator), and what reading them
    fills in as it goes (the file index, input problems, skipped files)."""

    files: FileIndex
    problems: Problems
    skipped: Counter[str]
    batches: Iterator[tuple[list[int], list[bytes]]]
    read_before: list[str]  # files not read: an earlier run read them (``state``)


def open_inputs(
    inputs: Iterable[str | os.PathLike[str] | S3Source],
    *,
    threads: int,
    batch_bytes: int,
    limits: Limits,
    already_read: Mapping[bytes, str] | None = None,
    input_bytes: int | None = None,
) -> Reading:
    """Start reading ``inputs`` (nothing is read until the batches are iterated); files whose
    digest is in ``already_read`` are skipped (``Reading.read_before``). ``input_bytes`` (the
    inputs' stored size) given, a batch holds at most a ``threads``-th of it (``member_batches``)."""
    problems = Problems()
    skipped: Counter[str] = Counter()
    files = FileIndex()
    read_before: list[str] = []
    members = iter_members(
        inputs,
        problems,
        skipped,
        threads=threads,
        limits=limits,
        already_read=already_read,
        read_before=read_before,
        files=files,
    )
    share = -(-input_bytes // threads) if input_bytes and threads > 1 else None
    batches = member_batches(members, files, batch_bytes=batch_bytes, stored_share=share)
    return Reading(files, problems, skipped, batches, read_before)


def in_order(
    work: Callable[[list[int], list[bytes]], T], batches: Iterable[tuple[list[int], list[bytes]]], threads: int
) -> Iterator[T]:
    """``work`` on each batch, ``threads`` at a time in worker threads (Polars releases the
    GIL, and many of its string kernels run on one core); results come in batch order, so
    the run is deterministic, and at most ``threads`` + 1 batches are held at once."""
    with ThreadPoolExecutor(max_workers=max(1, threads)) as pool:
        pending: deque[Future[T]] = deque()
        for ids, texts in batches:
            pending.append(pool.submit(work, ids, texts))
            while len(pending) > max(1, threads):
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()


def _read_batches(
    batches: Iterable[tuple[list[int], list[bytes]]],
    threads: int,
    sample_size: int,
    mask_pii: bool,
    progress: Callable[[int], None],
) -> tuple[list[BatchResult], dict[str, list[pl.DataFrame]]]:
    """Parse the batches (``in_order``); returns each batch's small tables, and the big ones
    (``PACKED``) read back from the spill file once every batch is read."""
    results: list[BatchResult] = []
    n_tx = 0
    with Spill() as spill:
        for result, packed in in_order(
            functools.partial(_read_texts, sample_size=sample_size, mask_pii=mask_pii), batches, threads
        ):
            results.append(result)
            spill.put(packed)
            n_tx += packed.rows
            progress(n_tx)
        release_freed_memory()
        return results, {name: list(spill.tables(name)) for name in PACKED}


def release_freed_memory() -> None:
    """Give the C allocator's freed pages back to the system (glibc only; elsewhere a no-op).

    The reader threads allocate and free a Python bytes object per member; glibc keeps what
    they freed in per-thread arenas: 130 MB a GB of logs read, returned by this call.
    """
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None).malloc_trim(0)


def ingest(
    inputs: Iterable[str | os.PathLike[str] | S3Source],
    *,
    threads: int = 2,
    batch_bytes: int = 32 << 20,
    sample_size: int = 200,
    limits: Limits = Limits(),
    mask_pii: bool = True,
    part_rows: int = PART_ROWS,
    on_batch: Callable[[FileIndex, int], None] | None = None,
    already_read: Mapping[bytes, str] | None = None,
    input_bytes: int | None = None,
) -> Ingested:
    """Read every input and return the tables the checks need.

    With ``mask_pii`` (the default) emails and phone numbers are masked in every text
    column kept and in the problem messages (see ``pii``). ``on_batch(files,
    transactions_so_far)`` is called after each batch (for progress bars). Files whose
    digest is in ``already_read`` are not read (``Ingested.read_before``). ``input_bytes``: the
    inputs' stored size, when known, so that a small input is split among the ``threads``.
    """
    reading = open_inputs(
        inputs,
        threads=threads,
        batch_bytes=batch_bytes,
        limits=limits,
        already_read=already_read,
        input_bytes=input_bytes,
    )
    files, problems = reading.files, reading.problems

    def progress(transactions_so_far: int) -> None:
        if on_batch is not None:
            on_batch(files, transactions_so_far)

    results, big = _read_batches(reading.batches, threads, sample_size, mask_pii, progress)
    counts = event_counts(r.kind_counts for r in results)
    pieces = big["transactions"]
    tables = {
        "notices": _concat(big["notices"], NOTICES, rechunk=True),
        "invocations": _concat(big["invocations"], INVOCATIONS, rechunk=True),
        "unparsed": _concat([r.unparsed for r in results], UNPARSED_SCHEMA, rechunk=True),
        "sample": _concat([r.sample for r in results], SAMPLE_SCHEMA),
    }
    batch_notes = _concat([r.notes for r in results], NOTE_SCHEMA)
    del results, big
    if len(pieces) > 1:
        refused = refused_ids(tables["notices"])
        pieces = [refused_by_id(p, refused) for p in pieces]
    pieces, duplicates = drop_duplicates(pieces, files.frame())
    parts = user_ranges(pieces, part_rows)
    add_notes(problems, pl.concat([batch_notes, conflict_notes(duplicates, files.frame())]), files)
    if mask_pii:
        problems.mask_messages(mask_strings)
    return assemble(
        files, counts, parts, tables, problems, reading.skipped, duplicates, sample_size, reading.read_before
    )


def event_counts(kind_counts: Iterable[pl.DataFrame]) -> dict[str, int]:
    """Events by kind (``EVENT_KINDS``, 0 for a kind not seen), summed over batches' ``kind_counts``."""
    counts: Counter[str] = Counter()
    for frame in kind_counts:
        counts.update(dict(frame.iter_rows()))
    return {k: counts.get(k, 0) for k in EVENT_KINDS}


def assemble(
    files: FileIndex,
    kind_counts: dict[str, int],
    parts: list[pl.DataFrame],
    tables: Mapping[str, pl.DataFrame | Table],
    problems: Problems,
    skipped: Counter[str],
    duplicates: pl.DataFrame,
    sample_size: int,
    read_before: list[str] | None = None,
) -> Ingested:
    """The ``Ingested`` of a run, in the order every output expects, from the tables read
    (``tables``: notices, invocations, unparsed, and every batch's sample) and the
    transactions with each id once (``parts``; ``duplicates`` has the copies set aside)."""
    # The first ``sample_size`` blocks of the run (each batch gave its first), then the copies
    # among them set aside: the same rows however the files were batched (taken after the
    # copies were dropped, a run in one batch had fewer rows than one in several).
    copies = duplicates.select("file_id", "line_no")
    # A store's sample is every batch's first blocks (a year's ~200k raw texts): its first
    # ``sample_size`` are kept as they are read.
    first = (
        tables["sample"].lazy().sort("ts", "tx_id", "file_id", "line_no").head(sample_size).collect(engine="streaming")
        if isinstance(tables["sample"], Table)
        else tables["sample"].sort("ts", "tx_id", "file_id", "line_no").head(sample_size)
    )
    chosen = first.join(copies, on=["file_id", "line_no"], how="anti", maintain_order="left")
    return Ingested(
        files=files,
        kind_counts=kind_counts,
        transaction_parts=parts,
        notice_table=_table(tables["notices"], ("file_id", "line_no")),  # file order, whatever a join did
        invocation_table=_table(tables["invocations"]),
        unparsed=_frame(tables["unparsed"]).sort("file_id", "line_no"),
        sample=chosen,
        problems=problems,
        skipped=skipped,
        read_before=read_before or [],
        duplicates=duplicates,
    )


def _table(table: pl.DataFrame | Table, order: tuple[str, ...] = ()) -> Table:
    """A table read in memory, sorted by ``order``; a stored one kept as it is (sorted when read)."""
    if isinstance(table, Table):
        return table
    return Table.of(table.sort(*order) if order else table)


def _frame(table: pl.DataFrame | Table) -> pl.DataFrame:
    return table.frame() if isinstance(table, Table) else table
