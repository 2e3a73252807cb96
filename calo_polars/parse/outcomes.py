"""Outcomes: what the Lambda did with each transaction block, from the messages that follow it.

After a ``Start syncing the balance {`` block, the same invocation logs what became of it:
published, already synced by another listener, refused (the balance would go below zero),
failed, skipped. The first such message after the block — in the same invocation (requestId,
within one file: an invocation never spans files), in time order with the position in the
file as the tie-break, and before the next block or ``Processing message`` — decides. A
refusal names its ``transactionId``, so it also finds its block out of position.
(``../shared/log-format.md`` §6; the real archive: 15,803 published, 489 already synced, 8
refused, every block with exactly one outcome message.)
"""

from __future__ import annotations

import polars as pl

#: Outcome of a block → the event kind that says so (the first after the block wins).
OUTCOME_KINDS: dict[str, str] = {
    "published": "sync_published",
    "already_synced": "skip_already_synced",
    "refused": "blocked_overdraft",
    "failed": "sync_error",
    "skipped": "skip_update_flag_false",
}
#: Every outcome, in the order the reports list them.
OUTCOMES = [*OUTCOME_KINDS, "unknown"]
#: What each outcome means, for people.
OUTCOME_MEANINGS = {
    "published": "synced: 'SubscriptionBalanceUpdated event published'",
    "already_synced": "not applied by this Lambda: 'Balance is already synced from other listeners'",
    "refused": "refused: the balance would have gone below zero; nothing was published",
    "failed": "failed: 'An error occured while syncing the balance'",
    "skipped": "skipped: 'Update Payment Balance Flag is set to false'",
    "unknown": "no outcome message was logged after the block",
}

_BOUNDARIES = ["sync_start", "processing_message"]
_STEP_KINDS = [*_BOUNDARIES, "not_in_sync", *OUTCOME_KINDS.values()]


def with_outcomes(tx: pl.DataFrame, heads: pl.DataFrame, notices: pl.DataFrame) -> pl.DataFrame:
    """``tx`` (one batch's transaction blocks) with ``outcome`` and ``not_in_sync_after``.

    ``heads`` are the batch's events (kind, request id, time, position); ``notices`` give the
    refusals' ``transactionId``. A batch holds whole files, so every invocation is whole.
    """
    # One sort by (file, request id, time, position), then stretches as runs of rows: a run starts
    # at a boundary or where the (file, request id) changes, so each block starts its own run and
    # the rows before an invocation's first boundary belong to no block. This is the grouping by
    # (file, request id, boundaries so far) without a window over groups and two group_bys.
    kind = pl.col("kind")
    steps = (
        heads.filter(kind.cast(pl.String).is_in(_STEP_KINDS))
        .select("file_id", "line_no", "ts", "request_id", kind=kind.cast(pl.String))
        .sort("file_id", "request_id", "ts", "line_no")
    )
    new_call = (pl.col("file_id") != pl.col("file_id").shift()) | pl.col("request_id").ne_missing(
        pl.col("request_id").shift()
    )
    steps = steps.with_columns(run=(kind.is_in(_BOUNDARIES) | new_call.fill_null(True)).cum_sum())
    outcome_of = {kind: outcome for outcome, kind in OUTCOME_KINDS.items()}
    said = (
        steps.filter(kind.is_in(list(outcome_of)))
        .filter(pl.col("run").is_first_distinct())
        .select("run", said=kind.replace_strict(outcome_of, return_dtype=pl.String))
    )
    not_in_sync = steps.filter(kind == "not_in_sync").select("run").unique().with_columns(not_in_sync_after=True)
    blocks = (
        steps.filter(kind == "sync_start")
        .join(said, on="run", how="left")
        .join(not_in_sync, on="run", how="left")
        .select("file_id", "line_no", "said", pl.col("not_in_sync_after").fill_null(False))
    )
    said_by_block = (
        tx.drop("outcome", "not_in_sync_after", strict=False)
        .join(blocks, on=["file_id", "line_no"], how="left", maintain_order="left")
        .with_columns(
            outcome=pl.col("said").fill_null("unknown"),
            not_in_sync_after=pl.col("not_in_sync_after").fill_null(False),
        )
        .drop("said")
        .select(tx.columns)
    )
    return refused_by_id(said_by_block, refused_ids(notices))


def refused_ids(notices: pl.DataFrame | pl.LazyFrame) -> pl.Series:
    """The transaction ids every refusal in ``notices`` names (each once)."""
    return (
        notices.lazy()
        .filter(pl.col("kind").cast(pl.String) == "blocked_overdraft")
        .select(pl.col("transaction_id").cast(pl.String).drop_nulls().unique().sort())
        .collect()
        .to_series()
    )


def refused_by_id(tx: pl.DataFrame, refused: pl.Series) -> pl.DataFrame:
    """``tx`` with ``outcome`` "refused" wherever a refusal anywhere in the run names its id.

    ``with_outcomes`` sees one batch; a refusal logged in another file can be in another batch
    (a small input is split among the threads, a big one is read 32 MB at a time, a store holds
    batches), so the whole run's refusals (``refused_ids``) are applied once more."""
    if refused.is_empty() or tx.is_empty():
        return tx
    return tx.with_columns(
        outcome=pl.when(pl.col("tx_id").is_in(refused.implode()))
        .then(pl.lit("refused", dtype=tx.schema["outcome"]))
        .otherwise(pl.col("outcome"))
    )


def with_context(tx: pl.DataFrame, heads: pl.DataFrame, calls: pl.DataFrame) -> pl.DataFrame:
    """``tx`` with its invocation's START time (``start_ts``) and the subscriber's email and
    phone from the SQS body line that logged the same transaction id (personal data: masked
    with everything else unless --show-pii)."""
    body = pl.col("msg").cast(pl.String)
    subscribers = (
        heads.filter(pl.col("kind").cast(pl.String) == "sqs_body")
        .select(
            tx_id=body.str.extract(r'^[^{]*\{"id":"([^"]*)"'),
            email=body.str.extract(r'"email":"([^"]*)"'),
            phone=body.str.extract(r'"phoneNumber":"([^"]*)"'),
        )
        .drop_nulls("tx_id")
        .unique("tx_id", keep="first")
    )
    starts = calls.select("file_id", "request_id", "start_ts")
    return (
        tx.drop("start_ts", "email", "phone")
        .join(starts, on=["file_id", "request_id"], how="left", maintain_order="left")
        .join(subscribers, on="tx_id", how="left", maintain_order="left")
        .select(tx.columns)
    )
