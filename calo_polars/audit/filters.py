"""Applying a selection to an audit's result: what is reported, never what is checked.

The rule and what a selection keeps are said once, in ``audit.selection``.
"""

from __future__ import annotations

from dataclasses import replace

import polars as pl

from calo_polars.audit.parts import CheckedParts
from calo_polars.audit.result import AuditResult
from calo_polars.audit.selection import Selection
from calo_polars.checks.plan import currency_totals, per_user
from calo_polars.parse.table import Table


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
    tx = result.parts.filter(selection.in_period() & selection.of_who())  # what is kept is held, part by part
    kept_ids = tx["tx_id"].implode()
    books = _books(result.derived(tx))
    users, totals = pl.collect_all([per_user(books), currency_totals(books)], engine="in-memory")
    ing = result.ingested
    notices = ing.notice_table.filter(selection.in_period())
    invocations = ing.invocation_table.filter(selection.in_period("first_ts"))
    duplicates = result.duplicates.filter(selection.in_period())
    if selection.by_who:
        who = result.parts.filter(selection.of_who(), "user_id")["user_id"].cast(pl.String).unique().to_list()
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
        notice_table=Table.of(notices),
        invocation_table=Table.of(invocations),
        duplicates=duplicates,
        sample=ing.sample.filter(pl.col("tx_id").is_in(kept_ids)),
    )
    return replace(
        result,
        parts=CheckedParts.of([tx], result.parts.schema),
        flags=result.flags.filter(pl.col("tx_id").is_in(kept_ids)),
        users=users,
        totals=totals,
        ingested=ingested,
    )
