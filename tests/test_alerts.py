"""Alerts for automation: --fail-on exit codes, --quiet for cron, and the webhook posted to a
real HTTP server on 127.0.0.1 (delivered, refused with 500, and nobody listening)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from calo_polars.cli.main import cli
from calo_polars.report.alerts import ALERTS, GROUPS, parse_fail_on
from tests.logbuilder import Log, full_tx, rid, uid, write_zip
from tests.servers import closed_port, webhook_receiver


def archive(tmp_path: Path) -> Path:
    """One flow break (user 1) and one overdraft (user 2), and one truncated file (an input problem)."""
    logs = {
        "2024-02-10-[$LATEST]a": Log().invocation(rid(1), 0, full_tx(1, uid(1), 36, 31.5, 4.5)).gz(),
        "2024-02-11-[$LATEST]b": Log().invocation(rid(2), 86400, full_tx(2, uid(1), 36, 28, 8)).gz(),
        "2024-02-12-[$LATEST]c": Log().invocation(rid(3), 2 * 86400, full_tx(3, uid(2), 5, -3, 8)).gz(),
        "2024-02-13-[$LATEST]d": Log().invocation(rid(4), 3 * 86400, full_tx(4, uid(3), 9, 8, 1)).gz()[:-9],
    }
    return write_zip(tmp_path / "logs.zip", logs)


def run(tmp_path: Path, *args: str, env: dict[str, str | None] | None = None) -> Result:
    return CliRunner().invoke(
        cli, ["report", str(archive(tmp_path)), "-o", str(tmp_path / "out"), "-f", "json", *args], env=env
    )


def test_fail_on_names_and_groups() -> None:
    assert parse_fail_on(["overdraft,mismatch", "overdraft"]) == ("overdraft", "mismatch")
    assert parse_fail_on(["checks"]) == GROUPS["checks"] and parse_fail_on(["all"]) == tuple(ALERTS)
    assert parse_fail_on(["Flow-Break"]) == ("flow_break",)
    with pytest.raises(ValueError, match="'overdrafts' is not something to fail on: choose among overdraft, mismatch"):
        parse_fail_on(["overdrafts"])


def test_exit_codes_0_1_3(tmp_path: Path) -> None:
    assert run(tmp_path).exit_code == 0
    assert run(tmp_path, "--fail-on", "mismatch,delta_anomaly").exit_code == 0
    assert run(tmp_path, "--strict").exit_code == 1
    found = run(tmp_path, "--fail-on", "overdraft,mismatch")
    assert found.exit_code == 3
    assert re.search(r"^ALERT +found 1 overdraft \(--fail-on\): exit 3$", found.stderr, re.M)
    assert run(tmp_path, "--strict", "--fail-on", "checks").exit_code == 3  # 3 wins over 1
    assert run(tmp_path, "--fail-on", "input_problem").exit_code == 3
    bad = run(tmp_path, "--fail-on", "overdrafts")
    assert bad.exit_code == 2 and "choose among overdraft, mismatch, flow_break" in bad.stderr


def test_quiet_prints_nothing_unless_the_exit_code_says_something(tmp_path: Path) -> None:
    ok = run(tmp_path, "-q")
    assert (ok.exit_code, ok.stdout, ok.stderr) == (0, "", "")
    assert json.loads((tmp_path / "out" / "summary.json").read_text())["flow_breaks"] == 1  # still written
    alert = run(tmp_path, "--quiet", "--fail-on", "flow_break,overdraft")
    assert (alert.exit_code, alert.stdout) == (3, "")
    assert alert.stderr == "alert: found 1 overdraft, 1 flow_break (--fail-on): exit 3\n"
    strict = run(tmp_path, "-q", "--strict")
    assert strict.stderr == "calo-balance: 1 input problems (--strict): exit 1\n"
    assert run(tmp_path, "-q", "-v").exit_code == 2


def test_verbose_prints_timings_and_settings(tmp_path: Path) -> None:
    result = run(tmp_path, "-v")
    assert result.exit_code == 0
    took = [line for line in result.stderr.splitlines() if line.startswith("took ")]
    assert len(took) == 1 and re.match(r"took [\d.]+ s: read [\d.]+ s, checks [\d.]+ s; settings ", took[0])
    assert "'sigma': 3.0" in took[0]


def test_webhook_posts_a_slack_message_with_the_summary(tmp_path: Path) -> None:
    with webhook_receiver() as (url, received):
        result = run(tmp_path, "--webhook", url, "--fail-on", "checks")
    assert result.exit_code == 3 and "warning: webhook" not in result.stderr
    assert len(received.requests) == 1
    request = received.requests[0]
    assert request["path"] == "/services/T000/B000/secret-token"
    assert request["headers"]["Content-Type"].startswith("application/json")
    body = received.bodies[0]
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert body["text"].startswith("calo-balance: ALERT 1 overdraft, 1 flow_break — 4 transactions of 3 users")
    # header, the run, every count (Slack takes 10 fields a section), the users, the context
    assert [b["type"] for b in body["blocks"]] == ["header", "section", "section", "section", "section", "context"]
    fields = [f["text"] for b in body["blocks"][2:4] for f in b["fields"]]
    assert len(fields) == len(body["calo_balance"]["counts"]) == len(ALERTS)
    assert body["calo_balance"]["counts"]["flow_breaks"] == summary["flow_breaks"] == 1
    assert (
        body["calo_balance"]["alerts"] == {"overdraft": 1, "flow_break": 1} and body["calo_balance"]["exit_code"] == 3
    )
    assert [u["user_id"] for u in body["calo_balance"]["top_users"]] == sorted([uid(1), uid(2)])
    assert uid(1) in body["blocks"][4]["text"]["text"]


def test_webhook_failure_is_one_warning_and_keeps_the_exit_code(tmp_path: Path) -> None:
    with webhook_receiver(status=500, answer=b"internal_error") as (url, received):
        refused = run(tmp_path, "--webhook", url)
    assert refused.exit_code == 0 and len(received.requests) == 1
    warnings = [line for line in refused.stderr.splitlines() if line.startswith("warning: webhook")]
    assert warnings == [
        f"warning: webhook not delivered: {url.split('/services')[0]}/… answered HTTP 500: internal_error (the exit "
        "code is unchanged)"
    ]
    assert "secret-token" not in refused.stderr + refused.stdout
    down = run(tmp_path, "--webhook", f"http://127.0.0.1:{closed_port()}/hook", "--fail-on", "overdraft")
    assert down.exit_code == 3
    assert next(line for line in down.stderr.splitlines() if line.startswith("warning: webhook")).startswith(
        "warning: webhook not delivered: cannot reach http://127.0.0.1:"
    )


def test_webhook_on_alert_only_and_from_the_environment(tmp_path: Path) -> None:
    with webhook_receiver() as (url, received):
        assert run(tmp_path, "--webhook-on", "alert", env={"CALO_WEBHOOK_URL": url}).exit_code == 0
        assert received.requests == []
        assert (
            run(tmp_path, "--webhook-on", "alert", "--fail-on", "overdraft", env={"CALO_WEBHOOK_URL": url}).exit_code
            == 3
        )
        assert len(received.requests) == 1
    assert run(tmp_path, "--webhook", "file:///etc/passwd").exit_code == 2
