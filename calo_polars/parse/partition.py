"""Partition: the transactions as user ranges, so the check plan runs on one range at a time.

Every check looks only at one user's own history (``checks``), so the plan gives the same
rows on any partition of users. Ranges of user ids (not hashes) keep the order: each part
comes out of the plan sorted by user then time, so the parts one after another are the
whole table sorted. A part of about ``PART_ROWS`` transactions bounds what the plan holds
at once (its sort and a dozen computed columns), whatever the size of the input.

The parts are built batch piece by batch piece, each piece dropped once split, so the
transactions are never held twice.
"""

from __future__ import annotations

import math

import polars as pl

#: The user column: what partitions are cut by, and what every check's window is over.
USER = "user_id"

#: Transactions per part: the plan of one part peaks near 1 KB a row.
PART_ROWS = 500_000


def user_ranges(pieces: list[pl.DataFrame], part_rows: int = PART_ROWS) -> list[pl.DataFrame]:
    """The rows of ``pieces`` (emptied as it goes) split into parts by ranges of ``user_id``,
    in user order, each part about ``part_rows`` rows (a user is never split)."""
    rows = sum(p.height for p in pieces)
    parts = max(1, math.ceil(rows / part_rows))
    if parts == 1:
        whole = pl.concat(pieces) if pieces else None
        pieces.clear()
        return [whole] if whole is not None else []
    users = pl.concat([p.select(USER) for p in pieces])[USER].unique().sort()
    bounds = users.gather([i * len(users) // parts for i in range(1, parts)])
    found: list[list[pl.DataFrame]] = [[] for _ in range(parts)]
    while pieces:
        piece = pieces.pop(0)
        numbered = piece.with_columns(_part=bounds.search_sorted(piece[USER], side="right"))
        for (number,), frame in numbered.partition_by("_part", as_dict=True).items():
            found[int(number)].append(frame.drop("_part"))
    return [pl.concat(f) for f in found if f]
