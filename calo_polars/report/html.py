"""report.html: the audit as one self-contained web page, for people who look rather than open Excel.

Every style and the few lines of script are inline and the charts are SVG drawn here, so the
file works offline, from a folder or an e-mail attachment, and fetches nothing when opened (its
Content-Security-Policy forbids it). The numbers are the summary dict's (``report.summary``), the
registry's and the flags' — the same the workbook, summary.json and the terminal show. Every text
that comes from the logs (user ids, reasons, file names) passes through ``esc``: the page has no
other way in for them, so a user id ``<script>…`` is shown, never run.
"""

from __future__ import annotations

import base64
import hashlib
import html
from collections.abc import Iterable, Sequence
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import polars as pl

from calo_polars.atomic import write_bytes
from calo_polars.audit.result import AuditResult
from calo_polars.audit.selection import selection_text
from calo_polars.checks.plan import ROLL_FORWARD
from calo_polars.checks.registry import CHECKS, SEVERITIES, SIGNALS, Signal, check
from calo_polars.money import money_text
from calo_polars.parse.outcomes import OUTCOME_MEANINGS
from calo_polars.report.tables import daily_totals
from calo_polars.report.xlsx.overview import ERROR_KIND_NAMES, ROLL_FORWARD_LABELS
from calo_polars.version import __version__

HTML_NAME = "report.html"
#: Flag rows shown at most (most severe first); the rest are in RedFlags and flags.parquet, and the page says so.
MAX_FLAG_ROWS = 10_000
SEVERITY_RANK: dict[str, int] = {name: i for i, name in enumerate(SEVERITIES)}
Head = str | tuple[str, str]  # a column's label, or (label, "num") for one that sorts as a number
GROUP_TITLES = {"books": "The books", "lambda": "What the Lambda logged", "input": "The input"}
CREDIT_COLOUR, DEBIT_COLOUR = "#2E7D32", "#C62828"

CSS = """
:root{--fg:#1d1d1f;--muted:#5f6368;--line:#d9d9d9;--head:#f1f3f4;--high:#f4c7c3;--medium:#fce8b2;--low:#fff7d6}
*{box-sizing:border-box}
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,Arial,sans-serif;color:var(--fg);margin:0}
header{background:#263238;color:#fff;padding:14px 24px}
header h1{margin:0;font-size:20px}
header p{margin:4px 0 0;color:#cfd8dc}
nav{position:sticky;top:0;background:#fff;border-bottom:1px solid var(--line);padding:8px 24px;z-index:2}
nav a{margin-right:18px;color:#1a73e8;text-decoration:none;font-weight:600}
main{padding:0 24px 40px;max-width:1400px}
h2{margin:28px 0 8px;font-size:18px;border-bottom:2px solid #263238;padding-bottom:4px}
h3{margin:20px 0 6px;font-size:15px}
p.note{color:var(--muted);margin:4px 0 10px}
table{border-collapse:collapse;margin:6px 0 12px;font-size:13px}
th,td{border:1px solid var(--line);padding:3px 8px;text-align:left;vertical-align:top}
th{background:var(--head);font-weight:600}
td.n{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
td.alert{color:#b00020;font-weight:600}
table.sortable th{cursor:pointer;user-select:none;white-space:nowrap}
table.sortable th[aria-sort=ascending]::after{content:" ▲"}
table.sortable th[aria-sort=descending]::after{content:" ▼"}
.sev-high{background:var(--high)}.sev-medium{background:var(--medium)}.sev-low{background:var(--low)}
code{font-family:ui-monospace,Menlo,Consolas,monospace;font-size:12px;word-break:break-all}
td.t{white-space:nowrap}td.what{min-width:320px;max-width:520px}td.uid{min-width:160px;max-width:180px}
td.tx{min-width:150px}
.filters{display:flex;gap:10px;flex-wrap:wrap;align-items:center;margin:8px 0}
.filters input{width:280px;padding:4px 6px}
.charts{display:flex;flex-wrap:wrap;gap:18px}
figure{margin:0;border:1px solid var(--line);padding:8px;flex:1 1 520px;max-width:640px}
figure svg{width:100%;height:auto}
figcaption{font-weight:600;margin-bottom:4px}
svg text{font:11px system-ui,Arial,sans-serif;fill:#333}
section{scroll-margin-top:44px}
section.user{display:none;border:2px solid #263238;padding:0 16px 8px;margin-top:20px}
section.user:target{display:block}
.scroll{overflow-x:auto}
.row{display:flex;gap:28px;flex-wrap:wrap;align-items:flex-start}
.cards{display:flex;gap:12px;flex-wrap:wrap;margin:12px 0}
.card{border:1px solid var(--line);border-radius:6px;padding:8px 16px;min-width:140px}
.card b{display:block;font-size:22px}.card span{color:var(--muted)}
"""

#: Sort on a header click (numbers by ``data-v``), and filter the flags by text, check, cause, needs a person.
SCRIPT = """
(function () {
  function key(cell, numeric) {
    var v = cell.getAttribute('data-v');
    if (v === null) { v = cell.textContent; }
    if (!numeric) { return v.toLowerCase(); }
    var x = parseFloat(v);
    return isNaN(x) ? -Infinity : x;
  }
  Array.prototype.forEach.call(document.querySelectorAll('table.sortable'), function (table) {
    var heads = table.tHead.rows[0].cells;
    Array.prototype.forEach.call(heads, function (th, i) {
      th.addEventListener('click', function () {
        var numeric = th.getAttribute('data-type') === 'num';
        var up = th.getAttribute('aria-sort') !== 'ascending';
        Array.prototype.forEach.call(heads, function (h) { h.removeAttribute('aria-sort'); });
        th.setAttribute('aria-sort', up ? 'ascending' : 'descending');
        var body = table.tBodies[0];
        var rows = Array.prototype.slice.call(body.rows);
        rows.sort(function (a, b) {
          var x = key(a.cells[i], numeric), y = key(b.cells[i], numeric);
          return (x < y ? -1 : x > y ? 1 : 0) * (up ? 1 : -1);
        });
        rows.forEach(function (r) { body.appendChild(r); });
      });
    });
  });
  var table = document.getElementById('flags-table');
  if (!table) { return; }
  var text = document.getElementById('filter-text');
  var chosen = {check: document.getElementById('filter-check'), cause: document.getElementById('filter-cause'),
                person: document.getElementById('filter-person')};
  var shown = document.getElementById('flags-shown');
  function apply() {
    var words = text.value.toLowerCase().trim();
    var n = 0;
    Array.prototype.forEach.call(table.tBodies[0].rows, function (row) {
      var keep = (!words || row.textContent.toLowerCase().indexOf(words) >= 0);
      Object.keys(chosen).forEach(function (name) {
        var want = chosen[name].value;
        if (want && row.getAttribute('data-' + name) !== want) { keep = false; }
      });
      row.hidden = !keep;
      if (keep) { n += 1; }
    });
    shown.textContent = n.toLocaleString('en-US');
  }
  text.addEventListener('input', apply);
  Object.keys(chosen).forEach(function (name) { chosen[name].addEventListener('change', apply); });
})();
"""


def esc(value: Any) -> str:
    """Any value as HTML text, quotes included (safe inside an attribute too)."""
    return html.escape("" if value is None else str(value), quote=True)


def _count(n: int) -> str:
    return f"{n:,}"


def _when(value: datetime | None) -> str:
    return "" if value is None else value.strftime("%Y-%m-%d %H:%M:%S")


def _cell(text: Any, *, v: Any = None, cls: str = "", key: str = "") -> str:
    """One ``<td>``: ``v`` is what it sorts by, ``key`` the summary.json key it shows (read back by tests)."""
    attrs = (f' class="{cls}"' if cls else "") + (f' data-v="{esc(v)}"' if v is not None else "")
    attrs += f' data-key="{esc(key)}"' if key else ""
    return f"<td{attrs}>{esc(text)}</td>"


def _num(n: int, key: str = "") -> str:
    return _cell(_count(n), v=n, cls="n", key=key)


def _money(value: Decimal | str | None, currency: str | None, *, key: str = "", alert: bool = False) -> str:
    """A money cell: shown with thousands separators, sorted and read back by its exact text (``data-v``)."""
    text = value if isinstance(value, str) or value is None else money_text(value, currency)
    if text is None:
        return "<td></td>"
    whole, dot, fraction = text.partition(".")
    shown = f"{int(whole):,}{dot}{fraction}" if whole.lstrip("-").isdigit() else text
    shown = "-" + shown.lstrip("-") if text.startswith("-") and not shown.startswith("-") else shown
    return _cell(shown, v=text, cls="n alert" if alert else "n", key=key)


def _sev(severity: str) -> str:
    return _cell(severity, v=SEVERITY_RANK.get(severity, 9), cls=f"sev-{esc(severity)}")


def _table(heads: Sequence[Head], rows: Iterable[str], *, ident: str = "", sortable: bool = False) -> str:
    """A table; a head given as (label, "num") sorts as a number."""
    cells = []
    for head in heads:
        label, kind = head if isinstance(head, tuple) else (head, "text")
        cells.append(f'<th data-type="{kind}">{esc(label)}</th>')
    attrs = (f' id="{ident}"' if ident else "") + (' class="sortable"' if sortable else "")
    thead = f"<thead><tr>{''.join(cells)}</tr></thead>" if cells else ""
    body = "".join(f"<tr>{r}</tr>" if not r.startswith("<tr") else r for r in rows)
    return f'<div class="scroll"><table{attrs}>{thead}<tbody>{body}</tbody></table></div>'


# ---------------------------------------------------------------- charts (inline SVG)


def _svg(width: int, height: int, title: str, parts: list[str]) -> str:
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" viewBox="0 0 {width} {height}" '
        f'role="img" aria-label="{esc(title)}"><title>{esc(title)}</title>{"".join(parts)}</svg>'
    )


def _axis(left: int, top: int, w: int, h: int, top_value: float, fmt: str = "{:,.0f}") -> list[str]:
    """Horizontal gridlines with their values, 0 at the bottom."""
    parts = []
    for i in range(5):
        y = top + h - h * i / 4
        parts.append(f'<line x1="{left}" y1="{y:.1f}" x2="{left + w}" y2="{y:.1f}" stroke="#e0e0e0"/>')
        label = fmt.format(top_value * i / 4)
        parts.append(f'<text x="{left - 4}" y="{y + 4:.1f}" text-anchor="end">{esc(label)}</text>')
    return parts


def _nice(value: float) -> float:
    """A round axis top at or above ``value``."""
    if value <= 0:
        return 1.0
    step = 10 ** len(str(int(value))) / 10
    for m in (1, 2, 2.5, 5, 10):
        if value <= step * m:
            return step * m
    return step * 10


def _empty(width: int, title: str) -> str:
    return _svg(width, 60, title, [f'<text x="10" y="34">{esc("nothing to draw")}</text>'])


def daily_chart(currency: str, days: pl.DataFrame) -> str:
    """Credits and debits per UTC day of one currency, two lines."""
    title = f"{currency}: credits and debits per day"
    if days.is_empty():
        return _empty(600, title)
    width, height, left, top, w, h = 600, 240, 64, 12, 520, 180
    dates: list[date] = days["date"].to_list()
    series = {
        "credits": days["credits"].cast(pl.Float64).to_list(),
        "debits": days["debits"].cast(pl.Float64).to_list(),
    }
    peak = _nice(max([*series["credits"], *series["debits"], 0.0]))
    n = len(dates)
    parts = _axis(left, top, w, h, peak)

    def x(i: int) -> float:
        return left + (w * i / (n - 1) if n > 1 else w / 2)

    for name, colour in (("credits", CREDIT_COLOUR), ("debits", DEBIT_COLOUR)):
        points = " ".join(f"{x(i):.1f},{top + h - h * v / peak:.1f}" for i, v in enumerate(series[name]))
        parts.append(
            f'<polyline class="series" fill="none" stroke="{colour}" stroke-width="1.6" points="{points}">'
            f"<title>{esc(name)}</title></polyline>"
        )
    for i in sorted({0, n // 3, 2 * n // 3, n - 1}):
        anchor = "start" if i == 0 and n > 1 else "end" if i == n - 1 and n > 1 else "middle"
        label = esc(dates[i].isoformat())
        parts.append(f'<text x="{x(i):.1f}" y="{top + h + 16}" text-anchor="{anchor}">{label}</text>')
    legend = [("credits", CREDIT_COLOUR), ("debits", DEBIT_COLOUR)]
    for j, (name, colour) in enumerate(legend):
        lx = left + 10 + j * 90
        parts.append(f'<rect x="{lx}" y="{height - 16}" width="12" height="10" fill="{colour}"/>')
        parts.append(f'<text x="{lx + 16}" y="{height - 7}">{esc(name)}</text>')
    return _svg(width, height, title, parts)


def weekly_chart(flags: pl.DataFrame) -> str:
    """Flags per week (Monday, UTC) by check, stacked bars in each check's registry colour."""
    title = "Flags per week by check"
    if flags.is_empty():
        return _empty(600, title)
    week = pl.col("ts").dt.truncate("1w").dt.date().alias("week")
    counts = flags.group_by(week, "check").len()
    first, last = counts["week"].min(), counts["week"].max()
    assert isinstance(first, date) and isinstance(last, date)  # flags is not empty
    weeks: list[date] = pl.date_range(first, last, "1w", eager=True).to_list()
    by: dict[tuple[date, str], int] = {(r["week"], r["check"]): r["len"] for r in counts.iter_rows(named=True)}
    totals = [sum(by.get((wk, c.name), 0) for c in CHECKS) for wk in weeks]
    width, height, left, top, w, h = 600, 260, 48, 12, 536, 180
    peak = _nice(max(totals))
    parts = _axis(left, top, w, h, peak)
    slot = w / len(weeks)
    bar = max(slot * 0.7, 1.0)
    for i, wk in enumerate(weeks):
        y = float(top + h)
        bx = left + slot * i + (slot - bar) / 2
        for c in CHECKS:
            n = by.get((wk, c.name), 0)
            if not n:
                continue
            bh = h * n / peak
            y -= bh
            parts.append(
                f'<rect class="bar" x="{bx:.1f}" y="{y:.1f}" width="{bar:.1f}" height="{bh:.1f}" '
                f'fill="{esc(c.colour)}">'
                f"<title>{esc(f'week of {wk.isoformat()}: {n:,} {c.name}')}</title></rect>"
            )
    step = max(1, len(weeks) // 5)
    for i in range(0, len(weeks), step):
        tx = left + slot * (i + 0.5)
        parts.append(f'<text x="{tx:.1f}" y="{top + h + 16}" text-anchor="middle">{esc(weeks[i].isoformat())}</text>')
    for j, c in enumerate(CHECKS):
        lx = left + (j % 3) * 180
        ly = height - 36 + (j // 3) * 16
        parts.append(f'<rect x="{lx}" y="{ly}" width="12" height="10" fill="{esc(c.colour)}"/>')
        parts.append(f'<text x="{lx + 16}" y="{ly + 9}">{esc(c.name)}</text>')
    return _svg(width, height, title, parts)


def causes_chart(causes: dict[str, int]) -> str:
    """Flow breaks by cause, one horizontal bar each (every cause listed, zeros too)."""
    title = "Flow breaks by cause"
    breaks = check("flow_break")
    width, left, w, row = 600, 170, 370, 26
    height = 12 + row * len(causes)
    peak = max([*causes.values(), 1])
    colours = {"high": "#C00000", "medium": "#ED7D31", "low": "#A5A5A5"}
    parts = []
    for i, (cause, n) in enumerate(causes.items()):
        y = 6 + row * i
        bw = w * n / peak
        colour = colours[breaks.causes[cause].severity]
        parts.append(f'<text x="{left - 6}" y="{y + 14}" text-anchor="end">{esc(cause)}</text>')
        parts.append(
            f'<rect class="bar" x="{left}" y="{y}" width="{bw:.1f}" height="{row - 8}" fill="{colour}">'
            f"<title>{esc(f'{cause}: {n:,}')}</title></rect>"
        )
        parts.append(f'<text x="{left + bw + 6:.1f}" y="{y + 14}">{_count(n)}</text>')
    return _svg(width, height, title, parts)


# ---------------------------------------------------------------- sections


def _period(s: dict[str, Any]) -> str:
    """The period as people read it: seconds, no T or Z (the page says UTC)."""
    first, last = (s["period"][k] for k in ("first", "last"))
    return f"{(first or '—')[:19].replace('T', ' ')} → {(last or '—')[:19].replace('T', ' ')}"


def _signal_meaning(signal: Signal, s: dict[str, Any]) -> str:
    if signal.name == "lambda_error":
        return "; ".join(f"{n} {ERROR_KIND_NAMES.get(k, k)}" for k, n in s["lambda_errors_by_kind"].items()) or "none"
    return signal.meaning


def overview(result: AuditResult, s: dict[str, Any]) -> str:
    """The Overview: the run, money and roll-forward per currency, checks, outcomes, causes, signals."""
    out = ['<section id="overview"><h2>Overview</h2>']
    facts = [
        ("files read", "files"),
        ("events read", "events"),
        ("invocations", "invocations"),
        ("transactions", "transactions"),
        ("duplicate transactions (set aside)", "duplicate_transactions"),
        ("users", "users"),
        ("events not understood", "unparsed_events"),
        ("input problems", "input_problems"),
    ]
    cards = [
        ("transactions", s["transactions"], "transactions"),
        ("users", s["users"], "users"),
        ("flags", result.flags.height, ""),
        ("need a person", s["flags_needing_a_person"], ""),
        ("users unreconciled", s["unreconciled_users"], ""),
    ]
    out.append(
        '<div class="cards">'
        + "".join(f'<div class="card"><b>{_count(n)}</b><span>{esc(label)}</span></div>' for label, n, _ in cards)
        + "</div>"
    )
    rows = [f"<th>period (UTC)</th>{_cell(_period(s))}"]
    rows += [f"<th>{esc(label)}</th>{_num(s[key], key)}" for label, key in facts]
    out.append(f'<div class="row"><div><h3>The run</h3>{_table([], rows)}</div><div>')
    out.append("<h3>Money by currency</h3><p class=note>Gross amounts as logged; never added across currencies.</p>")
    heads: list[Head] = ["currency", ("transactions", "num"), ("users", "num"), "debits (gross)", "credits (gross)"]
    rows = []
    for cur, t in s["totals"].items():
        k = f"totals.{cur}"
        rows.append(
            _cell(cur)
            + _num(t["transactions"], f"{k}.transactions")
            + _num(t["users"], f"{k}.users")
            + "".join(_money(t[m], cur, key=f"{k}.{m}") for m in ("debit_total", "credit_total", "vat_total"))
            + _money(t["net_change"], cur, key=f"{k}.net_change")
        )
    out.append(_table([*heads, "VAT", "net change of balances"], rows) + "</div></div>")

    out.append(
        "<h3>Roll-forward by currency</h3><p class=note>expected closing = opening + credits − debits; the "
        "difference splits into flow gaps, mismatch differences and rounding (docs: checks.md).</p>"
    )
    rows = []
    for cur, t in s["totals"].items():
        rf = t["roll_forward"]
        k = f"totals.{cur}.roll_forward"
        cells = "".join(
            _money(rf[m], cur, key=f"{k}.{m}", alert=m == "difference" and Decimal(rf[m]) != 0) for m in ROLL_FORWARD
        )
        rows.append(_cell(cur) + cells + _num(rf["unreconciled_users"], f"{k}.unreconciled_users"))
    out.append(_table(["currency", *ROLL_FORWARD_LABELS.values(), "users unreconciled"], rows))

    out.append("<h3>Checks on every transaction</h3>")
    rows = [
        _cell(c.name) + _sev(c.severity) + _num(s[c.count_key], c.count_key) + _num(s[c.users_key], c.users_key)
        + _cell(c.definition)
        for c in CHECKS
    ]  # fmt: skip
    flags = result.flags
    rows.append(
        f'<th colspan="2">all flags</th>{_num(flags.height)}{_num(flags["user_id"].n_unique())}'
        f"{_cell('most severe first: the Flags tab')}"
    )
    rows.append(
        f'<th colspan="2">of which need a person</th>{_num(s["flags_needing_a_person"], "flags_needing_a_person")}'
        f"<td></td>{_cell('the logs do not explain them, or money is wrong: each says what happened')}"
    )
    out.append(_table(["check", "severity", ("flags", "num"), ("users", "num"), "when it is raised"], rows))

    out.append("<h3>What the Lambda did with each transaction</h3>")
    rows = [_cell(o) + _num(n, f"outcomes.{o}") + _cell(OUTCOME_MEANINGS[o]) for o, n in s["outcomes"].items()]
    out.append(_table(["outcome", ("transactions", "num"), "what it means"], rows))

    out.append("<h3>Flow breaks by cause</h3>")
    breaks = check("flow_break")
    rows = [
        _cell(cause) + _sev(breaks.causes[cause].severity) + _num(n, f"flow_break_causes.{cause}")
        + _cell("yes" if breaks.causes[cause].needs_person else "no") + _cell(breaks.causes[cause].summary)
        for cause, n in s["flow_break_causes"].items()
    ]  # fmt: skip
    out.append(_table(["cause", "severity", ("flow breaks", "num"), "needs a person", "what it means"], rows))

    out.append(_needing_a_person(result))

    for group, title in GROUP_TITLES.items():
        out.append(f"<h3>{esc(title)}</h3>")
        rows = []
        for g in (g for g in SIGNALS if g.group == group):
            users = _num(s[g.users_key], g.users_key) if g.users_key else "<td></td>"
            rows.append(_cell(g.label) + _num(s[g.count_key], g.count_key) + users + _cell(_signal_meaning(g, s)))
        out.append(_table(["signal", ("count", "num"), ("users", "num"), "what it means"], rows))
    out.append("</section>")
    return "".join(out)


def _needing_a_person(result: AuditResult) -> str:
    needed = result.flags.filter(pl.col("needs_person"))
    out = [f"<h3>Flags needing a person ({_count(needed.height)})</h3>"]
    if needed.is_empty():
        return out[0] + "<p class=note>None: every flag is explained by what the Lambda logged.</p>"
    anchors = _user_anchors(result.flags)
    rows = [
        _sev(r["severity"]) + _cell(r["check"]) + _cell(r["cause"]) + _user_cell(r["user_id"], anchors)
        + _cell(_when(r["ts"]), cls="t") + _cell(r["what_happened"], cls="what")
        for r in needed.head(MAX_FLAG_ROWS).iter_rows(named=True)
    ]  # fmt: skip
    out.append(_table(["severity", "check", "cause", "user", "time (UTC)", "what happened"], rows, sortable=True))
    return "".join(out)


def _user_anchors(flags: pl.DataFrame) -> dict[str, str]:
    """Each flagged user's section id (``u1``, ``u2``…: never the id itself, which may hold anything)."""
    users = flags["user_id"].cast(pl.String).unique(maintain_order=True).to_list()
    return {u: f"u{i}" for i, u in enumerate(users, start=1)}


def _user_cell(user: Any, anchors: dict[str, str]) -> str:
    if user is None:
        return "<td></td>"
    anchor = anchors.get(str(user))
    if anchor is None:
        return _cell(user)
    return (
        f'<td class="uid" data-v="{esc(user)}"><a class="user-link" href="#{anchor}"><code>{esc(user)}</code></a></td>'
    )


FLAG_HEADS: list[Head] = [
    ("severity", "num"), "needs a person", "check", "cause", "what happened", "user", "transaction", "time (UTC)",
    "outcome", "currency", ("amount", "num"), ("old balance", "num"), ("new balance", "num"),
]  # fmt: skip


def _flag_row(r: dict[str, Any], anchors: dict[str, str], *, with_user: bool = True) -> str:
    cur = r["currency"]
    cells = [
        _sev(r["severity"]),
        _cell("yes" if r["needs_person"] else "no"),
        _cell(r["check"]),
        _cell(r["cause"]),
        _cell(r["what_happened"], cls="what"),
        _user_cell(r["user_id"], anchors) if with_user else "",
        f'<td class="tx"><code>{esc(r["tx_id"])}</code></td>',
        _cell(_when(r["ts"]), cls="t"),
        _cell(r["outcome"]),
        _cell(cur),
        *(_money(r[m], cur) for m in ("amount", "old_balance", "new_balance")),
    ]
    person = "yes" if r["needs_person"] else "no"
    data = f' data-check="{esc(r["check"])}" data-cause="{esc(r["cause"])}" data-person="{person}"'
    return f"<tr{data}>{''.join(cells)}</tr>"


def _select(ident: str, label: str, options: Iterable[str]) -> str:
    choices = "".join(f'<option value="{esc(o)}">{esc(o)}</option>' for o in options)
    return f'<label>{esc(label)} <select id="{ident}"><option value="">all</option>{choices}</select></label>'


def flags_section(result: AuditResult, shown: pl.DataFrame, anchors: dict[str, str]) -> str:
    """Every flag (up to ``MAX_FLAG_ROWS``), sortable, filterable by text, check, cause and needs-a-person."""
    total = result.flags.height
    note = (
        f"Showing the {_count(shown.height)} most severe of {_count(total)} flags; all of them are in RedFlags "
        "(the workbook) and flags.parquet."
        if shown.height < total
        else "Click a column's name to sort by it; type or choose to filter."
    )
    causes = sorted({k for c in CHECKS for k in c.causes})
    filters = (
        '<div class="filters"><input id="filter-text" type="search" placeholder="filter: any text, a user, a tx id…">'
        + _select("filter-check", "check", [c.name for c in CHECKS])
        + _select("filter-cause", "cause", causes)
        + _select("filter-person", "needs a person", ["yes", "no"])
        + f'<span><b id="flags-shown">{_count(shown.height)}</b> of {_count(shown.height)} shown</span></div>'
    )
    rows = [_flag_row(r, anchors) for r in shown.iter_rows(named=True)]
    table = _table(FLAG_HEADS, rows, ident="flags-table", sortable=True)
    return (
        f'<section id="flags"><h2>Flags ({_count(total)})</h2><p class=note>{esc(note)}</p>{filters}{table}</section>'
    )


def users_section(result: AuditResult, shown: pl.DataFrame, anchors: dict[str, str]) -> str:
    """The flagged users (a link each) and one hidden section per user, shown when its link is chosen."""
    users = result.users.with_columns(pl.col("user_id").cast(pl.String), pl.col("currency").cast(pl.String))
    mine = {u: users.filter(pl.col("user_id") == u) for u in anchors}
    flagged = shown.with_columns(pl.col("user_id").cast(pl.String))
    counts = dict(flagged.group_by("user_id").len().iter_rows())
    rows = []
    for user in anchors:
        rf = mine[user]
        diff = ", ".join(f"{money_text(d, c)} {c}" for d, c in zip(rf["difference"], rf["currency"], strict=True))
        rows.append(_user_cell(user, anchors) + _num(counts.get(user, 0)) + _cell(diff or "—"))
    out = [
        f'<section id="users"><h2>Flagged users ({_count(len(anchors))})</h2>'
        "<p class=note>Choose a user to see their roll-forward and flags.</p>",
        _table(["user", ("flags", "num"), "roll-forward difference"], rows, ident="users-table", sortable=True),
        "</section>",
    ]
    heads: list[Head] = ["currency", ("wallets", "num"), ("transactions", "num"), "first (UTC)", "last (UTC)"]
    heads += [*ROLL_FORWARD_LABELS.values(), "unreconciled"]
    for user, anchor in anchors.items():
        rf_rows = [
            _cell(r["currency"]) + _num(r["wallets"]) + _num(r["transactions"]) + _cell(_when(r["first_ts"]), cls="t")
            + _cell(_when(r["last_ts"]), cls="t")
            + "".join(_money(r[m], r["currency"], alert=m == "difference" and r["unreconciled"]) for m in ROLL_FORWARD)
            + _cell("yes" if r["unreconciled"] else "no")
            for r in mine[user].iter_rows(named=True)
        ]  # fmt: skip
        own = flagged.filter(pl.col("user_id") == user)
        out.append(
            f'<section class="user" id="{anchor}"><h2>User <code>{esc(user)}</code></h2>'
            f'<p><a href="#users">← all flagged users</a></p><h3>Roll-forward</h3>'
            + (_table(heads, rf_rows) if rf_rows else "<p class=note>No applied transaction in this run.</p>")
            + f"<h3>Flags ({_count(own.height)})</h3>"
            + _table(
                [h for h in FLAG_HEADS if h != "user"],
                [_flag_row(r, anchors, with_user=False) for r in own.iter_rows(named=True)],
                sortable=True,
            )
            + "</section>"
        )
    return "".join(out)


def charts_section(result: AuditResult, s: dict[str, Any]) -> str:
    """The three charts, drawn from the same tables the workbook's Charts sheet uses (and the flags)."""
    daily = daily_totals(result)
    figures = [
        f"<figure><figcaption>{esc(f'{cur}: credits and debits per day (roll-forward amounts)')}</figcaption>"
        f"{daily_chart(str(cur), daily.filter(pl.col('currency') == cur))}</figure>"
        for cur in daily["currency"].unique(maintain_order=True).to_list()
    ]
    figures.insert(0, f"<figure><figcaption>Flags per week by check</figcaption>{weekly_chart(result.flags)}</figure>")
    figures.insert(
        1, f"<figure><figcaption>Flow breaks by cause</figcaption>{causes_chart(s['flow_break_causes'])}</figure>"
    )
    return f'<section id="charts"><h2>Charts</h2><div class="charts">{"".join(figures)}</div></section>'


def _csp(script: str) -> str:
    """Nothing may be fetched, and only this page's own script may run (by its hash)."""
    digest = base64.b64encode(hashlib.sha256(script.encode("utf-8")).digest()).decode("ascii")
    return f"default-src 'none'; style-src 'unsafe-inline'; img-src data:; script-src 'sha256-{digest}'"


def render(result: AuditResult, s: dict[str, Any]) -> str:
    """The whole page as text."""
    shown = result.flags.head(MAX_FLAG_ROWS)
    anchors = _user_anchors(shown)
    inputs = ", ".join(s["inputs"])
    chosen = selection_text(s["selection"])
    subtitle = f"{inputs} · {_period(s)} UTC · personal data {s['settings']['personal_data']}" + (
        f" · {chosen}" if s["selection"] else ""
    )
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f'<meta http-equiv="Content-Security-Policy" content="{_csp(SCRIPT)}">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>Calo balance audit — {esc(inputs)}</title><style>{CSS}</style></head><body>"
        f"<header><h1>Calo balance audit</h1><p>{esc(subtitle)}</p>"
        f"<p>calo-polars {esc(__version__)}: the same numbers as the workbook and summary.json.</p></header>"
        '<nav><a href="#overview">Overview</a><a href="#charts">Charts</a><a href="#flags">Flags</a>'
        '<a href="#users">Users</a></nav><main>'
        + overview(result, s)
        + charts_section(result, s)
        + flags_section(result, shown, anchors)
        + users_section(result, shown, anchors)
        + f"</main><script>{SCRIPT}</script></body></html>\n"
    )


def write_html(result: AuditResult, path: Path, s: dict[str, Any]) -> None:
    """Write report.html atomically."""
    write_bytes(path, render(result, s).encode("utf-8"))
