"""Selections: what a report covers — one period, some users or some currencies (``--since/--until/--user/--currency``).

The rule, once for all: **a selection never changes a flag.** The checks always run on the
full history that was read (a flow break at the start of the period, the 3σ window of a
user's first transactions in it, need the transactions before it); the selection then chooses
which transactions, flags and signals are reported. So a transaction is flagged the same way in
a monthly report and in the full one.

What the selection keeps:

- transactions and their flags: ``since ≤ ts ≤ until`` (UTC), of the given users and currencies;
- the roll-forward (per user and per currency) is recomputed over the kept transactions:
  opening = the first kept ``oldBalance`` of each wallet, closing = the last kept
  ``newBalance``. A flow break on the period's last transaction (its next transaction falls
  after ``until``) is still listed, but its gap belongs to the next period's opening, so
  ``difference = flow_gaps + mismatch_diffs + rounding`` holds for every period;
- the Lambda's notices in the period, of the selected users (under ``--user``/``--currency``,
  notices without a user are kept when their invocation touched a kept transaction);
  invocations that started in the period (and touched the selection); duplicate copies of
  kept transactions' users;
- what concerns the input, not the books, is always reported whole: files, events read,
  events not understood, input problems.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

import polars as pl


def _utc(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def parse_moment(text: str, *, end_of_day: bool = False) -> datetime:
    """A UTC instant from ``2024-01-31``, ``2024-01-31T12:00``, ``2024-01-31 12:00:00Z`` or with an offset.

    A date alone is the start of that UTC day, or with ``end_of_day`` its last millisecond
    (timestamps in the logs have millisecond precision), so ``--until 2024-01-31`` includes
    the whole of the 31st. Raises ``ValueError`` with a message that shows the accepted forms.
    """
    value = text.strip()
    try:
        day = date.fromisoformat(value)
    except ValueError:
        pass
    else:
        if len(value) == 10:
            start = datetime.combine(day, time(), UTC)
            return start + timedelta(days=1, milliseconds=-1) if end_of_day else start
    try:
        return _utc(datetime.fromisoformat(value.replace(" ", "T", 1)))
    except ValueError:
        raise ValueError(
            f"{text!r} is not a date or time: use 2024-01-31, 2024-01-31T18:30 or 2024-01-31T18:30:00+03:00 (UTC unless an offset is given)"
        ) from None


def iso(value: datetime | None) -> str | None:
    """``2024-01-31T23:59:59.999Z``: the form summary.json uses."""
    return None if value is None else _utc(value).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


@dataclass(frozen=True)
class Selection:
    """Which transactions to report; the default selects everything.

    ``since`` and ``until`` are inclusive UTC instants; ``users`` and ``currencies`` are
    exact ids and ISO codes (empty: all).
    """

    since: datetime | None = None
    until: datetime | None = None
    users: tuple[str, ...] = ()
    currencies: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.since is not None and self.until is not None and self.since > self.until:
            raise ValueError(
                f"--since ({iso(self.since)}) is after --until ({iso(self.until)}): nothing would be selected"
            )

    @property
    def active(self) -> bool:
        return bool(self.since or self.until or self.users or self.currencies)

    @property
    def by_who(self) -> bool:
        return bool(self.users or self.currencies)

    def in_period(self, column: str = "ts") -> pl.Expr:
        """True for a timestamp in [since, until]."""
        keep = pl.lit(True)
        if self.since is not None:
            keep = keep & (pl.col(column) >= pl.lit(self.since, pl.Datetime("ms", "UTC")))
        if self.until is not None:
            keep = keep & (pl.col(column) <= pl.lit(self.until, pl.Datetime("ms", "UTC")))
        return keep

    def of_who(self) -> pl.Expr:
        """True for a row of a selected user and currency."""
        keep = pl.lit(True)
        if self.users:
            keep = keep & pl.col("user_id").is_in(list(self.users))
        if self.currencies:
            keep = keep & pl.col("currency").is_in(list(self.currencies))
        return keep

    def describe(self) -> dict[str, Any]:
        """The selection as summary.json writes it (``{}`` when everything is selected)."""
        out: dict[str, Any] = {}
        if self.since is not None:
            out["since"] = iso(self.since)
        if self.until is not None:
            out["until"] = iso(self.until)
        if self.users:
            out["users"] = sorted(self.users)
        if self.currencies:
            out["currencies"] = sorted(self.currencies)
        return out


def selection_text(described: dict[str, Any]) -> str:
    """``Selection.describe()`` (as summary.json holds it) in one line for people."""
    return "; ".join(f"{k} {v if isinstance(v, str) else ', '.join(v)}" for k, v in described.items())
