"""Windows over one user's history: the orders and partitions every check may use.

Every check looks only at one user's own history, so the plan gives the same answer on any
partition of users. A wallet's balance history is its applied transactions in one currency
(``HISTORY``), in time order with ties broken by the ULID transaction id (``ORDER``).
"""

from __future__ import annotations

import polars as pl

from calo_polars.parse.partition import USER

#: Time order inside one user's history: log time, ties broken by the ULID transaction id.
ORDER = ["ts", "tx_id"]
WALLET = [USER, "wallet_id"]
#: One balance history: a wallet in one currency (a wallet that changes currency starts another).
HISTORY = [*WALLET, "currency"]


def next_in_wallet(column: str) -> pl.Expr:
    """The same wallet's next applied transaction's ``column``, in time order (ties by id);
    null on a refused block, which never moved the wallet."""
    return pl.when(pl.col("applied")).then(pl.col(column).shift(-1).over([*HISTORY, "applied"], order_by=ORDER))


def previous_in_wallet(column: str) -> pl.Expr:
    """The wallet's previous applied transaction's ``column``, whatever its currency."""
    return pl.when(pl.col("applied")).then(pl.col(column).shift(1).over([*WALLET, "applied"], order_by=ORDER))
