"""The library's front door: ``audit(inputs)`` reads the logs and runs every check once."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor

import polars as pl

from calo_polars.audit import filters, state
from calo_polars.audit.parts import CheckedParts
from calo_polars.audit.result import AuditOptions, AuditResult
from calo_polars.checks.plan import (
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
)
from calo_polars.checks.silences import explain_silences
from calo_polars.errors import NoUsableInput
from calo_polars.parse.events import FileIndex
from calo_polars.parse.ingest import TRANSACTIONS, Ingested, ingest
from calo_polars.read.s3 import S3Source, resolve
from calo_polars.read.sizes import stored_bytes


def check_partition(part: pl.DataFrame, options: CheckOptions) -> list[pl.DataFrame]:
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
    input_bytes: int | None = None,
) -> AuditResult:
    """Read the inputs, then run the check plan on each user range and return every table.

    The ranges are checked ``threads`` at a time; each range's transactions are freed once
    checked, so the transactions are held once (``partition``). Inputs may be local paths,
    ``s3://`` URLs or ``S3Source`` objects. The checks run on everything read;
    ``options.selection`` then limits what the result reports (``filters``).
    ``on_batch(files, transactions_so_far)`` is called after each batch read, and
    ``on_stage("checks")`` once reading is done (both for progress displays). ``input_bytes``:
    the inputs' stored size if the caller has it (``read.sizes.stored_bytes``, measured otherwise),
    so that a small input is still read and parsed on every thread (``ingest``).
    Raises ``NoUsableInput`` when not a single log file could be read.
    """
    sources = resolve(inputs, options.s3)
    names = [str(i) for i in sources]
    incremental = state.Incremental(options.state, state.load(options.state, options.checks)) if options.state else None
    ingested = ingest(
        sources,
        threads=options.threads,
        batch_bytes=options.batch_bytes,
        sample_size=options.sample_size,
        limits=options.limits,
        mask_pii=options.mask_pii,
        part_rows=options.part_rows,
        on_batch=on_batch,
        already_read=incremental.prior.already_read() if incremental else None,
        input_bytes=stored_bytes(sources) if input_bytes is None else input_bytes,
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
        futures = [pool.submit(check_partition, parts.pop(0), options.checks) for _ in range(len(parts))]
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
    parts: CheckedParts | None = None,
) -> AuditResult:
    """The result of an audit from ``check_partition`` of every part of the users: concatenated,
    put in the outputs' order, selected. Each part's rows come sorted by user then time;
    parts ``in_user_order`` (user ranges) need no sort to make the whole table so, hash
    partitions do. ``parts`` given (stage 2 of a store: the checked rows spilled to disk by
    user range), the first table of each ``done`` is not used. With ``incremental`` (--state)
    the next state is built from the result."""
    if parts is None:
        frames = [d[0] for d in done]
        if not in_user_order and len(done) > 1:
            frames = [pl.concat(frames).sort(USER, *ORDER)]
        parts = CheckedParts.of(frames, dict(done[0][0].schema) if done else None)
        ingested.transaction_parts = [f.select(list(TRANSACTIONS)) for f in frames]  # the same columns, not a copy
    else:
        ingested.transaction_parts = []  # on disk, in ``parts``
    flags, users, flows = (pl.concat([d[i] for d in done]) for i in range(1, 4))
    users = sort_users(users.lazy()).collect()
    totals = totals_from(flows.lazy(), users.lazy()).collect()
    flags = sort_flags(explain_silences(flags, ingested.invocation_table.scan()).lazy()).collect()
    if incremental:
        earlier = [d[4] for d in done if len(d) > 4]  # the fifth table of a part with context rows
        incremental.carried_rows = pl.concat(earlier) if earlier else None
        incremental.finish(parts.collect(), flags, ingested)
    result = AuditResult(inputs, options, ingested, parts, flags, users, totals, incremental)
    return filters.apply(result, options.selection)
