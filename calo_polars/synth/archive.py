"""Synthetic CloudWatch exports: shards of users in parallel, one archive, one ground truth.

Users are split into fixed shards (``SHARD_USERS`` each, whatever the number of workers); a
shard simulates its users, schedules their messages into Lambda containers and renders and
gzips its files. Shards run in a process pool and are collected in order, so the same options
and seed always give the same bytes. The archive is laid out exactly like the real export:

    __MACOSX/balance-sync-logs/…/._.DS_Store                  (macOS junk)
    balance-sync-logs/.DS_Store
    balance-sync-logs/<task-uuid>/.DS_Store
    balance-sync-logs/<task-uuid>/<YYYY-MM-DD-[$LATEST]hex32>/000000.gz

as a ``.zip``, an unzipped folder, or a single multi-member ``.gz`` (every stream one member).
The ground truth (``<name>.truth.json`` beside it) lists every injected fault as
(kind, transaction id, user) with what the tool must flag (a flow break also with its cause
and the next transaction), every transaction id under its outcome, and the counts of what
was written. Flow-break causes follow the tool's definitions (first that holds):
``refused_applied_later`` (the gap is exactly the move of the wallet's latest refused block), ``sent_again``,
``not_applied``, ``after_not_in_sync``, ``logs_missing`` (the whole export is silent for 24 h or
more between the two transactions: decided here, over every shard's log streams), ``unexplained``.
"""

from __future__ import annotations

import bisect
import contextlib
import heapq
import json
import multiprocessing
import os
import random
import shutil
import signal
import tempfile
import time
from collections import Counter, defaultdict, deque
from collections.abc import Iterable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import asdict, dataclass, field
from datetime import date, timedelta
from pathlib import Path
from typing import IO, Any

from calo_polars.errors import UsageError

from .ledger import TOL, Calendar, Fault, Ledger, Msg, Rates, Tx
from .streams import Options, Writer
from .text import DAY_MS, Clock, between, gzip_member, hex_id, uuid4
from .zipout import ZipStream, deflate

SHARD_USERS = 1000
ROOT = "balance-sync-logs"
FAULT_KINDS = ("overdraft", "mismatch", "flow_break", "delta_anomaly", "negative_amount", "duplicate")
OUTCOMES = ("published", "already_synced", "refused", "failed", "skipped", "unknown")
CAUSES = ("refused_applied_later", "sent_again", "not_applied", "after_not_in_sync", "logs_missing", "unexplained")
SILENCE_MS = DAY_MS  # a silence of the whole export this long or longer: logs are missing


@dataclass(frozen=True)
class SynthOptions:
    """Everything that decides the archive's content (``workers`` only decides its speed)."""

    users: int = 200
    days: int = 30
    seed: int = 1
    start: date = date(2024, 1, 1)
    legacy_until: date | None = None  # default: a sixth of the way into the period
    rates: Rates = field(default_factory=lambda: DEFAULT_RATES)
    out_of_order: float = 0.33
    split: float = 0.2
    error_rate: float = 0.002
    crash_rate: float = 0.03
    workers: int = 2
    level: int = 1

    def calendar(self) -> Calendar:
        legacy = self.legacy_until or self.start + timedelta(days=self.days // 6)
        legacy_day = (legacy - self.start).days
        dark: frozenset[int] = frozenset()
        if self.rates.logs_missing:  # whole days missing from the export, the same for every shard
            rng = random.Random(f"{self.seed}/missing-days")
            dark = frozenset(d for d in range(1, self.days - 1) if rng.random() < self.rates.logs_missing)
        return Calendar(
            days=self.days,
            epoch_day=(self.start - date(1970, 1, 1)).days,
            legacy_until=legacy_day,
            overlap=min(7, max(0, legacy_day // 4)),
            lock_from=int(self.days * 0.6),
            dark=dark,
        )

    @classmethod
    def from_record(cls, data: dict[str, Any], *, workers: int = 2) -> SynthOptions:
        """The options a ground truth recorded (the inverse of ``record``)."""
        values = dict(data)
        values["start"] = date.fromisoformat(values["start"])
        values["legacy_until"] = date.fromisoformat(values["legacy_until"]) if values["legacy_until"] else None
        values["rates"] = Rates(**values["rates"])
        return cls(**values, workers=workers)

    def record(self) -> dict[str, Any]:
        """The options as plain JSON values (for the ground truth)."""
        data = asdict(self)
        data.pop("workers")
        data["start"] = self.start.isoformat()
        data["legacy_until"] = self.legacy_until.isoformat() if self.legacy_until else None
        return data


DEFAULT_RATES: Rates = Rates(overdraft=0.0005, mismatch=0.0005, flow_break=0.001, delta_anomaly=0.001, duplicate=0.001)
CLEAN = Rates()


@dataclass
class Shard:
    """What one shard produced: gzipped files and what the ground truth needs."""

    files: list[tuple[str, bytes, int]]
    counts: Counter[str]
    faults: list[dict[str, Any]]
    outcomes: list[tuple[str, str, bool]]  # (tx id, outcome, not-in-sync error after it)
    spans: list[tuple[int, int]]  # (first, last) event ms of every log stream
    incomplete: list[dict[str, str]]
    invocations: int
    blocks: int
    transactions: int
    users: int
    zipped: list[tuple[str, bytes, int, int, int]] = field(default_factory=list)  # (name, deflated, CRC, size, raw)


@dataclass
class SynthReport:
    """What was written, for the command line and the benchmark."""

    path: Path
    truth_path: Path
    files: int
    raw_bytes: int
    stored_bytes: int
    transactions: int
    faults: dict[str, int]
    seconds: float
    outcomes: dict[str, int] = field(default_factory=dict)
    causes: dict[str, int] = field(default_factory=dict)  # flow breaks by cause

    @property
    def raw_mb_per_s(self) -> float:
        return self.raw_bytes / 1e6 / max(self.seconds, 1e-9)


def build_shard(options: SynthOptions, shard: int) -> Shard:
    """Simulate, schedule, render and gzip the users of one shard."""
    cal = options.calendar()
    ledger = Ledger(cal, options.rates, options.seed)
    first = shard * SHARD_USERS
    for index in range(first, min(first + SHARD_USERS, options.users)):
        ledger.simulate(index)
    writer = Writer(
        cal,
        Clock(options.start),
        Options(options.seed, shard, options.out_of_order, options.split, options.error_rate, options.crash_rate),
    )
    nights: dict[int, list[Msg]] = defaultdict(list)
    days: dict[int, list[tuple[int, Msg | None, str]]] = defaultdict(list)
    for msg in ledger.msgs:
        day = msg.t // DAY_MS - cal.epoch_day
        if msg.night:
            nights[day].append(msg)
        else:
            days[day].append((msg.t, msg, ""))
    pool: list = []
    for day in range(cal.days):
        if day in cal.dark:
            continue  # the export holds nothing of this day
        daytime = days.get(day, [])
        writer.daytime(daytime + writer.noise(day, len(daytime) + len(nights.get(day, []))), pool)
        writer.nightly(day, nights.get(day, []))
        if writer.rng.random() < options.crash_rate:
            writer.crash_burst(day)
    writer.close_pool(pool)
    duplicates = _retries(ledger.msgs, writer.rng, cal)
    writer.daytime([(m.t, m, "") for m in duplicates], pool)
    writer.close_pool(pool)

    stamp = Clock(options.start).stamp
    faults = [
        {"kind": f.kind, "tx_id": f.tx.tx_id, "user_id": f.tx.user.id, "ts": stamp(f.tx.ts), "detail": f.detail}
        | (_flow_break(f, stamp) if f.kind == "flow_break" else {})
        for f in ledger.faults
    ]
    faults += [
        {"kind": "duplicate", "tx_id": _tx(m).tx_id, "user_id": m.user.id, "ts": stamp(_tx(m).ts),
         "detail": f"logged again at {stamp(m.logged)} by another invocation (SQS retry)"}
        for m in duplicates
    ]  # fmt: skip
    files = [
        (name, gzip_member(text.encode("utf-8"), options.level), len(text.encode("utf-8")))
        for name, text in writer.files
    ]
    txs = [m for m in ledger.msgs if m.tx is not None]
    outcomes = [(m.tx.tx_id, m.tx.outcome, bool(m.user.offset or m.tx.nis) and m.tx.outcome != "refused") for m in txs]  # type: ignore[union-attr]
    return Shard(
        files=files,
        counts=writer.counts,
        faults=faults,
        outcomes=outcomes,
        spans=writer.spans,
        incomplete=writer.incomplete,
        invocations=writer.invocations,
        blocks=writer.blocks,
        transactions=len(txs),
        users=len({m.user.index for m in txs}),
    )


def _tx(msg: Msg) -> Tx:
    """The transaction of a message that carries one (a tx or retry message always does)."""
    if msg.tx is None:
        raise ValueError(f"a {msg.kind} message carries no transaction")
    return msg.tx


def _flow_break(fault: Fault, stamp: Any) -> dict[str, Any]:
    """A flow break's next transaction and its cause, as far as one shard can tell: whether the
    logs are missing in between is decided over the whole export (``_resolve_causes``)."""
    a, b = fault.tx, fault.next
    assert b is not None
    if fault.refused_later:
        cause = "refused_applied_later"
    elif abs(b.old - a.old) <= TOL:
        cause = "sent_again" if abs(b.amount - a.amount) <= TOL else "not_applied"
    elif a.user.offset or a.nis:
        cause = "after_not_in_sync"
    else:
        cause = ""  # logs_missing or unexplained
    return {"cause": cause, "next_tx_id": b.tx_id, "next_ts": stamp(b.ts), "_span": (a.ts, b.ts)}


def _silences(spans: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """The stretches of ``SILENCE_MS`` or more in which the export holds no event at all.

    Within one log stream events are never that far apart (a container idles out in minutes),
    so merging the streams' first-to-last spans finds exactly the silences between events."""
    out: list[tuple[int, int]] = []
    end = None
    for first, last in sorted(spans):
        if end is not None and first - end >= SILENCE_MS:
            out.append((end, first))
        end = last if end is None else max(end, last)
    return out


def _resolve_causes(faults: list[dict[str, Any]], silences: list[tuple[int, int]]) -> None:
    """Name the cause of every flow break the shards left open, and drop the internal span."""
    starts = [lo for lo, _ in silences]
    for f in faults:
        span = f.pop("_span", None)
        if span is None or f["cause"]:
            continue
        a_ts, b_ts = span
        i = bisect.bisect_left(starts, a_ts)
        f["cause"] = "logs_missing" if i < len(silences) and silences[i][1] <= b_ts else "unexplained"


def _retries(msgs: list[Msg], rng: random.Random, cal: Calendar) -> list[Msg]:
    """SQS retries of the transactions marked duplicate, each before the user's next one."""
    following: dict[int, Msg] = {}
    previous: dict[int, Msg] = {}
    for msg in msgs:  # per user in time order
        if msg.tx is None:
            continue
        if msg.user.index in previous:
            following[id(previous[msg.user.index])] = msg
        previous[msg.user.index] = msg
    out = []
    for msg in msgs:
        tx = msg.tx
        if tx is None or not tx.duplicate:
            continue
        at = tx.ts + between(rng, 20_000, 300_000)
        nxt = following.get(id(msg))
        if (nxt is not None and at >= _tx(nxt).ts - 60_000) or at // DAY_MS - cal.epoch_day in cal.dark:
            tx.duplicate = False
            continue
        out.append(Msg(at, False, "retry", msg.user, tx))
    return out


# ---------------------------------------------------------------- running and writing


def _merge_spans(spans: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """The spans joined wherever the gap between them is shorter than ``SILENCE_MS``: the same
    silences come out of ``_silences`` (a silence is bounded by events), from a few spans a shard."""
    out: list[tuple[int, int]] = []
    for first, last in sorted(spans):
        if out and first - out[-1][1] < SILENCE_MS:
            out[-1] = (out[-1][0], max(out[-1][1], last))
        else:
            out.append((first, last))
    return out


def _build_for(options: SynthOptions, index: int, kind: str) -> Shard:
    """A shard as the main process writes it (in the worker): files in name order, spans merged,
    outcomes sorted by id, and for a zip every file already deflated as its member."""
    shard = build_shard(options, index)
    shard.files.sort(key=lambda f: f[0])
    shard.spans = _merge_spans(shard.spans)
    shard.outcomes.sort()
    if kind == "zip":
        shard.zipped = [(name, *deflate(data), len(data), size) for name, data, size in shard.files]
        shard.files = []
    return shard


def _ignore_ctrl_c() -> None:
    """In a worker: Ctrl-C reaches the whole process group, and the parent stops the workers itself
    (a worker's KeyboardInterrupt sent back as its result would otherwise end the run as "Aborted!")."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def _shards(options: SynthOptions, kind: str) -> Iterator[Shard]:
    """The shards in order; at most one more than the workers is built ahead of the writer."""
    count = max(1, -(-options.users // SHARD_USERS))
    if options.workers <= 1 or count == 1:
        for i in range(count):
            yield _build_for(options, i, kind)
        return
    context = multiprocessing.get_context("spawn")  # no fork of a threaded parent
    with ProcessPoolExecutor(max_workers=options.workers, mp_context=context, initializer=_ignore_ctrl_c) as pool:
        pending: deque[Future[Shard]] = deque()
        try:
            for i in range(count):
                pending.append(pool.submit(_build_for, options, i, kind))
                if len(pending) > options.workers:
                    yield pending.popleft().result()
            while pending:
                yield pending.popleft().result()
        except BaseException:  # Ctrl-C, a full disk: stop the shards in flight instead of finishing them
            for future in pending:
                future.cancel()
            for process in list((getattr(pool, "_processes", None) or {}).values()):
                process.terminate()
            raise


class _SortedRuns:
    """Lists of ids too long to hold (every transaction id of a year): each shard's sorted run
    spilled to a file in a temporary folder, merged in order when the truth is written."""

    def __init__(self, beside: Path) -> None:
        self.folder = Path(tempfile.mkdtemp(prefix=f".{beside.name}.", dir=beside.parent))
        self.runs: dict[str, list[Path]] = defaultdict(list)
        self.counts: Counter[str] = Counter()

    def add(self, name: str, ids: Iterable[str]) -> None:
        """One shard's ids of list ``name``, already sorted."""
        path = self.folder / f"{len(self.runs[name])}-{name}.txt"
        with open(path, "w", encoding="ascii") as f:
            n = 0
            for tx_id in ids:
                f.write(tx_id + "\n")
                n += 1
        self.runs[name].append(path)
        self.counts[name] += n

    def merged(self, name: str) -> Iterator[str]:
        with contextlib.ExitStack() as stack:
            files = [stack.enter_context(open(path, encoding="ascii")) for path in self.runs[name]]
            yield from heapq.merge(*[(line.rstrip("\n") for line in f) for f in files])

    def remove(self) -> None:
        shutil.rmtree(self.folder, ignore_errors=True)


def truth_path_for(out: Path) -> Path:
    """``logs.zip`` → ``logs.truth.json`` beside it (also for a folder or a ``.gz``)."""
    name = out.name
    for suffix in (".zip", ".gz"):
        if name.endswith(suffix):
            name = name[: -len(suffix)]
    return out.with_name(f"{name}.truth.json")


def synthesize(
    options: SynthOptions, out: str | os.PathLike[str], truth: str | os.PathLike[str] | None = None
) -> SynthReport:
    """Write a synthetic export to ``out`` (``.zip``, ``.gz`` or a folder) and its ground truth.

    Memory: a zip or a folder is written shard by shard as the shards arrive (at most one more
    shard than the workers in flight); the lists of every transaction id go to sorted runs on
    disk. Only a ``.gz`` (meant for small inputs) is held whole, to concatenate in name order.
    """
    began = time.perf_counter()
    out = Path(out)
    kind = "zip" if out.suffix == ".zip" else "gz" if out.suffix == ".gz" else "folder"
    if kind == "folder" and out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise UsageError(f"{out}: exists and is not an empty folder; give a new folder, a .zip or a .gz")
    if options.users < 1 or options.days < 1:
        raise UsageError("--users and --days must be at least 1")
    tpath = Path(truth) if truth else truth_path_for(out)
    rng = random.Random(f"{options.seed}/archive")
    task = uuid4(rng)
    junk = _junk(task, rng)
    prefix = f"{ROOT}/{task}/"
    gz_files: list[tuple[str, bytes]] = []
    counts: Counter[str] = Counter()
    faults: list[dict[str, Any]] = []
    incomplete: list[dict[str, str]] = []
    spans: list[tuple[int, int]] = []
    totals: Counter[str] = Counter()
    runs = _SortedRuns(tpath)
    tmp = _temp_beside(out) if kind == "zip" else None
    try:
        with contextlib.ExitStack() as stack:
            zip_out: ZipStream | None = None
            if tmp is not None:
                fp = stack.enter_context(open(tmp, "wb"))
                exported = options.start + timedelta(days=options.days + 1)
                zip_out = ZipStream(fp, (exported.year, exported.month, exported.day, 10, 19, 50), 0o100664 << 16)
                for name, data in junk:  # every junk name sorts before the logs (`__MACOSX`, `.DS_Store`)
                    zip_out.add(name, *deflate(data), len(data))
            for shard in _shards(options, kind):
                for name, deflated, crc, size, raw_size in shard.zipped:
                    assert zip_out is not None
                    zip_out.add(f"{prefix}{name}/000000.gz", deflated, crc, size)
                    totals.update(files=1, raw=raw_size, stored=size)
                for name, data, raw_size in shard.files:
                    totals.update(files=1, raw=raw_size, stored=len(data))
                    if kind == "gz":
                        gz_files.append((f"{prefix}{name}/000000.gz", data))
                    else:
                        target = out.joinpath(*f"{prefix}{name}/000000.gz".split("/"))
                        target.parent.mkdir(parents=True, exist_ok=True)
                        target.write_bytes(data)
                counts.update(shard.counts)
                faults += shard.faults
                spans += shard.spans
                for outcome in OUTCOMES:
                    runs.add(outcome, (tx_id for tx_id, o, _ in shard.outcomes if o == outcome))
                runs.add("not_in_sync_after", (tx_id for tx_id, _, nis in shard.outcomes if nis))
                incomplete += shard.incomplete
                totals.update(
                    invocations=shard.invocations, blocks=shard.blocks, transactions=shard.transactions,
                    users=shard.users,
                )  # fmt: skip
                del shard
            if zip_out is not None:
                zip_out.close()
        if tmp is not None:
            os.replace(tmp, out)
        elif kind == "gz":
            _atomic_write(out, b"".join(data for _, data in sorted(gz_files)))
        else:
            for name, data in junk:
                target = out.joinpath(*name.split("/"))
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(data)
        del gz_files
        silences = _silences(spans)
        _resolve_causes(faults, silences)
        faults.sort(key=lambda f: (FAULT_KINDS.index(f["kind"]), f["user_id"], f["ts"], f["tx_id"]))
        fault_counts = {k: sum(1 for f in faults if f["kind"] == k) for k in FAULT_KINDS}
        stamp = Clock(options.start).stamp
        cal = options.calendar()
        outcome_counts = {k: runs.counts[k] for k in OUTCOMES}
        cause_counts = {c: sum(1 for f in faults if f.get("cause") == c) for c in CAUSES}
        document = {
            "generator": "calo-polars synth",
            "options": options.record(),
            "archive": {
                "layout": kind,
                "files": totals["files"],
                "raw_bytes": totals["raw"],
                "users": totals["users"],
                "transactions": totals["transactions"],
                "transaction_blocks": totals["blocks"],
                "invocations": totals["invocations"],
            },
            "event_kinds": dict(sorted(counts.items())),
            "fault_counts": fault_counts,
            "outcome_counts": outcome_counts,
            "flow_break_causes": cause_counts,
            "missing_days": [stamp(cal.day_ms(d))[:10] for d in sorted(cal.dark)],
            "silences": [[stamp(lo), stamp(hi)] for lo, hi in silences],
            "incomplete_invocations": sorted(incomplete, key=lambda i: i["request_id"]),
            "faults": faults,
            "outcomes": {k: _LIST + k for k in OUTCOMES},
            "not_in_sync_after": _LIST + "not_in_sync_after",
        }
        _write_truth(tpath, document, runs)
    finally:
        runs.remove()
        if tmp is not None and os.path.exists(tmp):
            os.unlink(tmp)
    return SynthReport(
        out, tpath, totals["files"], totals["raw"], totals["stored"], totals["transactions"], fault_counts,
        time.perf_counter() - began, outcome_counts, cause_counts,
    )  # fmt: skip


#: Stands in the truth's JSON for a list streamed from the sorted runs (``_write_truth``).
_LIST = "\u0000sorted-run:"


def _write_truth(path: Path, document: dict[str, Any], runs: _SortedRuns) -> None:
    """The truth as ``json.dumps(document, indent=1)`` would write it with each list of ids in
    place, those lists streamed from ``runs`` (a year's ids never held as one string)."""
    text = json.dumps(document, indent=1, ensure_ascii=False) + "\n"
    marker = json.dumps(_LIST, ensure_ascii=False)[:-1]  # the opening quote and the escaped prefix
    tmp = _temp_beside(path)
    try:
        with open(tmp, "w", encoding="utf-8") as f:
            pos = 0
            while (at := text.find(marker, pos)) >= 0:
                close = text.index('"', at + len(marker))
                name = text[at + len(marker) : close]
                line = text[text.rindex("\n", 0, at) + 1 : at]
                depth = len(line) - len(line.lstrip(" "))  # indent=1: one space a level
                f.write(text[pos:at])
                _write_list(f, runs.merged(name), depth)
                pos = close + 1
            f.write(text[pos:])
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def _write_list(f: IO[str], ids: Iterator[str], depth: int) -> None:
    """A list of strings as ``json.dumps(indent=1)`` writes it at nesting ``depth``."""
    first = True
    for tx_id in ids:
        f.write(("[\n" if first else ",\n") + " " * (depth + 1) + json.dumps(tx_id, ensure_ascii=False))
        first = False
    f.write("[]" if first else "\n" + " " * depth + "]")


def _junk(task: str, rng: random.Random) -> list[tuple[str, bytes]]:
    """The macOS junk an export made on a Mac holds, sorted by name (all before the logs)."""
    ds_store = b"\x00\x00\x00\x01Bud1" + bytes(6148 - 8)
    apple_double = b"\x00\x05\x16\x07\x00\x02\x00\x00Mac OS X        " + bytes(120 - 24)
    return sorted(
        [
            (f"__MACOSX/{ROOT}/._.DS_Store", apple_double),
            (f"__MACOSX/{ROOT}/{task}/._.DS_Store", apple_double),
            (f"{ROOT}/.DS_Store", ds_store),
            (f"{ROOT}/{task}/.DS_Store", ds_store[:8] + hex_id(rng, 8).encode() + bytes(4096)),
        ]
    )


def _temp_beside(path: Path) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    os.close(fd)
    os.chmod(tmp, 0o644)  # mkstemp makes 0600; an archive is meant to be shared
    return tmp


def _atomic_write(path: Path, data: bytes) -> None:
    tmp = _temp_beside(path)
    try:
        Path(tmp).write_bytes(data)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
