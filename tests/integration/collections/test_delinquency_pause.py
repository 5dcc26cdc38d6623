"""RULES 2.8 in collections: a paused account is contacted by nobody (every contact, task
and notice suppressed ``paused``, queued ones included); after the resume its DPD counts
on from where it stood, as accounts' does."""

from __future__ import annotations

from datetime import date, timedelta

import pytest
from sqlalchemy import select

from services.collections.models import Bill, CollectorTask, ContactAttempt
from shared.clock import at_local
from shared.db import transaction

from .conftest import World, days

pytestmark = pytest.mark.integration

DUE = date(2026, 3, 10)
PAUSED = date(2026, 3, 12)


def paused(world: World, account: str, on: date = PAUSED) -> None:
    world.send(
        "delinquency.paused",
        {
            "request_id": f"pause-{account}",
            "account_id": account,
            "reason": "disaster_relief",
            "paused_on": on.isoformat(),
            "until": None,
            "operator_id": "op-1",
        },
        at=at_local(on, "10:00"),
    )


def resumed(world: World, account: str, bill_id: str, on: date, days_not_counted: int) -> None:
    world.send(
        "delinquency.resumed",
        {
            "request_id": None,
            "account_id": account,
            "pause_reason": "disaster_relief",
            "paused_on": PAUSED.isoformat(),
            "resumed_on": on.isoformat(),
            "resumed_by": "until",
            "operator_id": None,
            "bills": [{"bill_id": bill_id, "dpd": 2, "days_not_counted": days_not_counted}],
        },
        at=at_local(on + timedelta(days=1), "00:30"),
    )


def test_nobody_contacts_a_paused_account(world: World) -> None:
    account, bill_id = "pause-1", "pause-1-b1"
    world.grant(account)
    world.bill(account, bill_id, DUE)
    for day in days(DUE + timedelta(days=1), PAUSED):
        world.close_day(account, bill_id, DUE, day)
        world.daily(day, at="07:00")  # queued for 08:00, not yet sent
    paused(world, account)
    for day in days(PAUSED, PAUSED + timedelta(days=40)):
        world.day(day)
    assert world.events(account, "reminder.sent") == []
    assert world.events(account, "collection.task.created") == []
    assert world.events(account, "collection.notice.sent") == []
    assert world.events(account, "collection.escalated") == []
    assert {e["reason"] for e in world.events(account, "contact.suppressed")} == {"paused"}
    with transaction(world.engine) as session:
        statuses = {
            c.status for c in session.scalars(select(ContactAttempt).where(ContactAttempt.account_id == account))
        }
        tasks = session.scalars(select(CollectorTask).where(CollectorTask.account_id == account)).all()
    assert statuses <= {"suppressed"} and tasks == []


def test_after_the_resume_dpd_counts_on_and_contact_resumes(world: World) -> None:
    account, bill_id = "pause-2", "pause-2-b1"
    world.grant(account)
    world.bill(account, bill_id, DUE)
    world.close_day(account, bill_id, DUE, DUE + timedelta(days=1))
    paused(world, account)
    resumed(world, account, bill_id, date(2026, 3, 31), 19)
    with transaction(world.engine) as session:
        bill = session.get(Bill, bill_id)
        assert bill is not None and bill.due_date == DUE + timedelta(days=19)
    world.day(date(2026, 4, 1))
    sent = world.events(account, "reminder.sent")
    assert sent and all(e["business_date"] == "2026-04-01" for e in sent)


def test_a_pause_delivered_after_its_resume_changes_nothing(world: World) -> None:
    account, bill_id = "pause-3", "pause-3-b1"
    world.grant(account)
    world.bill(account, bill_id, DUE)
    world.close_day(account, bill_id, DUE, DUE + timedelta(days=1))
    resumed(world, account, bill_id, date(2026, 3, 31), 19)
    paused(world, account)
    world.day(date(2026, 4, 1))
    assert world.events(account, "reminder.sent")
