"""Checks: one small function per check, each a Polars expression over the transaction table.

Polarity, once for all: a check's boolean column is **True when the problem is present**
(``mismatch``, ``overdraft``, ``flow_break``, ``delta_anomaly``). Nulls never flag.

Every check looks only at one user's own history (windows partition by ``user_id``, and by
``wallet_id`` within the user), so the plan gives the same answer on any partition of users —
the property that lets the work be split by a hash of ``user_id``.

Money stays Decimal end to end; only the 3σ statistics are computed in Float64, because a mean
and a standard deviation are estimates, not amounts.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

import polars as pl

from calo_polars.money import MONEY, money_text_expr, tolerance_expr
from calo_polars.parse.partition import USER

#: Time order inside one user's history: log time, ties broken by the ULID transaction id.
ORDER = ["ts", "tx_id"]
WALLET = ["user_id", "wallet_id"]


@dataclass(frozen=True)
class CheckOptions:
    """Knobs of the checks; the defaults are the documented ones."""

    tolerance: Decimal | None = None  # None: half the currency's minor unit
    sigma: float = 3.0
    window: int = 30
    min_history: int = 5


# ---------------------------------------------------------------- per-transaction arithmetic


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


def _within(a: pl.Expr, b: pl.Expr) -> pl.Expr:
    return (a - b).abs() <= pl.col("tolerance")


def vat_applied() -> pl.Expr:
    """False when the move matches the gross amount, True when only the net one; null if neither."""
    return (
        pl.when(_within(pl.col("delta"), pl.col("expected_delta")))
        .then(False)
        .when(_within(pl.col("delta"), pl.col("expected_delta_net")))
        .then(True)
    )


def announced_delta() -> pl.Expr:
    """The move the transaction announced, as the roll-forward counts it.

    Net of VAT where the balance moved net of VAT (``vat_applied``), else the gross amount —
    also on a mismatch, whose ``mismatch_diff`` is measured from the gross move. So on every
    row ``delta = announced_delta + mismatch_diff`` up to the tolerance.
    """
    return pl.when(pl.col("vat_applied")).then(pl.col("expected_delta_net")).otherwise(pl.col("expected_delta"))


# ---------------------------------------------------------------- the checks


def mismatch() -> pl.Expr:
    """The balance moved by neither ``sign × amount`` nor ``sign × (amount − vat)``."""
    return pl.col("vat_applied").is_null()


def overdraft_before() -> pl.Expr:
    """The wallet was already below zero before the transaction."""
    return pl.col("old_balance") < -pl.col("tolerance")


def overdraft_after() -> pl.Expr:
    """The wallet is below zero after the transaction."""
    return pl.col("new_balance") < -pl.col("tolerance")


def overdraft_cross() -> pl.Expr:
    """This transaction took the wallet from zero or above to below zero."""
    return ~pl.col("overdraft_before") & pl.col("overdraft_after")


def overdraft() -> pl.Expr:
    """The wallet is below zero before or after the transaction."""
    return pl.col("overdraft_before") | pl.col("overdraft_after")


def next_in_wallet(column: str) -> pl.Expr:
    """The same wallet's next transaction's ``column``, in time order (ties by id)."""
    return pl.col(column).shift(-1).over(WALLET, order_by=ORDER)


def flow_break() -> pl.Expr:
    """The next transaction of the wallet does not start where this one ended."""
    return pl.col("next_old").is_not_null() & ~_within(pl.col("new_balance"), pl.col("next_old"))


def flow_gap() -> pl.Expr:
    """``next oldBalance − newBalance``: positive when money appeared between transactions."""
    return pl.when(pl.col("flow_break")).then(pl.col("next_old") - pl.col("new_balance"))


def preceding_delta_stats(window: int, min_history: int) -> list[pl.Expr]:
    """Mean and σ of the user's preceding ``window`` deltas (needs ``min_history`` of them).

    The frame must be sorted by user then time: rolling windows follow row order.
    """
    previous = pl.col("delta").cast(pl.Float64).shift(1)
    return [
        previous.rolling_mean(window, min_samples=min_history).over(USER).alias("delta_mean"),
        previous.rolling_std(window, min_samples=min_history).over(USER).alias("delta_std"),
    ]


def delta_anomaly(sigma: float) -> pl.Expr:
    """``|delta − mean| > σ-multiple × std`` of the user's preceding deltas, and beyond tolerance.

    The tolerance guard keeps float noise from flagging a user whose deltas never vary (σ = 0).
    """
    distance = (pl.col("delta").cast(pl.Float64) - pl.col("delta_mean")).abs()
    return ((distance > sigma * pl.col("delta_std")) & (distance > pl.col("tolerance").cast(pl.Float64))).fill_null(
        False
    )


#: Check name → (severity, one-line definition). The name is the column, sheet key and summary key.
CHECKS: dict[str, tuple[str, str]] = {
    "overdraft": ("high", "balance below zero before or after the transaction"),
    "mismatch": ("high", "newBalance − oldBalance equals neither ±amount nor ±(amount − vat)"),
    "flow_break": ("medium", "the wallet's next transaction does not start from this newBalance"),
    "delta_anomaly": ("low", "delta more than σ-multiple standard deviations from the user's recent mean"),
}


# ---------------------------------------------------------------- the plan


def _derived_stages(options: CheckOptions) -> list[dict[str, pl.Expr]]:
    """The per-row arithmetic, in dependency order: a function of the row alone."""
    return [
        {"tolerance": tolerance_expr(pl.col("currency"), options.tolerance), "delta": delta()},
        {"amount_sign": amount_sign(), "sign_source": sign_source()},
        {"expected_delta": expected_delta(), "expected_delta_net": expected_delta_net()},
        {"vat_applied": vat_applied()},
        {"announced_delta": announced_delta()},
    ]


def with_checks(transactions: pl.LazyFrame, options: CheckOptions = CheckOptions()) -> pl.LazyFrame:
    """Add every computed column and check flag. Rows come out sorted by user, then time."""
    plan = transactions.sort(USER, *ORDER)
    for stage in _derived_stages(options):
        plan = plan.with_columns(**stage)
    return (
        plan.with_columns(
            *preceding_delta_stats(options.window, options.min_history),
            mismatch=mismatch(),
            mismatch_diff=pl.when(mismatch()).then(pl.col("delta") - pl.col("expected_delta")),
            overdraft_before=overdraft_before(),
            overdraft_after=overdraft_after(),
            next_tx_id=next_in_wallet("tx_id"),
            next_ts=next_in_wallet("ts"),
            next_old=next_in_wallet("old_balance"),
        )
        .with_columns(overdraft_cross=overdraft_cross(), overdraft=overdraft(), flow_break=flow_break())
        .with_columns(flow_gap=flow_gap(), delta_anomaly=delta_anomaly(options.sigma))
    )


#: What ``with_checks`` computes that depends on other rows (windows) and the check flags:
#: the columns an audit keeps beside the transaction's own. Everything else it computes is
#: per-row arithmetic that ``with_derived`` recomputes in milliseconds where it is shown;
#: storing it was 10 Decimal columns, 40 % of the memory of a large audit.
STORED_CHECK_COLUMNS = [
    "next_tx_id", "next_ts", "next_old", "delta_mean", "delta_std",
    "mismatch", "overdraft_before", "overdraft_after", "overdraft_cross", "overdraft", "flow_break", "delta_anomaly",
]  # fmt: skip


def with_derived(checked: pl.LazyFrame, options: CheckOptions = CheckOptions()) -> pl.LazyFrame:
    """The kept check columns (``STORED_CHECK_COLUMNS``) plus the per-row arithmetic: every
    column ``with_checks`` gives, in its order, without re-running the windows."""
    plan = checked
    for stage in _derived_stages(options):
        plan = plan.with_columns(**stage)
    plan = plan.with_columns(
        mismatch_diff=pl.when(pl.col("mismatch")).then(pl.col("delta") - pl.col("expected_delta")),
        flow_gap=flow_gap(),
    )
    return plan.select(pl.exclude(CHECK_COLUMNS), *CHECK_COLUMNS)


#: Every column ``with_checks`` adds, in its order.
CHECK_COLUMNS = [
    "tolerance", "delta", "amount_sign", "sign_source", "expected_delta", "expected_delta_net", "vat_applied",
    "announced_delta", "delta_mean", "delta_std", "mismatch", "mismatch_diff", "overdraft_before", "overdraft_after",
    "next_tx_id", "next_ts", "next_old", "overdraft_cross", "overdraft", "flow_break", "flow_gap", "delta_anomaly",
]  # fmt: skip


# ---------------------------------------------------------------- flags in plain English


def _m(column: str) -> pl.Expr:
    return money_text_expr(pl.col(column), pl.col("currency"))


def _reason(check: str) -> pl.Expr:
    if check == "overdraft":
        below = money_text_expr(-pl.col("new_balance"), pl.col("currency"))
        return (
            pl.when(pl.col("overdraft_cross"))
            .then(pl.format("balance went from {} to {}: {} below zero", _m("old_balance"), _m("new_balance"), below))
            .when(pl.col("overdraft_before") & pl.col("overdraft_after"))
            .then(
                pl.format("balance was already below zero ({}) and is {} after", _m("old_balance"), _m("new_balance"))
            )
            .otherwise(pl.format("balance was below zero ({}) before this transaction", _m("old_balance")))
        )
    if check == "mismatch":
        net = pl.when(pl.col("vat") != 0).then(pl.format(" or {} net of VAT", _m("expected_delta_net")))
        return pl.format(
            "{} {}: balance moved {} (from {} to {}) but expected {}{}: off by {}",
            pl.coalesce(pl.col("type"), pl.lit("legacy")),
            _m("amount"),
            _m("delta"),
            _m("old_balance"),
            _m("new_balance"),
            _m("expected_delta"),
            net.otherwise(pl.lit("")),
            _m("mismatch_diff"),
        )
    if check == "flow_break":
        return pl.format(
            "newBalance {} but next oldBalance {}: {} missing (balance {} between transactions, none logged)",
            _m("new_balance"),
            _m("next_old"),
            money_text_expr(pl.col("flow_gap").abs(), pl.col("currency")),
            pl.when(pl.col("flow_gap") > 0).then(pl.lit("rose")).otherwise(pl.lit("fell")),
        )
    return pl.format(
        "delta {} but this user's recent mean is {} (σ {}): off by {}, {}σ",
        _m("delta"),
        pl.col("delta_mean").round(3),
        pl.col("delta_std").round(3),
        (pl.col("delta").cast(pl.Float64) - pl.col("delta_mean")).round(3),
        ((pl.col("delta").cast(pl.Float64) - pl.col("delta_mean")).abs() / pl.col("delta_std")).round(1),
    )


FLAG_COLUMNS = [
    "severity", "check", "user_id", "wallet_id", "currency", "ts", "tx_id", "type", "source", "action",
    "amount", "vat", "old_balance", "new_balance", "delta", "expected_delta", "next_old", "flow_gap",
    "reason", "file_id", "line_no",
]  # fmt: skip


def red_flags(checked: pl.LazyFrame) -> pl.LazyFrame:
    """Every flag as its own row: severity, check name, the transaction and a plain reason."""
    parts = [
        checked.filter(pl.col(name)).with_columns(severity=pl.lit(severity), check=pl.lit(name), reason=_reason(name))
        for name, (severity, _) in CHECKS.items()
    ]
    return sort_flags(pl.concat(parts).select(FLAG_COLUMNS))


def sort_flags(flags: pl.LazyFrame) -> pl.LazyFrame:
    """Most severe first, then by user, time, transaction and check (a total order)."""
    rank = pl.col("severity").replace_strict({"high": 0, "medium": 1, "low": 2}, return_dtype=pl.Int8)
    return flags.sort(rank, "user_id", "ts", "tx_id", "check")


# ---------------------------------------------------------------- roll-forward


#: The roll-forward columns, in the order an accountant reads them.
ROLL_FORWARD = [
    "opening_balance", "credits", "debits", "expected_closing", "closing_balance",
    "difference", "flow_gaps", "mismatch_diffs", "rounding",
]  # fmt: skip


def credit_move() -> pl.Expr:
    """What a credit announced into the wallet (null on a debit)."""
    return pl.when(pl.col("amount_sign") > 0).then(pl.col("announced_delta"))


def debit_move() -> pl.Expr:
    """What a debit announced out of the wallet, as a positive amount (null on a credit)."""
    return pl.when(pl.col("amount_sign") < 0).then(-pl.col("announced_delta"))


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
        overdrafts=pl.col("overdraft").sum(),
        mismatches=pl.col("mismatch").sum(),
        flow_breaks=pl.col("flow_break").sum(),
        delta_anomalies=pl.col("delta_anomaly").sum(),
    )
    expected = pl.col("opening_balance") + pl.col("credits") - pl.col("debits")
    return (
        activity.join(ends, on=key, how="inner")
        .with_columns(expected_closing=expected.cast(MONEY))
        .with_columns(difference=(pl.col("closing_balance") - pl.col("expected_closing")).cast(MONEY))
        .with_columns(
            unreconciled=pl.col("difference").abs() > pl.col("tolerance"),
            flags=pl.sum_horizontal("overdrafts", "mismatches", "flow_breaks", "delta_anomalies"),
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
            "overdrafts",
            "mismatches",
            "flow_breaks",
            "delta_anomalies",
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
    return checked.group_by("currency").agg(
        transactions=pl.len(),
        users=pl.col(USER).n_unique(),
        debit_total=pl.col("amount").filter(~credit).sum().cast(MONEY),
        credit_total=pl.col("amount").filter(credit).sum().cast(MONEY),
        vat_total=pl.col("vat").sum().cast(MONEY),
        net_change=pl.col("delta").sum().cast(MONEY),
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
