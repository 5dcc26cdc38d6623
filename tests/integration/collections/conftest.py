"""A real PostgreSQL database per test module, and a small world to drive collections.

Events go in through ``EventApplier.apply_batch`` exactly as the worker's consumer
applies them; jobs are called as the Celery task would call them, with a JobContext
for the test's engine; what collections said is read back from its outbox.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, select, text
from sqlalchemy.engine import make_url

from baitiao import registry
from services.collections import jobs
from services.collections.registry import HANDLERS
from services.collections.models import BUS
from services.collections.sms_gateway import SmsGateway
from shared.bus.handling import Delivery, EventApplier
from shared.bus.outbox import Outbox
from shared.clock import FixedClock, at_local
from shared.db import make_engine
from shared.events import new_envelope
from shared.jobs import JobContext
from shared.migrations import upgrade
from shared.rules import ProductRules
from shared.settings import Settings

PG_ADMIN = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"


@pytest.fixture(scope="module")
def pg_url() -> Iterator[str]:
    """A fresh database bt_col_<random>, migrated to head, dropped afterwards."""
    name = f"bt_col_{uuid.uuid4().hex[:10]}"
    url = str(make_url(PG_ADMIN).set(database=name).render_as_string(hide_password=False))
    try:
        upgrade(registry.definition("collections"), url)
    except Exception as exc:  # noqa: BLE001
        pytest.skip(f"PostgreSQL not available: {exc}")
    yield url
    admin = create_engine(PG_ADMIN, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


class World:
    """Drives the collections service like the bus and the beat would."""

    def __init__(self, url: str, tmp: Path):
        self.engine = make_engine(url)
        self.rules = ProductRules()
        self.clock = FixedClock()
        self.settings = Settings(data_dir=tmp, sms_file_path=tmp / "sms.jsonl")
        self.applier = EventApplier("collections", self.engine, BUS, HANDLERS, self.rules, self.clock)
        self.sequence = 0

    # --- events in -------------------------------------------------------------------------

    def send(
        self,
        event_type: str,
        payload: dict[str, Any],
        *,
        at: datetime,
        aggregate_id: str | None = None,
        sequence: int | None = None,
        producer: str = "accounts",
    ) -> None:
        """Apply one event through the applier (a batch of one), as the consumer would."""
        if sequence is None:
            self.sequence += 1
            sequence = self.sequence
        envelope = new_envelope(
            event_type,
            payload,
            aggregate_id=aggregate_id or payload.get("account_id", "x"),
            producer=producer,
            occurred_at=at,
            sequence=sequence,
        )
        self.clock.set(at)
        outcome = self.applier.apply_batch([Delivery(body=json.dumps(envelope).encode())])
        assert outcome.applied == 1, (event_type, outcome, outcome.retry and outcome.retry[0].last_error)

    def grant(
        self, account: str, *, name: str = "张三丰", phone: str = "13812345678", on: date = date(2026, 2, 1)
    ) -> None:
        self.send(
            "credit.line.granted",
            {
                "account_id": account,
                "customer_id": f"cust-{account}",
                "identity_hash": "h" * 16,
                "credit_limit": "5000.00",
                "name": name,
                "phone": phone,
                "opened_on": on.isoformat(),
            },
            at=at_local(on, "09:00"),
            producer="origination",
        )

    def grade(self, account: str, grade: str) -> None:
        self.send(
            "risk.assessed",
            {"account_id": account, "score": 600, "grade": grade, "factors": []},
            at=at_local(date(2026, 3, 1), "01:00"),
            producer="restructuring",
        )

    def bill(self, account: str, bill_id: str, due: date, amount: str = "1000.00") -> None:
        statement = due.replace(day=1)
        self.send(
            "bill.issued",
            {
                "bill_id": bill_id,
                "account_id": account,
                "statement_date": statement.isoformat(),
                "due_date": due.isoformat(),
                "amount": amount,
            },
            at=at_local(statement, "00:10"),
        )

    def close_day(self, account: str, bill_id: str, due: date, day: date, unpaid: str = "1000.00") -> None:
        """What accounts' daily close of ``day`` says about this account."""
        dpd = (day - due).days
        if dpd == 1:
            self.send(
                "bill.overdue",
                {
                    "bill_id": bill_id,
                    "account_id": account,
                    "due_date": due.isoformat(),
                    "business_date": day.isoformat(),
                    "dpd": dpd,
                    "unpaid_principal": unpaid,
                },
                at=at_local(day, "00:30"),
            )
        self.send(
            "account.delinquency.updated",
            {
                "account_id": account,
                "business_date": day.isoformat(),
                "max_dpd": dpd,
                "overdue_principal": unpaid,
                "penalty_interest": "0.00",
                "late_fees": "0.00",
                "total_overdue": unpaid,
                "bills": [
                    {
                        "bill_id": bill_id,
                        "due_date": due.isoformat(),
                        "dpd": dpd,
                        "unpaid_principal": unpaid,
                        "penalty_interest": "0.00",
                        "late_fee": "0.00",
                    }
                ],
            },
            at=at_local(day, "00:31"),
        )

    # --- jobs ----------------------------------------------------------------------------------

    def context(self, job: str, day: date, at: str | None) -> JobContext:
        return JobContext(
            service="collections",
            job=job,
            business_date=day,
            at=at,
            engine=self.engine,
            outbox=Outbox(BUS.outbox),
            rules=self.rules,
            clock=self.clock,
            settings=self.settings,
        )

    def daily(self, day: date, at: str | None = None) -> dict[str, Any]:
        """collections-daily for a date, following continuation slices to the end."""
        self.clock.set(at_local(day, at or "08:00"))
        ctx = self.context("collections-daily", day, at)
        while True:
            result = jobs.collections_daily(ctx)
            if not result.more:
                return result.summary
            ctx.state = result.state

    def dispatch(self, day: date, at: str = "08:00", gateway: SmsGateway | None = None) -> dict[str, Any]:
        self.clock.set(at_local(day, at))
        ctx = self.context("contact-dispatch", day, at)
        totals: dict[str, Any] = {}
        while True:
            result = jobs.contact_dispatch(ctx, gateway)
            for key, value in result.summary.items():
                if isinstance(value, int):
                    totals[key] = totals.get(key, 0) + value
            if not result.more:
                return totals

    def day(self, day: date, gateway: SmsGateway | None = None) -> None:
        """The morning of a business date: the strategy run, then the first dispatch."""
        self.daily(day)
        self.dispatch(day, "08:00", gateway)

    # --- what came out ---------------------------------------------------------------------------

    def events(self, account: str, event_type: str | None = None) -> list[dict[str, Any]]:
        table = BUS.outbox
        query = select(table.c.type, table.c.payload, table.c.occurred_at).where(table.c.aggregate_id == account)
        if event_type:
            query = query.where(table.c.type == event_type)
        with self.engine.connect() as conn:
            rows = conn.execute(query.order_by(table.c.id)).all()
        return [{"type": r.type, **json.loads(r.payload), "_at": r.occurred_at} for r in rows]


@pytest.fixture(scope="module")
def world(pg_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    w = World(pg_url, tmp_path_factory.mktemp("collections"))
    yield w
    w.engine.dispose()


def days(first: date, last: date) -> list[date]:
    return [first + timedelta(days=i) for i in range((last - first).days + 1)]
