"""Incremental runs (``--state FILE``): what one audit hands the next, so a nightly run over
only the new export gives the flags a single run over everything would.

Every check looks at one wallet's or one user's own recent history, so a run needs, besides
its own transactions, only the end of each history it continues (the *context*):

* per wallet, its last transaction: the next one may start elsewhere (a flow break on the
  previous export's last transaction, which that run could not see);
* per user, the last ``window`` transactions: the 3σ window of the user's first new
  transactions.

Context rows join the new transactions of their users (``with_context``, a marker column),
the unchanged check plan runs, and ``split_context`` keeps for the report the new rows and
only the one flag that looks forward (``carried_flags``). The state also keeps the digest of
every file read (a file is never read twice) and every transaction id seen, with its time
(a copy logged again in a later export is set aside as a duplicate, ``set_aside_seen``).

The file is one zip: ``state.json`` (format version, tool version, the check options it was
built with, run count) and three zstd Parquet tables (context, seen ids, files). It is
written atomically, and only after a run that succeeded.
"""

from __future__ import annotations

import fcntl
import io
import json
import os
import zipfile
from collections.abc import Callable, Iterable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import polars as pl

from calo_polars.atomic import prepared, remove_stale, temp_affixes, write_bytes
from calo_polars.checks.plan import FLAG_COLUMNS, USER, CheckOptions, red_flags
from calo_polars.checks.windows import HISTORY, ORDER, WALLET
from calo_polars.errors import CaloError
from calo_polars.parse.duplicates import DUPLICATE_SCHEMA
from calo_polars.parse.ingest import TRANSACTIONS, Ingested, add_notes
from calo_polars.problems import notes
from calo_polars.read.sources import input_holding
from calo_polars.version import __version__

FORMAT = "calo-polars-state"
VERSION = 2  # 2: transactions carry their outcome (issue 12); a version-1 state is refused with one line

#: On a part: null on this run's rows; 1 on a context row; 2 on a wallet's last before this run.
STATE_ROW = "state_row"
#: On a part: the file a context row was logged in (not read again; its ``line_no`` is kept).
STATE_FILE = "state_file"
MARKERS = [STATE_ROW, STATE_FILE]

#: The context: the transaction columns, the file as a path (file ids are per run), and
#: whether the row is its wallet's last.
CONTEXT_SCHEMA: dict[str, pl.DataType] = {
    **{
        name: (pl.String() if dtype == pl.Categorical else dtype)
        for name, dtype in TRANSACTIONS.items()
        if name != "file_id"
    },
    "file": pl.String(),
    "wallet_last": pl.Boolean(),
}
#: Every transaction id an audit kept, and when it was logged.
SEEN_SCHEMA: dict[str, pl.DataType] = {"tx_id": pl.String(), "ts": pl.Datetime("ms", "UTC")}
#: Every file read: the blake2b digest of its stored bytes, its path, the run that read it.
FILES_SCHEMA: dict[str, pl.DataType] = {"digest": pl.Binary(), "file": pl.String(), "run": pl.UInt32()}
TABLES = {"context": CONTEXT_SCHEMA, "seen": SEEN_SCHEMA, "files": FILES_SCHEMA}


class StateError(CaloError):
    """The state file cannot be used: unreadable, damaged, or built with other check options."""


def options_record(options: CheckOptions) -> dict[str, Any]:
    """The check options as JSON values: a state is only valid with the same ones."""
    return {
        "tolerance": None if options.tolerance is None else str(options.tolerance),
        "sigma": options.sigma,
        "window": options.window,
        "min_history": options.min_history,
    }


@dataclass
class State:
    """What the runs so far leave for the next one."""

    options: dict[str, Any]  # ``options_record`` of the runs that built it
    runs: int = 0
    context: pl.DataFrame = field(default_factory=lambda: pl.DataFrame(schema=CONTEXT_SCHEMA))
    seen: pl.DataFrame = field(default_factory=lambda: pl.DataFrame(schema=SEEN_SCHEMA))
    files: pl.DataFrame = field(default_factory=lambda: pl.DataFrame(schema=FILES_SCHEMA))
    tool_version: str = __version__

    def already_read(self) -> dict[bytes, str]:
        """Digest → path of every file read by an earlier run."""
        return dict(zip(self.files["digest"].to_list(), self.files["file"].to_list(), strict=True))

    @property
    def wallets(self) -> int:
        return int(self.context["wallet_last"].sum())

    def header(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "version": VERSION,
            "tool_version": self.tool_version,
            "check_options": self.options,
            "runs": self.runs,
            "wallets": self.wallets,
            "transactions_seen": self.seen.height,
            "files_read": self.files.height,
        }


# ---------------------------------------------------------------- the file


def to_bytes(state: State) -> bytes:
    """The state file's bytes: a zip of ``state.json`` and one Parquet file per table."""
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_STORED) as zf:  # the Parquet files are compressed already
        zf.writestr("state.json", json.dumps(state.header(), indent=2, sort_keys=True))
        for name in TABLES:
            table = io.BytesIO()
            getattr(state, name).write_parquet(table, compression="zstd", statistics=False)
            zf.writestr(f"{name}.parquet", table.getvalue())
    return out.getvalue()


def save(state: State, path: str | Path) -> None:
    """Write the state atomically: a crash leaves the previous state as it was."""
    try:
        write_bytes(Path(path), to_bytes(state))
    except OSError as exc:
        raise StateError(f"cannot write the state file {path}: {exc.strerror or exc}") from None


@contextmanager
def saving(state: State | None, path: str | Path | None) -> Iterator[Callable[[], None]]:
    """Write the next state beside ``path`` now and yield what puts it in place: the run writes
    it before it commits its outputs, so a full disk fails with every earlier file as it was,
    and renames it after them (nothing left that can fail). Without a state, a no-op."""
    if state is None or path is None:
        yield lambda: None
        return
    with ExitStack() as stack:
        try:
            rename = stack.enter_context(prepared(Path(path), to_bytes(state)))
        except OSError as exc:
            raise StateError(
                f"cannot write the state file {path}: {exc.strerror or exc} (it and the outputs are as they were)"
            ) from None

        def put() -> None:
            try:
                rename()
            except OSError as exc:
                raise StateError(f"cannot replace the state file {path}: {exc.strerror or exc}") from None

        yield put


def check_place(inputs: Iterable[str | os.PathLike[str]], path: str | os.PathLike[str]) -> None:
    """Refuse a state file that is, or is inside, a local input: the next run would read it as a log."""
    item = input_holding(path, inputs)
    if item is not None:
        raise StateError(
            f"the state file {path} is inside the input {item}: keep it outside the logs "
            "(the next run would read it as a log)"
        )


def lock_path(path: str | os.PathLike[str]) -> Path:
    """The lock file beside a state file (``STATE.lock``), never removed (removing it would race)."""
    path = Path(path)
    return path.with_name(path.name + ".lock")


@contextmanager
def locked(path: str | os.PathLike[str]) -> Iterator[None]:
    """Hold an exclusive ``flock`` on the state's lock file for a whole run (read, audit, save).

    Two runs with one state file would both start from the same state and the last writer
    would win, so a later run would count one export's transactions twice: the second run
    stops at once with ``StateError`` (one line) and changes nothing.
    """
    lock = lock_path(path)
    try:
        lock.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o666)
    except OSError as exc:
        raise StateError(f"cannot open the state's lock file {lock}: {exc.strerror or exc}") from None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise StateError(
                f"another calo-balance run is using the state file {path} (it holds {lock}): "
                "wait for it to finish, then run again"
            ) from None
        except OSError as exc:
            raise StateError(f"cannot lock the state file {path} ({lock}): {exc.strerror or exc}") from None
        remove_stale(lock.parent, [temp_affixes(Path(path))])  # what a killed run's save left
        yield
    finally:
        os.close(fd)  # closing releases the lock


def load(path: str | Path, options: CheckOptions) -> State:
    """The state in ``path``, or an empty one when it does not exist yet.

    Raises ``StateError`` (one line) when it is not a state file, is damaged, is of another
    format version, or was built with other check options (its flags would not be the ones
    a single run gives).
    """
    path = Path(path)
    if not path.exists():
        return State(options_record(options))
    try:
        with zipfile.ZipFile(path) as zf:
            header = json.loads(zf.read("state.json"))
            if not isinstance(header, dict) or header.get("format") != FORMAT:
                raise ValueError("not a calo-balance state file")
            if header.get("version") != VERSION:
                raise StateError(
                    f"the state file {path} has format version {header.get('version')}, this calo-balance reads "
                    f"version {VERSION}: start a new state file (the next run then reads everything again)"
                )
            runs, tool_version = _header_fields(header)
            tables = {name: pl.read_parquet(io.BytesIO(zf.read(f"{name}.parquet"))) for name in TABLES}
        for name, schema in TABLES.items():
            if dict(tables[name].schema) != schema:
                raise ValueError(f"its {name} table has other columns")
            empty = [c for c in REQUIRED[name] if tables[name][c].null_count()]
            if empty:
                raise ValueError(f"its {name} table has empty {empty[0]} values")
    except StateError:
        raise
    except (OSError, zipfile.BadZipFile, KeyError, ValueError, pl.exceptions.PolarsError) as exc:
        raise StateError(
            f"cannot read the state file {path}: {exc} (damaged, or not a calo-balance state file)"
        ) from None
    _same_options(path, header.get("check_options"), options_record(options))
    return State(header["check_options"], runs, tool_version=tool_version, **tables)


#: Columns of the state's tables that every row must fill (the run joins and sorts on them).
REQUIRED: dict[str, list[str]] = {
    "context": ["tx_id", "wallet_last"],
    "seen": ["tx_id"],
    "files": ["digest", "file", "run"],
}


def _header_fields(header: dict[str, Any]) -> tuple[int, str]:
    """``runs`` and ``tool_version`` of a state header, type-checked (``ValueError`` says which is wrong)."""
    runs, tool_version = header.get("runs", 0), header.get("tool_version", "")
    if isinstance(runs, bool) or not isinstance(runs, int) or not 0 <= runs < 1 << 32:
        raise ValueError(f"state.json's runs is {json.dumps(runs)}, not a count")
    if not isinstance(tool_version, str):
        raise ValueError(f"state.json's tool_version is {json.dumps(tool_version)}, not a version")
    options = header.get("check_options")
    if not isinstance(options, dict) or set(options) != {"tolerance", "sigma", "window", "min_history"}:
        raise ValueError("state.json records no check options")
    return runs, tool_version


def _same_options(path: Path, built: Any, now: dict[str, Any]) -> None:
    if built == now:
        return
    if not isinstance(built, dict):
        raise StateError(f"cannot read the state file {path}: it records no check options")
    changed = [f"--{k.replace('_', '-')} {built.get(k)} (now {v})" for k, v in now.items() if built.get(k) != v]
    raise StateError(
        f"the state file {path} was built with {', '.join(changed)}: give the same check options, "
        "or start a new state file"
    )


# ---------------------------------------------------------------- a run with context


def with_context(part: pl.DataFrame, state: State) -> pl.DataFrame:
    """The part with its users' context rows added (marked ``STATE_ROW``), ready for the plan.

    A run's own rows get a null marker. Context rows have no file id (their file is not
    read in this run): ``STATE_FILE`` says which file they were logged in.
    """
    users = part.select(pl.col(USER).cast(pl.String)).unique()
    context = state.context.join(users, on=USER, how="semi")
    rows = context.select(
        pl.lit(None, pl.UInt32).alias("file_id"),
        *[c for c in TRANSACTIONS if c != "file_id"],
        pl.when(pl.col("wallet_last")).then(pl.lit(2, pl.Int8)).otherwise(pl.lit(1, pl.Int8)).alias(STATE_ROW),
        pl.col("file").alias(STATE_FILE),
    ).cast(TRANSACTIONS)  # type: ignore[arg-type]  # polars#14468: the cast() stub rejects dict[str, DataType]
    marked = part.with_columns(pl.lit(None, pl.Int8).alias(STATE_ROW), pl.lit(None, pl.String).alias(STATE_FILE))
    return pl.concat([marked, rows])


def split_context(checked: pl.LazyFrame, columns: list[str]) -> tuple[pl.LazyFrame, pl.LazyFrame | None]:
    """(this run's rows, the context rows whose flags this run reports) of a checked part.

    Without markers (no state) the part is all this run's. Only a flow break on a wallet's
    last transaction before this run is reported again: that run could not see the next one.
    """
    if STATE_ROW not in columns:
        return checked, None
    new = checked.filter(pl.col(STATE_ROW).is_null()).drop(MARKERS)
    carried = checked.filter((pl.col(STATE_ROW) == 2) & pl.col("flow_break"))
    return new, carried


def carried_flags(carried: pl.LazyFrame) -> pl.LazyFrame:
    """The flow breaks of ``split_context``'s carried rows, as flags whose reason says so."""
    flags = red_flags(carried).filter(pl.col("check") == "flow_break")
    where = carried.select("tx_id", STATE_FILE, _line=pl.col("line_no"))
    return (
        flags.join(where, on="tx_id", how="left")
        .with_columns(
            reason=pl.format(
                "the previous export's last transaction of this wallet ({}:{}): {}",
                pl.col(STATE_FILE),
                pl.col("_line"),
                pl.col("reason"),
            )
        )
        .select(FLAG_COLUMNS)
    )


def carried(flags: pl.DataFrame) -> pl.DataFrame:
    """The flags of an audit on an earlier run's transactions (``carried_flags``: no file id)."""
    return flags.filter(pl.col("file_id").is_null())


def set_aside_seen(ingested: Ingested, state: State) -> int:
    """Set aside, as duplicates, this run's transactions whose id an earlier run kept.

    The earlier copy is not read again: ``kept_ts`` says when it was logged, the other
    ``kept_*`` columns and ``fields_differ`` stay empty. Returns how many were set aside.
    """
    if state.seen.is_empty():
        return 0
    seen = state.seen.rename({"ts": "kept_ts"})
    found, parts = [], []
    for part in ingested.transaction_parts:
        again = part.join(seen, on="tx_id", how="inner")
        found.append(again)
        parts.append(part.join(seen, on="tx_id", how="anti") if again.height else part)
    ingested.transaction_parts = [p for p in parts if p.height]
    copies = pl.concat(found) if found else pl.DataFrame(schema={**TRANSACTIONS, "kept_ts": SEEN_SCHEMA["ts"]})
    if copies.is_empty():
        return 0
    rows = copies.select(*[pl.col(c) if c in copies.columns else pl.lit(None).alias(c) for c in DUPLICATE_SCHEMA]).cast(
        DUPLICATE_SCHEMA  # type: ignore[arg-type]  # polars#14468: the cast() stub rejects dict[str, DataType]
    )
    both = pl.concat([ingested.duplicates, rows])
    ingested.duplicates = both.sort("tx_id", "ts", "file_id", "line_no")
    return rows.height


# ---------------------------------------------------------------- the next state


def _from_end(group: str | list[str]) -> pl.Expr:
    """1 on the group's last row, 2 on the one before...: the rows must be in time order."""
    return pl.int_range(pl.len(), 0, -1).over(group)


def advance(state: State, checked: pl.DataFrame, ingested: Ingested, window: int) -> State:
    """The state after this run: each wallet's last transaction and each user's last
    ``window`` ones (of the old context and this run's rows), every id kept, every file read."""
    paths = ingested.files.frame().select("file_id", "file")
    new = (
        checked.select(*TRANSACTIONS)
        .join(paths, on="file_id", how="left")
        .drop("file_id")
        .cast({n: pl.String for n, d in TRANSACTIONS.items() if d == pl.Categorical})
        .with_columns(wallet_last=pl.lit(False))
    )
    rows = pl.concat([state.context.select(*CONTEXT_SCHEMA), new.select(*CONTEXT_SCHEMA)]).sort(USER, *ORDER)
    # What the checks look back at (``checks.plan``): per user and direction the last ``window``
    # applied deltas; per wallet and currency its last applied transaction and its last refused
    # block (a refused block is no part of any history, but a later move may equal it).
    applied = pl.col("outcome").fill_null("unknown") != "refused"
    direction = (
        pl.when(pl.col("type") == "DEBIT")
        .then(-1)
        .when(pl.col("type") == "CREDIT")
        .then(1)
        .when(pl.col("new_balance") > pl.col("old_balance"))
        .then(1)
        .otherwise(-1)
    )
    context = (
        rows.with_columns(_applied=applied, _direction=direction)
        .with_columns(
            wallet_last=pl.col("_applied") & (_from_end([*HISTORY, "_applied"]) == 1),
            _keep=(pl.col("_applied") & (_from_end([USER, "_applied", "_direction"]) <= window))
            | (~pl.col("_applied") & (_from_end([*HISTORY, "_applied"]) == 1)),
        )
        .filter(pl.col("_keep") | pl.col("wallet_last"))
    )
    seen = pl.concat([state.seen, checked.select(*SEEN_SCHEMA)])
    run = state.runs + 1
    files = pl.DataFrame(
        {"digest": ingested.files.digests, "file": ingested.files.paths, "run": [run] * len(ingested.files)},
        schema=FILES_SCHEMA,
    )
    return State(state.options, run, context.select(*CONTEXT_SCHEMA), seen, pl.concat([state.files, files]))


def late_transactions(prior: State, checked: pl.DataFrame, ingested: Ingested) -> int:
    """Report (input problem ``late_transaction``) and count this run's transactions logged
    before their wallet's last transaction of an earlier run: they were checked against the
    context, but what the earlier runs reported about the transactions after them is not
    revised (one run over everything would have checked them in order)."""
    last = prior.context.filter(pl.col("wallet_last")).select(*WALLET, last_ts="ts", last_id="tx_id", last_file="file")
    if last.is_empty():
        return 0
    late = (
        checked.select(
            *(pl.col(c).cast(pl.String) for c in WALLET), "ts", pl.col("tx_id").cast(pl.String), "file_id", "line_no"
        )
        .join(last, on=WALLET)
        .filter(
            (pl.col("ts") < pl.col("last_ts"))
            | ((pl.col("ts") == pl.col("last_ts")) & (pl.col("tx_id") < pl.col("last_id")))
        )
    )
    message = pl.format(
        "transaction {} is older than its wallet's last transaction of an earlier run ({}, {}): checked against it, "
        "but the earlier runs' flags after it are not revised",
        pl.col("tx_id"),
        pl.col("last_ts").dt.to_string("%Y-%m-%d %H:%M:%S%.3fZ"),
        pl.col("last_file"),
    )
    add_notes(ingested.problems, notes(late, "late_transaction", message), ingested.files)
    return late.height


@dataclass
class Incremental:
    """What an incremental run reports about itself (summary.json, the workbook's Overview)."""

    path: str
    prior: State
    next: State | None = None
    duplicates_of_earlier_runs: int = 0  # copies set aside because an earlier run kept the id
    wallets_continued: int = 0  # wallets of the state with a transaction in this run
    carried_flow_breaks: int = 0  # flow breaks on the previous export's last transaction of a wallet
    late_transactions: int = 0  # this run's transactions older than their wallet's last of an earlier run
    carried_rows: pl.DataFrame | None = None  # the rows of the carried flow breaks (``check_partition``'s fifth table)

    def finish(self, checked: pl.DataFrame, flags: pl.DataFrame, ingested: Ingested) -> None:
        """Count what this run continued, and build the next state (before any selection)."""
        carried_in = self.prior.context.filter(pl.col("wallet_last")).select(WALLET)
        active = checked.select(pl.col(c).cast(pl.String) for c in WALLET).unique()
        self.wallets_continued = carried_in.join(active, on=WALLET, how="semi").height
        self.carried_flow_breaks = carried(flags).height
        self.late_transactions = late_transactions(self.prior, checked, ingested)
        self.next = advance(self.prior, checked, ingested, int(self.prior.options["window"]))

    def describe(self, ingested: Ingested) -> dict[str, Any]:
        return {
            "state_file": Path(self.path).name,
            "earlier_runs": self.prior.runs,
            "files_already_read": len(ingested.read_before),
            "already_read_files": sorted(ingested.read_before),
            "wallets_carried_in": self.prior.wallets,
            "wallets_continued": self.wallets_continued,
            "carried_flow_breaks": self.carried_flow_breaks,
            "duplicates_of_earlier_runs": self.duplicates_of_earlier_runs,
            "late_transactions": self.late_transactions,
        }
