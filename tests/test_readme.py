"""The README's examples run as written.

Every fenced block after a ``<!-- runnable -->`` marker is run, in README order, in one
temporary folder holding the bundled sample as ``balance-sync-logs.zip``, with ``calo-balance``
on the PATH, a moto S3 server holding the sample as ``s3://my-bucket/exports/balance-sync/``
(``AWS_ENDPOINT_URL`` points at it) and a webhook receiver as ``$SLACK_WEBHOOK_URL``.
``<!-- runnable: exit N -->`` expects that exit code; ``duckdb`` blocks run each SQL statement
with DuckDB, ``python`` blocks with this interpreter. Every other ``calo-balance`` command line
in the README (cron, CI, synopsis examples) must at least parse.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path
from typing import Any

import click
import duckdb
import pytest

from calo_polars.cli.main import cli
from tests.servers import AWS_ENV, moto_s3, webhook_receiver

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text(encoding="utf-8")
SAMPLE = ROOT / "examples" / "sample-logs.zip"
BLOCK = re.compile(r"<!-- runnable(?::\s*(?P<how>[^>]*?))?\s*-->\n```(?P<lang>\w*)\n(?P<body>.*?)```", re.S)
FENCE = re.compile(r"```\w*\n(.*?)```", re.S)


def runnable_blocks() -> list[tuple[str, str, str]]:
    """(how, language, body) of every runnable block, in README order."""
    return [(m["how"] or "", m["lang"], m["body"]) for m in BLOCK.finditer(README)]


def test_the_readme_has_runnable_examples_for_each_user() -> None:
    blocks = runnable_blocks()
    text = "\n".join(body for _, _, body in blocks)
    assert len(blocks) >= 8
    for needle in ("-o reports", "--since", "s3://", "--format parquet", "--fail-on", "CALO_WEBHOOK_URL"):
        assert needle in text, needle
    assert {lang for _, lang, _ in blocks} >= {"sh", "sql", "python"}


def upload_sample(s3_client: Any, bucket: str, prefix: str) -> int:
    """The sample's log members as CloudWatch writes them to S3."""
    s3_client.create_bucket(Bucket=bucket)
    n = 0
    with zipfile.ZipFile(SAMPLE) as zf:
        for info in zf.infolist():
            if info.is_dir() or "__MACOSX" in info.filename or info.filename.endswith(".DS_Store"):
                continue
            key = prefix + info.filename.split("/", 1)[1]
            s3_client.put_object(Bucket=bucket, Key=key, Body=zf.read(info))
            n += 1
    return n


def test_readme_examples_run_as_written(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    shutil.copy(SAMPLE, tmp_path / "balance-sync-logs.zip")
    with moto_s3() as s3, webhook_receiver() as (hook, received):
        assert upload_sample(s3.client, "my-bucket", "exports/balance-sync/") > 100
        env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "CALO_"))}
        env.update(AWS_ENV, AWS_ENDPOINT_URL=s3.endpoint, SLACK_WEBHOOK_URL=hook, TTY_COMPATIBLE="0")
        env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
        monkeypatch.chdir(tmp_path)
        for how, _lang, body in runnable_blocks():
            if how == "duckdb":
                for statement in filter(str.strip, body.split(";")):
                    relation = duckdb.sql(statement)  # None for a statement that returns no rows
                    assert relation is not None and relation.fetchall(), statement
                continue
            command = [sys.executable, "-c", body] if how == "python" else ["bash", "-e", "-o", "pipefail", "-c", body]
            done = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, check=False)
            expected = int(how.split()[1]) if how.startswith("exit") else 0
            assert done.returncode == expected, f"{body}\n--- exit {done.returncode}\n{done.stdout}\n{done.stderr}"
        assert received.requests, "the webhook example posted nothing"
    assert (tmp_path / "reports" / "calo_balance_reports.xlsx").exists()
    assert (tmp_path / "out" / "transactions.parquet").exists()


def readme_commands() -> list[str]:
    """Every ``calo-balance`` command line in the README's code blocks, placeholders aside."""
    found = []
    for block in FENCE.findall(README):
        for line in block.splitlines():
            if "calo-balance " not in line or "[" in line.split("calo-balance", 1)[1] or "..." in line:
                continue
            command = "calo-balance" + line.split("calo-balance", 1)[1]
            command = re.sub(r"\$\([^)]*\)", "2024-01-01", command.replace("\\%", "%"))
            found.append(re.split(r"\s+\|\|?\s+", command)[0].split("#")[0].strip())
    return found


def test_every_command_in_the_readme_parses(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SLACK_WEBHOOK_URL", "https://hooks.slack.com/services/T000/B000/XXXX")
    commands = readme_commands()
    assert len(commands) >= 15
    for command in commands:
        args = shlex.split(os.path.expandvars(command))[1:]
        if args in (["--version"], []):
            continue
        sub = cli.commands[args[0]]
        try:
            sub.make_context(args[0], args[1:])
        except click.ClickException as exc:
            pytest.fail(f"{command}: {exc.format_message()}")


def test_the_summary_table_shown_is_what_the_command_prints(tmp_path: Path) -> None:
    from click.testing import CliRunner

    shown = README.split("```text\nfiles ", 1)[1].split("```", 1)[0]
    result = CliRunner().invoke(
        cli,
        ["report", str(SAMPLE), "-o", str(tmp_path), "-f", "json", "--fail-on", "overdraft"],
        env={"TTY_COMPATIBLE": "0"},
    )
    assert result.exit_code == 3
    printed = "\n".join(line for line in result.stderr.splitlines() if not line.startswith("warning: "))
    assert printed + "\n" == "files " + shown
