"""RULES 2.8 at the compliance guard: a paused account is contacted by nobody, reason
``paused``, right after ``not_own_phone``; and restructuring's held days (the same rule)."""

from __future__ import annotations

from datetime import date, datetime
from zoneinfo import ZoneInfo

from services.collections.domain.compliance import (
    ContactHistoryView,
    ContactRequest,
    SuppressionReason,
    case_block_reason,
    check_contact,
)
from services.collections.domain.stages import ActionKind, CaseView
from services.restructuring.domain.plan import days_held, monitoring_date
from shared.rules import ContactCompliance

PHONE = "13812345678"
NOON = datetime(2026, 3, 20, 12, 0, tzinfo=ZoneInfo("Asia/Shanghai"))
PAUSED = CaseView("acc-1", 12, "C", own_phone=PHONE, paused=True)


def test_every_kind_of_contact_is_suppressed_paused() -> None:
    for kind in (ActionKind.SMS, ActionKind.CALL, ActionKind.PLAN_REMINDER, ActionKind.PLAN_INVITATION):
        request = ContactRequest(kind, PHONE, None if kind is ActionKind.CALL else "early")
        decision = check_contact(request, ContactHistoryView(), PAUSED, NOON, ContactCompliance())
        assert (decision.allowed, decision.reason) == (False, SuppressionReason.PAUSED)


def test_paused_comes_right_after_not_own_phone() -> None:
    assert case_block_reason(ContactRequest(ActionKind.SMS, "13900000000", "early"), PAUSED, NOON.date()) is (
        SuppressionReason.NOT_OWN_PHONE
    )
    with_plan = CaseView("acc-1", 12, "C", own_phone=PHONE, paused=True, plan_active=True)
    assert case_block_reason(ContactRequest(ActionKind.SMS, PHONE, "early"), with_plan, NOON.date()) is (
        SuppressionReason.PAUSED
    )


def test_unpaused_the_contact_goes() -> None:
    case = CaseView("acc-1", 12, "C", own_phone=PHONE)
    decision = check_contact(
        ContactRequest(ActionKind.SMS, PHONE, "early"), ContactHistoryView(), case, NOON, ContactCompliance()
    )
    assert decision.allowed


def test_a_plan_does_not_count_the_days_its_monitoring_was_held() -> None:
    assert days_held(date(2026, 4, 20), date(2026, 5, 30), date(2026, 3, 22)) == 40
    assert days_held(date(2026, 3, 1), date(2026, 3, 30), date(2026, 3, 22)) == 8  # paused before the plan
    assert monitoring_date(date(2026, 6, 2), 40) == date(2026, 4, 23)
