"""Personal data: emails and phone numbers found in the logs are masked before any output.

Masking runs once, column-wise, on the compact tables the ingest stage keeps, so every output
(workbook, summary.json, any later format) gets masked data for free. Text keeps its shape:
``john.doe@example.com`` → ``***@example.com`` (cut short, ``john.doe@exa`` → ``***@exa``),
``+973 3333 4444`` → ``+***44``, and the number after a phone-like key
(``phoneNumber: '33334444'``) → ``***``. An id column (user,
wallet, transaction, request) that holds an email or a phone number is replaced whole by
``masked-<number>``, a pseudonym that keeps distinct ids distinct, so the checks group the
same way masked or not.
"""

from __future__ import annotations

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
#: Whether a value holds personal data at all.
ANY_PII_RE = f"(?:{EMAIL_RE})|(?:{INTL_PHONE_RE})"

#: What every match of the patterns above contains (ASCII case aside): a quick test first.
_MAYBE_PII = ["@", "+", "phone", "mobile", "msisdn", "whatsapp", "tel"]

#: Columns that identify a row; masked whole (pseudonym) rather than in place.
ID_COLUMNS = frozenset({"tx_id", "user_id", "wallet_id", "wallet_sk", "request_id", "transaction_id"})
_SEED = 20240210


def mask_text(value: pl.Expr) -> pl.Expr:
    """Free text with every email and phone number masked in place."""
    return (
        value.str.replace_all(EMAIL_RE, "***@${domain}")
        .str.replace_all(EMAIL_LOCAL_RE, "***@")
        .str.replace_all(KEYED_PHONE_RE, "${key}***")
        .str.replace_all(INTL_PHONE_RE, "${pre}+***${tail}")
    )


def mask_id(value: pl.Expr) -> pl.Expr:
    """An id that holds personal data becomes ``masked-<number>`` (same id, same pseudonym)."""
    return pl.when(value.str.contains(ANY_PII_RE)).then(pl.format("masked-{}", value.hash(_SEED))).otherwise(value)


def mask_frame(frame: pl.DataFrame) -> pl.DataFrame:
    """Every text column of the frame masked: ids by pseudonym, other text in place.

    A column in which nothing could be personal data (no ``@``, no ``+`` before a digit, no
    phone-like word: the usual case) is left as it is, after one cheap scan.
    """
    exprs = [
        (mask_id if name in ID_COLUMNS else mask_text)(pl.col(name)).alias(name)
        for name, dtype in frame.schema.items()
        if dtype == pl.String and frame[name].str.contains_any(_MAYBE_PII, ascii_case_insensitive=True).any()
    ]
    return frame.with_columns(exprs) if exprs else frame


def mask_strings(values: list[str]) -> list[str]:
    """Masked copies of plain strings (problem messages), with the same rules."""
    return pl.Series(values, dtype=pl.String).to_frame("v").select(mask_text(pl.col("v")))["v"].to_list()
