"""The summary table fits the terminal: on a real pseudo-terminal of 80, 100 and 120 columns every
count is printed whole and every line fits; labels and details shorten (by whole words, with
"…") instead. Also the plain table's shortening rule, and --help grouped and true."""

from __future__ import annotations

import fcntl
import os
import pty
import re
import struct
import subprocess
import sys
import termios
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from calo_polars.cli.main import cli
from calo_polars.cli.progress import SummaryTable, plain_text, shorten
from tests.harness import drain

SAMPLE = Path(__file__).resolve().parents[1] / "examples" / "sample-logs.zip"
ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]|\x1b\][^\x07]*\x07")


def on_a_terminal(columns: int, args: list[str]) -> tuple[int, str]:
    """Run the command with stderr on a pseudo-terminal ``columns`` wide; (exit code, the screen's text)."""
    leader, follower = pty.openpty()
    fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", 50, columns, 0, 0))
    env = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "LINES", "TTY_COMPATIBLE", "FORCE_COLOR")}
    env["TERM"] = "xterm-256color"
    proc = subprocess.Popen(
        [sys.executable, "-m", "calo_polars", *args], stdout=subprocess.DEVNULL, stderr=follower, env=env
    )
    os.close(follower)
    printed = drain(leader)
    return proc.wait(), ANSI.sub("", printed.decode("utf-8", "replace"))


def table_rows(screen: str) -> list[tuple[str, str, str]]:
    """(label, count, detail) of each row of the drawn table, cut where its header puts the columns."""
    lines = [line.rsplit("\r", 1)[-1] for line in screen.replace("\r\n", "\n").split("\n")]
    rule = next(i for i, line in enumerate(lines) if line.strip().startswith("──"))
    header = lines[rule - 1]
    count_end, detail_start = header.index("count") + len("count"), header.index("detail")
    rows = []
    for line in lines[rule + 1 :]:
        if not line.strip():
            break
        m = re.match(r"^\s*(.*?)\s*([\d,]*)$", line[:count_end])
        assert m and line[count_end:detail_start].strip() == "", line
        rows.append((m[1], m[2], line[detail_start:].strip()))
    return rows


@pytest.fixture(scope="module")
def full_rows(tmp_path_factory: pytest.TempPathFactory) -> list[tuple[str, str, str]]:
    """The run's rows with nothing shortened (the plain table on a wide log)."""
    import json

    from calo_polars.cli.progress import summary_table
    from calo_polars.report.alerts import alert_line, triggered

    out = tmp_path_factory.mktemp("full")
    result = CliRunner().invoke(cli, ["report", str(SAMPLE), "-o", str(out), "-f", "json", "-q"])
    assert result.exit_code == 0
    data = json.loads((out / "summary.json").read_text(encoding="utf-8"))
    alerts = triggered(data, ["overdraft"])
    table = summary_table(data, [alert_line(alerts, 3)], plain=True)
    table.detail_max = 1000
    return [(name, count, detail) for name, count, detail, _ in table.rows]


@pytest.mark.parametrize("columns", [80, 100, 120])
def test_the_table_fits_the_terminal_and_no_count_is_cut(
    tmp_path: Path, columns: int, full_rows: list[tuple[str, str, str]]
) -> None:
    code, screen = on_a_terminal(
        columns, ["report", str(SAMPLE), "-o", str(tmp_path), "-f", "json", "--fail-on", "overdraft"]
    )
    assert code == 3, screen
    lines = [line.rsplit("\r", 1)[-1] for line in screen.replace("\r\n", "\n").split("\n")]
    table = lines[next(i for i, line in enumerate(lines) if line.strip() == "calo-balance") :]
    assert len(table) > 20 and max(len(line) for line in table) <= columns  # warnings before it are not the table's
    drawn = table_rows(screen)
    assert [count for _, count, _ in drawn] == [count for _, count, _ in full_rows]  # every count, whole
    for (label, _, detail), (full_label, _, full_detail) in zip(drawn, full_rows, strict=True):
        assert label == full_label or (label.endswith("…") and full_label.startswith(label[:-1]))
        assert detail == full_detail or (detail.endswith("…") and full_detail.startswith(detail[:-1].rstrip()))
        if detail != full_detail:  # cut between words: what is shown is whole words of the detail
            kept = detail[:-1].rstrip()
            assert full_detail[len(kept)] in " ,", (detail, full_detail)
    if columns >= 100:
        assert [label for label, _, _ in drawn] == [label for label, _, _ in full_rows]  # labels whole
    assert any(d.startswith("debits ") for _, _, d in drawn)


def test_the_plain_table_keeps_counts_whole_at_any_width() -> None:
    table = SummaryTable(plain=True)
    table.add_row("transactions", "4,321,000", "1,234 users, 2024-01-01 to 2024-12-31", False)
    table.add_row("blocked overdrafts", "12", "debits 144109.699, credits 177661.119, difference -32532.117", False)
    for width in (40, 60, 80, 120):
        lines = plain_text(table, width=width).splitlines()
        assert all(len(line) <= width for line in lines), (width, lines)
        assert all(re.search(r"(^| )(4,321,000|12)( |$)", line) for line in lines), lines
    narrow = plain_text(table, width=40).splitlines()
    assert narrow == ["transacti…  4,321,000  1,234 users, …", "blocked …          12  debits …"]


def test_shorten_cuts_between_words() -> None:
    text = "debits 144109.699, credits 177661.119, difference -32532.117"
    assert shorten(text, 100) == text
    assert shorten(text, 45) == "debits 144109.699, credits 177661.119, …"
    assert shorten(text, 30) == "debits 144109.699, credits …"
    assert shorten("transactions", 8) == "transac…"
    assert shorten("x", 0) == "" and shorten("abc", 1) == "…"


@pytest.mark.parametrize("command", ["report", "ingest", "synth"])
def test_help_lists_options_by_section_first_things_first(command: str) -> None:
    """Every option once, in a named section (only --help under "Other"), input/output first."""
    text = CliRunner().invoke(cli, [command, "--help"], terminal_width=120).output
    sections = re.findall(r"^(\S[^\n]*):\n((?:  [^\n]*\n|\n(?=  ))+)", text, re.M)
    titles = [title for title, _ in sections if title not in ("Usage", "Examples", "Example")]
    assert titles[0] in ("Input and output", "Output") and titles[-1] == "Other", titles
    listed = {title: re.findall(r"^  (?:-\w, )?(--[\w-]+)", body, re.M) for title, body in sections}
    assert listed["Other"] == ["--help"]
    every = [opt for title in titles for opt in listed[title]]
    params = [p for p in cli.commands[command].params if isinstance(p, click.Option)]
    assert {max(p.opts, key=len) for p in params} | {"--help"} == set(every)
    assert len(every) == len(set(every)) == len(params) + 1  # each option once, --help included
    if command == "report":
        assert titles[:4] == [
            "Input and output",
            "Selection (what is reported; the checks always run on everything)",
            "Checks",
            "Alerts and exit codes",
        ]
        opts = text[text.index("Input and output:") :]
        assert opts.index("--format") < opts.index("--since") < opts.index("--tolerance") < opts.index("--fail-on")
        assert opts.index("--email-to") < opts.index("--threads") and opts.index("--out") < opts.index("--endpoint-url")


def test_synth_and_ingest_verbose_help_says_what_it_does() -> None:
    for command in ("synth", "ingest"):
        text = CliRunner().invoke(cli, [command, "--help"], terminal_width=200).output
        verbose = next(line for line in text.splitlines() if "--verbose" in line)
        assert "input problem" not in verbose and "the same" in verbose, verbose
    report = CliRunner().invoke(cli, ["report", "--help"], terminal_width=200).output
    assert "every input problem (not only the first 50)" in report
