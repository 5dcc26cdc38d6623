"""Figures from what was seen on the bus (the observer queue), day by day.

The services' tables say where things ended; the events say how they got there:
the delinquency snapshots of each close give the buckets over time and the
month-end positions the roll rates are computed from.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from typing import Any

BUCKETS = ("current", "1-3", "4-30", "31-60", "61-90", "91-179", "180+", "in_plan")
PAST_DUE = ("1-3", "4-30", "31-60", "61-90", "91-179", "180+")
THIRTY_PLUS = ("31-60", "61-90", "91-179", "180+")
SIXTY_PLUS = ("61-90", "91-179", "180+")
NINETY_PLUS = ("91-179", "180+")


def bucket_of(max_dpd: int) -> str:
    if max_dpd <= 0:
        return "current"
    if max_dpd <= 3:
        return "1-3"
    if max_dpd <= 30:
        return "4-30"
    if max_dpd <= 60:
        return "31-60"
    if max_dpd <= 90:
        return "61-90"
    if max_dpd < 180:
        return "91-179"
    return "180+"


@dataclass
class Tally:
    """Counters over the observed events; ``close_day`` turns the day's snapshots into a row."""

    accounts: int
    types: Counter[str] = field(default_factory=Counter)
    bills_issued: dict[str, Decimal] = field(default_factory=dict)
    payments_applied: dict[str, set[str]] = field(default_factory=lambda: defaultdict(set))  # payment id -> event ids
    applied_amount: Decimal = Decimal("0")
    payments_rejected: Counter[str] = field(default_factory=Counter)
    purchases: Counter[str] = field(default_factory=Counter)
    declines: Counter[str] = field(default_factory=Counter)
    suppressed: Counter[str] = field(default_factory=Counter)
    reminders: Counter[str] = field(default_factory=Counter)
    tasks: Counter[str] = field(default_factory=Counter)
    plan_requests: Counter[str] = field(default_factory=Counter)
    plan_events: Counter[str] = field(default_factory=Counter)
    closed_cases: Counter[str] = field(default_factory=Counter)
    reminder_ids: set[str] = field(default_factory=set)
    task_ids: set[str] = field(default_factory=set)
    plans_activated: set[str] = field(default_factory=set)
    charged_off: dict[str, Decimal] = field(default_factory=dict)
    # day -> account -> max_dpd from that day's close (only the accounts with an overdue bill)
    _today: dict[str, int] = field(default_factory=dict)
    _in_plan: set[str] = field(default_factory=set)
    timeline: list[dict[str, Any]] = field(default_factory=list)
    month_end: dict[str, dict[str, str]] = field(default_factory=dict)  # "YYYY-MM" -> account -> bucket
    daily_money: list[dict[str, Any]] = field(default_factory=list)
    _day_money: dict[str, Decimal] = field(default_factory=lambda: defaultdict(Decimal))
    account_ids: list[str] = field(default_factory=list)

    def observe(self, events: list[dict[str, Any]]) -> None:
        for event in events:
            kind = event.get("type", "")
            self.types[kind] += 1
            p = event.get("payload", {})
            handler = _HANDLERS.get(kind)
            if handler is not None:
                handler(self, p, event)

    def _bill_issued(self, p: dict[str, Any], _: dict[str, Any]) -> None:
        if p["bill_id"] not in self.bills_issued:
            self.bills_issued[p["bill_id"]] = Decimal(p["amount"])
            self._day_money["billed"] += Decimal(p["amount"])

    def _applied(self, p: dict[str, Any], e: dict[str, Any]) -> None:
        first = p["payment_id"] not in self.payments_applied
        self.payments_applied[p["payment_id"]].add(e["event_id"])
        if first and not p["payment_id"].startswith("credit-balance-"):
            self.applied_amount += Decimal(p["amount"])
            self._day_money["repaid"] += Decimal(p["amount"])

    def _delinquency(self, p: dict[str, Any], _: dict[str, Any]) -> None:
        self._today[p["account_id"]] = int(p["max_dpd"])

    def _plan(self, p: dict[str, Any], e: dict[str, Any]) -> None:
        kind = e["type"]
        self.plan_events[kind] += 1
        if kind == "plan.activated":
            self.plans_activated.add(p["plan_id"])
            self._in_plan.add(p["account_id"])
        elif kind in ("plan.completed", "plan.defaulted"):
            self._in_plan.discard(p["account_id"])

    def close_day(self, day: date, last_of_month: bool) -> None:
        """Record the day's bucket counts (from the close's snapshots) and money."""
        positions = {acc: bucket_of(dpd) for acc, dpd in self._today.items()}
        for acc in self._in_plan:
            if positions.get(acc, "current") == "current":
                positions[acc] = "in_plan"
        counts = Counter(positions.values())
        counts["current"] = self.accounts - sum(n for b, n in counts.items() if b != "current")
        self.timeline.append({"date": day.isoformat(), **{b: counts.get(b, 0) for b in BUCKETS}})
        if last_of_month:
            self.month_end[day.strftime("%Y-%m")] = positions
        self.daily_money.append(
            {
                "date": day.isoformat(),
                "billed": str(self._day_money["billed"]),
                "repaid": str(self._day_money["repaid"]),
            }
        )
        self._today = {}
        self._day_money = defaultdict(Decimal)

    def roll_rates(self) -> dict[str, dict[str, Any]]:
        """From each month-end bucket to the next month-end's: counts and row shares."""
        months = sorted(self.month_end)
        counts: dict[str, Counter[str]] = {b: Counter() for b in BUCKETS}
        for before, after in zip(months, months[1:]):
            start, end = self.month_end[before], self.month_end[after]
            for acc in self.account_ids:
                counts[start.get(acc, "current")][end.get(acc, "current")] += 1
        matrix: dict[str, dict[str, Any]] = {}
        for origin in BUCKETS:
            total = sum(counts[origin].values())
            matrix[origin] = {
                "accounts": total,
                "to": {b: counts[origin][b] for b in BUCKETS},
                "share": {b: (round(counts[origin][b] / total, 4) if total else None) for b in BUCKETS},
            }
        return {"months": months, "matrix": matrix}

    def vintages(self, opened_on: dict[str, date]) -> dict[str, dict[str, dict[str, int]]]:
        """30+ by months on book, per opening year: for each cohort and months-on-book value,
        the account-month-ends seen and how many of them were more than 30 days past due.

        Accounts were opened one to four years before the run, so a cohort is an opening
        year (an opening month would give some fifty lines of a few points each).
        """
        cohorts: dict[str, dict[int, list[int]]] = defaultdict(lambda: defaultdict(lambda: [0, 0]))
        for month, positions in sorted(self.month_end.items()):
            year, mon = (int(x) for x in month.split("-"))
            for acc in self.account_ids:
                opened = opened_on.get(acc)
                if opened is None:
                    continue
                on_book = (year - opened.year) * 12 + mon - opened.month
                cell = cohorts[str(opened.year)][on_book]
                cell[0] += 1
                cell[1] += positions.get(acc, "current") in THIRTY_PLUS
        return {
            cohort: {str(m): {"accounts": n, "30+": k} for m, (n, k) in sorted(cells.items())}
            for cohort, cells in sorted(cohorts.items())
        }


def _count(attr: str, key: str) -> Any:
    def handle(self: Tally, p: dict[str, Any], _: dict[str, Any]) -> None:
        getattr(self, attr)[p.get(key, "?")] += 1

    return handle


def _reminder(self: Tally, p: dict[str, Any], _: dict[str, Any]) -> None:
    if p["message_id"] not in self.reminder_ids:
        self.reminder_ids.add(p["message_id"])
        self.reminders[p.get("template", "?")] += 1


def _task(self: Tally, p: dict[str, Any], _: dict[str, Any]) -> None:
    if p["task_id"] not in self.task_ids:
        self.task_ids.add(p["task_id"])
        self.tasks[p.get("kind", "?")] += 1


def _charged_off(self: Tally, p: dict[str, Any], _: dict[str, Any]) -> None:
    self.charged_off[p["bill_id"]] = Decimal(p["amount"])


_HANDLERS = {
    "bill.issued": Tally._bill_issued,
    "repayment.applied": Tally._applied,
    "repayment.rejected": _count("payments_rejected", "reason"),
    "account.delinquency.updated": Tally._delinquency,
    "purchase.approved": lambda self, p, e: self.purchases.update(["approved"]),
    "purchase.declined": lambda self, p, e: (self.purchases.update(["declined"]), self.declines.update([p["reason"]])),
    "contact.suppressed": _count("suppressed", "reason"),
    "reminder.sent": _reminder,
    "collection.task.created": _task,
    "collection.case.closed": _count("closed_cases", "reason"),
    "plan.offered": lambda self, p, e: self.plan_requests.update(["offered"]),
    "plan.ineligible": lambda self, p, e: self.plan_requests.update([f"ineligible:{p['reason']}"]),
    "plan.activated": Tally._plan,
    "plan.completed": Tally._plan,
    "plan.defaulted": Tally._plan,
    "plan.installment.overdue": Tally._plan,
    "plan.installment.paid": Tally._plan,
    "bill.charged_off": _charged_off,
}
