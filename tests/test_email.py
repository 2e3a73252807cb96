"""E-mail alerts against a real SMTP server on 127.0.0.1 (aiosmtpd, started here): STARTTLS with a
self-signed certificate made by the test, TLS from the start, a plain server, the settings from
CALO_SMTP_* variables, a server that is down, one that refuses the login, one whose certificate
is not trusted, and one without STARTTLS. A failure is one warning line; the exit code stays."""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
import ssl
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword
from click.testing import CliRunner, Result

from calo_polars.cli.main import cli
from calo_polars.report.alerts import COUNTS, webhook_payload
from calo_polars.report.mail import MailSettings, body_text, build_message, check_address, html_report, send
from tests.servers import closed_port
from tests.test_alerts import archive

USER, PASSWORD = "calo-bot", "s3cret-pa55"
SENDER, TO = "calo-balance@example.com", ("finance@example.com", "oncall@example.com")


@dataclass
class Inbox:
    """What the server accepted: (MAIL FROM, RCPT TO, the parsed message)."""

    received: list[tuple[str, list[str], EmailMessage]] = field(default_factory=list)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        parsed = message_from_bytes(envelope.content, policy=policy.default)
        self.received.append((envelope.mail_from, list(envelope.rcpt_tos), parsed))
        return "250 OK"


def check_login(server: Any, session: Any, envelope: Any, mechanism: str, auth_data: Any) -> AuthResult:
    ok = isinstance(auth_data, LoginPassword) and (auth_data.login, auth_data.password) == (
        USER.encode(),
        PASSWORD.encode(),
    )
    return AuthResult(success=ok, handled=False)


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 and localhost: (cert.pem, key.pem)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    folder = tmp_path_factory.mktemp("tls")
    (folder / "cert.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (folder / "key.pem").write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return folder / "cert.pem", folder / "key.pem"


@contextmanager
def smtp_server(
    security: str, certificate: tuple[Path, Path] | None = None, login: bool = False
) -> Iterator[tuple[int, Inbox]]:
    """An SMTP server on 127.0.0.1: ``starttls`` (STARTTLS required), ``tls`` (TLS from the start)
    or ``none``; with ``login``, AUTH is required (after TLS) and checked against USER/PASSWORD."""
    inbox = Inbox()
    port = closed_port()
    kwargs: dict[str, Any] = {}
    if security != "none":
        assert certificate is not None
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(*certificate)
        kwargs |= (
            {"tls_context": context, "require_starttls": True} if security == "starttls" else {"ssl_context": context}
        )
    if login:
        kwargs |= {"authenticator": check_login, "auth_required": True}
    controller = Controller(inbox, hostname="127.0.0.1", port=port, **kwargs)
    controller.start()
    try:
        yield port, inbox
    finally:
        controller.stop()


def email_args(port: int, security: str = "starttls") -> list[str]:
    return ["--email-to", TO[0], "--email-to", TO[1], "--email-from", SENDER, "--smtp-host", "127.0.0.1",
            "--smtp-port", str(port), "--smtp-security", security]  # fmt: skip


def run(tmp_path: Path, *args: str, env: Mapping[str, str | None] | None = None) -> Result:
    base = {"CALO_SMTP_USER": None, "CALO_SMTP_PASSWORD": None, "SSL_CERT_FILE": None, "TTY_COMPATIBLE": "0"}
    return CliRunner().invoke(
        cli,
        ["report", str(archive(tmp_path)), "-o", str(tmp_path / "out"), "-f", "json", *args],
        env={**base, **(env or {})},
    )


def email_warnings(result: Result) -> list[str]:
    return [line for line in result.stderr.splitlines() if line.startswith("warning: email")]


def test_starttls_with_a_login_sends_the_webhook_summary(tmp_path: Path, certificate: tuple[Path, Path]) -> None:
    login = {"CALO_SMTP_USER": USER, "CALO_SMTP_PASSWORD": PASSWORD, "SSL_CERT_FILE": str(certificate[0])}
    with smtp_server("starttls", certificate, login=True) as (port, inbox):
        result = run(tmp_path, *email_args(port), "--fail-on", "overdraft", "-v", env=login)
    assert result.exit_code == 3, result.stderr  # what the audit says, e-mail or not
    assert email_warnings(result) == [] and f"email sent to {TO[0]}, {TO[1]}" in result.stderr
    assert PASSWORD not in result.stderr + result.stdout
    [(mail_from, rcpt, message)] = inbox.received
    assert mail_from == SENDER and rcpt == list(TO)
    assert message["Subject"] == "calo-balance: ALERT 1 overdraft"
    assert message["To"] == ", ".join(TO) and message["From"] == SENDER
    body = message.get_body(("plain",))
    assert body is not None
    text = body.get_content().replace("\r\n", "\n")
    assert text.startswith("calo-balance: ALERT 1 overdraft — 4 transactions of 3 users (2024-02-10 → 2024-02-13)")
    for line in ("overdrafts: 1", "flow breaks: 1", "mismatches: 0", "input problems: 1", "exit 3"):
        assert line in text, line
    assert "\nUsers with most flags\n" in text
    assert list(message.iter_attachments()) == []  # no HTML report was written


def test_tls_from_the_start(tmp_path: Path, certificate: tuple[Path, Path]) -> None:
    with smtp_server("tls", certificate) as (port, inbox):
        result = run(tmp_path, *email_args(port, "tls"), env={"SSL_CERT_FILE": str(certificate[0])})
    assert result.exit_code == 0 and email_warnings(result) == [], result.stderr
    assert len(inbox.received) == 1 and inbox.received[0][2]["Subject"] == "calo-balance: audit done"


def test_every_setting_from_the_environment_and_email_on_alert(tmp_path: Path) -> None:
    with smtp_server("none") as (port, inbox):
        env = {"CALO_SMTP_TO": f"{TO[0]},{TO[1]}", "CALO_SMTP_FROM": SENDER, "CALO_SMTP_HOST": "127.0.0.1",
               "CALO_SMTP_PORT": str(port), "CALO_SMTP_SECURITY": "none"}  # fmt: skip
        quiet = run(tmp_path, "--email-on", "alert", "--fail-on", "mismatch", env=env)
        assert quiet.exit_code == 0 and inbox.received == []  # no alert, nothing sent
        alert = run(tmp_path, "--email-on", "alert", "--fail-on", "flow_break", "-q", env=env)
    assert alert.exit_code == 3 and email_warnings(alert) == []
    [(_, rcpt, message)] = inbox.received
    assert rcpt == list(TO) and message["Subject"] == "calo-balance: ALERT 1 flow_break"


@pytest.mark.parametrize("quiet", [False, True])
def test_a_server_that_is_down_is_one_warning_line(tmp_path: Path, quiet: bool) -> None:
    port = closed_port()
    result = run(tmp_path, *email_args(port, "none"), "--fail-on", "overdraft", *(["-q"] if quiet else []))
    assert result.exit_code == 3
    [line] = email_warnings(result)
    assert line.startswith(f"warning: email not sent: cannot reach 127.0.0.1:{port}: ")
    assert line.endswith("(the exit code is unchanged)") and "Traceback" not in result.stderr
    assert (tmp_path / "out" / "summary.json").exists()


def test_a_refused_login_is_one_warning_line(tmp_path: Path, certificate: tuple[Path, Path]) -> None:
    env = {"CALO_SMTP_USER": USER, "CALO_SMTP_PASSWORD": "wrong-password", "SSL_CERT_FILE": str(certificate[0])}
    with smtp_server("starttls", certificate, login=True) as (port, inbox):
        result = run(tmp_path, *email_args(port), env=env)
    assert result.exit_code == 0 and inbox.received == []
    [line] = email_warnings(result)
    assert line.startswith(f"warning: email not sent: 127.0.0.1:{port} refused the login of CALO_SMTP_USER: 535")
    assert "wrong-password" not in result.stderr


def test_an_untrusted_certificate_is_one_warning_line(tmp_path: Path, certificate: tuple[Path, Path]) -> None:
    with smtp_server("starttls", certificate) as (port, inbox):
        result = run(tmp_path, *email_args(port), "--strict")  # the self-signed cert is not trusted here
    assert result.exit_code == 1 and inbox.received == []  # --strict's 1 (an input problem), unchanged
    [line] = email_warnings(result)
    assert line.startswith(f"warning: email not sent: TLS with 127.0.0.1:{port} failed: ")
    assert line.endswith("its certificate is not trusted (self-signed certificate) (the exit code is unchanged)")


def test_starttls_asked_of_a_server_without_it_is_one_warning_line(tmp_path: Path) -> None:
    with smtp_server("none") as (port, inbox):
        result = run(tmp_path, *email_args(port, "starttls"))
    assert result.exit_code == 0 and inbox.received == []
    [line] = email_warnings(result)
    assert "does not support that" in line and "STARTTLS" in line


@pytest.mark.parametrize(
    ("args", "env", "message"),
    [
        (["--email-to", TO[0], "--email-from", SENDER], {}, "--email-to needs an SMTP server: give --smtp-host"),
        (["--email-to", TO[0], "--smtp-host", "127.0.0.1"], {}, "--email-to needs a sender: give --email-from"),
        (["--email-to", "finance@example.com\nBcc: all@example.com", "--email-from", SENDER, "--smtp-host", "h"], {},
         "is not one e-mail address"),
        (["--email-to", "nobody", "--email-from", SENDER, "--smtp-host", "h"], {},
         "'nobody' is not one e-mail address"),
        (["--email-to", TO[0], "--email-from", SENDER, "--smtp-host", "h", "--smtp-security", "none"],
         {"CALO_SMTP_USER": USER, "CALO_SMTP_PASSWORD": PASSWORD}, "a login is never sent unencrypted"),
        (["--email-to", TO[0], "--email-from", SENDER, "--smtp-host", "h"], {"CALO_SMTP_PASSWORD": PASSWORD},
         "CALO_SMTP_PASSWORD is set but CALO_SMTP_USER is not"),
    ],
)  # fmt: skip
def test_usage_errors_exit_2_before_anything_runs(
    tmp_path: Path, args: list[str], env: dict[str, str], message: str
) -> None:
    result = run(tmp_path, *args, env=env)
    assert result.exit_code == 2 and message in result.stderr, result.stderr
    assert not (tmp_path / "out").exists()


def test_the_html_report_of_this_run_is_attached(tmp_path: Path) -> None:
    """report.html written by this run is attached as it is; an older one left in the folder is not."""
    out = tmp_path / "out"
    out.mkdir()
    stale = out / "report.html"
    stale.write_text("<p>an earlier run</p>", encoding="utf-8")
    with smtp_server("none") as (port, inbox):
        os.utime(stale, (1_000_000_000, 1_000_000_000))
        result = run(tmp_path, *email_args(port, "none"))
        assert result.exit_code == 0 and email_warnings(result) == []
        assert list(inbox.received[0][2].iter_attachments()) == []  # not this run's
        html = "<!doctype html><title>calo</title><p>Overview \u2014 16,300 transactions</p>\n".encode()
        stale.write_bytes(html)  # as the HTML report writes it, during the run
        summary = {"transactions": 4, "users": 3, "files": 4, "inputs": ["logs.zip"],
                   "period": {"first": "2024-02-10", "last": "2024-02-12"}}  # fmt: skip
        summary |= dict.fromkeys((key for key, _ in COUNTS), 0)  # every count the message shows
        settings = MailSettings(TO, SENDER, "127.0.0.1", port, "none")
        attached = html_report(out, since=stale.stat().st_mtime)
        assert attached == [stale]
        assert send(settings, build_message(settings, webhook_payload(summary, [], [], 0), attached)) is None
    [attachment] = list(inbox.received[1][2].iter_attachments())
    assert attachment.get_filename() == "report.html" and attachment.get_content_type() == "text/html"
    assert attachment.get_payload(decode=True) == html


def test_the_body_is_the_webhook_payload_as_text() -> None:
    payload = {
        "text": "calo-balance: audit done — 1 transactions",
        "blocks": [
            {"type": "header", "text": {"type": "plain_text", "text": "calo-balance: audit done"}},
            {"type": "section", "text": {"type": "mrkdwn", "text": "1 transactions of 1 users"}},
            {"type": "section", "fields": [{"type": "mrkdwn", "text": "*overdrafts*\n2"}]},
            {"type": "context", "elements": [{"type": "mrkdwn", "text": "calo-polars 0.1.0 · exit 0"}]},
        ],
    }
    assert body_text(payload) == (
        "calo-balance: audit done — 1 transactions\n\n1 transactions of 1 users\n\noverdrafts: 2\n\n"
        "calo-polars 0.1.0 · exit 0\n"
    )


def test_addresses() -> None:
    assert check_address("Finance <finance@example.com>") == "Finance <finance@example.com>"
    for bad in ("finance@example.com, boss@example.com", "a@b", "@example.com", "x\r\nBcc: y@example.com", ""):
        with pytest.raises(ValueError):
            check_address(bad)
