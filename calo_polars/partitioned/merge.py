"""Stage 2 of a partitioned run: the unchanged check plan on each partition of a store, merged.

``check_store_partition`` is the whole per-partition job (top level and picklable, so a process
pool or Ray can run it): read the partition, set its duplicate transactions aside, run
``audit.run.check_partition``. ``audit_store`` runs it on every partition with an ``Engine`` and
merges the results exactly as ``audit`` merges its user ranges (``audit.combine``), so the
``AuditResult`` — and every output written from it — equals the one-shot run's.
"""

from __future__ import annotations

import os
import secrets
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import polars as pl

from calo_polars.atomic import remove_stale
from calo_polars.audit.parts import SPILL_NAME, CheckedParts, range_bounds, range_of
from calo_polars.audit.result import AuditOptions, AuditResult
from calo_polars.audit.run import check_partition, combine
from calo_polars.audit.selection import Selection
from calo_polars.checks.plan import USER, CheckOptions
from calo_polars.errors import OutputError
from calo_polars.parse.duplicates import DUPLICATE_SCHEMA, conflict_notes, split_duplicates
from calo_polars.parse.ingest import add_notes, assemble
from calo_polars.parse.outcomes import refused_by_id, refused_ids
from calo_polars.parse.partition import PART_ROWS
from calo_polars.parse.table import Table
from calo_polars.partitioned.engines import Engine
from calo_polars.partitioned.store import Store, open_store, read_partition
from calo_polars.pii import mask_strings
from calo_polars.problems import Problems
from calo_polars.read.inflate import Limits


@dataclass
class PartResult:
    """What one partition gives back: ``check_partition``'s four tables and the copies set aside.

    Spilled (``spill`` given), the checked rows are on disk by user range instead: ``tables[0]``
    is empty and ``ranges`` holds the rows written for each range."""

    tables: list[pl.DataFrame]
    duplicates: pl.DataFrame
    ranges: dict[int, int] = field(default_factory=dict)


def check_store_partition(
    store_dir: str | os.PathLike[str],
    k: int,
    checks: CheckOptions,
    spill: str | None = None,
    bounds: list[str] | None = None,
    refused: list[str] | None = None,
) -> PartResult:
    """Partition ``k`` of the store checked: its copies of a repeated id set aside (those
    already resolved across partitions by ingest first), then the check plan. With ``spill``
    (a folder every worker sees), its checked rows are written there split by the user ranges
    that start at ``bounds`` (``parts.range_bounds``), one file a range, and only the small
    tables travel back."""
    store = open_store(store_dir)
    tx = read_partition(store.part(k))
    cross = store.table("cross_duplicates")
    if cross.height:
        tx = tx.join(cross.select("file_id", "line_no"), on=["file_id", "line_no"], how="anti")
    duplicates = pl.DataFrame(schema=DUPLICATE_SCHEMA)
    if tx["tx_id"].is_duplicated().any():
        repeated = tx.filter(pl.col("tx_id").is_duplicated())["file_id"]  # only their files' paths are read
        tx, duplicates = split_duplicates(tx, store.files().frame_of(repeated))
    if refused:
        tx = refused_by_id(tx, pl.Series(refused, dtype=pl.String))
    tables = check_partition(tx, checks)
    del tx
    if spill is None:
        return PartResult(tables, duplicates)
    checked = tables[0]
    tables[0] = checked.clear()
    ranges: dict[int, int] = {}
    numbered = checked.with_columns(range_of(checked[USER], pl.Series(USER, bounds or [], pl.String)))
    del checked
    for (r,), rows in numbered.partition_by("_range", as_dict=True, maintain_order=True).items():
        rows.drop("_range").write_parquet(Path(spill) / SPILL_NAME.format(r=int(r), k=k), compression="lz4")
        ranges[int(r)] = rows.height
    return PartResult(tables, duplicates, ranges)


def spill_folder(store: Path) -> Path:
    """The scratch folder of one stage-2 run: inside the store (a path every node of a cluster
    that reads the store sees), named before it is made so a signal never leaves it behind."""
    return store / f"{SPILL_PREFIX}{os.getpid()}-{secrets.token_hex(4)}{SPILL_SUFFIX}"


SPILL_PREFIX, SPILL_SUFFIX = ".checked-", ".tmp"


def user_counts(store: Store) -> pl.DataFrame:
    """Transactions per user over every partition (``user_id``, ``len``), read from the user column only.
    A partition that cannot be read is left out here: its own check then says so, on its engine."""
    frames = []
    for k in range(store.partitions):
        try:
            frames.append(pl.scan_parquet(store.part(k)).group_by(USER).len().collect(engine="in-memory"))
        except (OSError, pl.exceptions.PolarsError):
            continue
    return pl.concat(frames) if frames else pl.DataFrame(schema={USER: pl.String, "len": pl.UInt32})


def audit_store(
    store_dir: str | os.PathLike[str],
    checks: CheckOptions = CheckOptions(),
    *,
    selection: Selection = Selection(),
    threads: int = 2,
    engine: Engine = Engine(),
    part_rows: int = PART_ROWS,
) -> AuditResult:
    """Stage 2: check every partition of the store at ``store_dir`` with ``engine`` and merge.

    The reading options (masking, limits, sample size) are the ones ingest used (the
    manifest's); ``checks`` and ``selection`` are this run's. Memory is bounded by a
    partition and a user range of about ``part_rows`` transactions: each partition's checked
    rows go to a scratch folder in the store split by user range, and the result reads them
    back one range at a time (``CheckedParts``; ``AuditResult.close`` removes the folder).
    Only the flags, per-user rows, totals and the small tables are merged in this process.
    Raises ``store.NotAStore``.
    """
    store = open_store(store_dir)
    where = store.path.resolve()  # a task may run in another folder, or on another node
    bounds = range_bounds(user_counts(store), part_rows).to_list()
    remove_stale(where, [(SPILL_PREFIX, SPILL_SUFFIX)])  # left by a run killed with kill -9
    spill = spill_folder(where)
    try:
        spill.mkdir()
    except OSError as exc:
        raise OutputError(f"cannot write the scratch folder {spill}: {exc.strerror or exc}") from None
    try:
        parts = _check_all(store, where, spill, checks, bounds, engine)
        result = _merge(store, checks, selection, threads, parts)
    except BaseException:
        shutil.rmtree(spill, ignore_errors=True)
        raise
    return result


def _check_all(
    store: Store, where: Path, spill: Path, checks: CheckOptions, bounds: list[str], engine: Engine
) -> tuple[list[PartResult], CheckedParts]:
    # A refusal and its block can be in different batches of ingest: every refused id goes to every partition.
    refused = refused_ids(pl.scan_parquet(store.path / "notices.parquet")).to_list()
    calls = [(str(where), k, checks, str(spill), bounds, refused) for k in range(store.partitions)]
    done = engine.map(check_store_partition, calls)
    files: list[list[Path]] = [[] for _ in range(len(bounds) + 1)]
    height = 0
    for k, d in enumerate(done):
        for r, rows in d.ranges.items():
            files[r].append(spill / SPILL_NAME.format(r=r, k=k))
            height += rows
    schema = dict(done[0].tables[0].schema) if done else {}
    return done, CheckedParts.spilled(spill, [f for f in files if f], schema, height)


def _merge(
    store: Store,
    checks: CheckOptions,
    selection: Selection,
    threads: int,
    checked: tuple[list[PartResult], CheckedParts],
) -> AuditResult:
    done, parts = checked
    files = store.files()
    duplicates = (
        pl.concat([store.table("cross_duplicates"), *(d.duplicates for d in done)])
        .cast(DUPLICATE_SCHEMA)  # type: ignore[arg-type]  # polars#14468: the cast() stub rejects dict[str, DataType]
        .sort("tx_id", "ts", "file_id", "line_no")
    )
    read = store.options
    problems = store.problems()
    conflicts = Problems()
    add_notes(conflicts, conflict_notes(duplicates, files.frame_of(duplicates["kept_file_id"])), files)
    if read["mask_pii"]:
        conflicts.mask_messages(mask_strings)
    problems.items.extend(conflicts.items)
    tables: dict[str, pl.DataFrame | Table] = {"unparsed": store.table("unparsed"), "sample": store.kept("sample")}
    tables["notices"] = store.kept("notices", ("file_id", "line_no"))  # left in the store: read as outputs ask
    tables["invocations"] = store.kept("invocations")
    ingested = assemble(
        files, store.manifest["kind_counts"], [], tables, problems, store.skipped(), duplicates, read["sample_size"]
    )
    options = AuditOptions(
        checks=checks,
        threads=threads,
        sample_size=read["sample_size"],
        limits=Limits(read["max_total_bytes"], read["max_ratio"], read["ratio_floor"]),
        mask_pii=read["mask_pii"],
        selection=selection,
    )
    done_tables = [d.tables for d in done]
    return combine(list(store.manifest["inputs"]), options, ingested, done_tables, in_user_order=False, parts=parts)
