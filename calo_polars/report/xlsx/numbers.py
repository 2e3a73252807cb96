"""Numbers as xlsxwriter writes them (``f"{x:.16G}"``), for a whole column at once.

xlsxwriter writes every number cell with 16 significant digits, which does not always
round-trip (9.95 is written 9.949999999999999): a reader gets that value back, so a faster
writer must produce the very same digits, not Polars' shortest repr. Whole numbers below
1e15 (counts, dates, most amounts in whole units) are their integer's digits, cast in Polars;
the others go through Python's own formatting, once per distinct value (~0.2 µs a value, C code;
measured faster than exact 16-digit rounding in Int128 Polars arithmetic, whose string steps cost more).
"""

from __future__ import annotations

import polars as pl

#: Below this, a whole number's ``%.16G`` is its integer's digits (never exponent notation).
WHOLE_MAX = 1e15
#: Excel's day number of 1970-01-01 (the 1900 date system).
EXCEL_EPOCH_DAY = 25_569
MS_PER_DAY = 86_400_000


def excel_number(col: pl.Expr, kind: str) -> pl.Expr:
    """A number column (glossary kind money, float, count, datetime or date) as the Excel numbers its cells hold."""
    if kind == "datetime":
        return col.dt.epoch("ms").cast(pl.Float64) / MS_PER_DAY + EXCEL_EPOCH_DAY
    if kind == "date":
        return col.cast(pl.Int32).cast(pl.Float64) + EXCEL_EPOCH_DAY
    return col.cast(pl.Float64)


def g16(values: pl.Series) -> pl.Series:
    """``f"{x:.16G}"`` of each value (null stays null); the values must be finite (xlsxwriter refuses NaN and inf)."""
    x = values.cast(pl.Float64)
    frame = pl.DataFrame({"x": x})
    whole = (
        (pl.col("x").abs() < WHOLE_MAX)
        & (pl.col("x") == pl.col("x").round(0))
        & ((pl.col("x") != 0) | (pl.lit(1.0).truediv(pl.col("x")) > 0))  # -0.0 is written "-0"
    )
    out = frame.select(
        g=pl.when(whole).then(pl.col("x").cast(pl.Int64).cast(pl.String)),
        rest=~whole & pl.col("x").is_not_null(),
    )
    result = out["g"]
    rest = out.select(pl.arg_where(pl.col("rest"))).to_series()
    if rest.len():
        values = x.gather(rest)
        distinct = values.unique()
        if distinct.len() < values.len():  # amounts repeat: format each once
            digits = pl.Series([f"{v:.16G}" for v in distinct.to_list()], dtype=pl.String)
            result = result.scatter(rest, values.replace_strict(distinct, digits, return_dtype=pl.String))
        else:
            result = result.scatter(rest, [f"{v:.16G}" for v in values.to_list()])
    return result.rename(values.name)
