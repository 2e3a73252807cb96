"""Big outputs: a table longer than an Excel sheet goes on in continuation sheets, links land
in the sheet that holds the row, and a very large workbook is written in constant-memory mode
with the same cells. Sheet sizes are made small here, so nothing large is written."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import openpyxl
import pytest

from calo_polars import audit
from calo_polars.report.outputs import WORKBOOK_NAME, write_outputs
from calo_polars.report.xlsx import frames as xlsx
from calo_polars.report.xlsx import workbook
from tests.test_faults import workbook_cells
from tests.test_sample import SAMPLE

ROWS = 40  # data rows a sheet holds in these tests


@pytest.fixture(scope="module")
def result() -> Any:
    return audit([SAMPLE])


def write(
    result: Any, out: Path, monkeypatch: pytest.MonkeyPatch, *, rows: int | None = None, cells: int | None = None
) -> Path:
    if rows is not None:
        monkeypatch.setattr(xlsx, "SHEET_ROWS", rows)
    if cells is not None:
        monkeypatch.setattr(workbook, "CONSTANT_MEMORY_CELLS", cells)
    write_outputs(result, out, full_ledger=True)  # the long table: every transaction in the Ledger
    return out / WORKBOOK_NAME


def test_a_long_table_continues_in_numbered_sheets_with_every_row(
    result: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cells = workbook_cells(write(result, tmp_path, monkeypatch, rows=ROWS))
    n = result.checked.height
    parts = ["Ledger", *[f"Ledger ({k})" for k in range(2, -(-n // ROWS) + 1)]]
    assert [name for name in cells if name.startswith("Ledger")] == parts and len(parts) > 3
    names = list(cells)
    assert names[names.index("Ledger") : names.index("Ledger") + len(parts)] == parts  # in order, together
    header = cells["Ledger"][0]
    assert all(cells[p][0] == header for p in parts)  # every part has the header row
    rows = [row for p in parts for row in cells[p][1:]]
    assert all(len(cells[p]) - 1 <= ROWS for p in parts) and len(rows) == n  # no row dropped
    tx_ids = [row[header.index("tx_id")] for row in rows]
    assert tx_ids == result.checked["tx_id"].to_list()  # the whole Ledger, in order
    readme = [str(v) for row in cells["README"] for v in row if v]
    assert any("Ledger (2)" in text and "more than an Excel sheet holds" in text for text in readme)
    assert any(text.startswith("Ledger continued: its rows 41–80") for text in readme)


def test_links_land_in_the_part_that_holds_the_row(
    result: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = write(result, tmp_path, monkeypatch, rows=ROWS)
    wb = openpyxl.load_workbook(path)
    checked = 0
    for sheet, column in (("RedFlags", "tx_id"), ("PerUserSummary", "user_id")):
        ws = wb[sheet]
        header = [c.value for c in ws[1]]
        col = header.index(column) + 1
        for r in range(2, ws.max_row + 1):
            cell = ws.cell(r, col)
            if cell.hyperlink is None or "Ledger" not in (cell.hyperlink.location or ""):
                continue
            target_sheet, target_cell = cell.hyperlink.location.rsplit("!", 1)
            target = wb[target_sheet.strip("'")]
            row = int(target_cell.lstrip("A"))
            ledger_header = [c.value for c in target[1]]
            assert target.cell(row, ledger_header.index(column) + 1).value == cell.value
            checked += 1
    assert checked > 20 and any(ws.title == "Ledger (3)" for ws in wb.worksheets)


def test_constant_memory_mode_writes_the_same_cells(
    result: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    normal = workbook_cells(write(result, tmp_path / "normal", monkeypatch))
    assert not workbook.constant_memory(workbook.data_sheets(result))
    big = write(result, tmp_path / "big", monkeypatch, cells=0)
    assert workbook_cells(big) == normal
    wb = openpyxl.load_workbook(big)
    assert all(not ws.tables for ws in wb.worksheets)  # xlsxwriter's constant_memory mode writes no tables
    assert wb["Ledger"].auto_filter.ref is not None
