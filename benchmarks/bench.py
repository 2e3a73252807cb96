"""Throughput and memory of calo-balance, side by side with the floor and a pandas baseline.

    python benchmarks/bench.py [--raw-gb 1] [--seed 7] [--baseline-mb 100] [--out benchmarks/RESULTS.md]

Generates (or reuses, under benchmarks/data/) a synthetic export of about ``--raw-gb`` GB of
log text, then runs each mode in a fresh subprocess and measures it:

  (a) floor     read every member and gunzip it with the standard library, nothing else
  (b) check     calo-balance parse + checks (``audit()``), no workbook
  (c) full      calo-balance full run: audit, summary.json and the workbook
  (e) parts     the two-stage run: ``ingest --into`` a store of 16 partitions, then
                ``report --from`` with 2 worker processes (parse + checks, no workbook)
  (d) pandas    the usual way: one regex per field on each invocation's START…END block,
                a pandas frame, ``groupby().apply`` for the per-user checks; on the first
                ``--baseline-mb`` MB of files when the archive is bigger, scaled to the whole

For each: wall time of the work (interpreter start-up excluded), raw MB/s, transactions/s,
peak RSS of the process (its VmHWM; for (e) the whole process tree, pool workers
included, sampled every 20 ms), CPU time (``wait4`` rusage) and speed ratios to (a) and
(d). ``--profile`` adds where the time of (b) goes, stage by stage. The table goes to ``--out``
and stdout.
"""

from __future__ import annotations

import argparse
import gzip
import importlib
import json
import math
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import time
import zipfile
from collections import defaultdict
from collections.abc import Callable, Iterator
from importlib.metadata import version
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
DATA = HERE / "data"
DAYS = 60
NOTES = "<!-- notes: bench.py keeps everything below this line when it rewrites the file -->"
MODES = {
    "a": "floor: read + stdlib gunzip every member",
    "b": "calo-balance parse + checks (no workbook)",
    "c": "calo-balance full run (summary.json + workbook)",
    "d": "pandas baseline: regex per field, groupby().apply",
    "e": "calo-balance ingest --into (16 partitions) + report --from --workers 2 (no workbook)",
}
PARTITIONS = 16
#: The real export (issue 13's end-to-end target), beside the checkout as the tests expect it.
REAL_ARCHIVE = HERE.parent.parent / "shared" / "data" / "balance-sync-logs.zip"
REAL_RUNS = 5


# ---------------------------------------------------------------- the archive


def archive_for(raw_gb: float, seed: int, workers: int, data: Path = DATA) -> tuple[Path, dict[str, Any]]:
    """The cached archive of about ``raw_gb`` GB of log text, generated when missing."""
    from calo_polars.synth import SynthOptions, synthesize

    target = int(raw_gb * 1e9)
    path = data / f"synth-{raw_gb:g}gb-seed{seed}.zip"
    truth_path = path.with_name(path.name.replace(".zip", ".truth.json"))
    truth = json.loads(truth_path.read_text(encoding="utf-8")) if truth_path.exists() else {}
    if path.exists() and truth.get("archive", {}).get("raw_bytes", 0) >= target:
        print(f"reusing {path} ({truth['archive']['raw_bytes'] / 1e6:,.0f} MB of log text)", file=sys.stderr)
        return path, truth
    data.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:  # size a user-day from a small pilot
        pilot = synthesize(SynthOptions(users=100, days=DAYS, seed=seed, workers=1), Path(tmp) / "pilot.zip")
    users = max(1, math.ceil(target / (pilot.raw_bytes / 100) * 1.1))  # the pilot tends to overestimate
    for _ in range(3):  # the pilot's bytes per user are an estimate: grow until the target is met
        print(f"generating {path}: {users:,} users x {DAYS} days ...", file=sys.stderr)
        report = synthesize(SynthOptions(users=users, days=DAYS, seed=seed, workers=workers), path)
        if report.raw_bytes >= target:
            break
        users = math.ceil(users * target / report.raw_bytes * 1.02)
    truth = json.loads(truth_path.read_text(encoding="utf-8"))
    truth["generation"] = {"seconds": report.seconds, "raw_mb_per_s": report.raw_mb_per_s, "workers": workers}
    truth_path.write_text(json.dumps(truth, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    print(
        f"generated {report.raw_bytes / 1e6:,.0f} MB in {report.seconds:.1f} s ({report.raw_mb_per_s:.0f} MB/s)",
        file=sys.stderr,
    )
    return path, truth


def log_members(archive: Path) -> Iterator[tuple[str, bytes]]:
    """(name, gzip bytes) of every log member, in name order, macOS junk skipped."""
    with zipfile.ZipFile(archive) as zf:
        for name in sorted(zf.namelist()):
            if name.endswith(".gz") and not name.startswith("__MACOSX/"):
                yield name, zf.read(name)


# ---------------------------------------------------------------- the modes (run in a child)


def mode_floor(archive: Path, limit: int) -> dict[str, Any]:
    raw = files = 0
    for _, data in log_members(archive):
        raw += len(gzip.decompress(data))
        files += 1
    return {"raw_bytes": raw, "files": files}


def mode_check(archive: Path, limit: int) -> dict[str, Any]:
    from calo_polars import audit

    result = audit([archive])
    return {
        "raw_bytes": result.files.raw_total,
        "transactions": result.checked.height,
        "flags": result.flags.height,
    }


def mode_full(archive: Path, limit: int) -> dict[str, Any]:
    from calo_polars import audit
    from calo_polars.report.outputs import write_outputs

    out = Path(tempfile.mkdtemp(prefix="calo-bench-"))
    try:
        result = audit([archive])
        write_outputs(result, out)
        return {
            "raw_bytes": result.files.raw_total,
            "transactions": result.checked.height,
            "flags": result.flags.height,
        }
    finally:
        shutil.rmtree(out, ignore_errors=True)


def process_tree(pid: int) -> dict[int, tuple[int, int]]:
    """``pid`` and every process below it, now (from /proc): pid → (RSS bytes, CPU ticks)."""
    children: dict[int, list[int]] = defaultdict(list)
    facts: dict[int, tuple[int, int]] = {}
    page = os.sysconf("SC_PAGE_SIZE")
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            try:
                with open(f"/proc/{entry.name}/stat") as stat:
                    fields = (
                        stat.read().rsplit(")", 1)[1].split()
                    )  # fields[1]: parent; 11, 12: utime, stime; 21: RSS pages
            except OSError:
                continue
            children[int(fields[1])].append(int(entry.name))
            facts[int(entry.name)] = (int(fields[21]) * page, int(fields[11]) + int(fields[12]))
    tree, todo = {}, [pid]
    while todo:
        p = todo.pop()
        if p in facts:
            tree[p] = facts[p]
        todo.extend(children.get(p, []))
    return tree


class TreePeak:
    """Sampled in a thread while in the ``with``: the peak RSS of this process and every process
    below it together (pool workers), and the CPU time of those below it (last seen)."""

    def __init__(self, every: float = 0.02) -> None:
        self.every, self.peak, self._stop = every, 0.0, False
        self._cpu: dict[int, int] = {}

    def _sample(self) -> None:
        me = os.getpid()
        while not self._stop:
            tree = process_tree(me)
            self.peak = max(self.peak, sum(rss for rss, _ in tree.values()) / 2**20)
            self._cpu.update({p: ticks for p, (_, ticks) in tree.items() if p != me})
            time.sleep(self.every)

    @property
    def children_cpu_seconds(self) -> float:
        return sum(self._cpu.values()) / os.sysconf("SC_CLK_TCK")

    def __enter__(self) -> TreePeak:
        import threading

        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop = True
        self._thread.join()


def mode_parts(archive: Path, limit: int) -> dict[str, Any]:
    from calo_polars.partitioned.engines import Engine
    from calo_polars.partitioned.merge import audit_store
    from calo_polars.partitioned.store import ingest_into

    out = Path(tempfile.mkdtemp(prefix="calo-bench-store-"))
    try:
        with TreePeak() as peak:
            began = time.perf_counter()
            manifest = ingest_into([archive], out / "store", partitions=PARTITIONS)
            ingested = time.perf_counter()
            result = audit_store(out / "store", engine=Engine(workers=2))
            reported = time.perf_counter()
        store_bytes = sum(f.stat().st_size for f in (out / "store").rglob("*") if f.is_file())
        return {
            "raw_bytes": result.files.raw_total,
            "transactions": result.checked.height,
            "flags": result.flags.height,
            "tree_rss_mb": peak.peak,
            "children_cpu_seconds": peak.children_cpu_seconds,
            "ingest_seconds": ingested - began,
            "report_seconds": reported - ingested,
            "store_mb": store_bytes / 1e6,
            "partition_rows": manifest["counts"]["partition_rows"],
        }
    finally:
        shutil.rmtree(out, ignore_errors=True)


EVENT_START = re.compile(r"^(?=\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z )", re.M)
REQUEST = re.compile(r"^\S+ (?:\S+\t([^\t]+)\t|(?:START|END|REPORT) RequestId: (\S+))")
FIELDS = {
    name: re.compile(rf"^    {name}: (.*?),?$", re.M)
    for name in ("id", "type", "userId", "currency", "amount", "vat", "oldBalance", "newBalance", "metadata")
}
WALLET = re.compile(r'"walletId":"([^"]*)"')


def mode_pandas(archive: Path, limit: int) -> dict[str, Any]:
    """The usual way: regexes per invocation block, then pandas with groupby().apply."""
    import numpy as np
    import pandas as pd

    rows: list[dict[str, Any]] = []
    raw = files = 0
    for _, data in log_members(archive):
        text = gzip.decompress(data).decode("utf-8")
        raw += len(text.encode("utf-8"))
        files += 1
        blocks: dict[str, list[str]] = defaultdict(list)
        current = None
        for event in EVENT_START.split(text):
            m = REQUEST.match(event)
            if m:
                current = m.group(1) or m.group(2)
            blocks[current or ""].append(event)
        for events in blocks.values():  # one START…END block per request id
            block = "".join(events)
            for part in block.split("\tStart syncing the balance {")[1:]:
                tx = part.split("\n}\n", 1)[0]
                row = {k: (m.group(1).strip("'`") if (m := rx.search(tx)) else None) for k, rx in FIELDS.items()}
                row["ts"] = events[0][:24]
                rows.append(row)
        if raw >= limit:
            break
    df = pd.DataFrame(rows)
    for col in ("amount", "vat", "oldBalance", "newBalance"):
        df[col] = pd.to_numeric(df[col])
    df["ts"] = pd.to_datetime(df["ts"])
    df["wallet"] = df["metadata"].str.extract(WALLET.pattern, expand=False).fillna("wallet#" + df["userId"])
    df["tol"] = np.where(df["currency"].isin(["BHD", "KWD"]), 0.0005, 0.005) + 1e-9
    df["delta"] = df["newBalance"] - df["oldBalance"]
    sign = np.where(df["type"] == "DEBIT", -1, np.where(df["type"] == "CREDIT", 1, np.where(df["delta"] > 0, 1, -1)))
    df["mismatch"] = ((df["delta"] - sign * df["amount"]).abs() > df["tol"]) & (
        (df["delta"] - sign * (df["amount"] - df["vat"])).abs() > df["tol"]
    )
    df["overdraft"] = (df["oldBalance"] < -df["tol"]) | (df["newBalance"] < -df["tol"])

    def per_user(g: pd.DataFrame) -> pd.DataFrame:
        g = g.sort_values(["ts", "id"])
        next_old = g.groupby("wallet")["oldBalance"].shift(-1)
        previous = g["delta"].shift(1)
        mean = previous.rolling(30, min_periods=5).mean()
        std = previous.rolling(30, min_periods=5).std()
        distance = (g["delta"] - mean).abs()
        return pd.DataFrame(
            {
                "flow_break": next_old.notna() & ((next_old - g["newBalance"]).abs() > g["tol"]),
                "delta_anomaly": (distance > 3 * std) & (distance > g["tol"]),
            },
            index=g.index,
        )

    checks = df.groupby("userId", sort=False)[["ts", "id", "wallet", "oldBalance", "newBalance", "delta", "tol"]].apply(
        per_user
    )
    flags = int(
        df["mismatch"].sum() + df["overdraft"].sum() + checks["flow_break"].sum() + checks["delta_anomaly"].sum()
    )
    return {"raw_bytes": raw, "files": files, "transactions": len(df), "flags": flags}


RUNNERS: dict[str, Callable[[Path, int], dict[str, Any]]] = {
    "a": mode_floor,
    "b": mode_check,
    "c": mode_full,
    "d": mode_pandas,
    "e": mode_parts,
}
#: Imported before the clock starts: wall time is the work, not the interpreter's start-up.
PRELOAD = {"a": [], "b": ["calo_polars.audit.run"], "c": ["calo_polars.audit.run", "calo_polars.report.outputs"],
           "d": ["numpy", "pandas"],
           "e": ["calo_polars.partitioned.merge", "calo_polars.partitioned.store"]}  # fmt: skip


def child(mode: str, archive: Path, limit: int) -> None:
    for module in PRELOAD[mode]:
        importlib.import_module(module)
    began = time.perf_counter()
    result = RUNNERS[mode](archive, limit)
    result["seconds"] = time.perf_counter() - began
    result["peak_rss_mb"] = max(peak_rss_mb(), result.pop("tree_rss_mb", 0.0))
    print(json.dumps(result))


def peak_rss_mb() -> float:
    """This process's peak resident set (VmHWM). Unlike rusage's ru_maxrss, it is not inherited
    from the parent through fork and exec, so a big parent cannot inflate a child's number."""
    try:
        with open("/proc/self/status") as status:
            return next(int(line.split()[1]) / 1024 for line in status if line.startswith("VmHWM:"))
    except (OSError, StopIteration):
        import resource

        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def run_mode(mode: str, archive: Path, limit: int) -> dict[str, Any]:
    """Run one mode in a fresh interpreter; its CPU time comes from wait4's rusage."""
    cmd = [
        sys.executable,
        str(Path(__file__).resolve()),
        "--child",
        mode,
        "--archive",
        str(archive),
        "--limit",
        str(limit),
    ]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    out = proc.stdout.read()
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise SystemExit(f"mode {mode} failed with exit code {proc.returncode}")
    result = json.loads(out.strip().splitlines()[-1])
    # the whole process, imports included; (e)'s pool workers are not its waited-for children: sampled
    result["cpu_seconds"] = usage.ru_utime + usage.ru_stime + result.get("children_cpu_seconds", 0.0)
    return result


def real_end_to_end(archive: Path, runs: int = REAL_RUNS) -> list[dict[str, float]]:
    """``calo-balance report ARCHIVE`` as a user runs it (a fresh process: start-up, imports,
    the workbook and summary.json), ``runs`` times: wall and CPU seconds of each."""
    out = []
    with tempfile.TemporaryDirectory(prefix="calo-bench-real-") as tmp:
        for _ in range(runs):
            began = time.perf_counter()
            proc = subprocess.Popen([sys.executable, "-m", "calo_polars", "report", str(archive), "-o", tmp, "-q"])
            _, status, usage = os.wait4(proc.pid, 0)
            wall = time.perf_counter() - began
            if os.waitstatus_to_exitcode(status) not in (0, 3):
                raise SystemExit(f"the real-archive run failed with status {status}")
            out.append({"wall": wall, "cpu": usage.ru_utime + usage.ru_stime})  # (ru_maxrss: inherited through fork)
    return out


def real_lines(archive: Path, runs: list[dict[str, float]]) -> list[str]:
    walls = sorted(r["wall"] for r in runs)
    best = min(runs, key=lambda r: r["wall"])
    median = walls[len(walls) // 2]
    return [
        "",
        f"(r) the real archive end to end (`calo-balance report {archive.name}`: start-up, imports, workbook, "
        f"summary.json; {len(runs)} runs): best {best['wall']:.2f} s wall ({best['cpu']:.2f} CPU s), "
        f"median {median:.2f} s; target ≤ 1.5 s: " + ("met." if median <= 1.5 else "not met."),
    ]


# ---------------------------------------------------------------- profile of (b)


def profile_check(archive: Path) -> list[tuple[str, float]]:
    """Where (b)'s time goes: each stage of the pipeline timed by wrapping its function.

    Parsing stages run in worker threads, two batches at a time, and reading runs in its own
    threads beside them: their rows are thread-seconds summed over the threads (they add up
    to more than the wall time). The serial rows (after reading) are wall seconds.
    """
    from calo_polars.audit import run as audit_mod
    from calo_polars.parse import ingest, tokenize
    from calo_polars.read import sources

    spent: dict[str, float] = defaultdict(float)

    def timed(module: Any, name: str, label: str) -> None:
        original = getattr(module, name)

        def wrapper(*args: Any, **kwargs: Any) -> Any:
            began = time.perf_counter()
            try:
                return original(*args, **kwargs)
            finally:
                spent[label] += time.perf_counter() - began

        setattr(module, name, wrapper)

    parse = [
        (ingest, "events_of", "events: lines, heads, key/value pairs (C tokenizer, or the three Polars rows below)"),
        (tokenize, "lines_frame", "lines: split on \\n, explode (Polars)"),
        (tokenize, "split_events", "split_events: heads, fields by shape, kinds, request ids"),
        (tokenize, "key_values", "key_values: util.inspect key/value lines"),
        (ingest, "refine_objects", "refine_objects"),
        (ingest, "transactions", "transactions: pivot + typed columns"),
        (ingest, "notices", "notices"),
        (ingest, "invocations", "invocations"),
        (ingest, "unparsed", "unparsed"),
        (ingest, "_sample_blocks", "SampleRaw blocks"),
        (ingest, "mask_frame", "personal data masking"),
    ]
    serial = [
        (ingest, "drop_duplicates", "duplicates set aside (serial)"),
        (ingest, "user_ranges", "transactions split into user ranges (serial)"),
        (ingest, "add_notes", "notes → input problems (serial)"),
        (audit_mod, "ingest", "ingest wall time (reading and parsing overlap)"),
    ]
    for module, name, label in [*parse, *serial]:
        timed(module, name, label)
    timed(sources, "_load_all", "reading: zip + gunzip + clean (reader threads)")
    timed(ingest, "_read_texts", "parse workers, whole batch")
    timed(audit_mod, "check_partition", "checks")
    began = time.perf_counter()
    audit_mod.audit([archive])
    total = time.perf_counter() - began
    rows = [(f"{label} [thread-s]", spent[label]) for _, _, label in parse]
    rows.append(("parse workers, whole batch [thread-s]", spent["parse workers, whole batch"]))
    rows.append(
        (
            "reading: zip + gunzip + clean (reader threads) [thread-s]",
            spent["reading: zip + gunzip + clean (reader threads)"],
        )
    )
    rows += [(label, spent[label]) for _, _, label in serial]
    rows.append(("checks: with_checks + red_flags + per_user + flows per user range [thread-s]", spent["checks"]))
    rows.append(
        ("checks wall time (ranges two at a time, then flags/users/totals combined)", total - spent[serial[-1][2]])
    )
    rows.append(("total audit()", total))
    return rows


# ---------------------------------------------------------------- the report


def machine() -> str:
    mem = next(
        (
            int(line.split()[1]) / 1024**2
            for line in Path("/proc/meminfo").read_text().splitlines()
            if line.startswith("MemTotal")
        ),
        0.0,
    )
    cpu = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        platform.processor(),
    )
    versions = ", ".join(f"{p} {version(p)}" for p in ("polars", "pyarrow", "xlsxwriter", "pandas", "isal"))
    return f"{os.cpu_count()} cores ({cpu}), {mem:.1f} GiB RAM; Python {platform.python_version()}, {versions}"


def table(results: dict[str, dict[str, Any]], total_raw: int) -> list[str]:
    floor = results["a"]["raw_bytes"] / results["a"]["seconds"]
    base = results["d"]["raw_bytes"] / results["d"]["seconds"] if "d" in results else None
    lines = [
        "| mode | what | wall s | raw MB/s | transactions/s | peak RSS MB | CPU s | × floor speed | × pandas speed |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for mode, r in results.items():
        speed = r["raw_bytes"] / r["seconds"]
        wall = r["seconds"] * total_raw / r["raw_bytes"]
        scaled = "" if r["raw_bytes"] >= total_raw * 0.99 else f" (on {r['raw_bytes'] / 1e6:,.0f} MB, scaled)"
        tps = f"{r['transactions'] / r['seconds']:,.0f}" if r.get("transactions") else "–"
        ratio_d = f"{speed / base:.1f}" if base else "–"
        lines.append(
            f"| ({mode}) | {MODES[mode]} | {wall:,.1f}{scaled} | {speed / 1e6:,.1f} | {tps} | {r['peak_rss_mb']:,.0f} "
            f"| {r['cpu_seconds']:,.1f} | {speed / floor:.2f} | {ratio_d} |"
        )
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--raw-gb", type=float, default=1.0, help="size of the archive in GB of log text [1]")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--workers", type=int, default=2, help="generator processes [2]")
    parser.add_argument(
        "--baseline-mb", type=float, default=100, help="pandas baseline on at most this many MB, scaled [100]"
    )
    parser.add_argument("--modes", default="abcde", help="which modes to run [abcde]")
    parser.add_argument("--profile", action="store_true", help="also time each stage of (b)")
    parser.add_argument(
        "--also-gb", default="", help="more archive sizes (GB, comma-separated) for the floor and (b) only, e.g. 4"
    )
    parser.add_argument("--real", type=Path, default=REAL_ARCHIVE, help="the real export for row (r) [../shared]")
    parser.add_argument(
        "--note", default="", help="a line printed above the table (e.g. 'preliminary: shared machine')"
    )
    parser.add_argument("--out", type=Path, default=HERE / "RESULTS.md")
    parser.add_argument("--data", type=Path, default=DATA, help="where generated archives are cached [benchmarks/data]")
    parser.add_argument("--archive", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--limit", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        return child(args.child, args.archive, args.limit or 1 << 62)

    archive, truth = args.archive, None
    if archive is None:
        archive, truth = archive_for(args.raw_gb, args.seed, args.workers, args.data)
    results: dict[str, dict[str, Any]] = {}
    for mode in "abcde":
        if mode in args.modes or mode == "a":  # the floor is every ratio's denominator
            limit = int(args.baseline_mb * 1e6) if mode == "d" else 0
            print(f"running ({mode}) {MODES[mode]} ...", file=sys.stderr)
            results[mode] = run_mode(mode, archive, limit)
    total_raw = results["a"]["raw_bytes"]
    gen = (truth or {}).get("generation")
    lines = [
        "# Benchmark results",
        "",
        *([f"**{args.note}**", ""] if args.note else []),
        f"Archive: `{archive.name}`: {results['a']['files']:,} files, {total_raw / 1e6:,.0f} MB of log text, "
        f"{(truth or {}).get('archive', {}).get('transaction_blocks', results.get('b', {}).get('transactions', 0)):,} "
        "transaction blocks"
        + (
            f"; generated in {gen['seconds']:.0f} s ({gen['raw_mb_per_s']:.0f} MB/s of raw log, {gen['workers']} "
            "processes)."
            if gen
            else "."
        ),
        "",
        f"Machine: {machine()}.",
        "",
        "Wall time is the work inside a fresh interpreter (start-up and imports excluded); "
        "MB/s is raw (uncompressed) log text per second; peak RSS is the process's maximum resident set (for (e), of "
        "its process tree); CPU s is user + system time of the whole process (CPU s / wall s near 2 means both cores "
        "busy).",
        "",
        *table(results, total_raw),
    ]
    if "b" in results:
        floor = results["a"]["raw_bytes"] / results["a"]["seconds"]
        b = results["b"]["raw_bytes"] / results["b"]["seconds"]
        lines += ["", f"Targets (issue 3): (b) ≥ 30 % of the floor's MB/s: {100 * b / floor:.0f} %"]
        if "d" in results:
            lines[-1] += (
                f"; (b) ≥ 30× the pandas baseline: {b / (results['d']['raw_bytes'] / results['d']['seconds']):.0f}×"
            )
        lines[-1] += f"; peak RSS of (b): {results['b']['peak_rss_mb']:,.0f} MB at {total_raw / 1e9:.1f} GB raw."
    if "e" in results:
        e = results["e"]
        lines += [
            "",
            f"(e) in detail: ingest {e['ingest_seconds']:,.1f} s, report --from {e['report_seconds']:,.1f} s "
            f"({PARTITIONS} partitions of {min(e['partition_rows']):,}–{max(e['partition_rows']):,} transactions, 2 "
            f"workers); the store takes {e['store_mb']:,.1f} MB on disk ({100 * e['store_mb'] * 1e6 / total_raw:.1f} % "
            "of the raw log text); its peak RSS is the whole process tree's, its CPU s includes the pool workers' "
            "(sampled every 20 ms).",
        ]
    for gb in (float(g) for g in args.also_gb.split(",") if g.strip()):
        more, _ = archive_for(gb, args.seed, args.workers, args.data)
        extra = {}
        for mode in "ab":
            print(f"running ({mode}) at {gb:g} GB ...", file=sys.stderr)
            extra[mode] = run_mode(mode, more, 0)
        lines += ["", f"At {gb:g} GB (`{more.name}`, {extra['a']['raw_bytes'] / 1e6:,.0f} MB of log text):", ""]
        lines += table(extra, extra["a"]["raw_bytes"])
    if args.real.exists():
        print("running (r) the real archive end to end ...", file=sys.stderr)
        lines += real_lines(args.real, real_end_to_end(args.real))
    if args.profile:
        lines += ["", "## Where the time of (b) goes", "", "| stage | seconds |", "|---|---:|"]
        lines += [f"| {label} | {seconds:.2f} |" for label, seconds in profile_check(archive)]
    text = "\n".join(lines) + "\n"
    print(text)
    if args.out.exists() and NOTES in (old := args.out.read_text(encoding="utf-8")):
        text += "\n" + NOTES + old.split(NOTES, 1)[1]  # hand-written notes survive a rerun
    args.out.write_text(text, encoding="utf-8")


if __name__ == "__main__":
    main()
