"""Stage 2 leaves the notices, invocations, sample and file index in the store: same outputs.

``report --from`` reads those tables only as far as each output asks (``parse.table.Table``,
``store.StoredFiles``): summary.json's counts from a few columns, a sheet's rows filtered as
they are read, paths for the files a frame names. Here a store run's result is compared with
the same result whose tables are held in memory (as a one-shot run holds them), and with the
one-shot run itself, on an export with every fault and signal (silences, not-in-sync errors
with negative balances, skipped syncs, Lambda errors): every output file must be the same.
The silences, computed from one span per day instead of every invocation, are checked
against every span on random spans.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from calo_polars import AuditOptions, audit
from calo_polars.audit.result import AuditResult
from calo_polars.audit.selection import Selection
from calo_polars.checks.silences import silences
from calo_polars.parse.events import FileIndex
from calo_polars.parse.table import Table
from calo_polars.partitioned.merge import audit_store
from calo_polars.partitioned.store import StoredFiles, ingest_into
from calo_polars.report.outputs import write_outputs
from calo_polars.report.tables import negative_payment_balances, negative_payment_counts
from calo_polars.synth import Rates, SynthOptions, synthesize
from tests.test_streamed import FORMATS, assert_same_files

RATES = Rates(
    overdraft=0.01, mismatch=0.01, flow_break=0.01, delta_anomaly=0.01, duplicate=0.02, refused=0.01,
    sent_again=0.01, not_applied=0.02, not_in_sync=0.02, negative_amount=0.01, failed=0.01, skipped=0.02,
    unknown=0.01, logs_missing=0.05,
)  # fmt: skip


@pytest.fixture(scope="module")
def signals(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An export with every fault and every Lambda signal, and days missing (silences)."""
    options = SynthOptions(users=120, days=30, seed=21, workers=1, rates=RATES, error_rate=0.02, crash_rate=0.2)
    return synthesize(options, tmp_path_factory.mktemp("signals") / "logs.zip").path


@pytest.fixture(scope="module")
def store(signals: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("store") / "store"
    ingest_into([signals], path, partitions=5)
    return path


def held(result: AuditResult) -> AuditResult:
    """``result`` with its notices, invocations and file index read whole into memory."""
    ing = result.ingested
    files = ing.files.frame()
    index = FileIndex(files["file"].to_list(), files["stored_bytes"].to_list(), files["raw_bytes"].to_list())
    kept = replace(ing, notice_table=Table.of(ing.notices), invocation_table=Table.of(ing.invocations), files=index)
    return replace(result, ingested=kept)


@pytest.mark.parametrize(
    "selection",
    [Selection(), Selection(since=datetime(2024, 1, 10, tzinfo=UTC), until=datetime(2024, 1, 25, tzinfo=UTC))],
    ids=["all", "period"],
)
def test_tables_left_in_the_store_give_the_outputs_of_held_ones(
    signals: Path, store: Path, tmp_path: Path, selection: Selection
) -> None:
    result = audit_store(store, selection=selection, part_rows=300)
    ing = result.ingested
    if not selection.active:  # a selection holds the few rows it keeps
        assert ing.notice_table.held is None and ing.invocation_table.held is None
    assert isinstance(ing.files, StoredFiles) and ing.files.nbytes() < 20_000  # no path held
    assert ing.notice_table.count(pl.col("kind") == "not_in_sync") > 0
    assert ing.notice_table.count(pl.col("payment_balance") < 0) > 0  # NegativePaymentBalance has error rows
    flow_breaks = result.flags.filter(pl.col("check") == "flow_break")
    assert (flow_breaks["cause"] == "logs_missing").any()  # the silences were found from the stored spans
    negative = negative_payment_balances(result)  # summary.json counts it without the table
    assert negative_payment_counts(result) == (negative.height, negative["user_id"].drop_nulls().n_unique())
    if not selection.active:
        assert negative.filter(pl.col("logged_in") == "not-in-sync error").height > 0  # errors no block echoed
    write_outputs(result, tmp_path / "kept", FORMATS)
    write_outputs(held(result), tmp_path / "held", FORMATS)
    assert_same_files(tmp_path / "held", tmp_path / "kept")
    one = audit([signals], AuditOptions(selection=selection))
    write_outputs(one, tmp_path / "one", FORMATS)
    assert_same_files(tmp_path / "one", tmp_path / "kept")
    result.close()


def test_a_stored_table_reads_as_the_held_one(store: Path) -> None:
    """Filters, counts and the whole table of a stored table equal the held table's, in order."""
    result = audit_store(store)
    stored = result.ingested.notice_table
    whole = stored.frame()
    mine = Table.of(whole)
    assert whole.equals(whole.sort("file_id", "line_no"))
    for where in [pl.col("kind") == "not_in_sync", pl.col("user_id").is_null(), pl.col("level") == "ERROR"]:
        assert stored.filter(where).equals(mine.filter(where))
        assert stored.count(where) == mine.count(where)
    files = result.ingested.files
    ids = pl.Series([3, 0, 3, len(files) - 1, None], dtype=pl.UInt32)
    assert files.frame_of(ids).equals(files.frame().filter(pl.col("file_id").is_in([0, 3, len(files) - 1])))
    result.close()


def _every_span(spans: pl.DataFrame, at_least: timedelta) -> pl.DataFrame:
    """The silences from every span (the rule before the reduction to one span a stretch)."""
    ordered = spans.select("first_ts", "last_ts").drop_nulls().sort("first_ts")
    return (
        ordered.with_columns(start=pl.col("last_ts").cum_max().shift(1), end=pl.col("first_ts"))
        .filter((pl.col("end") - pl.col("start")) >= at_least)
        .select("start", "end")
    )


@settings(max_examples=300, deadline=None)
@given(
    st.lists(st.tuples(st.integers(0, 20 * 24 * 60), st.integers(0, 30 * 60), st.booleans()), min_size=0, max_size=40),
    st.sampled_from([timedelta(hours=24), timedelta(hours=6), timedelta(minutes=1)]),
)
def test_silences_from_one_span_a_stretch_equal_every_span(
    spans: list[tuple[int, int, bool]], at_least: timedelta
) -> None:
    base = datetime(2024, 1, 1, tzinfo=UTC)
    first = [base + timedelta(minutes=m) for m, _, _ in spans]
    last = [None if gone else f + timedelta(minutes=d) for f, (_, d, gone) in zip(first, spans, strict=True)]
    frame = pl.DataFrame(
        {"first_ts": first, "last_ts": last},
        schema={"first_ts": pl.Datetime("ms", "UTC"), "last_ts": pl.Datetime("ms", "UTC")},
    )
    assert silences(frame, at_least).equals(_every_span(frame, at_least))
    assert silences(frame.lazy(), at_least).equals(_every_span(frame, at_least))
