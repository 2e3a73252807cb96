"""The generator itself: text primitives, exactness of its own claims, format fidelity, determinism, CLI."""

from __future__ import annotations

import gzip
import json
import re
import statistics
import zipfile
from collections import Counter
from decimal import Decimal
from pathlib import Path

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
    assert {m for m in re.findall(r"currency: '(\w+)'", text)} == {"BHD", "SAR", "KWD", "AED", "QAR"}


def test_files_are_out_of_order_and_split_like_the_export(texts: dict[str, str]) -> None:
    backward = starts_late = split = 0
    batch_sizes: Counter[int] = Counter()
    for text in texts.values():
        stamps = re.findall(rf"^({TS}) ", text, re.M)
        backward += any(b < a for a, b in zip(stamps, stamps[1:]))
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
    options = dict(users=1100, days=3, seed=9)  # two shards
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
