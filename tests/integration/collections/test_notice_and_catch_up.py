"""collections-daily after missed dates (RULES 6.11) and the pre-report notice (RULES 6.10),
on a real PostgreSQL: the missed dates run in order without late contacts, the notice owed
goes out on the business date by SMS, or by a letter task when no own phone is known."""

from __future__ import annotations

from datetime import date, timedelta

from sqlalchemy import select, update

from services.collections.models import Bill, CollectionCase, CollectorTask, JobRun
from shared.db import transaction
from tests.integration.collections.conftest import World

DUE = date(2026, 3, 10)
OWN, WRONG = "ntc-own", "ntc-wrong"


def _notice_dates(world: World, account: str) -> list[date | None]:
    with transaction(world.engine) as session:
        return list(session.scalars(select(Bill.report_notice_on).where(Bill.account_id == account)).all())


def test_missed_dates_run_in_order_and_the_notice_goes_out_on_the_business_date(world: World) -> None:
    for account in (OWN, WRONG):
        world.grant(account)
        world.bill(account, f"{account}-b1", DUE)
    world.daily(DUE - timedelta(days=1))  # D-1: the pre-due SMS queued, the dispatcher never runs that day
    world.daily(DUE)
    with transaction(world.engine) as session:  # what a collector's `wrong_number` outcome leaves
        session.execute(
            update(CollectionCase).where(CollectionCase.account_id == WRONG).values(phone_reported_wrong=True)
        )
    today = DUE + timedelta(days=5)
    for day in (DUE + timedelta(days=n) for n in range(1, 6)):
        for account in (OWN, WRONG):
            world.close_day(account, f"{account}-b1", DUE, day)

    summary = world.daily(today)

    assert summary["dates_run"] == [(DUE + timedelta(days=n)).isoformat() for n in range(1, 6)]
    # grade C: DPD 1 (the notice), DPD 3 and the early SMS of DPD 4, for two accounts, on missed dates
    assert summary["contacts_skipped_past_date"] == 6 and "past_date" in summary["skipped"]
    assert (summary["notices_queued"], summary["letters_created"]) == (1, 1)
    assert summary["escalations"] == 4  # pre-due -> grace on DPD 1, grace -> early on DPD 4, each
    with transaction(world.engine) as session:
        done = session.scalars(
            select(JobRun.business_date).where(
                JobRun.job == "collections-daily", JobRun.status == "done", JobRun.business_date > DUE
            )
        ).all()
        letter = session.scalars(select(CollectorTask).where(CollectorTask.account_id == WRONG)).one()
    assert sorted(done) == [DUE + timedelta(days=n) for n in range(1, 6)]
    assert (letter.kind, letter.created_on, letter.status) == ("letter", today, "open")
    assert [(e["kind"], e["due_by"]) for e in world.events(WRONG, "collection.task.created")] == [
        ("letter", (today + timedelta(days=1)).isoformat())
    ]
    assert [
        (e["channel"], e["bill_ids"], e["business_date"]) for e in world.events(WRONG, "collection.notice.sent")
    ] == [("letter", [f"{WRONG}-b1"], today.isoformat())]
    assert _notice_dates(world, WRONG) == [today] and _notice_dates(world, OWN) == [None]
    assert world.events(OWN, "collection.notice.sent") == []  # not before the SMS goes out

    world.dispatch(today, "09:00")

    assert [(e["template"], e["business_date"]) for e in world.events(OWN, "reminder.sent")] == [
        ("grace_first", today.isoformat())
    ]
    assert [(e["template"], e["reason"]) for e in world.events(OWN, "contact.suppressed")] == [
        ("pre_due", "past_date")
    ]  # the D-1 SMS is not sent five days late
    notice = world.events(OWN, "collection.notice.sent")
    assert [(e["channel"], e["bill_ids"], e["business_date"]) for e in notice] == [
        ("sms", [f"{OWN}-b1"], today.isoformat())
    ]
    assert notice[0]["notice_id"] == world.events(OWN, "reminder.sent")[0]["message_id"]
    assert _notice_dates(world, OWN) == [today]
    assert world.events(WRONG, "reminder.sent") == []

    again = world.daily(today)  # the same date again: nothing planned twice
    assert again["dates_run"] == [today.isoformat()]
    assert (again.get("notices_queued", 0), again.get("letters_created", 0)) == (0, 0)
    tomorrow = today + timedelta(days=1)
    for account in (OWN, WRONG):
        world.close_day(account, f"{account}-b1", DUE, tomorrow)
    later = world.daily(tomorrow)
    assert later["dates_run"] == [tomorrow.isoformat()]
    assert (later.get("notices_queued", 0), later.get("letters_created", 0)) == (0, 0)
    assert len(world.events(OWN, "collection.notice.sent")) == len(world.events(WRONG, "collection.notice.sent")) == 1
