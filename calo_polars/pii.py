"""Personal data: emails and phone numbers found in the logs are masked before any output.

Masking runs once, column-wise, on the compact tables the ingest stage keeps, so every output
(workbook, summary.json, any later format) gets masked data for free. Text keeps its shape:
``john.doe@example.com`` → ``***@example.com`` (cut short, ``john.doe@exa`` → ``***@exa``),
``+973 3333 4444`` → ``+***44``, a URL-encoded address ``kim.enc%40example.com`` →
``***%40example.com``, a number with the international prefix ``00966501237777`` → ``00***77``,
a Gulf mobile number in local form ``0551234321`` (or ``055 123 4321``) → ``05***21``, and the
number after a phone-like key (``phoneNumber: '33334444'``) → ``***``. An id column (user,
wallet, transaction, request) that holds an email or a phone number is replaced whole by
``masked-<number>``, a pseudonym that keeps distinct ids distinct, so the checks group the
same way masked or not.
"""

from __future__ import annotations

import re
from collections.abc import Callable

import polars as pl

EMAIL_RE = r"[A-Za-z0-9._%+\-]+@(?P<domain>[A-Za-z0-9\-]+(?:\.[A-Za-z0-9\-]+)*\.[A-Za-z]{2,})"
#: What is left of an address without a domain, or cut short by a length limit.
EMAIL_LOCAL_RE = r"[A-Za-z0-9._%+\-]+@"
#: An international number: ``+`` then 8 or more digits, maybe spaced or dashed.
INTL_PHONE_RE = r"(?P<pre>^|[^\w+])\+\d[\d \-().]{5,16}(?P<tail>\d\d)\b"
#: Any number after a phone-like key, in JSON, util.inspect or ``key=value`` form.
KEYED_PHONE_RE = (
    r"(?i)(?P<key>(?:[a-z_]*(?:phone|mobile|msisdn|whatsapp)[a-z_]*|\btel(?:ephone)?)"
    r"\\*[\"'`]?\s*[:=]\s*\\*[\"'`]?)\+?\d[\d \-().]{4,}\d"
)
#: A URL-encoded address (``kim.enc%40example.com``, as in a query string).
ENC_EMAIL_RE = r"(?i)[A-Za-z0-9._%+\-]+%40(?P<domain>[A-Za-z0-9\-]+(?:\.[A-Za-z0-9\-]+)*\.[A-Za-z]{2,})"
#: A number dialled with the international prefix ``00``: ``00966501237777`` (11 to 15 digits).
#: Not after a letter, digit, ``-`` or ``.`` (a UUID group, an amount, a ULID never match).
PREFIX_PHONE_RE = r"(?P<pre>^|[^\w+\-.])00[1-9]\d{6,10}(?P<tail>\d\d)\b"
#: A Gulf mobile number in local form: ``05`` and 8 more digits (``0551234321``, ``055 123 4321``).
LOCAL_PHONE_RE = r"(?P<pre>^|[^\w+\-.])05\d(?:[ \-]?\d){5}(?P<tail>[ \-]?\d\d)\b"
#: Whether a value holds personal data at all.
ANY_PII_RE = re.sub(
    r"\(\?P<\w+>",
    "(?:",  # one pattern: the group names would repeat
    "|".join(f"(?:{p})" for p in (EMAIL_RE, INTL_PHONE_RE, ENC_EMAIL_RE, PREFIX_PHONE_RE, LOCAL_PHONE_RE)),
)

#: What every match of the patterns above contains (ASCII case aside): a quick test first.
_MAYBE_PII = ["@", "+", "phone", "mobile", "msisdn", "whatsapp", "tel", "%40"]
#: The quick test of the local and ``00`` forms (digits alone are in nearly every column).
_MAYBE_LOCAL = r"(?:^|[^\w+\-.])0(?:0[1-9]|5)\d"

#: Columns that identify a row; masked whole (pseudonym) rather than in place.
ID_COLUMNS = frozenset({"tx_id", "user_id", "wallet_id", "wallet_sk", "request_id", "transaction_id"})
_SEED = 20240210


def mask_text(value: pl.Expr) -> pl.Expr:
    """Free text with every email and phone number masked in place."""
    return (
        value.str.replace_all(EMAIL_RE, "***@${domain}")
        .str.replace_all(EMAIL_LOCAL_RE, "***@")
        .str.replace_all(ENC_EMAIL_RE, "***%40${domain}")
        .str.replace_all(KEYED_PHONE_RE, "${key}***")
        .str.replace_all(INTL_PHONE_RE, "${pre}+***${tail}")
        .str.replace_all(PREFIX_PHONE_RE, "${pre}00***${tail}")
        .str.replace_all(LOCAL_PHONE_RE, "${pre}05***${tail}")
    )


def mask_id(value: pl.Expr) -> pl.Expr:
    """An id that holds personal data becomes ``masked-<number>`` (same id, same pseudonym)."""
    return pl.when(value.str.contains(ANY_PII_RE)).then(pl.format("masked-{}", value.hash(_SEED))).otherwise(value)


def mask_frame(frame: pl.DataFrame) -> pl.DataFrame:
    """Every text column of the frame masked: ids by pseudonym, other text in place.

    A column in which nothing could be personal data (no ``@``, no ``+`` before a digit, no
    phone-like word: the usual case) is left as it is, after one cheap scan.
    """
    columns = [
        _masked(frame[name], mask_id if name in ID_COLUMNS else mask_text)
        for name, dtype in frame.schema.items()
        if dtype == pl.String and _maybe_pii(frame[name])
    ]
    return frame.with_columns(columns) if columns else frame


def _masked(column: pl.Series, mask: Callable[[pl.Expr], pl.Expr]) -> pl.Series:
    """``mask`` of a column, row by row, or, for a column of mostly nulls, of each distinct value
    once, mapped back to its rows.

    Masking is a function of the value alone, and the regexes cost ~50 ns a row each even on
    nulls: the SQS body's email and phone are null on nearly every transaction row. (Finding
    the distinct values of a column of mostly distinct ids costs more than it saves.)
    """
    if 2 * column.null_count() < column.len():
        return column.to_frame().select(mask(pl.col(column.name))).to_series()
    values = column.drop_nulls().unique()
    masked = values.to_frame().select(mask(pl.col(column.name))).to_series()
    changed = values != masked
    if not changed.any():
        return column
    return column.replace(values.filter(changed), masked.filter(changed))


def _maybe_pii(column: pl.Series) -> bool:
    """Whether anything in the column could be personal data (one cheap scan or two)."""
    return bool(
        column.str.contains_any(_MAYBE_PII, ascii_case_insensitive=True).any()
        or column.str.contains(_MAYBE_LOCAL).any()
    )


def mask_strings(values: list[str]) -> list[str]:
    """Masked copies of plain strings (problem messages), with the same rules."""
    return pl.Series(values, dtype=pl.String).to_frame("v").select(mask_text(pl.col("v")))["v"].to_list()
