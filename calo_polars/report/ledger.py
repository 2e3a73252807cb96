"""Which transactions the workbook's Ledger sheet shows: the flagged ones with their context.

A person reads the Ledger to see what happened around a flag, not to scroll 30 million rows
(the complete Ledger is ``ledger.parquet``, written beside the workbook whenever the Ledger sheet
is not complete; ``transactions.parquet`` when ``-f parquet`` writes it anyway). So by default
the Ledger holds, for every balance history (user, wallet, currency: ``HISTORY``) with at least
one flag, each flagged transaction and the ``CONTEXT`` transactions before and after it in the
same history, in the usual Ledger order (by user, then time). At most ``MAX_ROWS`` rows: past it,
rows are kept by priority (``PRIORITIES``: the flags that need a person first, then high, medium,
low severity), a whole history's rows of one priority at a time (kept whole or not at all),
histories in Ledger order, each if it still fits; what the cap left out is counted (``Shown``).
``--full-ledger`` asks for every transaction instead.

The selection is a function over ONE part of the transactions (``shown_in_part``), since every
history is whole inside one part; the cap (``cap``) is applied once the parts are put together.
So it works on one frame today and on partitions streamed one by one.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import polars as pl

from calo_polars.audit.result import AuditResult
from calo_polars.checks.windows import HISTORY
from calo_polars.report import tables

#: Transactions shown before and after each flagged one, in the same balance history.
CONTEXT = 3
#: The most rows the Ledger sheet holds by default (25 columns: about 1.25 M cells, ~10 MB).
MAX_ROWS = 50_000
#: Priority of a flag when the cap bites, first kept first (0 = most important).
PRIORITIES = {"needs a person": 0, "high": 1, "medium": 2, "low": 3}
#: The helper column ``shown_in_part`` adds: the best priority of the flags a row is shown for.
PRIORITY = "_priority"


def flag_priority(flags: pl.DataFrame) -> pl.DataFrame:
    """Each flagged transaction once (``tx_id``) with the best priority of its flags."""
    severity = pl.col("severity").replace_strict(PRIORITIES, default=PRIORITIES["low"], return_dtype=pl.UInt8)
    rank = pl.when(pl.col("needs_person")).then(pl.lit(PRIORITIES["needs a person"], pl.UInt8)).otherwise(severity)
    return flags.group_by("tx_id").agg(pl.min_horizontal(rank).min().alias(PRIORITY))


def shown_in_part(part: pl.DataFrame, flags: pl.DataFrame, context: int | None = None) -> pl.DataFrame:
    """The rows of ``part`` the Ledger shows by default, in their order, with ``_priority``.

    ``part`` is one part of the Ledger (or of the checked transactions: any frame with
    ``HISTORY`` and ``tx_id``), in Ledger order, each history whole inside it; ``flags`` holds
    (at least) the flags of its transactions (``tx_id``, ``severity``, ``needs_person``). A row
    is shown when a flagged transaction of its history is at most ``context`` rows away; its
    priority is the best of those flags'.
    """
    if part.is_empty():
        return part.with_columns(pl.lit(None, pl.UInt8).alias(PRIORITY))
    ranked = flag_priority(flags).with_columns(pl.col("tx_id").cast(part.schema["tx_id"]))
    window = 2 * (CONTEXT if context is None else context) + 1
    best = (
        pl.col("_flag")
        .rolling_min(window_size=window, center=True, min_samples=1)
        .over(HISTORY)  # rows keep their order inside each history: the Ledger's
        .alias(PRIORITY)
    )
    marked = (
        part.join(ranked.rename({PRIORITY: "_flag"}), on="tx_id", how="left", maintain_order="left")
        .with_columns(best)
        .drop("_flag")
    )
    return marked.filter(pl.col(PRIORITY).is_not_null())


@dataclass(frozen=True)
class Shown:
    """What the Ledger sheet holds, for summary.json, the Overview and the README sheet."""

    rows: int  # rows the Ledger sheet holds
    of: int  # transactions in the run (rows of the complete Ledger)
    full: bool  # --full-ledger: every transaction asked for
    selected: int  # rows the selection chose before the cap
    left_out_rows: int = 0  # rows the cap left out
    left_out_flagged: int = 0  # flagged transactions among them
    left_out_priorities: tuple[str, ...] = ()  # the priorities of which some rows were left out
    context: int = CONTEXT
    max_rows: int = MAX_ROWS

    @property
    def complete(self) -> bool:
        return self.rows == self.of

    def describe(self, parquet: str | None) -> dict[str, Any]:
        """The ``ledger`` key of summary.json; ``parquet`` names the complete table when it was written."""
        return {
            "rows": self.rows,
            "of": self.of,
            "complete": self.complete,
            "shows": "every transaction (--full-ledger)" if self.full else "flagged transactions with context",
            "context": None if self.full else self.context,
            "max_rows": None if self.full else self.max_rows,
            "selected": self.selected,
            "left_out_by_cap": {
                "rows": self.left_out_rows,
                "flagged_transactions": self.left_out_flagged,
                "priorities": list(self.left_out_priorities),
            },
            "parquet": None if self.complete else parquet,
        }


def rule(ledger: dict[str, Any]) -> str:
    """Which rows a default Ledger shows, from summary.json's ``ledger``."""
    return (
        f"the flagged transactions of every wallet with a flag, each with the {ledger['context']} transactions before "
        f"and after it in the same wallet and currency, at most {ledger['max_rows']:,} rows"
    )


def ledger_text(ledger: dict[str, Any]) -> str:
    """What the Ledger sheet holds, for the Overview and the README sheet, from summary.json's
    ``ledger``: how many of how many transactions, why these, what the cap left out, where the rest is."""
    if ledger["context"] is None:
        return f"The Ledger shows every transaction ({ledger['of']:,}; --full-ledger)."
    text = f"The Ledger shows {ledger['rows']:,} of {ledger['of']:,} transactions: {rule(ledger)}."
    cut = ledger["left_out_by_cap"]
    if cut["rows"]:
        text += (
            f" The cap left out {cut['rows']:,} of the {ledger['selected']:,} rows chosen, of which "
            f"{cut['flagged_transactions']:,} flagged transactions (priority {', '.join(cut['priorities'])}): rows are "
            "kept by priority (flags that need a person, then high, medium and low severity), a whole wallet at a "
            "time, each if it still fits."
        )
    if ledger["complete"]:
        return text + " That is every transaction."
    where = f" in {ledger['parquet']}, beside this workbook" if ledger["parquet"] else " in the Parquet export"
    return (
        text + f" Every transaction, with the Ledger's columns and values, is{where}; --full-ledger puts them all here."
    )


def cap(rows: pl.DataFrame, max_rows: int | None = None) -> tuple[pl.DataFrame, pl.DataFrame]:
    """The rows kept under ``max_rows`` (``MAX_ROWS``) and those left out, in Ledger order.

    ``rows`` is the parts' ``shown_in_part`` rows put together in Ledger order. A group (one
    history's rows of one priority) is kept whole or not at all: groups are taken by priority,
    then in Ledger order, each if it fits in the room left. ``_priority`` stays on the rows
    left out (to say what they were) and is dropped from those kept.
    """
    limit = MAX_ROWS if max_rows is None else max_rows
    if rows.height <= limit:
        return rows.drop(PRIORITY), rows.clear()
    indexed = rows.with_row_index("_row")
    groups = indexed.group_by(*HISTORY, PRIORITY).agg(_first=pl.col("_row").min(), _n=pl.len()).sort(PRIORITY, "_first")
    room, keep = limit, []
    for n in groups["_n"].to_list():  # one step a group: fast enough for a million groups
        keep.append(n <= room)
        room -= n if n <= room else 0
    chosen = groups.select("_first", _keep=pl.Series(keep, dtype=pl.Boolean))
    first = pl.col("_row").min().over(*HISTORY, PRIORITY).alias("_first")
    marked = indexed.with_columns(first).join(chosen, on="_first", how="left", maintain_order="left")
    kept = marked.filter(pl.col("_keep")).drop("_row", "_first", "_keep", PRIORITY)
    left = marked.filter(~pl.col("_keep")).drop("_row", "_first", "_keep")
    return kept, left


def choose(
    ledger: pl.DataFrame | Iterable[pl.DataFrame],
    flags: pl.DataFrame,
    *,
    full: bool = False,
    max_rows: int | None = None,
    context: int | None = None,
) -> tuple[pl.DataFrame, Shown]:
    """The Ledger sheet's rows from the complete Ledger (one frame, or its parts one after
    another: each part is selected alone, only the rows shown are kept) and what they are;
    ``max_rows`` and ``context`` default to ``MAX_ROWS`` and ``CONTEXT``, read at call time."""
    max_rows = MAX_ROWS if max_rows is None else max_rows
    context = CONTEXT if context is None else context
    parts = [ledger] if isinstance(ledger, pl.DataFrame) else ledger
    if full:
        everything = pl.concat(list(parts))
        n = everything.height
        return everything, Shown(n, n, True, n, context=context, max_rows=max_rows)
    of, chosen = 0, []
    for part in parts:
        of += part.height
        chosen.append(shown_in_part(part, flags, context))
    selected = pl.concat(chosen)
    kept, left = cap(selected, max_rows)
    ranked = flag_priority(flags).with_columns(pl.col("tx_id").cast(left.schema["tx_id"]))
    left_flagged = left.join(ranked, on="tx_id", how="semi") if left.height else left
    names = {v: k for k, v in PRIORITIES.items()}
    priorities = tuple(names[p] for p in sorted(left[PRIORITY].unique().to_list())) if left.height else ()
    shown = Shown(
        kept.height,
        of,
        False,
        selected.height,
        left.height,
        left_flagged.height,
        priorities,
        context,
        max_rows,
    )
    return kept, shown


#: A run of at most this many transactions, held in memory, has its Ledger made once and kept
#: for every output that reads it (the sheet's selection, the balance charts, ledger.parquet;
#: ~20 MB at this size); a bigger one makes it again part by part for each, never holding it whole.
HELD_ROWS = 100_000


@dataclass
class LedgerView:
    """The rows the Ledger sheet shows and what they are; the complete Ledger is not held
    (``parts`` makes it again, one part at a time, for ledger.parquet and the balance charts),
    but for a small run (``HELD_ROWS``: ``held``, made once)."""

    rows: pl.DataFrame
    shown: Shown
    result: AuditResult
    held: list[pl.DataFrame] | None = None

    def parts(self) -> Iterator[pl.DataFrame]:
        """The complete Ledger, part by part, in order (``tables.ledger_parts``)."""
        return iter(self.held) if self.held is not None else tables.ledger_parts(self.result)


def view(result: AuditResult, *, full: bool = False, max_rows: int | None = None) -> LedgerView:
    """The Ledger of a run: the rows its sheet shows, chosen part by part (``choose``)."""
    small = not result.parts.on_disk and result.parts.height <= HELD_ROWS
    held = list(tables.ledger_parts(result)) if small else None
    parts = held if held is not None else tables.ledger_parts(result)
    rows, shown = choose(parts, result.flags, full=full, max_rows=max_rows)
    return LedgerView(rows, shown, result, held)
