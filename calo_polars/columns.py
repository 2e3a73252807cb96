"""The glossary: every column any output uses, its display kind and its meaning, said once.

The workbook's ColumnDefinitions sheet, its number formats and the README glossary all come
from this table, so a column cannot appear without a definition.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Column:
    """How a column is shown and what it means."""

    kind: str  # text | id | money | datetime | count | flag | float | long_text
    meaning: str


C = Column
COLUMNS: dict[str, Column] = {
    # where a row comes from
    "file": C("text", "The log file the row was read from (archive!member for zip members; control characters shown as escapes)."),
    "line_no": C("count", "Line number of the event's first line in that file (1-based); for an invocation, of its first event."),
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
    "layout": C("text", "full (all 13 keys), legacy (id, userId, currency, amounts only) or other (neither; see InputProblems)."),
    "amount": C("money", "Transaction amount as logged, exact to the logged digits."),
    "vat": C("money", "VAT part of the amount as logged."),
    "old_balance": C("money", "Wallet balance before the transaction (oldBalance)."),
    "new_balance": C("money", "Wallet balance after the transaction (newBalance)."),
    "payment_balance": C("money", "paymentBalance as logged (usually equals newBalance)."),
    "update_payment_balance": C("flag", "updatePaymentBalance flag as logged."),
    "metadata_state": C("text", "Whether the metadata was JSON with a walletId, JSON without one, undefined, or absent."),
    # computed per transaction
    "tolerance": C("money", "Largest difference still counted as equal: half the currency's minor unit unless --tolerance."),
    "delta": C("money", "newBalance − oldBalance: how much the balance moved."),
    "amount_sign": C("count", "−1 for a debit, +1 for a credit."),
    "sign_source": C("text", "type: the sign comes from the logged type; inferred: from the balances (legacy layout)."),
    "expected_delta": C("money", "amount_sign × amount: the move the transaction announces."),
    "expected_delta_net": C("money", "amount_sign × (amount − vat): the move when VAT stays out of the wallet."),
    "vat_applied": C("flag", "FALSE: delta matched the gross amount; TRUE: only the net of VAT; empty: neither (mismatch)."),
    "mismatch": C("flag", "TRUE when delta equals neither expected_delta nor expected_delta_net within tolerance."),
    "mismatch_diff": C("money", "delta − expected_delta on a mismatch."),
    "overdraft_before": C("flag", "TRUE when oldBalance is below zero (beyond tolerance)."),
    "overdraft_after": C("flag", "TRUE when newBalance is below zero (beyond tolerance)."),
    "overdraft_cross": C("flag", "TRUE when this transaction took the balance from zero or above to below zero."),
    "overdraft": C("flag", "TRUE when the balance is below zero before or after the transaction."),
    "next_tx_id": C("id", "The same wallet's next transaction, in time order (ties broken by id)."),
    "next_ts": C("datetime", "Time of that next transaction, UTC."),
    "next_old": C("money", "oldBalance of that next transaction."),
    "flow_break": C("flag", "TRUE when next_old differs from newBalance beyond tolerance."),
    "flow_gap": C("money", "next_old − newBalance on a flow break: positive when money appeared, negative when it vanished."),
    "delta_mean": C("float", "Mean of the user's preceding deltas in the rolling window."),
    "delta_std": C("float", "Standard deviation of those preceding deltas."),
    "delta_anomaly": C("flag", "TRUE when |delta − delta_mean| > sigma × delta_std (and beyond tolerance)."),
    # flags
    "severity": C("text", "high (overdraft, mismatch), medium (flow break), low (delta anomaly)."),
    "check": C("text", "Which check raised the flag: overdraft, mismatch, flow_break or delta_anomaly."),
    "reason": C("long_text", "The flag in plain English, with expected, actual and difference."),
    # per user
    "wallets": C("count", "Number of distinct wallets of the user."),
    "transactions": C("count", "Number of transactions."),
    "first_ts": C("datetime", "First transaction time, UTC."),
    "last_ts": C("datetime", "Last transaction time, UTC."),
    "opening_balance": C("money", "oldBalance of the user's first transaction."),
    "closing_balance": C("money", "newBalance of the user's last transaction."),
    "min_balance": C("money", "Lowest balance seen before or after any transaction."),
    "credits": C("money", "Sum of credit amounts."),
    "debits": C("money", "Sum of debit amounts."),
    "net_change": C("money", "Sum of deltas (what the logged balances moved in total)."),
    "overdrafts": C("count", "Transactions flagged overdraft."),
    "mismatches": C("count", "Transactions flagged mismatch."),
    "flow_breaks": C("count", "Transactions flagged flow_break."),
    "delta_anomalies": C("count", "Transactions flagged delta_anomaly."),
    "flags": C("count", "All flags of the user."),
    # notices and other events
    "kind": C("text", "Kind of event (see the README sheet for every kind)."),
    "level": C("text", "Log level (INFO, ERROR…) of the line."),
    "transaction_id": C("id", "Transaction id named by the message, when it names one."),
    "subscription_balance": C("money", "Subscription balance the Lambda reported as out of sync."),
    "current_balance": C("money", "Balance the Lambda reported when it refused a transaction."),
    "detail": C("long_text", "The message text (errors: type, message and the first stack line); emails and phone numbers masked unless --show-pii."),
    "text": C("long_text", "The event's first line as logged (first 500 characters; emails and phone numbers masked unless --show-pii)."),
    "raw": C("long_text", "The transaction block as logged (emails and phone numbers masked unless --show-pii)."),
    # invocations
    "has_start": C("flag", "The invocation's START line was found."),
    "has_end": C("flag", "The invocation's END line was found."),
    "has_report": C("flag", "The invocation's REPORT line was found."),
    "events": C("count", "Events logged by the invocation."),
    "messages": C("count", "SQS messages the invocation processed."),
    "published": C("count", "SubscriptionBalanceUpdated events published."),
    "not_in_sync": C("count", "'not in sync' errors logged."),
    "errors": C("count", "Error lines logged (not counting 'not in sync')."),
    "timed_out": C("flag", "The invocation timed out."),
    "duration_ms": C("float", "REPORT duration, milliseconds."),
    "billed_ms": C("count", "REPORT billed duration, milliseconds."),
    "memory_mb": C("count", "Memory size configured, MB."),
    "max_memory_mb": C("count", "Max memory used, MB."),
    "init_ms": C("float", "Init duration of a cold start, milliseconds (empty when warm)."),
    "status": C("text", "complete, or what is missing (incomplete: no START/END/REPORT), timed out, or outside any invocation."),
    # duplicate transactions
    "kept_ts": C("datetime", "Time of the copy that was kept (the first in time, file, line order), UTC."),
    "kept_request_id": C("id", "requestId of the invocation that logged the kept copy."),
    "kept_file": C("text", "The log file of the kept copy."),
    "kept_line_no": C("count", "Line number of the kept copy in its file."),
    "fields_differ": C("flag", "TRUE when this copy's fields (amounts, balances, user, type...) differ from the kept copy's; it is still set aside."),
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
}


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
