"""Collections through the bus and its jobs, against a real PostgreSQL database.

RULES section 6: pre-due reminders per grade, cure stops everything (even what was
queued), quiet hours defer, the daily SMS cap, escalation to call, agency (61) and
legal (91), promises pause and a broken one escalates at once.
"""

from __future__ import annotations

from datetime import date, timedelta

import pytest
from sqlalchemy import select

from services.collections.models import CollectionCase, CollectorTask, ContactAttempt, PromiseToPay, SmsMessage
from shared.clock import at_local
from shared.db import transaction

from .conftest import World, days

pytestmark = pytest.mark.integration

DUE = date(2026, 3, 10)


def sent(world: World, account: str) -> list[tuple[str, str]]:
    """(business date, template) of every reminder.sent of the account."""
    return [(e["business_date"], e["template"]) for e in world.events(account, "reminder.sent")]


def test_pre_due_reminders_on_the_right_days_per_grade(world: World) -> None:
    for account, grade in (("pd-a", "A"), ("pd-c", None), ("pd-d", "D")):
        world.grant(account)
        if grade:
            world.grade(account, grade)
        world.bill(account, f"{account}-b1", DUE)
    for day in days(date(2026, 3, 5), DUE):
        world.day(day)
    assert sent(world, "pd-a") == [("2026-03-09", "pre_due")]
    assert sent(world, "pd-c") == [("2026-03-07", "pre_due"), ("2026-03-09", "pre_due")]
    assert sent(world, "pd-d") == [("2026-03-07", "pre_due"), ("2026-03-09", "pre_due"), ("2026-03-10", "due_today")]
    with transaction(world.engine) as session:
        texts = session.scalars(select(SmsMessage.text).where(SmsMessage.account_id == "pd-c")).all()
    assert texts and all("张**" in t and "张三丰" not in t for t in texts)
    assert all("1000.00" in t and "3月10日" in t for t in texts)


def test_no_sms_after_cure_including_one_already_queued(world: World) -> None:
    account = "cure-1"
    world.grant(account)
    world.bill(account, "cure-1-b1", DUE)
    day1 = DUE + timedelta(days=1)
    world.close_day(account, "cure-1-b1", DUE, day1)
    world.daily(day1)  # grace_first queued for 08:00
    with transaction(world.engine) as session:
        queued = session.scalars(select(ContactAttempt).where(ContactAttempt.account_id == account)).all()
    assert [(c.template, c.status) for c in queued] == [("grace_first", "queued")]
    world.send("account.cured", {"account_id": account, "business_date": day1.isoformat()}, at=at_local(day1, "07:30"))
    world.dispatch(day1, "08:00")
    for day in days(day1 + timedelta(days=1), day1 + timedelta(days=10)):
        world.day(day)
    assert sent(world, account) == []
    suppressed = world.events(account, "contact.suppressed")
    assert [(e["template"], e["reason"]) for e in suppressed] == [("grace_first", "cured")]
    assert [e["reason"] for e in world.events(account, "collection.case.closed")] == ["cured"]


def test_contact_planned_for_2130_goes_out_at_0800_next_day(world: World) -> None:
    account = "late-1"
    world.grant(account)
    world.bill(account, "late-1-b1", DUE)
    d_minus_1 = DUE - timedelta(days=1)
    world.daily(d_minus_1, at="21:30")
    world.dispatch(d_minus_1, "21:30")
    assert sent(world, account) == []
    assert [e["reason"] for e in world.events(account, "contact.suppressed")] == ["quiet_hours"]
    world.dispatch(DUE, "07:59")
    assert sent(world, account) == []
    world.dispatch(DUE, "08:00")
    reminders = world.events(account, "reminder.sent")
    assert [(r["template"], r["business_date"]) for r in reminders] == [("pre_due", DUE.isoformat())]
    assert reminders[0]["sent_at"].startswith(f"{DUE.isoformat()}T08:00:00")
    with transaction(world.engine) as session:
        contact = session.scalar(select(ContactAttempt).where(ContactAttempt.account_id == account))
    assert contact.status == "sent" and contact.deferrals == 1


def test_daily_sms_cap_one_per_account_per_day(world: World) -> None:
    """Grade D: D-1's SMS deferred from 21:30 meets D0's own SMS at 08:00: only one goes."""
    account = "cap-1"
    world.grant(account)
    world.grade(account, "D")
    world.bill(account, "cap-1-b1", DUE)
    world.daily(DUE - timedelta(days=1), at="21:30")
    world.dispatch(DUE - timedelta(days=1), "21:30")
    world.daily(DUE)
    world.dispatch(DUE, "08:00")
    world.dispatch(DUE, "12:00")
    assert len(sent(world, account)) == 1
    reasons = [e["reason"] for e in world.events(account, "contact.suppressed")]
    assert reasons == ["quiet_hours", "daily_cap"]


def test_escalation_to_call_agency_and_legal(world: World) -> None:
    account = "esc-1"
    world.grant(account)
    world.bill(account, "esc-1-b1", DUE)
    world.day(DUE - timedelta(days=3))
    for dpd in (1, 2, 3, 4, 30, 31, 32, 60, 61, 62, 90, 91, 92):
        day = DUE + timedelta(days=dpd)
        world.close_day(account, "esc-1-b1", DUE, day)
        world.day(day)
    escalations = [
        (e["from_stage"], e["to_stage"], e["business_date"]) for e in world.events(account, "collection.escalated")
    ]
    assert escalations == [
        ("pre_due", "grace", "2026-03-11"),
        ("grace", "early", "2026-03-14"),
        ("early", "mid", "2026-04-10"),
        ("mid", "late", "2026-05-10"),
        ("late", "legal", "2026-06-09"),
    ]
    tasks = [(e["kind"], e["stage"], e["due_by"]) for e in world.events(account, "collection.task.created")]
    # DPD 60 is not a call day, but DPD 59's call was skipped (the job did not run): caught up
    assert tasks == [
        ("call", "mid", "2026-04-10"),
        ("call", "mid", "2026-05-09"),
        ("agency", "late", "2026-05-13"),
        ("legal", "legal", "2026-06-14"),
    ]
    assert ("2026-03-11", "grace_first") in sent(world, account)
    # a re-run of a day plans nothing twice
    world.daily(DUE + timedelta(days=91))
    assert len(world.events(account, "collection.task.created")) == 4


def test_promise_pauses_contact_and_a_broken_one_escalates_at_once(world: World) -> None:
    account = "prom-1"
    world.grant(account)
    world.bill(account, "prom-1-b1", DUE)
    dpd31 = DUE + timedelta(days=31)
    world.close_day(account, "prom-1-b1", DUE, dpd31)
    world.day(dpd31)
    tasks = world.events(account, "collection.task.created")
    assert [t["kind"] for t in tasks] == ["call"]
    promised = dpd31 + timedelta(days=2)
    world.send(
        "collection.outcome.recorded",
        {
            "task_id": tasks[0]["task_id"],
            "account_id": account,
            "outcome": "promise_to_pay",
            "promised_amount": "1000.00",
            "promised_date": promised.isoformat(),
        },
        at=at_local(dpd31, "10:00"),
        producer="collectors-desk",
    )
    # grade C mid: calls on DPD 31, 34, 38 ...; the pause runs through promised date + 1 (DPD 34)
    for day in days(dpd31 + timedelta(days=1), promised + timedelta(days=1)):
        world.close_day(account, "prom-1-b1", DUE, day)
        world.day(day)
    assert len(world.events(account, "collection.task.created")) == 1
    broken_day = promised + timedelta(days=2)  # DPD 35: not a call day, but the promise is broken
    world.close_day(account, "prom-1-b1", DUE, broken_day)
    world.day(broken_day)
    tasks = world.events(account, "collection.task.created")
    assert [(t["kind"], t["due_by"]) for t in tasks] == [("call", dpd31.isoformat()), ("call", broken_day.isoformat())]
    with transaction(world.engine) as session:
        promise = session.scalar(select(PromiseToPay).where(PromiseToPay.account_id == account))
        first = session.get(CollectorTask, tasks[0]["task_id"])
    assert promise.status == "broken" and first.status == "done" and first.outcome == "promise_to_pay"
    # acted on once: the next day is back to the schedule (DPD 36 is not a call day)
    world.close_day(account, "prom-1-b1", DUE, broken_day + timedelta(days=1))
    world.day(broken_day + timedelta(days=1))
    assert len(world.events(account, "collection.task.created")) == 2


def test_plan_activation_closes_restructured_and_pauses_until_default(world: World) -> None:
    account = "plan-1"
    world.grant(account)
    world.bill(account, "plan-1-b1", DUE)
    dpd5 = DUE + timedelta(days=5)
    world.close_day(account, "plan-1-b1", DUE, dpd5)
    world.daily(dpd5)  # grade C early, DPD 5: no strategy SMS (4, 7, 10 ...), the pre-report notice owed
    dpd7 = DUE + timedelta(days=7)
    world.close_day(account, "plan-1-b1", DUE, dpd7)
    world.daily(dpd7)  # the early SMS gives way to the notice still owed (one SMS a day)
    world.send(
        "plan.activated",
        {
            "plan_id": "p-1",
            "offer_id": "o-1",
            "account_id": account,
            "principal": "1000.00",
            "term": 3,
            "bill_ids": ["plan-1-b1"],
            "schedule": [
                {
                    "period": i,
                    "due_date": date(2026, 3 + i, 17).isoformat(),
                    "principal": "333.33",
                    "fee": "7.00",
                    "total": "340.33",
                }
                for i in (1, 2, 3)
            ],
        },
        at=at_local(dpd7, "07:00"),
        producer="restructuring",
    )
    world.dispatch(dpd7, "08:00")
    assert [e["reason"] for e in world.events(account, "collection.case.closed")] == ["restructured"]
    assert [(e["template"], e["reason"]) for e in world.events(account, "contact.suppressed")] == [
        ("grace_first", "plan_active")
    ]
    # the plan's own reminder: 3 days before the installment due 2026-04-17
    for day in days(date(2026, 4, 13), date(2026, 4, 15)):
        world.day(day)
    assert sent(world, account) == [("2026-04-14", "plan_installment_reminder")]
    world.send(
        "plan.defaulted",
        {
            "plan_id": "p-1",
            "account_id": account,
            "business_date": "2026-05-18",
            "outstanding_principal": "1000.00",
            "fees_due": "7.00",
            "first_missed_due_date": "2026-04-17",
        },
        at=at_local(date(2026, 5, 18), "01:00"),
        producer="restructuring",
    )
    day = date(2026, 5, 18)
    world.send(
        "bill.overdue",
        {
            "bill_id": "plan-1-d1",
            "account_id": account,
            "due_date": "2026-04-17",
            "business_date": day.isoformat(),
            "dpd": 31,
            "unpaid_principal": "1007.00",
        },
        at=at_local(day, "00:30"),
    )
    world.day(day)
    tasks = world.events(account, "collection.task.created")
    assert [(t["kind"], t["stage"]) for t in tasks] == [("call", "mid")]
    with transaction(world.engine) as session:
        case = session.scalar(select(CollectionCase).where(CollectionCase.account_id == account))
    assert case.status == "open" and not case.plan_active


def test_an_older_delinquency_update_never_overwrites_a_newer_one(world: World) -> None:
    account = "ord-1"
    world.grant(account)
    world.bill(account, "ord-1-b1", DUE)
    world.close_day(account, "ord-1-b1", DUE, DUE + timedelta(days=5), unpaid="400.00")
    world.send(
        "account.delinquency.updated",
        {
            "account_id": account,
            "business_date": (DUE + timedelta(days=4)).isoformat(),
            "max_dpd": 4,
            "overdue_principal": "1000.00",
            "penalty_interest": "0.00",
            "late_fees": "0.00",
            "total_overdue": "1000.00",
            "bills": [
                {
                    "bill_id": "ord-1-b1",
                    "due_date": DUE.isoformat(),
                    "dpd": 4,
                    "unpaid_principal": "1000.00",
                    "penalty_interest": "0.00",
                    "late_fee": "0.00",
                }
            ],
        },
        at=at_local(DUE + timedelta(days=4), "00:31"),
        sequence=1,
    )
    with transaction(world.engine) as session:
        case = session.scalar(select(CollectionCase).where(CollectionCase.account_id == account))
    assert case.max_dpd == 5 and case.total_overdue_fen == 40000


def test_delivery_report_updates_the_message(world: World) -> None:
    account = "dlv-1"
    world.grant(account)
    world.grade(account, "A")
    world.bill(account, "dlv-1-b1", DUE)
    world.day(DUE - timedelta(days=1))
    message_id = world.events(account, "reminder.sent")[0]["message_id"]
    world.send(
        "sms.delivery.reported",
        {"message_id": message_id, "status": "delivered", "reported_at": at_local(DUE, "08:01").isoformat()},
        at=at_local(DUE, "08:01"),
        aggregate_id=message_id,
        producer="sms-provider",
    )
    with transaction(world.engine) as session:
        assert session.get(SmsMessage, message_id).status == "delivered"


def test_wrong_number_stops_contact_as_not_own_phone(world: World) -> None:
    account = "wrong-1"
    world.grant(account)
    world.grade(account, "D")
    world.bill(account, "wrong-1-b1", DUE)
    day7 = DUE + timedelta(days=7)  # grade D early: call at DPD 7
    world.close_day(account, "wrong-1-b1", DUE, day7)
    world.day(day7)
    task = world.events(account, "collection.task.created")[0]
    world.send(
        "collection.outcome.recorded",
        {"task_id": task["task_id"], "account_id": account, "outcome": "wrong_number"},
        at=at_local(day7, "11:00"),
    )
    day8 = day7 + timedelta(days=1)
    world.close_day(account, "wrong-1-b1", DUE, day8)
    world.day(day8)  # grade D early SMS every 2 days: DPD 8
    assert (day8.isoformat(), "early") not in sent(world, account)
    assert world.events(account, "contact.suppressed")[-1]["reason"] == "not_own_phone"


def test_a_plan_completed_and_a_cure_of_one_payment_leave_the_same_case_in_either_order(world: World) -> None:
    """The payment that pays a plan off and clears the rest of the overdue sends
    ``account.cured`` (accounts) and ``plan.completed`` (restructuring): two producers,
    so either can arrive first. The case, its promises and what collections says must
    not depend on which."""
    paid_on = DUE + timedelta(days=40)
    outcome: dict[str, tuple] = {}
    for account, cure_first in (("race-cure-first", True), ("race-plan-first", False)):
        world.grant(account)
        world.bill(account, f"{account}-b1", DUE)
        dpd31 = DUE + timedelta(days=31)
        world.close_day(account, f"{account}-b1", DUE, dpd31)
        world.day(dpd31)
        (task,) = world.events(account, "collection.task.created")
        world.send(
            "collection.outcome.recorded",
            {
                "task_id": task["task_id"],
                "account_id": account,
                "outcome": "promise_to_pay",
                "promised_amount": "300.00",
                "promised_date": (dpd31 + timedelta(days=3)).isoformat(),
            },
            at=at_local(dpd31, "10:00"),
            producer="collectors-desk",
        )
        world.send(
            "plan.activated",
            {
                "plan_id": f"{account}-p",
                "offer_id": f"{account}-o",
                "account_id": account,
                "principal": "1000.00",
                "term": 3,
                "bill_ids": [f"{account}-b1"],
                "schedule": [
                    {
                        "period": i,
                        "due_date": date(2026, 4 + i, 17).isoformat(),
                        "principal": "333.33",
                        "fee": "7.00",
                        "total": "340.33",
                    }
                    for i in (1, 2, 3)
                ],
            },
            at=at_local(dpd31 + timedelta(days=1), "12:30"),
            producer="restructuring",
        )
        # a bill outside the plan goes overdue (the case stays closed as restructured)
        second_due = paid_on - timedelta(days=3)
        world.bill(account, f"{account}-b2", second_due, amount="200.00")
        for day in days(second_due + timedelta(days=1), paid_on - timedelta(days=1)):
            world.close_day(account, f"{account}-b2", second_due, day, unpaid="200.00")
        mark = len(world.events(account))
        cure = (
            "account.cured",
            {"account_id": account, "business_date": paid_on.isoformat()},
            at_local(paid_on, "11:00"),
            "accounts",
        )
        completed = (
            "plan.completed",
            {"plan_id": f"{account}-p", "account_id": account, "completed_on": paid_on.isoformat()},
            at_local(paid_on, "11:00"),
            "restructuring",
        )
        for event_type, payload, at, producer in (cure, completed) if cure_first else (completed, cure):
            world.send(event_type, payload, at=at, producer=producer)
        with transaction(world.engine) as session:
            case = session.scalar(select(CollectionCase).where(CollectionCase.account_id == account))
            promises = session.scalars(select(PromiseToPay).where(PromiseToPay.account_id == account)).all()
            outcome[account] = (
                (case.status, case.closed_reason, case.closed_on, case.plan_active, case.max_dpd),
                sorted((pr.status, pr.decided_on) for pr in promises),
                sorted((e["type"], e.get("reason")) for e in world.events(account)[mark:]),
            )
    first, second = outcome["race-cure-first"], outcome["race-plan-first"]
    assert first == second
    assert first[0] == ("closed", "restructured", DUE + timedelta(days=32), False, 0)
    assert first[1] == [("kept", paid_on)]
