"""An independent, plain-Python count of what the Lambda did with each transaction (issue 12).

Written from ../shared/log-format.md and ../issues-text/OUTCOMES-SPEC.md alone, the slow
obvious way (zipfile, gzip, re, Decimal, dicts): it imports neither Polars nor calo_polars, so
a test that compares the tool with it compares two readings of the raw text.

Steps: split each file's text into events (a line starting with a timestamp and a space starts
one); give every event its requestId (app lines: the tab field; START/END/REPORT: ``RequestId:``;
``Task timed out``: its leading id; anything else: the nearest preceding event with one); group
by (file, requestId), order by timestamp then position; walk each group to give every
``Start syncing the balance {`` block its outcome and ``not_in_sync_after``; then the money
checks per wallet over the applied blocks, and the Lambda error incidents.
"""

from __future__ import annotations

import bisect
import gzip
import itertools
import re
import zipfile
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path

TS = r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z"
EVENT_START = re.compile(rf"\n(?={TS} )")
APP = re.compile(rf"^({TS}) ({TS})\t([^\t]*)\t([A-Z]+)\t(.*)$", re.S)
PLATFORM = re.compile(rf"^({TS}) (START|END|REPORT) RequestId: (\S+)")
TIMEOUT = re.compile(rf"^({TS}) ([0-9a-f-]{{36}}) Task timed out after")
FIELD = re.compile(r"^    (\w+): (.*?),?$", re.M)
WALLET = re.compile(r'"walletId":"([^"]*)"')
TRANSACTION_ID = re.compile(r"transactionId: ['\"`]([^'\"`]*)['\"`]")

PSEUDO_ID = "undefined"
OUTCOMES = ["published", "already_synced", "refused", "failed", "skipped", "unknown"]
CAUSES = ["refused_applied_later", "sent_again", "not_applied", "after_not_in_sync", "logs_missing", "unexplained"]
THREE_DECIMALS = {"BHD", "KWD", "OMR"}
GAP = timedelta(hours=24)
ALREADY_SYNCED = ("Balance is already synced from other listeners", "Skipping the process, balance is already synced")
VAT_RATES = [Decimal("0.05"), Decimal("0.10"), Decimal("0.15")]


def tolerance(currency: str) -> Decimal:
    """Half the currency's minor unit."""
    return Decimal("0.0005") if currency in THREE_DECIMALS else Decimal("0.005")


def parse_ts(text: str) -> datetime:
    return datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%fZ")


@dataclass
class Event:
    file: str
    pos: int  # index of the event in its file
    line_no: int  # 1-based line of its first line
    ts: str
    request_id: str | None
    kind: str
    text: str  # the whole event


@dataclass
class Block:
    """One ``Start syncing the balance {`` block, with what the reference made of it."""

    file: str
    line_no: int
    ts: str
    request_id: str
    tx_id: str
    user_id: str
    wallet_id: str
    type: str | None
    currency: str
    amount: Decimal
    vat: Decimal
    old: Decimal
    new: Decimal
    outcome: str = "unknown"
    not_in_sync_after: bool = False

    @property
    def applied(self) -> bool:
        return self.outcome != "refused"

    @property
    def delta(self) -> Decimal:
        return self.new - self.old

    @property
    def sign(self) -> int:
        if self.type == "DEBIT":
            return -1
        if self.type == "CREDIT":
            return 1
        return 1 if self.delta > 0 else -1


@dataclass
class Reference:
    """Everything the tests compare, keyed by transaction id where there is one."""

    blocks: dict[str, Block]
    overdraft: set[str] = field(default_factory=set)
    mismatch: dict[str, str] = field(default_factory=dict)  # tx id -> pattern
    flow_break: dict[str, str] = field(default_factory=dict)  # tx id (A) -> cause
    next_of: dict[str, str] = field(default_factory=dict)  # A -> the wallet's next applied B
    negative_amount: set[str] = field(default_factory=set)
    refusals: list[tuple[str, int, str | None]] = field(default_factory=list)  # file, line, transactionId
    error_invocations: set[tuple[str, str]] = field(default_factory=set)  # (file, request id)
    error_events: int = 0
    failed_inits: list[tuple[str, int]] = field(default_factory=list)  # file, line of INIT_REPORT error

    def outcome_counts(self) -> dict[str, int]:
        counts = dict.fromkeys(OUTCOMES, 0)
        for b in self.blocks.values():
            counts[b.outcome] += 1
        return counts

    def cause_counts(self) -> dict[str, int]:
        counts = dict.fromkeys(CAUSES, 0)
        for cause in self.flow_break.values():
            counts[cause] += 1
        return counts

    @property
    def incidents(self) -> int:
        """Invocations with at least one error event, plus cold starts whose init failed."""
        return len(self.error_invocations) + len(self.failed_inits)


# ---------------------------------------------------------------- reading


def archive_texts(path: Path) -> list[tuple[str, str]]:
    """(member name, text) of every log member of an export zip, macOS junk left out."""
    with zipfile.ZipFile(path) as zf:
        return [
            (n, gzip.decompress(zf.read(n)).decode("utf-8"))
            for n in zf.namelist()
            if n.endswith(".gz") and not n.startswith("__MACOSX/")
        ]


def _kind(app_text: str, level: str) -> str:
    head = app_text.lstrip()
    if app_text.startswith("Start syncing the balance {"):
        return "sync_start"
    if app_text.startswith("Processing message "):
        return "processing_message"
    if app_text.startswith("SubscriptionBalanceUpdated event published"):
        return "published"
    if app_text.startswith(ALREADY_SYNCED):
        return "already_synced"
    if app_text.startswith("Skipping the process, Update Payment Balance Flag is set to false"):
        return "skipped"
    if app_text.startswith("An error occured while syncing the balance"):
        return "failed"
    if head.startswith("{") and "Subscriber will have a negative balance due to this action" in app_text:
        return "refused"
    if level == "ERROR" and app_text.startswith("Subscription balance and payment balance are not in sync"):
        return "not_in_sync"
    if app_text.startswith("Uncaught Exception"):
        return "uncaught_exception"
    if app_text.startswith("Invoke Error"):
        return "invoke_error"
    return "app"


def file_events(name: str, text: str) -> list[Event]:
    """The events of one file in written order, each with its requestId and kind."""
    text = text.lstrip("\ufeff").replace("\r\n", "\n")
    events: list[Event] = []
    line_no = 1
    current: str | None = None
    for pos, chunk in enumerate(EVENT_START.split(text)):
        start_line = line_no
        line_no += chunk.count("\n") + 1
        event = chunk.rstrip("\n")
        if not re.match(TS, event):
            continue
        ts = event[:24]
        rid: str | None = None
        if m := APP.match(event):
            rid, kind = m.group(3), _kind(m.group(5), m.group(4))
        elif m := PLATFORM.match(event):
            rid, kind = m.group(3), m.group(2).lower()
        elif m := TIMEOUT.match(event):
            rid, kind = m.group(2), "timeout"
        else:
            body = event[25:]
            if body.startswith("INIT_REPORT"):
                kind = "init_failed" if "Status: error" in body else "init_report"
            elif body.startswith("Unknown application error occurred"):
                kind = "runtime_crash"
            else:
                kind = "other"
        if rid is not None:
            current = rid
        events.append(Event(name, pos, start_line, ts, rid if rid is not None else current, kind, event))
    return events


def _value(raw: str) -> str:
    return raw.strip().strip("'`\"")


def _block(event: Event) -> Block:
    fields = dict(FIELD.findall(event.text))
    s = {k: _value(v) for k, v in fields.items()}
    wallet = WALLET.search(fields.get("metadata", ""))
    return Block(
        file=event.file,
        line_no=event.line_no,
        ts=event.ts,
        request_id=event.request_id or "",
        tx_id=s["id"],
        user_id=s["userId"],
        wallet_id=wallet.group(1) if wallet else f"wallet#{s['userId']}",
        type=s.get("type"),
        currency=s["currency"],
        amount=Decimal(s["amount"]),
        vat=Decimal(s["vat"]),
        old=Decimal(s["oldBalance"]),
        new=Decimal(s["newBalance"]),
    )


ERROR_KINDS = {"failed", "uncaught_exception", "invoke_error", "runtime_crash", "timeout", "init_failed"}


# ---------------------------------------------------------------- the count


def reference(texts: list[tuple[str, str]]) -> Reference:
    """The reference reading of these files (name, text)."""
    blocks: dict[str, Block] = {}
    ref = Reference(blocks)
    refused_ids: set[str] = set()
    all_ts: list[datetime] = []
    for name, text in texts:
        events = file_events(name, text)
        all_ts.extend(parse_ts(e.ts) for e in events)
        groups: dict[str | None, list[Event]] = defaultdict(list)
        for e in events:
            groups[e.request_id].append(e)
            if e.kind in ERROR_KINDS:
                ref.error_events += 1
                if e.kind == "init_failed":
                    ref.failed_inits.append((name, e.line_no))
                elif e.request_id not in (None, PSEUDO_ID):
                    ref.error_invocations.add((name, e.request_id))
            if e.kind == "refused":
                m = TRANSACTION_ID.search(e.text)
                ref.refusals.append((name, e.line_no, m.group(1) if m else None))
                if m:
                    refused_ids.add(m.group(1))
        for group in groups.values():
            group.sort(key=lambda e: (e.ts, e.pos))
            open_block: Block | None = None
            decided = False
            for e in group:
                if e.kind == "sync_start":
                    open_block, decided = _block(e), False
                    blocks.setdefault(open_block.tx_id, open_block)
                    open_block = blocks[open_block.tx_id] if blocks[open_block.tx_id] is open_block else None
                elif e.kind == "processing_message":
                    open_block = None
                elif open_block is not None:
                    if e.kind == "not_in_sync":
                        open_block.not_in_sync_after = True
                    elif e.kind in OUTCOMES and not decided:
                        open_block.outcome, decided = e.kind, True
    for tx_id in refused_ids & blocks.keys():
        blocks[tx_id].outcome = "refused"
    _money_checks(ref, sorted(all_ts))
    return ref


def _max_gap(times: list[datetime], start: datetime, end: datetime) -> timedelta:
    """The longest time between consecutive events of the export within [start, end]."""
    lo, hi = bisect.bisect_left(times, start), bisect.bisect_right(times, end)
    inside = times[lo:hi]
    return max((b - a for a, b in itertools.pairwise(inside)), default=timedelta(0))


def _money_checks(ref: Reference, times: list[datetime]) -> None:
    wallets: dict[tuple[str, str], list[Block]] = defaultdict(list)
    refused: dict[tuple[str, str], list[Block]] = defaultdict(list)
    for b in ref.blocks.values():
        tol = tolerance(b.currency)
        if b.amount < -tol:
            ref.negative_amount.add(b.tx_id)
        if not b.applied:
            refused[(b.user_id, b.wallet_id)].append(b)
            continue
        wallets[(b.user_id, b.wallet_id)].append(b)
        if b.old < -tol or b.new < -tol:
            ref.overdraft.add(b.tx_id)
        gross, net = b.sign * b.amount, b.sign * (b.amount - b.vat)
        if abs(b.delta - gross) > tol and abs(b.delta - net) > tol:
            net_of_vat = (
                b.type is None
                and b.vat == 0
                and any(abs(b.delta - b.sign * b.amount / (1 + r)) <= tol for r in VAT_RATES)
            )
            ref.mismatch[b.tx_id] = "legacy_net_of_vat" if net_of_vat else "unexplained"
    for history in wallets.values():
        history.sort(key=lambda b: (b.ts, b.tx_id))
        for a, b in itertools.pairwise(history):
            ref.next_of[a.tx_id] = b.tx_id
            tol = tolerance(a.currency)
            if abs(b.old - a.new) <= tol:
                continue
            # the wallet's latest refused block logged up to B: did the balance move by exactly it?
            before_b = [r for r in refused[(a.user_id, a.wallet_id)] if (r.ts, r.tx_id) <= (b.ts, b.tx_id)]
            latest = max(before_b, key=lambda r: (r.ts, r.tx_id), default=None)
            if latest is not None and abs((b.old - a.new) - latest.sign * latest.amount) <= tol:
                cause = "refused_applied_later"
            elif abs(b.old - a.old) <= tol and abs(b.amount - a.amount) <= tol:
                cause = "sent_again"
            elif abs(b.old - a.old) <= tol:
                cause = "not_applied"
            elif a.not_in_sync_after:
                cause = "after_not_in_sync"
            elif _max_gap(times, parse_ts(a.ts), parse_ts(b.ts)) >= GAP:
                cause = "logs_missing"
            else:
                cause = "unexplained"
            ref.flow_break[a.tx_id] = cause
