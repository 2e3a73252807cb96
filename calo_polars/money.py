"""Money rules in one place: minor units, parsing scale, tolerance and rounding.

Amounts in the logs are JavaScript numbers (``8``, ``16.4``, ``60.181000000000004``). They are
parsed from their text straight into Decimal, never through a float. Six decimals hold every
value the Lambda means to write (currencies have at most 3); digits past the sixth are
binary-float noise and are dropped by the parse. Checks compare these exact values with a
tolerance; only totals shown to people are rounded to the currency's minor unit.
"""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal

import polars as pl

#: Decimal places kept when parsing a logged number.
SCALE = 6
#: The Polars type of every money column.
MONEY = pl.Decimal(38, SCALE)

#: ISO 4217 minor units for the currencies that do not use 2 decimals.
_THREE_DECIMALS = frozenset({"BHD", "KWD", "OMR", "JOD", "IQD", "LYD", "TND"})
_ZERO_DECIMALS = frozenset({"JPY", "KRW", "VND", "CLP", "ISK", "UGX", "XAF", "XOF"})


def minor_unit(currency: str | None) -> int:
    """Decimal places of the currency's minor unit (BHD 3 — fils, SAR 2 — halalas)."""
    if currency in _THREE_DECIMALS:
        return 3
    if currency in _ZERO_DECIMALS:
        return 0
    return 2


def default_tolerance(currency: str | None) -> Decimal:
    """Half the currency's minor unit: BHD/KWD/OMR 0.0005, SAR/AED/QAR 0.005."""
    return Decimal(5).scaleb(-(minor_unit(currency) + 1))


def round_money(value: Decimal, currency: str | None) -> Decimal:
    """Round half-up to the currency's minor unit, as an accountant rounds."""
    return value.quantize(Decimal(1).scaleb(-minor_unit(currency)), rounding=ROUND_HALF_UP)


def money_text(value: Decimal | None, currency: str | None) -> str | None:
    """The amount as a decimal string with exactly the currency's decimals."""
    return None if value is None else str(round_money(value, currency))


def minor_unit_expr(currency: pl.Expr) -> pl.Expr:
    """Per-row decimal places of the minor unit, as an expression over a currency column."""
    return (
        pl.when(currency.is_in(list(_THREE_DECIMALS)))
        .then(pl.lit(3, pl.Int8))
        .when(currency.is_in(list(_ZERO_DECIMALS)))
        .then(pl.lit(0, pl.Int8))
        .otherwise(pl.lit(2, pl.Int8))
    )


def tolerance_expr(currency: pl.Expr, override: Decimal | None = None) -> pl.Expr:
    """Per-row tolerance as a MONEY expression: the override, or half the minor unit."""
    if override is not None:
        return pl.lit(override, MONEY)
    decimals = minor_unit_expr(currency)
    return (
        pl.when(decimals == 3)
        .then(pl.lit(Decimal("0.0005"), MONEY))
        .when(decimals == 0)
        .then(pl.lit(Decimal("0.5"), MONEY))
        .otherwise(pl.lit(Decimal("0.005"), MONEY))
    )


def money_text_expr(value: pl.Expr, currency: pl.Expr) -> pl.Expr:
    """Money as text with the currency's decimals, for plain-English reasons.

    Rounding here is Polars' Decimal rounding (half to even); it only formats reasons,
    it never feeds a check or a total.
    """
    decimals = minor_unit_expr(currency)
    return (
        pl.when(decimals == 3)
        .then(value.round(3).cast(pl.Decimal(38, 3)).cast(pl.String))
        .when(decimals == 0)
        .then(value.round(0).cast(pl.Decimal(38, 0)).cast(pl.String))
        .otherwise(value.round(2).cast(pl.Decimal(38, 2)).cast(pl.String))
    )
