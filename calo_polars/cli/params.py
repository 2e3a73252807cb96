"""Numeric option values: one click type for every number an option takes, on every command.

``float('nan')`` compares false with every bound, so click's ``FloatRange`` lets NaN through
(and ``inf`` when a side is open); a Python int has no upper bound, so ``IntRange`` takes
``--window 10**30`` and Polars overflows later. ``Number`` parses the text as a decimal,
refuses NaN and infinities, checks both bounds, and only then converts, so a bad value is a
usage error (exit 2, one ``Error:`` line) before any work.
"""

from __future__ import annotations

from decimal import Decimal, InvalidOperation
from typing import Any

import click

#: The largest value of a count option (threads, workers, window...): more is a typo.
MAX_COUNT = 1 << 20


class Number(click.ParamType):
    """A finite number of ``kind`` (int, float or Decimal) between ``low`` and ``high``."""

    def __init__(
        self,
        kind: type = float,
        low: float | int | None = None,
        high: float | int | None = None,
        *,
        low_open: bool = False,
        high_open: bool = False,
    ) -> None:
        self.kind, self.low, self.high, self.low_open, self.high_open = kind, low, high, low_open, high_open
        self.name = {int: "integer", float: "number", Decimal: "decimal"}[kind]

    def _range(self) -> str:
        low = "" if self.low is None else f"{self.low}{'<' if self.low_open else '<='}"
        high = "" if self.high is None else f"{'<' if self.high_open else '<='}{self.high}"
        return f"{low}x{high}"

    def get_metavar(self, param: click.Parameter, ctx: click.Context | None = None) -> str:
        return f"{self.name.upper()} {self._range()}" if self.low is not None or self.high is not None else ""

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        if isinstance(value, bool):
            self.fail(f"{value!r} is not a {self.name}", param, ctx)
        try:
            number = Decimal(str(value).strip())
        except InvalidOperation:
            self.fail(f"{value!r} is not a {self.name}", param, ctx)
        if not number.is_finite():
            self.fail(f"{value!r} is not a finite {self.name}", param, ctx)
        if self.kind is int and number != number.to_integral_value():
            self.fail(f"{value!r} is not a whole number", param, ctx)
        too_low = self.low is not None and (
            number <= Decimal(str(self.low)) if self.low_open else number < Decimal(str(self.low))
        )
        too_high = self.high is not None and (
            number >= Decimal(str(self.high)) if self.high_open else number > Decimal(str(self.high))
        )
        if too_low or too_high:
            self.fail(f"{value!r} is not in the range {self._range()}", param, ctx)
        return int(number) if self.kind is int else float(number) if self.kind is float else number


def count(low: int = 1, high: int = MAX_COUNT) -> Number:
    """A whole number of things (threads, partitions, users...)."""
    return Number(int, low, high)
