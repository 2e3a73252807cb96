"""The registry: every check, and every signal the Lambda logs, declared once.

A ``Check`` holds everything about one check — its flag expression, its reason, its severity,
the sheet that lists it, its summary keys, its ``--fail-on`` name, its glossary rows and its
chart colour — and every output (per-user counts, RedFlags, the Overview, summary.json, the
terminal table, alerts, WeeklySignals, charts, the glossary and the docs) loops over
``CHECKS``. A ``Signal`` does the same for what is counted rather than checked (not-in-sync
errors, refused overdrafts, Lambda errors...): its count lives in summary.json under
``count_key``, and every other output reads it from there.

Polarity, once for all: a check's column is **True when the problem is present**; nulls never
flag. A check may only look at one user's own history (windows over ``user_id``, or over the
wallet within the user), so the plan gives the same answer on any partition of users.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Literal

import polars as pl

from calo_polars.checks.windows import next_in_wallet, previous_in_wallet
from calo_polars.money import money_text_expr

Severity = Literal["high", "medium", "low"]

#: Each severity, most severe first: (in a few words, what it asks of a person).
SEVERITIES: dict[Severity, tuple[str, str]] = {
    "high": ("money wrong or below zero", "money is wrong or the wallet is below zero: look at every one"),
    "medium": (
        "balance moved outside any logged transaction",
        "the balance moved outside any logged transaction: a missing or duplicated log entry, or a manual change",
    ),
    "low": ("unusual but consistent", "unusual but consistent movement: worth a glance"),
}


@dataclass(frozen=True)
class CheckOptions:
    """Knobs of the checks; the defaults are the documented ones."""

    tolerance: Decimal | None = None  # None: half the currency's minor unit
    sigma: float = 3.0
    window: int = 30
    min_history: int = 5


@dataclass(frozen=True)
class Cause:
    """Why a flag was raised, as far as the logs tell: how severe it is, whether a person must
    act, and one sentence an accountant can read (a Polars format over the flagged row)."""

    severity: Severity
    needs_person: bool
    what_happened: Callable[[], pl.Expr]
    summary: str  # the cause in a few words, for the Overview and the HTML report


@dataclass(frozen=True)
class Check:
    """One check, with everything every output needs to show it.

    ``helpers`` are columns the flag (or the reason) reads, computed just before the flags from
    the plan's shared columns (see ``plan``): ``delta``, ``tolerance``, ``expected_delta``,
    ``vat_applied``, the wallet's ``next_*`` and the user's ``delta_mean``/``delta_std``.
    """

    name: str  # the flag column, RedFlags' ``check`` value and the --fail-on name
    severity: Severity
    definition: str  # one line: when the flag is raised
    flag: Callable[[CheckOptions], pl.Expr]
    reason: Callable[[], pl.Expr]  # the plain-English reason of one flagged row
    label: str  # plural, for people: "overdrafts"
    count_key: str  # summary.json: transactions flagged
    users_key: str  # summary.json: users with at least one
    per_user: str  # the column counting it in PerUserSummary, WeeklySignals and the webhook
    sheet: str  # the workbook sheet listing its flags
    about: str  # that sheet's description
    sheet_columns: tuple[str, ...]  # shown after the transaction's own columns on that sheet
    highlight: Mapping[str, str]  # that sheet's conditional highlights: column → rule
    colour: str  # its series in the weekly chart
    alert: str  # what it counts, for --fail-on's help
    glossary: Mapping[str, tuple[str, str]]  # the columns it adds: name → (kind, meaning)
    helpers: Mapping[str, Callable[[CheckOptions], pl.Expr]] = field(default_factory=dict)
    #: cause key → its explanation; ``cause`` picks the key of a flagged row (the first that holds)
    causes: Mapping[str, Cause] = field(default_factory=dict)
    cause: Callable[[], pl.Expr] | None = None


@dataclass(frozen=True)
class Signal:
    """Something the Lambda logged (or the run met) that is counted, not checked.

    Its count is computed once, into summary.json under ``count_key``; the Overview, the README
    sheet, the terminal table, the webhook and ``--fail-on`` read it from there.
    """

    name: str  # the --fail-on name, or an internal name when ``alert`` is None
    label: str  # plural, for people
    count_key: str  # summary.json key of the count
    users_key: str | None  # summary.json key of the users it concerns, when it names users
    group: Literal["books", "lambda", "input"]  # where it is shown beside its kind
    meaning: str  # one line
    sheet: str | None = None  # the workbook sheet listing it
    alert: str | None = None  # what it counts, for --fail-on's help; None: not an alert
    alarm: bool = False  # drawn red on the terminal when not zero


# ---------------------------------------------------------------- reasons


def money(column: str) -> pl.Expr:
    """A money column as text with its currency's decimals (for reasons)."""
    return money_text_expr(pl.col(column), pl.col("currency"))


def _overdraft_reason() -> pl.Expr:
    below = money_text_expr(-pl.col("new_balance"), pl.col("currency"))
    return (
        pl.when(pl.col("overdraft_cross"))
        .then(pl.format("balance went from {} to {}: {} below zero", money("old_balance"), money("new_balance"), below))
        .when(pl.col("overdraft_before") & pl.col("overdraft_after"))
        .then(
            pl.format("balance was already below zero ({}) and is {} after", money("old_balance"), money("new_balance"))
        )
        .otherwise(pl.format("balance was below zero ({}) before this transaction", money("old_balance")))
    )


def _mismatch_reason() -> pl.Expr:
    net = pl.when(pl.col("vat") != 0).then(pl.format(" or {} net of VAT", money("expected_delta_net")))
    return pl.format(
        "{} {}: balance moved {} (from {} to {}) but expected {}{}: off by {}",
        pl.coalesce(pl.col("type"), pl.lit("legacy")),
        money("amount"),
        money("delta"),
        money("old_balance"),
        money("new_balance"),
        money("expected_delta"),
        net.otherwise(pl.lit("")),
        money("mismatch_diff"),
    )


def _flow_break_reason() -> pl.Expr:
    return pl.format(
        "newBalance {} but next oldBalance {}: the balance {} by {} between the two transactions",
        money("new_balance"),
        money("next_old"),
        pl.when(pl.col("flow_gap") > 0).then(pl.lit("rose")).otherwise(pl.lit("fell")),
        money_text_expr(pl.col("flow_gap").abs(), pl.col("currency")),
    )


def _anomaly_reason() -> pl.Expr:
    off = pl.col("delta").cast(pl.Float64) - pl.col("delta_mean")
    direction = pl.when(pl.col("amount_sign") > 0).then(pl.lit("credit")).otherwise(pl.lit("debit"))
    return pl.format(
        "{} moved {} where this user's preceding {}s average {} (σ {}): {}σ away",
        direction,
        money("delta"),
        direction,
        pl.col("delta_mean").round(3),
        pl.col("delta_sigma").round(3),
        (off.abs() / pl.col("delta_sigma")).round(1),
    )


def _what(template: str, *columns: str | pl.Expr) -> Callable[[], pl.Expr]:
    """A cause's sentence: ``template`` with ``{}`` filled from money columns or expressions."""

    def build() -> pl.Expr:
        return pl.format(template, *(money(c) if isinstance(c, str) else c for c in columns))

    return build


def _text(column: str) -> pl.Expr:
    return pl.col(column).cast(pl.String).fill_null("?")


# ---------------------------------------------------------------- flags


def _below_zero(column: str) -> pl.Expr:
    return pl.col(column) < -pl.col("tolerance")


def within(a: pl.Expr, b: pl.Expr) -> pl.Expr:
    """``a`` and ``b`` are equal up to the row's tolerance."""
    return (a - b).abs() <= pl.col("tolerance")


def _flow_break(_: CheckOptions) -> pl.Expr:
    """The next transaction of the wallet does not start where this one ended."""
    return pl.col("next_old").is_not_null() & ~within(pl.col("new_balance"), pl.col("next_old"))


def _flow_break_cause() -> pl.Expr:
    """The first explanation that holds for a flow break (``logs_missing`` is found after the
    plan, from the whole export's timeline: ``audit.run``)."""
    same_start = within(pl.col("next_old"), pl.col("old_balance"))
    return (
        pl.when(within(pl.col("flow_gap"), pl.col("next_refused_move")))
        .then(pl.lit("refused_applied_later"))
        .when(same_start & within(pl.col("next_amount"), pl.col("amount")))
        .then(pl.lit("sent_again"))
        .when(same_start)
        .then(pl.lit("not_applied"))
        .when(pl.col("not_in_sync_after"))
        .then(pl.lit("after_not_in_sync"))
        .otherwise(pl.lit("unexplained"))
    )


#: VAT rates a legacy block's balance may have moved net of while logging ``vat: 0``.
IMPLIED_VAT_RATES = (Decimal("0.05"), Decimal("0.10"), Decimal("0.15"))


def _implied_vat_rate() -> pl.Expr:
    """The rate r (5, 10 or 15 %) when a legacy block logging vat 0 moved by amount / (1 + r)."""
    legacy = pl.col("type").is_null() & (pl.col("vat") == 0)
    moved = pl.col("delta").abs().cast(pl.Float64)
    amount = pl.col("amount").cast(pl.Float64)
    found = pl.lit(None, pl.Float64)
    for rate in reversed(IMPLIED_VAT_RATES):
        net = amount / (1 + float(rate))
        found = (
            pl.when((moved - net).abs() <= pl.col("tolerance").cast(pl.Float64))
            .then(float(rate) * 100)
            .otherwise(found)
        )
    return pl.when(legacy).then(found)


def _mismatch_cause() -> pl.Expr:
    return pl.when(_implied_vat_rate().is_not_null()).then(pl.lit("legacy_net_of_vat")).otherwise(pl.lit("unexplained"))


#: The σ of a user's deltas is never taken below this share of their mean, nor below
#: ``SIGMA_FLOOR_UNITS`` minor units: a user whose deltas never vary is not flagged for a fils.
SIGMA_FLOOR_SHARE = 0.10
SIGMA_FLOOR_UNITS = 10
#: An anomaly is at least this far from the mean, in the currency's major unit (1.000 BHD, 1.00 SAR).
MATERIALITY = 1.0


def _delta_sigma(_: CheckOptions) -> pl.Expr:
    """σ of the preceding same-direction deltas, with its floor (never 0, never noise-driven)."""
    minor_units = 2 * pl.col("tolerance").cast(pl.Float64)  # the tolerance is half a minor unit by default
    floor = pl.max_horizontal(SIGMA_FLOOR_SHARE * pl.col("delta_mean").abs(), SIGMA_FLOOR_UNITS * minor_units)
    return pl.when(pl.col("delta_std").is_not_null()).then(pl.max_horizontal(pl.col("delta_std"), floor))


def _delta_anomaly(options: CheckOptions) -> pl.Expr:
    """``|delta − mean| > σ-multiple × σ`` of the user's preceding deltas in the same direction
    (σ with its floor, ``_delta_sigma``), and at least ``MATERIALITY`` away."""
    distance = (pl.col("delta").cast(pl.Float64) - pl.col("delta_mean")).abs()
    return ((distance > options.sigma * pl.col("delta_sigma")) & (distance >= MATERIALITY)).fill_null(False)


# ---------------------------------------------------------------- the checks

CHECKS: tuple[Check, ...] = (
    Check(
        name="overdraft",
        severity="high",
        definition="balance below zero before or after an applied transaction (refused blocks never moved the wallet)",
        helpers={
            "overdraft_before": lambda _: _below_zero("old_balance"),
            "overdraft_after": lambda _: _below_zero("new_balance"),
            "overdraft_cross": lambda _: ~_below_zero("old_balance") & _below_zero("new_balance"),
        },
        flag=lambda _: pl.col("overdraft_before") | pl.col("overdraft_after"),
        reason=_overdraft_reason,
        causes={
            "below_zero": Cause(
                "high",
                True,
                _what(
                    "The Lambda did not refuse this block ({}) and the wallet is below zero: {} before, {} after.",
                    _text("outcome"),
                    "old_balance",
                    "new_balance",
                ),
                summary="applied, and the wallet is below zero",
            )
        },
        label="overdrafts",
        count_key="overdraft_events",
        users_key="overdraft_users",
        per_user="overdrafts",
        sheet="OverdraftEvents",
        about="Transactions where the balance was below zero before or after.",
        sheet_columns=("overdraft_before", "overdraft_after", "overdraft_cross"),
        highlight={"new_balance": "negative", "old_balance": "negative"},
        colour="#C00000",
        alert="transactions with the balance below zero before or after",
        glossary={
            "overdraft_before": ("flag", "TRUE when oldBalance is below zero (beyond tolerance)."),
            "overdraft_after": ("flag", "TRUE when newBalance is below zero (beyond tolerance)."),
            "overdraft_cross": (
                "flag",
                "TRUE when this transaction took the balance from zero or above to below zero.",
            ),
            "overdraft": ("flag", "TRUE when the balance is below zero before or after the transaction."),
            "overdrafts": ("count", "Transactions flagged overdraft."),
        },
    ),
    Check(
        name="mismatch",
        severity="high",
        definition="newBalance − oldBalance equals neither ±amount nor ±(amount − vat)",
        flag=lambda _: pl.col("vat_applied").is_null(),
        reason=_mismatch_reason,
        cause=_mismatch_cause,
        causes={
            "legacy_net_of_vat": Cause(
                "low",
                False,
                _what(
                    "Legacy block logging vat 0: the balance moved {}, which is {} net of {} % VAT; the Lambda said "
                    "{} — the VAT was kept out of the wallet, not lost.",
                    "delta",
                    "amount",
                    _implied_vat_rate().round(0).cast(pl.Int64).cast(pl.String),
                    _text("outcome"),
                ),
                summary="a legacy block moved net of VAT while logging vat 0",
            ),
            "unexplained": Cause(
                "high",
                True,
                _what(
                    "The balance moved {} but the block announced {}: no pattern explains the {} difference.",
                    "delta",
                    "expected_delta",
                    "mismatch_diff",
                ),
                summary="no pattern explains the difference",
            ),
        },
        label="mismatches",
        count_key="mismatches",
        users_key="mismatch_users",
        per_user="mismatches",
        sheet="MismatchEvents",
        about="Transactions whose balance moved by neither ±amount nor ±(amount − vat).",
        sheet_columns=(
            "layout",
            "sign_source",
            "delta",
            "expected_delta",
            "expected_delta_net",
            "mismatch_diff",
            "tolerance",
        ),
        highlight={"delta": "nonblank", "mismatch_diff": "nonblank"},
        colour="#7030A0",
        alert="transactions whose balance moved by neither ±amount nor ±(amount − vat)",
        glossary={
            "mismatch": (
                "flag",
                "TRUE when delta equals neither expected_delta nor expected_delta_net within tolerance.",
            ),
            "mismatches": ("count", "Transactions flagged mismatch."),
        },
    ),
    Check(
        name="flow_break",
        severity="medium",
        definition="the wallet's next transaction does not start from this newBalance",
        flag=_flow_break,
        reason=_flow_break_reason,
        helpers={
            "next_amount": lambda _: next_in_wallet("amount"),
            "next_request_id": lambda _: next_in_wallet("request_id"),
            "next_file_id": lambda _: next_in_wallet("file_id"),
            "next_line_no": lambda _: next_in_wallet("line_no"),
            "next_refused_move": lambda _: next_in_wallet("last_refused_move"),
        },
        cause=_flow_break_cause,
        causes={
            "refused_applied_later": Cause(
                "medium",
                True,
                _what(
                    "The balance moved {} before the next transaction — exactly a block of this wallet the Lambda "
                    "refused: the refused movement was applied later, outside any logged transaction.",
                    "flow_gap",
                ),
                summary="a movement the Lambda refused was applied later, outside any logged transaction",
            ),
            "sent_again": Cause(
                "low",
                False,
                _what(
                    "Not applied ({}): the next transaction starts from this one's oldBalance {} with the same "
                    "amount — the same movement sent again under a new id.",
                    _text("outcome"),
                    "old_balance",
                ),
                summary="not applied, then the same movement sent again under a new id",
            ),
            "not_applied": Cause(
                "low",
                False,
                _what(
                    "Not applied ({}): the next transaction starts from this one's oldBalance {}.",
                    _text("outcome"),
                    "old_balance",
                ),
                summary="not applied: the next transaction starts from this one's oldBalance",
            ),
            "after_not_in_sync": Cause(
                "low",
                False,
                _what(
                    "A not-in-sync error followed this block: the subscription and payment balances diverged, and "
                    "the next transaction starts from {}.",
                    "next_old",
                ),
                summary="after a not-in-sync error: the two balances diverged",
            ),
            "logs_missing": Cause(
                "low",
                False,
                _what(
                    "The export holds no event at all for a day or more between this transaction and the next: the "
                    "{} move is in logs missing from the export (export that period again).",
                    "flow_gap",
                ),
                summary="the export holds no event for a day or more between the two transactions",
            ),
            "unexplained": Cause(
                "medium",
                True,
                _what(
                    "The balance moved {} between this transaction and the next with no logged transaction or Lambda "
                    "message to explain it.",
                    "flow_gap",
                ),
                summary="nothing in the logs explains the move",
            ),
        },
        label="flow breaks",
        count_key="flow_breaks",
        users_key="flow_break_users",
        per_user="flow_breaks",
        sheet="FlowBreaks",
        about="Transactions after which the wallet's next transaction does not start from this newBalance "
        "(with --state, a previous export's last transaction of a wallet comes first, its file as that run read it).",
        sheet_columns=(
            "wallet_id",
            "request_id",
            "next_tx_id",
            "next_ts",
            "next_old",
            "flow_gap",
            "next_request_id",
            "next_file",
            "next_line_no",
        ),
        highlight={"new_balance": "nonblank", "next_old": "nonblank", "flow_gap": "nonblank"},
        colour="#ED7D31",
        alert="transactions after which the wallet's next one does not start from this newBalance",
        glossary={
            "flow_break": ("flag", "TRUE when next_old differs from newBalance beyond tolerance."),
            "next_amount": ("money", "amount of the wallet's next applied transaction."),
            "next_request_id": ("id", "requestId of the invocation that logged the next transaction."),
            "next_file_id": ("count", "Internal id of the file the next transaction was read from."),
            "next_file": ("text", "The log file the next transaction was read from."),
            "next_line_no": ("count", "Line of the next transaction's block in that file."),
            "next_refused_move": (
                "money",
                "The move of the wallet's latest refused block logged before the next transaction, if any.",
            ),
            "flow_breaks": ("count", "Transactions flagged flow_break."),
        },
    ),
    Check(
        name="delta_anomaly",
        severity="low",
        definition="delta more than σ-multiple standard deviations from the user's recent deltas in the same direction",
        helpers={"delta_sigma": _delta_sigma},
        flag=_delta_anomaly,
        reason=_anomaly_reason,
        causes={
            "unusual": Cause(
                "low",
                False,
                _what("Unusual for this user but consistent: the balance moved {} as announced.", "delta"),
                summary="unusual for this user but consistent",
            )
        },
        label="delta anomalies",
        count_key="delta_anomalies",
        users_key="delta_anomaly_users",
        per_user="delta_anomalies",
        sheet="Anomalies",
        about="Transactions whose delta is more than the σ-multiple from the user's recent mean delta.",
        sheet_columns=("delta", "delta_mean", "delta_std", "delta_sigma"),
        highlight={"delta": "nonblank"},
        colour="#FFC000",
        alert="transactions far from the user's recent mean delta",
        glossary={
            "delta_sigma": (
                "float",
                "delta_std with its floor: at least 10 % of |delta_mean| and 10 minor units, so never 0.",
            ),
            "delta_anomaly": (
                "flag",
                "TRUE when |delta − delta_mean| > sigma × delta_sigma and at least 1 major unit (1.000 BHD, 1.00 SAR).",
            ),
            "delta_anomalies": ("count", "Transactions flagged delta_anomaly."),
        },
    ),
    Check(
        name="negative_amount",
        severity="high",
        definition="the block logs a negative amount",
        flag=lambda _: pl.col("amount") < -pl.col("tolerance"),
        reason=lambda: pl.format(
            "{} with amount {}: the balance moved {} (from {} to {})",
            pl.coalesce(pl.col("type"), pl.lit("legacy block")),
            money("amount"),
            money("delta"),
            money("old_balance"),
            money("new_balance"),
        ),
        causes={
            "negative_amount": Cause(
                "high",
                True,
                _what(
                    "A {} of {}: a negative amount moves money the other way ({}); the source system sent it so.",
                    _text("type"),
                    "amount",
                    "delta",
                ),
                summary="a negative amount moves money the other way",
            )
        },
        label="negative amounts",
        count_key="negative_amounts",
        users_key="negative_amount_users",
        per_user="negative_amounts",
        sheet="NegativeAmounts",
        about="Transactions whose block logs a negative amount (a DEBIT of −18.000 raises the balance).",
        sheet_columns=("delta",),
        highlight={"amount": "negative"},
        colour="#833C0B",
        alert="transactions whose block logs a negative amount",
        glossary={
            "negative_amount": ("flag", "TRUE when the block's amount is below zero (beyond tolerance)."),
            "negative_amounts": ("count", "Transactions flagged negative_amount."),
        },
    ),
    Check(
        name="currency_change",
        severity="high",
        definition="the wallet's previous transaction was in another currency",
        helpers={"previous_currency": lambda _: previous_in_wallet("currency").cast(pl.String)},
        flag=lambda _: (
            pl.col("previous_currency").is_not_null()
            & (pl.col("previous_currency") != pl.col("currency").cast(pl.String))
        ),
        reason=lambda: pl.format(
            "wallet {} was in {} and is now in {}",
            _text("wallet_id"),
            pl.col("previous_currency"),
            _text("currency"),
        ),
        causes={
            "currency_change": Cause(
                "high",
                True,
                _what(
                    "The wallet's previous transaction was in {}, this one in {}: a wallet has one currency, so its "
                    "books are kept per currency from here (each closes on its own).",
                    pl.col("previous_currency"),
                    _text("currency"),
                ),
                summary="the wallet changed currency",
            )
        },
        label="currency changes",
        count_key="currency_changes",
        users_key="currency_change_users",
        per_user="currency_changes",
        sheet="CurrencyChanges",
        about="Transactions logged in another currency than the wallet's previous one.",
        sheet_columns=("wallet_id", "previous_currency"),
        highlight={"currency": "nonblank"},
        colour="#375623",
        alert="transactions in another currency than the wallet's previous one",
        glossary={
            "previous_currency": ("text", "Currency of the wallet's previous applied transaction."),
            "currency_change": ("flag", "TRUE when the wallet's previous transaction was in another currency."),
            "currency_changes": ("count", "Transactions flagged currency_change."),
        },
    ),
)


# ---------------------------------------------------------------- the signals

SIGNALS: tuple[Signal, ...] = (
    Signal(
        name="unreconciled",
        label="unreconciled users",
        count_key="unreconciled_users",
        users_key=None,
        group="books",
        meaning="users whose roll-forward does not close within tolerance",
        sheet="PerUserSummary",
        alert="users whose roll-forward does not close within tolerance",
        alarm=True,
    ),
    Signal(
        name="not_in_sync",
        label="not-in-sync errors",
        count_key="not_in_sync_errors",
        users_key="not_in_sync_users",
        group="lambda",
        meaning="subscription and payment balances differed after a sync",
        sheet="SyncErrors",
        alert="'balances are not in sync' errors the Lambda logged",
    ),
    Signal(
        name="blocked_overdraft",
        label="blocked overdrafts",
        count_key="blocked_overdrafts",
        users_key="blocked_overdraft_users",
        group="lambda",
        meaning="the Lambda refused a transaction that would take the balance below zero",
        sheet="BlockedOverdrafts",
        alert="transactions the Lambda refused (balance would go below zero)",
    ),
    Signal(
        name="negative_payment_balance",
        label="negative payment balances",
        count_key="negative_payment_balances",
        users_key="negative_payment_balance_users",
        group="lambda",
        meaning="a paymentBalance below zero was logged (transaction block or not-in-sync error)",
        sheet="NegativePaymentBalance",
        alert="negative paymentBalance values logged",
    ),
    Signal(
        name="lambda_error",
        label="Lambda errors",
        count_key="lambda_errors",
        users_key="lambda_error_users",
        group="lambda",
        meaning="uncaught exceptions, runtime crashes, failed syncs, invoke errors, failed inits and timeouts",
        sheet="LambdaErrors",
        alert="Lambda errors: uncaught exceptions, crashes, failed syncs, invoke errors, failed inits, timeouts",
    ),
    Signal(
        name="lambda_error_incident",
        label="Lambda error incidents",
        count_key="lambda_error_incidents",
        users_key=None,
        group="lambda",
        meaning="invocations or cold starts with at least one error (the errors above, grouped)",
        sheet="LambdaErrors",
    ),
    Signal(
        name="skipped",
        label="skipped messages",
        count_key="skipped_syncs",
        users_key="skipped_users",
        group="lambda",
        meaning="messages the Lambda chose not to sync, by reason and action",
        sheet="Skipped",
    ),
    Signal(
        name="other_notice",
        label="other notices",
        count_key="other_notices",
        users_key="other_notice_users",
        group="lambda",
        meaning="CloudWatch metrics the Lambda emitted and other notices",
        sheet="OtherNotices",
    ),
    Signal(
        name="duplicate",
        label="duplicate transactions",
        count_key="duplicate_transactions",
        users_key=None,
        group="input",
        meaning="transactions logged more than once (copies set aside)",
        sheet="DuplicateEvents",
        alert="transactions logged more than once (copies set aside)",
    ),
    Signal(
        name="unparsed",
        label="events not understood",
        count_key="unparsed_events",
        users_key=None,
        group="input",
        meaning="events the tool did not understand",
        sheet="UnparsedEvents",
        alert="events the tool did not understand",
        alarm=True,
    ),
    Signal(
        name="input_problem",
        label="input problems",
        count_key="input_problems",
        users_key=None,
        group="input",
        meaning="files or lines that could not be read",
        sheet="InputProblems",
        alert="files or lines that could not be read",
        alarm=True,
    ),
)

CHECK_NAMES: tuple[str, ...] = tuple(c.name for c in CHECKS)


def check(name: str) -> Check:
    """The declaration of the check called ``name``."""
    for c in CHECKS:
        if c.name == name:
            return c
    raise KeyError(f"no check called {name!r}: the checks are {', '.join(CHECK_NAMES)}")


def alerts() -> dict[str, tuple[str, str]]:
    """Every ``--fail-on`` name → (summary.json key, what it counts): the checks, then the signals."""
    return {
        **{c.name: (c.count_key, c.alert) for c in CHECKS},
        **{s.name: (s.count_key, s.alert) for s in SIGNALS if s.alert is not None},
    }


def checks_markdown() -> str:
    """Every check and its causes as Markdown tables, as docs/checks.md shows them (a test keeps
    them equal): the reference is generated from the declarations, never typed twice."""
    rows = [
        "| check | severity | when it is raised | sheet | summary.json | --fail-on |",
        "|---|---|---|---|---|---|",
    ]
    rows += [
        f"| `{c.name}` | {c.severity} | {c.definition} | {c.sheet} | `{c.count_key}`, `{c.users_key}` | `{c.name}` |"
        for c in CHECKS
    ]
    rows += ["", "| check | cause | severity | needs a person |", "|---|---|---|---|"]
    rows += [
        f"| `{c.name}` | `{key}` | {cause.severity} | {'yes' if cause.needs_person else 'no'} |"
        for c in CHECKS
        for key, cause in c.causes.items()
    ]
    rows += ["", "| signal | summary.json | sheet | --fail-on | what it counts |", "|---|---|---|---|---|"]
    rows += [
        f"| {g.label} | `{g.count_key}` | {g.sheet or ''} | {f'`{g.name}`' if g.alert else ''} | {g.meaning} |"
        for g in SIGNALS
    ]
    return "\n".join(rows)
