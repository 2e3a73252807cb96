"""Build CloudWatch-export-shaped logs by hand for tests, independent of the parser.

A ``Log`` collects events; ``tx`` renders a transaction block the way Node's util.inspect does
(single quotes, backticks when a string holds both quote kinds, ``undefined``, bare numbers).
"""

from __future__ import annotations

import gzip
import io
import zipfile
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

from calo_polars.synth.text import inspect_string

T0 = datetime(2024, 2, 10, 21, 0, 0, tzinfo=UTC)


def stamp(seconds: float) -> str:
    """The log timestamp ``seconds`` after T0."""
    t = T0 + timedelta(seconds=seconds)
    return t.strftime("%Y-%m-%dT%H:%M:%S.") + f"{t.microsecond // 1000:03d}Z"


class Raw(str):
    """Text printed verbatim where a value goes (a JS number literal, or something broken)."""


def inspect_value(value: Any) -> str:
    """A Python value printed as util.inspect prints the JS value."""
    if isinstance(value, Raw):
        return str(value)
    if value is None:
        return "undefined"
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, (int, Decimal)):
        return str(value)
    if isinstance(value, float):
        return repr(value).removesuffix(".0")
    if isinstance(value, str):
        return inspect_string(value)
    raise TypeError(value)


def uid(n: int) -> str:
    return f"{n:08x}-2222-4333-8444-555555555555"


def rid(n: int) -> str:
    return f"{n:08x}-aaaa-5bbb-8ccc-dddddddddddd"


@dataclass
class Log:
    """Events of one log file, in the order they are written (not necessarily time order)."""

    events: list[str] = field(default_factory=list)

    def raw(self, seconds: float, body: str) -> Log:
        self.events.append(f"{stamp(seconds)} {body}")
        return self

    def app(self, request: str, seconds: float, level: str, text: str) -> Log:
        return self.raw(seconds, f"{stamp(seconds)}\t{request}\t{level}\t{text}")

    def start(self, request: str, seconds: float) -> Log:
        return self.raw(seconds, f"START RequestId: {request} Version: $LATEST")

    def end(self, request: str, seconds: float) -> Log:
        return self.raw(seconds, f"END RequestId: {request}")

    def report(self, request: str, seconds: float, *, init_ms: float | None = None) -> Log:
        init = f"Init Duration: {init_ms} ms\t" if init_ms is not None else ""
        return self.raw(
            seconds,
            f"REPORT RequestId: {request}\tDuration: 113.87 ms\tBilled Duration: 114 ms\t"
            f"Memory Size: 1024 MB\tMax Memory Used: 107 MB\t{init}",
        )

    def tx(self, request: str, seconds: float, **fields: Any) -> Log:
        body = ",\n".join(f"    {k}: {inspect_value(v)}" for k, v in fields.items())
        return self.app(request, seconds, "INFO", "Start syncing the balance {\n  transaction: {\n" + body + "\n  }\n}")

    def invocation(self, request: str, seconds: float, *txs: dict[str, Any]) -> Log:
        """A whole invocation: START, one processed message and block per transaction, END, REPORT."""
        self.start(request, seconds)
        t = seconds
        for fields in txs:
            t += 0.01
            self.app(request, t, "INFO", f"Processing message {uid(int(t * 1000))}")
            self.tx(request, t, **fields)
            self.app(request, t, "INFO", "SubscriptionBalanceUpdated event published")
        self.end(request, t + 0.01)
        return self.report(request, t + 0.01)

    # What the Lambda logs after a block (../shared/log-format.md §5-6), one method per message.

    def processing(self, request: str, seconds: float, n: int = 0) -> Log:
        return self.app(request, seconds, "INFO", f"Processing message {uid(n or int(seconds * 1000))}")

    def published(self, request: str, seconds: float) -> Log:
        return self.app(request, seconds, "INFO", "SubscriptionBalanceUpdated event published")

    def already_synced(self, request: str, seconds: float, *, skipping: bool = False) -> Log:
        """Both forms the Lambda prints: ``Balance is …`` or ``Skipping the process, balance is …``."""
        text = "balance is already synced from other listeners"
        return self.app(request, seconds, "INFO", f"Skipping the process, {text}" if skipping else text.capitalize())

    def refusal(self, request: str, seconds: float, user: str, current: Any, tx_id: str) -> Log:
        """The overdraft the Lambda refused, as util.inspect prints the object (multi-line)."""
        return self.app(
            request,
            seconds,
            "INFO",
            "{\n  message: 'Subscriber will have a negative balance due to this action, the process will terminate.',\n"
            f"  data: {{\n    userId: '{user}',\n    currentBalance: {inspect_value(current)},\n"
            f"    transactionId: '{tx_id}'\n  }}\n}}",
        )

    def sync_error(self, request: str, seconds: float) -> Log:
        return self.app(
            request,
            seconds,
            "ERROR",
            "An error occured while syncing the balance TypeError: "
            "Cannot read properties of null (reading 'getBalance')\n"
            "    at Zi.exec (/src/syncBalance/useCase.ts:55:37)",
        )

    def skip_flag_false(self, request: str, seconds: float, action: str = "DONATE_RAMADAN_MEAL") -> Log:
        return self.app(
            request,
            seconds,
            "INFO",
            f"Skipping the process, Update Payment Balance Flag is set to false {{ transactionAction: '{action}' }}",
        )

    def not_in_sync(self, request: str, seconds: float, user: str, subscription: Any, payment: Any) -> Log:
        return self.app(
            request,
            seconds,
            "ERROR",
            f"Subscription balance and payment balance are not in sync {{\n  userId: '{user}',\n"
            f"  subscriptionBalance: {inspect_value(subscription)},\n  paymentBalance: {inspect_value(payment)}\n}}",
        )

    def text(self) -> str:
        return "".join(e + "\n\n" for e in self.events)

    def gz(self) -> bytes:
        return gzip.compress(self.text().encode("utf-8"))


def full_tx(
    n: int,
    user: str,
    old: Any,
    new: Any,
    amount: Any,
    *,
    type_: str = "DEBIT",
    source: str = "MANUAL_DEDUCTION",
    action: str = "DELIVERY_DEDUCTION",
    vat: Any = 0,
    currency: str = "BHD",
    metadata: Any = "",
) -> dict[str, Any]:
    """A transaction block in the full layout; ``metadata=""`` means the usual JSON with walletId."""
    meta = f'{{"walletId":"wallet#{user}","deliveryId":"d{n}","walletSk":"sk{n}"}}' if metadata == "" else metadata
    return {
        "id": f"01HR{n:022d}",
        "type": type_,
        "source": source,
        "action": action,
        "userId": user,
        "paymentBalance": new,
        "updatePaymentBalance": True,
        "metadata": meta,
        "currency": currency,
        "amount": amount,
        "vat": vat,
        "oldBalance": old,
        "newBalance": new,
    }


def legacy_tx(
    n: int, user: str, old: Any, new: Any, amount: Any, *, vat: Any = 0, currency: str = "BHD"
) -> dict[str, Any]:
    return {
        "id": f"01HL{n:022d}",
        "userId": user,
        "currency": currency,
        "amount": amount,
        "vat": vat,
        "oldBalance": old,
        "newBalance": new,
    }


def write_zip(path: Path, files: dict[str, bytes]) -> Path:
    """A zip laid out like the real export (plus macOS junk the tool must skip)."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("balance-sync-logs/.DS_Store", b"\x00\x01junk")
        for name, data in files.items():
            zf.writestr(f"balance-sync-logs/task/{name}/000000.gz", data)
            zf.writestr(f"__MACOSX/balance-sync-logs/task/{name}/._000000.gz", b"junk")
    path.write_bytes(buf.getvalue())
    return path
