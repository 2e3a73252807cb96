"""The fast sheet body (``xlsx.sheetdata``: rows as XML built in Polars) writes what xlsxwriter
writes cell by cell: the same sheet XML byte for byte in ``constant_memory`` mode, the same
cells, formats, links and row heights (read back by openpyxl) in normal mode, on hostile text
and awkward numbers; and the frames it cannot take still go cell by cell."""

from __future__ import annotations

import io
import math
import random
import shutil
import struct
import subprocess
import zipfile
from datetime import date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import openpyxl
import polars as pl
import pytest
from xlsxwriter.exceptions import OverlappingRange
from xlsxwriter.sharedstrings import SharedStrings
from xlsxwriter.worksheet import Worksheet

from calo_polars.audit.run import audit
from calo_polars.report.summary import summary
from calo_polars.report.xlsx import frames, sheetdata, workbook
from calo_polars.report.xlsx.frames import Styles, write_frame
from calo_polars.report.xlsx.numbers import g16
from calo_polars.report.xlsx.safe import SafeWorkbook, SafeWorksheet
from tests.test_sample import SAMPLE

LONG = "x" * 40_000
#: Past 16,383 characters, emoji (two UTF-16 units each) make xlsxwriter cut the text shorter.
EMOJI = "😀" * 20_000
TEXTS = [
    "plain",
    None,
    "",
    "=1+1",
    "+cmd",
    "-2",
    "@SUM(A1)",
    "tab\there",
    "line\nbreak",
    "cr\rhere",
    "nul\x00bell\x07vt\x0bff\x0cesc\x1b",
    "not a char \ufffe \uffff",
    "_x0041_ looks like an escape",
    "<r><t>rich?</t></r>",
    "a & b < c > d \" e ' f",
    " leading",
    "trailing ",
    "\u3000ideographic space",
    "nbsp\xa0",
    "\x1cfile separator",
    LONG,
    "\x01" + LONG,
    EMOJI,
    "ünïcødé 中文 ✓",
]


def hostile_frame(rows: int) -> pl.DataFrame:
    """Every kind of cell the workbook writes, with the awkward values of each."""
    rng = random.Random(rows)
    amounts = [Decimal("9.95"), Decimal("0.1"), Decimal("-1234567.891"), Decimal("0"), None, Decimal("1e-5")]
    floats = [9.95, 0.1 + 0.2, -0.0, 1e-7, 1e20, 123456789.123456789, None, 2.5e15, 4.5e15 + 1]
    texts = [TEXTS[i % len(TEXTS)] for i in range(rows)]
    return pl.DataFrame(
        {
            "user_id": [f"user {i % 7}" if i % 5 else None for i in range(rows)],
            "_user_link": [f"internal:'Ledger'!A{i + 2}" if i % 3 else None for i in range(rows)],
            "tx_id": texts[::-1],
            "_tx_link": [f"internal:'Sheet & \"co\"'!A{i + 2}" for i in range(rows)],
            "currency": [["AED", "KWD", "JPY", None, "XXX"][i % 5] for i in range(rows)],
            "amount": [amounts[i % len(amounts)] for i in range(rows)],
            "running_diff": [Decimal(rng.randint(-(10**6), 10**6)) / 1000 for _ in range(rows)],
            "_alert": [i % 4 == 0 if i % 9 else None for i in range(rows)],
            "ts": [
                datetime(2024, 1, 1) + timedelta(milliseconds=rng.randint(0, 10**11)) if i % 6 else None
                for i in range(rows)
            ],
            "date": [date(2024, 1, 1) + timedelta(days=i) for i in range(rows)],
            "transactions": [i * 1000 - 7 if i % 4 else None for i in range(rows)],
            "delta_mean": [floats[i % len(floats)] for i in range(rows)],
            "applied": [[True, False, None][i % 3] for i in range(rows)],
            "action": texts,
            "what_happened": [("word " * (i % 60)).strip() + "\n" * (i % 3) if i % 8 else None for i in range(rows)],
        },
        schema_overrides={"amount": pl.Decimal(20, 3), "running_diff": pl.Decimal(20, 3)},
    )


def write(path: Path, frame: pl.DataFrame, *, fast: bool, constant_memory: bool, mp: pytest.MonkeyPatch) -> Path:
    mp.setattr(frames, "FAST", fast)
    calls: list[int] = []
    real = sheetdata.write_body

    def counted(*a: Any, **k: Any) -> Any:
        calls.append(1)
        return real(*a, **k)

    mp.setattr(sheetdata, "write_body", counted)
    options = {"strings_to_formulas": False, "strings_to_urls": False, "strings_to_numbers": False}
    with SafeWorkbook(path, {**options, "constant_memory": constant_memory, "tmpdir": str(path.parent)}) as wb:
        styles = Styles(wb)
        ws = wb.add_worksheet("Data")
        write_frame(
            ws,
            frame,
            styles,
            links={"user_id": "_user_link", "tx_id": "_tx_link"},
            alerts={"running_diff": "_alert"},
            table=False,
        )
    assert bool(calls) == fast  # the fast path was taken (or not)
    return path


def sheet_xml(path: Path) -> bytes:
    with zipfile.ZipFile(path) as z:
        return z.read("xl/worksheets/sheet1.xml")


def cells(path: Path) -> list[tuple[Any, ...]]:
    """Every cell as openpyxl reads it: value, its type, number format, fill, font colour, link; and row heights."""
    ws = openpyxl.load_workbook(path).worksheets[0]
    out: list[tuple[Any, ...]] = []
    for row in ws.iter_rows():
        for c in row:
            if c.value is None:
                continue
            link = c.hyperlink.location if c.hyperlink else None
            font = c.font.color.rgb if c.font and c.font.color else None
            out.append(
                (c.coordinate, type(c.value).__name__, repr(c.value), c.number_format, c.fill.fgColor.rgb, font, link)
            )
    out += [("height", r, d.height) for r, d in sorted(ws.row_dimensions.items()) if d.height]
    return out


@pytest.mark.parametrize("rows", [1, 57, 300])
def test_constant_memory_sheet_xml_is_byte_for_byte_xlsxwriters(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, rows: int
) -> None:
    frame = hostile_frame(rows)
    slow = write(tmp_path / "slow.xlsx", frame, fast=False, constant_memory=True, mp=monkeypatch)
    fast = write(tmp_path / "fast.xlsx", frame, fast=True, constant_memory=True, mp=monkeypatch)
    assert sheet_xml(fast) == sheet_xml(slow)


@pytest.mark.parametrize("rows", [1, 57, 300])
def test_normal_mode_writes_the_same_cells_formats_links_and_heights(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, rows: int
) -> None:
    frame = hostile_frame(rows)
    slow = write(tmp_path / "slow.xlsx", frame, fast=False, constant_memory=False, mp=monkeypatch)
    fast = write(tmp_path / "fast.xlsx", frame, fast=True, constant_memory=False, mp=monkeypatch)
    assert cells(fast) == cells(slow)
    assert len(cells(fast)) > rows * 8


def test_the_link_budget_runs_out_at_the_same_cell(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(frames, "EXCEL_MAX_URLS", 50)
    monkeypatch.setattr(frames, "CHUNK_ROWS", 17)  # the budget carries over from chunk to chunk
    frame = hostile_frame(120)
    for cm in (True, False):
        slow = write(tmp_path / "slow.xlsx", frame, fast=False, constant_memory=cm, mp=monkeypatch)
        fast = write(tmp_path / "fast.xlsx", frame, fast=True, constant_memory=cm, mp=monkeypatch)
        assert cells(fast) == cells(slow)
        assert sum(1 for c in cells(fast) if c[0] != "height" and c[-1]) == 50


def test_frames_it_cannot_take_go_cell_by_cell(tmp_path: Path) -> None:
    with SafeWorkbook(tmp_path / "x.xlsx") as wb:
        ws = wb.add_worksheet("Data")
        ok = pl.DataFrame({"delta_mean": [1.5], "user_id": ["u"], "_user_link": ["internal:'A'!A1"]})
        assert sheetdata.usable(ws, ok, ["delta_mean", "user_id"], {"user_id": "_user_link"}, 0)
        for bad in (float("nan"), float("inf")):
            assert not sheetdata.usable(ws, ok.with_columns(delta_mean=pl.lit(bad)), ["delta_mean"], {}, 0)
        external = ok.with_columns(_user_link=pl.lit("https://example.com"))
        assert not sheetdata.usable(ws, external, ["user_id"], {"user_id": "_user_link"}, 0)
        ws.write_string(3, 0, "below the header")
        assert not sheetdata.usable(ws, ok, ["delta_mean"], {}, 0)


def test_numbers_have_xlsxwriters_sixteen_digits() -> None:
    rng = random.Random(7)
    values: list[float | None] = [None, 0.0, -0.0, 9.95, 0.1, 0.1 + 0.2, 1e15, 1e15 - 1, 1e16, 2.0**53, 1e-5, 5e-324]
    for k in range(-8, 18):
        p = 10.0**k
        values += [p, -p, math.nextafter(p, 0), math.nextafter(p, math.inf), 9.999999999999999 * p]
    values += [rng.uniform(-1e6, 1e6) for _ in range(2000)]
    values += [round(rng.uniform(-1e6, 1e6), rng.randint(0, 3)) for _ in range(2000)]
    values += [rng.randint(0, 10**11) / 86_400_000 + 25_569 for _ in range(2000)]  # Excel serial datetimes
    values += [struct.unpack("d", struct.pack("Q", rng.getrandbits(64)))[0] for _ in range(2000)]
    values = [v for v in values if v is None or math.isfinite(v)]
    assert g16(pl.Series(values, dtype=pl.Float64)).to_list() == [None if v is None else f"{v:.16G}" for v in values]


def test_shared_strings_are_written_as_xlsxwriter_writes_them() -> None:
    strings = [t for t in TEXTS if t is not None] + [chr(c) + "x" for c in range(0x20)] + ["\ufffe", "_X00a0_", " "]
    theirs = SharedStrings()
    theirs._set_filehandle(io.StringIO())
    for text in strings:
        theirs._write_si(text)
    assert sheetdata.shared_strings_xml(strings) == theirs.fh.getvalue()


def test_tables_are_xlsxwriters_tables(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    frame = hostile_frame(200)

    def book(path: Path) -> dict[str, bytes]:
        with SafeWorkbook(path) as wb:
            write_frame(wb.add_worksheet("Data"), frame, Styles(wb), links={"user_id": "_user_link"}, table=True)
        with zipfile.ZipFile(path) as z:
            return {n: z.read(n) for n in ("xl/tables/table1.xml", "xl/worksheets/sheet1.xml")}

    ours = book(tmp_path / "ours.xlsx")
    monkeypatch.setattr(SafeWorksheet, "add_table", Worksheet.add_table)
    monkeypatch.setattr(SafeWorksheet, "merge_range", Worksheet.merge_range)
    assert ours == book(tmp_path / "theirs.xlsx")


def test_overlapping_tables_and_merges_are_refused_as_xlsxwriter_refuses_them(tmp_path: Path) -> None:
    with SafeWorkbook(tmp_path / "x.xlsx") as wb:
        ws = wb.add_worksheet("Data")
        ws.add_table(0, 0, 100, 3, {"name": "one"})
        with pytest.raises(OverlappingRange, match="Table range 'D50:E60' overlaps previous table range 'A1:D101'"):
            ws.add_table(49, 3, 59, 4, {"name": "two"})
        with pytest.raises(OverlappingRange, match="Merge range 'B3:B4' overlaps previous table range 'A1:D101'"):
            ws.merge_range("B3:B4", "x")
        ws.merge_range(200, 0, 201, 0, "merged")
        with pytest.raises(OverlappingRange, match="overlaps previous merge range"):
            ws.add_table(150, 0, 250, 1, {"name": "three"})


@pytest.mark.skipif(shutil.which("libreoffice") is None, reason="LibreOffice is not installed")
def test_libreoffice_reads_the_same_workbook_as_cell_by_cell(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    result = audit([SAMPLE])
    data = summary(result)
    sheets: dict[str, dict[str, bytes]] = {}
    for mode in ("slow", "fast"):
        monkeypatch.setattr(frames, "FAST", mode == "fast")
        folder = tmp_path / mode
        folder.mkdir()
        workbook.write_workbook(result, folder / "book.xlsx", data)
        subprocess.run(
            ["libreoffice", "--headless", f"-env:UserInstallation=file://{tmp_path}/lo-profile", "--convert-to",
             "csv:Text - txt - csv (StarCalc):44,34,UTF8,1,,0,false,true,false,false,false,-1", "book.xlsx"],
            cwd=folder, check=True, capture_output=True, timeout=600,
        )  # fmt: skip
        sheets[mode] = {p.name: p.read_bytes() for p in folder.glob("book-*.csv")}
    assert len(sheets["fast"]) == 29 and "book-Ledger.csv" in sheets["fast"]
    assert sheets["fast"] == sheets["slow"]


def test_the_workbook_is_deflated_by_isal_only_while_it_is_stored(tmp_path: Path) -> None:
    before = zipfile._get_compressor  # type: ignore[attr-defined]
    with SafeWorkbook(tmp_path / "x.xlsx") as wb:
        wb.add_worksheet("Data").write_string(0, 0, "text " * 10_000)
    assert zipfile._get_compressor is before  # type: ignore[attr-defined]
    with zipfile.ZipFile(tmp_path / "x.xlsx") as z:
        assert z.testzip() is None
        info = z.getinfo("xl/sharedStrings.xml")
        assert info.compress_type == zipfile.ZIP_DEFLATED and info.compress_size < info.file_size / 10


@pytest.mark.parametrize(("fast", "constant_memory"), [(True, False), (False, False), (True, True), (False, True)])
def test_text_shaped_like_rich_runs_is_text(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fast: bool, constant_memory: bool
) -> None:
    """xlsxwriter copies a string shaped ``<r>…</r>`` into the XML as is: a logged "<r>&</r>" made
    the whole workbook unreadable. It is written as text, behind a zero-width space."""
    frame = pl.DataFrame({"reason": ["<r>&</r>", "<r><t>x</t></r>", "a <r>&</r>"]})
    path = write(tmp_path / "rich.xlsx", frame, fast=fast, constant_memory=constant_memory, mp=monkeypatch)
    ws = openpyxl.load_workbook(path).worksheets[0]
    assert [ws.cell(r, 1).value for r in range(2, 5)] == ["\u200b<r>&</r>", "\u200b<r><t>x</t></r>", "a <r>&</r>"]
