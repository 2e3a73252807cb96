"""The README cannot drift from the code: glossary, commands and options."""

from __future__ import annotations

from pathlib import Path

from calo_polars.cli import cli
from calo_polars.columns import glossary_markdown

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


def test_every_synth_option_is_documented() -> None:
    for param in cli.commands["synth"].params:
        for opt in getattr(param, "opts", []):
            if opt.startswith("--"):
                assert opt in README, opt
