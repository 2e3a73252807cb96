"""Records: the typed tables read out of events — transactions, notices, unparsed events.

Input is one batch of lines with their events (``events.split_events``) and the key/value
pairs of their util.inspect objects (``events.key_values``). Everything is column-wise:
string values are unquoted and unescaped with expressions, numbers go from text straight
to Decimal, and a transaction block becomes one row by a pivot on its keys. With the compiled
tokenizer, the plain blocks (nearly all) arrive already read as rows (``read_rows``) and only
the others take the pivot.
"""

from __future__ import annotations

import polars as pl

from calo_polars.money import MONEY, SCALE
from calo_polars.parse.events import EVENT_KINDS
from calo_polars.problems import notes as note

#: Keys of the transaction object, in the full layout's order, and their column names.
TX_KEYS: dict[str, str] = {
    "id": "tx_id",
    "type": "type",
    "source": "source",
    "action": "action",
    "userId": "user_id",
    "paymentBalance": "payment_balance",
    "updatePaymentBalance": "update_payment_balance",
    "metadata": "metadata",
    "currency": "currency",
    "amount": "amount",
    "vat": "vat",
    "oldBalance": "old_balance",
    "newBalance": "new_balance",
}
REQUIRED_KEYS = ["id", "userId", "currency", "amount", "vat", "oldBalance", "newBalance"]
LEGACY_KEYS = frozenset(REQUIRED_KEYS)
MONEY_KEYS = ["amount", "vat", "oldBalance", "newBalance", "paymentBalance"]
#: Keys whose value must be a non-empty quoted string.
STRING_KEYS = ["id", "userId", "currency"]
#: Money at or beyond this size is not a wallet amount (and could overflow a Decimal sum).
MAX_ABS_MONEY = 10**15

NUMBER_RE = r"^-?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?$"

#: Notices: events worth a row of their own in the report (errors, skips, refusals...).
NOTICE_KINDS = [
    "not_in_sync",
    "blocked_overdraft",
    "skip_create_subscription",
    "skip_already_synced",
    "skip_update_flag_false",
    "sync_error",
    "uncaught_exception",
    "invoke_error",
    "runtime_crash",
    "timeout",
    "init_report",
    "emf_metric",
]

TRANSACTION_SCHEMA: dict[str, pl.DataType] = {
    "file_id": pl.UInt32(),
    "line_no": pl.UInt32(),
    "ts": pl.Datetime("ms", "UTC"),
    "request_id": pl.String(),
    "tx_id": pl.String(),
    "user_id": pl.String(),
    "wallet_id": pl.String(),
    "wallet_sk": pl.String(),
    "currency": pl.String(),
    "type": pl.String(),
    "source": pl.String(),
    "action": pl.String(),
    "layout": pl.String(),
    "amount": MONEY,
    "vat": MONEY,
    "old_balance": MONEY,
    "new_balance": MONEY,
    "payment_balance": MONEY,
    "update_payment_balance": pl.Boolean(),
    "metadata_state": pl.String(),
    # what the Lambda did with the block (``outcomes``): filled once the batch's messages are read
    "outcome": pl.String(),
    "not_in_sync_after": pl.Boolean(),
    # joined from the invocation and from the SQS body line of the same message (``outcomes``)
    "start_ts": pl.Datetime("ms", "UTC"),
    "email": pl.String(),
    "phone": pl.String(),
}

NOTICE_SCHEMA: dict[str, pl.DataType] = {
    "file_id": pl.UInt32(),
    "line_no": pl.UInt32(),
    "ts": pl.Datetime("ms", "UTC"),
    "request_id": pl.String(),
    "kind": pl.String(),
    "level": pl.String(),
    "user_id": pl.String(),
    "transaction_id": pl.String(),
    "action": pl.String(),
    "subscription_balance": MONEY,
    "payment_balance": MONEY,
    "current_balance": MONEY,
    "detail": pl.String(),
}

UNPARSED_SCHEMA: dict[str, pl.DataType] = {
    "file_id": pl.UInt32(),
    "line_no": pl.UInt32(),
    "ts": pl.Datetime("ms", "UTC"),
    "kind": pl.String(),
    "reason": pl.String(),
    "text": pl.String(),
}

DETAIL_CHARS = 500


# ---------------------------------------------------------------- util.inspect values


#: util.inspect escapes and what they stand for, undone in one leftmost scan (so an escaped
#: backslash never pairs with the character after it; 8 chained replace_all cost 5x more).
_ESCAPES = {"\\\\": "\\", "\\'": "'", '\\"': '"', "\\`": "`", "\\n": "\n", "\\t": "\t", "\\r": "\r"}


def unquote(value: pl.Expr) -> pl.Expr:
    """The text of a quoted util.inspect string ('…', "…" or `…`), unescaped; else null.

    \\x and \\u escapes (control characters only) are left as written.
    """
    first = value.str.head(1)
    quoted = first.is_in(["'", '"', "`"]) & (value.str.len_chars() >= 2) & (value.str.tail(1) == first)
    inner = value.str.slice(1, value.str.len_chars() - 2)
    unescaped = inner.str.replace_many(list(_ESCAPES), list(_ESCAPES.values()), leftmost=True)
    return pl.when(quoted).then(pl.when(inner.str.contains("\\", literal=True)).then(unescaped).otherwise(inner))


def number(value: pl.Expr) -> pl.Expr:
    """A util.inspect number as exact Decimal; null for anything else (text, undefined)."""
    return pl.when(value.str.contains(NUMBER_RE)).then(value.str.to_decimal(scale=SCALE)).cast(MONEY)


def boolean(value: pl.Expr) -> pl.Expr:
    return pl.when(value == "true").then(True).when(value == "false").then(False)


# ---------------------------------------------------------------- transactions


def _pivot(pairs: pl.DataFrame, keys: list[str]) -> pl.DataFrame:
    """One row per event with one raw-value column per key (null when absent)."""
    if pairs.is_empty():
        return pl.DataFrame(schema={"event": pl.UInt32, **dict.fromkeys(keys, pl.String)})
    return pairs.pivot(on="key", on_columns=keys, index="event", values="value", aggregate_function="first")


def _listed(parts: list[pl.Expr], separator: str) -> pl.Expr:
    """The non-null parts joined; an empty string when there are none."""
    return pl.concat_str(parts, separator=separator, ignore_nulls=True)


def _block_issues(present: dict[str, pl.Expr]) -> pl.Expr:
    """Why a block cannot be a transaction (null when it can): every reason, in one line."""
    missing = _listed([pl.when(~present[k]).then(pl.lit(k)) for k in REQUIRED_KEYS], ", ")
    not_strings = [
        pl.when(present[k] & (unquote(pl.col(k)).str.len_chars().fill_null(0) == 0)).then(
            pl.format("{} is not a text value ({})", pl.lit(k), pl.col(k).str.head(40))
        )
        for k in STRING_KEYS
    ]
    money = []
    for k in MONEY_KEYS:
        value = pl.col(k)
        parsed = number(value)
        money.append(
            pl.when(present[k] & (value == "undefined") & pl.lit(k in REQUIRED_KEYS))
            .then(pl.format("{} is undefined", pl.lit(k)))
            .when(present[k] & (value != "undefined") & ~value.str.contains(NUMBER_RE))
            .then(pl.format("{} is not a number ({})", pl.lit(k), value.str.head(40)))
            .when(present[k] & value.str.contains(NUMBER_RE) & (parsed.is_null() | (parsed.abs() >= MAX_ABS_MONEY)))
            .then(pl.format("{} is out of range ({})", pl.lit(k), value.str.head(40)))
        )
    issues = _listed([pl.when(missing != "").then(pl.format("missing {}", missing)), *not_strings, *money], "; ")
    return pl.when(issues != "").then(issues)


#: ``TRANSACTION_SCHEMA`` with the block's event first (kept until the rows are in block order).
_ROWS_SCHEMA: dict[str, pl.DataType] = {"event": pl.UInt32(), **TRANSACTION_SCHEMA}
#: A transaction row's first columns: its event, where it was logged, when, by which call, its id.
_ROW_HEAD = ["event", "file_id", "line_no", "ts", "request_id", "tx_id"]
_LAYOUTS = {0: "full", 1: "legacy"}
_METADATA_STATES = {0: "absent", 1: "undefined", 2: "json", 3: "json without walletId"}


def read_rows(scanned: pl.DataFrame) -> pl.DataFrame:
    """The compiled scan's transaction rows (``tokenize.TX_ROWS``) typed as ``transactions``
    types them (with their ``event``): the few columns the scan leaves as codes, and the
    wallet id of a block without one in its metadata."""
    return scanned.select(
        *_ROW_HEAD,
        "user_id",
        wallet_id=pl.coalesce(pl.col("wallet_id"), pl.lit("wallet#") + pl.col("user_id")),
        wallet_sk="wallet_sk",
        currency="currency",
        type="type",
        source="source",
        action="action",
        layout=pl.col("layout").replace_strict(_LAYOUTS, return_dtype=pl.String),
        amount="amount",
        vat="vat",
        old_balance="old_balance",
        new_balance="new_balance",
        payment_balance="payment_balance",
        update_payment_balance=pl.col("update_payment_balance").cast(pl.Boolean),
        metadata_state=pl.col("metadata_state").replace_strict(_METADATA_STATES, return_dtype=pl.String),
        outcome=pl.lit(None, pl.String),
        not_in_sync_after=pl.lit(None, pl.Boolean),
        start_ts=pl.lit(None, pl.Datetime("ms", "UTC")),
        email=pl.lit(None, pl.String),
        phone=pl.lit(None, pl.String),
    ).cast(_ROWS_SCHEMA)  # type: ignore[arg-type]  # polars#14468: the cast() stub rejects dict[str, DataType]


def transactions(
    heads: pl.DataFrame, kv: pl.DataFrame, scanned: pl.DataFrame | None = None
) -> tuple[pl.DataFrame, pl.DataFrame, pl.DataFrame]:
    """Transaction rows, unparsed transaction blocks, and notes on blocks that were read.

    ``scanned``: the rows the compiled scan already read (``tokenize.TX_ROWS``: plain blocks
    that need no note); only the other blocks go through the Polars path below, and the rows
    come back in block order, as if every block had gone through it (tests/test_tokenize.py).

    Returns (transactions, invalid, notes). A block is invalid when it has no transaction
    object, a required key is missing, an id is not text, or a money value is undefined, not
    a number or out of range: it is then not a transaction but an unparsed event with every
    reason. Notes (``problems.NOTE_SCHEMA``) name what was odd in a block that was still read: unknown
    keys, a layout that is neither full nor legacy, an unexpected type or currency.
    """
    if scanned is None:
        rows, invalid, found = _transactions(heads, kv)
        return rows.drop("event"), invalid, found
    read = read_rows(scanned)
    events = heads.filter(pl.col("kind") == "sync_start")["event"]
    left = events.filter(~events.is_in(read["event"].implode())).implode()
    if left[0].len() == 0:
        heads, kv = heads.clear(), kv.clear()
    else:
        heads, kv = heads.filter(pl.col("event").is_in(left)), kv.filter(pl.col("event").is_in(left))
    rows, invalid, found = _transactions(heads, kv)
    if not rows.is_empty():
        read = pl.concat([read, rows]).sort("event")
    return read.drop("event"), invalid, found


def _transactions(heads: pl.DataFrame, kv: pl.DataFrame) -> tuple[pl.DataFrame, pl.DataFrame, pl.DataFrame]:
    """``transactions`` by Polars expressions: its rows with their ``event``."""
    blocks = heads.filter(pl.col("kind") == "sync_start").select("event", "file_id", "line_no", "ts", "request_id")
    pairs = kv.filter((pl.col("depth") == 2) & (pl.col("parent") == "transaction"))
    unknown_keys = (
        pairs.filter(~pl.col("key").is_in(list(TX_KEYS)))
        .group_by("event", maintain_order=True)
        .agg(keys=pl.col("key").unique(maintain_order=True).str.join(", "))
    )
    wide = blocks.join(
        _pivot(pairs.filter(pl.col("key").is_in(list(TX_KEYS))), list(TX_KEYS)), on="event", how="left"
    ).join(unknown_keys, on="event", how="left")
    present = {k: pl.col(k).is_not_null() for k in TX_KEYS}
    no_object = ~pl.any_horizontal(*present.values()) & pl.col("keys").is_null()
    # The top-level keys only of blocks without a transaction object (all blocks' was 25 % of this stage).
    odd = wide.filter(no_object)["event"].implode()
    top_keys = (
        kv.filter((pl.col("depth") == 1) & pl.col("event").is_in(odd))
        .group_by("event", maintain_order=True)
        .agg(top_keys=pl.col("key").unique(maintain_order=True).str.join(", "))
    )
    wide = wide.join(top_keys, on="event", how="left")
    # Every text and money value is parsed once, here; whether a block is fine is a cheap test
    # over the parsed values, and the reason text is only formatted for the blocks that are not
    # (formatting every block's reasons was half of this stage).
    parsed = wide.with_columns(
        tx_id=unquote(pl.col("id")),
        _userId=unquote(pl.col("userId")),
        _currency=unquote(pl.col("currency")),
        _type=unquote(pl.col("type")),
        **{f"_{k}": number(pl.col(k)) for k in MONEY_KEYS},
        layout=pl.when(pl.all_horizontal(*present.values()))
        .then(pl.lit("full"))
        .when(~pl.any_horizontal(*(present[k] for k in TX_KEYS if k not in LEGACY_KEYS)))
        .then(pl.lit("legacy"))
        .otherwise(pl.lit("other")),
    )
    fine = _block_is_fine(present) & ~no_object
    read = parsed.filter(fine)
    invalid = parsed.filter(~fine).select(
        "event",
        "file_id",
        "line_no",
        "ts",
        "tx_id",
        reason=pl.when(no_object)
        .then(
            pl.format(
                "unknown layout: no transaction object{}",
                pl.when(pl.col("top_keys").is_not_null())
                .then(pl.format(" (found: {})", pl.col("top_keys").str.head(80)))
                .otherwise(pl.lit("")),
            )
        )
        .otherwise(_block_issues(present)),
    )
    metadata = pl.col("metadata")
    rows = read.select(
        *_ROW_HEAD,
        user_id="_userId",
        wallet_id=pl.coalesce(
            metadata.str.extract(r'(?:^.|[{,])"walletId":"([^"\\]*)"'),
            pl.lit("wallet#") + pl.col("_userId"),
        ),
        wallet_sk=metadata.str.extract(r'(?:^.|[{,])"walletSk":"([^"\\]*)"'),
        currency="_currency",
        type="_type",
        source=unquote(pl.col("source")),
        action=unquote(pl.col("action")),
        layout="layout",
        amount="_amount",
        vat="_vat",
        old_balance="_oldBalance",
        new_balance="_newBalance",
        payment_balance="_paymentBalance",
        update_payment_balance=boolean(pl.col("updatePaymentBalance")),
        metadata_state=pl.when(metadata.is_null())
        .then(pl.lit("absent"))
        .when(metadata == "undefined")
        .then(pl.lit("undefined"))
        .when(metadata.str.contains('"walletId"', literal=True))
        .then(pl.lit("json"))
        .otherwise(pl.lit("json without walletId")),
        outcome=pl.lit(None, pl.String),
        not_in_sync_after=pl.lit(None, pl.Boolean),
        start_ts=pl.lit(None, pl.Datetime("ms", "UTC")),
        email=pl.lit(None, pl.String),
        phone=pl.lit(None, pl.String),
    )
    return rows.cast(_ROWS_SCHEMA), invalid, _block_notes(read)  # type: ignore[arg-type]  # polars#14468: the cast() stub rejects dict[str, DataType]


def _block_is_fine(present: dict[str, pl.Expr]) -> pl.Expr:
    """True where ``_block_issues`` finds nothing, from the values parsed once (``_<key>``)."""
    strings = [pl.col(f"_{k}" if k != "id" else "tx_id").str.len_chars().fill_null(0) > 0 for k in STRING_KEYS]
    money = [
        ~present[k]
        | (pl.col(f"_{k}").is_not_null() & (pl.col(f"_{k}").abs() < MAX_ABS_MONEY))
        | ((pl.col(k) == "undefined") & pl.lit(k not in REQUIRED_KEYS))
        for k in MONEY_KEYS
    ]
    return pl.all_horizontal(*(present[k] for k in REQUIRED_KEYS), *strings, *money)


def _block_notes(read: pl.DataFrame) -> pl.DataFrame:
    """What was odd in blocks that were still read, one row per block and kind of oddity."""
    which = pl.format("transaction {}", pl.col("tx_id"))
    lacks = _listed([pl.when(pl.col(k).is_null()).then(pl.lit(k)) for k in TX_KEYS if k not in LEGACY_KEYS], ", ")
    type_ = pl.col("_type")
    currency = pl.col("_currency")
    found = [
        (
            "unknown_key",
            pl.col("keys").is_not_null(),
            pl.format("{} has unknown key(s): {}; they were not read", which, pl.col("keys")),
        ),
        (
            "unknown_layout",
            pl.col("layout") == "other",
            pl.format(
                "{} has an unknown layout (neither full nor legacy): it lacks {}; read by key name", which, lacks
            ),
        ),
        (
            "unexpected_value",
            pl.col("type").is_not_null() & ~type_.is_in(["DEBIT", "CREDIT"]).fill_null(False),
            pl.format(
                "{} has type {}, neither DEBIT nor CREDIT: its sign was inferred from the balances",
                which,
                pl.col("type").str.head(40),
            ),
        ),
        (
            "unexpected_value",
            ~currency.str.contains(r"^[A-Z]{3}$"),
            pl.format(
                "{} has currency {}, not a 3-letter ISO code: shown with 2 decimals",
                which,
                pl.col("currency").str.head(40),
            ),
        ),
    ]
    return pl.concat([note(read.filter(when), kind, message) for kind, when, message in found])


# ---------------------------------------------------------------- notices


def _error_detail(msg: pl.Expr) -> pl.Expr:
    """'ErrorType: message | at first stack frame' from a JSON error object logged after a tab.

    The stack head (the first ``at …`` entry of ``stack``) is left out when there is none.
    """
    groups = msg.str.extract_groups(r'"errorType":"(?P<t>[^"]*)","errorMessage":"(?P<m>(?:[^"\\]|\\.)*)"')
    head = msg.str.extract(r'"stack":\[(?:"(?:[^"\\]|\\.)*",)*?"\s*(at (?:[^"\\]|\\.)*)"')
    return pl.concat_str(
        [pl.format("{}: {}", groups.struct.field("t"), groups.struct.field("m")), head],
        separator=" | ",
        ignore_nulls=True,
    )


def notices(heads: pl.DataFrame, kv: pl.DataFrame) -> pl.DataFrame:
    """One row per notice event (see ``NOTICE_KINDS``) with the fields each kind carries."""
    top = _pivot(
        kv.filter(
            (pl.col("depth") == 1)
            & pl.col("key").is_in(["userId", "subscriptionBalance", "paymentBalance", "transactionAction"])
        ),
        ["userId", "subscriptionBalance", "paymentBalance", "transactionAction"],
    )
    data = _pivot(
        kv.filter((pl.col("depth") == 2) & (pl.col("parent") == "data")),
        ["userId", "currentBalance", "transactionId"],
    ).rename({"userId": "data_userId"})
    rows = (
        heads.filter(pl.col("kind").is_in(NOTICE_KINDS))
        .join(top, on="event", how="left")
        .join(data, on="event", how="left")
    )
    msg, rest, other = pl.col("msg"), pl.col("platform_rest"), pl.col("other")
    kind = pl.col("kind")
    detail = (
        pl.when(kind.is_in(["uncaught_exception", "invoke_error"]))
        .then(_error_detail(msg))
        .when(kind == "sync_error")
        .then(pl.concat_str([msg, pl.col("next_text").str.strip_chars()], separator=" | ", ignore_nulls=True))
        .when(kind == "runtime_crash")
        .then(pl.concat_str([other, pl.col("next_text")], separator=" | ", ignore_nulls=True))
        .when(kind == "init_report")
        .then(rest.str.strip_chars().str.replace_all("\t", "; ", literal=True))
        .when(kind == "emf_metric")
        .then(other.str.extract(r'"Metrics":\[\{"Name":"([^"]*)"'))
        .when(kind == "timeout")
        .then(pl.format("Task timed out after {} seconds", pl.col("timeout_s")))
        .otherwise(msg)
    )
    return rows.select(
        "file_id",
        "line_no",
        "ts",
        "request_id",
        "kind",
        level=pl.coalesce(
            pl.col("level"),
            pl.when(kind.is_in(["runtime_crash", "timeout"])).then(pl.lit("ERROR")),
            pl.when(rest.str.contains("Status: error", literal=True)).then(pl.lit("ERROR")),
        ),
        user_id=pl.coalesce(
            unquote(pl.col("userId")),
            unquote(pl.col("data_userId")),
            other.str.extract(r'"userId":"([^"]*)"'),
        ),
        transaction_id=unquote(pl.col("transactionId")),
        action=pl.coalesce(unquote(pl.col("transactionAction")), other.str.extract(r'"action":"([^"]*)"')),
        subscription_balance=number(pl.col("subscriptionBalance")),
        payment_balance=number(pl.col("paymentBalance")),
        current_balance=number(pl.col("currentBalance")),
        detail=detail.str.head(DETAIL_CHARS),
    ).cast(NOTICE_SCHEMA)  # type: ignore[arg-type]  # polars#14468: the cast() stub rejects dict[str, DataType]


def refine_objects(heads: pl.DataFrame, kv: pl.DataFrame) -> pl.DataFrame:
    """Name the logged objects the tool knows (today: the blocked-overdraft refusal)."""
    refusals = kv.filter(
        (pl.col("depth") == 1)
        & (pl.col("key") == "message")
        & pl.col("value").str.contains("Subscriber will have a negative balance", literal=True)
    ).select("event", refused=pl.lit(True))
    return (
        heads.join(refusals, on="event", how="left")
        .with_columns(
            kind=pl.when((pl.col("kind") == "object") & pl.col("refused").fill_null(False))
            .then(pl.lit("blocked_overdraft"))
            .otherwise(pl.col("kind"))
        )
        .drop("refused")
    )


# ---------------------------------------------------------------- the batch


def unparsed(heads: pl.DataFrame, invalid: pl.DataFrame) -> pl.DataFrame:
    """Events not understood: unknown kinds, plus invalid transaction blocks with why."""
    not_known = [k for k, (_, ok) in EVENT_KINDS.items() if not ok and k != "invalid_transaction"]
    plain = heads.filter(pl.col("kind").is_in(not_known)).select(
        "file_id",
        "line_no",
        "ts",
        "kind",
        reason=pl.when(pl.col("kind") == "orphan")
        .then(pl.lit("lines before the first event of the file"))
        .when(pl.col("ts").is_null())
        .then(pl.lit("its timestamp is not a real time"))
        .otherwise(pl.lit("no known shape")),
        text=pl.col("text").str.head(DETAIL_CHARS),
    )
    blocks = invalid.join(heads.select("event", "text"), on="event").select(
        "file_id",
        "line_no",
        "ts",
        kind=pl.lit("invalid_transaction"),
        reason="reason",
        text=pl.col("text").str.head(DETAIL_CHARS),
    )
    return pl.concat([plain, blocks]).cast(UNPARSED_SCHEMA)  # type: ignore[arg-type]  # polars#14468: the cast() stub rejects dict[str, DataType]
