"""From SQS messages to log streams: invocations, Lambda containers, and the text of each file.

A log stream is one Lambda container's life: a cold start (INIT_START, then a REPORT with
``Init Duration``) and the invocations it served, one START…END…REPORT per SQS batch of 1–10
messages. The nightly deduction batch (21:00 UTC) runs on a few containers at once; daytime
messages get a warm container when one was used in the last minutes, else a cold one.
Each stream becomes one ``000000.gz``; some files have their chunks written out of order, as
CloudWatch exports do, sometimes cutting an invocation in two.

Every event is rendered from a %-template; counts of every event kind are kept so tests can
compare them with what the tool reads.
"""

from __future__ import annotations

import random
from collections import Counter
from dataclasses import dataclass, field
from itertools import pairwise

from .ledger import Calendar, Msg, Tx
from .text import Clock, between, hex_id, parse_stamp, request_id, uuid4

#: SQS batch sizes of the nightly run and how often each occurs (as measured on the real archive).
NIGHT_BATCH = (1, 2, 3, 4, 5, 6, 7, 8, 9, 10)
NIGHT_WEIGHTS = (45, 5, 5, 3, 3, 2, 2, 2, 2, 20)
MSGS_PER_NIGHT_CONTAINER = 30
P_XRAY = 0.1  # a REPORT followed by its X-Ray trace line
P_NOT_IN_SYNC_EMF = 0.1
NOISE_KINDS = ("sync_error", "sync_error", "invoke_error", "timeout", "truncated")

FULL_BLOCK = (
    "%s %s\t%s\tINFO\tStart syncing the balance {\n  transaction: {\n    id: '%s',\n    type: '%s',\n"
    "    source: '%s',\n    action: '%s',\n    userId: '%s',\n    paymentBalance: %s,\n"
    "    updatePaymentBalance: %s,\n    metadata: %s,\n    currency: '%s',\n    amount: %s,\n    vat: %s,\n"
    "    oldBalance: %s,\n    newBalance: %s\n  }\n}\n\n"
)
LEGACY_BLOCK = (
    "%s %s\t%s\tINFO\tStart syncing the balance {\n  transaction: {\n    id: '%s',\n    userId: '%s',\n"
    "    currency: '%s',\n    amount: %s,\n    vat: %s,\n    oldBalance: %s,\n    newBalance: %s\n  }\n}\n\n"
)
NOT_IN_SYNC = (
    "%s %s\t%s\tERROR\tSubscription balance and payment balance are not in sync {\n  userId: '%s',\n"
    "  subscriptionBalance: %s,\n  paymentBalance: %s\n}\n\n"
)
EMF = (
    '%s {"_aws":{"Timestamp":%d,"CloudWatchMetrics":[{"Namespace":"apiService","Dimensions":[["service"]],'
    '"Metrics":[{"Name":"%s","Unit":"Count"}]}]},"service":"syncBalanceSQS","%s":1%s}\n\n'
)
BLOCKED = (
    "%s %s\t%s\tINFO\t{\n  message: 'Subscriber will have a negative balance due to this action, the process will "
    "terminate.',\n  data: {\n    userId: '%s',\n    currentBalance: %s,\n    transactionId: '%s'\n  }\n}\n\n"
)
#: The refusal as the Lambda logs it right after the block it refuses (the shape of the real
#: archive's refusals of a logged block: transactionId first, and the refused newBalance).
REFUSED = (
    "%s %s\t%s\tINFO\t{\n"
    "  message: 'Subscriber will have a negative balance due to this action, the process will terminate.',\n"
    "  data: {\n    transactionId: '%s',\n    userId: '%s',\n    currentBalance: %s,\n    newBalance: %s\n  }\n}\n\n"
)
FLAG_FALSE = "Skipping the process, Update Payment Balance Flag is set to false { transactionAction: '%s' }"
LOCK = (
    "%s %s\t%s\tINFO\tTransaction Lock created!!!!!!!!!!!!!!!!!!!!!!!!!!! Rr {\n  dirty: {},\n  original: {\n"
    "    id: 'trxLock#%s',\n    sk: '%s',\n    userId: '%s',\n    dataType: 'trxLock',\n    createdAt: '%s',\n"
    "    updatedAt: '%s',\n    ttl: %d\n  },\n  attributes: [\n    'id',        'sk',\n    'userId',    'dataType',\n"
    "    'createdAt', 'updatedAt',\n    'ttl'\n  ],\n  id: 'trxLock#%s',\n  sk: '%s',\n  userId: '%s',\n"
    "  dataType: 'trxLock',\n  createdAt: '%s',\n  updatedAt: '%s',\n  ttl: %d,\n  newEntity: false\n}\n\n"
)
SYNC_ERROR = (
    "%s %s\t%s\tERROR\tAn error occured while syncing the balance TypeError: Cannot read properties of null (reading "
    "'getBalance')\n    at Kn.exec (/src/syncBalance/useCase.ts:61:29)\n"
    "    at process.processTicksAndRejections (node:internal/process/task_queues:95:5)\n"
    "    at hB (/src/syncBalance/listener.ts:33:9)\n\n"
)
INVOKE_ERROR = (
    '%s %s\t%s\tERROR\tInvoke Error \t{"errorType":"TypeError","errorMessage":"Cannot read properties of undefined '
    '(reading \'Records\')","stack":["TypeError: Cannot read properties of undefined (reading \'Records\')","    at '
    'lambdaHandler (/src/syncBalance/listener.ts:21:17)","    at process.processTicksAndRejections '
    '(node:internal/process/task_queues:95:5)"]}\n\n'
)
UNCAUGHT = (
    '%s %s\tundefined\tERROR\tUncaught Exception \t{"errorType":"Error","errorMessage":"Cannot find module '
    "'/var/task/node_modules/@aws-sdk/client-sqs/dist-cjs/index.js' imported from "
    '/var/task/src/syncBalance/listener.mjs","code":"ERR_MODULE_NOT_FOUND","stack":["Error [ERR_MODULE_NOT_FOUND]: '
    "Cannot find module '/var/task/node_modules/@aws-sdk/client-sqs/dist-cjs/index.js'\",\"    at finalizeResolution "
    '(node:internal/modules/esm/resolve:264:11)"]}\n\n'
)
SKIP_CREATE = "Skipping the balance sync for create %s, it will be synced from create %s payment listener"
AFTER = {
    "published": "SubscriptionBalanceUpdated event published",
    "already_synced": "Skipping the process, balance is already synced from other listeners",
    "already_synced_short": "Balance is already synced from other listeners",
}
AFTER_KIND = {
    "published": "sync_published",
    "already_synced": "skip_already_synced",
    "already_synced_short": "skip_already_synced",
}


@dataclass
class Options:
    """What the scheduler needs besides the messages."""

    seed: int
    shard: int
    out_of_order: float  # share of files whose chunks are written out of order
    split: float  # chance that a chunk boundary cuts an invocation
    error_rate: float  # extra failing invocations (sync/invoke errors, timeouts, truncations) per message
    crash_rate: float  # chance per day of a burst of failed cold starts


@dataclass
class Stream:
    """One log stream (one container) being written: events in time order, invocation per event."""

    name: str
    events: list[str] = field(default_factory=list)
    inv: list[int] = field(default_factory=list)
    invocations: int = 0
    free_at: int = 0
    expires: int = 0


class Writer:
    """Renders invocations into streams and streams into file texts, counting every event kind."""

    def __init__(self, cal: Calendar, clock: Clock, opts: Options) -> None:
        self.cal, self.clock, self.opts = cal, clock, opts
        self.rng = random.Random(f"{opts.seed}/shard/{opts.shard}")
        self.counts: Counter[str] = Counter()
        self.files: list[tuple[str, str]] = []  # (stream name, text)
        self.incomplete: list[dict[str, str]] = []
        self.invocations = 0
        self.blocks = 0
        self.spans: list[tuple[int, int]] = []  # (first, last) event ms of every stream written

    # ------------------------------------------------------------ containers

    def _runtime(self, day: int) -> tuple[str, str]:
        if day < self.cal.legacy_until:
            version = "nodejs:14.v42"
        else:
            version = f"nodejs:20.v{13 + (day - self.cal.legacy_until) // 20}"
        arn_hash = hex_id(random.Random(f"{self.opts.seed}/runtime/{version}"), 64)
        return version, f"arn:aws:lambda:us-east-1::runtime:{arn_hash}"

    def new_stream(self, ms: int) -> Stream:
        return Stream(f"{self.clock.date_text(ms)}-[$LATEST]{hex_id(self.rng, 32)}")

    def cold_start(self, stream: Stream, start: int) -> float:
        """INIT_START before the first invocation; returns the init duration for its REPORT."""
        init_ms = round(self.rng.uniform(650, 1250), 2)
        version, arn = self._runtime(start // 86_400_000 - self.cal.epoch_day)
        at = start - int(init_ms) - between(self.rng, 1, 60)
        self._event(
            stream,
            -1,
            "init_start",
            f"{self.clock.stamp(at)} INIT_START Runtime Version: {version}\tRuntime Version ARN: {arn}\n\n",
        )
        return init_ms

    def _event(self, stream: Stream, inv: int, kind: str, text: str) -> None:
        stream.events.append(text)
        stream.inv.append(inv)
        self.counts[kind] += 1

    # ------------------------------------------------------------ one invocation

    def invocation(self, stream: Stream, start: int, msgs: list[Msg], *, cold: bool, noise: str = "") -> int:
        """Write one invocation into ``stream`` starting at ``start`` (ms); returns its end."""
        rng, stamp = self.rng, self.clock.stamp
        init_ms = self.cold_start(stream, start) if cold else None
        rid = request_id(rng)
        inv = stream.invocations
        stream.invocations += 1
        self.invocations += 1
        self._event(stream, inv, "start", f"{stamp(start)} START RequestId: {rid} Version: $LATEST\n\n")
        t = start + between(rng, 5, 160)
        for msg in msgs:
            t = self._message(stream, inv, rid, t, msg)
        if noise:
            t = self._noise(stream, inv, rid, t, noise)
        if noise == "truncated":  # the container died: no END, no REPORT
            self.incomplete.append({"request_id": rid, "reason": "no END and REPORT (truncated)"})
            stream.expires = 0
            return t
        end = t + between(rng, 1, 40)
        duration = (end - start) + between(rng, 0, 100) / 100
        if noise == "timeout":
            duration = 30_000 + between(rng, 0, 100) / 100
            self.incomplete.append({"request_id": rid, "reason": "timed out"})
        memory = 512 if start // 86_400_000 - self.cal.epoch_day < self.cal.legacy_until else 1024
        init = f"Init Duration: {init_ms:.2f} ms\t" if init_ms is not None else ""
        status = "Status: timeout\t" if noise == "timeout" else ""
        xray = (
            f"\nXRAY TraceId: 1-{end // 1000:08x}-{hex_id(rng, 24)}\tSegmentId: {hex_id(rng, 16)}\tSampled: true\t"
            if rng.random() < P_XRAY
            else ""
        )
        self._event(stream, inv, "end", f"{stamp(end)} END RequestId: {rid}\n\n")
        self._event(
            stream, inv, "report",
            f"{stamp(end)} REPORT RequestId: {rid}\tDuration: {duration:.2f} ms\tBilled Duration: {int(duration) + 1} "
            f"ms\tMemory Size: {memory} MB\tMax Memory Used: {between(rng, 88, 135)} MB\t{init}{status}{xray}\n\n",
        )  # fmt: skip
        return end

    def _app(self, stream: Stream, inv: int, kind: str, ts: str, rid: str, level: str, text: str) -> None:
        self._event(stream, inv, kind, f"{ts} {ts}\t{rid}\t{level}\t{text}\n\n")

    def _message(self, stream: Stream, inv: int, rid: str, t: int, msg: Msg) -> int:
        rng, stamp = self.rng, self.clock.stamp
        u = msg.user
        ts = stamp(t)
        message_id = msg.tx.message_id if msg.tx is not None else msg.message_id or uuid4(rng)
        self._app(stream, inv, "processing_message", ts, rid, "INFO", f"Processing message {message_id}")
        t += between(rng, 1, 60)
        ts = stamp(t)
        kind = msg.kind
        if kind in ("tx", "retry"):
            tx = msg.tx
            assert tx is not None
            if tx.sqs_body and kind == "tx":
                self._app(stream, inv, "sqs_body", ts, rid, "INFO", "transaction " + _sqs_body(tx, ts))
            self._block(stream, inv, ts, rid, tx)
            msg.logged = t
            if kind == "tx":
                tx.ts = t
            if tx.lock and kind == "tx":
                t += between(rng, 20, 90)
                lts, iso = stamp(t), stamp(t - 60)
                ttl = t // 1000 + 1_814_400
                self._event(stream, inv, "transaction_lock", LOCK % (
                    lts, lts, rid, u.id, tx.tx_id, u.id, iso, iso, ttl,
                    u.id, tx.tx_id, u.id, iso, iso, ttl))  # fmt: skip
            after = "already_synced" if kind == "retry" else tx.after
            if after == "refused":  # refused at once (often in the same millisecond): nothing follows
                t += between(rng, 0, 3)
                ts = stamp(t)
                self._event(
                    stream, inv, "blocked_overdraft", REFUSED % (ts, ts, rid, tx.tx_id, u.id, tx.old_s, tx.new_s)
                )
                return t + between(rng, 1, 40)
            t += between(rng, 10, 120)
            if after in AFTER:
                self._app(stream, inv, AFTER_KIND[after], stamp(t), rid, "INFO", AFTER[after])
            elif after == "failed":
                ts = stamp(t)
                self._event(stream, inv, "sync_error", SYNC_ERROR % (ts, ts, rid))
                self._event(stream, inv, "emf_metric", EMF % (ts, t, "synBalanceError", "synBalanceError", ""))
            elif after == "skipped":
                self._app(stream, inv, "skip_update_flag_false", stamp(t), rid, "INFO", FLAG_FALSE % tx.action)
            # "unknown": the block is answered by nothing
            if (u.offset or tx.nis) and kind == "tx":
                t += between(rng, 5, 80)
                ts = stamp(t)
                pay = tx.nis_pay_s if tx.nis else tx.pay_s
                self._event(stream, inv, "not_in_sync", NOT_IN_SYNC % (ts, ts, rid, u.id, tx.new_s, pay))
                if rng.random() < P_NOT_IN_SYNC_EMF:
                    extra = f',"userId":"{u.id}","action":"{tx.action or "DELIVERY_DEDUCTION"}"'
                    self._event(
                        stream,
                        inv,
                        "emf_metric",
                        EMF % (ts, t, "subBalanceDiscrapancy", "subBalanceDiscrapancy", extra),
                    )
        elif kind == "blocked":
            extra = f',"userId":"{u.id}","action":"{msg.action}"'
            self._event(stream, inv, "emf_metric", EMF % (ts, t, "negativeBalance", "negativeBalance", extra))
            t += 1
            ts = stamp(t)
            self._event(stream, inv, "blocked_overdraft", BLOCKED % (ts, ts, rid, u.id, msg.balance_s, msg.ref_id))
        elif kind == "skip_create":
            what = "web subscription" if rng.random() < 0.1 else "subscription"
            self._app(stream, inv, "skip_create_subscription", ts, rid, "INFO", SKIP_CREATE % (what, what))
        elif kind == "flag_false":
            self._app(stream, inv, "skip_update_flag_false", ts, rid, "INFO", FLAG_FALSE % msg.action)
        return t + between(rng, 1, 40)

    def _block(self, stream: Stream, inv: int, ts: str, rid: str, tx: Tx) -> None:
        u = tx.user
        if tx.layout == "full":
            text = FULL_BLOCK % (
                ts, ts, rid, tx.tx_id, tx.type, tx.source, tx.action, u.id, tx.pay_s,
                "false" if tx.after == "skipped" else "true", tx.metadata,
                u.cur.code, tx.amount_s, tx.vat_s, tx.old_s, tx.new_s,
            )  # fmt: skip
        else:
            text = LEGACY_BLOCK % (ts, ts, rid, tx.tx_id, u.id, u.cur.code, tx.amount_s, tx.vat_s, tx.old_s, tx.new_s)
        self._event(stream, inv, "sync_start", text)
        self.blocks += 1

    def _noise(self, stream: Stream, inv: int, rid: str, t: int, noise: str) -> int:
        """A failing message: it logs no transaction (SQS delivers it again later)."""
        rng, stamp = self.rng, self.clock.stamp
        ts = stamp(t)
        if noise == "invoke_error":
            self._event(stream, inv, "invoke_error", INVOKE_ERROR % (ts, ts, rid))
            return t + between(rng, 1, 20)
        self._app(stream, inv, "processing_message", ts, rid, "INFO", f"Processing message {uuid4(rng)}")
        t += between(rng, 5, 60)
        ts = stamp(t)
        if noise == "sync_error":
            self._event(stream, inv, "sync_error", SYNC_ERROR % (ts, ts, rid))
            self._event(stream, inv, "emf_metric", EMF % (ts, t, "synBalanceError", "synBalanceError", ""))
        elif noise == "timeout":
            t += 30_000
            self._event(
                stream, inv, "timeout", f"{stamp(t)} {rid} Task timed out after 30.0{between(rng, 1, 10)} seconds\n\n"
            )
        return t

    def crash_burst(self, day: int) -> None:
        """A bad deploy: containers fail their cold start again and again (``undefined`` errors)."""
        rng, stamp = self.rng, self.clock.stamp
        t = self.cal.day_ms(day) + 21 * 3_600_000 + between(rng, 60_000, 600_000)
        stream = self.new_stream(t)
        self.cold_start(stream, t + 1000)
        for _ in range(between(rng, 2, 6)):
            t += between(rng, 50, 3000)
            ts = stamp(t)
            self._event(stream, -1, "uncaught_exception", UNCAUGHT % (ts, ts))
            init_ms = rng.uniform(650, 800)
            phase = "init" if rng.random() < 0.3 else "invoke"
            t += between(rng, 20, 150)
            self._event(stream, -1, "init_report",
                        f"{stamp(t)} INIT_REPORT Init Duration: {init_ms:.2f} ms\tPhase: {phase}\tStatus: error\tError "
                        "Type: Runtime.ExitError\n\n")  # fmt: skip
            if phase == "invoke":
                rid = request_id(rng)
                inv = stream.invocations
                stream.invocations += 1
                self.invocations += 1
                ts = stamp(t)
                self._event(stream, inv, "start", f"{ts} START RequestId: {rid} Version: $LATEST\n\n")
                t += between(rng, 0, 20)
                ts = stamp(t)
                self._event(
                    stream, inv, "runtime_crash", f"{ts} Unknown application error occurred\nRuntime.Unknown\n\n"
                )
                self._event(stream, inv, "end", f"{ts} END RequestId: {rid}\n\n")
                self._event(stream, inv, "report",
                            f"{ts} REPORT RequestId: {rid}\tDuration: {init_ms + 1:.2f} ms\tBilled Duration: "
                            f"{int(init_ms) + 2} ms\tMemory Size: 512 MB\tMax Memory Used: {between(rng, 36, 42)} "
                            "MB\t\n\n")  # fmt: skip
        self.close(stream)

    # ------------------------------------------------------------ scheduling

    def nightly(self, day: int, msgs: list[Msg]) -> None:
        """The 21:00 UTC deduction run: batches of 1–10 messages over a few parallel containers."""
        if not msgs:
            return
        rng = self.rng
        rng.shuffle(msgs)
        batches, i = [], 0
        while i < len(msgs):
            size = rng.choices(NIGHT_BATCH, NIGHT_WEIGHTS)[0]
            batches.append(msgs[i : i + size])
            i += size
        start = self.cal.day_ms(day) + 21 * 3_600_000 + 60_000
        containers = [self.new_stream(start) for _ in range(max(1, round(len(msgs) / MSGS_PER_NIGHT_CONTAINER)))]
        for c in containers:
            c.free_at = start + between(rng, 0, 4000)
        for batch in batches:
            c = min(containers, key=lambda s: s.free_at)
            c.free_at = self.invocation(c, c.free_at + between(rng, 20, 1500), batch, cold=not c.events)
        for c in containers:
            if c.events:
                self.close(c)

    def daytime(self, msgs: list[tuple[int, Msg | None, str]], pool: list[Stream]) -> None:
        """Single-message invocations at their own times, on warm containers when there is one."""
        rng = self.rng
        for t, msg, noise in sorted(msgs, key=lambda m: m[0]):
            warm = [s for s in pool if s.free_at < t <= s.expires]
            if warm:
                stream = max(warm, key=lambda s: s.free_at)
            else:
                stream = self.new_stream(t)
                pool.append(stream)
            end = self.invocation(stream, t, [msg] if msg is not None else [], cold=not stream.events, noise=noise)
            stream.free_at = end
            stream.expires = end + between(rng, 300_000, 900_000) if noise != "truncated" else 0
            for s in [s for s in pool if s.expires < t]:
                pool.remove(s)
                self.close(s)

    def close_pool(self, pool: list[Stream]) -> None:
        for s in pool:
            self.close(s)
        pool.clear()

    def noise(self, day: int, n_msgs: int) -> list[tuple[int, Msg | None, str]]:
        """Failing invocations of the day, at random daytime moments."""
        rng = self.rng
        count = sum(1 for _ in range(n_msgs) if rng.random() < self.opts.error_rate)
        base = self.cal.day_ms(day)
        return [
            (base + between(rng, 5 * 3_600_000, 20 * 3_600_000), None, rng.choice(NOISE_KINDS)) for _ in range(count)
        ]

    # ------------------------------------------------------------ files

    def close(self, stream: Stream) -> None:
        """The stream's file text, with chunks out of order in some files."""
        events = stream.events
        if events:  # every event starts with its ISO timestamp, which sorts as time does
            stamps = [e[:24] for e in events]
            self.spans.append((parse_stamp(min(stamps)), parse_stamp(max(stamps))))
        if stream.invocations >= 2 and self.rng.random() < self.opts.out_of_order:
            events = self._shuffle_chunks(stream)
        self.files.append((stream.name, "".join(events)))
        stream.events, stream.inv = [], []

    def _shuffle_chunks(self, stream: Stream) -> list[str]:
        """Cut the events into chunks (mostly at invocation boundaries) and reorder them."""
        rng, inv, n = self.rng, stream.inv, len(stream.events)
        boundaries = [i for i in range(1, n) if inv[i] != inv[i - 1] and inv[i] >= 0]
        inside = [i for i in range(1, n) if inv[i] == inv[i - 1]]
        k = rng.randrange(1, min(4, len(boundaries)) + 1) if boundaries else 0
        cuts = set(rng.sample(boundaries, k)) if k else set()
        if inside and rng.random() < self.opts.split:
            cuts.add(rng.choice(inside))
        if not cuts:
            return stream.events
        edges = [0, *sorted(cuts), n]
        chunks = [stream.events[a:b] for a, b in pairwise(edges)]
        order = list(range(len(chunks)))
        while order == sorted(order):
            rng.shuffle(order)
        return [e for i in order for e in chunks[i]]


def _sqs_body(tx: Tx, ts: str) -> str:
    """The SQS message body the Lambda logged in its early days (with made-up personal data)."""
    u = tx.user
    return (
        f'{{"id":"{tx.tx_id}","type":"{tx.type}","source":"{tx.source}","action":"{tx.action}",'
        f'"amount":{tx.amount_s},"vat":{tx.vat_s},"userId":"{u.id}","name":"Test User {u.index}",'
        f'"email":"user{u.index}@example.com","phoneNumber":"+9730000{u.index % 10000:04d}","currency":"{u.cur.code}",'
        f'"updatePaymentBalance":true,"metadata":{{"walletId":"{u.wallet}"}},"createdAt":"{ts}"}}'
    )
