"""Reliability, second round (issue 16): interruptions, full disks, option values, damaged
state and store, a shared or misplaced state, hostile inputs, far-off time stamps, text that
reaches a spreadsheet and personal data in other shapes. Each test makes its input, checks
the one line and the exit code, and that nothing else was lost or changed."""

from __future__ import annotations

import errno
import fcntl
import io
import itertools
import json
import os
import signal
import subprocess
import sys
import time
import zipfile
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from calo_polars.audit import state as state_file
from calo_polars.cli.main import cli
from calo_polars.problems import printable
from calo_polars.report import outputs
from calo_polars.report.text import chart_text, sheet_name, xml_text
from tests.harness import assert_nothing_else_lost, assert_problem, good_files, good_log, ingest, report
from tests.logbuilder import Log, full_tx, rid, uid

ROOT = Path(__file__).resolve().parents[1]


def cli_env(**extra: str) -> dict[str, str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "TTY_COMPATIBLE": "0", **extra}
    env.pop("COLUMNS", None)
    return env


def snapshot(folder: Path) -> dict[str, bytes]:
    """Every entry of a folder (hidden ones too) with its bytes: what must not change."""
    return {p.name: (p.read_bytes() if p.is_file() else b"<dir>") for p in sorted(folder.iterdir())}


def dead_pid() -> int:
    """The id of a process that has just ended (what a kill -9'd run leaves in its temporaries' names)."""
    child = subprocess.Popen(["true"])
    child.wait()
    return child.pid


@pytest.fixture(scope="module")
def archive(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A synthetic export big enough that a run takes a few seconds (an interrupt lands mid-run)."""
    path = tmp_path_factory.mktemp("synth") / "logs.zip"
    result = CliRunner().invoke(cli, ["synth", "-o", str(path), "--users", "300", "--days", "20", "-q"])
    assert result.exit_code == 0, result.output
    return path


def stderr_lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.strip()]


# ---------------------------------------------------------------- 1. interruptions


def handler_installed(pid: int, signum: int) -> bool:
    """Whether the process catches ``signum`` (its SigCgt mask in /proc): the CLI's handlers are in."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return False
    mask = next(int(line.split()[1], 16) for line in status.splitlines() if line.startswith("SigCgt:"))
    return bool(mask >> (signum - 1) & 1)


def wait_for(condition: Any, process: subprocess.Popen[bytes], what: str) -> None:
    """Poll until ``condition()`` (not a timing: the run is stopped wherever it then is)."""
    deadline = time.monotonic() + 120
    while not condition():
        assert process.poll() is None, f"the run ended before {what}"
        assert time.monotonic() < deadline, f"no {what} in 120 s"
        time.sleep(0.005)


@pytest.mark.parametrize(
    ("signum", "code", "name", "when"),
    [
        (signal.SIGINT, 130, "SIGINT (Ctrl-C)", "reading"),
        (signal.SIGTERM, 143, "SIGTERM", "reading"),
        (signal.SIGINT, 130, "SIGINT (Ctrl-C)", "writing"),
        (signal.SIGTERM, 143, "SIGTERM", "writing"),
    ],
)
def test_a_signal_is_one_line_its_own_exit_code_and_leaves_the_previous_outputs(
    archive: Path, tmp_path: Path, signum: int, code: int, name: str, when: str
) -> None:
    out = tmp_path / "out"
    state = tmp_path / "state.zip"
    first = report(tmp_path, *good_files(tmp_path), args=("-f", "xlsx,csv,parquet", "--state", str(state)))
    assert first.exit_code == 0
    before, state_before = snapshot(out), state.read_bytes()
    args = ["report", str(archive), "-o", str(out), "-f", "xlsx,csv,parquet", "--state", str(state)]
    run = subprocess.Popen(
        [sys.executable, "-m", "calo_polars", *args], env=cli_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    wait_for(lambda: handler_installed(run.pid, signal.SIGTERM), run, "signal handler")  # only the CLI sets it
    if when == "writing":
        wait_for(lambda: any(out.glob(".calo-outputs-*.tmp")), run, "staging folder")
    run.send_signal(signum)
    stdout, stderr = run.communicate(timeout=300)
    lines = stderr_lines(stderr.decode())
    assert run.returncode == code, lines
    assert lines == [
        f"calo-balance: interrupted by {name}: stopped; temporary files removed, the earlier outputs and state kept "
        f"(exit {code})"
    ]
    assert stdout == b""
    assert snapshot(out) == before  # no temporaries, the previous run's outputs whole
    assert state.read_bytes() == state_before
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []


def test_kill_9_while_writing_leaves_the_previous_outputs_and_the_next_run_cleans_up(
    archive: Path, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    first = report(tmp_path, *good_files(tmp_path), args=("-f", "xlsx,csv"))
    assert first.exit_code == 0
    before = snapshot(out)
    run = subprocess.Popen(
        [sys.executable, "-m", "calo_polars", "report", str(archive), "-o", str(out), "-f", "xlsx,csv"],
        env=cli_env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    # killed once the workbook is staged and the tables are being written: a workbook without its summary
    wait_for(lambda: any(out.glob(".calo-outputs-*.tmp/calo_balance_reports.xlsx")), run, "staged workbook")
    run.kill()
    run.wait()
    left = [p.name for p in out.iterdir() if p.name.startswith(".")]
    assert len(left) == 1 and left[0].startswith(".calo-outputs-")  # only the staging folder
    assert {k: v for k, v in snapshot(out).items() if not k.startswith(".")} == before  # nothing new in place
    again = report(tmp_path, *good_files(tmp_path), args=("-f", "xlsx,csv"))
    assert again.exit_code == 0
    assert snapshot(out).keys() == before.keys()  # the staging folder is gone
    assert_nothing_else_lost(again)


def test_stale_temporaries_of_a_killed_run_are_removed_by_the_next(tmp_path: Path) -> None:
    out, store, state = tmp_path / "out", tmp_path / "store", tmp_path / "state.zip"
    out.mkdir()
    gone = dead_pid()
    stale = [
        out / f".calo_balance_reports-{gone}-a1b2c3d4.xlsx.tmp",
        out / f".summary-{gone}-x.json.tmp",
        out / f".transactions-{gone}-x.csv.tmp",
        out / ".calo_balance_reports-oldname1.xlsx.tmp",  # an older version's name: removed by its age
        out / f".calo-outputs-{gone}-zz.tmp",
        tmp_path / f".store-{gone}-q.tmp",
        tmp_path / f".state-{gone}-k.zip.tmp",
    ]
    for path in stale:
        if path.name.startswith((".calo-outputs", ".store")):
            path.mkdir()
            (path / "half.parquet").write_bytes(b"PAR1")
        else:
            path.write_bytes(b"half")
    os.utime(stale[3], (time.time() - 7200, time.time() - 7200))
    live = out / f".calo_balance_reports-{os.getppid()}-live.xlsx.tmp"  # a running process's: kept
    live.write_bytes(b"being written")
    good = good_files(tmp_path)
    assert report(tmp_path, *good, args=("--state", str(state))).exit_code == 0
    assert ingest(tmp_path, *good)[0] == 0
    assert [p for p in stale if p.exists()] == []
    assert live.exists()
    assert store.is_dir() and state.is_file()


def test_a_run_killed_while_renaming_is_finished_by_the_next(tmp_path: Path) -> None:
    """A staging folder with its COMMIT list: every file was written, so the renames are finished."""
    out = tmp_path / "out"
    out.mkdir()
    (out / "summary.json").write_text('{"old": true}')
    stage = out / f".calo-outputs-{dead_pid()}-c.tmp"
    stage.mkdir()
    (stage / "summary.json").write_text('{"new": true}')
    (stage / "users.csv").write_text("user_id\n")
    (stage / "COMMIT").write_text("users.csv\nsummary.json\n")
    outputs.recover(out)
    assert snapshot(out) == {"summary.json": b'{"new": true}', "users.csv": b"user_id\n"}


# ---------------------------------------------------------------- 2. full disks and size limits


def limited_run(args: list[str], blocks: int, tmp: Path) -> subprocess.CompletedProcess[str]:
    """The CLI with ``ulimit -f blocks`` (1 KiB blocks), SIGXFSZ ignored: writes fail with EFBIG."""
    command = f'trap \'\' XFSZ; ulimit -f {blocks}; exec "$0" -m calo_polars "$@"'
    return subprocess.run(
        ["bash", "-c", command, sys.executable, *args],
        env=cli_env(TMPDIR=str(tmp)),
        capture_output=True,
        text=True,
        timeout=600,
    )


@pytest.mark.parametrize(
    ("what", "blocks", "formats", "message"),
    [
        ("spill", 4, "json", "cannot write the spill file (temporary tables, in {tmp}; set TMPDIR"),
        ("workbook", 640, "xlsx", "cannot write into {out}: calo_balance_reports.xlsx: File too large"),
        ("tables", 640, "csv", "cannot write into {out}: transactions.csv: File too large"),
    ],
)
def test_file_size_limit_is_one_line_exit_2_and_the_earlier_outputs_and_state_stay(
    archive: Path, tmp_path: Path, what: str, blocks: int, formats: str, message: str
) -> None:
    out, state, tmp = tmp_path / "out", tmp_path / "state.zip", tmp_path / "tmp"
    tmp.mkdir()
    first = report(tmp_path, *good_files(tmp_path), args=("-f", "xlsx,csv", "--state", str(state)))
    assert first.exit_code == 0
    before, state_before = snapshot(out), state.read_bytes()
    big = ["--full-ledger"] if what == "workbook" else []  # a workbook bigger than the spill file
    done = limited_run(
        ["report", str(archive), "-o", str(out), "-f", formats, "--state", str(state), *big], blocks, tmp
    )
    lines = stderr_lines(done.stderr)
    assert done.returncode == 2, done.stderr
    assert len(lines) == 1 and lines[0].startswith("calo-balance: "), lines
    assert message.format(out=out, tmp=tmp) in lines[0]
    assert snapshot(out) == before
    assert state.read_bytes() == state_before
    assert list(tmp.iterdir()) == []


def test_file_size_limit_on_the_store_is_one_line_and_the_older_store_stays(archive: Path, tmp_path: Path) -> None:
    code, _, store = ingest(tmp_path, *good_files(tmp_path))
    assert code == 0
    before = snapshot(store)
    done = limited_run(["ingest", str(archive), "--into", str(store)], 64, tmp_path)
    lines = stderr_lines(done.stderr)
    assert done.returncode == 2 and len(lines) == 1, done.stderr
    assert lines[0].startswith(f"calo-balance: cannot write the store {store}: ") and "File too large" in lines[0]
    assert snapshot(store) == before
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []


@pytest.mark.parametrize("code", [errno.ENOSPC, errno.EDQUOT, errno.EFBIG])
@pytest.mark.parametrize("where", ["state", "summary", "parquet"])
def test_a_full_disk_anywhere_is_one_line_and_exit_2(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, code: int, where: str
) -> None:
    state = tmp_path / "state.zip"
    good = good_files(tmp_path)
    first = report(tmp_path, *good, args=("-f", "xlsx,parquet", "--state", str(state)))
    assert first.exit_code == 0
    before, state_before = snapshot(first.out), state.read_bytes()
    full = OSError(code, os.strerror(code))

    def fail(*args: Any, **kwargs: Any) -> None:
        raise full

    if where == "state":
        monkeypatch.setattr(state_file, "to_bytes", lambda s: (_ for _ in ()).throw(full))
    elif where == "summary":
        monkeypatch.setattr(outputs, "write_bytes", fail)
    else:
        import pyarrow.parquet as pq

        monkeypatch.setattr(pq.ParquetWriter, "write_table", fail)  # every Parquet file is written part by part
    run = report(tmp_path, *good, args=("-f", "xlsx,parquet", "--state", str(state)))
    lines = stderr_lines(run.stderr)
    assert run.exit_code == 2 and len(lines) == 1, run.stderr
    named = {"state": f"the state file {state}", "summary": "summary.json", "parquet": ".parquet"}[where]
    assert named in lines[0] and os.strerror(code) in lines[0]
    assert snapshot(first.out) == before
    assert state.read_bytes() == state_before


# ---------------------------------------------------------------- 3. option values

BAD_NUMBERS = ["nan", "NaN", "inf", "-inf", "infinity", "1e400"]
NUMERIC_OPTIONS: dict[str, list[tuple[str, list[str]]]] = {
    "report": [
        ("--tolerance", [*BAD_NUMBERS, "-0.1", "1e7", "x"]),
        ("--sigma", [*BAD_NUMBERS, "0", "-1", "1e7"]),
        ("--window", [*BAD_NUMBERS, "1", "2.5", "1e30"]),
        ("--min-history", [*BAD_NUMBERS, "1", "99999999"]),
        ("--threads", [*BAD_NUMBERS, "0", "100000"]),
        ("--max-ratio", [*BAD_NUMBERS, "0.5", "1e13"]),
        ("--max-total-bytes", ["nan", "inf", "0", "99999999T"]),
        ("--workers", [*BAD_NUMBERS, "0", "99999"]),
    ],
    "ingest": [("--partitions", [*BAD_NUMBERS, "0", "65536"]), ("--threads", ["nan", "0"]), ("--max-ratio", ["inf"])],
    "synth": [
        ("--users", [*BAD_NUMBERS, "0", "1e12"]),
        ("--days", [*BAD_NUMBERS, "0", "99999"]),
        ("--seed", [*BAD_NUMBERS, "1.5", str(1 << 64)]),
        ("--overdraft-rate", [*BAD_NUMBERS, "-0.1", "1.5"]),
        ("--out-of-order", ["nan", "2"]),
        ("--workers", ["inf", "0"]),
    ],
}
CASES = [(cmd, opt, value) for cmd, opts in NUMERIC_OPTIONS.items() for opt, values in opts for value in values]


@pytest.mark.parametrize(("command", "option", "value"), CASES)
def test_every_numeric_option_refuses_nan_infinity_and_out_of_range(
    tmp_path: Path, command: str, option: str, value: str
) -> None:
    [good] = good_files(tmp_path, 1)
    where = {"report": ["-o", str(tmp_path / "out")], "ingest": ["--into", str(tmp_path / "out")]}
    args = [command, *([str(good)] if command != "synth" else []), *where.get(command, ["-o", str(tmp_path / "out")])]
    if option == "--workers" and command == "report":
        args += ["--from", str(tmp_path / "store")]
        args.remove(str(good))
    result = CliRunner().invoke(cli, [*args, f"{option}={value}"])
    assert result.exit_code == 2, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)
    errors = [line for line in result.stderr.splitlines() if line.startswith("Error:")]
    assert stderr_lines(result.stderr) == errors, result.stderr  # one line, no usage text around it
    assert len(errors) == 1 and errors[0].startswith(f"Error: Invalid value for '{option}'"), result.stderr
    assert errors[0].endswith(f" {command} --help)")  # (see calo-balance report --help)
    assert "Traceback" not in result.stderr and "panicked" not in result.stderr
    assert not (tmp_path / "out").exists()


def test_good_numeric_values_still_work(tmp_path: Path) -> None:
    good = good_files(tmp_path)
    args = ("--tolerance", "0.001", "--sigma", "2.5", "--window", "10", "--min-history", "3", "--max-ratio", "50")
    run = report(tmp_path, *good, args=args)
    assert run.exit_code == 0, run.stderr
    assert_nothing_else_lost(run)


# ---------------------------------------------------------------- 4. damaged state and store


def rewrite_state(path: Path, change: Any) -> None:
    """Rewrite state.json inside a state file with ``change(header)``; the tables are kept."""
    with zipfile.ZipFile(path) as zf:
        parts = {n: zf.read(n) for n in zf.namelist()}
    header = json.loads(parts["state.json"])
    parts["state.json"] = json.dumps(change(header)).encode()
    with zipfile.ZipFile(path, "w") as zf:
        for name, data in parts.items():
            zf.writestr(name, data)


def setting(key: str, value: Any) -> Any:
    return lambda header: {**header, key: value}


@pytest.mark.parametrize(
    ("change", "says"),
    [
        (setting("runs", "many"), 'state.json\'s runs is "many", not a count'),
        (setting("runs", None), "state.json's runs is null, not a count"),
        (setting("runs", -3), "state.json's runs is -3, not a count"),
        (setting("runs", True), "state.json's runs is true, not a count"),
        (setting("tool_version", 7), "state.json's tool_version is 7"),
        (setting("check_options", None), "state.json records no check options"),
        (setting("check_options", "fast"), "state.json records no check options"),
        (setting("check_options", {"sigma": 3}), "state.json records no check options"),
        (lambda h: None, "not a calo-balance state file"),
        (lambda h: [1, 2], "not a calo-balance state file"),
    ],
)
def test_a_state_of_the_right_keys_and_wrong_types_is_one_line_and_changes_nothing(
    tmp_path: Path, change: Any, says: str
) -> None:
    state = tmp_path / "state.zip"
    good = good_files(tmp_path)
    assert report(tmp_path, good[0], args=("--state", str(state)), out="first").exit_code == 0
    rewrite_state(state, change)
    damaged = state.read_bytes()
    run = report(tmp_path, good[1], args=("--state", str(state)))
    lines = stderr_lines(run.stderr)
    assert run.exit_code == 2 and len(lines) == 1, run.stderr
    assert lines[0].startswith(f"calo-balance: cannot read the state file {state}: ") and says in lines[0], lines
    assert state.read_bytes() == damaged and not run.out.exists()


def test_a_state_table_with_empty_keys_is_one_line(tmp_path: Path) -> None:
    import polars as pl

    state = tmp_path / "state.zip"
    good = good_files(tmp_path)
    assert report(tmp_path, good[0], args=("--state", str(state)), out="first").exit_code == 0
    with zipfile.ZipFile(state) as zf:
        parts = {n: zf.read(n) for n in zf.namelist()}
    seen = pl.read_parquet(io.BytesIO(parts["seen.parquet"])).with_columns(tx_id=pl.lit(None, pl.String))
    buffer = io.BytesIO()
    seen.write_parquet(buffer)
    parts["seen.parquet"] = buffer.getvalue()
    with zipfile.ZipFile(state, "w") as zf:
        for name, data in parts.items():
            zf.writestr(name, data)
    run = report(tmp_path, good[1], args=("--state", str(state)))
    assert run.exit_code == 2 and "its seen table has empty tx_id values" in run.stderr
    assert len(stderr_lines(run.stderr)) == 1


@pytest.mark.parametrize(
    ("key", "value", "says"),
    [
        ("partitions", "x", 'manifest.json\'s partitions is "x", not a count from 1 to 65535'),
        ("partitions", None, "manifest.json's partitions is null"),
        ("partitions", 0, "manifest.json's partitions is 0"),
        ("partitions", 1e9, "manifest.json's partitions is 1000000000.0"),
        ("inputs", "logs.zip", 'manifest.json\'s inputs is "logs.zip", not a list of paths'),
        ("skipped", [1], "manifest.json's skipped is [1], not counts by name"),
        ("kind_counts", {"start": "many"}, "manifest.json's kind_counts is"),
        ("options", None, "manifest.json's options is null"),
        ("options", {"mask_pii": "yes", "sample_size": 200}, 'manifest.json\'s options.mask_pii is "yes"'),
        ("options", {"mask_pii": True, "sample_size": -1}, "manifest.json's options.sample_size is -1"),
    ],
)
def test_a_store_manifest_of_wrong_types_is_one_line_and_exit_2(
    tmp_path: Path, key: str, value: Any, says: str
) -> None:
    code, _, store = ingest(tmp_path, *good_files(tmp_path))
    assert code == 0
    manifest = json.loads((store / "manifest.json").read_text())
    (store / "manifest.json").write_text(json.dumps({**manifest, key: value}))
    before = snapshot(store)
    run = report(tmp_path, args=("--from", str(store)))
    lines = stderr_lines(run.stderr)
    assert run.exit_code == 2 and len(lines) == 1, run.stderr
    assert says in lines[0] and lines[0].startswith(f"calo-balance: {store} is a damaged store: ")
    assert snapshot(store) == before and not run.out.exists()
    for flag in ("--show-pii",):  # the early check of --from --show-pii reads the manifest too
        run = report(tmp_path, args=("--from", str(store), flag))
        assert run.exit_code == 2 and len(stderr_lines(run.stderr)) == 1, run.stderr


# ---------------------------------------------------------------- 5. state in the wrong place, or shared


@pytest.mark.parametrize("inside", ["folder", "same file"])
def test_a_state_file_inside_an_input_is_refused(tmp_path: Path, inside: str) -> None:
    logs = tmp_path / "logs"
    logs.mkdir()
    for i, path in enumerate(good_files(tmp_path)):
        (logs / f"{i}.gz").write_bytes(path.read_bytes())
    state = logs / "calo.state" if inside == "folder" else logs / "0.gz"
    before = snapshot(logs)
    run = report(tmp_path, logs, args=("--state", str(state)))
    lines = stderr_lines(run.stderr)
    assert run.exit_code == 2 and len(lines) == 1, run.stderr
    assert lines[0] == (
        f"calo-balance: the state file {state} is inside the input {logs}: keep it outside the logs "
        "(the next run would read it as a log)"
    )
    assert snapshot(logs) == before and not run.out.exists()


def test_a_second_run_on_a_locked_state_stops_with_one_line(tmp_path: Path) -> None:
    state = tmp_path / "state.zip"
    good = good_files(tmp_path)
    assert report(tmp_path, good[0], args=("--state", str(state)), out="first").exit_code == 0
    before = state.read_bytes()
    with open(state_file.lock_path(state), "a") as held:  # another run holds the lock
        fcntl.flock(held, fcntl.LOCK_EX)
        run = report(tmp_path, good[1], args=("--state", str(state)))
    lines = stderr_lines(run.stderr)
    assert run.exit_code == 2 and len(lines) == 1, run.stderr
    assert lines[0] == (
        f"calo-balance: another calo-balance run is using the state file {state} (it holds {state}.lock): "
        "wait for it to finish, then run again"
    )
    assert state.read_bytes() == before and not run.out.exists()
    again = report(tmp_path, good[1], args=("--state", str(state)))  # once released, the run goes on
    assert again.exit_code == 0 and again.summary["transactions"] == 1


def test_two_runs_at_once_on_one_state_never_both_write_it(archive: Path, tmp_path: Path) -> None:
    state = tmp_path / "state.zip"
    runs = [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "calo_polars",
                "report",
                str(archive),
                "-o",
                str(tmp_path / f"out{i}"),
                "-f",
                "json",
                "--state",
                str(state),
            ],
            env=cli_env(),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for i in range(2)
    ]
    done = [(r.returncode, r.communicate(timeout=600)[1]) for r in runs]
    done = [(r.returncode, err) for r, (_, err) in zip(runs, done, strict=True)]
    codes = sorted(code for code, _ in done)
    assert codes in ([0, 0], [0, 2]), done
    if codes == [0, 2]:  # the usual case: they overlapped and the second stopped at once
        [refused] = [err for code, err in done if code == 2]
        assert "another calo-balance run is using the state file" in refused
    header = json.loads(zipfile.ZipFile(state).read("state.json"))
    assert header["runs"] == codes.count(0)
    read = [json.loads((tmp_path / f"out{i}" / "summary.json").read_text()) for i, (c, _) in enumerate(done) if c == 0]
    assert header["transactions_seen"] == max(s["transactions"] for s in read)  # each transaction counted once


# ---------------------------------------------------------------- 6. inputs


def test_a_symlink_loop_given_directly_is_unreadable_and_the_rest_read(tmp_path: Path) -> None:
    loop = tmp_path / "a"
    loop.symlink_to(tmp_path / "b")
    (tmp_path / "b").symlink_to(loop)
    run = report(tmp_path, loop, *good_files(tmp_path))
    assert run.exit_code == 0, run.stderr
    assert_problem(run, "unreadable", loop, "cannot read: Too many levels of symbolic links")
    assert_nothing_else_lost(run)
    alone = report(tmp_path, loop, out="alone")
    lines = stderr_lines(alone.stderr)
    assert alone.exit_code == 2 and lines == [
        f"calo-balance: nothing to audit in {loop}: {loop}: cannot read: Too many levels of symbolic links"
    ]


def zip_with_method(path: Path, method: int) -> Path:
    """A zip whose first member claims compression ``method`` (in both headers); the second is good."""
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("odd/000000.gz", good_log(7).gz())
        for i, good in enumerate(good_files(path.parent)):
            zf.writestr(f"ok{i}/000000.gz", good.read_bytes())
    data = bytearray(path.read_bytes())
    first = zipfile.ZipFile(path).infolist()[0]
    data[first.header_offset + 8 : first.header_offset + 10] = method.to_bytes(2, "little")
    central = bytes(data).index(b"PK\x01\x02")
    data[central + 10 : central + 12] = method.to_bytes(2, "little")
    path.write_bytes(bytes(data))
    return path


@pytest.mark.parametrize("method", [6, 95, 98, 99])  # implode, xz, PPMd, AES: zipfile reads none of them
def test_a_zip_member_of_an_unsupported_compression_is_unreadable(tmp_path: Path, method: int) -> None:
    archive = zip_with_method(tmp_path / "odd.zip", method)
    run = report(tmp_path, archive)
    assert run.exit_code == 0, run.stderr
    assert_problem(
        run,
        "unreadable",
        f"{archive}!odd/000000.gz",
        f"zip member not read: That compression method is not supported (compression method {method})",
    )
    assert "encrypted_member" not in run.summary["input_problem_kinds"]
    assert_nothing_else_lost(run)


def test_a_zip_member_with_bad_lzma_properties_is_corrupt_not_a_traceback(tmp_path: Path) -> None:
    archive = zip_with_method(tmp_path / "lzma.zip", zipfile.ZIP_LZMA)
    run = report(tmp_path, archive)
    assert run.exit_code == 0, run.stderr
    assert_problem(run, "corrupt_member", f"{archive}!odd/000000.gz", "corrupt zip member (")
    assert_nothing_else_lost(run)


def test_control_characters_in_names_are_escaped_in_every_printed_line(tmp_path: Path) -> None:
    folder = tmp_path / "evil\x1b[31m\x07dir"
    folder.mkdir()
    archive = folder / "lo\x0bgs\u202e.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        for i, good in enumerate(good_files(tmp_path)):
            zf.writestr(f"ok{i}/000000.gz", good.read_bytes())
        zf.writestr("cut/000000.gz", good_log(9).gz()[:-12])  # a warning that names the file
    out = tmp_path / "o\x1bu\nt"
    result = CliRunner().invoke(cli, ["report", str(archive), "-o", str(out)])
    assert result.exit_code == 0, result.output
    printed = result.stdout + result.stderr
    for raw in ("\x1b", "\x07", "\x0b", "\u202e"):
        assert raw not in printed
    assert "lo\\x0bgs\\u202e.zip" in result.stderr  # the summary table's files row
    assert printable(str(folder)) in result.stderr and "\\x1b[31m\\x07dir" in result.stderr  # the warning
    assert result.stdout.splitlines() == [
        f"{tmp_path}/o\\x1bu\\nt/calo_balance_reports.xlsx",
        f"{tmp_path}/o\\x1bu\\nt/ledger.parquet",  # no flag: the Ledger sheet is empty, the whole table beside
        f"{tmp_path}/o\\x1bu\\nt/summary.json",
    ]
    assert json.loads((out / "summary.json").read_text())["transactions"] == 2 + 1


# ---------------------------------------------------------------- 7. time stamps far away


def stamped_log(path: Path, year: str, n: int, user: int = 1) -> Path:
    """One complete invocation with one transaction, every stamp moved to ``year``."""
    text = Log().invocation(rid(n), 1000 + n, full_tx(n, uid(user), 50, 42, 8)).text()
    path.write_text(text.replace("2024-02-10", f"{year}-02-10"))
    return path


def test_a_year_0_stamp_is_unparsed_not_a_crash_and_the_rest_read(tmp_path: Path) -> None:
    bad = stamped_log(tmp_path / "year0.log", "0000", 7)
    run = report(tmp_path, bad, *good_files(tmp_path), args=("-f", "xlsx,csv"))
    assert run.exit_code == 0, run.stderr
    assert_problem(run, "unparsed_events", bad, "event(s) of no known shape, the first here", line=1)
    assert_nothing_else_lost(run)
    assert run.summary["period"]["first"].startswith("2024-02-10")


def test_stamps_from_1899_to_9999_keep_every_per_period_table_small(tmp_path: Path) -> None:
    files = [stamped_log(tmp_path / f"{year}.log", year, 900 + i) for i, year in enumerate(["1899", "2024", "9999"])]
    run = report(tmp_path, *files, args=("-f", "xlsx,csv", "--full-ledger"))  # no flag: only then in the Ledger
    assert run.exit_code == 0, run.stderr
    assert run.summary["transactions"] == 3
    assert run.summary["period"]["first"].startswith("1899-02-10") and run.summary["period"]["last"].startswith("9999")
    weekly, daily = run.sheet("WeeklySignals"), run.sheet("DailyTotals")
    assert [r["week"].year for r in weekly] == [1899, 2024, 9999]  # the weeks with data, not 422,640 rows
    assert [(r["date"].year, r["transactions"]) for r in daily] == [(1899, 1), (2024, 1), (9999, 1)]
    assert (run.out / "calo_balance_reports.xlsx").stat().st_size < 1_000_000
    assert {r["tx_id"] for r in run.sheet("Ledger")} == {f"01HR{n:022d}" for n in (900, 901, 902)}


def test_a_period_of_a_few_years_still_lists_every_week(tmp_path: Path) -> None:
    files = [stamped_log(tmp_path / f"{year}.log", year, 900 + i) for i, year in enumerate(["2023", "2024"])]
    run = report(tmp_path, *files)
    weeks = [r["week"] for r in run.sheet("WeeklySignals")]
    assert len(weeks) == 53 and all((b - a).days == 7 for a, b in itertools.pairwise(weeks))


# ---------------------------------------------------------------- 8. text that reaches a spreadsheet

HOSTILE_USERS = [
    "=cmd|' /C calc'!A0",
    "@SUM(1)",
    "+1 evil",
    "-2 evil",
    "\tt evil",
    "ctl\x01one",
    "vt\x0bfeed",
    "ff\x0cx",
]


def hostile_log() -> str:
    """Each hostile user id overdraws twice (flags, so it reaches RedFlags, users, flags and the charts)."""
    log = Log()
    for i, user in enumerate(HOSTILE_USERS):
        log.invocation(
            rid(500 + i), i * 10, full_tx(500 + 2 * i, user, 5, -3, 8), full_tx(501 + 2 * i, user, -3, -9, 6)
        )
    return log.text()


def test_every_xml_part_of_the_workbook_parses_strictly_and_no_chart_name_is_a_formula(tmp_path: Path) -> None:
    from xml.dom import minidom  # expat: a strict XML 1.0 parser (it refuses \x01 even as &#1;)

    import openpyxl

    path = tmp_path / "hostile.log"
    path.write_text(hostile_log())
    run = report(tmp_path, path, args=("-f", "xlsx,csv"))
    assert run.exit_code == 0, run.stderr
    xlsx = run.out / "calo_balance_reports.xlsx"
    with zipfile.ZipFile(xlsx) as zf:
        parts = [n for n in zf.namelist() if n.endswith((".xml", ".rels"))]
        assert any(n.startswith("xl/charts/") for n in parts)
        for name in parts:
            minidom.parseString(zf.read(name))  # raises ExpatError on any ill-formed part
        charts = "".join(zf.read(n).decode() for n in parts if n.startswith("xl/charts/"))
    assert "cmd|" in charts  # the user id is in a chart title, as text...
    assert "<c:f>=cmd" not in charts and "<c:f>#" not in charts  # ...never as a formula reference
    wb = openpyxl.load_workbook(xlsx)  # openpyxl refused the file before
    users = {c.value for c in wb["PerUserSummary"]["A"] if c.value}
    assert {xml_text(u) for u in HOSTILE_USERS} <= users
    assert summary_transactions(run) == 2 * len(HOSTILE_USERS)


def summary_transactions(run: Any) -> int:
    return int(run.summary["transactions"])


def csv_values(path: Path, column: str) -> list[str]:
    import csv

    with path.open(newline="", encoding="utf-8") as f:
        return [row[column] for row in csv.DictReader(f)]


@pytest.mark.parametrize("table", ["users", "flags", "transactions"])
def test_csv_user_ids_that_a_spreadsheet_would_evaluate_are_prefixed(tmp_path: Path, table: str) -> None:
    path = tmp_path / "hostile.log"
    path.write_text(hostile_log())
    run = report(tmp_path, path, args=("-f", "csv"))
    assert run.exit_code == 0, run.stderr
    ids = set(csv_values(run.out / f"{table}.csv", "user_id"))
    expected = {("'" + u if u[0] in "=+-@\t" else u) for u in HOSTILE_USERS}
    assert ids == expected
    assert summary_transactions(run) == 2 * len(HOSTILE_USERS)


def test_the_text_rules_one_by_one() -> None:
    assert xml_text("a\x01b\x0bc\td\ne\ud800") == "a\\x01b\\x0bc\td\ne\\ud800"
    assert len(xml_text("x" * 40_000)) == 32_767
    assert chart_text("=cmd|' /C calc'!A0") == "=cmd|' /C calc'!\u200bA0"
    assert chart_text("#1 x!A1 (BHD)") == "#1 x!\u200bA1 (BHD)"
    assert chart_text("Daily credits and debits, BHD") == "Daily credits and debits, BHD"
    assert sheet_name("a[b]:c*d?e/f\\g'") == "a_b__c_d_e_f_g"
    assert len(sheet_name("x" * 40)) == 31


# ---------------------------------------------------------------- 9. personal data in other shapes

LOCAL_FORMS = ["0551234321", "00966501237777", "055 123 4321"]
ENCODED = "kim.enc%40example.com"


def local_pii_log() -> str:
    """The other shapes where they reach outputs: a user id, an action, metadata, notices, unparsed text."""
    r = rid(3)
    meta = f'{{"walletId":"wallet#{uid(3)}","contact":"{ENCODED}","mobile":"x"}}'
    log = Log().start(r, 0)
    log.tx(r, 0.1, **full_tx(31, LOCAL_FORMS[0], 50, 42, 8, metadata=meta, action=f"CALL {LOCAL_FORMS[1]}"))
    log.tx(r, 0.2, **full_tx(32, ENCODED, 42, 34, 8))
    log.tx(r, 0.3, **full_tx(33, LOCAL_FORMS[1], 42, 34, 8, source=f"SMS {LOCAL_FORMS[2]}"))
    log.app(r, 0.4, "INFO", f"Sending receipt to {ENCODED} and sms to {LOCAL_FORMS[0]}")
    log.app(r, 0.5, "ERROR", f"An error occured while syncing the balance TypeError: no wallet for {LOCAL_FORMS[1]}")
    log.end(r, 1).report(r, 1)
    return log.text()


def local_leaks(text: str) -> list[str]:
    return [p for p in [*LOCAL_FORMS, ENCODED, "kim.enc"] if p in text]


def every_output_text(out: Path) -> str:
    """Every output file as text: the workbook's XML parts, CSV, summary.json, and Parquet read back."""
    import polars as pl

    texts = []
    for path in sorted(out.iterdir()):
        if path.is_dir():
            continue
        if path.suffix == ".xlsx":
            with zipfile.ZipFile(path) as zf:
                texts += [zf.read(n).decode("utf-8") for n in zf.namelist()]
        elif path.suffix == ".parquet":
            texts.append(pl.read_parquet(path).write_csv())
        else:
            texts.append(path.read_text(encoding="utf-8"))
    return "\n".join(texts)


def test_local_phone_forms_and_url_encoded_emails_are_masked_in_every_output_and_the_store(tmp_path: Path) -> None:
    path = tmp_path / "pii.log"
    path.write_text(local_pii_log())
    shown = report(tmp_path, path, args=("--show-pii", "-f", "xlsx,csv,parquet"), out="shown")
    assert set(local_leaks(every_output_text(shown.out))) == {*LOCAL_FORMS, ENCODED, "kim.enc"}  # it can see them
    run = report(tmp_path, path, args=("-f", "xlsx,csv,parquet"))
    assert run.exit_code == 0
    masked = every_output_text(run.out)
    assert local_leaks(masked) == [] and local_leaks(run.stderr) == []
    assert "CALL 00***77" in masked and "***%40example.com" in masked and "05***21" in masked
    assert run.summary["transactions"] == 3 and run.summary["users"] == 3  # distinct ids stay distinct
    code, _, store = ingest(tmp_path, path)
    assert code == 0
    assert local_leaks(every_output_text(store) + every_output_text(store / "transactions")) == []
    from_store = report(tmp_path, args=("--from", str(store), "-f", "csv"), out="from_store")
    assert from_store.exit_code == 0 and local_leaks(every_output_text(from_store.out)) == []


@pytest.mark.parametrize(
    ("text", "masked"),
    [
        ("sms 0551234321.", "sms 05***21."),
        ("call 055-123-4321", "call 05***21"),
        ("dial 00966501237777", "dial 00***77"),
        ("to kim.enc%40example.com&x=1", "to ***%40example.com&x=1"),
        ("KIM%40EXAMPLE.COM", "***%40EXAMPLE.COM"),
        # not personal data: ids, amounts, times, UUID groups
        ("01HR0000000000000000000901", "01HR0000000000000000000901"),
        ("req 00000384-aaaa-5bbb-8ccc-009665012377", "req 00000384-aaaa-5bbb-8ccc-009665012377"),
        ("amount 0.0551234321", "amount 0.0551234321"),
        ("at 1707598800000", "at 1707598800000"),
        ("0500 BHD", "0500 BHD"),
    ],
)
def test_the_recognised_forms(text: str, masked: str) -> None:
    from calo_polars.pii import mask_strings

    assert mask_strings([text]) == [masked]


@pytest.mark.parametrize(("start", "days"), [("9999-12-01", "60"), ("1979-12-31", "2"), ("0001-01-01", "1")])
def test_synth_days_outside_what_a_zip_and_a_date_hold_are_a_usage_error(tmp_path: Path, start: str, days: str) -> None:
    out = tmp_path / "far.zip"
    result = CliRunner().invoke(cli, ["synth", "-o", str(out), "--start", start, "--days", days, "--users", "2"])
    assert result.exit_code == 2, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)
    assert "Error: Invalid value for '--start': the days must lie between 1980-01-01" in result.stderr
    assert not out.exists()


def test_ingest_stopped_by_sigterm_leaves_the_older_store_and_no_temporary(archive: Path, tmp_path: Path) -> None:
    code, _, store = ingest(tmp_path, *good_files(tmp_path))
    assert code == 0
    before = snapshot(store)
    run = subprocess.Popen(
        [sys.executable, "-m", "calo_polars", "ingest", str(archive), "--into", str(store)],
        env=cli_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )  # fmt: skip
    wait_for(lambda: handler_installed(run.pid, signal.SIGTERM), run, "signal handler")
    wait_for(lambda: any(tmp_path.glob(".store-*.tmp")), run, "the store's temporary folder")
    run.send_signal(signal.SIGTERM)
    _, stderr = run.communicate(timeout=300)
    assert run.returncode == 143 and stderr_lines(stderr.decode()) == [
        "calo-balance: interrupted by SIGTERM: stopped; temporary files removed, the earlier outputs and state kept "
        "(exit 143)"
    ]
    assert snapshot(store) == before
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_an_ingest_killed_between_its_two_renames_gets_the_older_store_back(tmp_path: Path) -> None:
    code, _, store = ingest(tmp_path, *good_files(tmp_path))
    assert code == 0
    before = snapshot(store)
    moved = tmp_path / f".store-{dead_pid()}-old.tmp"  # kill -9 after moving the older store aside
    store.rename(moved)
    from calo_polars.partitioned.store import _recover

    _recover(store)  # what the next ingest into it does first
    assert snapshot(store) == before and not moved.exists()
    run = report(tmp_path, args=("--from", str(store)))
    assert run.exit_code == 0 and run.summary["transactions"] == 2


def test_webhook_text_cannot_mention_link_or_break_out_of_its_code_span(tmp_path: Path) -> None:
    from calo_polars import audit
    from calo_polars.report.alerts import top_users, webhook_payload
    from calo_polars.report.summary import summary

    path = tmp_path / "hostile.log"
    users = ["<!channel>", "<http://evil.example|click me>", "`x` & y"]
    log = Log()
    for i, user in enumerate(users):
        log.invocation(rid(700 + i), i * 10, full_tx(700 + i, user, 5, -3, 8))
    path.write_text(log.text())
    result = audit([path])
    body = webhook_payload(summary(result), top_users(result.users), [], 0)
    payload = json.dumps([body["text"], body["blocks"]])  # what Slack renders (calo_balance is data, as logged)
    assert {u["user_id"] for u in body["calo_balance"]["top_users"]} == set(users)
    assert "<!channel>" not in payload and "<http" not in payload
    assert "&lt;!channel&gt;" in payload and "&lt;http://evil.example|click me&gt;" in payload
    assert "'x' &amp; y" in payload
