"""Writing frames into formatted worksheets: the styles, the sheet spec and ``write_frame``.

Formats are declared once (``STYLES``) and created once per workbook; a cell's look is chosen
from its column's glossary kind (``columns.py``), money by the row's currency decimals. Values
are converted column-wise in Polars (money and times to Excel numbers); the rows are then
written as XML built in Polars (``sheetdata``: the same XML xlsxwriter writes; the real archive's
workbook in 1.1 CPU-s instead of 4.6), or, for a frame that path cannot take, one cell at a time
through xlsxwriter (``_column_writer``).

A column whose name starts with ``_`` is a helper, never written: a link target
(``Sheet.links``) or a red-alert mask (``Sheet.alerts``) computed in Polars beside the data.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Any

import polars as pl
import xlsxwriter
from xlsxwriter.format import Format
from xlsxwriter.worksheet import Worksheet

from calo_polars.checks.registry import CHECKS
from calo_polars.money import minor_unit_expr
from calo_polars.report.columns import describe
from calo_polars.report.xlsx import sheetdata
from calo_polars.report.xlsx.numbers import excel_number

EXCEL_MAX_ROWS = 1_048_576
EXCEL_MAX_CHARS = 32_767
#: Excel keeps at most 65,530 hyperlinks a sheet; past that, link cells are written as text.
EXCEL_MAX_URLS = 65_530
#: Sheets up to this many rows become Excel tables (banded, filter buttons, sortable as one);
#: longer ones get a plain autofilter, which stays cheap to open and works with
#: ``constant_memory`` (tables do not).
TABLE_MAX_ROWS = 10_000

DATETIME_FORMAT = "yyyy-mm-dd hh:mm:ss"
DATE_FORMAT = "yyyy-mm-dd"
RED_FILL = {"bg_color": "#FFC7CE", "font_color": "#9C0006"}


def _money(decimals: int) -> str:
    digits = "0" * decimals
    body = f"#,##0.{digits}" if decimals else "#,##0"
    return f"{body};[Red]-{body}"


STYLES: dict[str, dict[str, Any]] = {
    "title": {"bold": True, "font_size": 16, "font_color": "#1F3864"},
    "subtitle": {"bold": True, "font_size": 12, "font_color": "#1F3864", "bottom": 1},
    "note": {"italic": True, "font_color": "#595959"},
    "header": {
        "bold": True,
        "font_color": "#FFFFFF",
        "bg_color": "#1F3864",
        "border": 1,
        "text_wrap": True,
        "valign": "top",
    },
    "label": {"bold": True, "bg_color": "#D9E1F2", "border": 1},
    # data cells sit at the top of their row: rows grow for wrapped text
    "text": {"valign": "top"},
    "wrap": {"text_wrap": True, "valign": "top"},
    "link": {"font_color": "#0563C1", "underline": 1, "valign": "top"},
    "link_count": {"font_color": "#0563C1", "underline": 1, "align": "right"},
    "datetime": {"num_format": DATETIME_FORMAT, "align": "center", "valign": "top"},
    "date": {"num_format": DATE_FORMAT, "align": "center", "valign": "top"},
    "flag": {"num_format": '"TRUE";"TRUE";"FALSE"', "align": "center", "valign": "top"},
    "count": {"num_format": "#,##0", "valign": "top"},
    "float": {"num_format": "#,##0.000;[Red]-#,##0.000", "valign": "top"},
    **{f"money{d}": {"num_format": _money(d), "valign": "top"} for d in (0, 2, 3)},
    **{f"money{d}_alert": {"num_format": _money(d), "valign": "top", **RED_FILL} for d in (0, 2, 3)},
    "flag_red": RED_FILL,
    "flag_amber": {"bg_color": "#FFEB9C", "font_color": "#9C5700"},
    "flag_yellow": {"bg_color": "#FFF2CC"},
}


class Styles:
    """The workbook's formats, created once from ``STYLES`` and looked up by role."""

    def __init__(self, workbook: xlsxwriter.Workbook) -> None:
        self._formats = {name: workbook.add_format(spec) for name, spec in STYLES.items()}
        for fmt in self._formats.values():  # ids in STYLES order, not in order of first use: the same
            fmt._get_xf_index()  # whether cells are written one by one or as XML (``sheetdata``)

    def __getitem__(self, name: str) -> Format:
        return self._formats[name]

    def money(self, decimals: int, *, alert: bool = False) -> Format:
        """The money format with the currency's decimals (0, 2 or 3), red-filled when ``alert``."""
        name = f"money{decimals if decimals in (0, 2, 3) else 2}"
        return self._formats[f"{name}_alert" if alert else name]


@dataclass
class Sheet:
    """A data sheet: its name, what it shows (for the README), its rows and how to mark them.

    ``highlight``: column → conditional rule ("nonblank", "negative", "positive", "nonzero", "true").
    ``links``: column → helper column holding each cell's link target (``link_to``).
    ``alerts``: money column → helper boolean column; True draws the cell red.
    """

    name: str
    about: str
    frame: pl.DataFrame
    highlight: dict[str, str] = field(default_factory=dict)
    links: dict[str, str] = field(default_factory=dict)
    alerts: dict[str, str] = field(default_factory=dict)

    @property
    def columns(self) -> list[str]:
        """The columns written to the sheet (helpers left out)."""
        return visible(self.frame)


def visible(frame: pl.DataFrame) -> list[str]:
    return [c for c in frame.columns if not c.startswith("_")]


#: Data rows a sheet holds under its header row; a longer table goes on in continuation sheets.
#: (Read at call time, so a test can make it small.)
SHEET_ROWS = EXCEL_MAX_ROWS - 1


def part_name(sheet: str, part: int) -> str:
    """The name of a table's ``part``-th sheet (0-based): Ledger, Ledger (2), Ledger (3)…"""
    return sheet if part == 0 else f"{sheet} ({part + 1})"


def sheet_parts(sheet: str, rows: int) -> list[str]:
    """The sheets a table of ``rows`` data rows is written to."""
    return [part_name(sheet, part) for part in range(max(1, -(-rows // SHEET_ROWS)))]


def link_to(sheet: str, index: pl.Expr, *, top: int = 0) -> pl.Expr:
    """The internal link to the 0-based data row ``index`` of a sheet written by ``write_frame``.

    The one place that maps a row to a cell: past ``SHEET_ROWS`` rows it points into the
    continuation sheet that holds the row (``part_name``).
    """
    part = index // SHEET_ROWS
    name = pl.when(part == 0).then(pl.lit(sheet)).otherwise(pl.format("{} ({})", pl.lit(sheet), part + 1))
    return pl.format("internal:'{}'!A{}", name, index % SHEET_ROWS + top + 2)


# ---------------------------------------------------------------- writing a frame


#: Column widths of the kinds whose width does not depend on the values.
FIXED_WIDTHS = {"datetime": 20, "date": 11, "money": 14, "float": 12, "flag": 9, "count": 10}


def _width(name: str, kind: str, longest: Any) -> float:
    """A column's width from its header, kind and longest value (``_longest``; unused for a fixed kind)."""
    if kind in FIXED_WIDTHS:
        return max(FIXED_WIDTHS[kind], min(len(name) + 2, 24))
    chars = longest if isinstance(longest, int) else 0
    cap = 80 if kind == "long_text" else 48
    return min(cap, max(len(name) + 2, chars + 2, 8))


def _longest(frame: pl.DataFrame, names: list[str]) -> dict[str, Any]:
    """Characters of the longest of the first 1,000 values of each column (None when empty), in
    one pass over the frame: one query a column cost ~0.2 ms each, ~300 columns a workbook."""
    if not names:
        return {}
    lengths = [pl.col(c).cast(pl.String).str.len_chars().fill_null(0).max().alias(c) for c in names]
    return frame.head(1000).select(lengths).row(0, named=True)


def _cells(frame: pl.DataFrame, name: str, kind: str) -> list[Any]:
    """The column as the values xlsxwriter writes: floats for numbers, money and times."""
    col = pl.col(name)
    if kind in ("money", "float", "count", "datetime", "date"):
        expr = excel_number(col, kind)
    elif kind == "flag":
        expr = col.cast(pl.Boolean)
    else:
        expr = col.cast(pl.String)
    return frame.select(expr).to_series().to_list()


#: Points per line of 11-point text, and the most lines a row can show (Excel caps a row at 409 pt).
LINE_HEIGHT = 15
MAX_LINES = 27
#: Average characters of proportional text per unit of column width (a unit is one "0").
CHARS_PER_WIDTH = 1.2


def wrap_height(text: str, width: float) -> float:
    """Row height (points) for one wrapped cell of the given column width."""
    lines = sum(max(1, math.ceil(len(line) / (width * CHARS_PER_WIDTH))) for line in text.split("\n"))
    return LINE_HEIGHT * min(max(lines, 1), MAX_LINES)


def text_lines(frame: pl.DataFrame, widths: dict[str, float]) -> list[int]:
    """Lines each row needs when the given columns wrap at their widths (LibreOffice and
    Excel's printing do not grow rows for wrapped text on their own)."""
    if not widths or frame.is_empty():
        return []
    return line_counts(frame, widths).to_list()


def line_counts(frame: pl.DataFrame, widths: dict[str, float]) -> pl.Series:
    """``text_lines`` as a series (1 for every row when nothing wraps)."""
    if not widths:
        return pl.Series("lines", [1] * frame.height, dtype=pl.Int32)
    per_column = [
        pl.col(col)
        .cast(pl.String)
        .fill_null("")
        .str.split("\n")
        .list.eval((pl.element().str.len_chars() / (width * CHARS_PER_WIDTH)).ceil().clip(1))
        .list.sum()
        for col, width in widths.items()
    ]
    return frame.select(pl.max_horizontal(per_column).clip(1, MAX_LINES).cast(pl.Int32).alias("lines")).to_series()


def _clip(s: str) -> str:
    return s if len(s) <= EXCEL_MAX_CHARS else s[: EXCEL_MAX_CHARS - 1] + "…"


def _url_quota(frame: pl.DataFrame, columns: list[str], links: dict[str, str]) -> dict[str, int]:
    """How many link cells each link column gets: Excel keeps ``EXCEL_MAX_URLS`` a sheet, given
    to the columns left to right (the rest are written as plain text)."""
    quota, left = {}, EXCEL_MAX_URLS
    for col in columns:
        if col in links:
            wanted = frame.select((pl.col(col).is_not_null() & pl.col(links[col]).is_not_null()).sum()).item()
            quota[col] = min(wanted, left)
            left -= quota[col]
    return quota


def _column_writer(
    ws: Worksheet,
    rows: pl.DataFrame,
    col: str,
    c: int,
    styles: Styles,
    link: str | None,
    budget: dict[str, int],
    alert: str | None,
) -> Any:
    """A function writing the column's cell of row ``i`` of ``rows`` at sheet row ``r``: typed
    cells (numbers, dates, flags, text), links while ``budget[col]`` lasts, money by the row's
    currency decimals."""
    kind = describe(col).kind
    values = _cells(rows, col, kind)
    if link is not None:
        targets = rows[link].to_list()

        def write_link(r: int, i: int) -> None:
            v = values[i]
            if v is None:
                return
            if targets[i] is not None and budget[col] > 0:
                ws.write_url(r, c, targets[i], styles["link"], string=str(v))
                budget[col] -= 1
            else:
                ws.write_string(r, c, str(v))

        return write_link
    if kind == "money":
        decimals = (
            rows.select(minor_unit_expr(pl.col("currency"))).to_series().to_list()
            if "currency" in rows.columns
            else [2] * rows.height
        )
        mask = rows[alert].fill_null(False).to_list() if alert else [False] * rows.height
        fmts = [styles.money(d, alert=a) for d, a in zip(decimals, mask, strict=True)]
        return lambda r, i: values[i] is not None and ws.write_number(r, c, values[i], fmts[i])
    if kind in ("float", "count", "datetime", "date"):
        fmt = styles[kind]
        return lambda r, i: values[i] is not None and ws.write_number(r, c, values[i], fmt)
    if kind == "flag":
        fmt = styles["flag"]
        return lambda r, i: values[i] is not None and ws.write_boolean(r, c, values[i], fmt)
    fmt = styles["wrap" if kind == "long_text" else "text"]
    return lambda r, i: values[i] is not None and ws.write_string(r, c, _clip(values[i]), fmt)


#: Rows turned into Python values (or XML) at a time: a whole 800k-row Ledger as Python lists took 1 GB.
CHUNK_ROWS = 50_000
#: Whether frames are written as XML built in Polars (``sheetdata``) where they can be; False writes
#: every cell through xlsxwriter (the reference the tests compare with).
FAST = True


def write_frame(
    ws: Worksheet,
    frame: pl.DataFrame,
    styles: Styles,
    *,
    top: int = 0,
    name: str | None = None,
    highlight: dict[str, str] | None = None,
    links: dict[str, str] | None = None,
    alerts: dict[str, str] | None = None,
    table: bool | None = None,
) -> None:
    """Write a frame at row ``top``: header, typed cells, links, table or filter, widths, marks.

    Cells are written row by row as XML built in Polars (``sheetdata``; see ``FAST``), or where
    that cannot be, cell by cell (what xlsxwriter's ``constant_memory`` mode needs, where a
    row is flushed once the next one starts), ``CHUNK_ROWS`` at a time. ``table`` None
    decides by size (``TABLE_MAX_ROWS``; never in constant-memory mode); ``name`` names the
    Excel table.
    """
    links, alerts = links or {}, alerts or {}
    columns = visible(frame)
    n = frame.height
    budget = _url_quota(frame, columns, links)
    wrapped: dict[str, float] = {}
    kinds = [describe(col).kind for col in columns]
    longest = _longest(frame, [col for col, kind in zip(columns, kinds, strict=True) if kind not in FIXED_WIDTHS])
    for c, (col, kind) in enumerate(zip(columns, kinds, strict=True)):
        ws.write_string(top, c, col, styles["header"])
        width = _width(col, kind, longest.get(col))
        ws.set_column(c, c, width)
        if kind == "long_text":
            wrapped[col] = width
    fast = n > 0 and FAST and sheetdata.usable(ws, frame, columns, links, top)
    for start in range(0, n, CHUNK_ROWS):
        rows = frame.slice(start, CHUNK_ROWS)
        if fast:
            lines = line_counts(rows, wrapped)
            sheetdata.write_body(
                ws,
                rows,
                columns,
                styles,
                first=top + 1 + start,
                lines=lines,
                line_height=LINE_HEIGHT,
                links=links,
                budget=budget,
                alerts=alerts,
            )
            continue
        writers = [
            _column_writer(ws, rows, col, c, styles, links.get(col), budget, alerts.get(col))
            for c, col in enumerate(columns)
        ]
        row_lines = text_lines(rows, wrapped) or [1] * rows.height
        for i in range(rows.height):
            r = top + 1 + start + i
            if row_lines[i] > 1:
                ws.set_row(r, LINE_HEIGHT * row_lines[i])
            for write in writers:
                write(r, i)
    last_col = max(len(columns) - 1, 0)
    if table if table is not None else n <= TABLE_MAX_ROWS and not ws.constant_memory:  # no tables in that mode
        ws.add_table(
            top,
            0,
            top + max(n, 1),
            last_col,
            {
                "name": table_name(name or ws.get_name()),
                "style": "Table Style Light 1",
                "columns": [{"header": col, "header_format": styles["header"]} for col in columns],
            },
        )
    else:
        ws.autofilter(top, 0, top + n, last_col)
    ws.freeze_panes(top + 1, 0)
    print_setup(ws, repeat_row=top)
    _highlight(ws, columns, styles, top, top + max(n, 1), highlight or {})


def table_name(sheet: str) -> str:
    """A valid, unique-per-sheet Excel table name."""
    return "tbl_" + re.sub(r"\W", "_", sheet)


def print_setup(ws: Worksheet, *, repeat_row: int | None = None) -> None:
    """Landscape A4, fit to one page wide, header row repeated, sheet name and page in the footer."""
    ws.set_landscape()
    ws.set_paper(9)
    ws.fit_to_pages(1, 0)
    ws.set_margins(left=0.4, right=0.4, top=0.6, bottom=0.6)
    ws.set_header("&L&8Calo balance audit&R&8&A")
    ws.set_footer("&C&8Page &P of &N")
    if repeat_row is not None:
        ws.repeat_rows(repeat_row)


#: Boolean columns where TRUE means a problem: drawn red wherever they appear.
PROBLEM_FLAGS = frozenset(
    {name for c in CHECKS for name, (kind, _) in c.glossary.items() if kind == "flag"} | {"unreconciled"}
)


def _highlight(
    ws: Worksheet, columns: list[str], styles: Styles, top: int, last_row: int, rules_by_column: dict[str, str]
) -> None:
    rules = {
        "true": {"type": "cell", "criteria": "==", "value": "TRUE", "format": styles["flag_red"]},
        "nonblank": {"type": "no_blanks", "format": styles["flag_red"]},
        "negative": {"type": "cell", "criteria": "<", "value": 0, "format": styles["flag_red"]},
        "positive": {"type": "cell", "criteria": ">", "value": 0, "format": styles["flag_amber"]},
        "nonzero": {"type": "cell", "criteria": "!=", "value": 0, "format": styles["flag_amber"]},
    }
    for c, name in enumerate(columns):
        rule = rules_by_column.get(name)
        if rule is None and name in PROBLEM_FLAGS:
            rule = "true"
        if rule:
            ws.conditional_format(top + 1, c, last_row, c, rules[rule])
        if name == "severity":
            for value, style in (("high", "flag_red"), ("medium", "flag_amber"), ("low", "flag_yellow")):
                ws.conditional_format(
                    top + 1,
                    c,
                    last_row,
                    c,
                    {"type": "cell", "criteria": "==", "value": f'"{value}"', "format": styles[style]},
                )
