"""The README cannot drift from the code: glossary, commands and options."""

from __future__ import annotations

from pathlib import Path

from calo_polars.cli.main import cli
from calo_polars.problems import PROBLEM_KINDS, problem_kinds_markdown
from calo_polars.report.columns import glossary_markdown

README = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")


def test_readme_begins_with_the_two_commands() -> None:
    block = README.split("```sh\n", 1)[1].split("```", 1)[0].splitlines()
    assert [line.split("#")[0].strip() for line in block] == ["make run", "make test"]


def test_readme_glossary_is_the_code_glossary() -> None:
    assert glossary_markdown() in README


def test_every_report_option_is_documented() -> None:
    for param in cli.commands["report"].params:
        for opt in getattr(param, "opts", []):
            if opt.startswith("--"):
                assert opt in README, opt


def test_readme_lists_every_input_problem_kind() -> None:
    assert problem_kinds_markdown() in README


def test_every_input_problem_kind_is_made_by_a_test() -> None:
    tests = "".join(p.read_text(encoding="utf-8") for p in Path(__file__).parent.glob("test_*.py"))
    untested = [kind for kind in PROBLEM_KINDS if f'"{kind}"' not in tests]
    assert untested == []


def test_help_documents_the_exit_codes() -> None:
    from click.testing import CliRunner

    text = CliRunner().invoke(cli, ["report", "--help"]).output
    assert "Exit codes:" in text and "--strict" in text
    for code in ("0  the audit ran", "1  the same, but input problems", "2  a usage error"):
        assert code in text


def test_every_synth_option_is_documented() -> None:
    for param in cli.commands["synth"].params:
        for opt in getattr(param, "opts", []):
            if opt.startswith("--"):
                assert opt in README, opt
