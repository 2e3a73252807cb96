"""Properties and fuzzing of the event splitter and the util.inspect reader.

For any text (log-shaped fragments mixed with arbitrary characters) and any bytes (through
decoding, gzip and corruption), reading never raises, and every event is accounted for:
the events counted equal the events in the text (counted here with nothing but ``re``),
understood + not understood = total, and every transaction block is either a transaction or
an unparsed event with a reason.

The number of examples is ``CALO_FUZZ_EXAMPLES`` (default 120, kept small for the suite);
a long fuzz run is ``CALO_FUZZ_EXAMPLES=20000 pytest tests/test_fuzz.py``.
"""

from __future__ import annotations

import gzip
import os
import re
import tempfile
from collections import Counter
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from calo_polars import audit
from calo_polars.errors import NoUsableInput
from calo_polars.parse.events import EVENT_KINDS, UNDERSTOOD_KINDS, key_values, lines_frame, split_events
from calo_polars.parse.ingest import read_batch
from calo_polars.parse.records import NOTICE_KINDS, unquote
from calo_polars.problems import Problems
from calo_polars.read.sources import decode
from tests.logbuilder import inspect_value, rid, stamp, uid

EXAMPLES = int(os.environ.get("CALO_FUZZ_EXAMPLES", "120"))
FUZZ = settings(
    max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large]
)
TS = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\.[0-9]{3}Z ")

# ---------------------------------------------------------------- log-shaped text

values = st.one_of(
    st.integers(-(10**20), 10**20).map(str),
    st.decimals(allow_nan=False, allow_infinity=False, places=6).map(str),
    st.sampled_from(["undefined", "true", "false", "NaN", "1e999", "-", "''", "'", "`", '"\\"', "[Object]", "{"]),
    st.text(max_size=30).map(inspect_value),
    st.text(max_size=30),
)
keys = st.sampled_from(["id", "type", "source", "action", "userId", "paymentBalance", "updatePaymentBalance",
                        "metadata", "currency", "amount", "vat", "oldBalance", "newBalance", "transaction", "data",
                        "message", "subscriptionBalance", "currentBalance", "transactionId",
                        "'quoted key'", "x"])  # fmt: skip
times = st.one_of(
    st.floats(0, 1e6).map(stamp),
    st.sampled_from(["2024-13-45T99:99:99.999Z", "٢٠٢٤-٠٢-١٠T٢١:٠٠:٠٠.٠٠٠Z", "2024-02-10"]),
)
requests = st.one_of(st.integers(0, 5).map(rid), st.sampled_from(["undefined", "", "x y"]))
messages = st.one_of(
    st.sampled_from(
        [
            "Start syncing the balance {", "Processing message " + uid(1), "SubscriptionBalanceUpdated event published",
            "Subscription balance and payment balance are not in sync {",
            "Subscription balance and payment balance are not in sync "
            "{ userId: 'u', subscriptionBalance: 1, paymentBalance: x }",
            "Skipping the process, Update Payment Balance Flag is set to false { transactionAction: 'A' }",
            "An error occured while syncing the balance TypeError: x",
            'Uncaught Exception \t{"errorType":"E","errorMessage":"m"}',
            "{", "{ message: 'Subscriber will have a negative balance due to this action', data: {",
            "transaction {\"id\":1}", "Transaction Lock created!!!",
        ]
    ),
    st.text(max_size=40),
)  # fmt: skip
heads = st.one_of(
    st.builds(lambda t, r, lv, m: f"{t} {t}\t{r}\t{lv}\t{m}", times, requests,
              st.sampled_from(["INFO", "ERROR", "WARN", "x"]), messages),
    st.builds(lambda t, r: f"{t} START RequestId: {r} Version: $LATEST", times, requests),
    st.builds(lambda t, r: f"{t} END RequestId: {r}", times, requests),
    st.builds(lambda t, r, d: f"{t} REPORT RequestId: {r}\tDuration: {d} ms\tBilled Duration: {d} ms\t"
                              "Memory Size: 1 MB\tMax Memory Used: 1 MB\t",
              times, requests, st.sampled_from(["1.5", "1.2.3", "99999999999999999999999", "٣"])),
    st.builds(lambda t: f'{t} {{"_aws":{{"CloudWatchMetrics":[{{"Metrics":[{{"Name":"negativeBalance"}}]}}]}},'
                        '"userId":"u"}', times),
    st.builds(lambda t: f"{t} Unknown application error occurred", times),
    st.builds(lambda t, x: f"{t} {x}", times, st.text(max_size=40)),
)  # fmt: skip
continuations = st.one_of(
    st.builds(
        lambda d, k, v, c: f"{'  ' * d}{k}: {v}{c}",
        st.integers(0, 3),
        keys,
        values,
        st.sampled_from([",", "", " }", "{"]),
    ),
    st.sampled_from(
        ["  transaction: {", "  data: {", "  }", "}", "    at Zi.exec (/src/x.ts:1:1)", "Runtime.Unknown", ""]
    ),
    st.text(max_size=60),
)
lines = st.lists(st.one_of(heads, continuations), max_size=40)
files = st.lists(lines.map("\n".join), min_size=1, max_size=3)


def events_in(texts: list[str]) -> int:
    """Events in the texts, by the format's rule, with plain ``re``: one per line that starts
    with a timestamp and a space, plus a file's first line when it does not."""
    total = 0
    for text in texts:
        nonempty = [line for line in text.split("\n") if line]
        total += sum(1 for line in nonempty if TS.match(line))
        total += bool(nonempty) and not TS.match(nonempty[0])
    return total


def check_accounted(texts: list[str]) -> None:
    result = read_batch(lines_frame(list(range(len(texts))), texts))
    counts = Counter(dict(result.kind_counts.iter_rows()))
    assert set(counts) <= set(EVENT_KINDS)
    total = sum(counts.values())
    assert total == events_in(texts)
    understood = sum(counts[k] for k in UNDERSTOOD_KINDS)
    assert understood + result.unparsed.height == total
    assert result.transactions.height == counts["sync_start"]
    assert result.notices.height == sum(counts[k] for k in NOTICE_KINDS)
    assert result.invocations["events"].sum() <= total
    assert result.unparsed["reason"].null_count() == 0


@FUZZ
@given(files)
def test_every_event_is_accounted_for_in_any_log_shaped_text(texts: list[str]) -> None:
    check_accounted(texts)


@FUZZ
@given(st.lists(st.text(), min_size=1, max_size=3))
def test_every_event_is_accounted_for_in_any_text(texts: list[str]) -> None:
    check_accounted(texts)


@FUZZ
@given(st.lists(st.binary(max_size=400), min_size=1, max_size=3))
def test_any_bytes_decode_and_are_accounted_for(blobs: list[bytes]) -> None:
    problems = Problems()
    texts = [decode(f"f{i}", blob, problems) for i, blob in enumerate(blobs)]
    assert all("\x00" not in t and "\r\n" not in t for t in texts)
    check_accounted(texts)


@FUZZ
@given(st.lists(st.one_of(continuations, st.text(max_size=80)), max_size=30))
def test_inspect_reader_never_raises_on_any_object_lines(body: list[str]) -> None:
    texts = [f"{stamp(0)} {stamp(0)}\t{rid(1)}\tINFO\tStart syncing the balance {{\n" + "\n".join(body)]
    lines = split_events(lines_frame([0], texts))
    pairs = key_values(lines)
    assert (pairs["depth"] >= 0).all()  # nulls (no depth) are ignored
    check_accounted(texts)


@FUZZ
@given(st.text(max_size=50))
def test_unquote_never_raises_and_only_reads_quoted_text(value: str) -> None:
    import polars as pl

    out = pl.select(unquote(pl.lit(value))).item()
    if value[:1] not in ("'", '"', "`") or len(value) < 2 or value[-1] != value[0]:
        assert out is None


@FUZZ
@given(st.binary(min_size=1, max_size=2000), st.data())
def test_corrupted_gzip_never_raises_past_the_audit(payload: bytes, data: st.DataObject) -> None:
    """Any gzip file with bytes flipped or cut: a problem or a result, never a traceback."""
    blob = bytearray(gzip.compress(payload))
    for _ in range(data.draw(st.integers(0, 4))):
        at = data.draw(st.integers(0, len(blob) - 1))
        blob[at] = data.draw(st.integers(0, 255))
    blob = blob[: data.draw(st.integers(0, len(blob)))]
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "000000.gz"
        path.write_bytes(bytes(blob))
        try:
            result = audit([path])
        except NoUsableInput as exc:
            assert str(exc).startswith("nothing to audit in ")
        else:
            assert len(result.files) == 1
            assert sum(result.ingested.kind_counts.values()) == result.ingested.events
