"""Silences: stretches of a day or more in which the export holds no event at all.

A flow break across such a stretch is most likely a movement logged in what the export is
missing, so its cause is ``logs_missing``. This is the one explanation that needs the whole
export, not one user's history: it is applied to the flags after the plan (``audit.run``),
from the invocations' time spans, so the plan itself still runs on any partition of users.
"""

from __future__ import annotations

from datetime import timedelta

import polars as pl

from calo_polars.checks.registry import check

#: How long the whole export must be silent for a flow break across it to be ``logs_missing``.
SILENCE = timedelta(hours=24)


def silences(invocations: pl.DataFrame | pl.LazyFrame, at_least: timedelta = SILENCE) -> pl.DataFrame:
    """``start``/``end`` of every stretch of at least ``at_least`` with no invocation running.

    The spans are first reduced to one per stretch of ``at_least`` (its earliest start, its
    latest end): a silence that long can only end at the earliest start of such a stretch (a
    later span's start is less than ``at_least`` after an earlier one's, and every span ends
    after it starts), and it starts at the latest end of the spans before it. So the result
    is the one every span gives, from a few hundred rows a year instead of millions.
    """
    spans = (
        invocations.lazy()
        .select("first_ts", "last_ts")
        .drop_nulls()
        .group_by(pl.col("first_ts").dt.truncate(at_least).alias("_stretch"))
        .agg(pl.col("first_ts").min(), pl.col("last_ts").max())
        .sort("first_ts")
        .collect(engine="streaming")
    )
    return (
        spans.with_columns(start=pl.col("last_ts").cum_max().shift(1), end=pl.col("first_ts"))
        .filter((pl.col("end") - pl.col("start")) >= at_least)
        .select("start", "end")
    )


def explain_silences(flags: pl.DataFrame, invocations: pl.DataFrame | pl.LazyFrame) -> pl.DataFrame:
    """Unexplained flow breaks whose next transaction comes after a silence: ``logs_missing``."""
    quiet = silences(invocations)
    breaks = (pl.col("check") == "flow_break") & (pl.col("cause") == "unexplained")
    if quiet.is_empty() or flags.filter(breaks).is_empty():
        return flags
    next_ts = pl.col("next_ts")
    across = (
        flags.filter(breaks)
        .select("tx_id", "ts", next_ts)
        .join(quiet, how="cross")
        .filter((pl.col("start") >= pl.col("ts")) & (pl.col("end") <= next_ts))
        .select("tx_id")
        .unique()
    )
    missing = check("flow_break").causes["logs_missing"]
    hit = breaks & pl.col("tx_id").is_in(across["tx_id"].implode())
    return flags.with_columns(
        cause=pl.when(hit).then(pl.lit("logs_missing")).otherwise("cause"),
        severity=pl.when(hit).then(pl.lit(missing.severity)).otherwise("severity"),
        needs_person=pl.when(hit).then(pl.lit(missing.needs_person)).otherwise("needs_person"),
        what_happened=pl.when(hit).then(missing.what_happened()).otherwise("what_happened"),
    )
