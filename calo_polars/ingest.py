"""Ingest: drive inputs through sources → events → records/invocations, batch by batch.

Each batch of whole files is parsed on its own and only its compact tables are kept
(transactions, notices, invocations, unparsed events, counts), so memory follows the
number of transactions, not the size of the logs.
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import polars as pl
import pyarrow as pa

from .events import EVENT_KINDS, FileIndex, key_values, line_batches, split_events
from .invocations import INVOCATION_SCHEMA, invocations
from .problems import Problems
from .records import (
    NOTICE_SCHEMA,
    TRANSACTION_SCHEMA,
    UNPARSED_SCHEMA,
    notices,
    refine_objects,
    transactions,
    unparsed,
)
from .sources import iter_members

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
    unknown_keys: pl.DataFrame


@dataclass
class Ingested:
    """Everything read from the inputs, ready for the checks."""

    files: FileIndex
    kind_counts: dict[str, int]
    transactions: pl.DataFrame
    notices: pl.DataFrame
    invocations: pl.DataFrame
    unparsed: pl.DataFrame
    sample: pl.DataFrame
    problems: Problems
    skipped: Counter[str] = field(default_factory=Counter)

    @property
    def events(self) -> int:
        return sum(self.kind_counts.values())


def _sample_blocks(lines: pl.DataFrame, tx: pl.DataFrame, heads: pl.DataFrame, size: int) -> pl.DataFrame:
    """The raw text of this batch's first ``size`` transaction blocks in time order."""
    first = (
        tx.join(heads.select("file_id", "line_no", "event"), on=["file_id", "line_no"])
        .sort("ts", "tx_id")
        .head(size)
        .select("event", "file_id", "line_no", "ts", "tx_id")
    )
    text = (
        lines.filter(pl.col("event").is_in(first["event"].implode()))
        .group_by("event", maintain_order=True)
        .agg(raw=pl.col("text").str.join("\n"))
    )
    return first.join(text, on="event").drop("event").cast(SAMPLE_SCHEMA)  # type: ignore[arg-type]


def read_batch(batch: pa.RecordBatch, *, sample_size: int = 200) -> BatchResult:
    """Parse one Arrow batch of lines into its compact tables."""
    lines = split_events(batch)
    kv = key_values(lines)
    heads = refine_objects(lines.filter(pl.col("is_head")), kv)
    tx, invalid, unknown_keys = transactions(heads, kv)
    heads = heads.with_columns(
        kind=pl.when(pl.col("event").is_in(invalid["event"].implode()))
        .then(pl.lit("invalid_transaction"))
        .otherwise(pl.col("kind"))
    )
    return BatchResult(
        kind_counts=heads.group_by("kind").agg(count=pl.len()),
        transactions=tx,
        notices=notices(heads, kv),
        invocations=invocations(heads),
        unparsed=unparsed(heads, invalid),
        sample=_sample_blocks(lines, tx, heads, sample_size),
        unknown_keys=unknown_keys,
    )


def _concat(frames: list[pl.DataFrame], schema: dict[str, pl.DataType]) -> pl.DataFrame:
    return pl.concat(frames, how="vertical") if frames else pl.DataFrame(schema=schema)


def ingest(
    inputs: Iterable[str | os.PathLike[str]],
    *,
    threads: int = 2,
    batch_bytes: int = 32 << 20,
    sample_size: int = 200,
    on_batch: Callable[[FileIndex, int], None] | None = None,
) -> Ingested:
    """Read every input and return the tables the checks need.

    ``on_batch(files, transactions_so_far)`` is called after each batch (for progress bars).
    """
    problems = Problems()
    skipped: Counter[str] = Counter()
    files = FileIndex()
    members = iter_members(inputs, problems, skipped, threads=threads)
    results: list[BatchResult] = []
    n_tx = 0
    for batch in line_batches(members, files, batch_bytes=batch_bytes):
        result = read_batch(batch, sample_size=sample_size)
        results.append(result)
        n_tx += result.transactions.height
        if on_batch is not None:
            on_batch(files, n_tx)

    counts: Counter[str] = Counter()
    for r in results:
        counts.update(dict(r.kind_counts.iter_rows()))
    for r in results:
        for file_id, line_no, keys in r.unknown_keys.iter_rows():
            problems.add(files.paths[file_id], "unknown_key", f"transaction block has unknown key(s): {keys}", line_no)
    sample = _concat([r.sample for r in results], SAMPLE_SCHEMA).sort("ts", "tx_id").head(sample_size)
    return Ingested(
        files=files,
        kind_counts={k: counts.get(k, 0) for k in EVENT_KINDS},
        transactions=_concat([r.transactions for r in results], TRANSACTION_SCHEMA),
        notices=_concat([r.notices for r in results], NOTICE_SCHEMA),
        invocations=_concat([r.invocations for r in results], INVOCATION_SCHEMA),
        unparsed=_concat([r.unparsed for r in results], UNPARSED_SCHEMA),
        sample=sample,
        problems=problems,
        skipped=skipped,
    )
