"""Native Excel charts on the Charts sheet, drawn from the data sheets' cells.

Each chart reads ranges of a data sheet written by ``write_frame`` (header on row 0, data from
row 1), so the numbers in a chart are the numbers in the workbook. The ranges are found in
Polars (row indexes per currency or per user), never by looping over rows.
"""

from __future__ import annotations

import polars as pl
import xlsxwriter
from xlsxwriter.worksheet import Worksheet

from calo_polars.checks.registry import CHECKS
from calo_polars.report.tables import WEEKLY_SIGNALS
from calo_polars.report.xlsx.frames import DATE_FORMAT, Sheet, Styles, print_setup

DAILY = "DailyTotals"
WEEKLY = "WeeklySignals"
TOP = "TopUserBalances"

WIDTH, HEIGHT = 640, 300
ROWS_PER_CHART = 16  # 300 px at the default 20 px a row, plus a gap
COLS_PER_CHART = 10  # 640 px at the default 64 px a column, plus a gap

CHECK_COLORS = {c.per_user: c.colour for c in CHECKS}
SIGNAL_COLORS = dict(zip(WEEKLY_SIGNALS, ["#4472C4", "#C00000", "#404040"], strict=True))


def _ranges(frame: pl.DataFrame, key: list[str]) -> pl.DataFrame:
    """First and last data row (0-based, header excluded) of each group of a sorted frame."""
    return (
        frame.with_row_index("_i")
        .group_by(key, maintain_order=True)
        .agg(first=pl.col("_i").min(), last=pl.col("_i").max())
    )


#: Axes read in whole units: the cells keep the currency's decimals.
Y_AXIS = {"num_format": "#,##0", "major_gridlines": {"visible": True, "line": {"color": "#D9D9D9"}}}
AXIS_FONT = {"num_font": {"rotation": -45, "size": 8}}


def _place(ws: Worksheet, chart: xlsxwriter.chart.Chart, slot: int, top: int) -> None:
    ws.insert_chart(top + (slot // 2) * ROWS_PER_CHART, (slot % 2) * COLS_PER_CHART, chart)


def _col(sheet: Sheet, name: str) -> int:
    return sheet.columns.index(name)


def daily_charts(wb: xlsxwriter.Workbook, ws: Worksheet, daily: Sheet, top: int) -> int:
    """One column chart per currency: the day's credits and debits. Returns the next free row."""
    frame = daily.frame
    date, credits, debits = _col(daily, "date"), _col(daily, "credits"), _col(daily, "debits")
    slots = 0
    for slot, (currency, first, last) in enumerate(_ranges(frame, ["currency"]).iter_rows()):
        chart = wb.add_chart({"type": "column"})
        categories = [daily.name, first + 1, date, last + 1, date]
        for label, col, color in (("credits", credits, "#70AD47"), ("debits", debits, "#C00000")):
            chart.add_series(
                {
                    "name": f"{label} ({currency})",
                    "categories": categories,
                    "values": [daily.name, first + 1, col, last + 1, col],
                    "fill": {"color": color},
                    "border": {"none": True},
                    "gap": 50,
                }
            )
        chart.set_title({"name": f"Daily credits and debits, {currency}", "name_font": {"size": 11}})
        chart.set_x_axis(
            {"date_axis": True, "num_format": DATE_FORMAT, "major_unit": 14, "major_unit_type": "days", **AXIS_FONT}
        )
        chart.set_y_axis(Y_AXIS)
        chart.set_legend({"position": "bottom"})
        chart.set_size({"width": WIDTH, "height": HEIGHT})
        _place(ws, chart, slot, top)
        slots = slot + 1
    return top + ((slots + 1) // 2) * ROWS_PER_CHART


def weekly_charts(wb: xlsxwriter.Workbook, ws: Worksheet, weekly: Sheet, top: int) -> int:
    """Flags per week by check (stacked), and the Lambda's signals per week."""
    n = weekly.frame.height
    week = _col(weekly, "week")
    categories = [weekly.name, 1, week, max(n, 1), week]
    for slot, (title, series, stacked) in enumerate(
        [("Flags per week, by check", CHECK_COLORS, True), ("Lambda signals per week", SIGNAL_COLORS, False)]
    ):
        chart = wb.add_chart({"type": "column", "subtype": "stacked"} if stacked else {"type": "line"})
        for name, color in series.items():
            col = _col(weekly, name)
            style = (
                {"fill": {"color": color}, "border": {"none": True}, "gap": 40}
                if stacked
                else {"line": {"color": color, "width": 2}}
            )
            chart.add_series(
                {
                    "name": [weekly.name, 0, col],
                    "categories": categories,
                    "values": [weekly.name, 1, col, max(n, 1), col],
                    **style,
                }
            )
        chart.set_title({"name": title, "name_font": {"size": 11}})
        chart.set_x_axis({"text_axis": True, "num_format": DATE_FORMAT, "interval_unit": 4, **AXIS_FONT})
        chart.set_y_axis(Y_AXIS)
        chart.set_legend({"position": "bottom"})
        chart.set_size({"width": WIDTH, "height": HEIGHT})
        _place(ws, chart, slot, top)
    return top + ROWS_PER_CHART


def balance_charts(wb: xlsxwriter.Workbook, ws: Worksheet, balances: Sheet, top: int) -> int:
    """Per user with most flags: logged newBalance and recomputed running balance over time."""
    ts, logged, running = _col(balances, "ts"), _col(balances, "new_balance"), _col(balances, "running_balance")
    groups = _ranges(balances.frame, ["rank", "user_id", "currency", "flags"])
    for slot, (rank, user, currency, flags, first, last) in enumerate(groups.iter_rows()):
        chart = wb.add_chart({"type": "scatter", "subtype": "straight"})
        x = [balances.name, first + 1, ts, last + 1, ts]
        for label, col, color, dash in (
            ("logged newBalance", logged, "#1F3864", "solid"),
            ("recomputed balance", running, "#ED7D31", "dash"),
        ):
            chart.add_series(
                {
                    "name": label,
                    "categories": x,
                    "values": [balances.name, first + 1, col, last + 1, col],
                    "line": {"color": color, "width": 1.5, "dash_type": dash},
                    "marker": {"type": "none"},
                }
            )
        chart.set_title({"name": f"#{rank} {user} ({currency}, {flags} flags)", "name_font": {"size": 9}})
        chart.set_x_axis({"num_format": DATE_FORMAT, "label_position": "low", **AXIS_FONT})
        chart.set_y_axis(Y_AXIS)
        chart.set_legend({"position": "bottom"})
        chart.set_size({"width": WIDTH, "height": HEIGHT})
        _place(ws, chart, slot, top)
    return top + ((groups.height + 1) // 2) * ROWS_PER_CHART


def write_charts(wb: xlsxwriter.Workbook, ws: Worksheet, sheets: dict[str, Sheet], styles: Styles) -> None:
    """The Charts sheet: a heading above each group of charts, the charts in a two-wide grid.

    Printed, each group starts a page and a page holds two rows of charts.
    """
    print_setup(ws)
    ws.hide_gridlines(2)
    ws.write_string(0, 0, "Charts", styles["title"])
    row, breaks = 2, []
    for heading, draw, sheet in (
        (
            "Daily credits and debits per currency (wallet moves, as in the roll-forward; data: DailyTotals)",
            daily_charts,
            DAILY,
        ),
        ("Flags and Lambda signals per week (data: WeeklySignals)", weekly_charts, WEEKLY),
        ("Logged vs recomputed balance, ten users with most flags (data: TopUserBalances)", balance_charts, TOP),
    ):
        if row > 2:
            breaks.append(row)
        ws.write_string(row, 0, heading, styles["subtitle"])
        end = draw(wb, ws, sheets[sheet], row + 1)
        breaks += list(range(row + 1 + 2 * ROWS_PER_CHART, end, 2 * ROWS_PER_CHART))
        row = end + 1
    ws.set_h_pagebreaks(breaks)
