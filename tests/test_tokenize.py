"""The compiled tokenizer gives exactly the tables of the Polars path (``tokenize.py``).

Hypothesis generates log-shaped text (the fragments of test_fuzz.py, plus hostile ones: impossible
stamps, leap seconds, year 0, platform words glued to letters of any script, keys with non-ASCII
word characters, quotes and escapes, Unicode white space, tabs, CRs, lines of spaces, long
lines cut in the middle of a multi-byte character) and raw characters; both paths must give the
same lines, long lines and key/value pairs, column for column, null for null. On the real
archive every batch's whole ``read_batch`` result is the same both ways.

``CALO_FUZZ_EXAMPLES`` sets the number of examples (default 120), as in test_fuzz.py.
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

import polars as pl
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from polars.testing import assert_frame_equal

from calo_polars.parse import invocations, records, tokenize
from calo_polars.parse.events import APP_PREFIXES, FileIndex, member_batches
from calo_polars.parse.ingest import BatchResult, parse_texts
from calo_polars.problems import Problems
from calo_polars.read.sources import iter_members
from tests.logbuilder import Log, Raw, full_tx, legacy_tx, rid, stamp, uid
from tests.test_fuzz import continuations, heads

pytestmark = pytest.mark.skipif(
    not tokenize.AVAILABLE and os.environ.get("CI", "").lower() != "true",
    reason="the compiled tokenizer is not built (no C compiler at install); CI requires it",
)

EXAMPLES = int(os.environ.get("CALO_FUZZ_EXAMPLES", "120"))
FUZZ = settings(
    max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large]
)


def same_tables(
    file_ids: Sequence[int], texts: Sequence[str | bytes], max_chars: int = tokenize.MAX_LINE_CHARS
) -> None:
    """Both paths, every table equal (dtypes, order, nulls)."""
    (slow, slow_long, slow_kv) = tokenize.polars_lines(file_ids, texts, max_chars)
    (fast, fast_long, fast_kv, _, fast_reports) = tokenize.fast_scan(file_ids, texts, max_chars)
    assert_frame_equal(fast.heads, slow.heads)
    assert_frame_equal(fast_reports, invocations.reports(slow.heads))
    assert_frame_equal(fast.body, slow.body)
    assert_frame_equal(fast_long, slow_long)
    assert_frame_equal(fast_kv, slow_kv)


# ---------------------------------------------------------------- hostile fragments

ODD_STAMPS = [
    "2024-02-29T23:59:60.123Z",  # a leap second: Polars reads the next second
    "2023-02-29T00:00:00.000Z",
    "2024-13-10T00:00:00.000Z",
    "0000-01-01T00:00:00.000Z",  # year 0: null
    "0000-12-31T23:59:60.500Z",  # year 0, but the leap second makes it year 1
    "2024-01-01T24:00:00.000Z",
]
WORDS = ["START", "END", "REPORT", "INIT_START", "INIT_REPORT", "INIT_RUNTIME_DONE", "EXTENSION", "TELEMETRY",
         "STARTS", "START_", "START1", "Start", "INIT"]  # fmt: skip
GLUE = ["", " ", "\t", "é", "_", "1", "-", "Ⓐ", "\u0301", "٣", "\u00a0", "\u200d", ":", "\r", "ﬁ", "\x85"]
RIDS = ["", " ", "a\u00a0b", "a\x0bb", "a\x1cb", "a\u2028b", "a\x85b", "a\u2000b", "x\ty", "é", "undefined"]
INLINE_VALUES = ["1", "'a'", "'a\\'b'", "'unterminated", '"d\\"q"', "`b'\"t`", "`open", "'é'", "-", "{", "[", "'",
                 "\\", "'a\\", "x y", "[Object]", "''", "'x', y: 2", "\u00a0", "a\u3000b", "a\x85b"]  # fmt: skip
INLINE_KEYS = ["userId", "a", "$x", "_", "userIdé", "aⒶ", "a\u0301", "1a", "a-b", "ab$", "٣", "x y", "éa"]
TRAILING = ["", " ", "\t", "\u00a0", "\u2029", "\x85", "\x0b", "\u3000", "\u180e", "\x1c", " }", "x", "\r"]

digits2 = st.integers(0, 99).map("{:02d}".format)
odd_stamps = st.one_of(
    st.builds(
        lambda y, mo, d, h, mi, s, ms: f"{y:04d}-{mo}-{d}T{h}:{mi}:{s}.{ms:03d}Z",
        st.sampled_from([0, 1, 4, 100, 400, 1900, 1970, 2000, 2023, 2024, 9999]),
        digits2,
        digits2,
        digits2,
        digits2,
        digits2,
        st.integers(0, 999),
    ),
    st.sampled_from(ODD_STAMPS),
)
words = st.sampled_from(WORDS)
glue = st.sampled_from(GLUE)
rids = st.one_of(
    st.integers(0, 3).map(rid),
    st.sampled_from(RIDS),
)
platform_heads = st.builds(
    lambda t, w, g, r, tail: f"{t} {w}{g}{' RequestId: ' + r if r is not None else ''}{tail}",
    odd_stamps | st.floats(0, 1e6).map(stamp),
    words,
    glue,
    st.none() | rids,
    st.sampled_from(["", " Version: $LATEST", "\tDuration: 1 ms\t", " ", "\u3000x"]),
)
timeout_heads = st.builds(
    lambda t, r, n, tail: f"{t} {r} Task timed out after {n} seconds{tail}",
    st.floats(0, 1e6).map(stamp),
    st.sampled_from([rid(1), rid(2).upper(), "0000000-aaaa-5bbb-8ccc-dddddddddddd", uid(3)]),
    st.sampled_from(["3.00", "3", ".", "1.2.3", "", "x", "3 "]),
    st.sampled_from(["", ".", " more", "\r"]),
)
inline_values = st.one_of(
    st.sampled_from(INLINE_VALUES),
    st.text(max_size=8),
)  # fmt: skip
inline_keys = st.sampled_from(INLINE_KEYS)
inline_objects = st.builds(
    lambda pre, pairs, post: pre + "{ " + ", ".join(f"{k}: {v}" for k, v in pairs) + " }" + post,
    st.sampled_from(["", "Skipping the process, Update Payment Balance Flag is set to false ",
                     "Subscription balance and payment balance are not in sync ", "x { ", "{ a: 1 } "]),
    st.lists(st.tuples(inline_keys, inline_values), max_size=4),
    st.sampled_from(TRAILING),
)  # fmt: skip
app_heads = st.builds(
    lambda t, r, lv, m: f"{t} {t}\t{r}\t{lv}\t{m}",
    odd_stamps | st.floats(0, 1e6).map(stamp),
    rids,
    st.sampled_from(["INFO", "ERROR", "", "info", "INFO\tX", "É"]),
    st.one_of(inline_objects, st.sampled_from([prefix for _, prefix in APP_PREFIXES]), st.text(max_size=12)),
)
kv_lines = st.builds(
    lambda indent, key, value, comma: f"{' ' * indent}{key}: {value}{comma}",
    st.integers(0, 7),
    st.one_of(inline_keys, st.sampled_from(["'quoted key'", "'q\\'k'", "'open", "'a\\", "transaction"])),
    inline_values,
    st.sampled_from([",", "", ",,", " ,"]),
)
raw_lines = st.one_of(
    st.sampled_from(["", " ", "   ", "\t", "\r", "}", "  }", "Runtime.Unknown", "\u00a0"]),
    st.text(st.characters(codec="utf-8", exclude_categories=["Cs"]), max_size=30),
)
any_line = st.one_of(heads, continuations, platform_heads, timeout_heads, app_heads, kv_lines, raw_lines)
kv_heads = st.sampled_from(
    [
        f"{stamp(1)} {stamp(1)}\t{rid(1)}\tINFO\tStart syncing the balance {{",
        f"{stamp(2)} {stamp(2)}\t{rid(1)}\tERROR\tSubscription balance and payment balance are not in sync {{",
        f"{stamp(3)} {stamp(3)}\t{rid(1)}\tINFO\t{{",
    ]
)
member = st.lists(st.one_of(any_line, kv_heads, kv_heads.map(lambda h: h + "\n  a: 1")), max_size=30).map("\n".join)
members = st.lists(st.tuples(member, st.booleans()), min_size=1, max_size=4).map(
    lambda ms: [text + ("\n" if newline else "") for text, newline in ms]
)


@FUZZ
@given(members)
@example(["2024-02-10T21:00:00.000Z START"])
@example(["", "\n\n", "x"])
def test_same_tables_on_log_shaped_text(texts: list[str]) -> None:
    same_tables(list(range(len(texts))), texts)


@FUZZ
@given(members, st.integers(1, 60))
def test_same_tables_when_lines_are_cut(texts: list[str], max_chars: int) -> None:
    """A small ``max_chars`` cuts many lines, some in the middle of a multi-byte character."""
    same_tables(list(range(len(texts))), texts, max_chars)


@FUZZ
@given(st.lists(st.binary(max_size=200), min_size=1, max_size=3))
def test_same_tables_on_raw_bytes(blobs: list[bytes]) -> None:
    """Arbitrary bytes made valid UTF-8 the way the reader does (``decode`` replaces bad bytes)."""
    same_tables([5, 2, 9][: len(blobs)], [b.decode("utf-8", "replace").encode() for b in blobs])


def test_same_tables_on_every_combination_of_the_tricky_fragments() -> None:
    """The hostile fragments above, every combination once (hypothesis samples; this does not miss)."""
    lines = [
        f"{t} {w}{g}{' RequestId: ' + r if r is not None else ''}"
        for t in [stamp(1), ODD_STAMPS[0]]
        for w in WORDS
        for g in GLUE
        for r in [None, rid(1), *RIDS]
    ]
    lines += [f"{t} {t}\t{rid(1)}\tINFO\tStart syncing the balance {{" for t in [stamp(1), *ODD_STAMPS]]
    for key in INLINE_KEYS:
        for value in INLINE_VALUES:
            lines.append(f"  {key}: {value},")
            lines += [f"{stamp(2)} {stamp(2)}\t{rid(1)}\tINFO\t{{ {key}: {value}, b: 1 }}{end}" for end in TRAILING]
    same_tables([0, 1], ["\n".join(lines), "\n".join(reversed(lines))])


def test_same_tables_on_handmade_logs() -> None:
    log = Log()
    log.invocation(rid(1), 1.0, full_tx(1, uid(1), 10, 5.5, 4.5), legacy_tx(2, uid(1), 5.5, 5, "0.5"))
    log.processing(rid(2), 5.0).not_in_sync(rid(2), 6.0, uid(2), 10.5, "10.25")
    log.skip_flag_false(rid(2), 7.0).refusal(rid(2), 8.0, uid(2), 3, "01HX").sync_error(rid(2), 9.0)
    same_tables([0, 1], [log.text(), "continued\n" + log.text()])


def test_kind_tables_agree() -> None:
    """The C side's prefix table is events.APP_PREFIXES (AVAILABLE is false otherwise)."""
    assert tokenize.AVAILABLE
    assert tokenize.enabled() == (os.environ.get("CALO_PARSER", "").lower() != "polars")


def test_environment_forces_the_polars_path(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CALO_PARSER", "polars")
    assert not tokenize.enabled() and tokenize.parser_name() == "polars"
    monkeypatch.delenv("CALO_PARSER")
    assert tokenize.enabled() and tokenize.parser_name() == "tokenizer"


def _batch_results(archive: Path, parser: str, monkeypatch: pytest.MonkeyPatch) -> list[BatchResult]:
    monkeypatch.setenv("CALO_PARSER", parser)
    files = FileIndex()
    batches = member_batches(iter_members([archive], Problems(), Counter()), files, batch_bytes=4 << 20)
    return [parse_texts(ids, texts, 200, True) for ids, texts in batches]


def test_real_archive_every_batch_the_same(real_archive: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every batch of the real archive (4 MB batches: several) gives the same BatchResult both ways."""
    files = FileIndex()
    for ids, texts in member_batches(iter_members([real_archive], Problems(), Counter()), files, batch_bytes=4 << 20):
        same_tables(ids, texts)
    fast = _batch_results(real_archive, "tokenizer", monkeypatch)
    slow = _batch_results(real_archive, "polars", monkeypatch)
    assert len(fast) == len(slow) > 1
    for a, b in zip(fast, slow, strict=True):
        for name in BatchResult.__dataclass_fields__:
            left, right = getattr(a, name), getattr(b, name)
            if name == "kind_counts":  # a group_by: rows in no fixed order
                left, right = left.sort("kind"), right.sort("kind")
            assert_frame_equal(left, right, categorical_as_str=True)
    counts = pl.concat([r.kind_counts for r in fast]).group_by("kind").agg(pl.col("count").sum())
    assert counts["count"].sum() == 82_259  # the events of the real archive (log-format.md)


# ---------------------------------------------------------------- transaction rows read by the scan


def same_transactions(file_ids: Sequence[int], texts: Sequence[str | bytes]) -> pl.DataFrame:
    """``records.transactions`` with the scan's rows equals the Polars path alone (rows, invalid
    blocks, notes); returns the rows the scan read itself."""
    lines, _, kv, scanned, _ = tokenize.fast_scan(file_ids, texts)
    heads = records.refine_objects(lines.heads, kv)
    for fast, slow in zip(records.transactions(heads, kv, scanned), records.transactions(heads, kv), strict=True):
        assert_frame_equal(fast, slow)
    return scanned


NUMBERS = ["0", "-0", "4.5", "-660", "60.181000000000004", "1.0000005", "1.0000015", "-1.0000005", "0.9999995",
           "1.00000050001", "2.5e-7", "1e3", ".5", "5.", "-", "", "007.5", "999999999999", "1000000000000",
           "123456789012.9999995", "999999999999999", "1000000000000000", "-999999999999.9999996", "undefined",
           "NaN", "null", "'4.5'", "4.5 ", "1_000", "٣", "0.0000001", "12.3456785", "12.3456775"]  # fmt: skip
TEXTS = ["'DEBIT'", "'CREDIT'", "'debit'", "DEBIT", "''", "'BHD'", "'bhd'", "'BH'", "'BHDX'", "'SAR'", '"SAR"',
         "`KWD`", "'a\\'b'", "'é'", "'x'y'", "'", "'open", "undefined", "'MANUAL_DEDUCTION'", "'اختبار'",
         "'01HR0ABCDEFGHJKMNPQRSTVWXY'", "'random-uuid'", "'a\\\\b'", "'Ⓐ'"]  # fmt: skip
METADATA = [
    '\'{"walletId":"wallet#u1","deliveryId":"d","walletSk":"sk1"}\'',
    '\'{"walletSk":"s","walletId":"w"}\'',
    '\'{"deliveryId":"x"}\'',
    "undefined",
    "''",
    '"walletId":"at-start"',
    'x"walletId":"after-one"',
    'é"walletId":"after-two-bytes"',
    'xx"walletId":"after-two"',
    '\'{"walletId":"has\\\\"escape","walletId":"second"}\'',
    '\'{"walletId":"","walletSk":""}\'',
    '\'{"a":1, "walletId":"spaced"}\'',
    '\'{"walletId":"unterminated}\'',
    '\'{"walletIdX":"no","walletSk":"é-sk-long-enough-to-be-a-reference"}\'',
    '\'{"walletId":"wallet#11111111-2222-4333-8444-555555555555","walletSk":"abc"}\'',
    "",
]
UPDATES = ["true", "false", "'true'", "1", "undefined"]
KEY_VALUES = {
    "id": TEXTS, "type": TEXTS, "source": TEXTS, "action": TEXTS, "userId": TEXTS, "currency": TEXTS,
    "paymentBalance": NUMBERS, "updatePaymentBalance": UPDATES, "metadata": METADATA, "amount": NUMBERS,
    "vat": NUMBERS, "oldBalance": NUMBERS, "newBalance": NUMBERS,
}  # fmt: skip
PLAIN = {"id": "'01HR0ABCDEFGHJKMNPQRSTVWXY'", "type": "'DEBIT'", "source": "'MANUAL_DEDUCTION'",
         "action": "'DELIVERY_DEDUCTION'", "userId": "'11111111-2222-4333-8444-555555555555'",
         "paymentBalance": "31.5", "updatePaymentBalance": "true", "metadata": METADATA[0], "currency": "'BHD'",
         "amount": "4.5", "vat": "0", "oldBalance": "36", "newBalance": "31.5"}  # fmt: skip
LEGACY = ["id", "userId", "currency", "amount", "vat", "oldBalance", "newBalance"]


@st.composite
def tx_block(draw: st.DrawFn) -> str:
    """A transaction block: the full or legacy layout, or keys dropped, added, repeated, reordered;
    each value plain or drawn from the hostile lists above."""
    keys = draw(st.sampled_from([list(PLAIN), LEGACY]))
    if draw(st.booleans()):
        keys = draw(st.permutations(keys))
    if draw(st.integers(0, 4)) == 0:
        keys = draw(st.lists(st.sampled_from([*PLAIN, "extra", "'id'", "walletId"]), max_size=15))
    pairs = []
    for key in keys:
        plain = PLAIN.get(key, "1")
        value = draw(st.sampled_from(KEY_VALUES.get(key, ["1"]))) if draw(st.integers(0, 3)) == 0 else plain
        pairs.append(f"    {key}: {value},")
    parent = draw(st.sampled_from(["transaction", "transaction", "transaction", "other"]))
    at, call = stamp(draw(st.integers(0, 9))), rid(draw(st.integers(1, 3)))
    head = f"{at} {stamp(1)}\t{call}\tINFO\tStart syncing the balance {{"
    return "\n".join([head, f"  {parent}: {{", *pairs, "  }", "}"])


tx_members = st.lists(
    st.lists(st.one_of(tx_block(), any_line), min_size=1, max_size=8).map("\n".join), min_size=1, max_size=3
)


@FUZZ
@given(tx_members)
def test_same_transactions_on_hostile_blocks(texts: list[str]) -> None:
    same_transactions(list(range(len(texts))), texts)


def test_same_transactions_on_every_hostile_value() -> None:
    """Each hostile value in each key of a plain full block, once (hypothesis samples; this does not miss)."""
    blocks = []
    for key, values in KEY_VALUES.items():
        for value in values:
            pairs = [f"    {k}: {value if k == key else v}," for k, v in PLAIN.items()]
            blocks.append("\n".join([f"{stamp(1)} {stamp(1)}\t{rid(1)}\tINFO\tStart syncing the balance {{",
                                     "  transaction: {", *pairs, "  }", "}"]))  # fmt: skip
    scanned = same_transactions([0, 1], ["\n".join(blocks), "\n".join(reversed(blocks))])
    assert 0 < scanned.height < 2 * len(blocks)  # both paths ran


def test_plain_blocks_are_read_by_the_scan() -> None:
    """Full and legacy blocks as the Lambda logs them never take the Polars path."""
    log = Log()
    log.invocation(rid(1), 1.0, full_tx(1, uid(1), 10, 5.5, 4.5), legacy_tx(2, uid(1), 5.5, 5, Raw("0.5")))
    noisy = full_tx(3, uid(2), Raw("60.181000000000004"), 50, Raw("10.181000000000004"), vat=Raw("0.5"))
    log.invocation(rid(2), 2.0, noisy)
    scanned = same_transactions([0], [log.text()])
    assert scanned.height == 3


# ---------------------------------------------------------------- REPORT figures read by the scan

NUMS = ["113.87", "114", "0", "1.2.3", ".", "", "1e3", "-5", "12 ", "٣", "99999999999999999999"]
report_lines = st.builds(
    lambda t, pre, d, b, m, u, tail, init: (
        f"{t} REPORT RequestId: {rid(1)}{pre}Duration: {d} ms\tBilled Duration: {b} ms"
        f"\tMemory Size: {m} MB\tMax Memory Used: {u} MB{init}{tail}"
    ),
    st.sampled_from([stamp(1), ODD_STAMPS[0]]),
    st.sampled_from(["\t", " ", "\tDuration: x ms\t", "\tBilled ", "\tDuration: 1 ms\tBilled Duration: 2 ms\t", ""]),
    *[st.sampled_from(NUMS)] * 4,
    st.sampled_from(["\t", "", " ms", "\tInit Duration: 5 ms\t", "x"]),
    st.sampled_from(
        ["", "\tInit Duration: 902.78 ms", "\tInit Duration:  ms", "\tInit Duration: 1.5 m", "\tInit Duration: 7 ms"]
    ),
)


@FUZZ
@given(st.lists(st.one_of(report_lines, any_line), min_size=1, max_size=12).map("\n".join))
def test_same_reports(text: str) -> None:
    same_tables([0], [text])


def test_reports_are_read_by_the_scan() -> None:
    log = Log()
    log.invocation(rid(1), 1.0)
    found = tokenize.fast_scan([0], [log.text()])[4]
    assert found.height == 1 and found["duration_ms"].to_list() == ["113.87"]


def test_the_kept_sample_holds_no_batch_text() -> None:
    """The SampleRaw rows outlive their batch: their strings must not be views into its text."""
    log = Log()
    for n in range(1000):
        log.invocation(rid(n + 1), float(n), *(full_tx(10 * n + k, uid(n), 10, 5.5, 4.5) for k in range(10)))
    for parser in ["tokenizer", "polars"]:
        os.environ[tokenize.PARSER_ENV] = parser
        try:
            sample = parse_texts([0], [log.text().encode()], 200, True).sample
        finally:
            del os.environ[tokenize.PARSER_ENV]
        held = sample["tx_id"].to_arrow(compat_level=pl.CompatLevel.newest())
        assert sample.height == 200 and sum(b.size for b in held.buffers() if b is not None) < 200 * 26 * 2
