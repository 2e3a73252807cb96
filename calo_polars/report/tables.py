"""The workbook's tables, computed in Polars from an ``AuditResult``: one function per sheet.

Nothing here writes Excel: each function returns a plain frame (testable on its own) whose
helper columns (``_…``) carry link targets and alerts for the writer. Every notice lands on
exactly one sheet (``NOTICE_SHEETS``), so no logged signal is left out.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import polars as pl

from calo_polars.audit.result import AuditResult
from calo_polars.checks.plan import ORDER, PER_USER_COUNTS, USER, credit_move, debit_move, with_derived
from calo_polars.checks.registry import CHECK_NAMES, CHECKS
from calo_polars.checks.windows import HISTORY
from calo_polars.parse.invocations import ERROR_KINDS, PSEUDO_ID
from calo_polars.report.xlsx.frames import link_to

LEDGER = "Ledger"
PER_USER = "PerUserSummary"

SKIP_KINDS = ["skip_create_subscription", "skip_already_synced", "skip_update_flag_false"]


def is_lambda_error() -> pl.Expr:
    """Uncaught exceptions, runtime crashes, failed syncs, invoke errors, timeouts and failed inits."""
    kind = pl.col("kind")
    return kind.is_in(ERROR_KINDS) | ((kind == "init_report") & (pl.col("level") == "ERROR"))


#: Which sheet shows each notice; the last one takes whatever the others do not.
NOTICE_SHEETS: dict[str, pl.Expr] = {
    "SyncErrors": pl.col("kind") == "not_in_sync",
    "BlockedOverdrafts": pl.col("kind") == "blocked_overdraft",
    "LambdaErrors": is_lambda_error(),
    "Skipped": pl.col("kind").is_in(SKIP_KINDS),
}


def _notices(result: AuditResult, sheet: str, *also: pl.Expr) -> pl.DataFrame:
    """The notices ``sheet`` shows (and ``also`` holds), in file order: a stored table is read
    for those rows only."""
    return result.ingested.notice_table.filter(NOTICE_SHEETS[sheet], *also)


def other_notice() -> pl.Expr:
    """A notice no dedicated sheet shows (EMF metrics, init reports without error)."""
    return ~pl.any_horizontal(*NOTICE_SHEETS.values())


def _currency_of(result: AuditResult) -> pl.DataFrame:
    return result.users.select(USER, "currency").unique(USER, keep="first", maintain_order=True)


def _with_currency(result: AuditResult, frame: pl.DataFrame) -> pl.DataFrame:
    return frame.join(_currency_of(result), on=USER, how="left", maintain_order="left")


# ---------------------------------------------------------------- the ledger and the users


def ledger(result: AuditResult, part: pl.DataFrame | None = None) -> pl.DataFrame:
    """Every transaction, by user then time, with the balance recomputed beside the logged one.

    ``part``: one part of ``result.checked`` (each balance history whole inside it) instead of
    all of it, for outputs written partition by partition.

    ``running_balance`` starts from the wallet's first oldBalance and adds each transaction's
    announced move; ``running_diff = newBalance − running_balance`` so a flow gap or a mismatch
    shows as a step, and on a wallet's last row it is that wallet's roll-forward difference.
    The whole table at once: ``ledger_parts`` gives it part by part.
    """
    return pl.concat(list(ledger_parts(result)))


def ledger_parts(result: AuditResult) -> Iterator[pl.DataFrame]:
    """``ledger`` one part of the checked transactions at a time (``CheckedParts``), in order:
    the parts one after another are the whole Ledger; an empty Ledger is one empty part (so a
    reader always has the columns)."""
    empty = True
    for part in result.parts:
        empty = False
        yield ledger_of(result, part)
    if empty:
        yield ledger_of(result, result.parts.empty())


def ledger_of(result: AuditResult, part: pl.DataFrame) -> pl.DataFrame:
    """The Ledger rows of one part of the checked transactions (whole users: see ``ledger``)."""
    names = list(CHECK_NAMES)
    history = [*HISTORY, "applied"]
    flags = pl.concat_str([pl.when(pl.col(c)).then(pl.lit(c)) for c in names], separator=", ", ignore_nulls=True)
    rows = (
        with_derived(part.lazy(), result.options.checks)  # lazy: only the columns selected below
        .with_columns(
            credit=credit_move(),
            debit=debit_move(),
            running_balance=pl.when("applied").then(  # a refused block did not move the wallet
                pl.col("old_balance").first().over(history) + pl.col("announced_delta").cum_sum().over(history)
            ),
            flagged=pl.when(flags != "").then(flags),
        )
        .with_columns(running_diff=pl.col("new_balance") - pl.col("running_balance"))
        .with_columns(_running_alert=pl.col("running_diff").abs() > pl.col("tolerance"))
        .select(
            USER,
            "currency",
            "ts",
            "tx_id",
            "type",
            "source",
            "action",
            "amount",
            "vat",
            "credit",
            "debit",
            "old_balance",
            "new_balance",
            "running_balance",
            "running_diff",
            "flagged",
            "outcome",
            "not_in_sync_after",
            "request_id",
            "start_ts",
            "email",
            "phone",
            "wallet_id",
            "file_id",
            "line_no",
            "_running_alert",
        )
        .collect(engine="in-memory")
    )
    return result.with_file(rows)


@dataclass
class Links:
    """Link targets: each transaction's Ledger row, each user's PerUserSummary row."""

    tx: pl.DataFrame  # tx_id, _i (its Ledger row): the link text is made only for the rows linked
    user: pl.DataFrame  # user_id, _user_link

    def add(self, frame: pl.DataFrame) -> pl.DataFrame:
        """Add ``_user_link``/``_tx_link`` for the frame's user_id and tx_id/transaction_id columns."""
        out = frame
        if USER in frame.columns and "_user_link" not in frame.columns:
            user = self.user.with_columns(pl.col(USER).cast(frame.schema[USER]))  # String or Categorical
            out = out.join(user, on=USER, how="left", maintain_order="left")
        for col in ("tx_id", "transaction_id"):
            if col in frame.columns and "_tx_link" not in out.columns:
                out = out.join(self.tx.rename({"tx_id": col}), on=col, how="left", maintain_order="left")
                out = out.with_columns(_tx_link=link_to(LEDGER, pl.col("_i"))).drop("_i")
        if "next_tx_id" in frame.columns:  # a flow break links to the transaction after it too
            out = out.join(self.tx.rename({"tx_id": "next_tx_id"}), on="next_tx_id", how="left", maintain_order="left")
            out = out.with_columns(_next_tx_link=link_to(LEDGER, pl.col("_i"))).drop("_i")
        return out


def links(ledger_frame: pl.DataFrame, users: pl.DataFrame) -> Links:
    tx = ledger_frame.select("tx_id").with_row_index("_i")  # each id once: duplicates were set aside
    user = (
        users.select(USER)
        .with_row_index("_i")
        .unique(USER, keep="first", maintain_order=True)
        .select(USER, _user_link=link_to(PER_USER, pl.col("_i")))
    )
    return Links(tx, user)


def per_user_summary(result: AuditResult, ledger_frame: pl.DataFrame, negative: pl.DataFrame) -> pl.DataFrame:
    """PerUserSummary: the roll-forward and flag counts, plus each user's Lambda signals.

    ``_user_link`` points at the user's first Ledger row; ``_difference_alert`` marks a
    difference beyond the tolerance.
    """
    signals = (
        result.ingested.notice_table.filter(
            pl.col("kind").is_in(["not_in_sync", "blocked_overdraft"]) & pl.col(USER).is_not_null()
        )
        .group_by(USER)
        .agg(
            not_in_sync=(pl.col("kind") == "not_in_sync").sum(),
            blocked_overdrafts=(pl.col("kind") == "blocked_overdraft").sum(),
        )
        .join(negative.group_by(USER).agg(negative_payment_balances=pl.len()), on=USER, how="full", coalesce=True)
    )
    first_rows = ledger_frame.select(USER).with_row_index("_i").group_by(USER).agg(pl.col("_i").min())
    counts = ["not_in_sync", "blocked_overdrafts", "negative_payment_balances"]
    users = result.users
    only_signals = signals.join(users.select(USER), on=USER, how="anti").select(USER)  # no applied transaction
    if only_signals.height:
        users = pl.concat([users, only_signals.cast({USER: users.schema[USER]})], how="diagonal")
        users = users.with_columns(
            pl.col(c).fill_null(0) for c in ["wallets", "transactions", *PER_USER_COUNTS, "flags"]
        ).with_columns(pl.col("unreconciled").fill_null(False))
    return (
        users.join(signals, on=USER, how="left")
        .with_columns(pl.col(counts).fill_null(0).cast(pl.UInt32))
        .join(first_rows, on=USER, how="left")
        .with_columns(_user_link=link_to(LEDGER, pl.col("_i")), _difference_alert=pl.col("unreconciled"))
        .drop("_i")
        .sort("flags", USER, descending=[True, False])
    )


# ---------------------------------------------------------------- what the Lambda itself said


def _synced_transaction(result: AuditResult, frame: pl.DataFrame) -> pl.DataFrame:
    """Join each notice to the user's transaction logged just before it in the same invocation.

    A notice only matches a transaction of its own user, so the join runs part by part (a part
    holds whole users): each part's notices against that part's transactions only, and only the
    transactions of the notices' invocations are read (a match is in the same invocation)."""
    notices = frame.sort("ts", maintain_order=True).with_row_index("_notice")  # stable: a filter before or after agrees
    found = [
        joined.drop("ts", "request_id", USER)
        for part in result.parts.lazy()
        if (joined := _synced_in_part(notices.select("_notice", "ts", "request_id", USER), part)) is not None
    ]
    if not found:
        none = result.parts.empty().select("tx_id", "new_balance", _tx_payment_balance="payment_balance")
        return notices.drop("_notice").hstack(none.clear(notices.height))
    return notices.join(pl.concat(found), on="_notice", how="left").sort("_notice").drop("_notice")


def _synced_in_part(notices: pl.DataFrame, part: pl.LazyFrame) -> pl.DataFrame | None:
    """The notices of the users of ``part`` (``ts``, ``request_id``, ``user_id`` and any other
    columns), each with the transaction of ``part`` logged just before it in its invocation
    (``tx_id``, ``new_balance``, ``_tx_payment_balance``; null when none); None when no notice
    is of a user of ``part``."""
    same_invocation = pl.col("request_id").is_in(notices["request_id"].drop_nulls().unique().implode())
    if notices["request_id"].null_count():
        same_invocation = same_invocation | pl.col("request_id").is_null()
    columns = part.filter(same_invocation).select(
        "request_id", USER, "ts", "tx_id", "new_balance", _tx_payment_balance="payment_balance"
    )
    tx = columns.collect(engine="in-memory")
    mine = notices.join(tx.select(USER).unique(), on=USER, how="semi", nulls_equal=True)
    if not mine.height:
        return None
    return mine.join_asof(  # the transactions in time order, each user's ties as the part orders them
        tx.sort(USER, *ORDER).sort("ts", maintain_order=True),
        on="ts",
        by=["request_id", USER],
        strategy="backward",
        check_sortedness=False,
    )


def sync_errors(result: AuditResult) -> pl.DataFrame:
    """Not-in-sync errors with the difference subscription − payment and the transaction synced."""
    rows = _synced_transaction(result, _notices(result, "SyncErrors"))
    return (
        _with_currency(
            result,
            result.with_file(
                rows.with_columns(
                    sync_difference=pl.col("subscription_balance") - pl.col("payment_balance"),
                    subscription_vs_new=pl.col("subscription_balance") - pl.col("new_balance"),
                ).select(
                    "ts",
                    USER,
                    "subscription_balance",
                    "payment_balance",
                    "sync_difference",
                    "tx_id",
                    "new_balance",
                    "subscription_vs_new",
                    "request_id",
                    "file_id",
                    "line_no",
                )
            ),
        )
        .select("ts", USER, "currency", pl.exclude("ts", USER, "currency"))
        .sort("ts", USER)
    )


def blocked_overdrafts(result: AuditResult) -> pl.DataFrame:
    """The Lambda's refusals, with the refused transaction when it was also logged."""
    wanted = _notices(result, "BlockedOverdrafts")["transaction_id"].cast(pl.String).unique().implode()
    refused = result.parts.filter(
        pl.col("tx_id").cast(pl.String).is_in(wanted),
        transaction_id="tx_id",
        amount="amount",
        type="type",
        action="action",
        old_balance="old_balance",
        new_balance="new_balance",
        block_line_no="line_no",
    ).unique("transaction_id", keep="first")
    rows = (
        _notices(result, "BlockedOverdrafts")
        .drop("action")
        .join(refused, on="transaction_id", how="left")
        .with_columns(
            would_be_balance=pl.col("current_balance") - pl.col("amount"),
            in_ledger=pl.col("amount").is_not_null(),
        )
    )
    return _with_currency(result, result.with_file(rows)).select(
        "ts", USER, "currency", "transaction_id", "in_ledger", "type", "action", "amount", "current_balance",
        "would_be_balance", "old_balance", "new_balance", "request_id", "file", "line_no", "block_line_no",
    ).sort("ts", USER)  # fmt: skip


def negative_payment_balances(result: AuditResult) -> pl.DataFrame:
    """Every logged negative paymentBalance, once.

    Transactions whose block logged paymentBalance < 0, joined to the not-in-sync error that
    repeated the same value for the same transaction (``logged_in`` says which); plus
    not-in-sync errors with a negative payment balance no transaction block logged.
    """
    neg = pl.col("payment_balance") < 0
    tx = result.parts.filter(
        neg,
        "ts",
        USER,
        "tx_id",
        "type",
        "action",
        "amount",
        "new_balance",
        "payment_balance",
        "request_id",
        "file_id",
        "line_no",
    )
    errors = _synced_transaction(result, _notices(result, "SyncErrors", neg))  # the negative ones only
    echoed = errors.select("tx_id", "payment_balance", "subscription_balance").unique(
        ["tx_id", "payment_balance"], keep="first"
    )
    from_tx = tx.join(echoed, on=["tx_id", "payment_balance"], how="left").with_columns(
        logged_in=pl.when(pl.col("subscription_balance").is_not_null())
        .then(pl.lit("transaction and not-in-sync error"))
        .otherwise(pl.lit("transaction"))
    )
    only_errors = (
        errors.join(tx.select("tx_id", "payment_balance"), on=["tx_id", "payment_balance"], how="anti")
        .select("ts", USER, "tx_id", "payment_balance", "subscription_balance", "request_id", "file_id", "line_no")
        .with_columns(logged_in=pl.lit("not-in-sync error"))
    )
    rows = pl.concat([from_tx, only_errors], how="diagonal_relaxed").with_columns(
        sync_difference=pl.col("subscription_balance") - pl.col("payment_balance")
    )
    return _with_currency(result, result.with_file(rows)).select(
        "ts", USER, "currency", "logged_in", "payment_balance", "subscription_balance", "sync_difference",
        "tx_id", "type", "action", "amount", "new_balance", "request_id", "file", "line_no",
    ).sort("ts", USER, "logged_in")  # fmt: skip


def negative_payment_counts(result: AuditResult) -> tuple[int, int]:
    """``negative_payment_balances``' rows and the users they name, counted part by part without
    the table (what summary.json needs: at production rates a third of the transactions and of
    the not-in-sync errors log a negative balance). A part holds whole users, and a not-in-sync
    error is matched to a transaction of its own user, so each part's errors are compared with
    that part's transactions only; an error matched in no part (no transaction of its
    invocation) is not echoed."""
    neg = pl.col("payment_balance") < 0
    errors = (
        result.ingested.notice_table.scan()
        .filter(NOTICE_SHEETS["SyncErrors"], neg)
        .select("ts", "request_id", USER, "payment_balance")
        .collect(engine="streaming")
        .cast({USER: result.parts.schema.get(USER, pl.String)})
    )
    errors = errors.with_row_index("_error")
    rows = 0
    matched, users = [], []
    for part in result.parts.lazy():
        logged = part.filter(neg).select(USER, "tx_id", "payment_balance").collect(engine="in-memory")
        only_errors = errors.clear()
        synced = _synced_in_part(errors, part) if errors.height else None
        if synced is not None:
            matched.append(synced["_error"])
            only_errors = synced.join(logged, on=["tx_id", "payment_balance"], how="anti")
        rows += logged.height + only_errors.height
        users.append(pl.concat([logged[USER], only_errors[USER]]).drop_nulls().unique())
    if matched:  # the errors no part's transactions were compared with: none echoed
        errors = errors.filter(~pl.col("_error").is_in(pl.concat(matched).implode()))
    rows += errors.height
    users.append(errors[USER].drop_nulls().unique())
    return rows, pl.concat(users).n_unique()


def with_incidents(errors: pl.DataFrame) -> pl.DataFrame:
    """Each Lambda error event with its ``incident``: the invocation (requestId) it happened in,
    or the cold start whose init failed. A failed INIT_REPORT is always its own incident (it
    has no requestId of its own: the one it inherits is the invocation before it). Errors
    logged under the pseudo-id ``undefined`` (the uncaught exception of a failing init) belong
    to the nearest failed init in the same file.
    """
    init = pl.col("kind") == "init_report"
    real = pl.col("request_id").is_not_null() & (pl.col("request_id") != PSEUDO_ID) & ~init
    cold_start = pl.format("cold start {}:{}", "file_id", "line_no")
    inits = errors.filter(init).select("file_id", "ts", _init=cold_start)
    keyed = errors.with_row_index("_row").sort("ts")
    if inits.height:
        keyed = keyed.join_asof(inits.sort("ts"), on="ts", by="file_id", strategy="nearest", check_sortedness=False)
    else:
        keyed = keyed.with_columns(_init=pl.lit(None, pl.String))
    alone = pl.format("{} {}:{}", "kind", "file_id", "line_no")
    incident = (
        pl.when(init).then(cold_start).when(real).then(pl.col("request_id")).otherwise(pl.coalesce("_init", alone))
    )
    return keyed.sort("_row").with_columns(incident=incident).drop("_row", "_init")


def lambda_errors(result: AuditResult) -> pl.DataFrame:
    """Crashes, uncaught exceptions, failed syncs and inits: the error, its stack head, its incident."""
    parts = pl.col("detail").cast(pl.String).str.splitn(" | ", 2)
    rows = with_incidents(_notices(result, "LambdaErrors")).with_columns(
        error=parts.struct.field("field_0"), stack_head=parts.struct.field("field_1")
    )
    return (
        result.with_file(rows)
        .select("ts", "kind", "incident", "error", "stack_head", "request_id", USER, "file", "line_no")
        .sort("ts", "file", "line_no")
    )


def skipped(result: AuditResult) -> pl.DataFrame:
    """Skip messages counted by reason and action, most frequent first."""
    return (
        _notices(result, "Skipped")
        .with_columns(skip_reason=pl.col("detail").cast(pl.String).str.replace(r"\s*\{.*$", ""))
        .group_by("kind", "skip_reason", "action")
        .agg(count=pl.len(), first_ts=pl.col("ts").min(), last_ts=pl.col("ts").max())
        .with_columns(pl.col("count").cast(pl.UInt32))
        .sort(["count", "kind", "skip_reason", "action"], descending=[True, False, False, False], nulls_last=True)
    )


def other_notices(result: AuditResult) -> pl.DataFrame:
    """Notices no other sheet shows: EMF metrics, init reports without error."""
    rows = result.ingested.notice_table.filter(other_notice())
    return (
        result.with_file(rows)
        .select("ts", "kind", "level", "detail", USER, "action", "request_id", "file", "line_no")
        .sort("ts", "file", "line_no")
    )


# ---------------------------------------------------------------- invocations


def _real_invocations(result: AuditResult) -> pl.DataFrame:
    return result.ingested.invocation_table.filter(pl.col("request_id") != PSEUDO_ID)


def invocation_health(result: AuditResult) -> pl.DataFrame:
    """Per UTC day: invocations, cold starts, duration, memory, incomplete and failing ones."""
    return (
        _real_invocations(result)
        .group_by(date=pl.col("first_ts").dt.date())
        .agg(
            invocations=pl.len(),
            messages=pl.col("messages").sum(),
            transactions=pl.col("transactions").sum(),
            cold_starts=pl.col("init_ms").is_not_null().sum(),
            init_ms_avg=pl.col("init_ms").mean(),
            duration_ms_avg=pl.col("duration_ms").mean(),
            duration_ms_p95=pl.col("duration_ms").quantile(0.95, interpolation="linear"),
            duration_ms_max=pl.col("duration_ms").max(),
            max_memory_mb=pl.col("max_memory_mb").max(),
            memory_mb=pl.col("memory_mb").max(),
            incomplete=pl.col("status").cast(pl.String).str.starts_with("incomplete").sum(),
            timed_out=pl.col("timed_out").sum(),
            with_errors=(pl.col("errors") > 0).sum(),
            not_in_sync=pl.col("not_in_sync").sum(),
        )
        .with_columns(pl.col("timed_out").cast(pl.UInt32))
        .rename({"timed_out": "timed_out_invocations"})
        .sort("date")
    )


def invocation_issues(result: AuditResult) -> pl.DataFrame:
    """Invocations that are incomplete, timed out, ran outside any request, or logged errors."""
    inv = result.ingested.invocation_table
    return result.with_file(inv.filter((pl.col("status") != "complete") | (pl.col("errors") > 0))).sort(
        "first_ts", "file", "request_id"
    )


# ---------------------------------------------------------------- data behind the charts


def daily_totals(result: AuditResult) -> pl.DataFrame:
    """Per currency and UTC day: transactions, the roll-forward's credits and debits, flags."""
    by_day = result.parts.aggregate(
        lambda part: (
            with_derived(part, result.options.checks)
            .group_by("currency", date=pl.col("ts").dt.date())
            .agg(
                transactions=pl.len(),
                credits=credit_move().sum(),
                debits=debit_move().sum(),
                flags=pl.sum_horizontal(*[pl.col(c).sum() for c in CHECK_NAMES]),
            )
        )
    )  # per part, then added up per currency and day: exact (Decimal), never across currencies
    return (
        by_day.group_by("currency", "date")
        .agg(
            pl.col("transactions").sum().cast(by_day.schema["transactions"]), pl.col("credits", "debits", "flags").sum()
        )
        .with_columns(pl.col("flags").cast(pl.UInt32))
        .sort("currency", "date")
    )


#: WeeklySignals' column for each check → the check.
WEEKLY_CHECKS = {c.per_user: c.name for c in CHECKS}
WEEKLY_SIGNALS = ["not_in_sync", "blocked_overdrafts", "lambda_errors"]


#: Every week of the period is a row when the period spans fewer weeks (20 years); else only weeks with data.
MAX_WEEKS = 1_044


def weekly_signals(result: AuditResult) -> pl.DataFrame:
    """Per week (Monday, UTC), every week of the period: flags of each check and Lambda signals.

    The rows are bounded: a period longer than ``MAX_WEEKS`` keeps the weeks with data only."""
    week = pl.col("ts").dt.truncate("1w").dt.date().alias("week")
    checks = (
        result.parts.aggregate(
            lambda part: part.group_by(week).agg(**{name: pl.col(c).sum() for name, c in WEEKLY_CHECKS.items()})
        )
        .group_by("week")
        .agg(pl.col(list(WEEKLY_CHECKS)).sum())
    )  # per part, then added up
    kind = pl.col("kind")
    signals = (
        result.ingested.notice_table.scan()
        .group_by(week)
        .agg(
            not_in_sync=(kind == "not_in_sync").sum(),
            blocked_overdrafts=(kind == "blocked_overdraft").sum(),
            lambda_errors=is_lambda_error().sum(),
        )
        .collect(engine="streaming")  # counts: exact streamed
    )
    columns = [*WEEKLY_CHECKS, "flags", *WEEKLY_SIGNALS]
    known = pl.concat([checks.select("week"), signals.select("week")])["week"]
    if known.is_empty():
        return pl.DataFrame(schema={"week": pl.Date, **dict.fromkeys(columns, pl.UInt32)})
    first, last = known.min(), known.max()
    if (last - first).days // 7 < MAX_WEEKS:  # type: ignore[operator,union-attr]  # two dates
        weeks = pl.select(week=pl.date_range(pl.lit(first), pl.lit(last), "1w"))
    else:  # stamps centuries apart (1899 and 9999): the weeks with data only, never 400,000 rows
        weeks = known.unique().sort().to_frame()
    return (
        weeks.join(checks, on="week", how="left")
        .join(signals, on="week", how="left")
        .with_columns(pl.exclude("week").fill_null(0).cast(pl.UInt32))
        .with_columns(flags=pl.sum_horizontal(*WEEKLY_CHECKS).cast(pl.UInt32))
        .select("week", *columns)
        .sort("week")
    )


TOP_USERS = 10


def top_user_balances(ledger_parts: Iterable[pl.DataFrame], users: pl.DataFrame) -> pl.DataFrame:
    """The logged and recomputed balance over time of the ten users with most flags, from the
    complete Ledger's parts (only those users' rows are kept)."""
    top = (
        users.filter(pl.col("flags") > 0)
        .sort("flags", USER, descending=[True, False])
        .head(TOP_USERS)
        .select(USER, "currency", "flags")
        .with_row_index("rank", offset=1)
        .with_columns(pl.col("rank").cast(pl.UInt32))
    )
    keys = top.select(USER, "currency")
    rows = [part.join(keys, on=[USER, "currency"], how="semi", maintain_order="left") for part in ledger_parts]
    return (
        pl.concat(rows)
        .with_row_index("_i")
        .join(top, on=[USER, "currency"], how="inner")
        .sort("rank", "_i")
        .select("rank", USER, "currency", "flags", "ts", "new_balance", "running_balance")
    )
