"""The generated parts of docs/: the CLI reference, the glossary, the input problem kinds, --fail-on.

Each lives between ``<!-- generated: NAME ... -->`` and ``<!-- /generated: NAME -->`` in its
file and is rendered from the code: every command's ``--help`` (click's CliRunner, a fixed
terminal width, so the text does not depend on the terminal it was made on),
``glossary_markdown()``, ``problem_kinds_markdown()`` and the ``--fail-on`` names
(``alerts.ALERTS``). ``tests/test_docs.py`` fails when a block differs from what the code
renders; ``python -m tests.gen_docs`` rewrites them.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Callable
from pathlib import Path

from click.testing import CliRunner

from calo_polars.checks.registry import checks_markdown
from calo_polars.cli.main import cli
from calo_polars.problems import problem_kinds_markdown
from calo_polars.report.alerts import ALERTS, GROUPS
from calo_polars.report.columns import glossary_markdown

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
WIDTH = 100  # the help text is wrapped at this many columns, wherever it is rendered
PROG = "calo-balance"


def command_help(args: list[str]) -> str:
    """``calo-balance ARGS --help`` as a user sees it, wrapped at ``WIDTH`` columns."""
    result = CliRunner().invoke(cli, [*args, "--help"], prog_name=PROG, terminal_width=WIDTH)
    assert result.exit_code == 0, result.output
    return "\n".join(line.rstrip() for line in result.output.splitlines()).strip("\n")


def cli_reference() -> str:
    """Every command's ``--help``, the group's first, then in declaration order, each under a heading."""
    parts = []
    for args in [[], *([name] for name in cli.commands)]:
        title = " ".join([PROG, *args])
        parts.append(f"### `{title}`\n\n```text\n{command_help(args)}\n```")
    return "\n\n".join(parts)


def fail_on_table() -> str:
    """The ``--fail-on`` names, the summary.json key each reads and what it counts."""
    rows = ["| `--fail-on` name | summary.json key | counts |", "|---|---|---|"]
    rows += [f"| `{name}` | `{key}` | {counts} |" for name, (key, counts) in ALERTS.items()]
    for name, members in GROUPS.items():
        said = "every name above" if set(members) == set(ALERTS) else ", ".join(members)
        rows.append(f"| `{name}` | | all of: {said} |")
    return "\n".join(rows)


#: name → (file under docs/, renderer)
GENERATED: dict[str, tuple[str, Callable[[], str]]] = {
    "cli": ("cli.md", cli_reference),
    "glossary": ("glossary.md", glossary_markdown),
    "problem-kinds": ("bad-input.md", problem_kinds_markdown),
    "fail-on": ("automation.md", fail_on_table),
    "checks": ("checks.md", checks_markdown),
}


def block_pattern(name: str) -> re.Pattern[str]:
    return re.compile(
        rf"(<!-- generated: {re.escape(name)}[^>]*-->\n)(.*?)(^<!-- /generated: {re.escape(name)} -->)", re.S | re.M
    )


def current(name: str) -> str | None:
    """The text now between the markers of ``name`` (None when the markers are missing)."""
    file, _ = GENERATED[name]
    found = block_pattern(name).search((DOCS / file).read_text(encoding="utf-8"))
    return found[2].strip("\n") if found else None


def rendered(name: str) -> str:
    return GENERATED[name][1]().strip("\n")


def rewrite() -> list[str]:
    """Rewrite every generated block from the code; the names of the blocks that changed."""
    changed = []
    for name, (file, _) in GENERATED.items():
        path = DOCS / file
        text = path.read_text(encoding="utf-8")
        found = block_pattern(name).search(text)
        n = len(block_pattern(name).findall(text))
        new = text if found is None else text[: found.start(2)] + rendered(name) + "\n" + text[found.end(2) :]
        if n != 1:
            raise SystemExit(f"{path}: expected one '<!-- generated: {name} -->' block, found {n}")
        if new != text:
            path.write_text(new, encoding="utf-8")
            changed.append(f"{file} ({name})")
    return changed


if __name__ == "__main__":
    done = rewrite()
    print("rewrote: " + ", ".join(done) if done else "docs/ already up to date", file=sys.stderr)
