"""Invocations: events grouped by requestId, never by position (the export is out of order).

An invocation never spans files, so each batch (whole files) groups its own. Lines without a
requestId (EMF, INIT_*, crash lines) already carry the nearest preceding one of their file.
"""

from __future__ import annotations

import polars as pl

from calo_polars.problems import notes

REPORT_RE = (
    r"Duration: (?P<duration_ms>[0-9.]+) ms\tBilled Duration: (?P<billed_ms>[0-9]+) ms"
    r"\tMemory Size: (?P<memory_mb>[0-9]+) MB\tMax Memory Used: (?P<max_memory_mb>[0-9]+) MB"
    r"(?:\tInit Duration: (?P<init_ms>[0-9.]+) ms)?"
)

REPORT_FIELDS = ["duration_ms", "billed_ms", "memory_mb", "max_memory_mb", "init_ms"]

#: The pseudo request id the Node runtime prints for errors outside any invocation.
PSEUDO_ID = "undefined"
ERROR_KINDS = ["sync_error", "uncaught_exception", "invoke_error", "runtime_crash", "timeout"]

INVOCATION_SCHEMA: dict[str, pl.DataType] = {
    "file_id": pl.UInt32(),
    "line_no": pl.UInt32(),
    "request_id": pl.String(),
    "first_ts": pl.Datetime("ms", "UTC"),
    "last_ts": pl.Datetime("ms", "UTC"),
    "start_ts": pl.Datetime("ms", "UTC"),
    "has_start": pl.Boolean(),
    "has_end": pl.Boolean(),
    "has_report": pl.Boolean(),
    "events": pl.UInt32(),
    "messages": pl.UInt32(),
    "transactions": pl.UInt32(),
    "published": pl.UInt32(),
    "not_in_sync": pl.UInt32(),
    "errors": pl.UInt32(),
    "timed_out": pl.Boolean(),
    "duration_ms": pl.Float64(),
    "billed_ms": pl.Int64(),
    "memory_mb": pl.Int64(),
    "max_memory_mb": pl.Int64(),
    "init_ms": pl.Float64(),
    "status": pl.String(),
}


def reports(heads: pl.DataFrame) -> pl.DataFrame:
    """The figures of each REPORT line that has them: its event and ``REPORT_FIELDS`` as text
    (the compiled scan reads the same table: ``tokenize.fast_scan``)."""
    return (
        heads.filter(pl.col("kind") == "report")
        .select("event", figures=pl.col("platform_rest").str.extract_groups(REPORT_RE))
        .unnest("figures")
        .filter(pl.col("duration_ms").is_not_null())
    )


def invocations(heads: pl.DataFrame, figures: pl.DataFrame | None = None) -> pl.DataFrame:
    """One row per (file, requestId) with its completeness, counts and REPORT figures
    (``figures``: ``reports(heads)``, which is read here when not given)."""
    kind = pl.col("kind")
    grouped = (
        heads.lazy()
        .filter(pl.col("request_id").is_not_null())
        .join((reports(heads) if figures is None else figures).lazy(), on="event", how="left")
        .group_by("file_id", "request_id")
        .agg(
            line_no=pl.col("line_no").min(),
            first_ts=pl.col("ts").min(),
            last_ts=pl.col("ts").max(),
            start_ts=pl.col("ts").filter(kind == "start").min(),
            has_start=(kind == "start").any(),
            has_end=(kind == "end").any(),
            has_report=(kind == "report").any(),
            events=pl.len(),
            messages=(kind == "processing_message").sum(),
            transactions=kind.is_in(["sync_start", "invalid_transaction"]).sum(),
            published=(kind == "sync_published").sum(),
            not_in_sync=(kind == "not_in_sync").sum(),
            errors=((pl.col("level") == "ERROR") & (kind != "not_in_sync") | kind.is_in(ERROR_KINDS)).sum(),
            timed_out=(kind == "timeout").any(),
            duration_ms=pl.col("duration_ms").cast(pl.Float64, strict=False).max(),
            billed_ms=pl.col("billed_ms").cast(pl.Int64, strict=False).max(),
            memory_mb=pl.col("memory_mb").cast(pl.Int64, strict=False).max(),
            max_memory_mb=pl.col("max_memory_mb").cast(pl.Int64, strict=False).max(),
            init_ms=pl.col("init_ms").cast(pl.Float64, strict=False).max(),
        )
        .with_columns(status=_status())
        .sort("file_id", "line_no", "request_id")
        .select(list(INVOCATION_SCHEMA))
    )
    return grouped.collect(engine="in-memory").cast(INVOCATION_SCHEMA)  # type: ignore[arg-type]  # polars#14468: the cast() stub rejects dict[str, DataType]


def incomplete_notes(invocations: pl.DataFrame) -> pl.DataFrame:
    """One input problem per invocation that lacks its START, END or REPORT line."""
    return notes(
        invocations.filter(pl.col("status").str.starts_with("incomplete")),
        "incomplete_invocation",
        pl.format(
            "invocation {} has {}: it timed out, crashed, or the file is cut",
            pl.col("request_id"),
            pl.col("status").str.strip_prefix("incomplete: "),
        ),
    )


def _status() -> pl.Expr:
    missing = pl.concat_str(
        [
            pl.when(~pl.col("has_start")).then(pl.lit("START")),
            pl.when(~pl.col("has_end")).then(pl.lit("END")),
            pl.when(~pl.col("has_report")).then(pl.lit("REPORT")),
        ],
        separator=", ",
        ignore_nulls=True,
    )
    return (
        pl.when(pl.col("request_id") == PSEUDO_ID)
        .then(pl.lit("outside any invocation (runtime error)"))
        .when(pl.col("timed_out"))
        .then(pl.lit("timed out"))
        .when(missing != "")
        .then(pl.format("incomplete: no {}", missing))
        .otherwise(pl.lit("complete"))
    )
