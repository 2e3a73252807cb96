"""The generator itself: text primitives, exactness of its own claims, format fidelity, determinism, CLI."""

from __future__ import annotations

import gzip
import itertools
import json
import re
import statistics
import zipfile
from collections import Counter
from datetime import datetime, timedelta
from decimal import Decimal
from itertools import pairwise
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from hypothesis import given, settings
from hypothesis import strategies as st

from calo_polars.cli.main import cli
from calo_polars.synth import SynthOptions, synthesize
from calo_polars.synth.ledger import ANOMALY, NORMAL, Calendar, Ledger, Rates, Window
from calo_polars.synth.text import inspect_string, js_number, ulid
from tests.reference import Tx, reference_flags

TS = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z"
MEMBER = re.compile(r"^balance-sync-logs/[0-9a-f-]{36}/\d{4}-\d\d-\d\d-\[\$LATEST\][0-9a-f]{32}/000000\.gz$")


def test_numbers_print_like_node() -> None:
    assert js_number(0.1 + 0.2) == "0.30000000000000004"
    assert js_number(60.181 + 6.364 - 6.364) == "60.181000000000004"  # what the Lambda logs for 60.181
    assert js_number(8.0) == "8" and js_number(-660.0) == "-660" and js_number(-0.0) == "0"
    assert js_number(16.4) == "16.4" and js_number(0.00005) == "0.00005"


def test_strings_quote_like_util_inspect() -> None:
    assert inspect_string("plain") == "'plain'"
    assert inspect_string("it's") == '"it\'s"'
    assert inspect_string('{"gift":"it\'s"}') == '`{"gift":"it\'s"}`'
    assert inspect_string('{"a":"{\\"b\\":1}"}') == '\'{"a":"{\\\\"b\\\\":1}"}\''


def test_ulid_is_time_then_randomness_in_crockford_base32() -> None:
    import random

    value = ulid(1705266063603, random.Random(1))
    assert len(value) == 26 and value.startswith("01HM4WE") and not set(value) & set("ILOU")


def floored_sigma(history: list[int]) -> float:
    """σ with the tool's floor: at least 10 % of |mean| and 10 minor units (100 sub-units)."""
    return max(statistics.stdev(history), 0.1 * abs(statistics.fmean(history)), 100)


@settings(max_examples=300, deadline=None)
@given(
    st.lists(st.integers(-200_000, 200_000), min_size=5, max_size=30),
    st.integers(-600_000, 600_000),
    st.sampled_from([1_000, 10_000]),
)
def test_window_judges_like_the_floored_3_sigma_definition(history: list[int], x: int, sub: int) -> None:
    """NORMAL means clearly inside 3σ' or clearly below the materiality floor (one major unit,
    ``sub`` sub-units); ANOMALY clearly outside both."""
    window = Window(sub)
    for value in history:
        window.push(value)
    distance, sigma = abs(x - statistics.fmean(history)), floored_sigma(history)
    verdict = window.judge(x)
    if verdict == NORMAL:
        assert distance <= 0.8 * 3 * sigma + 1e-6 or distance <= 0.9 * sub + 1e-6
    if verdict == ANOMALY:
        assert distance >= 1.25 * 3 * sigma - 1e-6 and distance >= 1.25 * sub - 1e-6


def anomalies_by_direction(txs: list[Tx], sub: dict[str, int]) -> set[str]:
    """The tool's anomaly rule, the slow obvious way: per user and direction (the type's sign, or
    the balance's for a legacy block), the preceding ≤ 30 deltas (≥ 5), σ floored, materiality."""
    histories: dict[tuple[str, int], list[Tx]] = {}
    for t in sorted(txs, key=lambda t: (t.ts, t.tx_id)):
        delta = t.new - t.old
        sign = -1 if t.type == "DEBIT" else 1 if t.type == "CREDIT" else (1 if delta > 0 else -1)
        histories.setdefault((t.user_id, sign), []).append(t)
    out = set()
    for history in histories.values():
        deltas = [float(t.new - t.old) for t in history]
        for i, t in enumerate(history):
            previous = deltas[max(0, i - 30) : i]
            if len(previous) < 5:
                continue
            mean = statistics.fmean(previous)
            sigma = max(statistics.stdev(previous), 0.1 * abs(mean), 10 * 10 / sub[t.currency])
            distance = abs(deltas[i] - mean)
            if distance > 3 * sigma and distance >= 1.0:
                out.add(t.tx_id)
    return out


@settings(max_examples=12, deadline=None)
@given(seed=st.integers(0, 10_000), rate=st.sampled_from([0.0, 0.01, 0.05]), days=st.integers(10, 120))
def test_ledger_faults_are_exactly_what_the_reference_oracle_flags(seed: int, rate: float, days: int) -> None:
    """The generator's claims, checked by the plain-Python oracle of tests/reference.py."""
    cal = Calendar(days=days, epoch_day=19723, legacy_until=days // 5, overlap=2, lock_from=days // 2)
    ledger = Ledger(cal, Rates(rate, rate, rate, rate, 0.0), seed)
    for index in range(40):
        ledger.simulate(index)
    txs = [
        Tx(t.tx_id, t.user.id, t.user.wallet, t.t, t.type if t.layout == "full" else None, t.user.cur.code,
           Decimal(t.amount_s), Decimal(t.vat_s), round(Decimal(t.old_s), 6), round(Decimal(t.new_s), 6))
        for m in ledger.msgs if (t := m.tx) is not None
    ]  # fmt: skip
    flags = reference_flags(txs)
    subs = {m.user.cur.code: m.user.cur.sub for m in ledger.msgs}
    faults = {
        kind: {f.tx.tx_id for f in ledger.faults if f.kind == kind}
        for kind in ("mismatch", "overdraft", "flow_break", "delta_anomaly")
    }
    assert flags.mismatch == faults["mismatch"]
    assert flags.overdraft == faults["overdraft"]
    assert set(flags.flow_break) == faults["flow_break"]
    assert anomalies_by_direction(txs, subs) == faults["delta_anomaly"]


@pytest.fixture(scope="module")
def default_archive(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An archive with the default options (every feature at its default rate)."""
    return synthesize(
        SynthOptions(users=400, days=60, seed=3, workers=1, crash_rate=0.2),
        tmp_path_factory.mktemp("synth") / "logs.zip",
    ).path


@pytest.fixture(scope="module")
def texts(default_archive: Path) -> dict[str, str]:
    with zipfile.ZipFile(default_archive) as zf:
        return {n: gzip.decompress(zf.read(n)).decode("utf-8") for n in zf.namelist() if n.endswith(".gz")}


def test_zip_layout_is_the_exports(default_archive: Path) -> None:
    with zipfile.ZipFile(default_archive) as zf:
        infos = zf.infolist()
    names = [i.filename for i in infos]
    assert names == sorted(names)
    logs = [n for n in names if n.endswith(".gz")]
    assert logs and all(MEMBER.match(n) for n in logs)
    task = logs[0].split("/")[1]
    assert set(names) - set(logs) == {
        "__MACOSX/balance-sync-logs/._.DS_Store", f"__MACOSX/balance-sync-logs/{task}/._.DS_Store",
        "balance-sync-logs/.DS_Store", f"balance-sync-logs/{task}/.DS_Store",
    }  # fmt: skip
    assert {i.compress_type for i in infos} == {zipfile.ZIP_DEFLATED}
    with zipfile.ZipFile(default_archive) as zf:
        assert zf.read(logs[0])[:10] == b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\xff"


def test_text_has_every_shape_of_the_real_export(texts: dict[str, str]) -> None:
    text = "".join(texts.values())
    must = {
        "legacy block": r"INFO\tStart syncing the balance \{\n  transaction: \{\n    id: '\w{26}',\n    userId:",
        "full block": r"    type: '(DEBIT|CREDIT)',\n    source: '",
        "backtick metadata": r"    metadata: `\{.*'.*\}`,",
        "undefined metadata": r"    metadata: undefined,",
        "nested JSON escaped twice": r'\\\\"id\\\\":',
        "Arabic": r"[\u0600-\u06FF]",
        "float noise": r"Balance: -?\d+\.\d*(0000|9999)\d+,?\n",
        "4-decimal oldBalance": r"oldBalance: \d+\.\d{4},\n",
        "3-decimal BHD amount": r"currency: 'BHD',\n    amount: \d+\.\d{3},",
        "cold start": r"INIT_START Runtime Version: nodejs:\d+\.v\d+\tRuntime Version ARN: arn:aws:lambda:",
        "REPORT with Init Duration": r"\tInit Duration: \d+\.\d\d ms\t\n",
        "X-Ray line": r"\tSampled: true\t\n\n",
        "not in sync": r"ERROR\tSubscription balance and payment balance are not in sync \{\n  userId: '",
        "skip create": r"INFO\tSkipping the balance sync for create subscription, it will be synced",
        "skip create web": r"INFO\tSkipping the balance sync for create web subscription",
        "skip already synced": r"INFO\tSkipping the process, balance is already synced from other listeners",
        "already synced (short)": r"INFO\tBalance is already synced from other listeners",
        "skip flag false": r"Update Payment Balance Flag is set to false \{ transactionAction: '\w+' \}",
        "EMF discrepancy": r'\{"_aws":.*"subBalanceDiscrapancy":1,"userId"',
        "EMF negative balance": r'"negativeBalance":1,"userId"',
        "EMF sync error": r'"synBalanceError":1\}',
        "blocked overdraft": r"message: 'Subscriber will have a negative balance due to this action",
        "sync error": r"ERROR\tAn error occured while syncing the balance TypeError",
        "uncaught, undefined id": r"\tundefined\tERROR\tUncaught Exception \t\{",
        "runtime crash": r"Z Unknown application error occurred\nRuntime\.Unknown\n",
        "failed init": r"INIT_REPORT Init Duration: .*\tStatus: error\tError Type: Runtime\.ExitError",
        "invoke error": r"ERROR\tInvoke Error \t\{",
        "timeout": r"Z [0-9a-f-]{36} Task timed out after \d+\.\d\d seconds",
        "transaction lock": r"INFO\tTransaction Lock created!+ Rr \{",
        "SQS body": r'INFO\ttransaction \{"id":"',
        "nightly batch": r"T21:0\d:\d\d\.\d{3}Z\t[0-9a-f-]{36}\tINFO\tStart syncing",
    }
    missing = [name for name, pattern in must.items() if not re.search(pattern, text)]
    assert not missing
    assert set(re.findall(r"currency: '(\w+)'", text)) == {"BHD", "SAR", "KWD", "AED", "QAR"}


def test_files_are_out_of_order_and_split_like_the_export(texts: dict[str, str]) -> None:
    backward = starts_late = split = 0
    batch_sizes: Counter[int] = Counter()
    for text in texts.values():
        stamps = re.findall(rf"^({TS}) ", text, re.M)
        backward += any(b < a for a, b in pairwise(stamps))
        starts_late += not text.startswith(stamps[0] + " INIT_START")
        ids = re.findall(
            rf"^{TS} (?:{TS}\t|START RequestId: |END RequestId: |REPORT RequestId: )([0-9a-f-]{{36}})", text, re.M
        )
        runs = [i for n, i in enumerate(ids) if n == 0 or ids[n - 1] != i]
        split += len(runs) != len(set(runs))
        per_invocation = Counter(re.findall(r"\t([0-9a-f-]{36})\tINFO\tProcessing message", text))
        batch_sizes.update(per_invocation.values())
    assert backward > 10 and starts_late > 5 and split > 0
    assert batch_sizes[1] > 0 and batch_sizes[10] > 0 and max(batch_sizes) == 10


def test_same_seed_same_bytes_whatever_the_workers(tmp_path: Path) -> None:
    options: dict[str, Any] = dict(users=1100, days=3, seed=9)  # two shards
    one = synthesize(SynthOptions(**options, workers=1), tmp_path / "one.zip")
    two = synthesize(SynthOptions(**options, workers=2), tmp_path / "two.zip")
    assert one.path.read_bytes() == two.path.read_bytes()
    assert one.truth_path.read_bytes() == two.truth_path.read_bytes()
    other = synthesize(SynthOptions(**{**options, "seed": 10}, workers=1), tmp_path / "other.zip")
    assert other.path.read_bytes() != one.path.read_bytes()


def test_truth_lists_kind_transaction_and_user(tmp_path: Path) -> None:
    report = synthesize(
        SynthOptions(users=100, days=30, seed=4, workers=1, rates=Rates(0.02, 0.02, 0.02, 0.02, 0.02)),
        tmp_path / "x.zip",
    )
    truth = json.loads(report.truth_path.read_text())
    assert report.truth_path == tmp_path / "x.truth.json"
    base = {"kind", "tx_id", "user_id", "ts", "detail"}
    assert truth["faults"] and all(
        set(f) == (base | {"cause", "next_tx_id", "next_ts"} if f["kind"] == "flow_break" else base)
        for f in truth["faults"]
    )
    # no outcome fault asked for: only the ordinary outcomes, every transaction under one of them
    outcomes = truth["outcomes"]
    assert set(outcomes) == {"published", "already_synced", "refused", "failed", "skipped", "unknown"}
    assert outcomes["published"] and outcomes["already_synced"]
    assert not (outcomes["refused"] or outcomes["failed"] or outcomes["skipped"] or outcomes["unknown"])
    assert sum(map(len, outcomes.values())) == truth["archive"]["transactions"]
    assert truth["outcome_counts"] == {k: len(v) for k, v in outcomes.items()}
    assert {f["kind"] for f in truth["faults"]} == {"overdraft", "mismatch", "flow_break", "delta_anomaly", "duplicate"}
    assert truth["fault_counts"] == dict(Counter(f["kind"] for f in truth["faults"])) | {
        k: 0 for k in truth["fault_counts"] if k not in {f["kind"] for f in truth["faults"]}
    }
    assert SynthOptions.from_record(truth["options"], workers=1) == SynthOptions(
        users=100, days=30, seed=4, workers=1, rates=Rates(0.02, 0.02, 0.02, 0.02, 0.02)
    )


def test_cli_writes_archive_and_truth(tmp_path: Path) -> None:
    out = tmp_path / "s.zip"
    result = CliRunner().invoke(cli, ["synth", "-o", str(out), "--users", "20", "--days", "10", "--seed", "5"])
    assert result.exit_code == 0, result.output
    assert zipfile.is_zipfile(out) and (tmp_path / "s.truth.json").exists()
    assert "MB/s of raw log" in result.stderr and "ground truth:" in result.stderr
    clean = CliRunner().invoke(cli, ["synth", "-o", str(tmp_path / "c"), "--clean", "--users", "5", "--days", "3"])
    assert clean.exit_code == 0 and json.loads((tmp_path / "c.truth.json").read_text())["faults"] == []


def test_cli_usage_errors_are_one_line(tmp_path: Path) -> None:
    both = CliRunner().invoke(cli, ["synth", "-o", str(tmp_path / "x.zip"), "--clean", "--mismatch-rate", "0.1"])
    assert both.exit_code == 2 and "--clean sets every fault rate to 0" in both.stderr
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "file").write_text("x")
    taken = CliRunner().invoke(cli, ["synth", "-o", str(busy)])
    assert taken.exit_code == 2
    assert (
        taken.stderr.strip()
        == f"calo-balance: {busy}: exists and is not an empty folder; give a new folder, a .zip or a .gz"
    )


# ---------------------------------------------------------------- issue 12: outcomes at known places

OUTCOME_RATES = Rates(
    overdraft=0.01, mismatch=0.01, flow_break=0.01, delta_anomaly=0.01, duplicate=0.01, refused=0.03,
    sent_again=0.01, not_applied=0.03, not_in_sync=0.01, negative_amount=0.01, failed=0.01, skipped=0.01,
    unknown=0.01, logs_missing=0.05,
)  # fmt: skip
EVENT = re.compile(rf"^({TS}) (.*?)(?=^{TS} |\Z)", re.M | re.S)
APP = re.compile(rf"^{TS}\t([0-9a-f-]{{36}})\t(?:INFO|ERROR)\t", re.S)
#: The first message after a block that says what became of it (OUTCOMES-SPEC.md), by its prefix.
SAYS = {
    "SubscriptionBalanceUpdated event published": "published",
    "Balance is already synced from other listeners": "already_synced",
    "Skipping the process, balance is already synced": "already_synced",
    "{\n  message: 'Subscriber will have a negative balance": "refused",
    "An error occured while syncing the balance": "failed",
    "Skipping the process, Update Payment Balance Flag is set to false": "skipped",
}


def outcomes_from_text(texts: dict[str, str]) -> tuple[dict[str, str], set[str], list[str]]:
    """Each block's outcome and the blocks followed by a not-in-sync error, read from the raw
    text the slow obvious way (group by requestId per file, order by time then position; the
    first logged copy of a retried block is the one kept), and every event's timestamp: shares
    nothing with the tool's parser or the generator's state."""
    copies: list[tuple[str, str, int, str, bool]] = []  # (ts, file, position, tx id, not-in-sync after)
    said: dict[tuple[str, int], str] = {}
    refused: set[str] = set()
    stamps: list[str] = []
    for name, text in texts.items():
        by_request: dict[str, list[tuple[str, int, str]]] = {}
        for pos, m in enumerate(EVENT.finditer(text)):
            stamps.append(m.group(1))
            app = APP.match(m.group(2))
            if app:
                by_request.setdefault(app.group(1), []).append((m.group(1), pos, m.group(2)[app.end() :]))
        for events in by_request.values():
            current: list | None = None
            for ts, pos, body in sorted(events):
                if body.startswith("Processing message"):
                    current = None
                elif body.startswith("Start syncing the balance {"):
                    tx_id = re.search(r"\n    id: '(\w+)'", body).group(1)  # type: ignore[union-attr]
                    current = [ts, name, pos, tx_id, False]
                    copies.append(current)  # type: ignore[arg-type]
                elif current is not None and body.startswith("Subscription balance and payment balance are not"):
                    current[4] = True
                elif current is not None and (name, current[2]) not in said:
                    outcome = next((o for prefix, o in SAYS.items() if body.startswith(prefix)), None)
                    if outcome is not None:
                        said[(name, current[2])] = outcome
                if "negative balance due to this action" in body:
                    refused.update(re.findall(r"transactionId: '(\w+)'", body))
    outcome_of: dict[str, str] = {}
    not_in_sync: set[str] = set()
    for _ts, name, pos, tx_id, nis in sorted(copies):
        if tx_id in outcome_of:
            continue  # a later copy (an SQS retry) is set aside
        outcome_of[tx_id] = "refused" if tx_id in refused else said.get((name, pos), "unknown")
        if nis:
            not_in_sync.add(tx_id)
    return outcome_of, not_in_sync, stamps


@pytest.fixture(scope="module")
def outcome_archive(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, str], dict]:
    report = synthesize(
        SynthOptions(users=300, days=40, seed=81, workers=1, rates=OUTCOME_RATES, out_of_order=0.6, split=0.5),
        tmp_path_factory.mktemp("outcomes") / "logs.zip",
    )
    with zipfile.ZipFile(report.path) as zf:
        texts = {n: gzip.decompress(zf.read(n)).decode("utf-8") for n in zf.namelist() if n.endswith(".gz")}
    return texts, json.loads(report.truth_path.read_text(encoding="utf-8"))


def test_truth_outcomes_are_what_the_raw_text_says(outcome_archive: tuple[dict[str, str], dict]) -> None:
    """The ground truth's outcomes and not-in-sync marks, recomputed from the text alone."""
    texts, truth = outcome_archive
    outcome, not_in_sync, _ = outcomes_from_text(texts)
    for name, ids in truth["outcomes"].items():
        assert len(ids) >= 5, name
        assert set(ids) == {i for i, o in outcome.items() if o == name}, name
    assert set(truth["not_in_sync_after"]) == not_in_sync


def test_truth_silences_are_the_gaps_between_events(outcome_archive: tuple[dict[str, str], dict]) -> None:
    """Every silence of 24 h or more between two consecutive events of the whole export, exactly."""
    texts, truth = outcome_archive
    _, _, stamps = outcomes_from_text(texts)
    times = sorted(datetime.strptime(s, "%Y-%m-%dT%H:%M:%S.%fZ") for s in stamps)
    gaps = [[a, b] for a, b in itertools.pairwise(times) if b - a >= timedelta(hours=24)]
    assert truth["missing_days"] and len(gaps) >= 1
    assert [[datetime.strptime(s, "%Y-%m-%dT%H:%M:%S.%fZ") for s in g] for g in truth["silences"]] == gaps


def test_truth_flow_break_causes_follow_the_definitions(outcome_archive: tuple[dict[str, str], dict]) -> None:
    """Each flow break's cause is the first that holds, checked on the blocks as logged."""
    texts, truth = outcome_archive
    block = re.compile(
        r"\n    id: '(\w+)',.*?\n    amount: (-?[\d.]+),\n    vat: [\d.]+,\n    oldBalance: (-?[\d.e-]+),\n"
        r"    newBalance: (-?[\d.e-]+)\n",
        re.S,
    )
    logged = {m.group(1): tuple(Decimal(v) for v in m.groups()[1:]) for t in texts.values() for m in block.finditer(t)}
    outcome, not_in_sync, _ = outcomes_from_text(texts)
    silences = [[datetime.strptime(s, "%Y-%m-%dT%H:%M:%S.%fZ") for s in g] for g in truth["silences"]]
    breaks = [f for f in truth["faults"] if f["kind"] == "flow_break"]
    assert {f["cause"] for f in breaks} >= {"sent_again", "not_applied", "after_not_in_sync", "logs_missing"}
    for f in breaks:
        (amount_a, old_a, new_a), (amount_b, old_b, _) = logged[f["tx_id"]], logged[f["next_tx_id"]]
        assert abs(old_b - new_a) > Decimal("0.0005") and outcome[f["next_tx_id"]] != "refused"
        a_ts, b_ts = (datetime.strptime(s, "%Y-%m-%dT%H:%M:%S.%fZ") for s in (f["ts"], f["next_ts"]))
        if abs(old_b - old_a) < Decimal("0.001"):
            want = "sent_again" if abs(amount_b - amount_a) < Decimal("0.001") else "not_applied"
        elif f["tx_id"] in not_in_sync:
            want = "after_not_in_sync"
        elif any(a_ts <= lo and hi <= b_ts for lo, hi in silences):
            want = "logs_missing"
        else:
            want = "unexplained"
        if f["cause"] != "refused_applied_later":
            assert f["cause"] == want, f


def test_a_refusal_after_its_block_has_the_real_archives_shape(outcome_archive: tuple[dict[str, str], dict]) -> None:
    texts, truth = outcome_archive
    refusal = re.compile(
        rf"newBalance: (-[\d.]+)\n  \}}\n\}}\n\n({TS}) \2\t[0-9a-f-]{{36}}\tINFO\t\{{\n"
        r"  message: 'Subscriber will have a negative balance due to this action, the process will terminate\.',\n"
        r"  data: \{\n    transactionId: '(\w{26})',\n    userId: '[0-9a-f-]{36}',\n    currentBalance: -?[\d.]+,\n"
        r"    newBalance: (-[\d.]+)\n  \}\n\}\n\n"
    )
    found = [m for t in texts.values() for m in refusal.finditer(t)]
    assert found and all(m.group(1) == m.group(4) for m in found)
    assert {m.group(3) for m in found} <= set(truth["outcomes"]["refused"])


def test_the_real_archive_refuses_a_logged_block_in_that_shape(real_archive: Path) -> None:
    """The template was copied from the real export: every refusal that follows its block there
    reads transactionId, userId, currentBalance, newBalance, in that order."""
    shape = re.compile(
        r"\{\n  message: 'Subscriber will have a negative balance due to this action, the process will terminate\.',\n"
        r"  data: \{\n    transactionId: '\w{26}',\n    userId: '[\w-]+',\n    currentBalance: -?[\d.]+,\n"
        r"    newBalance: -[\d.]+\n  \}\n\}"
    )
    with zipfile.ZipFile(real_archive) as zf:
        text = "".join(
            gzip.decompress(zf.read(n)).decode("utf-8")
            for n in zf.namelist()
            if n.endswith(".gz") and "MACOSX" not in n
        )
    assert len(shape.findall(text)) >= 8


def test_negative_amounts_are_debits_that_raise_the_balance(outcome_archive: tuple[dict[str, str], dict]) -> None:
    texts, truth = outcome_archive
    text = "".join(texts.values())
    wanted = {f["tx_id"] for f in truth["faults"] if f["kind"] == "negative_amount"}
    found = set(re.findall(r"id: '(\w+)',\n    type: 'DEBIT',(?:\n.*?){7}\n    amount: -[\d.]+,", text))
    assert len(wanted) >= 5 and found == wanted


def test_cli_takes_the_outcome_rates(tmp_path: Path) -> None:
    out = tmp_path / "o.zip"
    args = ["synth", "-o", str(out), "--users", "30", "--days", "20", "--seed", "6", "--refused-rate", "0.05",
            "--sent-again-rate", "0.02", "--not-applied-rate", "0.05", "--not-in-sync-rate", "0.02",
            "--negative-amount-rate", "0.02", "--failed-rate", "0.02", "--skipped-rate", "0.02",
            "--unknown-rate", "0.02", "--logs-missing-rate", "0.1"]  # fmt: skip
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    assert "outcomes: " in result.stderr and "flow breaks by cause: " in result.stderr
    truth = json.loads((tmp_path / "o.truth.json").read_text())
    assert truth["options"]["rates"]["refused"] == 0.05 and truth["options"]["rates"]["logs_missing"] == 0.1
    assert truth["outcome_counts"]["refused"] > 0
    both = CliRunner().invoke(cli, ["synth", "-o", str(tmp_path / "x.zip"), "--clean", "--skipped-rate", "0.1"])
    assert both.exit_code == 2 and "do not also give --skipped-rate" in both.stderr


def test_missing_days_are_silent_across_shards_and_workers(tmp_path: Path) -> None:
    """A missing day is missing for every shard (1,100 users: two shards): the silence is found
    over the whole export, and the archive and truth are the same bytes whatever the workers."""
    rates = Rates(flow_break=0.01, refused=0.02, not_applied=0.02, logs_missing=0.3)
    one = synthesize(SynthOptions(users=1100, days=8, seed=12, rates=rates, workers=1), tmp_path / "one.zip")
    two = synthesize(SynthOptions(users=1100, days=8, seed=12, rates=rates, workers=2), tmp_path / "two.zip")
    assert one.path.read_bytes() == two.path.read_bytes()
    assert one.truth_path.read_bytes() == two.truth_path.read_bytes()
    truth = json.loads(one.truth_path.read_text())
    assert truth["missing_days"] and len(truth["silences"]) >= 1
    for day in truth["missing_days"]:  # each silence covers a missing day whole
        assert any(lo < day + "T00:00:00.000Z" and hi > day + "T23:59:59.999Z" for lo, hi in truth["silences"])
    assert truth["flow_break_causes"]["logs_missing"] > 0
