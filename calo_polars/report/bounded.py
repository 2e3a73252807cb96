"""Sheets of the Lambda's signals that grow with the input: at most ``MAX_ROWS`` rows each.

Measured on a 1 GB synthetic archive (846k transactions, 60 days): SyncErrors 238,580 rows,
NegativePaymentBalance 102,248, OtherNotices 25,378 — 4.6 M cells, most of a 68 MB workbook;
a year is 6× more. No person reads 200,000 not-in-sync errors one by one, so past the cap a
sheet keeps its ``MAX_ROWS`` most telling rows (``BOUNDED``: the largest differences, the most
negative balances), shown in the sheet's usual order, and says so; the whole table is then
written beside the workbook as Parquet (``<table>.parquet``), linked from the Overview and the
README sheet. The flags (RedFlags and the sheets per check) are what people act on: they stay
whole, like PerUserSummary (one row per user).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import polars as pl

from calo_polars.audit.result import AuditResult
from calo_polars.report import tables

#: The most rows a bounded sheet holds (the real archive's 4,361 not-in-sync errors stay whole).
MAX_ROWS = 10_000


@dataclass(frozen=True)
class Bounded:
    """A sheet that is capped past ``MAX_ROWS``: its Parquet table, which rows it keeps, why."""

    table: str  # the Parquet file's name, without .parquet
    rank: pl.Expr  # rows kept first (ascending)
    kept: str  # which rows a capped sheet keeps, for the texts
    about: str  # what one row of the table is (the Parquet file's description)


BOUNDED: dict[str, Bounded] = {
    "SyncErrors": Bounded(
        "sync_errors",
        -pl.col("sync_difference").abs(),
        "the largest differences subscription − payment",
        "One row per not-in-sync error, as the SyncErrors sheet shows it.",
    ),
    "NegativePaymentBalance": Bounded(
        "negative_payment_balances",
        pl.col("payment_balance"),
        "the most negative payment balances",
        "One row per negative paymentBalance logged, as the NegativePaymentBalance sheet shows it.",
    ),
    "OtherNotices": Bounded(
        "other_notices",
        pl.col("ts"),
        "the first in time",
        "One row per notice no other sheet shows (EMF metrics, init reports), as the OtherNotices sheet shows it.",
    ),
}


def full_tables(result: AuditResult, negative: pl.DataFrame | None = None) -> dict[str, pl.DataFrame]:
    """The whole table of each bounded sheet, by sheet name (the sheets' own functions);
    ``negative``: ``tables.negative_payment_balances`` when the caller has it already."""
    return {
        "SyncErrors": tables.sync_errors(result),
        "NegativePaymentBalance": tables.negative_payment_balances(result) if negative is None else negative,
        "OtherNotices": tables.other_notices(result),
    }


def capped(sheet: str, frame: pl.DataFrame, max_rows: int | None = None) -> pl.DataFrame:
    """The rows the sheet shows: all, or past the cap its ``max_rows`` first by rank, in the sheet's order."""
    limit = MAX_ROWS if max_rows is None else max_rows
    if sheet not in BOUNDED or frame.height <= limit:
        return frame
    ranked = frame.with_row_index("_order").sort(BOUNDED[sheet].rank, "_order", nulls_last=True).head(limit)
    return ranked.sort("_order").drop("_order")


def describe(frames: dict[str, pl.DataFrame], max_rows: int | None = None) -> dict[str, dict[str, Any]]:
    """summary.json's ``capped_sheets``: each bounded sheet over the cap, its rows, of, and its Parquet file."""
    limit = MAX_ROWS if max_rows is None else max_rows
    return {
        name: {
            "rows": limit,
            "of": frame.height,
            "kept": BOUNDED[name].kept,
            "parquet": f"{BOUNDED[name].table}.parquet",
        }
        for name, frame in frames.items()
        if frame.height > limit
    }


def capped_text(sheet: str, info: dict[str, Any]) -> str:
    """What a capped sheet shows, for the README sheet and the Overview."""
    return (
        f"{sheet} shows {info['rows']:,} of {info['of']:,} rows: {info['kept']}, in the sheet's usual order; every row "
        f"is in {info['parquet']}, beside this workbook."
    )
