"""The docs cannot drift from the code: the CLI reference, glossary, problem kinds and summary keys.

README.md is the front page (the two commands, one example per reader, links); the reference
is in docs/. The generated blocks are rendered by ``tests/gen_docs.py`` (``python -m
tests.gen_docs`` rewrites them).
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from click.testing import CliRunner

from calo_polars.cli.main import cli
from calo_polars.problems import PROBLEM_KINDS, problem_kinds_markdown
from calo_polars.report.columns import glossary_markdown
from tests import gen_docs

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
SAMPLE = ROOT / "examples" / "sample-logs.zip"
README = (ROOT / "README.md").read_text(encoding="utf-8")


def doc(name: str) -> str:
    return (DOCS / name).read_text(encoding="utf-8")


def test_readme_begins_with_the_two_commands() -> None:
    assert README.startswith("# calo-polars\n\n```sh\n")
    block = README.split("```sh\n", 1)[1].split("```", 1)[0].splitlines()
    assert [line.split("#")[0].strip() for line in block] == ["make run", "make test"]


def test_readme_is_a_front_page() -> None:
    assert len(README.splitlines()) <= 250
    assert "](docs/overview.png)" in README and (DOCS / "overview.png").exists()
    for page in ("index", "cli", "workbook", "checks", "glossary", "outputs", "automation", "scale", "bad-input"):
        assert f"](docs/{page}.md" in README, page
    assert "](docs/docker.md)" in README


def links(text: str) -> list[str]:
    return re.findall(r"\]\(([^)#\s]+)(?:#[^)\s]*)?\)", text)


OWNED_ELSEWHERE = {"docker.md", "email-alerts.md", "html-report.md"}  # written by other work on issue 11


def test_every_link_between_the_docs_lands() -> None:
    pages = {"README.md": README} | {f"docs/{p.name}": p.read_text(encoding="utf-8") for p in DOCS.glob("*.md")}
    broken = []
    for page, text in pages.items():
        base = (ROOT / page).parent
        for target in links(text):
            if re.match(r"[a-z]+://", target):
                continue
            path = (base / target).resolve()
            if not path.exists() and path.name not in OWNED_ELSEWHERE:
                broken.append(f"{page} → {target}")
    assert broken == []


def test_the_map_lists_every_page() -> None:
    listed = set(links(doc("index.md")))
    pages = {p.name for p in DOCS.glob("*.md")} - {"index.md"}
    assert pages <= listed, pages - listed


@pytest.mark.parametrize("name", sorted(gen_docs.GENERATED))
def test_generated_blocks_are_what_the_code_renders(name: str) -> None:
    file, _ = gen_docs.GENERATED[name]
    assert gen_docs.current(name) is not None, f"docs/{file} has no '<!-- generated: {name} -->' block"
    assert gen_docs.current(name) == gen_docs.rendered(name), (
        f"docs/{file} is stale: run `python -m tests.gen_docs` and commit it"
    )


def test_help_is_rendered_at_a_fixed_width() -> None:
    """The reference does not depend on the terminal it was made on: no line is wider than WIDTH."""
    text = gen_docs.cli_reference()
    wrapped = [line for line in text.splitlines() if not line.startswith(("    ", "  Examples", "  Exit"))]
    assert max(len(line) for line in wrapped) <= gen_docs.WIDTH
    for command in ("`calo-balance`", "`calo-balance report`", "`calo-balance ingest`", "`calo-balance synth`"):
        assert f"### {command}" in text


@pytest.mark.parametrize("command", sorted(cli.commands))
def test_every_option_is_in_the_cli_reference(command: str) -> None:
    reference = doc("cli.md")
    for param in cli.commands[command].params:
        for opt in getattr(param, "opts", []):
            if opt.startswith("--"):
                assert opt in reference, f"{command} {opt}"


def test_glossary_is_the_code_glossary() -> None:
    assert glossary_markdown() in doc("glossary.md")


def test_bad_input_lists_every_input_problem_kind() -> None:
    text = doc("bad-input.md")
    assert problem_kinds_markdown() in text
    for kind in PROBLEM_KINDS:
        assert f"| `{kind}` |" in text, kind


def test_every_input_problem_kind_is_made_by_a_test() -> None:
    tests = "".join(p.read_text(encoding="utf-8") for p in Path(__file__).parent.glob("test_*.py"))
    untested = [kind for kind in PROBLEM_KINDS if f'"{kind}"' not in tests]
    assert untested == []


def test_every_summary_key_is_documented(tmp_path: Path) -> None:
    result = CliRunner().invoke(cli, ["report", str(SAMPLE), "-o", str(tmp_path), "-f", "json", "-q"])
    assert result.exit_code == 0, result.output
    data = json.loads((tmp_path / "summary.json").read_text(encoding="utf-8"))
    table = doc("outputs.md").split("## summary.json", 1)[1]
    rows = [line for line in table.splitlines() if line.startswith("| `")]
    documented = {key for row in rows for key in re.findall(r"`(\w+)`", row.split(" | ", 1)[0])}
    assert set(data) <= documented, set(data) - documented
    currency = next(iter(data["totals"].values()))
    for key in [*currency, *currency["roll_forward"]]:
        assert f"`{key}`" in table, key


def test_every_fail_on_name_is_documented() -> None:
    from calo_polars.report.alerts import ALERTS, GROUPS

    text = doc("automation.md")
    for fail_on in [*ALERTS, *GROUPS]:
        assert f"| `{fail_on}` |" in text, fail_on


def test_help_documents_the_exit_codes() -> None:
    text = CliRunner().invoke(cli, ["report", "--help"]).output
    assert "Exit codes:" in text and "--strict" in text
    for code in ("0  the audit ran", "1  the same, but input problems", "2  a usage error"):
        assert code in text
    for number in range(4):
        assert f"| `{number}` |" in doc("automation.md") and f"| `{number}` |" in README
