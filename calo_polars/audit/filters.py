"""Selections: report one period, some users or some currencies (``--since/--until/--user/--currency``).

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

from dataclasses import replace

import polars as pl

from calo_polars.audit.result import AuditResult
from calo_polars.audit.selection import Selection
from calo_polars.checks.plan import currency_totals, per_user


def _books(kept: pl.DataFrame) -> pl.LazyFrame:
    """The kept transactions as the roll-forward sees them: a gap to a transaction outside
    the selection is not this selection's (its flag stays; ``next_old``/``flow_gap`` do not count)."""
    inside = pl.col("next_tx_id").is_in(kept["tx_id"].implode())
    return kept.lazy().with_columns(
        next_old=pl.when(inside).then(pl.col("next_old")), flow_gap=pl.when(inside).then(pl.col("flow_gap"))
    )


def apply(result: AuditResult, selection: Selection) -> AuditResult:
    """The result limited to ``selection`` (see the module docstring); flags are never recomputed."""
    if not selection.active:
        return result
    tx = result.checked.filter(selection.in_period() & selection.of_who())
    kept_ids = tx["tx_id"].implode()
    books = _books(result.derived(tx))
    users, totals = pl.collect_all([per_user(books), currency_totals(books)], engine="in-memory")
    ing = result.ingested
    notices = ing.notices.filter(selection.in_period())
    invocations = ing.invocations.filter(selection.in_period("first_ts"))
    duplicates = result.duplicates.filter(selection.in_period())
    if selection.by_who:
        who = result.checked.filter(selection.of_who())["user_id"].cast(pl.String).unique().to_list()
        if not selection.currencies:
            who = sorted(set(who) | set(selection.users))
        requests = tx["request_id"].unique().implode()
        notices = notices.filter(
            pl.col("user_id").is_in(who) | (pl.col("user_id").is_null() & pl.col("request_id").is_in(requests))
        )
        touched = pl.concat([tx["request_id"], notices["request_id"]]).unique().implode()
        invocations = invocations.filter(pl.col("request_id").is_in(touched))
        duplicates = duplicates.filter(selection.of_who())
    ingested = replace(
        ing,
        notices=notices,
        invocations=invocations,
        duplicates=duplicates,
        sample=ing.sample.filter(pl.col("tx_id").is_in(kept_ids)),
    )
    return replace(
        result,
        checked=tx,
        flags=result.flags.filter(pl.col("tx_id").is_in(kept_ids)),
        users=users,
        totals=totals,
        ingested=ingested,
    )
