"""What a person sees on stderr while and after a run: a progress bar and a one-screen summary.

Only the command line uses this module (through ``rich``); the library reports progress
through ``audit(on_batch=...)`` and never prints. The bar is drawn only on a terminal: a
log file, a pipe or a CI job gets the plain summary table and nothing else.
"""

from __future__ import annotations

import io
import time
import zipfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import click
from rich import box
from rich.console import Console, ConsoleOptions, RenderableType, RenderResult
from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table
from rich.text import Text

from calo_polars.audit.selection import selection_text
from calo_polars.checks.registry import CHECKS, SIGNALS, Signal
from calo_polars.parse.events import FileIndex
from calo_polars.problems import printable
from calo_polars.read.s3 import S3Source
from calo_polars.read.sizes import folder_size


def input_size(inputs: Iterable[Any]) -> tuple[int, int]:
    """(files, stored bytes) the inputs hold, from zip directories, folder listings and S3
    listings: the bar's total. Junk members are counted too (the total is an estimate)."""
    files = size = 0
    for item in inputs:
        if isinstance(item, S3Source):
            files += len(item.objects())
            size += item.stored_bytes()
            continue
        path = Path(item)
        try:
            if path.is_dir():
                in_folder = folder_size(path)
                files, size = files + in_folder[0], size + in_folder[1]
            elif zipfile.is_zipfile(path):
                with zipfile.ZipFile(path) as zf:
                    members = [i for i in zf.infolist() if not i.is_dir()]
                files += len(members)
                size += sum(i.compress_size for i in members)
            else:
                files += 1
                size += path.stat().st_size
        except OSError:
            continue  # the run itself reports what cannot be read
    return files, size


class AuditProgress:
    """A progress bar on ``console``: files, MB read and MB/s, transactions and tx/s, elapsed time.

    ``on_batch`` is ``audit()``'s callback; ``step`` names what the run does after reading
    (the checks, each output format). The bar is cleared when the run ends.
    """

    def __init__(self, console: Console, total_files: int, total_bytes: int) -> None:
        self.total_files = total_files
        self.started = time.perf_counter()
        self.progress = Progress(
            SpinnerColumn(),
            TextColumn("[bold]{task.description:<9}"),
            BarColumn(bar_width=30),
            TextColumn("{task.fields[files]}"),
            TextColumn("{task.fields[mb]}"),
            TextColumn("{task.fields[tx]}"),
            TimeElapsedColumn(),
            console=console,
            transient=True,
        )
        self.task = self.progress.add_task(
            "reading", total=max(total_bytes, 1), files=f"0/{total_files:,} files", mb="", tx=""
        )

    def __enter__(self) -> AuditProgress:
        self.progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.progress.stop()

    def on_batch(self, files: FileIndex, transactions: int) -> None:
        """After each batch: what was read so far, and how fast."""
        seconds = max(time.perf_counter() - self.started, 1e-6)
        stored = files.stored_total  # not a sum over every file each batch (a year: 2 M)
        raw_mb = files.raw_total / 1e6
        self.progress.update(
            self.task,
            completed=stored,
            files=f"{len(files):,}/{max(self.total_files, len(files)):,} files",
            mb=f"{raw_mb:,.1f} MB {raw_mb / seconds:,.1f} MB/s",
            tx=f"{transactions:,} tx {transactions / seconds:,.0f} tx/s",
        )

    def step(self, name: str) -> None:
        """Reading is over: show what the run is doing now."""
        task = self.progress.tasks[0]
        self.progress.update(self.task, description=name, completed=task.total)


def say(text: str, err: bool = False, *, lines: bool = False) -> None:
    """Print ``text`` on one line, its control and format characters escaped (``problems.printable``,
    newlines too), so a hostile file name cannot forge a line or move the cursor; with ``lines``,
    each of its lines so."""
    parts = str(text).split("\n") if lines else [str(text)]
    click.echo("\n".join(printable(part) for part in parts), err=err)


def stderr_console() -> Console:
    """The console for stderr; a terminal gets colours and the bar, anything else plain text."""
    return Console(stderr=True, highlight=False)


def plain_text(table: RenderableType, width: int = 120) -> str:
    """The table as plain text (no colours, no trailing spaces): for logs, pipes and CI."""
    console = Console(file=io.StringIO(), width=width, color_system=None, force_terminal=False)
    with console.capture() as capture:
        console.print(table)
    return "\n".join(line.rstrip() for line in capture.get().splitlines())


def _n(value: int) -> str:
    return f"{value:,}"


def signal_detail(signal: Signal, data: dict[str, Any]) -> str:
    """What a signal's count is made of, in a few words (for the terminal table)."""
    if signal.name == "lambda_error":
        return ", ".join(f"{n} {k}" for k, n in data["lambda_errors_by_kind"].items())
    if signal.name == "input_problem":
        return ", ".join(f"{n} {k}" for k, n in data["input_problem_kinds"].items())
    if signal.users_key and data[signal.users_key]:
        return f"{_n(data[signal.users_key])} users"
    return signal.meaning


def shorten(text: str, width: int) -> str:
    """``text`` in at most ``width`` characters: whole words kept and "…" for the rest, so a
    number is shown whole or not at all (never ``4,3…``, which reads like 4.3)."""
    if len(text) <= width:
        return text
    if width <= 1:
        return "…"[:width]
    cut = text[: width - 1]
    if text[width - 1] != " " and " " in cut:
        cut = cut[: cut.rindex(" ") + 1]  # drop the word the width would cut
    return cut.rstrip() + " …" if cut.endswith(" ") else cut + "…"


class SummaryTable:
    """The summary's rows (label, count, detail), drawn to fit the width they are given.

    Counts are never cut: their column is as wide as the widest count. The label column keeps
    its full width while the detail has room for ``DETAIL_ROOM`` characters, then shortens down
    to ``LABEL_MIN``; the detail takes what is left (at most ``detail_max``), shortened by whole
    words with "…". Rich would otherwise shrink every column alike, counts included.
    """

    LABEL_MIN = 10
    DETAIL_ROOM = 30

    def __init__(self, *, plain: bool) -> None:
        self.plain = plain
        self.rows: list[tuple[str, str, str, bool]] = []
        self.detail_max = 80 if plain else 72

    def add_row(self, name: str, count: str, detail: str, alarm: bool) -> None:
        self.rows.append((name, count, detail, alarm))

    def widths(self, width: int) -> tuple[int, int, int]:
        """(label, count, detail) column widths whose table is at most ``width`` wide."""
        count = max([len(c) for _, c, _, _ in self.rows] + [0 if self.plain else len("count")])
        label = max([len(n) for n, _, _, _ in self.rows] + [1])
        detail = min(max([len(d) for _, _, d, _ in self.rows] + [len("detail")]), self.detail_max)
        room = width - count - (4 if self.plain else 8)  # padding 2+2; with a box, 2 edges and 2 rules too
        label = max(min(label, room - min(detail, self.DETAIL_ROOM)), min(label, self.LABEL_MIN))
        return label, count, max(min(detail, room - label), 0)

    def table(self, width: int) -> Table:
        label_w, count_w, detail_w = self.widths(width)
        table = Table(
            box=None if self.plain else box.SIMPLE_HEAD,
            show_header=not self.plain,
            title=None if self.plain else "calo-balance",
            pad_edge=False,
            padding=(0, 2, 0, 0),
        )
        table.add_column("", style="bold", no_wrap=True, width=label_w)
        table.add_column("count", justify="right", no_wrap=True, width=count_w)
        table.add_column("detail", no_wrap=True, width=detail_w)
        red = "" if self.plain else "red"
        for name, count, detail, alarm in self.rows:
            cells = (shorten(name, label_w), count, shorten(detail, detail_w))
            table.add_row(*(Text(c) for c in cells), style=red if alarm else None)  # text, never markup
        return table

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        yield self.table(options.max_width)


def summary_table(data: dict[str, Any], alerts: list[str], *, plain: bool) -> SummaryTable:
    """The run on one screen: what was read, what each check found, the Lambda's signals,
    totals per currency, and any alert. ``plain`` drops borders and colours."""
    table = SummaryTable(plain=plain)
    period = data["period"]

    def row(name: str, count: int | str, detail: str = "", alarm: bool = False) -> None:
        table.add_row(printable(name), str(count), printable(detail), alarm)

    row("files", _n(data["files"]), ", ".join(data["inputs"]))
    if data.get("incremental"):
        inc = data["incremental"]
        row(
            "already read",
            _n(inc["files_already_read"]),
            f"files not read again ({inc['state_file']}, {inc['earlier_runs']} runs before)",
        )
        row(
            "carried in",
            _n(inc["wallets_carried_in"]),
            f"wallets' last transactions, {_n(inc['carried_flow_breaks'])} flow breaks into this export",
        )
    row("events", _n(data["events"]), f"{_n(data['invocations'])} invocations")
    row(
        "transactions",
        _n(data["transactions"]),
        f"{_n(data['users'])} users, {(period['first'] or '-')[:10]} to {(period['last'] or '-')[:10]}",
    )
    for c in CHECKS:
        row(c.label, _n(data[c.count_key]), f"{_n(data[c.users_key])} users", alarm=data[c.count_key] > 0)
    for g in SIGNALS:
        row(g.label, _n(data[g.count_key]), signal_detail(g, data), alarm=g.alarm and data[g.count_key] > 0)
    for currency, t in data["totals"].items():
        row(
            currency,
            _n(t["transactions"]),
            f"debits {t['debit_total']}, credits {t['credit_total']}, difference {t['roll_forward']['difference']}",
        )
    if data.get("selection"):
        row("selection", "", selection_text(data["selection"]))
    for alert in alerts:
        row("ALERT", "", alert.removeprefix("alert: "), alarm=True)
    return table
