"""Tokenize: a batch's lines, events and key/value pairs in one compiled pass, or by Polars.

``events_of`` gives what ``events.lines_frame`` → ``cut_long_lines`` → ``split_events`` →
``key_values`` give, the same tables to the row, dtype and null. The C extension
(``_tokenize.c``, built at install when a compiler is there) scans the joined text once and
returns Arrow buffers: its string columns are views into that one copy of the text, so this
module only wraps buffers (no string is copied). Without the extension, or with
``CALO_PARSER=polars`` in the environment, the Polars path of ``events.py`` runs;
tests/test_tokenize.py checks that both give the same tables.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Sequence
from typing import Any

import polars as pl
import pyarrow as pa

from calo_polars.parse.events import (
    APP_PREFIXES,
    EVENT_KINDS,
    LONG_LINE_SCHEMA,
    MAX_LINE_CHARS,
    Lines,
    cut_long_lines,
    key_values,
    lines_frame,
    split_events,
)
from calo_polars.parse.invocations import REPORT_FIELDS, reports

try:
    from calo_polars.parse import _tokenize  # type: ignore[attr-defined]  # compiled at install (setup.py)
except ImportError:  # no compiler at install time: the Polars path
    _tokenize = None

#: The extension is built and agrees with events.py's kinds and prefixes.
AVAILABLE = (
    _tokenize is not None
    and list(_tokenize.APP_PREFIXES) == APP_PREFIXES
    and set(_tokenize.KIND_NAMES) <= set(EVENT_KINDS)
)

#: ``CALO_PARSER=polars`` forces the Polars path (tests run both).
PARSER_ENV = "CALO_PARSER"

#: String views hold 32-bit offsets into the joined text.
_MAX_BATCH_BYTES = (1 << 31) - 1


def enabled() -> bool:
    """Whether ``events_of`` uses the compiled tokenizer."""
    return AVAILABLE and os.environ.get(PARSER_ENV, "").lower() != "polars"


def parser_name() -> str:
    """'tokenizer' or 'polars': which path ``events_of`` takes (``-v`` says it)."""
    return "tokenizer" if enabled() else "polars"


@functools.lru_cache(maxsize=4096)
def _is_word(code_point: int) -> bool:
    """``\\w`` of Polars' regex engine for one non-ASCII character (asked by the C scan, rarely)."""
    return bool(pl.Series([chr(code_point)]).str.contains(r"^\w$").item())


def _array(column: tuple[int, Any, Any], dtype: pa.DataType, *data: pa.Buffer) -> pa.Array:
    n, values, validity = column
    buffers = [None if validity is None else pa.py_buffer(validity), pa.py_buffer(values), *data]
    return pa.Array.from_buffers(dtype, n, buffers)


def _frame(
    columns: Sequence[tuple[int, Any, Any]],
    schema: Sequence[tuple[str, pa.DataType]],
    text: pa.Buffer,
    kinds: pa.Buffer | None = None,
) -> pl.DataFrame:
    arrays = []
    for column, (name, dtype) in zip(columns, schema, strict=True):
        if dtype == pa.string_view():
            arrays.append(_array(column, dtype, kinds if name == "kind" and kinds is not None else text))
        else:
            arrays.append(_array(column, dtype))
    return pl.from_arrow(pa.RecordBatch.from_arrays(arrays, names=[name for name, _ in schema]))  # type: ignore[return-value]


_S = pa.string_view()
_HEADS = [
    ("file_id", pa.uint32()),
    ("line_no", pa.uint32()),
    ("text", _S),
    ("event", pa.uint32()),
    ("next_text", _S),
    ("platform", _S),
    ("timeout_s", _S),
    ("level", _S),
    ("msg", _S),
    ("platform_rest", _S),
    ("other", _S),
    ("ts", pa.timestamp("ms", tz="UTC")),
    ("kind", _S),
    ("request_id", _S),
]
_BODY = [("event", pa.uint32()), ("text", _S)]
_KV = [("event", pa.uint32()), ("depth", pa.int32()), ("parent", _S), ("key", _S), ("value", _S)]
_LONG = [("file_id", pa.uint32()), ("line_no", pa.uint32()), ("chars", pa.int64())]
#: The figures of REPORT lines (``_tokenize.c``'s ``report_rows``; ``invocations.reports`` by Polars).
_REPORTS = [("event", pa.uint32()), *((name, _S) for name in REPORT_FIELDS)]
_MONEY = pa.decimal128(38, 6)
#: The transaction rows the scan reads itself (``_tokenize.c``'s ``tx_rows``; ``records.read_rows`` types them).
TX_ROWS = [
    ("event", pa.uint32()),
    ("file_id", pa.uint32()),
    ("line_no", pa.uint32()),
    ("ts", pa.timestamp("ms", tz="UTC")),
    ("request_id", _S),
    ("tx_id", _S),
    ("user_id", _S),
    ("wallet_id", _S),
    ("wallet_sk", _S),
    ("currency", _S),
    ("type", _S),
    ("source", _S),
    ("action", _S),
    ("layout", pa.int32()),
    ("amount", _MONEY),
    ("vat", _MONEY),
    ("old_balance", _MONEY),
    ("new_balance", _MONEY),
    ("payment_balance", _MONEY),
    ("update_payment_balance", pa.int32()),
    ("metadata_state", pa.int32()),
]


def fast_scan(
    file_ids: Sequence[int], texts: Sequence[bytes | str], max_chars: int = MAX_LINE_CHARS
) -> tuple[Lines, pl.DataFrame, pl.DataFrame, pl.DataFrame, pl.DataFrame]:
    """The compiled pass: (lines, long lines, key/value pairs, transaction rows read by the scan:
    ``TX_ROWS``, the blocks ``records.transactions`` would read without a note; it reads the
    others; and the REPORT lines' figures: ``invocations.reports``). ``file_ids`` must be unique."""
    if _tokenize is None:
        raise RuntimeError("the compiled tokenizer is not built (calo_polars/parse/_tokenize.c)")
    blobs = [t.encode("utf-8") if isinstance(t, str) else t if isinstance(t, bytes) else bytes(t) for t in texts]
    data, kind_names, heads, body, kv, longs, tx, tx_text, figures = _tokenize.tokenize(
        blobs, list(file_ids), max_chars, _is_word
    )
    text, kinds = pa.py_buffer(data), pa.py_buffer(kind_names)
    lines = Lines(_frame(heads, _HEADS, text, kinds), _frame(body, _BODY, text))
    long_lines = _frame(longs, _LONG, text) if longs[0][0] else pl.DataFrame(schema=LONG_LINE_SCHEMA)
    # The rows' strings are views into their own copy (``tx_text``): a row kept after the batch
    # (the SampleRaw table) must not hold the batch's whole text.
    rows = _frame(tx, TX_ROWS, pa.py_buffer(tx_text)) if tx[0][0] else pl.from_arrow(pa.schema(TX_ROWS).empty_table())
    found = _frame(figures, _REPORTS, text) if figures[0][0] else reports(lines.heads.clear())
    return lines, long_lines, _frame(kv, _KV, text), rows, found  # type: ignore[return-value]


def fast_lines(
    file_ids: Sequence[int], texts: Sequence[bytes | str], max_chars: int = MAX_LINE_CHARS
) -> tuple[Lines, pl.DataFrame, pl.DataFrame]:
    """The compiled pass: (lines, long lines, key/value pairs). ``file_ids`` must be unique."""
    lines, long_lines, kv, _, _ = fast_scan(file_ids, texts, max_chars)
    return lines, long_lines, kv


def polars_lines(
    file_ids: Sequence[int], texts: Sequence[bytes | str], max_chars: int = MAX_LINE_CHARS
) -> tuple[Lines, pl.DataFrame, pl.DataFrame]:
    """The Polars path: the same three tables, from ``events.py``."""
    batch, long_lines = cut_long_lines(lines_frame(file_ids, texts), max_chars)
    lines = split_events(batch)
    return lines, long_lines, key_values(lines)


def events_of(
    file_ids: Sequence[int], texts: Sequence[bytes | str]
) -> tuple[Lines, pl.DataFrame, pl.DataFrame, pl.DataFrame | None, pl.DataFrame | None]:
    """A batch's (lines, long lines, key/value pairs, transaction rows and REPORT figures read by
    the scan or None): compiled when available, else Polars (``records.transactions`` then
    reads every block, ``invocations`` every REPORT line).

    The Polars path also takes what the compiled one cannot: a batch of 2 GiB or more, or file
    ids given twice (the C scan restarts request ids per member, Polars per file id).
    """
    blobs = [t.encode("utf-8") if isinstance(t, str) else t for t in texts]
    if enabled() and len(set(file_ids)) == len(file_ids) and sum(map(len, blobs)) <= _MAX_BATCH_BYTES:
        return fast_scan(file_ids, blobs)
    return (*polars_lines(file_ids, blobs), None, None)
