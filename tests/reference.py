"""An independent, plain-Python implementation of the checks: the oracle for tests.

Deliberately written the slow obvious way (dicts, sorted lists, Decimal, statistics) so it
shares nothing with the Polars plan but the definitions in the README.
"""

from __future__ import annotations

import statistics
from collections import defaultdict
from dataclasses import dataclass
from decimal import Decimal


def tolerance(currency: str) -> Decimal:
    return Decimal("0.0005") if currency in {"BHD", "KWD", "OMR", "JOD", "IQD", "LYD", "TND"} else Decimal("0.005")


@dataclass
class Tx:
    tx_id: str
    user_id: str
    wallet_id: str
    ts: object  # anything orderable
    type: str | None
    currency: str
    amount: Decimal
    vat: Decimal
    old: Decimal
    new: Decimal


@dataclass
class Flags:
    mismatch: set[str]
    overdraft: set[str]
    flow_break: dict[str, Decimal]  # tx id -> gap
    anomaly: set[str]


def reference_flags(txs: list[Tx], *, sigma: float = 3.0, window: int = 30, min_history: int = 5) -> Flags:
    flags = Flags(set(), set(), {}, set())
    for t in txs:
        tol = tolerance(t.currency)
        delta = t.new - t.old
        sign = -1 if t.type == "DEBIT" else 1 if t.type == "CREDIT" else (1 if delta > 0 else -1)
        gross, net = sign * t.amount, sign * (t.amount - t.vat)
        if abs(delta - gross) > tol and abs(delta - net) > tol:
            flags.mismatch.add(t.tx_id)
        if t.old < -tol or t.new < -tol:
            flags.overdraft.add(t.tx_id)
    wallets: dict[tuple[str, str], list[Tx]] = defaultdict(list)
    users: dict[str, list[Tx]] = defaultdict(list)
    for t in txs:
        wallets[(t.user_id, t.wallet_id)].append(t)
        users[t.user_id].append(t)
    for history in wallets.values():
        history.sort(key=lambda t: (t.ts, t.tx_id))
        for this, nxt in zip(history, history[1:]):
            if abs(nxt.old - this.new) > tolerance(this.currency):
                flags.flow_break[this.tx_id] = nxt.old - this.new
    for history in users.values():
        history.sort(key=lambda t: (t.ts, t.tx_id))
        by_direction: dict[int, list[float]] = defaultdict(list)  # debits apart from credits
        for t in history:
            delta = t.new - t.old
            sign = -1 if t.type == "DEBIT" else 1 if t.type == "CREDIT" else (1 if delta > 0 else -1)
            previous = by_direction[sign][-window:]
            by_direction[sign].append(float(delta))
            if len(previous) < min_history:
                continue
            mean, std = statistics.fmean(previous), statistics.stdev(previous)
            minor_unit = 2 * float(tolerance(t.currency))
            floored = max(std, 0.10 * abs(mean), 10 * minor_unit)  # never 0: no flag for a fils
            distance = abs(float(delta) - mean)
            if distance > sigma * floored and distance >= 1.0:
                flags.anomaly.add(t.tx_id)
    return flags


@dataclass
class RollForward:
    opening: Decimal = Decimal(0)
    credits: Decimal = Decimal(0)
    debits: Decimal = Decimal(0)
    closing: Decimal = Decimal(0)
    flow_gaps: Decimal = Decimal(0)
    mismatch_diffs: Decimal = Decimal(0)
    transactions: int = 0


def reference_roll_forward(txs: list[Tx]) -> dict[str, RollForward]:
    """Per user: opening and closing over the user's wallets, announced credits and debits,
    the flow gaps of the breaks and the differences of the mismatches (README definitions)."""
    wallets: dict[tuple[str, str], list[Tx]] = defaultdict(list)
    for t in txs:
        wallets[(t.user_id, t.wallet_id)].append(t)
    out: dict[str, RollForward] = {}
    for (user, _), history in wallets.items():
        history.sort(key=lambda t: (t.ts, t.tx_id))
        rf = out.setdefault(user, RollForward())
        rf.opening += history[0].old
        rf.closing += history[-1].new
        rf.transactions += len(history)
        for t in history:
            tol = tolerance(t.currency)
            delta = t.new - t.old
            sign = -1 if t.type == "DEBIT" else 1 if t.type == "CREDIT" else (1 if delta > 0 else -1)
            gross, net = sign * t.amount, sign * (t.amount - t.vat)
            move = gross if abs(delta - gross) <= tol else net if abs(delta - net) <= tol else gross
            if abs(delta - gross) > tol and abs(delta - net) > tol:
                rf.mismatch_diffs += delta - gross
            if sign > 0:
                rf.credits += move
            else:
                rf.debits -= move
        for this, nxt in zip(history, history[1:]):
            if abs(nxt.old - this.new) > tolerance(this.currency):
                rf.flow_gaps += nxt.old - this.new
    return out
