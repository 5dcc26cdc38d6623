"""Restructuring against a real PostgreSQL database, one fresh database per test module.

Events go in exactly as the consumer would apply them (``EventApplier.apply_batch`` on
wire bodies); what the service says comes back from its outbox table.
"""

from __future__ import annotations

import copy
import json
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import Engine, create_engine, delete, select, text

from baitiao import registry
from services.restructuring import jobs
from services.restructuring.registry import HANDLERS
from services.restructuring.models import BUS, JobRun
from shared.bus.handling import Delivery, EventApplier
from shared.bus.outbox import Outbox
from shared.clock import SHANGHAI, FixedClock
from shared.db import make_engine
from shared.events import new_envelope
from shared.jobs import JobContext, JobResult
from shared.migrations import upgrade
from shared.rules import ProductRules
from shared.settings import Settings

PG = "postgresql+psycopg://postgres@127.0.0.1:5432"


def at(day: str, hh_mm: str = "10:00") -> datetime:
    """A Shanghai instant of a business date."""
    return datetime.fromisoformat(f"{day}T{hh_mm}:00").replace(tzinfo=SHANGHAI)


@dataclass
class Restructuring:
    """The service under test: send events in, read the outbox, run the monitor."""

    engine: Engine
    rules: ProductRules = field(default_factory=ProductRules)
    clock: FixedClock = field(default_factory=FixedClock)

    def __post_init__(self) -> None:
        self.applier = EventApplier("restructuring", self.engine, BUS, HANDLERS, self.rules, self.clock, max_attempts=1)

    def send(
        self,
        event_type: str,
        payload: dict[str, Any],
        when: datetime,
        *,
        aggregate_id: str | None = None,
        sequence: int | None = None,
    ) -> None:
        """Apply one event; a handler failure fails the test with the handler's error."""
        self.clock.set(when)
        envelope = new_envelope(
            event_type,
            payload,
            aggregate_id=aggregate_id or payload.get("account_id") or payload.get("plan_id"),
            producer="test",
            occurred_at=when,
            sequence=sequence,
        )
        delivery = Delivery(body=json.dumps(envelope).encode())
        outcome = self.applier.apply_batch([delivery])
        if outcome.dead_lettered or outcome.retry:
            raise AssertionError(f"{event_type} failed: {delivery.last_error}")

    def mark(self) -> int:
        with self.engine.connect() as conn:
            return conn.scalar(select(BUS.outbox.c.id).order_by(BUS.outbox.c.id.desc()).limit(1)) or 0

    def emitted(self, after: int = 0, event_type: str | None = None) -> list[tuple[str, dict[str, Any]]]:
        """(type, payload) of every event written to the outbox after the mark, in order."""
        query = select(BUS.outbox.c.type, BUS.outbox.c.payload).where(BUS.outbox.c.id > after).order_by(BUS.outbox.c.id)
        with self.engine.connect() as conn:
            rows = conn.execute(query).all()
        return [(t, json.loads(body)) for t, body in rows if event_type is None or t == event_type]

    def payloads(self, after: int, event_type: str) -> list[dict[str, Any]]:
        return [body for _, body in self.emitted(after, event_type)]

    def monitor(self, day: str, *, forget_earlier_run: bool = True, deliveries: int = 1) -> JobResult:
        """Run plan-monitor for ``day``. Tests share one database, so by default an earlier
        test's run of the same date is forgotten first (each test is its own timeline).
        ``deliveries``: each slice run that many times from the state it was sent with, as
        kombu delivers a slice again whose worker died before acknowledging it."""
        business_day = date.fromisoformat(day)
        if forget_earlier_run:
            with self.engine.begin() as conn:
                conn.execute(delete(JobRun).where(JobRun.job == "plan-monitor", JobRun.business_date == business_day))
        self.clock.set(at(day, "01:00"))
        ctx = JobContext(
            service="restructuring",
            job="plan-monitor",
            business_date=business_day,
            at="01:00",
            engine=self.engine,
            outbox=Outbox(BUS.outbox),
            rules=self.rules,
            clock=self.clock,
            settings=Settings(),
            run=uuid.uuid4().hex,
        )
        state: dict[str, Any] = {}
        while True:
            for _ in range(deliveries):
                ctx.state = copy.deepcopy(state)
                result = jobs.plan_monitor(ctx)
            if not result.more:
                return result
            state = result.state

    # --- scenario helpers ---------------------------------------------------------------

    def overdue_account(
        self,
        account: str,
        *,
        principal: str = "2970.00",
        late_fee: str = "30.00",
        penalty: str = "0.00",
        income: str | None = "20000.00",
        opened_on: str = "2023-01-01",
        due: str = "2026-03-10",
        day: str = "2026-03-20",
        dpd: int = 10,
        bill: str | None = None,
    ) -> str:
        """A line granted long ago, one bill overdue since its due date, as accounts reports it."""
        bill_id = bill or f"{account}-b1"
        grant: dict[str, Any] = {
            "account_id": account,
            "customer_id": f"c-{account}",
            "identity_hash": "h" * 16,
            "credit_limit": "5000.00",
            "name": "张三",
            "phone": "13800005678",
            "opened_on": opened_on,
        }
        if income is not None:
            grant["monthly_income"] = income
        self.send("credit.line.granted", grant, at(opened_on))
        self.send(
            "bill.issued",
            {
                "bill_id": bill_id,
                "account_id": account,
                "statement_date": "2026-03-01",
                "due_date": due,
                "amount": principal,
            },
            at("2026-03-01", "00:10"),
            sequence=1,
        )
        self.send(
            "bill.overdue",
            {
                "bill_id": bill_id,
                "account_id": account,
                "due_date": due,
                "business_date": "2026-03-11",
                "dpd": 1,
                "unpaid_principal": principal,
            },
            at("2026-03-11", "00:30"),
            sequence=2,
        )
        total = Decimal(principal) + Decimal(late_fee) + Decimal(penalty)
        self.send(
            "account.delinquency.updated",
            {
                "account_id": account,
                "business_date": day,
                "max_dpd": dpd,
                "overdue_principal": principal,
                "penalty_interest": penalty,
                "late_fees": late_fee,
                "total_overdue": str(total),
                "bills": [
                    {
                        "bill_id": bill_id,
                        "due_date": due,
                        "dpd": dpd,
                        "unpaid_principal": principal,
                        "penalty_interest": penalty,
                        "late_fee": late_fee,
                    }
                ],
            },
            at(day, "00:30"),
            sequence=3,
        )
        return bill_id

    def request_offers(self, account: str, request_id: str, when: datetime, income: str | None = None) -> int:
        mark = self.mark()
        payload: dict[str, Any] = {"request_id": request_id, "account_id": account}
        if income is not None:
            payload["monthly_income"] = income
        self.send("plan.offers.requested", payload, when)
        return mark

    def offer(self, after: int, term: int) -> dict[str, Any]:
        (offered,) = self.payloads(after, "plan.offered")
        return next(o for o in offered["offers"] if o["term"] == term)

    def activate(
        self, account: str, term: int = 6, accepted: str = "2026-03-22", requested: str = "2026-03-20"
    ) -> dict[str, Any]:
        """Overdue account → offers → accept ``term`` → the ``plan.activated`` payload."""
        self.overdue_account(account)
        mark = self.request_offers(account, f"req-{account}", at(requested))
        offer = self.offer(mark, term)
        mark = self.mark()
        self.send(
            "plan.offer.accepted",
            {"offer_id": offer["offer_id"], "account_id": account, "accepted_at": at(accepted).isoformat()},
            at(accepted),
        )
        (activated,) = self.payloads(mark, "plan.activated")
        return activated

    def pay_plan(self, account: str, plan_id: str, payment_id: str, amount: str, day: str) -> int:
        mark = self.mark()
        self.send(
            "repayment.applied",
            {
                "payment_id": payment_id,
                "account_id": account,
                "amount": amount,
                "allocations": [{"target": "plan", "target_id": plan_id, "component": "plan", "amount": amount}],
                "credit_balance": "0.00",
                "total_overdue": "0.00",
            },
            at(day, "12:00"),
        )
        return mark


def _drop(name: str) -> None:
    admin = create_engine(f"{PG}/postgres", isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


@pytest.fixture(scope="module")
def rs() -> Iterator[Restructuring]:
    name = f"bt_rs_{uuid.uuid4().hex[:12]}"
    url = f"{PG}/{name}"
    upgrade(registry.definition("restructuring"), url)
    engine = make_engine(url)
    try:
        yield Restructuring(engine)
    finally:
        engine.dispose()
        _drop(name)
