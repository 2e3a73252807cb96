"""Email alerts: the webhook's summary as a plain-text message, sent with the stdlib ``smtplib``.

The message is built from ``alerts.webhook_payload`` (so an e-mail, a Slack message and
summary.json always agree) and carries the HTML report as an attachment when the run wrote one.
Delivery is best effort, like the webhook's: one connection with a timeout; a server that is
down, refuses the login or the recipients, or whose certificate does not verify, is one line
on stderr and never changes the audit's exit code. The login comes only from the environment
(``CALO_SMTP_USER``, ``CALO_SMTP_PASSWORD``) and is never printed nor sent over a connection
that is not encrypted.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from email.utils import formatdate, make_msgid, parseaddr
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import smtplib
    from email.message import EmailMessage

#: ``--smtp-security`` → the port used when ``--smtp-port`` is not given.
SECURITY_PORTS = {"starttls": 587, "tls": 465, "none": 25}
#: The HTML report's file name in the output folder (attached when this run wrote it).
HTML_REPORT = "report.html"


@dataclass(frozen=True)
class MailSettings:
    """Where and how to send: recipients, sender, server, security and the optional login."""

    to: tuple[str, ...]
    sender: str
    host: str
    port: int
    security: str = "starttls"
    user: str | None = None
    password: str | None = None
    timeout: float = 10.0

    def where(self) -> str:
        return f"{self.host}:{self.port}"


def check_address(value: str) -> str:
    """``value`` if it is one plain e-mail address (``name@domain``); else ``ValueError``.

    Line breaks and commas are refused, so a value can never add a header or a recipient."""
    _, address = parseaddr(value)
    if any(c in value for c in "\r\n,") or not address or address.count("@") != 1 or " " in address:
        raise ValueError(f"{value!r} is not one e-mail address (name@example.com)")
    local, domain = address.split("@")
    if not local or "." not in domain.strip("."):
        raise ValueError(f"{value!r} is not one e-mail address (name@example.com)")
    return value.strip()


def body_text(payload: dict[str, Any]) -> str:
    """The webhook's blocks as plain text: the notification line, the run, the counts, the users
    with most flags and the context line (Slack's ``*bold*`` dropped)."""
    lines = [payload["text"], ""]
    for block in payload["blocks"][1:]:
        if block["type"] == "section" and "fields" in block:
            lines += [f.get("text", "").replace("*", "").replace("\n", ": ") for f in block["fields"]]
        elif block["type"] == "section":
            lines.append(block["text"]["text"].replace("*", ""))
        elif block["type"] == "context":
            lines += [e["text"] for e in block["elements"]]
        lines.append("")
    return "\n".join(lines).rstrip() + "\n"


def build_message(settings: MailSettings, payload: dict[str, Any], attachments: Iterable[Path] = ()) -> EmailMessage:
    """The e-mail: subject = the webhook's header, body = its blocks as text, plus attachments."""
    from email.message import EmailMessage  # (lazy: only when an e-mail is sent)

    message = EmailMessage()
    message["Subject"] = payload["blocks"][0]["text"]["text"]
    message["From"] = settings.sender
    message["To"] = ", ".join(settings.to)
    message["Date"] = formatdate(usegmt=True)
    message["Message-ID"] = make_msgid("calo-balance", domain=parseaddr(settings.sender)[1].split("@")[-1])
    message.set_content(body_text(payload))
    for path in attachments:
        subtype = "html" if path.suffix == ".html" else "octet-stream"
        maintype = "text" if subtype == "html" else "application"
        message.add_attachment(path.read_bytes(), maintype=maintype, subtype=subtype, filename=path.name)
    return message


def html_report(outdir: str | Path, since: float) -> list[Path]:
    """The HTML report when this run wrote it (modified at or after ``since``, a ``time.time()``):
    an older report.html left in the folder is not this run's and is never attached."""
    path = Path(outdir) / HTML_REPORT
    try:
        return [path] if path.is_file() and path.stat().st_mtime >= since - 1 else []
    except OSError:
        return []


def send(settings: MailSettings, message: EmailMessage) -> str | None:
    """Send ``message``; None when the server accepted it for every recipient, else a one-line reason."""
    import smtplib  # (lazy: only when an e-mail is sent)
    import ssl

    where = settings.where()
    context = ssl.create_default_context()
    try:
        if settings.security == "tls":
            server: smtplib.SMTP = smtplib.SMTP_SSL(
                settings.host, settings.port, timeout=settings.timeout, context=context
            )
        else:
            server = smtplib.SMTP(settings.host, settings.port, timeout=settings.timeout)
        with server:
            if settings.security == "starttls":
                server.starttls(context=context)
            if settings.user:
                server.login(settings.user, settings.password or "")
            refused = server.send_message(message)
        if refused:
            return f"{where} refused {', '.join(sorted(refused))}"
        return None
    except smtplib.SMTPAuthenticationError as exc:
        return f"{where} refused the login of CALO_SMTP_USER: {_answer(exc)}"
    except smtplib.SMTPNotSupportedError as exc:
        return f"{where} does not support that: {exc} (try --smtp-security tls or none)"
    except smtplib.SMTPRecipientsRefused as exc:
        return f"{where} refused every recipient ({', '.join(sorted(exc.recipients))})"
    except smtplib.SMTPResponseException as exc:
        return f"{where} answered {_answer(exc)}"
    except ssl.SSLCertVerificationError as exc:
        return f"TLS with {where} failed: its certificate is not trusted ({exc.verify_message or exc.reason})"
    except ssl.SSLError as exc:
        return f"TLS with {where} failed: {exc.reason or exc}"
    except (smtplib.SMTPException, OSError) as exc:
        return f"cannot reach {where}: {exc}"


def _answer(exc: smtplib.SMTPResponseException) -> str:
    text = exc.smtp_error.decode("utf-8", "replace") if isinstance(exc.smtp_error, bytes) else str(exc.smtp_error)
    return f"{exc.smtp_code} {' '.join(text.split())}"[:200]
