"""Stage 2 of a partitioned run: the unchanged check plan on each partition of a store, merged.

``check_store_partition`` is the whole per-partition job (top level and picklable, so a process
pool or Ray can run it): read the partition, set its duplicate transactions aside, run
``audit.run.check_partition``. ``audit_store`` runs it on every partition with an ``Engine`` and
merges the results exactly as ``audit`` merges its user ranges (``audit.combine``), so the
``AuditResult`` — and every output written from it — equals the one-shot run's.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import polars as pl

from calo_polars.audit.result import AuditOptions, AuditResult
from calo_polars.audit.run import check_partition, combine
from calo_polars.audit.selection import Selection
from calo_polars.checks.plan import CheckOptions
from calo_polars.parse.duplicates import DUPLICATE_SCHEMA, conflict_notes, split_duplicates
from calo_polars.parse.ingest import add_notes, assemble
from calo_polars.partitioned.engines import Engine
from calo_polars.partitioned.store import TABLES, open_store, read_partition
from calo_polars.pii import mask_strings
from calo_polars.problems import Problems
from calo_polars.read.inflate import Limits


@dataclass
class PartResult:
    """What one partition gives back: ``check_partition``'s four tables and the copies set aside."""

    tables: list[pl.DataFrame]
    duplicates: pl.DataFrame


def check_store_partition(store_dir: str | os.PathLike[str], k: int, checks: CheckOptions) -> PartResult:
    """Partition ``k`` of the store checked: its copies of a repeated id set aside (those
    already resolved across partitions by ingest first), then the check plan."""
    store = open_store(store_dir)
    tx = read_partition(store.part(k))
    cross = store.table("cross_duplicates")
    if cross.height:
        tx = tx.join(cross.select("file_id", "line_no"), on=["file_id", "line_no"], how="anti")
    duplicates = pl.DataFrame(schema=DUPLICATE_SCHEMA)
    if tx["tx_id"].is_duplicated().any():
        tx, duplicates = split_duplicates(tx, store.files().frame())
    return PartResult(check_partition(tx, checks), duplicates)


def audit_store(
    store_dir: str | os.PathLike[str],
    checks: CheckOptions = CheckOptions(),
    *,
    selection: Selection = Selection(),
    threads: int = 2,
    engine: Engine = Engine(),
) -> AuditResult:
    """Stage 2: check every partition of the store at ``store_dir`` with ``engine`` and merge.

    The reading options (masking, limits, sample size) are the ones ingest used (the
    manifest's); ``checks`` and ``selection`` are this run's. Raises ``store.NotAStore``.
    """
    store = open_store(store_dir)
    where = str(store.path.resolve())  # a task may run in another folder, or on another node
    done = engine.map(check_store_partition, [(where, k, checks) for k in range(store.partitions)])
    files = store.files()
    duplicates = (
        pl.concat([store.table("cross_duplicates"), *(d.duplicates for d in done)])
        .cast(DUPLICATE_SCHEMA)  # type: ignore[arg-type]  # polars#14468: the cast() stub rejects dict[str, DataType]
        .sort("tx_id", "ts", "file_id", "line_no")
    )
    read = store.options
    problems = store.problems()
    conflicts = Problems()
    add_notes(conflicts, conflict_notes(duplicates, files.frame()), files)
    if read["mask_pii"]:
        conflicts.mask_messages(mask_strings)
    problems.items.extend(conflicts.items)
    tables = {name: store.table(name) for name in TABLES}
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
    return combine(list(store.manifest["inputs"]), options, ingested, [d.tables for d in done], in_user_order=False)
