"""Incremental runs (--state): an archive split into days and run one day after another
reports exactly what one run over all of it reports, each transaction once, each file once."""

from __future__ import annotations

import re
import zipfile
from dataclasses import dataclass
from itertools import pairwise
from pathlib import Path
from typing import TypeVar

import polars as pl
import pytest

from calo_polars import AuditOptions, AuditResult, audit
from calo_polars.audit import state
from calo_polars.checks.plan import CheckOptions
from calo_polars.synth import Rates, SynthOptions, synthesize
from tests.harness import report

Files = TypeVar("Files", pl.Expr, pl.Series)
DAY = re.compile(r"/(\d{4}-\d{2}-\d{2})-\[")


def split_by_day(archive: Path, dest: Path, later: frozenset[str] = frozenset()) -> list[Path]:
    """One zip per day of the stream names' dates, in date order; members named in ``later``
    go to the next day's export (a file exported a day late)."""
    with zipfile.ZipFile(archive) as zf:
        logs = [n for n in zf.namelist() if DAY.search(n)]
        days = sorted({DAY.findall(n)[0] for n in logs})
        outs = [dest / f"{day}.zip" for day in days]
        zips = [zipfile.ZipFile(p, "w") for p in outs]
        for name in logs:
            i = days.index(DAY.findall(name)[0])
            zips[min(i + 1, len(days) - 1) if name in later else i].writestr(name, zf.read(name))
        for z in zips:
            z.close()
    return outs


def member(files: Files) -> Files:
    """A file's path inside its zip (the zips' own names differ between the two ways)."""
    return files.str.replace(r"^.*!", "")


def duplicates_of(result: AuditResult) -> pl.DataFrame:
    return result.with_file(result.duplicates).select("tx_id", member(pl.col("file")), "line_no")


@dataclass
class Days:
    """One run over everything, and the same archive run day after day with a state file."""

    one: AuditResult
    days: list[AuditResult]
    exports: list[Path]
    state_file: Path

    def union(self, pick: str) -> pl.DataFrame:
        frames = {
            "flags": lambda r: r.flags.select("tx_id", "check"),
            "checked": lambda r: r.checked.select("tx_id"),
            "duplicates": duplicates_of,
        }[pick]
        return pl.concat([frames(r) for r in self.days])


def run_days(one: AuditResult, exports: list[Path], state_file: Path, options: AuditOptions = AuditOptions()) -> Days:
    days = []
    for export in exports:
        result = audit([export], AuditOptions(checks=options.checks, state=str(state_file)))
        assert result.incremental is not None and result.incremental.next is not None
        state.save(result.incremental.next, state_file)  # through the file, as the CLI does
        days.append(result)
    return Days(one, days, exports, state_file)


def assert_same_as_one_run(d: Days) -> None:
    flags = d.union("flags")
    assert flags.height == flags.unique().height  # no flag reported twice
    assert flags.sort("tx_id", "check").equals(d.one.flags.select("tx_id", "check").sort("tx_id", "check"))
    checked = d.union("checked")
    assert checked["tx_id"].n_unique() == checked.height == d.one.checked.height  # each transaction by one day
    assert set(checked["tx_id"]) == set(d.one.checked["tx_id"])
    assert (
        d.union("duplicates")
        .sort("tx_id", "file", "line_no")
        .equals(duplicates_of(d.one).sort("tx_id", "file", "line_no"))
    )


# ---------------------------------------------------------------- a generated archive with faults


@pytest.fixture(scope="module")
def synth_days(tmp_path_factory: pytest.TempPathFactory) -> Days:
    root = tmp_path_factory.mktemp("incremental")
    archive = root / "all.zip"
    rates = Rates(overdraft=0.01, mismatch=0.01, flow_break=0.06, delta_anomaly=0.04, duplicate=0.05)
    synthesize(SynthOptions(users=40, days=10, seed=11, rates=rates, workers=1), archive)
    one = audit([archive])
    # The files holding the retried copies go out a day late: duplicates across days.
    late = frozenset(member(one.with_file(one.duplicates)["file"]).to_list())
    exports = split_by_day(archive, root, late)
    return run_days(one, exports, root / "state.zip")


def test_days_run_one_after_another_flag_exactly_what_one_run_flags(synth_days: Days) -> None:
    assert_same_as_one_run(synth_days)


def test_the_day_boundaries_are_really_crossed(synth_days: Days) -> None:
    """The archive exercises what the state is for (else the test above proves little)."""
    incs = [r.incremental for r in synth_days.days]
    assert sum(i.carried_flow_breaks for i in incs if i) >= 1
    assert sum(i.duplicates_of_earlier_runs for i in incs if i) >= 1
    # Delta anomalies that only the carried window could judge: fewer than min_history of
    # the user's transactions came before them in their own day's export.
    early = pl.concat(
        [
            r.checked.with_columns(before=pl.int_range(pl.len()).over("user_id", order_by=["ts", "tx_id"]))
            .filter(pl.col("delta_anomaly") & (pl.col("before") < CheckOptions().min_history))
            .select("tx_id")
            for r in synth_days.days[1:]
        ]
    )
    assert early.height >= 1


def test_a_carried_flow_break_says_it_is_the_previous_exports_last_transaction(synth_days: Days) -> None:
    for day, result in pairwise(synth_days.days):
        carried = state.carried(result.flags)
        for row in carried.iter_rows(named=True):
            assert row["check"] == "flow_break"
            assert row["reason"].startswith("the previous export's last transaction of this wallet (")
            assert row["tx_id"] in set(day.checked["tx_id"]) or row["tx_id"] in set(synth_days.one.checked["tx_id"])
            assert row["tx_id"] not in set(result.checked["tx_id"])  # reported as a flag, not again as a transaction


def test_rerunning_a_day_already_read_adds_nothing(synth_days: Days, tmp_path: Path) -> None:
    day = synth_days.exports[2]
    before = synth_days.state_file.read_bytes()
    copy = tmp_path / "state.zip"
    copy.write_bytes(before)
    run = report(tmp_path, day, args=("--state", str(copy), "--format", "json"))
    assert run.exit_code == 0, run.stderr
    s = run.summary
    with zipfile.ZipFile(day) as zf:
        assert (
            s["incremental"]["files_already_read"] == len(zf.namelist()) == s["skipped_files"]["already read (--state)"]
        )
    assert s["files"] == s["transactions"] == s["flow_breaks"] == s["duplicate_transactions"] == 0
    after = state.load(copy, CheckOptions())
    prior = state.load(synth_days.state_file, CheckOptions())
    assert after.seen.equals(prior.seen) and after.context.equals(prior.context) and after.files.equals(prior.files)


def test_cli_day_runs_write_the_state_and_say_it_was_incremental(synth_days: Days, tmp_path: Path) -> None:
    state_file = tmp_path / "nightly.state"
    runs = [
        report(tmp_path, export, args=("--state", str(state_file), "--format", "parquet"), out=f"out{i}")
        for i, export in enumerate(synth_days.exports[:3])
    ]
    assert [r.exit_code for r in runs] == [0, 0, 0]
    assert state_file.exists()
    inc = [r.summary["incremental"] for r in runs]
    assert [i["earlier_runs"] for i in inc] == [0, 1, 2]
    first = synth_days.days[0].incremental
    assert first is not None and first.next is not None
    assert inc[1]["wallets_carried_in"] == state.State({}, context=first.next.context).wallets
    flags = pl.concat([pl.read_parquet(r.out / "flags.parquet").select("tx_id", "check") for r in runs])
    expected = pl.concat([d.flags.select("tx_id", "check") for d in synth_days.days[:3]])
    assert flags.sort("tx_id", "check").equals(expected.sort("tx_id", "check"))


def test_the_workbook_says_it_was_an_incremental_run(synth_days: Days, tmp_path: Path) -> None:
    state_file = tmp_path / "s.zip"
    report(tmp_path, synth_days.exports[0], args=("--state", str(state_file), "--format", "json"), out="first")
    run = report(tmp_path, synth_days.exports[1], args=("--state", str(state_file)))
    assert run.exit_code == 0
    xml = run.workbook_xml()  # the Overview's and README's facts
    assert "Files already read (--state)" in xml and "Incremental run" in xml and "from the state file s.zip" in xml


# ---------------------------------------------------------------- the state file


def test_state_round_trip(synth_days: Days) -> None:
    last = synth_days.days[-1].incremental
    assert last is not None and last.next is not None
    built = last.next
    back = state.load(synth_days.state_file, CheckOptions())
    for table in state.TABLES:
        assert getattr(back, table).equals(getattr(built, table)), table
    assert back.header() == built.header()
    assert back.runs == len(synth_days.days)
    # per wallet its last transaction, per user at most `window` more
    assert back.wallets == synth_days.one.checked.select("user_id", "wallet_id").unique().height
    assert back.seen.height == synth_days.one.checked.height
    assert back.files.height == len(synth_days.one.files)


@pytest.mark.parametrize("damage", ["garbage", "cut", "other zip"])
def test_a_corrupt_state_is_one_line_and_exit_2(synth_days: Days, tmp_path: Path, damage: str) -> None:
    bad = tmp_path / "state.zip"
    good = synth_days.state_file.read_bytes()
    if damage == "garbage":
        bad.write_bytes(b"not a state at all\n")
    elif damage == "cut":
        bad.write_bytes(good[: len(good) // 2])
    else:
        with zipfile.ZipFile(bad, "w") as zf:
            zf.writestr("state.json", '{"format": "something else"}')
    run = report(tmp_path, synth_days.exports[-1], args=("--state", str(bad), "--format", "json"))
    assert run.exit_code == 2
    assert run.stderr.startswith(f"calo-balance: cannot read the state file {bad}") and run.stderr.count("\n") == 1
    assert not run.out.exists()


def test_changed_check_options_are_one_line_and_exit_2(synth_days: Days, tmp_path: Path) -> None:
    copy = tmp_path / "state.zip"
    copy.write_bytes(synth_days.state_file.read_bytes())
    run = report(tmp_path, synth_days.exports[-1], args=("--state", str(copy), "--window", "20", "--sigma", "2.5"))
    assert run.exit_code == 2 and run.stderr.count("\n") == 1
    assert "--sigma 3.0 (now 2.5)" in run.stderr and "--window 30 (now 20)" in run.stderr
    assert copy.read_bytes() == synth_days.state_file.read_bytes()


def test_a_failed_run_leaves_the_state_as_it_was(synth_days: Days, tmp_path: Path) -> None:
    copy = tmp_path / "state.zip"
    copy.write_bytes(synth_days.state_file.read_bytes())
    (tmp_path / "afile").write_text("x")
    run = report(
        tmp_path, synth_days.exports[-1], args=("--state", str(copy)), out="afile/sub"
    )  # outputs cannot be written
    assert run.exit_code == 2
    assert copy.read_bytes() == synth_days.state_file.read_bytes()


# ---------------------------------------------------------------- the real archive, day by day


def test_the_real_archive_day_by_day_equals_one_run(
    real_archive: Path, real_result: AuditResult, tmp_path: Path
) -> None:
    exports = split_by_day(real_archive, tmp_path)
    assert len(exports) > 100
    days = run_days(real_result, exports, tmp_path / "state.zip")
    assert_same_as_one_run(days)
    assert sum(r.incremental.carried_flow_breaks for r in days.days if r.incremental) >= 1


def test_an_export_given_out_of_date_order_reports_its_late_transactions(synth_days: Days, tmp_path: Path) -> None:
    """Days 0..3, then day 5, then day 4: day 4's transactions of a wallet day 5 already
    continued are late (counted and listed as input problems); the others are not."""
    state_file = tmp_path / "state.zip"
    for export in [*synth_days.exports[:4], synth_days.exports[5]]:
        result = audit([export], AuditOptions(state=str(state_file)))
        assert result.incremental is not None and result.incremental.late_transactions == 0
        assert result.incremental.next is not None
        state.save(result.incremental.next, state_file)
    late_day = audit([synth_days.exports[4]], AuditOptions(state=str(state_file)))
    day4, day5 = (
        synth_days.days[i].checked.select(pl.col("user_id", "wallet_id", "tx_id").cast(pl.String)) for i in (4, 5)
    )
    expected = set(
        day4.join(day5.select("user_id", "wallet_id").unique(), on=["user_id", "wallet_id"], how="semi")["tx_id"]
    )
    assert expected  # the generated days share wallets
    assert late_day.incremental is not None and late_day.incremental.late_transactions == len(expected)
    problems = [p for p in late_day.ingested.problems.items if p.kind == "late_transaction"]
    assert {re.findall(r"transaction (\S+) is older", p.message)[0] for p in problems} == expected


def test_the_flowbreaks_sheet_shows_the_breaks_into_this_export(synth_days: Days, tmp_path: Path) -> None:
    """The day that reports a flow break on the previous export's last transaction of a
    wallet lists that transaction in FlowBreaks too (first, with the file it was read from)."""
    state_file = tmp_path / "s.zip"
    for i, export in enumerate(synth_days.exports):
        run = report(tmp_path, export, args=("--state", str(state_file)), out=f"day{i}")
        assert run.exit_code == 0, run.stderr
        carried = state.carried(synth_days.days[i].flags)
        if carried.height:
            break
    else:
        pytest.fail("no day carries a flow break in: the fixture should make one")
    rows = run.sheet("FlowBreaks")
    listed = {r["tx_id"] for r in rows}
    assert set(carried["tx_id"]) <= listed
    assert listed == set(carried["tx_id"]) | set(
        synth_days.days[i].checked.filter(pl.col("flow_break"))["tx_id"].cast(pl.String)
    )
    first = rows[: carried.height]
    assert {r["tx_id"] for r in first} == set(carried["tx_id"])
    earlier_files = {f.name for f in synth_days.exports[:i]}
    assert all(any(f"{name}!" in r["file"] for name in earlier_files) for r in first)  # read by an earlier run
    assert all(synth_days.exports[i].name not in r["file"] for r in first)
