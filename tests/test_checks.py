"""Each check on a few literal rows with a known answer, then properties on generated ledgers."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from calo_polars.checks.plan import CheckOptions, currency_totals, per_user, red_flags, with_checks
from calo_polars.parse.records import TRANSACTION_SCHEMA
from tests.reference import Tx, reference_flags, reference_roll_forward, tolerance

T0 = datetime(2024, 1, 1, 21, tzinfo=UTC)
D = Decimal


def ledger(*rows: tuple, user: str = "u1", currency: str = "BHD") -> pl.DataFrame:
    """Rows of (type, amount, vat, old, new[, seconds]) for one user, one second apart."""
    data = []
    for i, row in enumerate(rows):
        type_, amount, vat, old, new, *rest = row
        data.append(
            {
                "file_id": 0,
                "line_no": i + 1,
                "ts": T0 + timedelta(seconds=rest[0] if rest else i),
                "request_id": f"r{i}",
                "tx_id": f"{user}-{i:04d}",
                "user_id": user,
                "wallet_id": f"wallet#{user}",
                "currency": currency,
                "type": type_,
                "layout": "full" if type_ else "legacy",
                "amount": D(str(amount)),
                "vat": D(str(vat)),
                "old_balance": D(str(old)),
                "new_balance": D(str(new)),
            }
        )
    return (
        pl.DataFrame(data)
        .with_columns([pl.lit(None).alias(c) for c in TRANSACTION_SCHEMA if c not in data[0]])
        .select(list(TRANSACTION_SCHEMA))
        .cast(TRANSACTION_SCHEMA)
    )  # type: ignore[arg-type]


def check(frame: pl.DataFrame, options: CheckOptions = CheckOptions()) -> pl.DataFrame:
    return with_checks(frame.lazy(), options).collect()


# ---------------------------------------------------------------- mismatch


def test_debit_matching_amount_is_not_a_mismatch() -> None:
    out = check(ledger(("DEBIT", 4.5, 0, 36, 31.5)))
    assert out.select("delta", "expected_delta", "vat_applied", "mismatch").row(0) == (
        D("-4.5"),
        D("-4.5"),
        False,
        False,
    )


def test_debit_off_by_half_a_dinar_is_a_mismatch_with_its_difference() -> None:
    out = check(ledger(("DEBIT", 8, 0, 36, 27.5)))
    assert out.select("mismatch", "vat_applied", "mismatch_diff").row(0) == (True, None, D("-0.5"))


def test_credit_net_of_vat_matches_and_says_vat_applied() -> None:
    out = check(ledger(("CREDIT", 55, 5, 730, 780)))
    assert out.select("mismatch", "vat_applied", "expected_delta_net").row(0) == (False, True, D("50"))


def test_tolerance_is_inclusive_at_half_a_fils() -> None:
    # oldBalance carries 4 decimals, newBalance was rounded to 3 by the Lambda: 0.0005 apart.
    ok = check(ledger(("DEBIT", 18.6, 0, "1997.8645", "1979.264")))
    off = check(ledger(("DEBIT", 18.6, 0, "1997.8645", "1979.263")))
    assert not ok["mismatch"][0] and off["mismatch"][0]


def test_two_decimal_currency_has_half_a_cent_tolerance() -> None:
    assert not check(ledger(("DEBIT", 10, 0, 100, "90.004"), currency="SAR"))["mismatch"][0]
    assert check(ledger(("DEBIT", 10, 0, 100, "90.006"), currency="SAR"))["mismatch"][0]


def test_tolerance_override() -> None:
    out = check(ledger(("DEBIT", 8, 0, 36, 27.5)), CheckOptions(tolerance=D("0.5")))
    assert not out["mismatch"][0]


def test_legacy_unchanged_balance_with_an_amount_is_a_mismatch() -> None:
    out = check(ledger((None, 8, 0, 100, 100)))
    assert out.select("amount_sign", "sign_source", "mismatch").row(0) == (-1, "inferred", True)


# ---------------------------------------------------------------- overdraft


def test_overdraft_before_after_and_cross() -> None:
    out = check(
        ledger(("DEBIT", 8, 0, 5, -3), ("DEBIT", 8, 0, -3, -11), ("CREDIT", 20, 0, -11, 9), ("DEBIT", 9, 0, 9, 0))
    )
    assert out.select("overdraft_before", "overdraft_after", "overdraft_cross", "overdraft").rows() == [
        (False, True, True, True),
        (True, True, False, True),
        (True, False, False, True),
        (False, False, False, False),
    ]


def test_a_balance_within_tolerance_of_zero_is_not_an_overdraft() -> None:
    assert not check(ledger(("DEBIT", "8.0004", 0, 8, "-0.0004")))["overdraft"][0]


# ---------------------------------------------------------------- flow break


def test_flow_break_carries_next_old_and_gap() -> None:
    out = check(ledger(("DEBIT", 4.5, 0, 36, 31.5), ("DEBIT", 8, 0, 36, 28), ("DEBIT", 8, 0, 28, 20)))
    assert out.select("next_old", "flow_break", "flow_gap").rows() == [
        (D("36"), True, D("4.5")),
        (D("28"), False, None),
        (None, False, None),
    ]


def test_flow_order_is_time_then_id_not_file_position() -> None:
    # Logged out of order and two at the same millisecond: time, then id, decides.
    out = check(ledger(("DEBIT", 8, 0, 20, 12, 5), ("DEBIT", 8, 0, 36, 28, 1), ("DEBIT", 8, 0, 28, 20, 5)))
    assert out["tx_id"].to_list() == ["u1-0001", "u1-0000", "u1-0002"]
    # u1-0000 (20 → 12) sorts before u1-0002 (28 → 20) at the same time, so two breaks appear
    assert out.select("tx_id", "flow_break").rows() == [("u1-0001", True), ("u1-0000", True), ("u1-0002", False)]


def test_flow_never_crosses_users_or_wallets() -> None:
    both = pl.concat([ledger(("DEBIT", 8, 0, 36, 28), user="a"), ledger(("DEBIT", 8, 0, 50, 42), user="b")])
    out = check(both)
    assert out["next_old"].to_list() == [None, None]
    assert not out["flow_break"].any()


# ---------------------------------------------------------------- delta anomaly


def nightly(n: int, amount: float = 8) -> list[tuple]:
    balance = 1000
    rows = []
    for _ in range(n):
        rows.append(("DEBIT", amount, 0, balance, balance - amount))
        balance -= amount
    return rows


def test_a_big_debit_after_regular_ones_is_an_anomaly() -> None:
    rows = nightly(6)
    old = rows[-1][4]
    out = check(ledger(*rows, ("DEBIT", 120, 0, old, old - 120)))
    assert out["delta_anomaly"].to_list() == [False] * 6 + [True]


def test_nothing_is_judged_before_min_history() -> None:
    rows = nightly(4)
    old = rows[-1][4]
    out = check(ledger(*rows, ("DEBIT", 120, 0, old, old - 120)))
    assert not out["delta_anomaly"].any()
    assert out["delta_mean"].to_list()[:5] == [None] * 5


def test_window_only_looks_back_window_events() -> None:
    # 10 debits of 50, then 6 debits of 8, then a debit of 50: with window 6 the 50s are out of view.
    rows = nightly(10, 50)
    bal = rows[-1][4]
    for _ in range(6):
        rows.append(("DEBIT", 8, 0, bal, bal - 8))
        bal -= 8
    rows.append(("DEBIT", 50, 0, bal, bal - 50))
    assert check(ledger(*rows), CheckOptions(window=6))["delta_anomaly"][-1]
    assert not check(ledger(*rows), CheckOptions(window=30))["delta_anomaly"][-1]


def test_debits_and_credits_are_judged_apart() -> None:
    # a top-up between nightly deductions is no anomaly of the deductions, nor they of it
    rows = nightly(6)
    bal = rows[-1][4]
    rows.append(("CREDIT", 300, 0, bal, bal + 300))
    rows += [("DEBIT", 8, 0, bal + 300 - 8 * i, bal + 300 - 8 * (i + 1)) for i in range(3)]
    out = check(ledger(*rows))
    assert not out["delta_anomaly"].any()
    assert out["delta_mean"][-1] == pytest.approx(-8.0)  # the credit is not in the debits' mean


def test_a_user_whose_deltas_never_vary_is_not_flagged_for_a_fils() -> None:
    rows = nightly(10, 4.5)
    bal = rows[-1][4]
    out = check(ledger(*rows, ("DEBIT", 4.501, 0, bal, bal - 4.501)))
    assert not out["delta_anomaly"].any()
    assert out["delta_sigma"][-1] > 0  # σ has its floor: never 0, never an infinite distance


def test_an_anomaly_under_one_unit_is_not_material() -> None:
    rows = nightly(10, 0.1)
    bal = rows[-1][4]
    out = check(ledger(*rows, ("DEBIT", 0.9, 0, bal, bal - 0.9)))
    assert not out["delta_anomaly"].any()


# ---------------------------------------------------------------- flags, users, totals


def test_red_flags_have_severity_and_plain_reasons() -> None:
    lf = with_checks(ledger(("DEBIT", 4.5, 0, 36, 31.5), ("DEBIT", 8, 0, 36, 27.5)).lazy())
    flags = red_flags(lf).collect()
    assert flags.select("severity", "check", "cause", "needs_person", "reason").rows() == [
        (
            "high",
            "mismatch",
            "unexplained",
            True,
            "DEBIT 8.000: balance moved -8.500 (from 36.000 to 27.500) but expected -8.000: off by -0.500",
        ),
        (
            "low",  # the next transaction starts from this one's oldBalance: it was never applied
            "flow_break",
            "not_applied",
            False,
            "newBalance 31.500 but next oldBalance 36.000: the balance rose by 4.500 between the two transactions",
        ),
    ]
    assert flags["what_happened"].to_list() == [
        "The balance moved -8.500 but the block announced -8.000: no pattern explains the -0.500 difference.",
        "Not applied (?): the next transaction starts from this one's oldBalance 36.000.",
    ]


def test_per_user_and_totals_never_mix_currencies() -> None:
    both = pl.concat(
        [
            ledger(("DEBIT", 8, 0, 36, 28), ("CREDIT", 10, 0, 28, 38), user="a"),
            ledger(("DEBIT", 100, 0, 500, 400), user="b", currency="SAR"),
        ]
    )
    lf = with_checks(both.lazy())
    users, totals = pl.collect_all([per_user(lf), currency_totals(lf)])
    a = users.filter(pl.col("user_id") == "a").row(0, named=True)
    assert (a["opening_balance"], a["closing_balance"], a["debits"], a["credits"]) == (D(36), D(38), D(8), D(10))
    assert totals.select("currency", "debit_total", "credit_total").rows() == [
        ("BHD", D(8), D(10)),
        ("SAR", D(100), D(0)),
    ]


# ---------------------------------------------------------------- properties on generated ledgers


@st.composite
def ledgers(draw: st.DrawFn) -> pl.DataFrame:
    """Several users' ledgers: mostly consistent, with drawn faults and equal timestamps."""
    frames = []
    for u in range(draw(st.integers(1, 5))):
        currency = draw(st.sampled_from(["BHD", "SAR", "KWD"]))
        balance = D(draw(st.integers(-50, 500)))
        rows = []
        for i in range(draw(st.integers(1, 40))):
            type_ = draw(st.sampled_from(["DEBIT", "CREDIT", None]))
            amount = D(draw(st.integers(0, 20000))) / 1000
            vat = draw(st.sampled_from([D(0), (amount / 11).quantize(D("0.001"))]))
            moved = amount - vat if draw(st.booleans()) else amount
            down = type_ == "DEBIT" or (type_ is None and draw(st.booleans()))
            new = balance - moved if down else balance + moved
            new += draw(st.sampled_from([D(0)] * 8 + [D("0.0004"), D("0.7")]))  # noise and faults
            old = balance + draw(st.sampled_from([D(0)] * 8 + [D("0.0005"), D(3)]))  # breaks in the flow
            rows.append((type_, amount, vat, old, new, draw(st.integers(0, i + 1))))
            balance = new
        frames.append(ledger(*rows, user=f"user{u}", currency=currency))
    return pl.concat(frames)


def as_reference(frame: pl.DataFrame) -> list[Tx]:
    return [
        Tx(
            r["tx_id"],
            r["user_id"],
            r["wallet_id"],
            r["ts"],
            r["type"],
            r["currency"],
            r["amount"],
            r["vat"],
            r["old_balance"],
            r["new_balance"],
        )
        for r in frame.iter_rows(named=True)
    ]


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(ledgers())
def test_checks_agree_with_a_plain_python_loop(frame: pl.DataFrame) -> None:
    out = check(frame)
    expected = reference_flags(as_reference(frame))
    assert set(out.filter("mismatch")["tx_id"]) == expected.mismatch
    assert set(out.filter("overdraft")["tx_id"]) == expected.overdraft
    assert dict(out.filter("flow_break").select("tx_id", "flow_gap").iter_rows()) == expected.flow_break
    assert set(out.filter("delta_anomaly")["tx_id"]) == expected.anomaly


@pytest.mark.parametrize("parts", [2, 3, 7])
@settings(
    max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture]
)
@given(frame=ledgers())
def test_any_partition_of_users_gives_the_same_flags(parts: int, frame: pl.DataFrame) -> None:
    whole = check(frame)
    bucket = frame["user_id"].hash(seed=0) % parts
    pieces = [check(frame.filter(bucket == b)) for b in range(parts)]
    merged = pl.concat([p for p in pieces if p.height]).sort("user_id", "ts", "tx_id")
    assert merged.equals(whole)


@pytest.mark.parametrize("two_wallets", [False, True])
@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture]
)
@given(frame=ledgers())
def test_roll_forward_agrees_with_a_plain_python_loop_and_telescopes(two_wallets: bool, frame: pl.DataFrame) -> None:
    if two_wallets:  # alternate transactions between two wallets of the user
        frame = frame.with_columns(wallet_id=pl.format("{}-{}", pl.col("user_id"), pl.col("line_no") % 2))
    users = per_user(with_checks(frame.lazy())).collect()
    expected = reference_roll_forward(as_reference(frame))
    for u in users.iter_rows(named=True):
        rf = expected[u["user_id"]]
        got = (
            u["opening_balance"],
            u["credits"],
            u["debits"],
            u["closing_balance"],
            u["flow_gaps"],
            u["mismatch_diffs"],
        )
        assert got == (rf.opening, rf.credits, rf.debits, rf.closing, rf.flow_gaps, rf.mismatch_diffs)
        assert u["expected_closing"] == u["opening_balance"] + u["credits"] - u["debits"]
        assert u["difference"] == u["closing_balance"] - u["expected_closing"]
        # the difference telescopes exactly; what the checks do not explain is within-tolerance rounding
        assert u["difference"] == u["flow_gaps"] + u["mismatch_diffs"] + u["rounding"]
        assert abs(u["rounding"]) <= 2 * u["transactions"] * tolerance(u["currency"])
        assert u["unreconciled"] == (abs(u["difference"]) > tolerance(u["currency"]))


def test_roll_forward_counts_net_of_vat_moves_and_gross_mismatches() -> None:
    lf = with_checks(
        ledger(
            ("DEBIT", 4.5, 0, 36, 31.5),
            ("DEBIT", 8, 0, 36, 28),  # starts 4.5 above the last newBalance: a flow gap
            ("CREDIT", 10, "0.909", 28, "37.091"),  # moved net of VAT
            ("DEBIT", 8, 0, "37.091", 29),  # mismatch: moved 8.091
        ).lazy()
    )
    u = per_user(lf).collect().row(0, named=True)
    assert (u["opening_balance"], u["credits"], u["debits"], u["closing_balance"]) == (
        D(36),
        D("9.091"),
        D("20.5"),
        D(29),
    )
    assert (u["expected_closing"], u["difference"], u["flow_gaps"], u["mismatch_diffs"], u["rounding"]) == (
        D("24.591"), D("4.409"), D("4.5"), D("-0.091"), D(0),
    )  # fmt: skip
