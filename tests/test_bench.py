"""The benchmark script runs end to end (on a tiny archive), so it cannot rot; it times nothing here."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parents[1] / "benchmarks" / "bench.py"
SAMPLE = BENCH.parents[1] / "examples" / "sample-logs.zip"  # stands in for the real export in row (r)


def test_bench_runs_every_mode_and_writes_its_table(tmp_path: Path) -> None:
    out = tmp_path / "RESULTS.md"
    cmd = [sys.executable, str(BENCH), "--raw-gb", "0.002", "--baseline-mb", "1", "--data", str(tmp_path / "data"),
           "--workers", "1", "--profile", "--note", "tiny run", "--out", str(out), "--also-gb", "0.001",
           "--real", str(SAMPLE)]  # fmt: skip
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    text = out.read_text(encoding="utf-8")
    assert "**tiny run**" in text and "Machine: " in text and "polars " in text and "pandas " in text
    rows = [line for line in text.splitlines() if line.startswith("| (")]
    assert [row.split("|")[1].strip() for row in rows] == ["(a)", "(b)", "(c)", "(d)", "(e)", "(a)", "(b)"]
    assert "At 0.001 GB (`synth-0.001gb-seed7.zip`" in text  # the second size: floor and (b) only
    real = next(line for line in text.splitlines() if line.startswith("(r) the real archive end to end"))
    assert "sample-logs.zip" in real and "5 runs" in real and "target ≤ 1.5 s" in real
    assert "(e) in detail: ingest" in text and "store takes" in text
    assert "(on 1 MB, scaled)" in rows[3]  # the baseline ran on a subset
    assert "Targets (issue 3)" in text and "## Where the time of (b) goes" in text and "total audit()" in text
    assert list((tmp_path / "data").glob("synth-0.002gb-seed7.zip"))  # cached for the next run


def test_production_scenario_runs_both_stages_and_keeps_the_rest_of_results(tmp_path: Path) -> None:
    """benchmarks/production.py on a tiny "production": it generates, runs ingest --into and
    report --from as processes, finds every injected fault, and rewrites only its section."""
    import json

    out = tmp_path / "RESULTS.md"
    out.write_text("# Benchmark results\n\nkept above\n", encoding="utf-8")
    cmd = [sys.executable, str(BENCH.with_name("production.py")), "--users", "30", "--days", "4", "--partitions", "3",
           "--data", str(tmp_path / "data"), "--out", str(out)]  # fmt: skip
    for _ in range(2):  # the second run reuses the archive and replaces the section
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stderr
    text = out.read_text(encoding="utf-8")
    assert (
        text.startswith("# Benchmark results\n\nkept above\n")
        and text.count("## A production year on one machine") == 1
    )
    rows = [
        line
        for line in text.splitlines()
        if line.startswith("| 1.") or line.startswith("| 2.") or line.startswith("| both")
    ]
    assert len(rows) == 3 and "(store)" in rows[0]
    truth = json.loads(next((tmp_path / "data").glob("prod-30u-4d-seed11.truth.json")).read_text(encoding="utf-8"))
    found = text.split("Found: ", 1)[1].split("\n", 1)[0]
    for kind, label in [("overdraft", "overdraft events"), ("mismatch", "mismatches"), ("flow_break", "flow breaks")]:
        assert f"{truth['fault_counts'][kind]:,} {label}" in found
    assert "peak RSS" in text.split("Archive: ", 1)[1].split("\n", 1)[0]  # the generator's, measured at the first run
    store = tmp_path / "kept-store"
    done = subprocess.run([*cmd, "--store", str(store), "--stage1-only"], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    text = out.read_text(encoding="utf-8")
    assert (store / "manifest.json").is_file() and f"The store is kept at `{store}`" in text
    assert "not run (`--stage1-only`)" in text and text.count("## A production year on one machine") == 1
