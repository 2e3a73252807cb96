"""docs/development.md's worked example holds: a new check needs its declaration only.

The package is copied, the documented declaration appended to ``CHECKS`` as written, and the
command line run on the bundled sample; the check must then be in every output.
"""

from __future__ import annotations

import ast
import json
import os
import re
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import openpyxl

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "examples" / "sample-logs.zip"


def documented_check() -> str:
    """The declaration the docs show, as the entry to append to ``CHECKS`` (``Check(...),``).

    The block is one ``Check(...)`` (ruff's formatter may show it wrapped in a tuple)."""
    text = (ROOT / "docs" / "development.md").read_text(encoding="utf-8")
    found = re.search(r"<!-- example: a check -->\n```python\n(.*?)```", text, re.S)
    assert found, "docs/development.md has no worked example of a check"
    block = textwrap.dedent(found[1])
    node = ast.parse(block, mode="eval").body
    calls = node.elts if isinstance(node, ast.Tuple) else [node]
    assert len(calls) == 1 and isinstance(calls[0], ast.Call), "the example is one Check(...)"
    source = ast.get_source_segment(block, calls[0])
    assert source is not None
    return textwrap.indent(source, "    ") + ",\n"


def with_the_check(tmp: Path) -> Path:
    """A copy of the package whose ``CHECKS`` ends with the documented declaration."""
    shutil.copytree(ROOT / "calo_polars", tmp / "calo_polars", ignore=shutil.ignore_patterns("__pycache__"))
    registry = tmp / "calo_polars" / "checks" / "registry.py"
    text = registry.read_text(encoding="utf-8")
    start = text.index("CHECKS: tuple[Check, ...] = (")
    end = text.index("\n)\n", start)
    registry.write_text(text[:end] + "\n" + documented_check().rstrip("\n") + text[end:], encoding="utf-8")
    return tmp


def test_the_documented_check_reaches_every_output(tmp_path: Path) -> None:
    tree = with_the_check(tmp_path / "tree")
    out = tmp_path / "out"
    env = {**os.environ, "PYTHONPATH": str(tree)}
    run = subprocess.run(
        [sys.executable, "-m", "calo_polars", "report", str(SAMPLE), "-o", str(out), "--fail-on", "round_amount"],
        capture_output=True,
        text=True,
        env=env,
        cwd=tree,  # python -m puts the working folder first on sys.path: the copy's, not the checkout's
        check=False,
    )
    summary = json.loads((out / "summary.json").read_text())
    count = summary["round_amounts"]
    assert count > 0 and summary["round_amount_users"] > 0
    assert run.returncode == 3, run.stderr  # --fail-on knows it
    assert re.search(rf"^round amounts +{count:,} ", run.stderr, re.M)  # the terminal table
    book = openpyxl.load_workbook(out / "calo_balance_reports.xlsx", read_only=True)
    overview = [row for row in book["Overview"].iter_rows(values_only=True) if row and row[0] == "round_amount"]
    assert overview and overview[0][2] == f"{count:,}"
    assert len(list(book["RoundAmounts"].iter_rows(values_only=True))) == count + 1
    flags = [r for r in book["RedFlags"].iter_rows(values_only=True) if "round_amount" in r]
    assert len(flags) == count
    header = next(book["PerUserSummary"].iter_rows(values_only=True))
    assert "round_amounts" in header
    defined = {r[0] for r in book["ColumnDefinitions"].iter_rows(values_only=True)}
    assert "round_amounts" in defined
