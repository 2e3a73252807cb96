"""Events: split members into lines, lines into events, and name every event's kind.

The rule from the log format: an event starts at every line that begins with a timestamp and a
space; continuation lines never do and are never empty. Splitting, classification and the
key/value lines of util.inspect objects are all vectorised Polars expressions over one row per
line: no Python loop touches a line.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from itertools import accumulate

import polars as pl
import pyarrow as pa

from calo_polars.read.files import FileIndex as FileIndex  # re-exported: its users import it from here
from calo_polars.read.sources import Member

TS_PREFIX = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\.[0-9]{3}Z "

#: One key/value pair of an object printed on a single line: ``{ userId: 'x', n: 1 }``.
INLINE_PAIR_RE = r"[A-Za-z_$][\w$]*: (?:'(?:[^'\\]|\\.)*'|\"(?:[^\"\\]|\\.)*\"|`[^`]*`|[^,{}\[\]\s]+)"

#: App-line kinds by the exact prefix of their text, first match wins.
APP_PREFIXES: list[tuple[str, str]] = [
    ("processing_message", "Processing message "),
    ("sync_start", "Start syncing the balance"),
    ("sync_published", "SubscriptionBalanceUpdated event published"),
    ("not_in_sync", "Subscription balance and payment balance are not in sync"),
    ("skip_create_subscription", "Skipping the balance sync for create "),
    ("skip_already_synced", "Skipping the process, balance is already synced"),
    ("skip_already_synced", "Balance is already synced from other listeners"),
    ("skip_update_flag_false", "Skipping the process, Update Payment Balance Flag is set to false"),
    ("sync_error", "An error occured while syncing the balance"),
    ("sync_error", "An error occurred while syncing the balance"),
    ("uncaught_exception", "Uncaught Exception"),
    ("invoke_error", "Invoke Error"),
    ("transaction_lock", "Transaction Lock created"),
    ("sqs_body", "transaction {"),
    ("sqs_body", "record.body {"),
    ("sqs_record", "record {"),
    ("slack_notification", "Sending slack notification"),
    ("object", "{"),
]

#: Every event kind, what it means, and whether the tool understands it.
EVENT_KINDS: dict[str, tuple[str, bool]] = {
    "start": ("Lambda START of an invocation", True),
    "end": ("Lambda END of an invocation", True),
    "report": ("Lambda REPORT: duration, billed duration, memory", True),
    "init_start": ("Lambda INIT_START: a cold start begins", True),
    "init_report": ("Lambda INIT_REPORT: init phase result (errors on failed inits)", True),
    "platform_other": ("Other Lambda platform line (extensions, telemetry)", True),
    "timeout": ("Lambda 'Task timed out' line", True),
    "processing_message": ("'Processing message <id>': one per SQS record", True),
    "sync_start": ("'Start syncing the balance {transaction}': the transaction block", True),
    "sync_published": ("'SubscriptionBalanceUpdated event published': sync succeeded", True),
    "not_in_sync": ("ERROR: subscription and payment balances are not in sync", True),
    "skip_create_subscription": ("Skipped: create (web) subscription is synced elsewhere", True),
    "skip_already_synced": ("Skipped: balance already synced by other listeners", True),
    "skip_update_flag_false": ("Skipped: updatePaymentBalance flag is false", True),
    "blocked_overdraft": ("The Lambda refused a transaction that would make the balance negative", True),
    "sync_error": ("ERROR: an error occurred while syncing the balance (with stack)", True),
    "uncaught_exception": ("ERROR: uncaught exception (JSON error object)", True),
    "invoke_error": ("ERROR: invoke error (JSON error object)", True),
    "runtime_crash": ("'Unknown application error occurred' runtime crash", True),
    "transaction_lock": ("'Transaction Lock created' entity dump", True),
    "sqs_body": ("The SQS message body as JSON (holds personal data; not copied)", True),
    "sqs_record": ("The SQS record dump (holds personal data; not copied)", True),
    "slack_notification": ("'Sending slack notification' dump", True),
    "emf_metric": ("CloudWatch embedded metric (EMF) JSON line", True),
    "object": ("An app line that logs an object of unknown shape", False),
    "app_unrecognized": ("An app line whose text the tool does not know", False),
    "orphan": ("Continuation lines at the start of a file with no event before them", False),
    "unknown": ("A line starting with a timestamp but of no known shape", False),
    "invalid_transaction": ("A transaction block with missing or unreadable fields", False),
}

UNDERSTOOD_KINDS = [k for k, (_, ok) in EVENT_KINDS.items() if ok]
#: Kinds whose continuation lines carry key/value pairs the records stage reads.
KV_KINDS = ["sync_start", "not_in_sync", "object", "skip_update_flag_false"]

KIND = pl.Enum(list(EVENT_KINDS))


def lines_frame(file_ids: Sequence[int], texts: Sequence[bytes | str]) -> pl.DataFrame:
    """One row per line of the given member texts (UTF-8 bytes), numbered from 1 within each file.

    The texts are joined into one buffer and viewed as Arrow strings without a copy per member
    (``Member.data`` is clean UTF-8: ``sources.clean_bytes``), then split and exploded in
    Polars (Arrow's split_pattern and a conversion to Polars cost 2.5x more).
    """
    blobs = [t.encode("utf-8") if isinstance(t, str) else t for t in texts]
    offsets = pa.array([0, *accumulate(map(len, blobs))], type=pa.int64())
    members = pa.LargeStringArray.from_buffers(len(blobs), offsets.buffers()[1], pa.py_buffer(b"".join(blobs)))
    count = pl.col("text").list.len()
    return (
        pl.DataFrame({"file_id": pl.Series(file_ids, dtype=pl.UInt32), "text": pl.from_arrow(members)})
        .with_columns(pl.col("text").str.split("\n"))
        .with_columns(before=count.cum_sum() - count)  # lines of the earlier files
        .explode("text")
        .select(
            "file_id",
            line_no=(pl.int_range(1, pl.len() + 1, dtype=pl.Int64) - pl.col("before")).cast(pl.UInt32),
            text="text",
        )
    )


#: Longest line read whole. Real lines reach ~7,500 characters (metadata JSON); a longer one is
#: cut here, so a runaway line cannot cost the regexes seconds and memory, and is reported.
MAX_LINE_CHARS = 1 << 20

LONG_LINE_SCHEMA: dict[str, pl.DataType] = {"file_id": pl.UInt32(), "line_no": pl.UInt32(), "chars": pl.Int64()}


def cut_long_lines(lines: pl.DataFrame, max_chars: int = MAX_LINE_CHARS) -> tuple[pl.DataFrame, pl.DataFrame]:
    """The lines with every line longer than ``max_chars`` cut to that length, and those lines.

    A byte-length test over all lines first (a line has at least as many bytes as
    characters), the character count only when some line is that long.
    """
    if not (lines["text"].str.len_bytes() > max_chars).any():
        return lines, pl.DataFrame(schema=LONG_LINE_SCHEMA)
    chars = pl.col("text").str.len_chars()
    found = lines.filter(chars > max_chars).select("file_id", "line_no", chars=chars.cast(pl.Int64))
    cut = pl.when(chars > max_chars).then(pl.col("text").str.slice(0, max_chars)).otherwise(pl.col("text"))
    return lines.with_columns(text=cut), found


def member_batches(
    members: Iterable[Member], files: FileIndex, *, batch_bytes: int = 32 << 20, stored_share: int | None = None
) -> Iterator[tuple[list[int], list[bytes]]]:
    """Group members into batches of about ``batch_bytes`` of text: (file ids, texts).

    A batch always holds whole files, so an invocation (which never spans files) is whole.
    A member with a ``file_id`` is in ``files`` already (``iter_members(files=files)``).
    ``lines_frame`` turns a batch into lines (in a worker thread). With ``stored_share`` a
    batch also ends once its files take that many bytes as stored: so an input smaller than
    ``threads`` batches (the real archive: 4 MB zipped, 20 MB of text) is still parsed on
    every core, the first batch while the rest is being read (any batches give the same tables).
    """
    ids: list[int] = []
    texts: list[bytes] = []
    size = stored = 0
    share = stored_share if stored_share else None
    for member in members:
        ids.append(member.file_id if member.file_id >= 0 else files.add(member))
        texts.append(member.data)
        size += len(member.data)
        stored += member.stored_bytes
        if size >= batch_bytes or (share is not None and stored >= share):
            yield ids, texts
            ids, texts, size, stored = [], [], 0, 0
    if ids:
        yield ids, texts


#: One anchored alternation of the prefixes, in order (leftmost-first = first match wins): a
#: when/then chain of 18 ``starts_with`` evaluated every branch on every row (2x slower).
_APP_PREFIX_RE = "^(" + "|".join(re.escape(prefix) for _, prefix in APP_PREFIXES) + ")"
_APP_KIND_OF = {prefix: kind for kind, prefix in APP_PREFIXES}


def _app_kind(msg: pl.Expr) -> pl.Expr:
    return msg.str.extract(_APP_PREFIX_RE, 1).replace_strict(
        _APP_KIND_OF, default="app_unrecognized", return_dtype=pl.String
    )


def _other_kind(other: pl.Expr) -> pl.Expr:
    return (
        pl.when(other.str.starts_with('{"_aws":'))
        .then(pl.lit("emf_metric"))
        .when(other.str.starts_with("Unknown application error occurred"))
        .then(pl.lit("runtime_crash"))
        .otherwise(pl.lit("unknown"))
    )


def _time(ts: pl.Expr) -> pl.Expr:
    """The log timestamp as a UTC datetime; null when it names no real time (month 13), or
    year 0, which Polars holds but Python's datetime (the summary, the workbook) cannot."""
    parsed = ts.str.to_datetime("%Y-%m-%dT%H:%M:%S%.3fZ", time_unit="ms", time_zone="UTC", strict=False)
    return pl.when(parsed.dt.year() >= 1).then(parsed)


#: A stamped head line is an app line (second timestamp, then request id, level and message
#: split on tabs), a platform line, a timeout line or anything else. One capture regex with
#: these alternatives over every head line was 60 % of the parse; split, each runs only where it
#: can match, and the app line (most heads) needs no regex capture at all.
_STAMP2 = r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\.[0-9]{3}Z"
APP_HEAD_RE = TS_PREFIX + _STAMP2 + r"\t[^\t]*\t[A-Z]+\t"
PLATFORM_RE = (
    r"^(?P<platform>START|END|REPORT|INIT_START|INIT_REPORT|INIT_RUNTIME_DONE|EXTENSION|TELEMETRY)\b"
    r"(?: RequestId: (?P<platform_rid>\S+))?"
)
TIMEOUT_RE = (
    r"^(?P<timeout_rid>[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}) Task timed out after "
    r"(?P<timeout_s>[0-9.]+) seconds.*$"
)
#: Characters before an app line's request id: timestamp, space, timestamp, tab.
_APP_FIELDS_AT = 50


@dataclass
class Lines:
    """One batch's non-empty lines as events: ``heads`` (one row per event, in line order,
    ``event`` = row number + 1) and ``body`` (continuation lines: event, text)."""

    heads: pl.DataFrame
    body: pl.DataFrame

    def body_of(self, kinds: list[str]) -> pl.DataFrame:
        """Continuation lines of the events of the given kinds (a gather, not a join)."""
        wanted = self.heads["kind"].is_in(kinds)
        return self.body.filter(pl.lit(wanted).gather(pl.col("event") - 1))


def _head_fields(text: pl.Expr) -> dict[str, pl.Expr]:
    """The fields of each head shape, computed only where that shape can match."""
    rest = text.str.slice(25)
    other_shape = pl.col("stamped") & ~pl.col("is_app")
    return {
        "stamp": pl.when(pl.col("stamped")).then(text.str.slice(0, 24)),
        "app": pl.when(pl.col("is_app")).then(text.str.slice(_APP_FIELDS_AT).str.splitn("\t", 3)),
        "platform_parts": pl.when(other_shape).then(rest.str.extract_groups(PLATFORM_RE)),
        "timeout_parts": pl.when(other_shape).then(rest.str.extract_groups(TIMEOUT_RE)),
    }


def _platform_rest(text: pl.Expr) -> pl.Expr:
    """What follows a platform line's word and request id (capturing it in the regex cost 2x)."""
    rid = pl.col("platform_rid")
    skipped = pl.col("platform").str.len_bytes() + pl.when(rid.is_not_null()).then(
        len(" RequestId: ") + rid.str.len_chars()
    ).otherwise(0)
    return pl.when(pl.col("platform").is_not_null()).then(text.str.slice(25 + skipped))


def split_events(lines: pl.DataFrame) -> Lines:
    """The batch's events: heads with their fields, and the continuation lines.

    Head rows carry ts, kind, request_id (own or inherited from the nearest preceding head of
    the same file that has one), level, msg, the platform/timeout fields, and ``next_text``
    (the event's first continuation line).
    """
    marked = (
        lines.lazy()
        .filter(pl.col("text").str.len_bytes() > 0)
        .with_columns(stamped=pl.col("text").str.contains(TS_PREFIX))
        .with_columns(is_head=pl.col("stamped") | (pl.col("file_id") != pl.col("file_id").shift(1)).fill_null(True))
        .with_columns(
            event=pl.col("is_head").cum_sum().cast(pl.UInt32),
            next_text=pl.when(~pl.col("is_head").shift(-1).fill_null(True)).then(pl.col("text").shift(-1)),
        )
        .collect(engine="in-memory")
    )
    text = pl.col("text")
    heads = (
        marked.lazy()
        .filter(pl.col("is_head"))
        .drop("is_head")
        .with_columns(is_app=text.str.contains(APP_HEAD_RE))
        .with_columns(**_head_fields(text))
        .unnest("platform_parts", "timeout_parts")
        .with_columns(
            app_rid=pl.col("app").struct.field("field_0"),
            level=pl.col("app").struct.field("field_1"),
            msg=pl.col("app").struct.field("field_2"),
            platform_rest=_platform_rest(text),
            other=pl.when(
                pl.col("stamped") & ~pl.col("is_app") & pl.col("platform").is_null() & pl.col("timeout_rid").is_null()
            ).then(text.str.slice(25)),
            ts=_time(pl.col("stamp")),
        )
        .with_columns(
            kind=pl.when(~pl.col("stamped"))
            .then(pl.lit("orphan"))
            .when(pl.col("ts").is_null())  # shaped like a timestamp, but no real time
            .then(pl.lit("unknown"))
            .when(pl.col("is_app"))
            .then(_app_kind(pl.col("msg")))
            .when(pl.col("platform").is_not_null())
            .then(
                pl.when(pl.col("platform").is_in(["START", "END", "REPORT", "INIT_START", "INIT_REPORT"]))
                .then(pl.col("platform").str.to_lowercase())
                .otherwise(pl.lit("platform_other"))
            )
            .when(pl.col("timeout_rid").is_not_null())
            .then(pl.lit("timeout"))
            .otherwise(_other_kind(pl.col("other"))),
            request_id=pl.coalesce("app_rid", "platform_rid", "timeout_rid").forward_fill().over("file_id"),
        )
        .drop("stamped", "is_app", "stamp", "app", "app_rid", "platform_rid", "timeout_rid")
        .collect(engine="in-memory")
    )
    body = marked.filter(~pl.col("is_head")).select("event", "text")
    return Lines(heads, body)


#: A util.inspect key/value line's start: indentation, key (bare or quoted), ": ". The value is
#: the rest less one trailing comma (a lazy ``(?P<value>.*?),?$`` group made the regex engine
#: capture every line to its end: 3x slower).
KV_KEY_RE = r"^(?P<indent> *)(?P<key>[A-Za-z_$][\w$]*|'(?:[^'\\]|\\.)*'): "


def key_values(lines: Lines) -> pl.DataFrame:
    """Key/value pairs of the util.inspect objects in events of ``KV_KINDS``.

    Columns: event, depth (1 = top level of the logged object), parent (the depth-1 key a
    depth-2 pair sits under), key and the raw value text. Objects printed on one line, after
    the message text of the head line, give depth-1 pairs too.
    """
    text = pl.col("text")
    nested = (
        lines.body_of(KV_KINDS)
        .lazy()
        .with_columns(kv=text.str.extract_groups(KV_KEY_RE))
        .unnest("kv")
        .filter(pl.col("key").is_not_null())
        .with_columns(
            depth=(pl.col("indent").str.len_bytes() // 2).cast(pl.Int32),
            value=text.str.slice(pl.col("indent").str.len_bytes() + pl.col("key").str.len_chars() + 2).str.strip_suffix(
                ","
            ),
        )
        .with_columns(parent=pl.when(pl.col("depth") == 1).then(pl.col("key")).forward_fill().over("event"))
        .with_columns(parent=pl.when(pl.col("depth") == 1).then(None).otherwise(pl.col("parent")))
        .select("event", "depth", "parent", "key", "value")
    )
    inline = (
        lines.heads.lazy()
        .filter(pl.col("kind").is_in(KV_KINDS) & pl.col("msg").str.contains(r"\{ .* \}\s*$"))
        .select("event", pair=pl.col("msg").str.extract(r"\{ (.*) \}\s*$").str.extract_all(INLINE_PAIR_RE))
        .explode("pair")
        .filter(pl.col("pair").is_not_null())
        .select(
            "event",
            depth=pl.lit(1, pl.Int32),
            parent=pl.lit(None, pl.String),
            key=pl.col("pair").str.extract(r"^([^:]+): "),
            value=pl.col("pair").str.extract(r"^[^:]+: (.*)$"),
        )
    )
    return pl.concat([nested, inline]).collect(engine="in-memory")
