"""The one escaping path for text from the logs that reaches a spreadsheet.

Every string the tool writes comes from somewhere it does not trust (user ids, actions, file
names, log text). Each kind of place has its own danger, so each has one function here, and
every writer calls it (``xlsx.safe`` wraps xlsxwriter's sheets, charts and properties; the CSV
writer uses ``csv_safe``):

- **XML parts of the workbook** (cells, link display text and tips, comments, chart titles
  and series names, document properties): XML 1.0 cannot hold U+0000-U+0008, U+000B, U+000C,
  U+000E-U+001F, U+FFFE, U+FFFF or a lone surrogate; a strict parser (and Excel, openpyxl)
  refuses the whole part. ``xml_text`` writes each as its visible escape (``\\x01``,
  ``\\ud800``), so the text stays readable and nothing is silently dropped; TAB, LF and CR
  are kept. Strings also go no longer than Excel's 32,767 characters a cell.
- **Chart titles and series names**: xlsxwriter takes a name that looks like
  ``Sheet!A1`` (``=cmd|' /C calc'!A0``) for a formula reference. ``chart_text`` puts a
  zero-width space after such a ``!``, so it stays text.
- **Sheet names**: at most 31 characters, none of ``[]:*?/\\``, not starting or ending
  with ``'`` (``sheet_name``).
- **Slack mrkdwn** (the webhook): ``<!channel>`` pings everyone and ``<http://x|y>`` is a
  link; ``mrkdwn_text`` escapes ``&``, ``<`` and ``>`` as Slack asks, and backticks.
- **CSV cells**: a spreadsheet evaluates a cell starting with ``=``, ``+``, ``-``, ``@``,
  TAB or CR; ``csv_safe`` prefixes such text with ``'`` in every text column (Categorical
  ones too); numbers are never prefixed.
"""

from __future__ import annotations

import re

import polars as pl

#: Characters XML 1.0 cannot hold (TAB, LF and CR it can).
XML_ILLEGAL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff\ud800-\udfff]")
#: The longest string an Excel cell holds.
EXCEL_MAX_CHARS = 32_767
#: What xlsxwriter takes for a formula reference in a chart name (its own test, ``Chart._process_names``).
CHART_REFERENCE = re.compile(r"^=?[^!]+!\$?[A-Z]+\$?\d+")
#: CSV cells starting with one of these are prefixed with ``'`` (spreadsheet formula injection).
FORMULA_START = r"^[=+\-@\t\r]"
SHEET_FORBIDDEN = re.compile(r"[\[\]:*?/\\]")


def _escape(match: re.Match[str]) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def xml_text(text: str, limit: int = EXCEL_MAX_CHARS) -> str:
    """``text`` as an XML part of the workbook can hold it: illegal characters as visible escapes, cut at ``limit``."""
    if XML_ILLEGAL.search(text):
        text = XML_ILLEGAL.sub(_escape, text)
    if text.startswith("<r>") and text.endswith("</r>"):  # xlsxwriter would copy it in as rich-text runs,
        text = "\u200b" + text  # unescaped ("<r>&</r>" broke the workbook): a zero-width space in front
    return text if len(text) <= limit else text[: limit - 1] + "…"


def chart_text(text: str) -> str:
    """A chart title or series name: ``xml_text``, and never read as a formula reference."""
    text = xml_text(text, 255)
    if CHART_REFERENCE.match(text):
        text = text.replace("!", "!\u200b")
    return text


def sheet_name(text: str) -> str:
    """A worksheet name Excel accepts: no ``[]:*?/\\``, no leading or trailing ``'``, 31 characters at most."""
    name = SHEET_FORBIDDEN.sub("_", xml_text(text)).strip("'")[:31]
    return name or "Sheet"


def csv_safe(frame: pl.DataFrame) -> pl.DataFrame:
    """Text cells a spreadsheet would evaluate get a leading ``'`` (CSV injection), in every text column."""
    text = [c for c, t in frame.schema.items() if t in (pl.String, pl.Categorical) or isinstance(t, pl.Enum)]
    return frame.with_columns(
        pl.when(pl.col(c).cast(pl.String).str.contains(FORMULA_START))
        .then(pl.lit("'") + pl.col(c).cast(pl.String))
        .otherwise(pl.col(c).cast(pl.String))
        .alias(c)
        for c in text
    )


def mrkdwn_text(text: str) -> str:
    """Log text inside a Slack mrkdwn message: no mention, link or code span of its own."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace("`", "'")
