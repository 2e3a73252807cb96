"""The examples in README.md and docs/*.md run as written.

Every fenced block after a ``<!-- runnable -->`` marker is run, in file order, each file in its
own temporary folder holding the bundled sample as ``balance-sync-logs.zip``, with
``calo-balance`` on the PATH, a moto S3 server holding the sample as
``s3://my-bucket/exports/balance-sync/`` (``AWS_ENDPOINT_URL`` points at it) and a webhook
receiver as ``$SLACK_WEBHOOK_URL``: a reader can follow any one page on its own.
``<!-- runnable: exit N -->`` expects that exit code; ``duckdb`` blocks run each SQL statement
with DuckDB, ``python`` blocks with this interpreter. Every other ``calo-balance`` command line
in a code block (cron, CI, examples) must at least parse.
"""

from __future__ import annotations

import ast
import os
import re
import shlex
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import click
import duckdb
import pytest

import calo_polars
from calo_polars.cli.main import cli
from tests.servers import AWS_ENV, moto_s3, webhook_receiver

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "examples" / "sample-logs.zip"
BLOCK = re.compile(r"<!-- runnable(?::\s*(?P<how>[^>]*?))?\s*-->\n```(?P<lang>\w*)\n(?P<body>.*?)```", re.S)
FENCE = re.compile(r"```\w*\n(.*?)```", re.S)
GENERATED = re.compile(r"<!-- generated: (\S+)[^>]*-->\n.*?^<!-- /generated: \1 -->", re.S | re.M)


def doc_files() -> list[Path]:
    """README.md, then every page of docs/ by name."""
    return [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


def text_of(path: Path) -> str:
    return path.read_text(encoding="utf-8")


README = text_of(ROOT / "README.md")


def runnable_blocks(text: str) -> list[tuple[str, str, str]]:
    """(how, language, body) of every runnable block of ``text``, in order."""
    return [(m["how"] or "", m["lang"], m["body"]) for m in BLOCK.finditer(text)]


def name(path: Path) -> str:
    return path.relative_to(ROOT).as_posix()


RUNNABLE = [path for path in doc_files() if runnable_blocks(text_of(path))]


def test_the_readme_has_runnable_examples_for_each_user() -> None:
    blocks = runnable_blocks(README)
    text = "\n".join(body for _, _, body in blocks)
    assert len(blocks) >= 7
    for needle in ("-o reports", "--since", "--currency", "--user", "s3://", "--format parquet", "--fail-on"):
        assert needle in text, needle
    assert "CALO_WEBHOOK_URL" in text
    assert {lang for _, lang, _ in blocks} >= {"sh", "sql", "python"}


def test_the_readme_python_example_uses_the_public_api() -> None:
    python = [body for how, _, body in runnable_blocks(README) if how == "python"]
    assert python
    imported = [
        (node.module, alias.name)
        for body in python
        for node in ast.walk(ast.parse(body))
        if isinstance(node, ast.ImportFrom)
        for alias in node.names
    ]
    ours = [(module, n) for module, n in imported if (module or "").startswith("calo_polars")]
    assert ours and all(module == "calo_polars" for module, _ in ours), ours
    assert {n for _, n in ours} <= set(calo_polars.__all__)
    assert {"AuditOptions", "audit", "write_outputs", "Selection"} <= {n for _, n in ours}


def test_the_moved_examples_are_still_runnable() -> None:
    """What the README ran before it was cut down still runs, on the page it moved to."""
    everywhere = "\n".join(body for path in RUNNABLE for _, _, body in runnable_blocks(text_of(path)))
    for needle in (
        "--state reports/calo.state",
        "ingest balance-sync-logs.zip --into store",
        "report --from store",
        "grep -c '\\.parquet$'",
        "out/transactions.parquet",
        "calo-balance synth -o",
    ):
        assert needle in everywhere, needle


def upload_sample(s3_client: object, bucket: str, prefix: str) -> int:
    """The sample's log members as CloudWatch writes them to S3."""
    s3_client.create_bucket(Bucket=bucket)  # type: ignore[attr-defined]
    n = 0
    with zipfile.ZipFile(SAMPLE) as zf:
        for info in zf.infolist():
            if info.is_dir() or "__MACOSX" in info.filename or info.filename.endswith(".DS_Store"):
                continue
            key = prefix + info.filename.split("/", 1)[1]
            s3_client.put_object(Bucket=bucket, Key=key, Body=zf.read(info))  # type: ignore[attr-defined]
            n += 1
    return n


@pytest.mark.parametrize("page", RUNNABLE, ids=name)
def test_examples_run_as_written(page: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    blocks = runnable_blocks(text_of(page))
    shutil.copy(SAMPLE, tmp_path / "balance-sync-logs.zip")
    with moto_s3() as s3, webhook_receiver() as (hook, received):
        assert upload_sample(s3.client, "my-bucket", "exports/balance-sync/") > 100
        env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "CALO_"))}
        env.update(AWS_ENV, AWS_ENDPOINT_URL=s3.endpoint, SLACK_WEBHOOK_URL=hook, TTY_COMPATIBLE="0")
        env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
        monkeypatch.chdir(tmp_path)
        for how, _lang, body in blocks:
            if how == "duckdb":
                for statement in filter(str.strip, body.split(";")):
                    relation = duckdb.sql(statement)
                    assert relation is not None and relation.fetchall(), statement
                continue
            command = [sys.executable, "-c", body] if how == "python" else ["bash", "-e", "-o", "pipefail", "-c", body]
            done = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, check=False)
            expected = int(how.split()[1]) if how.startswith("exit") else 0
            assert done.returncode == expected, f"{body}\n--- exit {done.returncode}\n{done.stdout}\n{done.stderr}"
        if any("WEBHOOK_URL" in body for _, _, body in blocks):
            assert received.requests, "the webhook example posted nothing"
    if page.name == "README.md":
        assert (tmp_path / "reports" / "calo_balance_reports.xlsx").exists()
        assert (tmp_path / "out" / "transactions.parquet").exists()
        assert (tmp_path / "out" / "january" / "summary.json").exists()


def doc_commands(text: str) -> list[str]:
    """Every ``calo-balance`` command line in the code blocks of ``text``, placeholders aside.

    The generated ``--help`` text (docs/cli.md) is left out: it is the code's own output.
    """
    found = []
    for block in FENCE.findall(GENERATED.sub("", text)):
        for line in re.sub(r"\\\n\s*", " ", block).splitlines():  # continued lines joined
            if "calo-balance " not in line or "[" in line.split("calo-balance", 1)[1] or "..." in line:
                continue
            command = "calo-balance" + line.split("calo-balance", 1)[1]
            command = re.sub(r"\$\([^)]*\)", "2024-01-01", command.replace("\\%", "%"))
            found.append(re.split(r"\s+\|\|?\s+", command)[0].split("#")[0].strip())
    return found


def test_every_command_in_the_docs_parses(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SLACK_WEBHOOK_URL", "https://hooks.slack.com/services/T000/B000/XXXX")
    commands = {(name(path), command) for path in doc_files() for command in doc_commands(text_of(path))}
    assert len(commands) >= 25
    assert len([c for page, c in commands if page == "README.md"]) >= 8
    # Under the group's context, as the program parses them: a subcommand parsed on its own
    # would cache a help option without the group's ``-h`` and change every later --help.
    parent = cli.make_context("calo-balance", [], resilient_parsing=True)
    for page, command in sorted(commands):
        args = shlex.split(os.path.expandvars(command))[1:]
        if args in (["--version"], []):
            continue
        sub = cli.commands[args[0]]
        try:
            sub.make_context(args[0], args[1:], parent=parent)
        except click.ClickException as exc:
            pytest.fail(f"{page}: {command}: {exc.format_message()}")


def test_the_summary_table_shown_is_what_the_command_prints(tmp_path: Path) -> None:
    from click.testing import CliRunner

    pages = [path for path in doc_files() if "```text\nfiles " in text_of(path)]
    assert [name(p) for p in pages] == ["docs/automation.md"]
    shown = text_of(pages[0]).split("```text\nfiles ", 1)[1].split("```", 1)[0]
    result = CliRunner().invoke(
        cli,
        ["report", str(SAMPLE), "-o", str(tmp_path), "-f", "json", "--fail-on", "overdraft"],
        env={"TTY_COMPATIBLE": "0"},
    )
    assert result.exit_code == 3
    printed = "\n".join(line for line in result.stderr.splitlines() if not line.startswith("warning: "))
    assert printed + "\n" == "files " + shown
