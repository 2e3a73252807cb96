"""The plan: the per-row arithmetic, the windows and every declared check, in one lazy plan.

The checks themselves are declared in ``registry``; this module computes what they read (the
move of each transaction, what it announced, the wallet's next transaction, the user's recent
deltas), adds every check's helpers and flag by looping over ``registry.CHECKS``, then the
amounts the roll-forward splits into (``mismatch_diff``, ``flow_gap``).

Money stays Decimal end to end; only the 3σ statistics are computed in Float64, because a mean
and a standard deviation are estimates, not amounts.
"""

from __future__ import annotations

import polars as pl

from calo_polars.checks.registry import CHECKS, SEVERITIES, Check, CheckOptions, within
from calo_polars.checks.windows import HISTORY, ORDER, next_in_wallet
from calo_polars.money import MONEY, tolerance_expr
from calo_polars.parse.partition import USER

#: The per-user count of each check (PerUserSummary), in the registry's order.
PER_USER_COUNTS = [c.per_user for c in CHECKS]


# ---------------------------------------------------------------- per-transaction arithmetic


def applied() -> pl.Expr:
    """The block moved the wallet, or may have: every outcome but ``refused`` (``parse.outcomes``).

    A refused block is left out of the wallet's history, its windows and its roll-forward.
    """
    return pl.col("outcome").cast(pl.String).fill_null("unknown") != "refused"


def delta() -> pl.Expr:
    """How much the balance moved: ``newBalance − oldBalance``."""
    return pl.col("new_balance") - pl.col("old_balance")


def amount_sign() -> pl.Expr:
    """−1 for a DEBIT, +1 for a CREDIT; legacy blocks (no type) infer it from the balances.

    A legacy block whose balance did not move is taken as a debit (legacy blocks are the
    nightly deductions); its amount then decides whether it is a mismatch.
    """
    return (
        pl.when(pl.col("type") == "DEBIT")
        .then(pl.lit(-1, pl.Int8))
        .when(pl.col("type") == "CREDIT")
        .then(pl.lit(1, pl.Int8))
        .when(pl.col("delta") > 0)
        .then(pl.lit(1, pl.Int8))
        .otherwise(pl.lit(-1, pl.Int8))
    )


def sign_source() -> pl.Expr:
    """Where ``amount_sign`` came from: the logged ``type`` or the balances."""
    return pl.when(pl.col("type").is_in(["DEBIT", "CREDIT"])).then(pl.lit("type")).otherwise(pl.lit("inferred"))


def expected_delta() -> pl.Expr:
    """``amount_sign × amount``: the move the transaction announces, VAT included."""
    return pl.col("amount") * pl.col("amount_sign")


def expected_delta_net() -> pl.Expr:
    """``amount_sign × (amount − vat)``: the move when VAT is kept out of the wallet."""
    return (pl.col("amount") - pl.col("vat")) * pl.col("amount_sign")


def vat_applied() -> pl.Expr:
    """False when the move matches the gross amount, True when only the net one; null if neither."""
    return (
        pl.when(within(pl.col("delta"), pl.col("expected_delta")))
        .then(False)
        .when(within(pl.col("delta"), pl.col("expected_delta_net")))
        .then(True)
    )


def announced_delta() -> pl.Expr:
    """The move the transaction announced, as the roll-forward counts it.

    Net of VAT where the balance moved net of VAT (``vat_applied``), else the gross amount —
    also on a mismatch, whose ``mismatch_diff`` is measured from the gross move. So on every
    row ``delta = announced_delta + mismatch_diff`` up to the tolerance.
    """
    return pl.when(pl.col("vat_applied")).then(pl.col("expected_delta_net")).otherwise(pl.col("expected_delta"))


# ---------------------------------------------------------------- context every check may read


def flow_gap() -> pl.Expr:
    """``next oldBalance − newBalance``: positive when money appeared between transactions."""
    return pl.when(pl.col("flow_break")).then(pl.col("next_old") - pl.col("new_balance"))


def preceding_delta_stats(window: int, min_history: int) -> list[pl.Expr]:
    """Mean and σ of the user's preceding ``window`` deltas in the same direction (debits apart
    from credits: a top-up says nothing about the daily deductions), from at least
    ``min_history`` of them. A refused block is no part of the history.

    The frame must be sorted by user then time: rolling windows follow row order.
    """
    previous = pl.col("delta").cast(pl.Float64).shift(1)
    by = [USER, "applied", "amount_sign"]
    return [
        pl.when("applied").then(previous.rolling_mean(window, min_samples=min_history).over(by)).alias("delta_mean"),
        pl.when("applied").then(previous.rolling_std(window, min_samples=min_history).over(by)).alias("delta_std"),
    ]


# ---------------------------------------------------------------- the plan


def _derived_stages(options: CheckOptions) -> list[dict[str, pl.Expr]]:
    """The per-row arithmetic, in dependency order: a function of the row alone."""
    return [
        {
            "tolerance": tolerance_expr(pl.col("currency"), options.tolerance),
            "delta": delta(),
            "applied": applied(),
        },
        {"amount_sign": amount_sign(), "sign_source": sign_source()},
        {"expected_delta": expected_delta(), "expected_delta_net": expected_delta_net()},
        {"vat_applied": vat_applied()},
        {"announced_delta": announced_delta()},
    ]


#: The columns every check may read that depend on other rows: the wallet's next transaction,
#: the user's recent deltas, and the move of the wallet's latest refused block so far.
CONTEXT_COLUMNS = ["next_tx_id", "next_ts", "next_old", "delta_mean", "delta_std", "last_refused_move"]


def _context(options: CheckOptions) -> list[pl.Expr]:
    refused_move = pl.when(~pl.col("applied")).then(pl.col("expected_delta"))
    return [
        next_in_wallet("tx_id").alias("next_tx_id"),
        next_in_wallet("ts").alias("next_ts"),
        next_in_wallet("old_balance").alias("next_old"),
        *preceding_delta_stats(options.window, options.min_history),
        refused_move.forward_fill().over(HISTORY, order_by=ORDER).alias("last_refused_move"),
    ]


def _amounts() -> dict[str, pl.Expr]:
    """What the roll-forward splits a difference into, computed from the flags."""
    return {
        "mismatch_diff": pl.when(pl.col("mismatch")).then(pl.col("delta") - pl.col("expected_delta")),
        "flow_gap": flow_gap(),
    }


def with_checks(transactions: pl.LazyFrame, options: CheckOptions = CheckOptions()) -> pl.LazyFrame:
    """Add every computed column and check flag. Rows come out sorted by user, then time."""
    plan = transactions.sort(USER, *ORDER)
    for stage in _derived_stages(options):
        plan = plan.with_columns(**stage)
    helpers = {name: expr(options) for c in CHECKS for name, expr in c.helpers.items()}
    return (
        plan.with_columns(*_context(options))
        .with_columns(**helpers)
        .with_columns(**{c.name: c.flag(options) & pl.col("applied") for c in CHECKS})
        .with_columns(**_amounts())
    )


#: What ``with_checks`` computes that depends on other rows (windows), each check's helpers and
#: flags: the columns an audit keeps beside the transaction's own. Everything else it computes
#: is per-row arithmetic that ``with_derived`` recomputes in milliseconds where it is shown;
#: storing it was 10 Decimal columns, 40 % of the memory of a large audit.
STORED_CHECK_COLUMNS = [*CONTEXT_COLUMNS, *(h for c in CHECKS for h in c.helpers), *(c.name for c in CHECKS)]

#: Every column ``with_checks`` adds, in its order.
CHECK_COLUMNS = [
    "tolerance", "delta", "applied", "amount_sign", "sign_source", "expected_delta", "expected_delta_net", "vat_applied",
    "announced_delta", *STORED_CHECK_COLUMNS, "mismatch_diff", "flow_gap",
]  # fmt: skip


def with_derived(checked: pl.LazyFrame, options: CheckOptions = CheckOptions()) -> pl.LazyFrame:
    """The kept check columns (``STORED_CHECK_COLUMNS``) plus the per-row arithmetic: every
    column ``with_checks`` gives, in its order, without re-running the windows."""
    plan = checked
    for stage in _derived_stages(options):
        plan = plan.with_columns(**stage)
    return plan.with_columns(**_amounts()).select(pl.exclude(CHECK_COLUMNS), *CHECK_COLUMNS)


# ---------------------------------------------------------------- flags in plain English


FLAG_COLUMNS = [
    "severity", "needs_person", "check", "cause", "what_happened", "user_id", "wallet_id", "currency", "ts",
    "tx_id", "outcome", "type", "source", "action", "amount", "vat", "old_balance", "new_balance", "delta",
    "expected_delta", "next_old", "flow_gap", "next_tx_id", "next_ts", "reason", "request_id", "file_id", "line_no",
]  # fmt: skip


def _explained(check: Check) -> dict[str, pl.Expr]:
    """A flagged row's cause (the first that holds), its severity, whether a person must act,
    and what happened in one sentence (``registry.Cause``)."""
    keys = list(check.causes)
    cause = check.cause() if check.cause is not None else pl.lit(keys[0])
    what = pl.lit(None, pl.String)
    for key in reversed(keys):
        what = pl.when(pl.col("cause") == key).then(check.causes[key].what_happened()).otherwise(what)
    return {
        "cause": cause,
        "severity": cause.replace_strict({k: c.severity for k, c in check.causes.items()}, return_dtype=pl.String),
        "needs_person": cause.replace_strict({k: c.needs_person for k, c in check.causes.items()}),
        "what_happened": what,
    }


def red_flags(checked: pl.LazyFrame) -> pl.LazyFrame:
    """Every flag as its own row: its cause and severity, whether a person must act, what
    happened in plain English, the transaction and the arithmetic (``reason``)."""
    parts = []
    for c in CHECKS:
        explained = _explained(c)
        what = explained.pop("what_happened")
        parts.append(
            checked.filter(pl.col(c.name))
            .with_columns(check=pl.lit(c.name), reason=c.reason(), **explained)
            .with_columns(what_happened=what)
        )
    return sort_flags(
        pl.concat(parts, how="diagonal_relaxed").with_columns(pl.col("outcome").cast(pl.String)).select(FLAG_COLUMNS)
    )


def sort_flags(flags: pl.LazyFrame) -> pl.LazyFrame:
    """Most severe first, then by user, time, transaction and check (a total order)."""
    rank = pl.col("severity").replace_strict({s: i for i, s in enumerate(SEVERITIES)}, return_dtype=pl.Int8)
    return flags.sort(rank, "user_id", "ts", "tx_id", "check")


# ---------------------------------------------------------------- roll-forward


#: The roll-forward columns, in the order an accountant reads them.
ROLL_FORWARD = [
    "opening_balance", "credits", "debits", "expected_closing", "closing_balance",
    "difference", "flow_gaps", "mismatch_diffs", "rounding",
]  # fmt: skip


def credit_move() -> pl.Expr:
    """What a credit announced into the wallet (null on a debit)."""
    return pl.when((pl.col("amount_sign") > 0) & pl.col("applied")).then(pl.col("announced_delta"))


def debit_move() -> pl.Expr:
    """What a debit announced out of the wallet, as a positive amount (null on a credit)."""
    return pl.when((pl.col("amount_sign") < 0) & pl.col("applied")).then(-pl.col("announced_delta"))


def rounding_parts() -> list[pl.Expr]:
    """The within-tolerance differences of a row, which no check flags but the books still see.

    ``delta − announced_delta`` when the row is no mismatch, and ``next_old − newBalance``
    when the wallet goes on and the step is no flow break. Each is at most the tolerance.
    """
    return [
        pl.when(~pl.col("mismatch")).then(pl.col("delta") - pl.col("announced_delta")),
        pl.when(pl.col("next_old").is_not_null() & ~pl.col("flow_break")).then(
            pl.col("next_old") - pl.col("new_balance")
        ),
    ]


def per_user(checked: pl.LazyFrame) -> pl.LazyFrame:
    """One row per user and currency: activity, the roll-forward and how many of each flag.

    The roll-forward: ``expected_closing = opening_balance + credits − debits`` and
    ``difference = closing_balance − expected_closing``. Opening and closing add up each of
    the user's wallets (first oldBalance, last newBalance), and credits/debits are what each
    transaction announced (``announced_delta``), so the difference telescopes exactly into
    ``flow_gaps + mismatch_diffs + rounding``.
    """
    key = [USER, "currency"]
    move, step = rounding_parts()
    checked = checked.filter("applied")
    ends = (
        checked.group_by(*key, "wallet_id")
        .agg(
            opening_balance=pl.col("old_balance").sort_by(ORDER).first(),
            closing_balance=pl.col("new_balance").sort_by(ORDER).last(),
        )
        .group_by(key)
        .agg(
            wallets=pl.len(),
            opening_balance=pl.col("opening_balance").sum(),
            closing_balance=pl.col("closing_balance").sum(),
        )
    )
    activity = checked.group_by(key).agg(
        transactions=pl.len(),
        first_ts=pl.col("ts").min(),
        last_ts=pl.col("ts").max(),
        credits=credit_move().sum(),
        debits=debit_move().sum(),
        flow_gaps=pl.col("flow_gap").sum(),
        mismatch_diffs=pl.col("mismatch_diff").sum(),
        rounding=move.sum() + step.sum(),
        tolerance=pl.col("tolerance").first(),
        min_balance=pl.min_horizontal(pl.col("old_balance").min(), pl.col("new_balance").min()),
        **{c.per_user: pl.col(c.name).sum() for c in CHECKS},
    )
    expected = pl.col("opening_balance") + pl.col("credits") - pl.col("debits")
    return (
        activity.join(ends, on=key, how="inner")
        .with_columns(expected_closing=expected.cast(MONEY))
        .with_columns(difference=(pl.col("closing_balance") - pl.col("expected_closing")).cast(MONEY))
        .with_columns(
            unreconciled=pl.col("difference").abs() > pl.col("tolerance"),
            flags=pl.sum_horizontal(*PER_USER_COUNTS),
        )
        .select(
            *key,
            "wallets",
            "transactions",
            "first_ts",
            "last_ts",
            *ROLL_FORWARD,
            "unreconciled",
            "min_balance",
            *PER_USER_COUNTS,
            "flags",
        )
        .with_columns(pl.col(ROLL_FORWARD).cast(MONEY))
        .pipe(sort_users)
    )


def sort_users(users: pl.LazyFrame) -> pl.LazyFrame:
    """Most flags first, then by user and currency (a total order)."""
    return users.sort("flags", USER, "currency", descending=[True, False, False])


def currency_flows(checked: pl.LazyFrame) -> pl.LazyFrame:
    """Per currency: activity and gross debit/credit totals, VAT and the net change.

    Additive over any partition of users (``users`` counts distinct users, whom a partition
    by user never splits), so parts can be added up by ``totals_from``.
    """
    credit = pl.col("amount_sign") > 0
    return (
        checked.filter("applied")
        .group_by("currency")
        .agg(
            transactions=pl.len(),
            users=pl.col(USER).n_unique(),
            debit_total=pl.col("amount").filter(~credit).sum().cast(MONEY),
            credit_total=pl.col("amount").filter(credit).sum().cast(MONEY),
            vat_total=pl.col("vat").sum().cast(MONEY),
            net_change=pl.col("delta").sum().cast(MONEY),
        )
    )


def totals_from(flows: pl.LazyFrame, users: pl.LazyFrame) -> pl.LazyFrame:
    """Currency totals from ``currency_flows`` (of one frame, or of several parts) and ``per_user``."""
    counts = {"transactions": pl.UInt32, "users": pl.UInt32}
    summed = flows.group_by("currency").agg(
        *[pl.col(c).sum().cast(dtype) for c, dtype in counts.items()],
        *[pl.col(c).sum().cast(MONEY) for c in ("debit_total", "credit_total", "vat_total", "net_change")],
    )
    roll = users.group_by("currency").agg(
        *[pl.col(c).sum().cast(MONEY) for c in ROLL_FORWARD],
        unreconciled_users=pl.col("unreconciled").sum(),
    )
    return summed.join(roll, on="currency", how="left").sort("currency")


def currency_totals(checked: pl.LazyFrame) -> pl.LazyFrame:
    """Per currency, never across: activity, gross debit/credit totals, VAT and the roll-forward.

    ``debit_total``/``credit_total`` add the gross amounts as logged; the roll-forward's
    ``credits``/``debits`` add what reached the wallet (net of VAT where it was kept out).
    """
    return totals_from(currency_flows(checked), per_user(checked))
