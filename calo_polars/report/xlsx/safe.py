"""xlsxwriter with every text through ``report.text``: the workbook's one escaping path.

``SafeWorkbook`` is the ``xlsxwriter.Workbook`` the report writes: its worksheets escape
every string, link display text, tip and comment (``xml_text``), its charts every title,
axis and series name (``chart_text``), and its document properties too; so no writer can
forget, and a new ``write_string`` anywhere is safe by construction.
"""

from __future__ import annotations

import io
import zipfile
from typing import Any

import xlsxwriter
import xlsxwriter.packager
from isal import isal_zlib
from xlsxwriter.exceptions import OverlappingRange
from xlsxwriter.sharedstrings import SharedStrings
from xlsxwriter.utility import xl_range
from xlsxwriter.worksheet import Worksheet, convert_range_args

from calo_polars.report.text import chart_text, sheet_name, xml_text
from calo_polars.report.xlsx import sheetdata


def _text(value: Any) -> Any:
    return xml_text(value) if isinstance(value, str) else value


def _overlap(a: tuple[int, int, int, int], b: tuple[int, int, int, int]) -> bool:
    return a[0] <= b[2] and b[0] <= a[2] and a[1] <= b[3] and b[1] <= a[3]


class SafeWorksheet(Worksheet):
    """A worksheet whose text cells, links and comments hold only what XML (and Excel) can.

    It also takes rows as ready XML (``add_body``, from ``sheetdata.write_body``: text
    already through ``xml_text``), written after the rows xlsxwriter holds above them; in
    ``constant_memory`` mode they go straight to xlsxwriter's row file, so memory stays flat.
    """

    takes_body = True
    # xlsxwriter's own attributes this class reads (set in Worksheet.__init__, unannotated there)
    previous_row: int
    dim_rowmin: int
    dim_rowmax: int
    fh: Any

    def __init__(self) -> None:
        super().__init__()
        self._body: list[str] = []
        self._body_rows: tuple[int, int] | None = None
        self._body_links: list[str] = []
        self._table_rects: list[tuple[tuple[int, int, int, int], str]] = []

    @convert_range_args
    def add_table(
        self, first_row: int, first_col: int, last_row: int, last_col: int, options: dict[str, Any] | None = None
    ) -> int:
        """xlsxwriter's ``add_table``, without its cell-by-cell overlap bookkeeping (a dict entry per cell:
        0.1 s for the real archive's tables): the overlap is checked on the rectangle, xlsxwriter makes the
        table over its header and first row, and the table's ranges are then set to the whole rectangle."""
        opts = options or {}
        plain = (
            not self.constant_memory
            and first_row + 1 < last_row < self.xls_rowmax
            and first_col <= last_col < self.xls_colmax
            and opts.get("header_row", True)
            and not opts.get("total_row")
            and "data" not in opts
            and not any(c and (c.get("formula") or c.get("total_function")) for c in opts.get("columns", []))
        )
        if not plain:
            return super().add_table(first_row, first_col, last_row, last_col, options)
        rect = (first_row, first_col, last_row, last_col)
        whole = xl_range(*rect)
        for kind, other, name in self._ranges():
            if _overlap(rect, other):
                raise OverlappingRange(f"Table range '{whole}' overlaps previous {kind} range '{name}'.")
        result = super().add_table(first_row, first_col, first_row + 1, last_col, options)
        if result == 0:
            table = self.tables[-1]
            table["range"] = table["a_range"] = whole
            if "autofilter" in table:
                table["autofilter"] = whole
            self._table_rects.append((rect, whole))
        return result

    @convert_range_args
    def merge_range(self, first_row: int, first_col: int, last_row: int, last_col: int, *args: Any) -> int:
        rect = (min(first_row, last_row), min(first_col, last_col), max(first_row, last_row), max(first_col, last_col))
        for other, name in self._table_rects:
            if _overlap(rect, other):
                raise OverlappingRange(f"Merge range '{xl_range(*rect)}' overlaps previous table range '{name}'.")
        return super().merge_range(first_row, first_col, last_row, last_col, *args)

    def _ranges(self) -> list[tuple[str, tuple[int, int, int, int], str]]:
        """Every table and merged range so far, as rectangles."""
        out = [("table", rect, name) for rect, name in self._table_rects]
        for kind, cells in (("table", self.table_cells), ("merge", self.merged_cells)):
            out += [(kind, (r, c, r, c), name) for (r, c), name in cells.items()]
        return out

    def has_body(self) -> bool:
        return self._body_rows is not None

    def add_body(self, first: int, last: int, xml: str, links: str) -> None:
        """Rows ``first``..``last`` (0-based) as ``<row>`` XML, and their ``<hyperlink>`` elements."""
        if self.constant_memory:
            self._opt_reopen()
            if self.previous_row < first:
                self._write_single_row(first)  # flush the row xlsxwriter holds (the header)
            self.row_data_fh.write(xml)
        else:
            self._body.append(xml)
        start = first if self._body_rows is None else self._body_rows[0]
        self._body_rows = (start, last)
        self._check_dimensions(last, 0)
        if self.constant_memory:
            self.previous_row = last + 1  # rows up to here are written: xlsxwriter refuses them from now on
        if links:
            self._body_links.append(links)

    def _write_sheet_data(self) -> None:
        if self._body_rows is None:
            return super()._write_sheet_data()
        first, last = self._body_rows
        if any(first <= row <= last and cells for row, cells in self.table.items()):
            raise RuntimeError(f"cells written over the rows of sheet {self.name!r} given as XML")
        low, high = self.dim_rowmin, self.dim_rowmax
        self._xml_start_tag("sheetData")
        try:
            if low < first:
                self.dim_rowmax = first - 1
                self._write_rows()
            for xml in self._body:
                self.fh.write(xml)
            if high > last:
                self.dim_rowmin, self.dim_rowmax = last + 1, high
                self._write_rows()
        finally:
            self.dim_rowmin, self.dim_rowmax = low, high
        self._xml_end_tag("sheetData")
        return None

    def _write_hyperlinks(self) -> None:
        if not self._body_links:
            return super()._write_hyperlinks()
        fh, self.fh = self.fh, io.StringIO()
        try:
            super()._write_hyperlinks()
            theirs = self.fh.getvalue().removeprefix("<hyperlinks>").removesuffix("</hyperlinks>")
        finally:
            self.fh = fh
        self.fh.write(f"<hyperlinks>{theirs}{''.join(self._body_links)}</hyperlinks>")
        return None

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


#: Deflate level of the workbook's parts, with isal's deflate (levels 0-3). Level 1 deflates the real
#: archive's 21 MB of XML in 0.03 s CPU, where zlib takes 0.12 s at level 1 and 0.39 s at its default
#: 6, for a file 20 % bigger than zlib's level 6 (3.8 MB instead of 3.2 MB).
DEFLATE_LEVEL = 1


def _compressor(compress_type: int, compresslevel: int | None = None) -> Any:
    """``zipfile._get_compressor`` with isal's deflate (a raw deflate stream, as zlib's)."""
    if compress_type == zipfile.ZIP_DEFLATED:
        return isal_zlib.compressobj(DEFLATE_LEVEL, isal_zlib.DEFLATED, -15)
    return _ZIP_COMPRESSOR(compress_type, compresslevel)


_ZIP_COMPRESSOR = zipfile._get_compressor  # type: ignore[attr-defined]


class _SharedStrings(SharedStrings):
    """xlsxwriter's shared strings part, its ``<si>`` elements made in Polars (``sheetdata``)."""

    def _write_sst_strings(self) -> None:
        self.fh.write(sheetdata.shared_strings_xml(self.string_table.string_array))


class SafeWorkbook(xlsxwriter.Workbook):
    """The workbook the report writes: every text goes through ``report.text``."""

    worksheet_class = SafeWorksheet

    def _store_workbook(self) -> None:
        # only while this workbook is stored: its shared strings made in Polars, its parts deflated by isal
        xlsxwriter.packager.SharedStrings = _SharedStrings
        zipfile._get_compressor = _compressor  # type: ignore[attr-defined]
        try:
            super()._store_workbook()
        finally:
            xlsxwriter.packager.SharedStrings = SharedStrings
            zipfile._get_compressor = _ZIP_COMPRESSOR  # type: ignore[attr-defined]

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
