"""A data sheet's rows as XML, made column-wise in Polars: the workbook's fast path.

xlsxwriter writes one cell at a time (~7 µs each in Python: 4 s for the real archive's
540k cells). Here a frame's rows become the ``<row>``/``<c>`` XML xlsxwriter itself would
write, built with Polars string expressions a chunk at a time, and handed to the worksheet
(``safe.SafeWorksheet``), which puts them inside its ``<sheetData>``; xlsxwriter still writes
everything else (header row, columns, tables, filters, conditional formats, panes, links'
part of the sheet's XML from what is given here). Each cell is what ``frames._column_writer``
writes through xlsxwriter, to the character: the same text after ``report.text.xml_text``
(and the same clipping), numbers with xlsxwriter's 16 digits (``numbers.g16``), the same
format ids, shared strings in normal mode and inline strings (xlsxwriter's escaping) in
``constant_memory`` mode, links within the sheet's budget. ``usable`` says when a frame
cannot take this path (NaN or infinity in a number column, links that are not internal,
a sheet already holding rows below the header): the caller then writes it cell by cell.
"""

from __future__ import annotations

from typing import Any

import polars as pl
from xlsxwriter.utility import _utf16_len, _utf16_truncate, xl_col_to_name
from xlsxwriter.worksheet import Worksheet

from calo_polars.money import minor_unit_expr
from calo_polars.report.columns import describe
from calo_polars.report.text import EXCEL_MAX_CHARS, XML_ILLEGAL, _escape
from calo_polars.report.xlsx.numbers import excel_number, g16

NUMBER_KINDS = ("money", "float", "count", "datetime", "date")
#: What ``report.text.xml_text`` replaces, as a Polars (Rust) pattern (lone surrogates cannot be in a Polars string).
ILLEGAL_PATTERN = r"[\x00-\x08\x0B\x0C\x0E-\x1F\x{FFFE}\x{FFFF}]"
ILLEGAL_CHARS = [chr(c) for c in (*range(0x00, 0x09), 0x0B, 0x0C, *range(0x0E, 0x20), 0xFFFE, 0xFFFF)]
#: Python's ``\s`` on text that went through ``xml_text`` (xlsxwriter's whitespace test for xml:space).
SPACE = "[\t\n\x0b\x0c\r\x1c-\x1f \x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]"
#: Longest link a sheet takes as is (xlsxwriter refuses links past 2,079 characters).
MAX_LINK = 2_000


def usable(ws: Worksheet, frame: pl.DataFrame, columns: list[str], links: dict[str, str], top: int) -> bool:
    """Whether ``frame`` can be written at ``top`` by ``write_body`` (else: cell by cell)."""
    if not getattr(ws, "takes_body", False) or ws.has_body() or ws.excel_version != 2007:
        return False
    if (ws.dim_rowmax is not None and ws.dim_rowmax > top) or any(r > top for r in ws.row_info):
        return False
    if ws.default_row_height != ws.original_row_height or ws.comments or (ws.constant_memory and ws.previous_row > top):
        return False
    checks = []
    for col in columns:
        kind = describe(col).kind
        if col in links:
            if kind in NUMBER_KINDS or kind == "flag":
                return False
            target = pl.col(links[col]).cast(pl.String)
            checks.append(
                (target.is_null() | (target.str.starts_with("internal:") & (target.str.len_chars() <= MAX_LINK))).all()
            )
        elif kind in NUMBER_KINDS:
            checks.append(_numbers(col, kind).is_finite().or_(_numbers(col, kind).is_null()).all())
    return not checks or all(frame.select(checks).row(0))


def _numbers(col: str, kind: str) -> pl.Expr:
    """The column as the Excel numbers ``frames._cells`` makes of it."""
    return excel_number(pl.col(col), kind)


def _clip(text: pl.Expr, limit: int = EXCEL_MAX_CHARS) -> pl.Expr:
    """``xml_text``'s last steps: a zero-width space before text shaped like rich runs, the cut."""
    rich = text.str.starts_with("<r>") & text.str.ends_with("</r>")
    text = pl.when(rich).then(pl.lit("\u200b") + text).otherwise(text)
    return pl.when(text.str.len_chars() > limit).then(text.str.slice(0, limit - 1) + "…").otherwise(text)


def _utf16(values: pl.Series) -> pl.Series:
    """xlsxwriter's own cut of a text past 32,767 UTF-16 units (only texts over 16,383 characters can be)."""
    long = values.to_frame("s").select(pl.arg_where(pl.col("s").str.len_chars() > EXCEL_MAX_CHARS // 2)).to_series()
    if not long.len():
        return values
    texts = values.gather(long).to_list()
    cut = [_utf16_truncate(t, EXCEL_MAX_CHARS) if _utf16_len(t) > EXCEL_MAX_CHARS else t for t in texts]
    return values.scatter(long, cut)


def _shared(ws: Worksheet, values: pl.Series) -> pl.Series:
    """Each text's index in the workbook's shared strings, added as xlsxwriter adds them."""
    sst = ws.str_table
    table = sst.string_table
    unique = values.drop_nulls().unique(maintain_order=True)
    index = []
    for text in unique.to_list():
        i = table.get(text)
        if i is None:
            i = table[text] = sst.unique_count
            sst.unique_count += 1
        index.append(i)
    sst.count += values.len() - values.null_count()
    return values.replace_strict(unique, pl.Series(index, dtype=pl.Int64), default=None).cast(pl.String)


#: What xlsxwriter writes as ``_xHHHH_`` (``XMLwriter._escape_control_characters``).
CONTROL_PATTERN = r"[\x00-\x08\x0B-\x1F\x{FFFE}\x{FFFF}]"
CONTROL_CHARS = [chr(c) for c in (*range(0x00, 0x09), *range(0x0B, 0x20), 0xFFFE, 0xFFFF)]


def _inline(values: pl.Series) -> pl.Series:
    """A string's ``<t>`` element (or rich runs) as xlsxwriter writes it, inline or shared: control
    characters as ``_xHHHH_`` (a literal ``_xHHHH_`` escaped first), ``xml:space`` for leading or
    trailing whitespace, ``&<>`` escaped; a text that looks like rich runs (``<r>…</r>``) as is."""
    frame = values.to_frame("s")
    escape, control, markup = frame.select(
        pl.col("s").str.contains(r"_x[0-9a-fA-F]{4}_").any().alias("escape"),
        pl.col("s").str.contains(CONTROL_PATTERN).any().alias("control"),
        pl.col("s").str.contains("[&<>]").any().alias("markup"),
    ).row(0)  # each step only where some text needs it
    s = pl.col("s")
    if escape:
        s = s.str.replace_all(r"(_x[0-9a-fA-F]{4}_)", "_x005F${1}")
    if control:
        for ch in CONTROL_CHARS:
            s = s.str.replace_all(ch, f"_x{ord(ch):04X}_", literal=True)
    data = s
    if markup:
        data = s.str.replace_all("&", "&amp;", literal=True).str.replace_all("<", "&lt;", literal=True)
        data = data.str.replace_all(">", "&gt;", literal=True)
    preserve = s.str.contains(f"^{SPACE}|{SPACE}$")
    body = (
        pl.when(preserve)
        .then(pl.concat_str(pl.lit('<t xml:space="preserve">'), data, pl.lit("</t>")))
        .otherwise(pl.concat_str(pl.lit("<t>"), data, pl.lit("</t>")))
    )
    if markup:  # rich runs need a "<"
        body = pl.when(s.str.starts_with("<r>") & s.str.ends_with("</r>")).then(s).otherwise(body)
    return frame.select(body).to_series()


def shared_strings_xml(strings: list[str]) -> str:
    """The ``<si>`` elements of the workbook's shared strings, as ``SharedStrings._write_si`` writes them."""
    body = _inline(pl.Series("s", strings, dtype=pl.String))
    return body.to_frame("b").select(pl.concat_str(pl.lit("<si>"), pl.col("b"), pl.lit("</si>")).str.join("")).item()


def _attribute(text: pl.Expr) -> pl.Expr:
    """xlsxwriter's escaping of an attribute value."""
    for raw, escaped in (("&", "&amp;"), ('"', "&quot;"), ("<", "&lt;"), (">", "&gt;"), ("\n", "&#xA;")):
        text = text.str.replace_all(raw, escaped, literal=True)
    return text


def _ht(points: float) -> str:
    """The ``ht`` attribute xlsxwriter writes for ``set_row(r, points)``."""
    return f"{int(points * 4.0 / 3.0 + 0.5) * 0.75:.16g}"


def _money_style(col: str, rows: pl.DataFrame, styles: Any, alerts: dict[str, str]) -> pl.Expr:
    """The money format id of each row: the currency's decimals (0, 2 or 3), red when alerted."""
    decimals = minor_unit_expr(pl.col("currency")) if "currency" in rows.columns else pl.lit(2)
    decimals = pl.when(decimals.is_in([0, 3])).then(decimals).otherwise(2)
    alert = pl.col(alerts[col]).fill_null(False) if col in alerts else pl.lit(False)
    xf = pl.lit("")
    for d in (0, 2, 3):
        for a in (False, True):
            style = pl.lit(str(styles.money(d, alert=a)._get_xf_index()))
            xf = pl.when((decimals == d) & (alert == a)).then(style).otherwise(xf)
    return xf


def _split(values: pl.Series, names: list[str], n: int) -> dict[str, pl.Series]:
    return {name: values.slice(i * n, n).rename(name) for i, name in enumerate(names)}


def write_body(
    ws: Worksheet,
    rows: pl.DataFrame,
    columns: list[str],
    styles: Any,
    *,
    first: int,
    lines: pl.Series,
    line_height: float,
    links: dict[str, str],
    budget: dict[str, int],
    alerts: dict[str, str],
) -> None:
    """Write ``rows`` as sheet rows ``first``, ``first + 1``…: one chunk of ``frames.write_frame``.

    Three passes whatever the width: the values column-wise in Polars, then the two steps
    Python does once per chunk (the digits of numbers that are not whole, the shared-string
    index of each distinct text), then the XML in one Polars pass."""
    n = rows.height
    kinds = [describe(col).kind for col in columns]
    numbers = [f"n{i}" for i, k in enumerate(kinds) if k in NUMBER_KINDS]
    texts = [f"t{i}" for i, k in enumerate(kinds) if k not in NUMBER_KINDS and k != "flag"]
    values: list[pl.Expr] = []
    for i, (col, kind) in enumerate(zip(columns, kinds, strict=True)):
        if kind in NUMBER_KINDS:
            values.append(_numbers(col, kind).alias(f"n{i}"))
            if kind == "money":
                values.append(_money_style(col, rows, styles, alerts).alias(f"s{i}"))
        elif kind == "flag":
            values.append(pl.col(col).cast(pl.Boolean).alias(f"b{i}"))
        elif col in links:
            values.append(pl.col(col).cast(pl.String).alias(f"t{i}"))
            eligible = pl.col(col).is_not_null() & pl.col(links[col]).is_not_null()
            values.append(((eligible.cum_sum() <= budget[col]) & eligible).alias(f"k{i}"))
            values.append(_attribute(pl.col(links[col]).cast(pl.String).str.slice(len("internal:"))).alias(f"loc{i}"))
        else:
            values.append(_clip(pl.col(col).cast(pl.String)).alias(f"t{i}"))
    work = rows.select(values).with_columns(lines.alias("lines"))
    # texts: xml_text (the escapes only in a column that needs them), xlsxwriter's UTF-16 cut
    if texts:
        odd = work.select(
            *(pl.col(t).str.contains(ILLEGAL_PATTERN).any().alias(t) for t in texts),
            *((pl.col(t).str.len_chars().max() > EXCEL_MAX_CHARS // 2).fill_null(False).alias(f"L{t}") for t in texts),
        ).row(0, named=True)
        escaped = []
        for t in texts:
            e = pl.col(t)
            if odd[t]:
                for ch in ILLEGAL_CHARS:
                    e = e.str.replace_all(ch, _escape(XML_ILLEGAL.match(ch)), literal=True)  # type: ignore[arg-type]
            escaped.append(_clip(e).alias(f"d{t[1:]}"))  # d: the link's display text
        work = work.with_columns(escaped)
        work = work.with_columns(
            _utf16(work[f"d{t[1:]}"]).alias(t) if odd[f"L{t}"] else pl.col(f"d{t[1:]}").alias(t) for t in texts
        )
    for i, col in enumerate(columns):
        if col in links:
            used = int(work[f"k{i}"].sum())
            budget[col] -= used
            ws.hlink_count += used
    if numbers:
        work = work.with_columns(_split(g16(pl.concat([work[c] for c in numbers])), numbers, n).values())
    if texts:
        stacked = pl.concat([work[t] for t in texts])
        body = _inline(stacked) if ws.constant_memory else _shared(ws, stacked)
        work = work.with_columns(_split(body, texts, n).values())
    _emit(ws, work, columns, kinds, styles, links, first, line_height)


def _emit(
    ws: Worksheet,
    work: pl.DataFrame,
    columns: list[str],
    kinds: list[str],
    styles: Any,
    links: dict[str, str],
    first: int,
    line_height: float,
) -> None:
    """Join the cells into rows and give them (and the links) to the worksheet.

    A row is one ``concat_str`` of its cells' pieces: a column without nulls in the chunk puts its
    pieces in directly, a column with nulls as one cell string (null when the value is, so the
    whole cell drops out)."""
    n = work.height
    rn = pl.col("rn")
    cells: list[tuple[str, list[Any]]] = []  # (the column whose null means no cell, the cell's pieces)
    hyperlinks = []
    for i, (col, kind) in enumerate(zip(columns, kinds, strict=True)):
        ref: list[Any] = [f'<c r="{xl_col_to_name(i)}', rn]
        if kind in NUMBER_KINDS:
            xf = pl.col(f"s{i}") if kind == "money" else str(styles[kind]._get_xf_index())
            cells.append((f"n{i}", [*ref, '" s="', xf, '"><v>', pl.col(f"n{i}"), "</v></c>"]))
            continue
        if kind == "flag":
            xf = styles["flag"]._get_xf_index()
            b = pl.col(f"b{i}")
            v = pl.when(b).then(pl.lit("1")).when(~b).then(pl.lit("0"))
            cells.append((f"b{i}", [*ref, f'" s="{xf}" t="b"><v>', v, "</v></c>"]))
            continue
        if col in links:
            is_link = pl.col(f"k{i}")
            fmt: Any = pl.when(is_link).then(pl.lit(f'" s="{styles["link"]._get_xf_index()}"')).otherwise(pl.lit('"'))
            hyperlinks.append(
                pl.when(is_link).then(
                    pl.concat_str(
                        pl.lit(f'<hyperlink ref="{xl_col_to_name(i)}'),
                        rn,
                        pl.lit('" location="'),
                        pl.col(f"loc{i}"),
                        pl.lit('" display="'),
                        _attribute(pl.col(f"d{i}")),
                        pl.lit('"/>'),
                    )
                )
            )
        else:
            fmt = f'" s="{styles["wrap" if kind == "long_text" else "text"]._get_xf_index()}"'
        if ws.constant_memory:
            cells.append((f"t{i}", [*ref, fmt, ' t="inlineStr"><is>', pl.col(f"t{i}"), "</is></c>"]))
        else:
            cells.append((f"t{i}", [*ref, fmt, ' t="s"><v>', pl.col(f"t{i}"), "</v></c>"]))
    heights = {k: _ht(line_height * k) for k in range(2, 28)}
    start = (
        pl.when(pl.col("lines") > 1)
        .then(
            pl.concat_str(
                pl.lit('" ht="'),
                pl.col("lines").replace_strict(list(heights), list(heights.values()), default="15"),
                pl.lit('" customHeight="1">'),
            )
        )
        .otherwise(pl.lit('">'))
    )
    nulls = {name: work[name].null_count() for name, _ in cells}
    pieces: list[Any] = ['<row r="', rn, start]
    for name, parts in cells:
        if nulls[name]:
            pieces.append(pl.concat_str([pl.lit(p) if isinstance(p, str) else p for p in parts]))
        else:
            pieces += parts
    pieces.append("</row>")
    merged: list[Any] = []
    for piece in pieces:  # neighbouring literals as one
        if isinstance(piece, str) and merged and isinstance(merged[-1], str):
            merged[-1] += piece
        else:
            merged.append(piece)
    full = all(nulls.values()) and cells  # no column without nulls: a row may have no cell at all
    has_cell = pl.any_horizontal(pl.col(name).is_not_null() for name, _ in cells) if full else pl.lit(cells != [])
    out = (
        work.with_columns(rn=pl.int_range(first + 1, first + 1 + n).cast(pl.String), index=pl.int_range(0, n))
        .select(
            "index",
            has_cell.alias("has_cell"),
            xml=pl.concat_str([pl.lit(p) if isinstance(p, str) else p for p in merged], ignore_nulls=True),
            links=pl.concat_str(hyperlinks, ignore_nulls=True) if hyperlinks else pl.lit(""),
        )
        .filter("has_cell")
    )
    if out.is_empty():
        return
    xml, link_xml, last = out.select(
        pl.col("xml").str.join(""), pl.col("links").str.join(""), pl.col("index").max()
    ).row(0)
    ws.add_body(first, first + last, xml, link_xml)
