"""The store: stage 1 of a partitioned run, the logs parsed once into Parquet partitioned by user.

``calo-balance ingest INPUT... --into DIR`` reads the inputs exactly as ``report`` does
(``ingest.open_inputs`` / ``parse_texts``, masking included) and writes, batch by batch::

    DIR/manifest.json                  format, version, partitions, hash rule, inputs, options, counts
    DIR/transactions/part-KKKK.parquet one file a partition, a row group every ~128 MB of rows
    DIR/notices.parquet, invocations.parquet, unparsed.parquet, sample.parquet
    DIR/problems.parquet (input problems, masked as asked), files.parquet (the file index)
    DIR/cross_duplicates.parquet       copies of an id logged under users of other partitions

A user's transactions all go to partition ``crc32(user_id) mod N`` (``partition_of``): a
stable hash, so a store written by one version is read the same by the next (Polars'
``hash()`` may change between versions). Every check looks at one user's history only, so
stage 2 (``partitioned``) checks each partition on its own and merges the results.

A transaction id logged twice normally repeats under one user, so within one partition,
where stage 2 sets the copies aside. A corrupt log may repeat an id under another user: a
64-bit hash of each id and its partition is kept while writing (10 bytes a transaction),
and ids seen in several partitions are resolved here, once, over all their copies
(``cross_duplicates.parquet``); stage 2 drops those copies before its own pass.

The store is written in a temporary sibling folder and renamed into place at the end, so
an interrupted ingest never leaves a half store that ``report --from`` would trust.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import zlib
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import polars as pl
import pyarrow as pa

from calo_polars.atomic import glob_escape, is_stale, remove_stale
from calo_polars.errors import CaloError, NoUsableInput, OutputError, UsageError
from calo_polars.parse.duplicates import DUPLICATE_SCHEMA, split_duplicates
from calo_polars.parse.events import FileIndex
from calo_polars.parse.ingest import (
    INVOCATIONS,
    NOTICES,
    SAMPLE_SCHEMA,
    TRANSACTIONS,
    BatchResult,
    add_notes,
    event_counts,
    in_order,
    open_inputs,
    parse_texts,
    release_freed_memory,
)
from calo_polars.parse.records import UNPARSED_SCHEMA
from calo_polars.parse.table import Table
from calo_polars.pii import mask_strings
from calo_polars.problems import NOTE_SCHEMA, InputProblem, Problems
from calo_polars.read.files import DIGEST_SIZE
from calo_polars.read.inflate import Limits
from calo_polars.read.s3 import S3Options, S3Source, resolve
from calo_polars.version import __version__

if TYPE_CHECKING:
    import pyarrow.parquet as pq  # (imported when a store is written: pyarrow.fs, ssl… cost 40 ms at start-up)

FORMAT = "calo-polars store"
FORMAT_VERSION = 2  # 2: transactions carry their outcome, invocations their START time (issue 12)
HASH_RULE = "zlib.crc32 of the UTF-8 user_id, mod the partition count; a null user_id goes to partition 0"
DEFAULT_PARTITIONS = 16
MANIFEST = "manifest.json"

#: The non-user tables stored beside the partitions, each written batch by batch.
TABLES: dict[str, dict[str, pl.DataType]] = {
    "notices": NOTICES,
    "invocations": INVOCATIONS,
    "unparsed": UNPARSED_SCHEMA,
    "sample": SAMPLE_SCHEMA,
}
#: Every stored table's schema as the run uses it (Parquet holds Categorical columns as text).
SCHEMAS: dict[str, dict[str, pl.DataType]] = {**TABLES, "cross_duplicates": DUPLICATE_SCHEMA}
PROBLEM_SCHEMA: dict[str, pl.DataType] = {
    "file": pl.String(),
    "line": pl.Int64(),
    "kind": pl.String(),
    "message": pl.String(),
}
FILE_SCHEMA: dict[str, pl.DataType] = {"file": pl.String(), "stored_bytes": pl.Int64(), "raw_bytes": pl.Int64()}


class NotAStore(CaloError):
    """A folder given to ``report --from`` is not a store this version can read."""


def partition_of(user_id: str | None, partitions: int) -> int:
    """The partition of a user: the layout's rule (``HASH_RULE``), pinned by a test."""
    return 0 if user_id is None else zlib.crc32(user_id.encode("utf-8")) % partitions


def partition_column(users: pl.Series, partitions: int) -> pl.Series:
    """``partition_of`` every row's user: computed once per distinct user of the batch
    (~1 µs each) and mapped onto the column, never row by row."""
    text = users.cast(pl.String)
    distinct = text.unique().drop_nulls().to_list()
    parts = [partition_of(u, partitions) for u in distinct]
    if not distinct:  # a batch with no transaction (replace_strict would keep the text dtype)
        return pl.Series("partition", [0] * len(users), pl.UInt16)
    return text.replace_strict(distinct, parts, return_dtype=pl.UInt16).fill_null(0).rename("partition")


def _plain(frame: pl.DataFrame) -> pa.Table:
    """A frame as stored: Categorical columns as text (Parquet dictionary-encodes them anyway)."""
    frame = frame.cast({n: pl.String for n, t in frame.schema.items() if t == pl.Categorical})
    return frame.to_arrow(compat_level=pl.CompatLevel.oldest())


#: Rows waiting to be written, over every file of a store, before each file writes them as one
#: row group: a row group a batch and partition (a year: 1,200 batches × 64 partitions of ~400
#: rows) made the writers' footers grow with the input (~3 KB a row group) and the groups tiny.
BUFFER_BYTES = 128 << 20


class _Appender:
    """One Parquet file written a row group at a time (opened at the first rows)."""

    def __init__(self, path: Path, schema: dict[str, pl.DataType]) -> None:
        self.path, self.schema, self.rows = path, schema, 0
        self._writer: pq.ParquetWriter | None = None
        self._pending: list[pa.Table] = []
        self.pending_bytes = 0

    def add(self, table: pa.Table | None) -> None:
        """Append rows (``_plain`` of a frame; None or empty: nothing), written at the next ``flush``."""
        if table is None or table.num_rows == 0:
            return
        self._pending.append(table)
        self.pending_bytes += table.nbytes
        self.rows += table.num_rows

    def flush(self) -> None:
        """The rows added since the last flush, written as one row group."""
        if not self._pending:
            return
        table = pa.concat_tables(self._pending)
        self._pending, self.pending_bytes = [], 0
        if self._writer is None:
            import pyarrow.parquet as pq

            self._writer = pq.ParquetWriter(self.path, table.schema, compression="zstd")
        self._writer.write_table(table)

    def close(self) -> None:
        self.flush()
        if self._writer is None:  # no rows: an empty file with the schema
            import pyarrow.parquet as pq

            pq.write_table(_plain(pl.DataFrame(schema=self.schema)), self.path)
        else:
            self._writer.close()
            self._writer = None

    def discard(self) -> None:
        self._pending, self.pending_bytes = [], 0
        if self._writer is not None:
            self._writer.close()
            self._writer = None


def part_path(store: Path, k: int) -> Path:
    return store / "transactions" / f"part-{k:04d}.parquet"


@dataclass
class StoreBatch:
    """A batch ready to append: Arrow tables by partition and by table name, ids hashed."""

    result: BatchResult  # for its small tables (notes, event counts)
    parts: dict[int, pa.Table]
    tables: dict[str, pa.Table]
    ids: pl.DataFrame  # (hash of tx_id, partition) of every transaction


def prepare(batch: BatchResult, partitions: int) -> StoreBatch:
    """Split a parsed batch by partition and convert it for Parquet (in a worker thread,
    so the main thread only appends row groups)."""
    tx = batch.transactions.with_columns(partition_column(batch.transactions["user_id"], partitions))
    parts = {
        int(k): _plain(rows.drop("partition")) for (k,), rows in tx.partition_by("partition", as_dict=True).items()
    }
    tables = {name: _plain(getattr(batch, name)) for name in TABLES}
    return StoreBatch(batch, parts, tables, tx.select(pl.col("tx_id").hash(), "partition"))


#: The (hash, partition) pairs are sorted a range of hashes at a time (by their top bits): sorting
#: every pair at once held ~30 bytes a transaction more at the end of ingest (a year: +0.9 GB).
HASH_RANGES = 16


def crossing_hashes(ids: list[pl.DataFrame], ranges: int = HASH_RANGES) -> pl.Series:
    """The hashes seen in more than one partition, among frames of (tx_id hash, partition).

    Sorted by (hash, partition), a hash seen in two partitions has two neighbours that differ
    in partition; each range of hashes (``ranges``, a power of two) is sorted on its own, so
    the sort holds a range's pairs, not all of them.
    """
    if ranges < 1 or ranges & (ranges - 1):
        raise ValueError("ranges must be a power of two")
    width = 1 << (65 - ranges.bit_length())  # hashes a range holds (2**64 / ranges)
    top = pl.col("tx_id") // pl.lit(width, dtype=pl.UInt64) if ranges > 1 else pl.lit(0)
    found = [pl.Series("tx_id", [], dtype=pl.UInt64)]
    for r in range(ranges):
        pairs = pl.concat(
            [pl.DataFrame(schema={"tx_id": pl.UInt64, "partition": pl.UInt16})] + [f.filter(top == r) for f in ids]
        ).sort("tx_id", "partition")
        same, other = pl.col("tx_id") == pl.col("tx_id").shift(1), pl.col("partition") != pl.col("partition").shift(1)
        found.append(pairs.filter(same & other).get_column("tx_id").unique())
    return pl.concat(found)


def temp_store(into: Path) -> Path:
    """The temporary folder an ingest into ``into`` writes (``.<name>-<pid>-<random>.tmp``, beside it)."""
    return into.parent / f".{into.name}-{os.getpid()}-{secrets.token_hex(4)}.tmp"


def _recover(into: Path) -> None:
    """Clean up after an ingest killed (``kill -9``) while writing ``into``: put back the older
    store it had moved aside (when it died between the two renames), remove its temporaries."""
    prefix = f".{into.name}-"
    for old in into.parent.glob(f"{glob_escape(prefix)}*-old.tmp"):
        if not into.exists() and is_stale(old, prefix):
            os.replace(old, into)
    remove_stale(into.parent, [(prefix, ".tmp")])


class StoreWriter:
    """Writes a store into a temporary sibling of ``into``; ``commit`` renames it into place."""

    def __init__(self, into: Path, partitions: int) -> None:
        if into.exists() and not (into.is_dir() and (not any(into.iterdir()) or (into / MANIFEST).is_file())):
            raise UsageError(f"{into} exists and is not a store: give a new or empty folder with --into")
        into.parent.mkdir(parents=True, exist_ok=True)
        _recover(into)
        self.into, self.partitions = into, partitions
        # The name is chosen before the folder is made, so whoever catches a signal knows what to remove.
        self.tmp = temp_store(into)
        try:
            self.tmp.mkdir()
            (self.tmp / "transactions").mkdir()
            self.parts = [_Appender(part_path(self.tmp, k), TRANSACTIONS) for k in range(partitions)]
            self.tables = {name: _Appender(self.tmp / f"{name}.parquet", schema) for name, schema in TABLES.items()}
        except BaseException:  # Ctrl-C, SIGTERM, a full disk: the caller has no writer to abort yet
            shutil.rmtree(self.tmp, ignore_errors=True)
            raise
        self.notes: list[pl.DataFrame] = []
        self.kind_counts: list[pl.DataFrame] = []
        self._ids: list[pl.DataFrame] = []  # (hash of tx_id, partition) of every transaction

    def add(self, batch: StoreBatch) -> None:
        """One batch's tables (``prepare``), appended to their files: the only serial step."""
        for k, table in batch.parts.items():
            self.parts[k].add(table)
        for name, appender in self.tables.items():
            appender.add(batch.tables.get(name))
        appenders = [*self.parts, *self.tables.values()]
        if sum(a.pending_bytes for a in appenders) > BUFFER_BYTES:
            for appender in appenders:
                appender.flush()
        self._ids.append(batch.ids)
        self.notes.append(batch.result.notes)
        self.kind_counts.append(batch.result.kind_counts)

    def _cross_duplicates(self, files: FileIndex) -> pl.DataFrame:
        """The copies set aside among ids seen in more than one partition (``split_duplicates``
        over every copy of those ids: the same copies the one-shot run sets aside)."""
        crossing = crossing_hashes(self._ids)
        self._ids.clear()
        if crossing.is_empty():
            return pl.DataFrame(schema=DUPLICATE_SCHEMA)
        rows = pl.concat(
            [
                pl.scan_parquet(p.path)
                .filter(pl.col("tx_id").hash().is_in(crossing.implode()))
                .with_columns(partition=pl.lit(k))
                for k, p in enumerate(self.parts)
            ]
        ).collect(engine="in-memory")
        real = (
            rows.group_by("tx_id").agg(pl.col("partition").n_unique()).filter(pl.col("partition") > 1)["tx_id"]
        )  # not a hash collision
        rows = rows.filter(pl.col("tx_id").is_in(real.implode())).drop("partition").cast(TRANSACTIONS)  # type: ignore[arg-type]  # polars#14468: the cast() stub rejects dict[str, DataType]
        return split_duplicates(rows, files.named(rows["file_id"].unique().sort().to_list()))[1]

    def commit(self, manifest: dict[str, Any], files: FileIndex, problems: Problems) -> dict[str, Any]:
        """Close every file, resolve the ids repeated across partitions, write the small tables
        and the manifest, then rename the store into place (replacing an older store)."""
        for appender in [*self.parts, *self.tables.values()]:
            appender.close()
        cross = self._cross_duplicates(files)
        cross.write_parquet(self.tmp / "cross_duplicates.parquet")
        _write_files(self.tmp / "files.parquet", files)
        pl.DataFrame([vars(p) for p in problems.items], schema=PROBLEM_SCHEMA, orient="row").write_parquet(
            self.tmp / "problems.parquet"
        )
        manifest = {
            **manifest,
            "kind_counts": event_counts(self.kind_counts),
            "counts": {
                "files": len(files),
                "transactions": sum(p.rows for p in self.parts),
                "cross_partition_copies": cross.height,
                "partition_rows": [p.rows for p in self.parts],
                **{name: a.rows for name, a in self.tables.items()},
                "input_problems": len(problems),
            },
        }
        (self.tmp / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
        old = None
        if self.into.exists():
            old = self.into.parent / f".{self.into.name}-{os.getpid()}-old.tmp"
            os.replace(self.into, old)
        os.replace(self.tmp, self.into)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
        return manifest

    def abort(self) -> None:
        for appender in [*self.parts, *self.tables.values()]:
            appender.discard()
        shutil.rmtree(self.tmp, ignore_errors=True)


def _write_files(path: Path, files: FileIndex, rows: int = 200_000) -> None:
    """The file index as Parquet, ``rows`` files at a time (a year's 2 M paths are never copied at once)."""
    out = _Appender(path, FILE_SCHEMA)
    try:
        for at in range(0, len(files), rows):
            out.add(_plain(files.frame(at, at + rows).select(*FILE_SCHEMA)))
            out.flush()
        out.close()
    except BaseException:
        out.discard()
        raise


def ingest_into(
    inputs: Iterable[str | os.PathLike[str] | S3Source],
    into: str | os.PathLike[str],
    *,
    partitions: int = DEFAULT_PARTITIONS,
    threads: int = 2,
    batch_bytes: int = 32 << 20,
    sample_size: int = 200,
    limits: Limits = Limits(),
    mask_pii: bool = True,
    s3: S3Options = S3Options(),
    on_batch: Callable[[FileIndex, int], None] | None = None,
) -> dict[str, Any]:
    """Stage 1: read ``inputs`` into a store at ``into``; returns its manifest.

    Memory: the batches in flight (as ``report``), the rows buffered for the next row groups
    (``BUFFER_BYTES``), the hashes of the ids (10 bytes a transaction), the file index (~70
    bytes a file: ``read.files``) and the small tables; the transactions go to disk batch by
    batch. The batches' text columns are never made Categorical here (``parse_texts``'s
    ``compact``): Polars' global category map would keep every value ever seen.
    Raises ``NoUsableInput`` (and writes nothing) when not a single log file could be read.
    """
    if not 1 <= partitions <= 65535:
        raise UsageError("--partitions must be between 1 and 65535")
    sources = resolve(inputs, s3)
    names = [str(i) for i in sources]
    reading = open_inputs(sources, threads=threads, batch_bytes=batch_bytes, limits=limits)

    def parse(ids: list[int], texts: list[bytes]) -> StoreBatch:
        return prepare(parse_texts(ids, texts, sample_size, mask_pii, compact=False), partitions)

    writer = None
    try:
        writer = StoreWriter(Path(into), partitions)
        n_tx = 0
        for batch in in_order(parse, reading.batches, threads):
            writer.add(batch)
            n_tx += batch.ids.height
            if on_batch is not None:
                on_batch(reading.files, n_tx)
        release_freed_memory()
        if len(reading.files) == 0:
            raise NoUsableInput(f"nothing to ingest in {', '.join(names)}: {reading.problems.why_nothing_read()}")
        add_notes(
            reading.problems,
            pl.concat(writer.notes) if writer.notes else pl.DataFrame(schema=NOTE_SCHEMA),
            reading.files,
        )
        if mask_pii:
            reading.problems.mask_messages(mask_strings)
        manifest = {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "tool_version": __version__,
            "partitions": partitions,
            "hash_rule": HASH_RULE,
            "inputs": names,
            "options": {
                "mask_pii": mask_pii,
                "sample_size": sample_size,
                "max_total_bytes": limits.max_total_bytes,
                "max_ratio": limits.max_ratio,
                "ratio_floor": limits.ratio_floor,
            },
            "skipped": dict(sorted(reading.skipped.items())),
        }
        return writer.commit(manifest, reading.files, reading.problems)
    except (OSError, pl.exceptions.PolarsError, pa.ArrowException) as exc:  # a full disk, a quota, ulimit -f
        if writer is not None:
            writer.abort()
        why = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc).strip().splitlines()[0]
        raise OutputError(f"cannot write the store {into}: {why} (an older store there is as it was)") from None
    except BaseException:
        if writer is not None:
            writer.abort()
        else:  # a signal between the folder's creation and the assignment
            remove_stale(Path(into).parent, [(f".{Path(into).name}-{os.getpid()}-", ".tmp")], own=True)
        raise


# ---------------------------------------------------------------- reading a store


@dataclass(frozen=True)
class Store:
    """A store on disk, its manifest checked (``open_store``)."""

    path: Path
    manifest: dict[str, Any]

    @property
    def partitions(self) -> int:
        return int(self.manifest["partitions"])

    @property
    def options(self) -> dict[str, Any]:
        return dict(self.manifest["options"])

    def part(self, k: int) -> Path:
        return part_path(self.path, k)

    def table(self, name: str) -> pl.DataFrame:
        """A stored table of ``SCHEMAS``, with the schema the run uses."""
        return _read(self.path / f"{name}.parquet", SCHEMAS[name])

    def files(self) -> StoredFiles:
        """The file index, kept in its file (a year's 2 M paths are ~0.6 GB as Python lists)."""
        path = self.path / "files.parquet"
        _readable(path, FILE_SCHEMA)
        return StoredFiles(path)

    def kept(self, name: str, order: tuple[str, ...] = ()) -> Table:
        """A stored table of ``TABLES`` left in its file, read when and as far as an output asks
        (``parse.table``), its rows in ``order``."""
        path = self.path / f"{name}.parquet"
        _readable(path, SCHEMAS[name])
        return Table.stored(path, SCHEMAS[name], order)

    def problems(self) -> Problems:
        return Problems(
            [InputProblem(**row) for row in _read(self.path / "problems.parquet", PROBLEM_SCHEMA).iter_rows(named=True)]
        )

    def skipped(self) -> Counter[str]:
        return Counter(self.manifest["skipped"])


def _read(path: Path, schema: dict[str, pl.DataType]) -> pl.DataFrame:
    """A Parquet file of the store with ``schema``; ``NotAStore`` (one line) when it cannot be read."""
    try:
        return pl.read_parquet(path).cast(schema)  # type: ignore[arg-type]  # polars#14468: the cast() stub rejects dict[str, DataType]
    except (OSError, pl.exceptions.PolarsError) as exc:
        why = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise NotAStore(f"{path} cannot be read ({why}): ingest the logs again") from None


def _readable(path: Path, schema: dict[str, pl.DataType]) -> None:
    """``NotAStore`` (one line) unless ``path`` is a Parquet file with ``schema``'s columns, so a
    table read later, lazily, does not fail half-way through the outputs."""
    try:
        found = pl.read_parquet_schema(path)
    except (OSError, pl.exceptions.PolarsError) as exc:
        why = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise NotAStore(f"{path} cannot be read ({why}): ingest the logs again") from None
    missing = [c for c in schema if c not in found]
    if missing:
        raise NotAStore(f"{path} cannot be read (no column {missing[0]!r}): ingest the logs again")


class StoredFiles(FileIndex):
    """A store's file index (``files.parquet``), read for the files an output names (``frame_of``):
    stage 2 joins paths to a few rows (duplicates, notes, exported tables), never needs every
    path at once but for a whole export. It holds no path: each is read from the file when asked."""

    def __init__(self, path: Path) -> None:
        super().__init__()
        self.source = path
        head = pl.scan_parquet(path).select(pl.len(), pl.col("stored_bytes", "raw_bytes").sum()).collect()
        self.count, self.stored_total, self.raw_total = (int(v) for v in head.row(0))

    def _column(self, name: str) -> list[int]:
        return pl.scan_parquet(self.source).select(name).collect().to_series().to_list()

    @property
    def stored_bytes(self) -> Sequence[int]:
        return self._column("stored_bytes")

    @property
    def raw_bytes(self) -> Sequence[int]:
        return self._column("raw_bytes")

    def __len__(self) -> int:
        return self.count

    def add(self, member: Any) -> int:
        raise TypeError("a store's file index is read-only")

    def _scan(self) -> pl.LazyFrame:
        return pl.scan_parquet(self.source).cast(FILE_SCHEMA).with_row_index("file_id")  # type: ignore[arg-type]  # polars#14468

    def frame(self, start: int = 0, stop: int | None = None) -> pl.DataFrame:
        stop = self.count if stop is None else min(stop, self.count)
        return self._scan().slice(start, max(stop - start, 0)).collect(engine="in-memory")

    def frame_of(self, ids: pl.Series) -> pl.DataFrame:
        wanted = ids.drop_nulls().unique().cast(pl.UInt32)
        return self._scan().filter(pl.col("file_id").is_in(wanted.implode())).collect(engine="streaming")

    def named(self, file_ids: Iterable[int]) -> pl.DataFrame:
        order = pl.DataFrame({"file_id": pl.Series(list(file_ids), dtype=pl.UInt32)})
        found = self.frame_of(order["file_id"]).select("file_id", "file")
        return order.join(found, on="file_id", how="left", maintain_order="left")

    def path(self, file_id: int) -> str:
        return str(self.named([file_id])["file"][0])

    def digest(self, file_id: int) -> bytes:
        return bytes(DIGEST_SIZE)  # a store keeps no digest

    def iter_paths(self, start: int = 0, stop: int | None = None) -> Iterator[str]:
        yield from self.frame(start, stop)["file"]


def read_partition(path: str | os.PathLike[str]) -> pl.DataFrame:
    """One partition's transactions, with the schema ``ingest`` gives them."""
    return _read(Path(path), TRANSACTIONS)


def open_store(path: str | os.PathLike[str]) -> Store:
    """The store at ``path``; ``NotAStore`` (one line) when it is not one this version reads."""
    folder = Path(path)
    try:
        manifest = json.loads((folder / MANIFEST).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise NotAStore(
            f"{path} is not a store (no {MANIFEST}): write one with calo-balance ingest INPUT... --into {path}"
        ) from None
    except (OSError, ValueError) as exc:
        raise NotAStore(f"{path} is not a readable store: {MANIFEST}: {exc}") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise NotAStore(f"{path} is not a store: its {MANIFEST} is not a {FORMAT} manifest")
    if manifest.get("format_version") != FORMAT_VERSION:
        raise NotAStore(
            f"{path} is a store of format version {manifest.get('format_version')}, this version reads "
            f"{FORMAT_VERSION}: ingest the logs again"
        )
    _check_manifest(path, manifest)
    store = Store(folder, manifest)
    missing = [p for p in [store.part(k) for k in range(store.partitions)] if not p.is_file()]
    if missing:
        raise NotAStore(f"{path} is an incomplete store: {missing[0]} is missing (ingest the logs again)")
    return store


def _count(value: Any, high: int = 1 << 62) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= high


def _counts(value: Any) -> bool:
    return isinstance(value, dict) and all(isinstance(k, str) and _count(v) for k, v in value.items())


#: What each manifest field read by ``report --from`` must be (checked before any is used).
MANIFEST_FIELDS: dict[str, tuple[str, Callable[[Any], bool]]] = {
    "partitions": ("a count from 1 to 65535", lambda v: _count(v, 65535) and v >= 1),
    "inputs": ("a list of paths", lambda v: isinstance(v, list) and all(isinstance(i, str) for i in v)),
    "skipped": ("counts by name", _counts),
    "kind_counts": ("counts by event kind", _counts),
    "counts": ("counts", lambda v: isinstance(v, dict)),
    "options": ("the reading options", lambda v: isinstance(v, dict)),
    "options.mask_pii": ("true or false", lambda v: isinstance(v, bool)),
    "options.sample_size": ("a count", _count),
}


def _check_manifest(path: str | os.PathLike[str], manifest: dict[str, Any]) -> None:
    """``NotAStore`` (one line) naming the first manifest field of the wrong type."""
    for name, (meaning, ok) in MANIFEST_FIELDS.items():
        value: Any = manifest
        for key in name.split("."):
            value = value.get(key) if isinstance(value, dict) else None
        if not ok(value):
            raise NotAStore(
                f"{path} is a damaged store: {MANIFEST}'s {name} is {json.dumps(value)[:60]}, not {meaning} "
                "(ingest the logs again)"
            )
