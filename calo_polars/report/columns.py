"""The glossary: every column any output uses, its display kind and its meaning, said once.

The workbook's ColumnDefinitions sheet, its number formats and the README glossary all come
from this table, so a column cannot appear without a definition.
"""

from __future__ import annotations

from dataclasses import dataclass

from calo_polars.checks.registry import CHECKS, SEVERITIES


@dataclass(frozen=True)
class Column:
    """How a column is shown and what it means."""

    kind: str  # text | id | money | datetime | date | count | flag | float | long_text
    meaning: str


C = Column
COLUMNS: dict[str, Column] = {
    # where a row comes from
    "file": C(
        "text",
        "The log file the row was read from (archive!member for zip members; control characters shown as escapes).",
    ),
    "line_no": C(
        "count", "Line number of the event's first line in that file (1-based); for an invocation, of its first event."
    ),
    "ts": C("datetime", "Log timestamp of the event, UTC."),
    "request_id": C("id", "Lambda requestId of the invocation that logged the event."),
    # the transaction as logged
    "tx_id": C("id", "Transaction id (ULID) as logged."),
    "user_id": C("id", "userId of the subscriber whose wallet changed."),
    "wallet_id": C("id", "walletId from the transaction metadata; wallet#<userId> when the block has none."),
    "wallet_sk": C("id", "walletSk from the transaction metadata, when logged."),
    "currency": C("text", "ISO currency of the wallet; money is never added across currencies."),
    "type": C("text", "DEBIT or CREDIT as logged (empty in the legacy layout)."),
    "source": C("text", "Transaction source as logged: MANUAL_DEDUCTION, PAYMENT, MANUAL_ADDITION, REFUND."),
    "action": C("text", "Business action as logged (e.g. DELIVERY_DEDUCTION)."),
    "layout": C(
        "text", "full (all 13 keys), legacy (id, userId, currency, amounts only) or other (neither; see InputProblems)."
    ),
    "amount": C("money", "Transaction amount as logged, exact to the logged digits."),
    "vat": C("money", "VAT part of the amount as logged."),
    "old_balance": C("money", "Wallet balance before the transaction (oldBalance)."),
    "new_balance": C("money", "Wallet balance after the transaction (newBalance)."),
    "payment_balance": C("money", "paymentBalance as logged (usually equals newBalance)."),
    "update_payment_balance": C("flag", "updatePaymentBalance flag as logged."),
    "metadata_state": C(
        "text", "Whether the metadata was JSON with a walletId, JSON without one, undefined, or absent."
    ),
    # computed per transaction
    "tolerance": C(
        "money", "Largest difference still counted as equal: half the currency's minor unit unless --tolerance."
    ),
    "delta": C("money", "newBalance − oldBalance: how much the balance moved."),
    "amount_sign": C("count", "−1 for a debit, +1 for a credit."),
    "sign_source": C("text", "type: the sign comes from the logged type; inferred: from the balances (legacy layout)."),
    "expected_delta": C("money", "amount_sign × amount: the move the transaction announces."),
    "expected_delta_net": C("money", "amount_sign × (amount − vat): the move when VAT stays out of the wallet."),
    "vat_applied": C(
        "flag", "FALSE: delta matched the gross amount; TRUE: only the net of VAT; empty: neither (mismatch)."
    ),
    "announced_delta": C(
        "money",
        "The move the transaction announced, as the roll-forward counts it: expected_delta_net when vat_applied, else expected_delta (also on a mismatch).",
    ),
    "mismatch_diff": C("money", "delta − expected_delta on a mismatch."),
    "next_tx_id": C("id", "The same wallet's next transaction, in time order (ties broken by id)."),
    "next_ts": C("datetime", "Time of that next transaction, UTC."),
    "next_old": C("money", "oldBalance of that next transaction."),
    "flow_gap": C(
        "money", "next_old − newBalance on a flow break: positive when money appeared, negative when it vanished."
    ),
    "delta_mean": C("float", "Mean of the user's preceding deltas in the same direction (debits or credits), rolling window."),
    "delta_std": C("float", "Standard deviation of those preceding deltas."),
    # what the Lambda did with the block (parse.outcomes)
    "outcome": C(
        "text",
        "What the Lambda did with the block, from the message after it in the same invocation: published, "
        "already_synced (not applied by this Lambda), refused (balance would go below zero; nothing published), "
        "failed, skipped (update flag false) or unknown (no message).",
    ),
    "not_in_sync_after": C("flag", "TRUE when a not-in-sync error followed the block in the same invocation."),
    "applied": C(
        "flag", "TRUE unless the Lambda refused the block: only applied blocks make the wallet's balance history."
    ),
    # flags
    "cause": C(
        "text",
        "Why the flag was raised, as far as the logs tell (e.g. sent_again, not_applied, after_not_in_sync, "
        "logs_missing, refused_applied_later, legacy_net_of_vat, unexplained); docs/checks.md lists them all.",
    ),
    "what_happened": C("long_text", "What happened, in one sentence an accountant can act on."),
    "needs_person": C("flag", "TRUE when a person must look: the logs do not explain it, or money is wrong."),
    "last_refused_move": C("money", "The move of the wallet's latest refused block so far (internal)."),
    "subscription_vs_new": C(
        "money",
        "subscriptionBalance of the not-in-sync error − newBalance of the block just synced; marked when not zero.",
    ),
    "block_line_no": C("count", "Line of the refused transaction block in the same file."),
    "incident": C(
        "id",
        "The incident an error belongs to: its invocation's requestId, or 'cold start file:line' for a failed init "
        "(with the uncaught exception logged under requestId undefined).",
    ),
    "start_ts": C("datetime", "Time of the invocation's START line as logged, UTC."),
    "email": C("text", "The subscriber's email from the SQS body line of the same message (masked unless --show-pii)."),
    "phone": C("text", "The subscriber's phone number from that line (masked unless --show-pii)."),
    "reason": C("long_text", "The flag in plain English, with expected, actual and difference."),
    # per user: activity and the roll-forward
    "wallets": C("count", "Number of distinct wallets of the user."),
    "transactions": C("count", "Number of transactions."),
    "first_ts": C("datetime", "First time seen, UTC (a user's first transaction; a group's first message)."),
    "last_ts": C("datetime", "Last time seen, UTC (a user's last transaction; a group's last message)."),
    "opening_balance": C(
        "money",
        "oldBalance of the first transaction of each of the user's wallets, added up (one wallet: its first oldBalance).",
    ),
    "credits": C(
        "money",
        "Sum of what credits announced into the wallet: net of VAT where the balance moved net of VAT, else gross (announced_delta).",
    ),
    "debits": C(
        "money",
        "Sum of what debits announced out of the wallet, as a positive amount: net of VAT where the balance moved net of VAT, else gross.",
    ),
    "expected_closing": C("money", "opening_balance + credits − debits: where the balance should have ended."),
    "closing_balance": C("money", "newBalance of the last transaction of each of the user's wallets, added up."),
    "difference": C(
        "money",
        "closing_balance − expected_closing; red beyond the tolerance. Equals flow_gaps + mismatch_diffs + rounding.",
    ),
    "flow_gaps": C(
        "money",
        "Sum of flow_gap over the user's flow breaks: money that appeared (+) or vanished (−) between transactions.",
    ),
    "mismatch_diffs": C(
        "money", "Sum of mismatch_diff over the user's mismatches: how far the balances moved from what was announced."
    ),
    "rounding": C(
        "money",
        "Sum of the within-tolerance differences no check flags (delta vs announced move, newBalance vs next oldBalance).",
    ),
    "unreconciled": C("flag", "TRUE when the difference is beyond the tolerance: the user's books do not close."),
    "min_balance": C("money", "Lowest balance seen before or after any transaction."),
    "net_change": C("money", "Sum of deltas (what the logged balances moved in total)."),
    "flags": C("count", "Number of flags, all checks together."),
    "blocked_overdrafts": C("count", "Transactions the Lambda refused because the balance would go below zero."),
    "negative_payment_balances": C("count", "Negative paymentBalance values logged (see NegativePaymentBalance)."),
    "lambda_errors": C(
        "count",
        "Lambda errors: uncaught exceptions, runtime crashes, failed syncs, invoke errors, failed inits, timeouts.",
    ),
    # the ledger
    "credit": C(
        "money",
        "What this credit announced into the wallet (net of VAT where the balance moved net of VAT); empty on a debit.",
    ),
    "debit": C("money", "What this debit announced out of the wallet, as a positive amount; empty on a credit."),
    "running_balance": C(
        "money", "The balance recomputed: the wallet's first oldBalance plus every announced move so far."
    ),
    "running_diff": C(
        "money",
        "newBalance − running_balance: steps at each flow gap or mismatch; red beyond the tolerance. On a wallet's last row, its roll-forward difference.",
    ),
    "flagged": C("text", "The checks that flagged this transaction, comma-separated."),
    "rank": C("count", "Position among the users with most flags (1 = most)."),
    # notices and other events
    "kind": C("text", "Kind of event (see EventKinds); in ColumnDefinitions, how the column is shown."),
    "level": C("text", "Log level (INFO, ERROR…) of the line."),
    "transaction_id": C("id", "Transaction id named by the message, when it names one."),
    "subscription_balance": C("money", "Subscription balance the Lambda reported as out of sync."),
    "current_balance": C("money", "Balance the Lambda reported when it refused a transaction."),
    "sync_difference": C("money", "subscription_balance − payment_balance: how far the two balances were apart."),
    "logged_in": C(
        "text",
        "Where the negative paymentBalance was logged: the transaction block, a not-in-sync error, or both (one row either way).",
    ),
    "in_ledger": C(
        "flag", "TRUE when the refused transaction was also logged as a transaction block (it is then in the Ledger)."
    ),
    "would_be_balance": C("money", "current_balance − amount: the balance the refused transaction would have left."),
    "error": C("text", "The error as logged: type and message (or the init report's status)."),
    "stack_head": C("text", "The first stack frame of the error, where the log has one."),
    "skip_reason": C("text", "Why the Lambda skipped the message, as it logged it."),
    "detail": C(
        "long_text",
        "The message text (errors: type, message and the first stack line); emails and phone numbers masked unless --show-pii.",
    ),
    "text": C(
        "long_text",
        "The event's first line as logged (first 500 characters; emails and phone numbers masked unless --show-pii).",
    ),
    "raw": C("long_text", "The transaction block as logged (emails and phone numbers masked unless --show-pii)."),
    # invocations
    "has_start": C("flag", "The invocation's START line was found."),
    "has_end": C("flag", "The invocation's END line was found."),
    "has_report": C("flag", "The invocation's REPORT line was found."),
    "events": C("count", "Events logged by the invocation."),
    "messages": C("count", "SQS messages processed."),
    "published": C("count", "SubscriptionBalanceUpdated events published."),
    "not_in_sync": C("count", "'not in sync' errors logged."),
    "errors": C("count", "Error lines logged (not counting 'not in sync')."),
    "timed_out": C("flag", "The invocation timed out."),
    "duration_ms": C("float", "REPORT duration, milliseconds."),
    "billed_ms": C("count", "REPORT billed duration, milliseconds."),
    "memory_mb": C("count", "Memory size configured, MB."),
    "max_memory_mb": C("count", "Max memory used, MB."),
    "init_ms": C("float", "Init duration of a cold start, milliseconds (empty when warm)."),
    "date": C("date", "UTC day."),
    "week": C("date", "First day (Monday, UTC) of the week."),
    "invocations": C("count", "Invocations (requestIds with a START, END or REPORT)."),
    "cold_starts": C("count", "Invocations that started a new Lambda instance (REPORT with an Init Duration)."),
    "init_ms_avg": C("float", "Average init duration of the cold starts, milliseconds."),
    "duration_ms_avg": C("float", "Average REPORT duration, milliseconds."),
    "duration_ms_p95": C("float", "95th percentile of the REPORT durations, milliseconds."),
    "duration_ms_max": C("float", "Longest REPORT duration, milliseconds."),
    "incomplete": C("count", "Invocations missing their START, END or REPORT line."),
    "timed_out_invocations": C("count", "Invocations that timed out."),
    "with_errors": C("count", "Invocations that logged at least one error (not counting 'not in sync')."),
    "status": C(
        "text", "complete, or what is missing (incomplete: no START/END/REPORT), timed out, or outside any invocation."
    ),
    # duplicate transactions
    "kept_ts": C("datetime", "Time of the copy that was kept (the first in time, file, line order), UTC."),
    "kept_request_id": C("id", "requestId of the invocation that logged the kept copy."),
    "kept_file": C("text", "The log file of the kept copy."),
    "kept_line_no": C("count", "Line number of the kept copy in its file."),
    "fields_differ": C(
        "flag",
        "TRUE when this copy's fields (amounts, balances, user, type...) differ from the kept copy's; it is still set aside.",
    ),
    "differing_fields": C("text", "Which fields differ from the kept copy, when any."),
    # run facts
    "problem": C("text", "Short kind of input problem (see the README's list of kinds)."),
    "message": C("long_text", "What went wrong, in one line."),
    "line": C("count", "Line number in the file, when the problem has one."),
    "count": C("count", "Number of events."),
    "meaning": C("long_text", "What it means."),
    "understood": C("flag", "Whether the tool reads this kind of event."),
    "debit_total": C("money", "Sum of debit amounts in the currency."),
    "credit_total": C("money", "Sum of credit amounts in the currency."),
    "vat_total": C("money", "Sum of VAT in the currency."),
    "users": C("count", "Distinct users."),
    "unreconciled_users": C("count", "Users whose roll-forward difference is beyond the tolerance."),
    # the glossary itself
    "column": C("id", "A column name used in this workbook."),
    "sheets": C("long_text", "The sheets that use the column."),
}


def _check_columns() -> dict[str, Column]:
    """The columns the checks add, from their declarations (``checks.registry``)."""
    names = [c.name for c in CHECKS]
    by_severity = ", ".join(
        f"{severity} ({', '.join(c.name.replace('_', ' ') for c in CHECKS if c.severity == severity)}: {short})"
        for severity, (short, _) in SEVERITIES.items()
    )
    return {
        **{name: C(kind, meaning) for c in CHECKS for name, (kind, meaning) in c.glossary.items()},
        "severity": C("text", f"{by_severity}."),
        "check": C("text", f"Which check raised the flag: {', '.join(names[:-1])} or {names[-1]}."),
    }


COLUMNS.update(_check_columns())


def describe(name: str) -> Column:
    """The glossary entry of a column; an unknown column is a programming error."""
    try:
        return COLUMNS[name]
    except KeyError:
        raise KeyError(f"column {name!r} has no glossary entry in calo_polars/columns.py") from None


def glossary_markdown() -> str:
    """The glossary as a Markdown table, as the README shows it (a test keeps them equal)."""
    rows = ["| column | kind | meaning |", "|---|---|---|"]
    rows += [f"| `{name}` | {col.kind} | {col.meaning} |" for name, col in COLUMNS.items()]
    return "\n".join(rows)
