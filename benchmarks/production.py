"""A production year on one machine: the two-stage pipeline at production scale.

    python benchmarks/production.py [--users 100000] [--days 365] [--seed 11]
                                    [--partitions 64] [--workers 2] [--format json]
                                    [--archive ZIP] [--store DIR] [--stage1-only]

Generates (or reuses, under ``--data``) a synthetic export of ``--users`` subscribers over
``--days`` days (the real Lambda: ≈100k subscribers, a nightly deduction each, plus
payments), then runs, each as its own ``calo-balance`` process:

  1. ``calo-balance ingest ARCHIVE --into STORE --partitions P``  (stage 1: parse → Parquet)
  2. ``calo-balance report --from STORE --workers N --format F``  (stage 2: checks per partition)

and measures for each: wall time, raw MB/s, transactions/s, peak RSS of the process tree
(sampled from /proc every 0.2 s: the parent and its pool workers summed) and of its biggest
process, CPU seconds, and the disk the store takes. The section between the PRODUCTION
markers of ``--out`` (benchmarks/RESULTS.md) is replaced by the table; the rest is kept.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from bench import DATA, machine  # noqa: E402  (benchmarks/ is a folder of scripts, not a package)

BEGIN = "<!-- production: benchmarks/production.py rewrites this section -->"
END = "<!-- /production -->"
FOUND = [
    "files",
    "users",
    "duplicate_transactions",
    "overdraft_events",
    "mismatches",
    "flow_breaks",
    "delta_anomalies",
    "input_problems",
]


def archive_for(users: int, days: int, seed: int, data: Path) -> tuple[Path, dict[str, Any]]:
    """The cached archive of ``users`` × ``days``, generated (timed, its peak RSS sampled) when missing.

    What this reports of the archive is the head of its ground truth (``truth_head``: a year's
    truth lists 30 M ids and is never loaded whole) plus ``<name>.generation.json`` beside it."""
    path = data / f"prod-{users}u-{days}d-seed{seed}.zip"
    truth_path = path.with_name(path.name.replace(".zip", ".truth.json"))
    generation = path.with_name(path.name.replace(".zip", ".generation.json"))
    if not path.exists() or not truth_path.exists():
        data.mkdir(parents=True, exist_ok=True)
        print(f"generating {path} ...", file=sys.stderr)
        cli = [sys.executable, "-m", "calo_polars", "synth", "-o", str(path)]
        result = run([*cli, "--users", str(users), "--days", str(days), "--seed", str(seed)])
        if result["exit"] != 0:
            raise SystemExit(f"synth failed with exit code {result['exit']}")
        generation.write_text(json.dumps(result) + "\n", encoding="utf-8")
    truth = truth_head(truth_path)
    if generation.exists():
        truth["generation"] = json.loads(generation.read_text(encoding="utf-8"))
    return path, truth


def truth_head(path: Path) -> dict[str, Any]:
    """The ground truth's small leading fields (options, archive counts), read from its first bytes."""
    if not path.exists():
        return {}
    with open(path, encoding="utf-8") as f:
        head = f.read(1 << 20)
    out = {}
    for key in ("options", "archive"):
        at = head.find(f'"{key}": {{')
        if at >= 0:
            out[key], _ = json.JSONDecoder().raw_decode(head, at + len(f'"{key}": '))
    return out


def load() -> str:
    """The load averages (1, 5, 15 min): others may be running on this machine."""
    return " ".join(f"{x:.1f}" for x in os.getloadavg())


def _tree_rss(root: int) -> tuple[int, int]:
    """(sum, max) of VmRSS in bytes over ``root`` and every descendant."""
    children: dict[int, list[int]] = {}
    rss: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/status") as status:
                fields = dict(line.split(":", 1) for line in status if ":" in line)
        except OSError:
            continue
        pid = int(entry)
        children.setdefault(int(fields.get("PPid", "0").strip()), []).append(pid)
        rss[pid] = int(fields.get("VmRSS", "0 kB").split()[0]) * 1024
    total = biggest = 0
    stack = [root]
    while stack:
        pid = stack.pop()
        total += rss.get(pid, 0)
        biggest = max(biggest, rss.get(pid, 0))
        stack += children.get(pid, [])
    return total, biggest


def run(cmd: list[str]) -> dict[str, Any]:
    """Run one stage; its wall time, CPU time (wait4, children included) and peak tree RSS."""
    print("$", " ".join(cmd), file=sys.stderr)
    before = load()
    began = time.perf_counter()
    proc = subprocess.Popen(cmd)
    peak = {"sum": 0, "max": 0}
    done = threading.Event()

    def sample() -> None:
        while not done.wait(0.2):
            total, biggest = _tree_rss(proc.pid)
            peak["sum"], peak["max"] = max(peak["sum"], total), max(peak["max"], biggest)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    _, status, usage = os.wait4(proc.pid, 0)
    seconds = time.perf_counter() - began
    done.set()
    sampler.join()
    code = os.waitstatus_to_exitcode(status)
    result = {
        "seconds": seconds,
        "cpu": usage.ru_utime + usage.ru_stime,
        "rss_sum": peak["sum"],
        "rss_max": peak["max"],
        "exit": code,
        "load": f"{before} → {load()}",
    }
    print(json.dumps(result), file=sys.stderr)  # kept in the log even if a later stage fails
    return result


def disk_bytes(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--users", type=int, default=100_000)
    parser.add_argument("--days", type=int, default=365)
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument("--partitions", type=int, default=64)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--format", default="json", help="report formats [json: summary.json only]")
    parser.add_argument("--archive", type=Path, help="an existing archive instead of generating one")
    parser.add_argument("--work", type=Path, default=None, help="where the store and report go [a temporary folder]")
    parser.add_argument("--store", type=Path, help="write the store here and keep it (for stage 2 runs later)")
    parser.add_argument("--stage1-only", action="store_true", help="ingest only (stage 2 is measured separately)")
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--out", type=Path, default=HERE / "RESULTS.md")
    args = parser.parse_args()

    if args.archive:
        archive = args.archive
        truth = truth_head(args.archive.with_name(args.archive.name.replace(".zip", ".truth.json")))
    else:
        archive, truth = archive_for(args.users, args.days, args.seed, args.data)
    work = Path(tempfile.mkdtemp(prefix="calo-prod-", dir=args.work))
    store, report = args.store or work / "store", work / "report"
    calo = [sys.executable, "-m", "calo_polars"]
    summary: dict[str, Any] = {}
    checks: dict[str, Any] | None = None
    try:
        ingest = run([*calo, "ingest", str(archive), "--into", str(store), "--partitions", str(args.partitions), "-q"])
        if ingest["exit"] != 0:
            raise SystemExit(f"ingest failed with exit code {ingest['exit']}")
        ingest["disk"] = disk_bytes(store)
        manifest = json.loads((store / "manifest.json").read_text(encoding="utf-8"))
        summary = {"transactions": manifest["counts"]["transactions"], "files": manifest["counts"]["files"]}
        if not args.stage1_only:
            checks = run(
                [
                    *calo,
                    "report",
                    "--from",
                    str(store),
                    "-o",
                    str(report),
                    "--workers",
                    str(args.workers),
                    "--format",
                    args.format,
                    "-q",
                ]
            )
            if checks["exit"] in (0, 3):  # 3: --fail-on triggered, still a finished run
                checks["disk"] = disk_bytes(report)
                summary = json.loads((report / "summary.json").read_text(encoding="utf-8"))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    write(args, archive, truth, summary, ingest, checks)
    if checks is not None and checks["exit"] not in (0, 3):
        raise SystemExit(f"report --from failed with exit code {checks['exit']} (-9: killed, e.g. out of memory)")


def write(
    args: argparse.Namespace,
    archive: Path,
    truth: dict[str, Any],
    summary: dict[str, Any],
    ingest: dict[str, Any],
    checks: dict[str, Any] | None,
) -> None:
    raw = int(truth.get("archive", {}).get("raw_bytes", 0)) or archive.stat().st_size  # log text, from the ground truth
    tx = int(summary.get("transactions", 0))
    gen = truth.get("generation", {})
    finished = checks is not None and checks["exit"] in (0, 3)

    def row(name: str, r: dict[str, Any], disk: str) -> str:
        return (
            f"| {name} | {r['seconds']:,.0f} | {raw / 1e6 / r['seconds']:,.1f} | {tx / r['seconds']:,.0f} "
            f"| {r['rss_sum'] / 1e6:,.0f} | {r['rss_max'] / 1e6:,.0f} | {r['cpu']:,.0f} | {disk} "
            f"| {r.get('load', '')} |"
        )

    stage2 = f"2. `report --from --workers {args.workers} --format {args.format}`"
    rows = [row(f"1. `ingest --into` ({args.partitions} partitions)", ingest, f"{ingest['disk'] / 1e6:,.0f} (store)")]
    if checks is None:
        rows.append(f"| {stage2} | not run (`--stage1-only`) | | | | | | | |")
    elif not finished:
        rows.append(
            f"| {stage2} | **failed, exit {checks['exit']}** after {checks['seconds']:,.0f} s | | | "
            f"{checks['rss_sum'] / 1e6:,.0f} | {checks['rss_max'] / 1e6:,.0f} | {checks['cpu']:,.0f} | – | "
            f"{checks.get('load', '')} |"
        )
    else:
        whole = {
            "seconds": ingest["seconds"] + checks["seconds"],
            "cpu": ingest["cpu"] + checks["cpu"],
            "rss_sum": max(ingest["rss_sum"], checks["rss_sum"]),
            "rss_max": max(ingest["rss_max"], checks["rss_max"]),
        }
        rows += [row(stage2, checks, f"{checks['disk'] / 1e6:,.1f} (report)"), row("both stages", whole, "–")]
    generated = ""
    if gen:
        generated = (
            f"; generated in {gen['seconds'] / 60:,.1f} min"
            + (f", peak RSS {gen['rss_sum'] / 1e6:,.0f} MB (tree)" if "rss_sum" in gen else "")
            + (f", load {gen['load']}" if "load" in gen else "")
        )
    store = f" The store is kept at `{args.store}`." if args.store else ""
    users, days = truth.get("options", {}).get("users", args.users), truth.get("options", {}).get("days", args.days)
    lines = [
        BEGIN,
        "## A production year on one machine (issues 7 and 14)",
        "",
        f"Archive: `{archive.name}`: {users:,} users × {days} days, {archive.stat().st_size / 1e9:,.2f} GB "
        f"zipped, {raw / 1e9:,.2f} GB of log text, {truth.get('archive', {}).get('files', 0):,} files, {tx:,} "
        f"transactions{generated}.{store}",
        "",
        f"Machine: {machine()}. Command: `python benchmarks/production.py "
        + (f"--archive {archive} " if args.archive else f"--users {args.users} --days {args.days} ")
        + f"--partitions {args.partitions} --workers {args.workers} --format {args.format}"
        + (" --stage1-only" if checks is None else "")
        + "`. Load: the 1/5/15-minute load averages before → after each stage (2 cores; others ran beside it).",
        "",
        "| stage | wall s | raw MB/s | transactions/s | peak RSS MB (tree) | peak RSS MB (biggest process) | CPU s | "
        "disk MB | load |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---|",
        *rows,
        "",
        "Found: " + ", ".join(f"{summary.get(k, 0):,} {k.replace('_', ' ')}" for k in FOUND) + "."
        if finished
        else f"Stored: {summary.get('files', 0):,} files, {tx:,} transactions.",
        END,
    ]
    section = "\n".join(lines) + "\n"
    print(section)
    old = args.out.read_text(encoding="utf-8") if args.out.exists() else ""
    if BEGIN in old and END in old:
        head, rest = old.split(BEGIN, 1)
        text = head + section + rest.split(END, 1)[1].lstrip("\n")
    else:
        text = old.rstrip("\n") + "\n\n" + section
    args.out.write_text(text, encoding="utf-8")


if __name__ == "__main__":
    main()
