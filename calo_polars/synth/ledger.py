"""The money model: one subscriber's wallet day by day, with faults injected at known places.

Money is kept in exact integer *sub-units* (a tenth of the currency's minor unit, so the
half-minor-unit tolerance is exactly 5) beside the float the Lambda itself would hold; numbers
are printed from the float, so JavaScript float noise appears where real arithmetic makes it,
while the exact integers decide every check.

The clean behaviour must not trip any check by itself, and an injected fault must trip exactly
the check it names. Both follow from replaying the tool's own definitions (README, "How the
checks are defined") exactly, before each transaction is written:

* mismatch/overdraft/flow break are exact integer comparisons with the tolerance of 5;
* the 3σ anomaly check is evaluated on the user's preceding ≤ 30 deltas with integer sums, and
  a normal transaction is only written when it is clearly inside 3σ (≤ 0.8 × 3σ, or within
  2 sub-units of the mean), an injected anomaly only when clearly outside (≥ 1.25 × 3σ and
  ≥ 2 minor units), so the tool's Float64 arithmetic cannot land on the other side.

What the Lambda did with each block (``Tx.after``) is decided here too, with the outcome faults
of issue 12: refused attempts (the wallet never moves; out of the balance history), movements
answered "already synced" that were never applied (then sent again under a new id, or not),
not-in-sync errors after which the wallet jumps, negative DEBIT amounts, failed / skipped /
silent blocks, and whole days missing from the export. ``Ledger.simulate`` ends with a pass
over the user's applied, logged transactions that finds every flow break exactly (the one rule
all of these share) and remembers the next transaction, so its cause can be named.

Renewals are what makes a clean history possible at all: a user whose window holds only equal
nightly deductions has σ = 0, and then any credit is an anomaly. Credits are therefore sized to
what the window allows (a weekly-style renewal keeps several credits in every window), and a
user who can no longer renew without an anomaly stops, as subscribers do.
"""

from __future__ import annotations

import json
import math
import random
from collections import deque
from dataclasses import dataclass

from .text import DAY_MS, between, inspect_string, js_number, ulid, uuid4

TOL = 5  # sub-units: half the minor unit, inclusive
UNIT = 10  # sub-units in one minor unit
WINDOW = 30
MIN_HISTORY = 5

UNJUDGED, NORMAL, ANOMALY, UNSAFE = range(4)


@dataclass(frozen=True)
class Currency:
    code: str
    decimals: int
    vat_percent: int
    nightly: tuple[float, ...]  # typical nightly deduction in currency units
    weight: float

    @property
    def sub(self) -> int:
        """Sub-units per currency unit."""
        return 10 ** (self.decimals + 1)


CURRENCIES = (
    Currency("BHD", 3, 10, (4.5, 5, 5.5, 6.364, 7.5, 8, 8.5, 9, 9.5), 0.58),
    Currency("SAR", 2, 15, (45, 60, 75, 90, 100, 120), 0.30),
    Currency("KWD", 3, 0, (7.5, 8, 8.5), 0.05),
    Currency("AED", 2, 5, (82, 95, 107, 117), 0.04),
    Currency("QAR", 2, 0, (90, 100, 120), 0.03),
)

RENEW_ACTIONS = ("RENEW_SUBSCRIPTION",) * 7 + ("AUTO_RENEW_SUBSCRIPTION", "PAY_PENDING_AMOUNT", "CHANGE_PLAN")
ADDITION_ACTIONS = (
    "COMPENSATION", "DELIVERY_CANCELLATION", "CX_GIFT", "REFERRAL_REDEEM_DAYS", "CALO_TEAM_PERKS",
    "CUSTOMERS_CALO_EXPERIMENTS", "MANUAL_DISCOUNT",
)  # fmt: skip
ADDON_ACTIONS = ("ADD_DELIVERY_ADDONS", "PURCHASE_ADDON_SUBSCRIPTION", "REPLACE_FOOD", "ADD_FOOD")
DEDUCTION_ACTIONS = (
    "REMOVE",
    "INVAILID_ENTRY",
    "DOUBLE_ENTRY",
    "EXPIRED_CREDITS",
    "REFUNDED_MANUALLY",
    "CREDIT_TRANSFER",
)
REFUND_ACTIONS = ("LEAVING_THE_COUNTRY", "FOREIGN_OBJECT", "MEDICAL_CONDITION", "PARTIAL_REFUND", "FOOD_POISONING")
ANOMALY_CREDITS = ("CX_GIFT", "MARKETING_GIFT_AND_EXPERIMENTS", "CUSTOMERS_INFLUENCERS", "COMPENSATION")
ANOMALY_DEBITS = ("FIXING_BALANCE", "INVAILID_ENTRY", "DOUBLE_ENTRY")

#: Daily probabilities of the ordinary daytime events of an active subscriber.
P_ADDITION, P_ADDON, P_DEDUCTION, P_REFUND, P_FLAG_FALSE = 0.02, 0.015, 0.01, 0.004, 0.004
P_HALF_UNIT = 0.004  # a 3-decimal currency's oldBalance logged with a 4th decimal (exactly at tolerance)
P_LOCK = 0.3  # a non-delivery transaction dumps its transaction lock (in the lock era)
P_SQS_BODY = 0.004  # the Lambda logs the whole SQS body (legacy era)

ARABIC = (
    "وجبة صحية ولذيذة كل يوم",
    "اشتراك أسبوعي مع توصيل مجاني",
    "غذي جسمك بكمية كافية من البروتين",
    "هدية لصديق عزيز",
)
GIFT_MESSAGES = ("hope you're enjoying the meals", "it's on me, enjoy", "for the best team")
PLANS = ("balanced", "highProtein", "lowCarb", "vegetarian", "businessLunch")
GOALS = ("loseWeight", "maintainWeight", "gainWeight")


class Window:
    """One direction's preceding deltas (debits, or credits) as the anomaly check sees them, with
    exact integer sums.

    The tool's rule (issue 12): ``|x − mean| > 3σ'`` and ``|x − mean| ≥ 1`` major unit, where
    σ' = max(σ, 10 % of |mean|, 10 minor units) and mean and σ (ddof 1) are over the user's
    preceding ≤ 30 deltas in the same direction (at least 5 of them).
    """

    __slots__ = ("s1", "s2", "sub", "values")

    def __init__(self, sub: int = 10_000) -> None:
        self.values: deque[int] = deque()
        self.s1 = 0
        self.s2 = 0
        self.sub = sub  # sub-units in one major unit (the materiality floor)

    def push(self, x: int) -> None:
        self.values.append(x)
        self.s1 += x
        self.s2 += x * x
        if len(self.values) > WINDOW:
            old = self.values.popleft()
            self.s1 -= old
            self.s2 -= old * old

    def judge(self, x: int) -> int:
        """Whether delta ``x`` is clearly normal, clearly an anomaly, unjudged or too close to call.

        With n deltas, D = n·(x − mean) and V = n·Σx² − (Σx)², each part of the rule is an
        integer comparison: ``|x − mean| > 3σ`` is ``D²·(n − 1) > 9·n·V``, ``> 3 × 10 % |mean|``
        is ``|D| > 0.3·|Σx|``, ``> 3 × 10 minor units`` is ``|D| > 300·n`` (a minor unit is 10
        sub-units) and the materiality ``|D| ≥ n·sub``. Clearly normal: one part fails by 20 %
        (materiality by 10 %); clearly an anomaly: every part holds by 25 %.
        """
        n = len(self.values)
        if n < MIN_HISTORY:
            return UNJUDGED
        d = n * x - self.s1
        ad, a1 = abs(d), abs(self.s1)
        lhs = d * d * (n - 1)
        spread = 9 * n * (n * self.s2 - self.s1 * self.s1)
        if 25 * lhs <= 16 * spread or 100 * ad <= 24 * a1 or ad <= 240 * n or 10 * ad <= 9 * n * self.sub:
            return NORMAL
        if 16 * lhs >= 25 * spread and 8 * ad >= 3 * a1 and ad >= 375 * n and 4 * ad >= 5 * n * self.sub:
            return ANOMALY
        return UNSAFE

    def bounds(self) -> tuple[float, float]:
        """Mean and σ' (σ with ddof 1, floored as the rule floors it) of the window, for sizing."""
        n = len(self.values)
        mean = self.s1 / n
        var = max(0, n * self.s2 - self.s1 * self.s1) / (n * (n - 1))
        return mean, max(math.sqrt(var), 0.1 * abs(mean), 10 * UNIT)

    def largest_normal(self, step: int, cap: int) -> int:
        """The largest credit (a multiple of ``step``, ≤ ``cap``) the window accepts as normal."""
        if len(self.values) < MIN_HISTORY:
            return cap // step * step
        mean, sd = self.bounds()
        x = min(cap, int((mean + max(2.4 * sd, 0.85 * self.sub)) // step * step))
        while x > 0 and self.judge(x) != NORMAL:
            x -= step
        return max(x, 0)

    def smallest_anomaly(self, step: int, sign: int) -> int:
        """The smallest |x| in direction ``sign`` the window sees as a clear anomaly (0: none)."""
        if len(self.values) < MIN_HISTORY:
            return 0
        mean, sd = self.bounds()
        reach = max(3.75 * sd, 1.25 * self.sub, 2.5 * UNIT)
        x = max(step, math.ceil((sign * mean + reach) / step) * step)
        for _ in range(50):
            if self.judge(sign * x) == ANOMALY:
                return x
            x += step
        return 0


class Deltas:
    """A user's two windows: the anomaly check judges debits apart from credits (by the
    block's type, or for a legacy block by the direction its balance moved)."""

    __slots__ = ("credits", "debits")

    def __init__(self, sub: int) -> None:
        self.debits, self.credits = Window(sub), Window(sub)

    def of(self, sign: int) -> Window:
        return self.credits if sign > 0 else self.debits

    def judge(self, x: int, sign: int = 0) -> int:
        """``x`` judged in direction ``sign`` (0: the direction of ``x`` itself)."""
        return self.of(sign or (1 if x > 0 else -1)).judge(x)

    def push(self, x: int, sign: int = 0) -> None:
        self.of(sign or (1 if x > 0 else -1)).push(x)


def is_mismatch(type_: str | None, amount: int, vat: int, old: int, new: int) -> bool:
    """The tool's mismatch definition, exactly (legacy blocks infer the sign from the balances)."""
    delta = new - old
    sign = -1 if type_ == "DEBIT" else 1 if type_ == "CREDIT" else (1 if delta > 0 else -1)
    return abs(delta - sign * amount) > TOL and abs(delta - sign * (amount - vat)) > TOL


class Tx:
    """One logged transaction block: exact sub-units for the checks, printed text for the log."""

    __slots__ = (
        "action",
        "after",
        "amount",
        "amount_s",
        "applied",
        "created",
        "day",
        "duplicate",
        "layout",
        "lock",
        "message_id",
        "metadata",
        "new",
        "new_s",
        "night",
        "nis",
        "nis_pay_s",
        "old",
        "old_s",
        "pay_s",
        "source",
        "sqs_body",
        "t",
        "ts",
        "tx_id",
        "type",
        "user",
        "vat",
        "vat_s",
    )  # fmt: skip
    # Set by Ledger._write, all at once (slots keep millions of blocks small; these tell mypy their types).
    tx_id: str
    user: User
    day: int
    t: int  # ms of the Lambda's handling
    night: bool
    layout: str
    type: str
    source: str
    action: str
    amount: int  # sub-units, as all four
    vat: int
    old: int
    new: int
    amount_s: str  # as printed in the log, as all five
    vat_s: str
    old_s: str
    new_s: str
    pay_s: str
    metadata: str | None
    message_id: str

    def __init__(self) -> None:
        self.after = "published"
        self.lock = self.sqs_body = self.duplicate = False
        self.applied = True  # False: the movement never reached the wallet (not applied / refused)
        self.nis = False  # an injected not-in-sync error follows the block (the wallet then jumps)
        self.nis_pay_s = ""
        self.ts = 0

    @property
    def outcome(self) -> str:
        """The outcome the tool must read from the message(s) after the block."""
        return "already_synced" if self.after.startswith("already_synced") else self.after


class Msg:
    """One SQS message the Lambda handles: a transaction, or a message that logs no block."""

    __slots__ = ("action", "balance_s", "kind", "logged", "message_id", "night", "ref_id", "t", "tx", "user")

    def __init__(self, t: int, night: bool, kind: str, user: User, tx: Tx | None = None) -> None:
        self.t, self.night, self.kind, self.user, self.tx = t, night, kind, user, tx
        self.action = self.balance_s = self.ref_id = self.message_id = ""
        self.logged = 0  # ms of the logged block, once written


@dataclass(frozen=True)
class Rates:
    """Fault rates, each per transaction (anomalies: per active day, overdrafts: per renewal)."""

    overdraft: float = 0.0
    mismatch: float = 0.0
    flow_break: float = 0.0
    delta_anomaly: float = 0.0
    duplicate: float = 0.0
    # issue 12 (all 0 by default, so the output above does not change unless asked):
    refused: float = 0.0  # per active day: a deduction beyond the balance, refused by the Lambda
    sent_again: float = 0.0  # "already synced", not applied, the same movement sent again under a new id
    not_applied: float = 0.0  # "already synced", not applied, not sent again
    not_in_sync: float = 0.0  # a not-in-sync error after the block, then the wallet jumps
    negative_amount: float = 0.0  # per nightly deduction: a DEBIT with a negative amount
    failed: float = 0.0  # the block is answered by a sync error (the wallet still moves)
    skipped: float = 0.0  # the block is answered "Update Payment Balance Flag is set to false"
    unknown: float = 0.0  # the block is answered by nothing
    logs_missing: float = 0.0  # per day: the whole day is missing from the export (all users)


@dataclass(frozen=True)
class Calendar:
    """Day-level facts shared by every user: period, layouts and eras."""

    days: int
    epoch_day: int  # days since 1970-01-01 of day 0
    legacy_until: int  # day index: blocks before it use the legacy layout
    overlap: int  # days before legacy_until where both layouts appear
    lock_from: int  # day index from which transaction locks are dumped
    dark: frozenset[int] = frozenset()  # day indices missing from the export (nothing logged)

    def day_ms(self, day: int) -> int:
        return (self.epoch_day + day) * DAY_MS

    def weekday(self, day: int) -> int:
        return (self.epoch_day + day + 3) % 7  # 1970-01-01 was a Thursday; Monday = 0

    def layout(self, day: int, rng: random.Random) -> str:
        if day < self.legacy_until - self.overlap:
            return "legacy"
        if day < self.legacy_until:
            return "legacy" if rng.random() < 0.5 else "full"
        return "full"


class User:
    """One subscriber with one wallet, and the state of the day-by-day simulation."""

    def __init__(self, index: int, rng: random.Random, cal: Calendar) -> None:
        self.index = index
        self.id = uuid4(rng)
        self.wallet = f"wallet#{self.id}"
        self.cur = rng.choices(CURRENCIES, weights=[c.weight for c in CURRENCIES])[0]
        sub = self.cur.sub
        self.d = round(rng.choice(self.cur.nightly) * sub)
        self.plan_days = rng.choice((5, 6, 6, 7, 7, 10, 14))
        rest = rng.choice(((4, 5), (4,), (5,), ()))  # Friday/Saturday or no delivery
        self.delivery = frozenset(w for w in range(7) if w not in rest)
        self.new = rng.random() < 0.3
        self.first_day = rng.randrange(cal.days) if self.new else 0
        self.last_day = cal.days - 1 if rng.random() < 0.85 else between(rng, self.first_day, cal.days)
        self.offset = 0 if rng.random() < 0.72 else rng.choice((-1, 1)) * between(rng, 1, 40) * self.d
        # An existing subscriber holds a few days of balance (so the first renewal comes before
        # the 3σ check judges anything), or prepaid the whole period and never renews.
        prepaid = rng.random() < 0.12
        self.bal = 0 if self.new else (cal.days + 2 if prepaid else between(rng, 1, 5)) * self.d
        self.bal_f = self.bal / sub
        self.window = Deltas(self.cur.sub)
        self.last: Tx | None = None
        self.stopped = False
        self.failed_renewals = 0
        self.overdraft_tonight = False  # an injected overdraft: tonight's deduction goes below zero


@dataclass
class Fault:
    kind: str
    tx: Tx
    detail: str
    next: Tx | None = None  # flow breaks: the wallet's next applied transaction
    refused_later: bool = False  # flow breaks: the gap is exactly the latest refused block's move


class Ledger:
    """Simulates users one by one; collects their messages and the faults really injected."""

    def __init__(self, cal: Calendar, rates: Rates, seed: int) -> None:
        self.cal = cal
        self.rates = rates
        self.seed = seed
        self.msgs: list[Msg] = []
        self.faults: list[Fault] = []
        self.rng = random.Random()  # the user being simulated's own stream, set by simulate()
        self.dark = False  # the day being simulated is missing from the export
        self.history: list[Tx] = []  # the user's logged transactions (refused ones too), in order
        self.gap_details: dict[int, str] = {}  # id(tx) → why the wallet moved after it (injected)

    # ------------------------------------------------------------ one user

    def simulate(self, index: int) -> User:
        rng = random.Random(f"{self.seed}/user/{index}")
        u = User(index, rng, self.cal)
        self.rng = rng
        self.history, self.gap_details = [], {}
        times = _daytime_slots
        for day in range(u.first_day, u.last_day + 1):
            if u.stopped:
                break
            self.dark = day in self.cal.dark
            base = self.cal.day_ms(day)
            plan = self._plan_day(u, day)
            slots = times(rng, len(plan))
            for kind, slot in zip(plan, slots, strict=True):
                self._daytime(u, day, base + slot, kind)
            if self.cal.weekday(day) in u.delivery and not u.stopped:
                self._nightly(u, day, base + 21 * 3_600_000)
        self.dark = False
        self._flow_breaks()
        return u

    def _flow_breaks(self) -> None:
        """Every flow break of the user, exactly: consecutive applied, logged transactions whose
        balances do not chain (within tolerance), each with the next transaction, and whether the
        gap is exactly the move of the wallet's latest refused block (``refused_applied_later``)."""
        refused_move: int | None = None
        pairs: list[tuple[Tx, Tx, bool]] = []
        last: Tx | None = None
        for tx in self.history:
            if tx.outcome == "refused":
                refused_move = tx.new - tx.old
                continue
            if last is not None:
                later = refused_move is not None and abs((tx.old - last.new) - refused_move) <= TOL
                pairs.append((last, tx, later))
            last = tx
        for a, b, later in pairs:
            if abs(b.old - a.new) > TOL:
                detail = self.gap_details.get(id(a))
                if detail is None:
                    sub = a.user.cur.sub
                    detail = f"{js_number(abs(b.old - a.new) / sub)} {'appeared' if b.old > a.new else 'vanished'}"
                    detail += " before the next transaction" + (
                        "" if a.applied else " (this movement was never applied)"
                    )
                self.faults.append(Fault("flow_break", a, detail, next=b, refused_later=later))

    def _plan_day(self, u: User, day: int) -> list[str]:
        rng, plan = self.rng, []
        u.overdraft_tonight = False
        if day == u.first_day and u.new:
            plan += ["skip_create", "renewal"]
        elif u.bal < u.d and self.cal.weekday(day) in u.delivery:
            if (
                u.last is not None
                and u.bal >= 0
                and rng.random() < min(1.0, self.rates.overdraft * u.plan_days)
                and u.window.judge(-u.d) in (NORMAL, UNJUDGED)
            ):
                u.overdraft_tonight = True  # skip the renewal: tonight goes below zero
            else:
                plan.append("renewal")
        if u.bal < 0 and "renewal" not in plan:
            plan.append("renewal")
        r = rng.random
        for kind, p in (
            ("addition", P_ADDITION), ("addon", P_ADDON), ("deduction", P_DEDUCTION),
            ("refund", P_REFUND), ("flag_false", P_FLAG_FALSE),
        ):  # fmt: skip
            if r() < p:
                plan.append(kind)
        if r() < self.rates.delta_anomaly * 1.3:
            plan.append("anomaly")
        if self.rates.refused and r() < self.rates.refused:
            plan.append("refused")
        return plan

    def _daytime(self, u: User, day: int, t: int, kind: str) -> None:
        rng, cur, d = self.rng, u.cur, u.d
        if self.dark and kind in ("skip_create", "flag_false", "anomaly", "refused"):
            return  # nothing of a missing day is logged; no fault is injected on it
        if kind == "refused":
            self._refused(u, day, t)
        elif kind == "skip_create":
            self.msgs.append(Msg(t, False, "skip_create", u))
        elif kind == "flag_false":
            m = Msg(t, False, "flag_false", u)
            m.action = "DONATE_RAMADAN_MEAL"
            self.msgs.append(m)
        elif kind == "renewal":
            self._renew(u, day, t)
        elif kind == "addition":
            amount = d * rng.choice((1, 1, 2)) // (2 if rng.random() < 0.3 else 1) // UNIT * UNIT
            if u.bal >= 0 and u.window.judge(amount) in (NORMAL, UNJUDGED):
                self._write(
                    u, day, t, False, "CREDIT", "MANUAL_ADDITION", rng.choice(ADDITION_ACTIONS), amount, 0, amount
                )
        elif kind == "addon":
            net = _round_unit(d * rng.uniform(0.3, 1.2))
            vat = _vat(net, cur)
            if u.bal >= 0 and net > 0 and u.window.judge(net) in (NORMAL, UNJUDGED):
                self._write(u, day, t, False, "CREDIT", "PAYMENT", rng.choice(ADDON_ACTIONS), net + vat, vat, net)
        elif kind in ("deduction", "refund"):
            refund = kind == "refund"
            net = _round_unit(d * rng.choice((0.5, 1, 1.5) if not refund else (1, 2)))
            vat = _vat(net, cur) if refund else 0
            action = rng.choice(REFUND_ACTIONS if refund else DEDUCTION_ACTIONS)
            if net > u.bal:  # the Lambda refuses a deduction that would go below zero
                if self.dark:
                    return
                m = Msg(t, False, "blocked", u)
                m.action, m.balance_s, m.ref_id = action, js_number(u.bal_f), ulid(t - 900, rng)
                self.msgs.append(m)
            elif u.window.judge(-net) in (NORMAL, UNJUDGED):
                source = "REFUND" if refund else "MANUAL_DEDUCTION"
                self._write(u, day, t, False, "DEBIT", source, action, net + vat, vat, -net)
        elif kind == "anomaly":
            self._anomaly(u, day, t)

    def _renew(self, u: User, day: int, t: int) -> None:
        """A PAYMENT credit of whole days of the plan, as large as the 3σ window allows."""
        rng, d = self.rng, u.d
        need = d - u.bal  # at least tonight's deduction
        cap = max(u.plan_days * d, need)
        days = u.window.credits.largest_normal(d, cap) // d
        if days * d < need or days == 0:
            u.failed_renewals += 1
            if u.failed_renewals >= 3 or u.bal < 0:
                u.stopped = True  # cannot renew without an anomaly: the subscriber leaves
            return
        u.failed_renewals = 0
        net = days * d
        vat = _vat(net, u.cur)
        first = u.last is None
        action = rng.choice(("CREATE_SUBSCRIPTION_WEB", "RENEW_SUBSCRIPTION")) if first else rng.choice(RENEW_ACTIONS)
        self._write(u, day, t, False, "CREDIT", "PAYMENT", action, net + vat, vat, net)

    def _anomaly(self, u: User, day: int, t: int) -> None:
        """A movement far outside the user's recent deltas: a big gift, or a big correction."""
        if u.bal < 0:
            return
        rng, d = self.rng, u.d
        if rng.random() < 0.3:
            x = u.window.debits.smallest_anomaly(UNIT, -1)
            if x and x + 2 * d <= u.bal:
                x = self._stretch(u, x, -1, limit=u.bal - 2 * d)
                self._write(
                    u, day, t, False, "DEBIT", "MANUAL_DEDUCTION", rng.choice(ANOMALY_DEBITS), x, 0, -x, anomaly=True
                )
                return
        x = u.window.credits.smallest_anomaly(UNIT, 1)
        if x:
            x = self._stretch(u, x, 1, limit=x * 2)
            self._write(
                u, day, t, False, "CREDIT", "MANUAL_ADDITION", self.rng.choice(ANOMALY_CREDITS), x, 0, x, anomaly=True
            )

    def _refused(self, u: User, day: int, t: int) -> None:
        """A correction larger than the balance: logged, then refused; the wallet never moves."""
        if u.last is None or u.bal < 0:
            return
        rng, sub = self.rng, u.cur.sub
        amount = u.bal + (_round_unit(u.d * rng.uniform(0.3, 2.0)) or UNIT)
        tx = Tx()
        tx.tx_id = ulid(t - between(rng, 200, 5000), rng)
        tx.user, tx.day, tx.t, tx.night, tx.layout = u, day, t, False, self.cal.layout(day, rng)
        tx.type, tx.source, tx.action = "DEBIT", "MANUAL_DEDUCTION", rng.choice(("INVAILID_ENTRY", "DOUBLE_ENTRY"))
        tx.amount, tx.vat, tx.old, tx.new = amount, 0, u.bal, u.bal - amount
        tx.amount_s, tx.vat_s = js_number(amount / sub), "0"
        tx.old_s, tx.new_s = js_number(u.bal_f), js_number(u.bal_f - amount / sub)
        tx.pay_s = tx.new_s
        tx.metadata = self._metadata(u, tx.action, tx.source, False, rng) if tx.layout == "full" else None
        tx.message_id = uuid4(rng)
        tx.after, tx.applied = "refused", False
        self.history.append(tx)
        self.msgs.append(Msg(t, False, "tx", u, tx))

    def _stretch(self, u: User, x: int, sign: int, limit: int) -> int:
        """Make an anomaly a little larger than the minimum, staying a clear anomaly."""
        y = _round_unit(x * self.rng.uniform(1.0, 1.6))
        return y if y <= limit and u.window.judge(sign * y) == ANOMALY else x

    def _nightly(self, u: User, day: int, t: int) -> None:
        if u.bal < u.d and not u.overdraft_tonight:
            return
        if (
            self.rates.negative_amount and not self.dark and day >= self.cal.legacy_until and u.bal >= 0
            and self.rng.random() < self.rates.negative_amount
        ):  # fmt: skip
            # a DEBIT logged with a negative amount, which raises the balance (full layout only:
            # a legacy block carries no type, so its sign is read from the balances)
            # A DEBIT is judged among the debits, so a raised balance is usually also an anomaly.
            for share in (2, 1, 0.5, 0.25):
                x = _round_unit(u.d * share)
                verdict = u.window.judge(x, -1)
                if x and verdict != UNSAFE:
                    self._write(u, day, t, True, "DEBIT", "MANUAL_DEDUCTION", "DELIVERY_DEDUCTION", -x, 0, x,
                                negative=True, anomaly=verdict == ANOMALY)  # fmt: skip
                    return
        if u.window.judge(-u.d) not in (NORMAL, UNJUDGED):
            return
        self._write(u, day, t, True, "DEBIT", "MANUAL_DEDUCTION", "DELIVERY_DEDUCTION", u.d, 0, -u.d)

    # ------------------------------------------------------------ writing one transaction

    def _write(
        self, u: User, day: int, t: int, night: bool, type_: str, source: str, action: str,
        amount: int, vat: int, delta: int, *, anomaly: bool = False, negative: bool = False,
    ) -> None:  # fmt: skip
        rng, rates, sub = self.rng, self.rates, u.cur.sub
        if self.dark:  # the movement happens, but nothing of it reaches the export
            u.bal += delta
            u.bal_f += delta / sub
            return
        clean = u.bal >= 0 and not anomaly
        if clean and u.last is not None and rng.random() < rates.flow_break:
            self._flow_gap(u, delta)
        old, old_f = u.bal, u.bal_f
        layout = self.cal.layout(day, rng)
        if (
            night and layout == "full" and u.cur.decimals == 3 and rng.random() < P_HALF_UNIT
            and u.window.judge(delta + TOL) == NORMAL
        ):  # fmt: skip
            old += TOL  # logged with a 4th decimal: exactly the tolerance away from the last newBalance
            old_f = old / sub
            new = old + delta + TOL  # the Lambda rounds newBalance half up to the minor unit
            new_f = new / sub
        else:
            new = old + delta
            amt_f, vat_f = amount / sub, vat / sub
            if type_ == "DEBIT":
                new_f = old_f - (amt_f - vat_f) if vat else old_f - amt_f
            else:
                new_f = old_f + amt_f - vat_f if vat else old_f + amt_f
            if abs(new_f - new / sub) > 1e-7:
                new_f = new / sub
        tx = Tx()
        plain = clean and not negative  # may carry one of issue 12's faults (none else on the block)
        if clean and not negative and rng.random() < rates.mismatch:
            amount, new, new_f, detail = self._mismatch(
                u, type_ if layout == "full" else None, amount, vat, old, new, new_f
            )
            self.faults.append(Fault("mismatch", tx, detail))
            plain = False
        tx.tx_id = ulid(t - between(rng, 200, 5000) if not night else t - between(rng, 60_000, 90_000), rng)
        tx.user, tx.day, tx.t, tx.night, tx.layout = u, day, t, night, layout
        tx.type, tx.source, tx.action = type_, source, action
        tx.amount, tx.vat, tx.old, tx.new = amount, vat, old, new
        tx.amount_s, tx.vat_s = js_number(amount / sub), js_number(vat / sub)
        tx.old_s, tx.new_s = js_number(old_f), js_number(new_f)
        tx.pay_s = tx.new_s if not u.offset else js_number(new_f + u.offset / sub)
        tx.metadata = self._metadata(u, action, source, night, rng) if layout == "full" else None
        tx.message_id = uuid4(rng)
        tx.lock = layout == "full" and not night and day >= self.cal.lock_from and rng.random() < P_LOCK
        tx.sqs_body = layout == "legacy" and rng.random() < P_SQS_BODY
        after = rng.random()
        tx.after = "published" if after < 0.97 else "already_synced" if after < 0.99 else "already_synced_short"
        if rates.failed or rates.skipped or rates.unknown:
            other = rng.random()
            for name, rate in (("failed", rates.failed), ("skipped", rates.skipped), ("unknown", rates.unknown)):
                if other < rate:
                    tx.after = name
                    break
                other -= rate
        resend = False
        plain = plain and old >= 0 and new >= 0
        if (rates.sent_again or rates.not_applied) and plain and u.last is not None:
            pick = rng.random()
            # not sent again: a daytime movement, so the next one (a nightly deduction) differs
            if pick < rates.sent_again or (pick < rates.sent_again + rates.not_applied and not night):
                # answered "already synced" and never applied: the wallet stays where it was
                tx.after, tx.applied = "already_synced_short", False
                resend = pick < rates.sent_again
        if rates.not_in_sync and plain and tx.applied and tx.after == "published" and rng.random() < rates.not_in_sync:
            tx.nis = True
        if old < -TOL or new < -TOL:
            why = "balance below zero before" if old < -TOL else "balance went below zero"
            self.faults.append(Fault("overdraft", tx, f"{why}: {tx.old_s} → {tx.new_s}"))
        if anomaly:
            self.faults.append(
                Fault("delta_anomaly", tx, f"delta {js_number(delta / sub)} far outside the user's recent deltas")
            )
        elif clean and new >= 0 and tx.applied and not tx.nis and rng.random() < rates.duplicate:
            tx.duplicate = True
        if negative:
            self.faults.append(
                Fault("negative_amount", tx, f"DEBIT of {tx.amount_s} raised the balance {tx.old_s} → {tx.new_s}")
            )
        sign = (-1 if type_ == "DEBIT" else 1) if layout == "full" else (1 if new > old else -1)
        u.window.push(new - old, sign)  # every block but a refused one counts, applied to the wallet or not
        self.history.append(tx)
        u.last = tx
        self.msgs.append(Msg(t, night, "tx", u, tx))
        if tx.applied:
            u.bal, u.bal_f = new, new_f
        else:
            u.bal, u.bal_f = old, old_f  # the next block starts from this one's oldBalance
            if resend and u.window.judge(new - old, sign) in (NORMAL, UNJUDGED):
                self._send_again(u, tx, sign)
        if tx.nis:
            self._jump_after_not_in_sync(u, tx, delta)

    def _send_again(self, u: User, first: Tx, sign: int) -> None:
        """The same movement sent again under a new id, on the unchanged balance, and applied."""
        rng = self.rng
        t = first.t + (between(rng, 7_200_000, 9_000_000) if first.night else between(rng, 20_000, 120_000))
        tx = Tx()
        for name in ("user", "day", "layout", "type", "source", "action", "amount", "vat", "old", "new",
                     "amount_s", "vat_s", "old_s", "new_s", "pay_s", "metadata"):  # fmt: skip
            setattr(tx, name, getattr(first, name))
        tx.tx_id, tx.t, tx.night, tx.message_id = ulid(t - between(rng, 200, 5000), rng), t, False, uuid4(rng)
        u.window.push(tx.new - tx.old, sign)
        self.history.append(tx)
        u.bal, u.bal_f, u.last = tx.new, float(tx.new_s), tx
        self.msgs.append(Msg(t, False, "tx", u, tx))

    def _jump_after_not_in_sync(self, u: User, tx: Tx, delta: int) -> None:
        """After the not-in-sync error the wallet moves: the next block starts elsewhere."""
        rng, d = self.rng, u.d
        size = _round_unit(d * rng.uniform(0.1, 3.0)) or UNIT
        gap = size if rng.random() < 0.6 or u.bal - size < 2 * d else -size
        u.bal += gap
        u.bal_f += gap / u.cur.sub
        tx.nis_pay_s = js_number(u.bal_f)
        verb = "appeared" if gap > 0 else "vanished"
        self.gap_details[id(tx)] = (
            f"{js_number(abs(gap) / u.cur.sub)} {verb} after a not-in-sync error, before the next transaction"
        )

    def _flow_gap(self, u: User, delta: int) -> None:
        """Move the wallet between two logged transactions: the last one becomes a flow break."""
        rng, d, last = self.rng, u.d, u.last
        assert last is not None
        size = _round_unit(d * rng.uniform(0.1, 3.0)) or UNIT
        gap = size if rng.random() < 0.6 or u.bal - size + min(delta, 0) < 2 * d else -size
        u.bal += gap
        u.bal_f += gap / u.cur.sub
        verb = "appeared" if gap > 0 else "vanished"
        # recorded by _flow_breaks, which finds this break with every other one
        self.gap_details.setdefault(id(last), f"{js_number(abs(gap) / u.cur.sub)} {verb} before the next transaction")

    def _mismatch(
        self, u: User, type_: str | None, amount: int, vat: int, old: int, new: int, new_f: float
    ) -> tuple[int, int, float, str]:
        """Log a wrong movement: the balance moves by another amount, or the amount is wrong."""
        rng, sub = self.rng, u.cur.sub
        for _ in range(4):  # variant A: the balance moved by the wrong amount
            x = rng.choice((-1, 1)) * _round_unit(u.d * rng.uniform(0.02, 0.4)) or UNIT
            bad = new + x
            if (
                bad >= 0
                and is_mismatch(type_, amount, vat, old, bad)
                and u.window.judge(bad - old, -1 if type_ == "DEBIT" else 1 if type_ == "CREDIT" else 0)
                in (NORMAL, UNJUDGED)
            ):
                return (
                    amount,
                    bad,
                    new_f + x / sub,
                    f"balance moved {js_number((bad - old) / sub)} for amount {js_number(amount / sub)}",
                )
        for _ in range(8):  # variant B: the balance moved as usual, the logged amount is wrong
            y = _round_unit(amount * rng.uniform(0.05, 0.5)) or UNIT
            bad_amount = amount + y if rng.random() < 0.5 or amount - y <= vat else amount - y
            if is_mismatch(type_, bad_amount, vat, old, new):
                return (
                    bad_amount,
                    new,
                    new_f,
                    f"amount {js_number(bad_amount / sub)} but balance moved {js_number((new - old) / sub)}",
                )
        raise AssertionError("no mismatch found")  # unreachable: y ≥ one minor unit always mismatches

    # ------------------------------------------------------------ metadata

    def _metadata(self, u: User, action: str, source: str, night: bool, rng: random.Random) -> str:
        """The metadata string as util.inspect prints it (or ``undefined``)."""
        if night:
            delivery = uuid4(rng)
            return (
                f'\'{{"walletId":"{u.wallet}","deliveryId":"{delivery}",'
                f'"walletSk":"{delivery}","version":"syncBalanceSQS"}}\''
            )
        meta: dict[str, object]
        if source == "REFUND":
            pick = rng.random()
            if pick < 0.3:
                return "undefined"
            meta = (
                {"refundId": uuid4(rng), "walletSk": uuid4(rng)}
                if pick < 0.6
                else {"walletId": u.wallet, "walletSk": uuid4(rng)}
            )
        elif action in ADDON_ACTIONS:
            addon = {"id": uuid4(rng), "quantity": 1, "addonConfig": {"addonCategory": "GIFT_CARDS"}}
            if rng.random() < 0.5:
                addon["notificationInfo"] = {"receiverName": "Sam", "giftMessage": rng.choice(GIFT_MESSAGES)}
            else:
                addon["longDescription"] = {"ar": rng.choice(ARABIC), "en": "Healthy and tasty"}
            meta = {
                "walletId": u.wallet, "deliveryId": uuid4(rng), "eventSessionId": uuid4(rng), "walletSk": uuid4(rng),
                "version2": True, "addons": json.dumps([addon], separators=(",", ":"), ensure_ascii=False),
                "source": "APP", "API_VERSION_2": True,
            }  # fmt: skip
        elif source == "PAYMENT":
            plan = {
                "id": rng.choice(PLANS),
                "frequency": "weekly",
                "foodType": ["lunch", "dinner"],
                "pricePerDay": u.d / u.cur.sub,
            }
            meta = {
                "walletId": u.wallet, "planType": plan["id"], "goal": rng.choice(GOALS), "eventSessionId": uuid4(rng),
                "walletSk": uuid4(rng), "deliveryTime": rng.choice(("morning", "evening")), "type": "userRenew",
                "frequency": "weekly", "tier": "personalized", "version2": True,
                "nextPlan": json.dumps(plan, separators=(",", ":")),
            }  # fmt: skip
            if rng.random() < 0.2:
                meta["addonSubscription"] = json.dumps(
                    [{"longDescription": {"ar": rng.choice(ARABIC)}}], ensure_ascii=False, separators=(",", ":")
                )
        else:
            meta = {"walletId": u.wallet, "walletSk": uuid4(rng)}
        return inspect_string(json.dumps(meta, separators=(",", ":"), ensure_ascii=False))


def _round_unit(value: float) -> int:
    """A positive sub-unit amount rounded to a whole minor unit."""
    return round(value / UNIT) * UNIT


def _vat(net: int, cur: Currency) -> int:
    """VAT on a net amount, rounded half up to the minor unit."""
    minor = net // UNIT
    return (minor * cur.vat_percent + 50) // 100 * UNIT


def _daytime_slots(rng: random.Random, k: int) -> list[int]:
    """``k`` increasing daytime offsets (ms after midnight), 05:00–20:00, at least 10 minutes apart."""
    if not k:
        return []
    slots = sorted(rng.sample(range(90), k))
    return [5 * 3_600_000 + s * 600_000 + rng.randrange(300_000) for s in slots]
