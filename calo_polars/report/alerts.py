"""Alerts for automation: ``--fail-on`` turns findings into an exit code, ``--webhook`` posts them.

Both read the numbers of summary.json (the selection's, see ``filters``), so an alert, the
webhook message and the file a CI job archives always agree.

The webhook body is what a Slack incoming webhook accepts: ``text`` (the one-line
notification) and ``blocks`` (the message: counts, the users with most flags, the run),
plus a ``calo_balance`` object with the same numbers for machines (Slack, Mattermost and
similar services ignore keys they do not know). Delivery is best effort: one POST with a
timeout; a failure is one line on stderr and never changes the audit's exit code.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import polars as pl

from calo_polars.checks.registry import CHECK_NAMES, CHECKS, SIGNALS, alerts
from calo_polars.report.text import mrkdwn_text
from calo_polars.version import __version__

#: ``--fail-on`` name → (summary.json key, what it counts): every check, then every signal that
#: can fail a run (``checks.registry``).
ALERTS: dict[str, tuple[str, str]] = alerts()
#: Names that stand for several: every check, or everything above.
GROUPS: dict[str, tuple[str, ...]] = {"checks": CHECK_NAMES, "all": tuple(ALERTS)}
TOP_USERS = 5


@dataclass(frozen=True)
class Alert:
    """One ``--fail-on`` condition that was met: its name and how many were found."""

    name: str
    count: int

    def text(self) -> str:
        return f"{self.count:,} {self.name}"


def parse_fail_on(values: Iterable[str]) -> tuple[str, ...]:
    """``--fail-on`` values (comma-separated, repeatable, groups expanded), each once, in ``ALERTS`` order.

    Raises ``ValueError`` naming the unknown value and the choices.
    """
    names: set[str] = set()
    for value in values:
        for name in (v.strip().lower().replace("-", "_") for v in value.split(",")):
            if not name:
                continue
            if name in GROUPS:
                names.update(GROUPS[name])
            elif name in ALERTS:
                names.add(name)
            else:
                choices = ", ".join([*ALERTS, *GROUPS])
                raise ValueError(f"{name!r} is not something to fail on: choose among {choices}")
    return tuple(n for n in ALERTS if n in names)


def triggered(summary: dict[str, Any], names: Iterable[str]) -> list[Alert]:
    """The conditions among ``names`` whose count in ``summary`` is above zero."""
    found = [Alert(n, int(summary[ALERTS[n][0]])) for n in names]
    return [a for a in found if a.count > 0]


def alert_line(alerts: list[Alert], exit_code: int) -> str:
    """The one line printed when ``--fail-on`` changes the exit code."""
    return f"alert: found {', '.join(a.text() for a in alerts)} (--fail-on): exit {exit_code}"


# ---------------------------------------------------------------- the webhook


def top_users(users: pl.DataFrame, n: int = TOP_USERS) -> list[dict[str, Any]]:
    """The ``n`` users with most flags (ties: largest roll-forward difference), for the message."""
    if users.is_empty():
        return []
    rows = (
        users.filter(pl.col("flags") > 0)
        .with_columns(_abs=pl.col("difference").abs())
        .sort(["flags", "_abs", "user_id"], descending=[True, True, False])
        .head(n)
    )
    return [
        {
            "user_id": r["user_id"],
            "currency": r["currency"],
            "flags": int(r["flags"]),
            **{c.per_user: int(r[c.per_user]) for c in CHECKS},
            "difference": str(r["difference"]),
        }
        for r in rows.iter_rows(named=True)
    ]


#: What the webhook message counts: every check's flags, then every signal that can fail a run.
COUNTS = [(c.count_key, c.label) for c in CHECKS] + [(g.count_key, g.label) for g in SIGNALS if g.alert]


def webhook_payload(
    summary: dict[str, Any], top: list[dict[str, Any]], alerts: list[Alert], exit_code: int
) -> dict[str, Any]:
    """The JSON body: Slack's ``text`` and ``blocks``, and ``calo_balance`` for machines."""
    period = summary["period"]
    span = f"{(period['first'] or '?')[:10]} → {(period['last'] or '?')[:10]}"
    inputs = ", ".join(summary["inputs"])
    found = ", ".join(f"{summary[c.count_key]:,} {c.label}" for c in CHECKS)
    status = "alert" if alerts else "ok"
    head = f"calo-balance: {'ALERT ' + ', '.join(a.text() for a in alerts) if alerts else 'audit done'}"
    text = f"{head} — {summary['transactions']:,} transactions of {summary['users']:,} users ({span}): {found}"
    fields = [{"type": "mrkdwn", "text": f"*{label}*\n{summary[key]:,}"} for key, label in COUNTS]
    lines = [
        f"`{mrkdwn_text(str(u['user_id']))}` {mrkdwn_text(str(u['currency']))}: {u['flags']} flags "
        f"({', '.join(f'{c.label} {u[c.per_user]}' for c in CHECKS)}), difference {u['difference']}"
        for u in top
    ]
    blocks: list[dict[str, Any]] = [
        {"type": "header", "text": {"type": "plain_text", "text": head[:150]}},
        {
            "type": "section",
            "text": {
                "type": "mrkdwn",
                "text": f"{summary['transactions']:,} transactions of {summary['users']:,} users, {span}, "
                f"from {summary['files']:,} files ({mrkdwn_text(inputs[:500])})",
            },
        },
        # Slack shows at most 10 fields a section
        *({"type": "section", "fields": fields[i : i + 10]} for i in range(0, len(fields), 10)),
    ]
    if lines:
        blocks.append(
            {"type": "section", "text": {"type": "mrkdwn", "text": "*Users with most flags*\n" + "\n".join(lines)}}
        )
    selection = summary.get("selection") or {}
    context = f"calo-polars {__version__} · exit {exit_code}" + (
        f" · selection {mrkdwn_text(json.dumps(selection))}" if selection else ""
    )
    blocks.append({"type": "context", "elements": [{"type": "mrkdwn", "text": context[:2000]}]})
    return {
        "text": text,
        "blocks": blocks,
        "calo_balance": {
            "status": status,
            "exit_code": exit_code,
            "alerts": {a.name: a.count for a in alerts},
            "counts": {key: summary[key] for key, _ in COUNTS},
            "transactions": summary["transactions"],
            "users": summary["users"],
            "files": summary["files"],
            "period": period,
            "inputs": summary["inputs"],
            "selection": selection,
            "top_users": top,
            "version": __version__,
        },
    }


def check_url(url: str) -> str:
    """The URL if it is http(s) with a host; else ``ValueError`` (file:// and others are refused)."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(
            "give an http:// or https:// URL (a Slack incoming webhook looks like https://hooks.slack.com/services/...)"
        )
    return url


def redacted(url: str) -> str:
    """Scheme and host only: a webhook URL's path is its secret and is never printed."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc.rsplit('@', 1)[-1]}/…"


def post(url: str, payload: dict[str, Any], timeout: float = 10.0) -> str | None:
    """POST ``payload`` as JSON; None when delivered (2xx), else a one-line reason."""
    import urllib.error  # (lazy: only when a webhook is posted)
    import urllib.request

    body = json.dumps(payload, ensure_ascii=False).encode("utf-8")
    request = urllib.request.Request(
        url,
        data=body,
        method="POST",
        headers={"Content-Type": "application/json; charset=utf-8", "User-Agent": f"calo-polars/{__version__}"},
    )
    where = redacted(url)
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            response.read(1 << 16)
        return None
    except urllib.error.HTTPError as exc:
        answer = exc.read(200).decode("utf-8", "replace").strip().splitlines()
        return f"{where} answered HTTP {exc.code}" + (f": {answer[0]}" if answer else "")
    except (urllib.error.URLError, TimeoutError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        return f"cannot reach {where}: {reason}"


def alerts_markdown() -> str:
    """The ``--fail-on`` names as a Markdown table, as the README shows it (a test keeps them equal)."""
    rows = ["| `--fail-on` name | summary.json key | counts |", "|---|---|---|"]
    rows += [f"| `{name}` | `{key}` | {meaning} |" for name, (key, meaning) in ALERTS.items()]
    rows += [
        f"| `{name}` | | all of: {', '.join(members) if name != 'all' else 'every name above'} |"
        for name, members in GROUPS.items()
    ]
    return "\n".join(rows)
