"""xlsxwriter with every text through ``report.text``: the workbook's one escaping path.

``SafeWorkbook`` is the ``xlsxwriter.Workbook`` the report writes: its worksheets escape
every string, link display text, tip and comment (``xml_text``), its charts every title,
axis and series name (``chart_text``), and its document properties too; so no writer can
forget, and a new ``write_string`` anywhere is safe by construction.
"""

from __future__ import annotations

from typing import Any

import xlsxwriter
from xlsxwriter.worksheet import Worksheet

from calo_polars.report.text import chart_text, sheet_name, xml_text


def _text(value: Any) -> Any:
    return xml_text(value) if isinstance(value, str) else value


class SafeWorksheet(Worksheet):
    """A worksheet whose text cells, links and comments hold only what XML (and Excel) can."""

    def write_string(self, row: int, col: int, string: str, *args: Any) -> int:
        return super().write_string(row, col, xml_text(str(string)), *args)

    def write_url(self, row: int, col: int, url: str, cell_format: Any = None, string: Any = None,
                  tip: Any = None) -> int:  # fmt: skip
        return super().write_url(row, col, url, cell_format, _text(string), _text(tip))

    def write_comment(self, row: int, col: int, comment: str, options: Any = None) -> int:
        return super().write_comment(row, col, xml_text(str(comment)), options)


def _named(options: dict[str, Any] | None) -> dict[str, Any] | None:
    """Chart options with a text ``name`` made ``chart_text`` (a [sheet, row, col] reference is kept)."""
    if not options or not isinstance(options.get("name"), str):
        return options
    return {**options, "name": chart_text(options["name"])}


class SafeWorkbook(xlsxwriter.Workbook):
    """The workbook the report writes: every text goes through ``report.text``."""

    worksheet_class = SafeWorksheet

    def add_worksheet(self, name: str | None = None, worksheet_class: Any = None) -> Any:
        return super().add_worksheet(None if name is None else sheet_name(name), worksheet_class)

    def set_properties(self, properties: dict[str, Any]) -> None:
        super().set_properties({k: _text(v) for k, v in properties.items()})

    def add_chart(self, options: dict[str, Any]) -> Any:
        chart = super().add_chart(options)
        if chart is None:
            return None
        for method in ("set_title", "add_series", "set_x_axis", "set_y_axis"):
            original = getattr(chart, method)
            setattr(chart, method, lambda opts=None, _original=original: _original(_named(opts)))
        return chart
