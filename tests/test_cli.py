"""The command line: arguments, the Docker environment contract, exit codes, outputs read back."""

from __future__ import annotations

import json
import re
import zipfile
from pathlib import Path

import openpyxl
from click.testing import CliRunner

from calo_polars.cli.main import cli
from calo_polars.version import __version__
from tests.harness import drain
from tests.logbuilder import Log, full_tx, rid, uid, write_zip


def three_file_archive(tmp_path: Path) -> Path:
    logs = {
        "2024-02-10-[$LATEST]a": Log().invocation(rid(1), 0, full_tx(1, uid(1), 36, 31.5, 4.5)).gz(),
        "2024-02-11-[$LATEST]b": Log().invocation(rid(2), 86400, full_tx(2, uid(1), 36, 28, 8)).gz(),  # flow break
        "2024-02-12-[$LATEST]c": Log().invocation(rid(3), 2 * 86400, full_tx(3, uid(2), 5, -3, 8)).gz(),  # overdraft
    }
    return write_zip(tmp_path / "logs.zip", logs)


def test_report_writes_workbook_and_summary(tmp_path: Path) -> None:
    out = tmp_path / "out"
    result = CliRunner().invoke(cli, ["report", str(three_file_archive(tmp_path)), "-o", str(out)])
    assert result.exit_code == 0, result.output
    data = json.loads((out / "summary.json").read_text())
    assert (data["files"], data["transactions"], data["users"]) == (3, 3, 2)
    assert (data["flow_breaks"], data["flow_break_users"], data["overdraft_events"], data["mismatches"]) == (1, 1, 1, 0)
    assert data["totals"]["BHD"]["debit_total"] == "20.500"
    table = [line.rstrip() for line in result.stderr.splitlines()]  # the plain summary table (not a terminal)
    assert re.search(r"^files +3 +logs.zip$", result.stderr, re.M) and "\x1b[" not in result.stderr
    assert any(re.fullmatch(r"flow breaks +1  1 users", line) for line in table)
    assert any(re.fullmatch(r"overdrafts +1  1 users", line) for line in table)
    assert result.stdout.splitlines() == [str(out / "calo_balance_reports.xlsx"), str(out / "summary.json")]
    wb = openpyxl.load_workbook(out / "calo_balance_reports.xlsx")
    assert wb["FlowBreaks"].max_row == 2 and wb["OverdraftEvents"].max_row == 2


def test_env_contract_reads_in_dir_and_writes_out_dir(tmp_path: Path) -> None:
    out = tmp_path / "out"
    env = {"IN_DIR": str(three_file_archive(tmp_path)), "OUT_DIR": str(out)}
    result = CliRunner().invoke(cli, ["report"], env=env)
    assert result.exit_code == 0, result.output
    assert (out / "calo_balance_reports.xlsx").exists() and (out / "summary.json").exists()


def test_missing_input_is_one_line_and_exit_2(tmp_path: Path) -> None:
    result = CliRunner().invoke(cli, ["report", str(tmp_path / "nope.zip"), "-o", str(tmp_path / "o")])
    assert result.exit_code == 2
    assert result.stderr.strip() == f"calo-balance: {tmp_path / 'nope.zip'}: no such file or folder"
    assert "Traceback" not in result.output


def test_no_input_and_no_env_is_a_usage_error(tmp_path: Path) -> None:
    result = CliRunner().invoke(cli, ["report"], env={"IN_DIR": "", "OUT_DIR": ""})
    assert result.exit_code == 2
    assert "give at least one INPUT" in result.stderr


def test_nothing_readable_exits_2(tmp_path: Path) -> None:
    bad = tmp_path / "bad.gz"
    bad.write_bytes(b"not gzip at all")
    result = CliRunner().invoke(cli, ["report", str(bad), "-o", str(tmp_path / "o")])
    assert result.exit_code == 2
    assert "nothing to audit" in result.stderr and "named .gz but not gzip data" in result.stderr


def test_bad_option_values_are_usage_errors(tmp_path: Path) -> None:
    archive = str(three_file_archive(tmp_path))
    assert CliRunner().invoke(cli, ["report", archive, "--tolerance", "abc"]).exit_code == 2
    result = CliRunner().invoke(cli, ["report", archive, "--window", "3", "--min-history", "5"])
    assert result.exit_code == 2 and "--min-history" in result.stderr


def test_options_change_the_checks(tmp_path: Path) -> None:
    out = tmp_path / "out"
    result = CliRunner().invoke(cli, ["report", str(three_file_archive(tmp_path)), "-o", str(out), "--tolerance", "10"])
    assert result.exit_code == 0, result.output
    data = json.loads((out / "summary.json").read_text())
    assert data["flow_breaks"] == 0 and data["settings"]["tolerance"] == "10"


def test_version_and_help() -> None:
    assert CliRunner().invoke(cli, ["--version"]).output.strip() == f"calo-balance, version {__version__}"
    help_text = CliRunner().invoke(cli, ["report", "--help"]).output
    assert "Examples:" in help_text and "calo-balance report balance-sync-logs.zip -o reports" in help_text


def test_log_text_never_becomes_a_formula_or_link(tmp_path: Path) -> None:
    log = Log().invocation(rid(1), 0, full_tx(1, uid(1), 10, 2, 8, action='=HYPERLINK("http://evil")'))
    log.app(rid(1), 1, "INFO", "=1+2 http://example.com brand new message")
    path = tmp_path / "x.log"
    path.write_text(log.text())
    out = tmp_path / "out"
    assert CliRunner().invoke(cli, ["report", str(path), "-o", str(out)]).exit_code == 0
    with zipfile.ZipFile(out / "calo_balance_reports.xlsx") as zf:
        xml = "".join(zf.read(n).decode() for n in zf.namelist() if n.startswith("xl/worksheets/sheet"))
        assert "<f>" not in xml  # no formula cells at all
        assert not any(n.startswith("xl/worksheets/_rels/") and b"evil" in zf.read(n) for n in zf.namelist())
    wb = openpyxl.load_workbook(out / "calo_balance_reports.xlsx")
    assert wb["UnparsedEvents"].cell(2, 5).value == "no known shape"


# ---------------------------------------------------------------- progress, summary table, formats

SAMPLE = Path(__file__).resolve().parents[1] / "examples" / "sample-logs.zip"
ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


def run_on_a_terminal(args: list[str]) -> tuple[int, str, str]:
    """Run the real command with stderr on a pseudo-terminal (what a person at a shell has)."""
    import os
    import pty
    import subprocess
    import sys

    leader, follower = pty.openpty()
    env = {**os.environ, "TERM": "xterm-256color", "COLUMNS": "120"}
    env.pop("TTY_COMPATIBLE", None)
    env.pop("FORCE_COLOR", None)
    proc = subprocess.Popen(
        [sys.executable, "-m", "calo_polars", *args], stdout=subprocess.PIPE, stderr=follower, env=env
    )
    os.close(follower)
    printed = drain(leader)
    with proc:
        stdout = proc.stdout.read().decode() if proc.stdout else ""
    return proc.returncode, stdout, printed.decode("utf-8", "replace")


def test_a_terminal_gets_the_progress_bar_and_the_table(tmp_path: Path) -> None:
    code, stdout, screen = run_on_a_terminal(["report", str(SAMPLE), "-o", str(tmp_path / "out"), "-f", "xlsx,parquet"])
    assert code == 0, screen
    text = ANSI.sub("", screen)
    assert "reading" in text and "━" in text
    assert re.search(
        r"459/\d[\d,]* files [\d.]+ MB [\d.]+ MB/s 2,2\d\d tx [\d,]+ tx/s", text
    )  # read so far (copies included), text[-2000:]
    assert "xlsx" in text and "parquet" in text  # the steps after reading
    assert "\x1b[" in screen and "─" in text  # colours and a drawn table
    assert re.search(r"transactions +2,232 +64 users", text)
    assert stdout.splitlines()[0] == str(tmp_path / "out" / "calo_balance_reports.xlsx")
    quiet_code, quiet_out, quiet_screen = run_on_a_terminal(
        ["report", str(SAMPLE), "-o", str(tmp_path / "q"), "-f", "json", "-q"]
    )
    assert (quiet_code, quiet_out, quiet_screen) == (0, "", "")


def test_not_a_terminal_gets_plain_text_only(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        cli, ["report", str(SAMPLE), "-o", str(tmp_path / "out"), "-f", "json"], env={"TTY_COMPATIBLE": "0"}
    )
    assert result.exit_code == 0
    assert "\x1b[" not in result.stderr and "━" not in result.stderr and "tx/s" not in result.stderr
    assert re.search(r"^transactions +2,232 +64 users, 2024-01-01 to 2024-02-11$", result.stderr, re.M)
    assert all(line == line.rstrip() for line in result.stderr.splitlines())
    assert result.stdout.splitlines() == [str(tmp_path / "out" / "summary.json")]  # json: summary.json only
    assert not (tmp_path / "out" / "calo_balance_reports.xlsx").exists()


def test_forced_terminal_draws_the_bar_through_rich(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        cli, ["report", str(SAMPLE), "-o", str(tmp_path / "out"), "-f", "json"], env={"TTY_COMPATIBLE": "1"}
    )
    assert result.exit_code == 0
    assert "tx/s" in result.stderr and "\x1b[" in result.stderr


def test_formats_are_listed_once_and_validated(tmp_path: Path) -> None:
    out = tmp_path / "out"
    result = CliRunner().invoke(cli, ["report", str(SAMPLE), "-o", str(out), "-f", "csv", "--format", "CSV,parquet"])
    assert result.exit_code == 0
    written = result.stdout.splitlines()
    assert written[-1] == str(out / "summary.json") and len(written) == 1 + 2 * 9
    assert not (out / "calo_balance_reports.xlsx").exists()
    bad = CliRunner().invoke(cli, ["report", str(SAMPLE), "-o", str(out), "-f", "xlsx,pdf"])
    assert bad.exit_code == 2 and "'pdf' is not a format: choose among xlsx, html, parquet, csv, json" in bad.stderr


def test_every_command_has_help_with_examples() -> None:
    for name, command in {"": cli, **cli.commands}.items():
        text = CliRunner().invoke(cli, [name, "--help"] if name else ["--help"]).output
        assert "Example" in text and "calo-balance " in text, name
        for param in getattr(command, "params", []):
            assert param.param_type_name == "argument" or param.help, (name, param.name)


def test_synth_quiet_prints_nothing(tmp_path: Path) -> None:
    result = CliRunner().invoke(cli, ["synth", "-o", str(tmp_path / "s.zip"), "--users", "3", "--days", "2", "-q"])
    assert (result.exit_code, result.stderr) == (0, "") and (tmp_path / "s.zip").stat().st_size > 0


def test_html_is_written_beside_the_workbook_and_listed(tmp_path: Path) -> None:
    out = tmp_path / "out"
    result = CliRunner().invoke(cli, ["report", str(SAMPLE), "-o", str(out), "-f", "xlsx,html", "-v"])
    assert result.exit_code == 0
    written = result.stdout.splitlines()
    names = ("calo_balance_reports.xlsx", "report.html", "ledger.parquet", "summary.json")  # the Ledger is capped
    assert written == [str(out / n) for n in names]
    assert "html " in result.stderr.split("took ", 1)[1]  # its time is shown with the others
    assert not [p.name for p in out.iterdir() if p.name.startswith(".")]  # no temporary file left behind
