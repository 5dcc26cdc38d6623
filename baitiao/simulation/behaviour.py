"""The customers: a seeded behaviour model that acts only through public events.

Each account draws a behaviour from the mix (pays on time, late within grace, late
after grace, partly, stops paying, asks for a plan and keeps or breaks it, keeps or
breaks a promise to pay, disputes part of a bill that is then upheld or rejected), and a
share of the portfolio is paused for disaster relief by the operators. Every decision comes from a random stream keyed by
(seed, account, what is being decided) and from the content of the events the
customer saw (bills, delinquency snapshots, offers, call tasks), never from timing
or arrival order, so the same seed gives the same portfolio story twice.

Its length: one portfolio of customers, whose reactions to every event type read and
write the same per-account state and draw from the same keyed streams.
"""

from __future__ import annotations

import hashlib
import json
import random
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import yaml

from baitiao.simulation.wire import OutgoingEvent
from shared.money import FEN

ON_TIME = "on_time"
LATE_IN_GRACE = "late_in_grace"
LATE_AFTER_GRACE = "late_after_grace"
PARTIAL = "partial"
STOPS_PAYING = "stops_paying"
PLAN_KEEPS = "plan_keeps"
PLAN_BREAKS = "plan_breaks"
PROMISE_KEEPS = "promise_keeps"
PROMISE_BREAKS = "promise_breaks"
DISPUTES_UPHELD = "disputes_upheld"
DISPUTES_REJECTED = "disputes_rejected"

DEFAULT_MIX: dict[str, float] = {
    ON_TIME: 0.51,
    LATE_IN_GRACE: 0.12,
    LATE_AFTER_GRACE: 0.08,
    PARTIAL: 0.06,
    STOPS_PAYING: 0.05,
    PLAN_KEEPS: 0.04,
    PLAN_BREAKS: 0.03,
    PROMISE_KEEPS: 0.04,
    PROMISE_BREAKS: 0.03,
    DISPUTES_UPHELD: 0.02,
    DISPUTES_REJECTED: 0.02,
}
PLAN_SEEKERS = {PLAN_KEEPS, PLAN_BREAKS}
DISPUTERS = {DISPUTES_UPHELD, DISPUTES_REJECTED}
# The operators pause this share of the portfolio for disaster relief, on this day of the
# run, for this many days (RULES 2.8; the close of the day after resumes them).
RELIEF_SHARE = 0.05
RELIEF_DAY = 45
RELIEF_DAYS = 30
# A disputer disputes this share of their first bill; the operators resolve it after a
# number of days drawn in this range (some beyond the 15-day service level).
DISPUTED_SHARE = Decimal("0.30")
RESOLVED_AFTER_DAYS = (5, 21)
PROMISE_MAKERS = {PROMISE_KEEPS, PROMISE_BREAKS}

TZ = "+08:00"


@dataclass(frozen=True)
class Mix:
    """Shares of each behaviour in the portfolio (normalised; unknown names refused)."""

    weights: dict[str, float]

    def __post_init__(self) -> None:
        unknown = set(self.weights) - set(DEFAULT_MIX)
        if unknown:
            raise ValueError(f"unknown behaviours in the mix: {sorted(unknown)}; known: {sorted(DEFAULT_MIX)}")
        if any(w < 0 for w in self.weights.values()) or sum(self.weights.values()) <= 0:
            raise ValueError("mix weights must be >= 0 and not all zero")

    @classmethod
    def load(cls, path: Path | None) -> "Mix":
        """The default mix, with the shares a YAML or JSON file gives overriding it."""
        weights = dict(DEFAULT_MIX)
        if path is not None:
            text = path.read_text(encoding="utf-8")
            data = json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
            data = data.get("mix", data) if isinstance(data, dict) else data
            if not isinstance(data, dict):
                raise ValueError(f"{path}: expected a mapping of behaviour to share")
            weights.update({str(k): float(v) for k, v in data.items()})
        return cls(weights)

    def normalised(self) -> dict[str, float]:
        total = sum(self.weights.values())
        return {k: v / total for k, v in self.weights.items()}

    def pick(self, u: float) -> str:
        acc = 0.0
        for name, share in self.normalised().items():
            acc += share
            if u < acc:
                return name
        return next(name for name, w in reversed(self.weights.items()) if w > 0)


def stream(seed: int, *parts: object) -> random.Random:
    """A random stream for one decision: same (seed, parts), same draws, in any order."""
    key = ":".join(str(p) for p in (seed, *parts))
    return random.Random(hashlib.blake2b(key.encode(), digest_size=16).hexdigest())


def money(value: Decimal) -> str:
    return str(value.quantize(FEN))


def _stamp(day: date, hh_mm_ss: str) -> str:
    return f"{day.isoformat()}T{hh_mm_ss}{TZ}"


@dataclass
class BillSeen:
    bill_id: str
    due_date: date
    amount: Decimal
    statement_date: date | None = None


@dataclass
class DisputeSeen:
    """A customer's dispute of part of a bill, and when the operators will resolve it."""

    dispute_id: str
    bill_id: str
    amount: Decimal
    open_on: date
    resolve_on: date
    state: str = "planned"  # planned | open | resolved | paid


@dataclass
class PlanSeen:
    plan_id: str
    schedule: list[tuple[int, date, Decimal]]  # period, due date, total
    pays_periods: int  # how many installments the customer will pay


@dataclass
class Customer:
    """One account holder: a fixed profile and what they have seen so far."""

    index: int
    account_id: str
    behaviour: str
    credit_limit: Decimal
    monthly_income: Decimal | None
    opened_on: date
    identity_hash: str
    spend_share: float
    bills: dict[str, BillSeen] = field(default_factory=dict)
    settled_bills: set[str] = field(default_factory=set)
    snapshot_date: date | None = None
    snapshot_total: Decimal = Decimal("0")
    snapshot_bills: tuple[str, ...] = ()
    max_dpd: int = 0
    plan_state: str = "none"  # none | requested | offered | active | defaulted | completed | ineligible
    offered: list[dict[str, Any]] = field(default_factory=list)
    plan: PlanSeen | None = None
    payments: int = 0
    promise_dates: list[date] = field(default_factory=list)
    tasks_today: list[str] = field(default_factory=list)
    bills_paid_count: int = 0
    purchase_plan: dict[tuple[int, int], list[tuple[int, Decimal]]] = field(default_factory=dict)
    relief: bool = False  # paused for disaster relief by the operators
    dispute: DisputeSeen | None = None

    def overdue_on(self, day: date) -> bool:
        return self.snapshot_date == day and self.snapshot_total > 0


class Portfolio:
    """All customers, what they observed, and what they do on each simulated day."""

    def __init__(self, accounts: int, seed: int, mix: Mix, start: date):
        self.seed = seed
        self.mix = mix
        self.start = start
        self.customers: list[Customer] = [self._draw(i) for i in range(accounts)]
        self.by_id: dict[str, Customer] = {c.account_id: c for c in self.customers}

    # -- who the customers are ---------------------------------------------------------
    def _draw(self, index: int) -> Customer:
        rng = stream(self.seed, "profile", index)
        account_id = f"sim-acc-{index + 1:06d}"
        behaviour = self.mix.pick(rng.random())
        limit = Decimal(rng.randrange(2000, 20001, 500))
        income = Decimal(rng.randrange(3000, 30001, 100)) if rng.random() < 0.75 else None
        opened_on = self.start - timedelta(days=rng.randrange(30, 1500))
        # every 25th customer holds a second account on the same identity (linked accounts)
        owner = index - 1 if index % 25 == 24 else index
        identity = hashlib.sha256(f"sim-identity:{self.seed}:{owner}".encode()).hexdigest()
        customer = Customer(
            index, account_id, behaviour, limit, income, opened_on, identity, spend_share=rng.uniform(0.15, 0.6)
        )
        customer.relief = stream(self.seed, "relief", index).random() < RELIEF_SHARE
        return customer

    def behaviour_counts(self) -> dict[str, int]:
        counts = {name: 0 for name in DEFAULT_MIX}
        for c in self.customers:
            counts[c.behaviour] += 1
        return counts

    def grants(self) -> list[OutgoingEvent]:
        """The credit lines, granted before the first simulated day (fake name and phone)."""
        events = []
        for c in self.customers:
            payload: dict[str, Any] = {
                "account_id": c.account_id,
                "customer_id": f"sim-cust-{c.index + 1:06d}",
                "identity_hash": c.identity_hash,
                "credit_limit": money(c.credit_limit),
                "name": "模拟客户",
                "phone": f"1990000{c.index % 10000:04d}",
                "opened_on": c.opened_on.isoformat(),
            }
            if c.monthly_income is not None:
                payload["monthly_income"] = money(c.monthly_income)
            events.append(
                OutgoingEvent(
                    "credit.line.granted", c.account_id, payload, _stamp(self.start - timedelta(days=1), "09:00:00")
                )
            )
        return events

    # -- what they see --------------------------------------------------------------------
    def observe(self, events: Iterable[dict[str, Any]]) -> None:
        for event in events:
            handler = _OBSERVERS.get(event.get("type", ""))
            if handler is None:
                continue
            payload = event.get("payload", {})
            customer = self.by_id.get(payload.get("account_id", ""))
            if customer is not None:
                handler(self, customer, payload)

    def _bill_issued(self, c: Customer, p: dict[str, Any]) -> None:
        statement = date.fromisoformat(p["statement_date"])
        c.bills[p["bill_id"]] = BillSeen(
            p["bill_id"], date.fromisoformat(p["due_date"]), Decimal(p["amount"]), statement
        )
        if c.behaviour in DISPUTERS and c.dispute is None:
            rng = stream(self.seed, "dispute", c.account_id)
            amount = (Decimal(p["amount"]) * DISPUTED_SHARE).quantize(FEN)
            if amount > 0:
                open_on = statement + timedelta(days=rng.randrange(1, 4))
                resolve_on = open_on + timedelta(days=rng.randrange(*RESOLVED_AFTER_DAYS))
                c.dispute = DisputeSeen(f"sim-dsp-{c.index + 1:06d}", p["bill_id"], amount, open_on, resolve_on)

    def _delinquency(self, c: Customer, p: dict[str, Any]) -> None:
        day = date.fromisoformat(p["business_date"])
        if c.snapshot_date is None or day >= c.snapshot_date:
            c.snapshot_date, c.snapshot_total = day, Decimal(p["total_overdue"])
            c.snapshot_bills = tuple(sorted(b["bill_id"] for b in p.get("bills", [])))
            c.max_dpd = int(p["max_dpd"])

    def _offered(self, c: Customer, p: dict[str, Any]) -> None:
        if c.plan_state == "requested":
            c.plan_state, c.offered = "offered", sorted(p["offers"], key=lambda o: (o["term"], o["method"]))

    def _ineligible(self, c: Customer, p: dict[str, Any]) -> None:
        if c.plan_state == "requested":
            c.plan_state = "ineligible"

    def _activated(self, c: Customer, p: dict[str, Any]) -> None:
        schedule = [(int(s["period"]), date.fromisoformat(s["due_date"]), Decimal(s["total"])) for s in p["schedule"]]
        rng = stream(self.seed, "plan-keeps", c.account_id, len(schedule))
        pays = len(schedule) if c.behaviour == PLAN_KEEPS else rng.randrange(0, 3)
        c.plan, c.plan_state = PlanSeen(p["plan_id"], schedule, pays), "active"
        c.settled_bills.update(p.get("bill_ids", []))

    def _task(self, c: Customer, p: dict[str, Any]) -> None:
        if p.get("kind") == "call":
            c.tasks_today.append(p["task_id"])

    # -- what they do -----------------------------------------------------------------------
    def morning(self, day: date) -> list[OutgoingEvent]:
        """Collector outcomes on today's call tasks (09:30), purchases (10:xx), repayments
        (11:xx), plan requests (11:30), in the order of their own clock.

        Each comes from its own outside system (the collectors' desk, checkout, the payment
        gateway, the app), so they reach the bus in time order, not customer by customer:
        a purchase at 10:05 is judged before a repayment at 11:00, whoever's they are
        (which matters when two lines share an identity). The sort is stable, so events
        of the same instant keep the customers' order."""
        events: list[OutgoingEvent] = []
        for c in self.customers:
            events.extend(self._call_outcomes(c, day))
            events.extend(self._relief_and_disputes(c, day))
        for c in self.customers:
            events.extend(self._purchases(c, day))
            payment = self._repayment(c, day)
            if payment is not None:
                events.append(payment)
            request = self._plan_request(c, day)
            if request is not None:
                events.append(request)
        return sorted(events, key=lambda event: datetime.fromisoformat(event.occurred_at))

    def midday(self, day: date) -> list[OutgoingEvent]:
        """Acceptances of the offers received this morning."""
        events = []
        for c in self.customers:
            if c.plan_state != "offered" or not c.offered:
                continue
            rng = stream(self.seed, "offer-choice", c.account_id)
            offer = c.offered[rng.randrange(len(c.offered))]
            c.plan_state, c.offered = "accepting", []
            events.append(
                OutgoingEvent(
                    "plan.offer.accepted",
                    c.account_id,
                    {
                        "offer_id": offer["offer_id"],
                        "account_id": c.account_id,
                        "accepted_at": _stamp(day, "12:30:00"),
                    },
                    _stamp(day, "12:30:00"),
                )
            )
        return events

    def _month_of_purchases(self, c: Customer, year: int, month: int) -> list[tuple[int, Decimal]]:
        """(day of month, amount) of the purchases this customer tries in a month."""
        key = (year, month)
        if key not in c.purchase_plan:
            rng = stream(self.seed, "purchases", c.account_id, year, month)
            count = rng.choice((0, 1, 1, 2, 2, 3, 4))
            days = sorted(rng.randrange(1, 29) for _ in range(count))
            budget = c.credit_limit * Decimal(str(round(c.spend_share, 3)))
            c.purchase_plan = {
                key: [
                    (on, (budget / count * Decimal(str(round(rng.uniform(0.5, 1.5), 3)))).quantize(FEN)) for on in days
                ]
            }
        return c.purchase_plan[key]

    def _purchases(self, c: Customer, day: date) -> list[OutgoingEvent]:
        events = []
        for n, (on, amount) in enumerate(self._month_of_purchases(c, day.year, day.month)):
            if on != day.day or amount <= 0:
                continue
            purchase_id = f"sim-pur-{c.index + 1:06d}-{day.isoformat()}-{n}"
            when = _stamp(day, f"10:{(c.index + n) % 60:02d}:00")
            events.append(
                OutgoingEvent(
                    "purchase.requested",
                    c.account_id,
                    {
                        "purchase_id": purchase_id,
                        "account_id": c.account_id,
                        "amount": money(amount),
                        "merchant": "sim-mall",
                        "requested_at": when,
                    },
                    when,
                )
            )
        return events

    def _pay(self, c: Customer, day: date, amount: Decimal, covers: Iterable[str]) -> OutgoingEvent | None:
        if amount <= 0:
            return None
        c.settled_bills.update(covers)
        c.payments += 1
        when = _stamp(day, f"11:{c.index % 60:02d}:00")
        return OutgoingEvent(
            "repayment.received",
            c.account_id,
            {
                "payment_id": f"sim-pay-{c.index + 1:06d}-{c.payments:04d}",
                "account_id": c.account_id,
                "amount": money(amount),
                "currency": "CNY",
                "paid_at": when,
                "channel": "app",
            },
            when,
        )

    def _repayment(self, c: Customer, day: date) -> OutgoingEvent | None:
        """At most one payment a day: the plan installment, a kept promise, or a bill."""
        if c.plan is not None and c.plan_state == "active":
            for period, due, total in c.plan.schedule:
                if period <= c.plan.pays_periods and due == day:
                    return self._pay(c, day, total, ())
        if c.promise_dates and day in c.promise_dates and c.behaviour == PROMISE_KEEPS and c.overdue_on(day):
            return self._pay(c, day, c.snapshot_total, c.snapshot_bills)
        d = c.dispute
        if d is not None and d.state == "resolved" and c.behaviour == DISPUTES_REJECTED and c.overdue_on(day):
            d.state = "paid"  # the rejected amount owes again: paid once the snapshot shows it
            return self._pay(c, day, c.snapshot_total, c.snapshot_bills)
        open_bills = sorted(
            (b for b in c.bills.values() if b.bill_id not in c.settled_bills), key=lambda b: (b.due_date, b.bill_id)
        )
        for bill in open_bills:
            decision = self._bill_decision(c, bill, day)
            if decision is not None:
                return decision
        return None

    def _bill_decision(self, c: Customer, bill: BillSeen, day: date) -> OutgoingEvent | None:
        rng = stream(self.seed, "bill", c.account_id, bill.bill_id)
        before, grace_day, late_day, share = (
            rng.randrange(0, 7),
            rng.randrange(1, 4),
            rng.randrange(5, 41),
            Decimal(str(round(rng.uniform(0.3, 0.8), 2))),
        )
        pays_rest = rng.random() < 0.7
        in_plan_life = c.plan_state in ("active", "completed")
        b = c.behaviour
        if b in DISPUTERS:  # on time, less the amount in dispute (if a dispute is planned on the bill)
            d = c.dispute
            disputed = d.amount if d is not None and d.bill_id == bill.bill_id else Decimal("0")
            if day >= bill.due_date - timedelta(days=before):
                return self._pay(c, day, bill.amount - disputed, (bill.bill_id,))
            return None
        if (
            b == ON_TIME
            or (b == PLAN_KEEPS and in_plan_life)
            or (b == STOPS_PAYING and c.bills_paid_count < stream(self.seed, "stops", c.account_id).randrange(0, 3))
        ):
            if day >= bill.due_date - timedelta(days=before):  # a bill seen late is paid when seen
                c.bills_paid_count += 1
                return self._pay(c, day, bill.amount, (bill.bill_id,))
            return None
        if b == LATE_IN_GRACE and day == bill.due_date + timedelta(days=grace_day):
            return self._pay(c, day, bill.amount, (bill.bill_id,))
        if b in (LATE_AFTER_GRACE, PARTIAL) or (b in PLAN_SEEKERS and c.plan_state == "ineligible"):
            if b == PARTIAL and day == bill.due_date and f"{bill.bill_id}:part" not in c.settled_bills:
                c.settled_bills.add(f"{bill.bill_id}:part")
                return self._pay(c, day, (bill.amount * share).quantize(FEN), ())
            if day == bill.due_date + timedelta(days=late_day) and (b != PARTIAL or pays_rest) and c.overdue_on(day):
                return self._pay(c, day, c.snapshot_total, c.snapshot_bills)
        return None

    def _relief_and_disputes(self, c: Customer, day: date) -> list[OutgoingEvent]:
        """The operators' disaster-relief pause (09:50) and a disputer's dispute: opened from
        the app (09:40), resolved by the operators (09:45) as the behaviour says."""
        events = []
        if c.relief and day == self.start + timedelta(days=RELIEF_DAY):
            until = day + timedelta(days=RELIEF_DAYS)
            payload = {
                "request_id": f"sim-pause-{c.index + 1:06d}",
                "account_id": c.account_id,
                "reason": "disaster_relief",
                "until": until.isoformat(),
                "operator_id": "sim-operator-1",
            }
            events.append(OutgoingEvent("delinquency.pause.requested", c.account_id, payload, _stamp(day, "09:50:00")))
        d = c.dispute
        if d is not None and d.state == "planned" and day == d.open_on:
            d.state = "open"
            payload = {
                "dispute_id": d.dispute_id,
                "account_id": c.account_id,
                "bill_id": d.bill_id,
                "amount": money(d.amount),
                "reason": "not_as_described",
                "opened_at": _stamp(day, "09:40:00"),
            }
            events.append(OutgoingEvent("dispute.opened", c.account_id, payload, _stamp(day, "09:40:00")))
        elif d is not None and d.state == "open" and day == d.resolve_on:
            d.state = "resolved"
            outcome = "upheld" if c.behaviour == DISPUTES_UPHELD else "rejected"
            payload = {
                "resolution_id": f"sim-res-{c.index + 1:06d}",
                "dispute_id": d.dispute_id,
                "outcome": outcome,
                "resolved_by": "sim-operator-2",
            }
            events.append(OutgoingEvent("dispute.resolved", d.dispute_id, payload, _stamp(day, "09:45:00")))
        return events

    def _plan_request(self, c: Customer, day: date) -> OutgoingEvent | None:
        if c.behaviour not in PLAN_SEEKERS or c.plan_state != "none" or not c.overdue_on(day):
            return None
        ask_at = stream(self.seed, "plan-ask", c.account_id).randrange(5, 21)
        if c.max_dpd < ask_at:
            return None
        c.plan_state = "requested"
        payload: dict[str, Any] = {
            "request_id": f"sim-req-{c.index + 1:06d}-{day.isoformat()}",
            "account_id": c.account_id,
        }
        if c.monthly_income is not None:
            payload["monthly_income"] = money(c.monthly_income)
        return OutgoingEvent("plan.offers.requested", c.account_id, payload, _stamp(day, "11:30:00"))

    def _call_outcomes(self, c: Customer, day: date) -> list[OutgoingEvent]:
        """The collector's call on each task created today, as the collectors' desk records it."""
        events = []
        for task_id in sorted(c.tasks_today):
            rng = stream(self.seed, "call", c.account_id, task_id)
            payload: dict[str, Any] = {"task_id": task_id, "account_id": c.account_id}
            promises = c.behaviour == PROMISE_KEEPS or (c.behaviour == PROMISE_BREAKS and rng.random() < 0.6)
            if promises and c.overdue_on(day):
                promised = day + timedelta(days=rng.randrange(1, 6))
                payload.update(
                    outcome="promise_to_pay",
                    promised_amount=money(c.snapshot_total),
                    promised_date=promised.isoformat(),
                )
                c.promise_dates.append(promised)
            else:
                payload["outcome"] = rng.choice(("no_answer", "no_answer", "refused"))
            events.append(OutgoingEvent("collection.outcome.recorded", c.account_id, payload, _stamp(day, "09:30:00")))
        c.tasks_today = []
        return events


def _plan_ended(state: str) -> Any:
    def handle(_: Portfolio, c: Customer, p: dict[str, Any]) -> None:
        if c.plan is not None and c.plan.plan_id == p["plan_id"]:
            c.plan_state = state

    return handle


_OBSERVERS = {
    "bill.issued": Portfolio._bill_issued,
    "account.delinquency.updated": Portfolio._delinquency,
    "plan.offered": Portfolio._offered,
    "plan.ineligible": Portfolio._ineligible,
    "plan.activated": Portfolio._activated,
    "plan.defaulted": _plan_ended("defaulted"),
    "plan.completed": _plan_ended("completed"),
    "collection.task.created": Portfolio._task,
}
