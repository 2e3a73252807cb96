"""The library's front door: ``audit(inputs)`` reads the logs and runs every check once."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import polars as pl

from . import filters, state
from .checks import (
    ORDER,
    STORED_CHECK_COLUMNS,
    USER,
    CheckOptions,
    currency_flows,
    per_user,
    red_flags,
    sort_flags,
    sort_users,
    totals_from,
    with_checks,
    with_derived,
)
from .errors import NoUsableInput
from .events import FileIndex
from .inflate import Limits
from .ingest import TRANSACTIONS, Ingested, ingest
from .partition import PART_ROWS
from .s3 import S3Options, S3Source, resolve


@dataclass(frozen=True)
class AuditOptions:
    """Everything that changes what an audit computes (not where it writes)."""

    checks: CheckOptions = field(default_factory=CheckOptions)
    threads: int = 2
    batch_bytes: int = 32 << 20
    sample_size: int = 200
    limits: Limits = field(default_factory=Limits)  # how far inputs may inflate (zip bombs)
    mask_pii: bool = True  # mask emails and phone numbers in every output
    selection: filters.Selection = field(default_factory=filters.Selection)  # what is reported; never what is checked
    s3: S3Options = field(default_factory=S3Options)  # how s3:// inputs are reached
    part_rows: int = PART_ROWS  # transactions checked at once (a user range); bounds memory
    state: str | None = None  # --state FILE: continue the runs before (``state``); the caller saves ``incremental.next``


@dataclass
class AuditResult:
    """The checked tables of one audit, ready for any output format."""

    inputs: list[str]
    options: AuditOptions
    ingested: Ingested
    checked: pl.DataFrame  # every transaction, its window columns and flags (STORED_CHECK_COLUMNS), by user then time
    flags: pl.DataFrame  # one row per flag, with severity and reason
    users: pl.DataFrame  # one row per user and currency
    totals: pl.DataFrame  # one row per currency
    incremental: state.Incremental | None = None  # with --state: what was carried in, and the next state

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
        paths = self.files.frame().select("file_id", "file")
        for id_col, name in (("file_id", "file"), ("kept_file_id", "kept_file")):
            if id_col in frame.columns:
                frame = frame.join(paths.rename({"file_id": id_col, "file": name}), on=id_col, how="left", maintain_order="left")
                frame = frame.select([name if c == id_col else c for c in frame.columns if c != name])
        return frame


def _check_part(part: pl.DataFrame, options: CheckOptions) -> list[pl.DataFrame]:
    """The check plan on one user range, collected once: kept columns, flags, users, flows.

    A part may hold an earlier run's context rows (``state.with_context``): they are checked
    with the rest, but only their flow breaks into this run are reported (``state.split_context``):
    in the flags, and as a fifth table, those rows (kept columns and where they were logged).
    """
    checked, carried = state.split_context(with_checks(part.lazy(), options), part.columns)
    columns = [*(c for c in part.columns if c not in state.MARKERS), *STORED_CHECK_COLUMNS]
    flags = red_flags(checked) if carried is None else pl.concat([red_flags(checked), state.carried_flags(carried)])
    tables = [checked.select(columns), flags, per_user(checked), currency_flows(checked)]
    if carried is not None:
        tables.append(carried.select(*columns, state.STATE_FILE))
    return pl.collect_all(tables, engine="in-memory")


def audit(
    inputs: Iterable[str | os.PathLike[str] | S3Source],
    options: AuditOptions = AuditOptions(),
    *,
    on_batch: Callable[[FileIndex, int], None] | None = None,
    on_stage: Callable[[str], None] | None = None,
) -> AuditResult:
    """Read the inputs, then run the check plan on each user range and return every table.

    The ranges are checked ``threads`` at a time; each range's transactions are freed once
    checked, so the transactions are held once (``partition``). Inputs may be local paths,
    ``s3://`` URLs or ``S3Source`` objects. The checks run on everything read;
    ``options.selection`` then limits what the result reports (``filters``).
    ``on_batch(files, transactions_so_far)`` is called after each batch read, and
    ``on_stage("checks")`` once reading is done (both for progress displays).
    Raises ``NoUsableInput`` when not a single log file could be read.
    """
    sources = resolve(inputs, options.s3)
    names = [str(i) for i in sources]
    incremental = state.Incremental(options.state, state.load(options.state, options.checks)) if options.state else None
    ingested = ingest(
        sources,  # type: ignore[arg-type]  # ingest hands inputs to sources.iter_members as they are
        threads=options.threads,
        batch_bytes=options.batch_bytes,
        sample_size=options.sample_size,
        limits=options.limits,
        mask_pii=options.mask_pii,
        part_rows=options.part_rows,
        on_batch=on_batch,
        already_read=incremental.prior.already_read() if incremental else None,
    )
    if len(ingested.files) == 0 and not ingested.read_before:
        raise NoUsableInput(f"nothing to audit in {', '.join(names)}: {ingested.problems.why_nothing_read()}")
    if on_stage is not None:
        on_stage("checks")
    if incremental:
        incremental.duplicates_of_earlier_runs = state.set_aside_seen(ingested, incremental.prior)
    parts = ingested.transaction_parts or [pl.DataFrame(schema=TRANSACTIONS)]
    if incremental:
        parts = [state.with_context(p, incremental.prior) for p in parts]
    with ThreadPoolExecutor(max_workers=max(1, options.threads)) as pool:
        futures = [pool.submit(_check_part, parts.pop(0), options.checks) for _ in range(len(parts))]
        done = [f.result() for f in futures]
    return combine(names, options, ingested, done, in_user_order=True, incremental=incremental)


def combine(
    inputs: list[str],
    options: AuditOptions,
    ingested: Ingested,
    done: list[list[pl.DataFrame]],
    *,
    in_user_order: bool,
    incremental: state.Incremental | None = None,
) -> AuditResult:
    """The result of an audit from ``_check_part`` of every part of the users: concatenated,
    put in the outputs' order, selected. Each part's rows come sorted by user then time;
    parts ``in_user_order`` (user ranges) need no sort to make the whole table so, hash
    partitions do. With ``incremental`` (--state) the next state is built from the result."""
    checked, flags, users, flows = (pl.concat([d[i] for d in done]) for i in range(4))
    if not in_user_order and len(done) > 1:
        checked = checked.sort(USER, *ORDER)
    ingested.transaction_parts = [checked.select(list(TRANSACTIONS))]  # the same columns, not a copy
    users = sort_users(users.lazy()).collect()
    totals = totals_from(flows.lazy(), users.lazy()).collect()
    flags = sort_flags(flags.lazy()).collect()
    if incremental:
        earlier = [d[4] for d in done if len(d) > 4]  # the fifth table of a part with context rows
        incremental.carried_rows = pl.concat(earlier) if earlier else None
        incremental.finish(checked, flags, ingested)
    result = AuditResult(inputs, options, ingested, checked, flags, users, totals, incremental)
    return filters.apply(result, options.selection)
