"""The compliance guard: window, caps, case state, own phone; masking."""

from __future__ import annotations

from datetime import date, datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from services.collections.domain.compliance import (
    ComplianceDecision,
    ContactHistoryView,
    ContactRequest,
    SuppressionReason,
    case_block_reason,
    check_contact,
    mask_name,
    mask_phone,
)
from services.collections.domain.stages import ActionKind, CaseView
from shared.rules import ContactCompliance

SH = ZoneInfo("Asia/Shanghai")
RULES = ContactCompliance()
PHONE = "13812345678"
CASE = CaseView("acc-1", 12, "C", own_phone=PHONE)
SMS = ContactRequest(ActionKind.SMS, PHONE, "early")
CALL = ContactRequest(ActionKind.CALL, PHONE)
NO_HISTORY = ContactHistoryView()


def at(day: int, hour: int, minute: int = 0) -> datetime:
    return datetime(2026, 3, day, hour, minute, tzinfo=SH)


def check(
    request: ContactRequest = SMS,
    history: ContactHistoryView = NO_HISTORY,
    case: CaseView = CASE,
    now: datetime | None = None,
) -> ComplianceDecision:
    return check_contact(request, history, case, now or at(20, 10), RULES)


# --- the contact window -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("hour", "minute", "allowed", "next_start"),
    [
        (7, 59, False, at(20, 8)),
        (8, 0, True, None),
        (20, 59, True, None),
        (21, 0, False, at(21, 8)),
        (21, 30, False, at(21, 8)),
        (0, 0, False, at(20, 8)),
        (23, 59, False, at(21, 8)),
    ],
)
def test_window_edges(hour: int, minute: int, allowed: bool, next_start: datetime | None) -> None:
    decision = check(now=at(20, hour, minute))
    assert decision.allowed is allowed
    if not allowed:
        assert decision.reason is SuppressionReason.QUIET_HOURS and decision.deferred
        assert decision.next_window_start == next_start


def test_window_is_judged_in_shanghai_whatever_the_zone_of_now() -> None:
    utc_noon_in_shanghai_is_20_00 = datetime(2026, 3, 20, 12, 0, tzinfo=timezone.utc)
    assert check(now=utc_noon_in_shanghai_is_20_00).allowed
    utc_13_00_is_21_00 = datetime(2026, 3, 20, 13, 0, tzinfo=timezone.utc)
    assert check(now=utc_13_00_is_21_00).next_window_start == at(21, 8)


def test_a_naive_datetime_is_refused() -> None:
    with pytest.raises(ValueError, match="time zone"):
        check(now=datetime(2026, 3, 20, 10, 0))


@given(
    st.datetimes(
        min_value=datetime(2020, 1, 1),
        max_value=datetime(2035, 1, 1),
        timezones=st.sampled_from([SH, timezone.utc, ZoneInfo("America/New_York")]),
    )
)
def test_the_guard_never_allows_a_contact_outside_the_window(now: datetime) -> None:
    decision = check(now=now)
    local = now.astimezone(SH)
    inside = datetime.strptime("08:00", "%H:%M").time() <= local.time() < datetime.strptime("21:00", "%H:%M").time()
    assert decision.allowed is inside
    if not inside:
        start = decision.next_window_start
        assert start is not None and start > now and start - now <= timedelta(hours=11)
        assert start.astimezone(SH).time().hour == 8 and start.astimezone(SH).minute == 0


# --- caps -------------------------------------------------------------------------------------------


def test_one_sms_per_business_day() -> None:
    sent_this_morning = ContactHistoryView(sms_sent_at=(at(20, 8, 5),))
    assert check(history=sent_this_morning, now=at(20, 15)).reason is SuppressionReason.DAILY_CAP
    assert check(history=sent_this_morning, now=at(21, 8)).allowed


def test_sms_cap_counts_shanghai_days_not_utc_days() -> None:
    # 2026-03-19 23:30 UTC is 03-20 07:30 in Shanghai: the same business day as 03-20 10:00.
    sent = ContactHistoryView(sms_sent_at=(datetime(2026, 3, 19, 23, 30, tzinfo=timezone.utc),))
    assert check(history=sent, now=at(20, 10)).reason is SuppressionReason.DAILY_CAP


def test_calls_do_not_count_against_the_sms_cap() -> None:
    calls = ContactHistoryView(call_attempts_at=(at(20, 9), at(20, 10)))
    assert check(SMS, calls, now=at(20, 11)).allowed


def test_three_call_attempts_a_day() -> None:
    two = ContactHistoryView(call_attempts_at=(at(20, 9), at(20, 10)))
    three = ContactHistoryView(call_attempts_at=(at(20, 9), at(20, 10), at(20, 11)))
    assert check(CALL, two, now=at(20, 12)).allowed
    assert check(CALL, three, now=at(20, 12)).reason is SuppressionReason.DAILY_CAP
    assert check(CALL, three, now=at(21, 9)).allowed


def test_seven_call_attempts_per_rolling_seven_days() -> None:
    # one attempt a day on 03-14 .. 03-20: seven in the 7 days ending 03-20
    week = ContactHistoryView(call_attempts_at=tuple(at(d, 10) for d in range(14, 21)))
    assert check(CALL, week, now=at(20, 15)).reason is SuppressionReason.WEEKLY_CAP
    # on 03-21 the 03-14 attempt has left the window (03-15 .. 03-21): six remain
    assert check(CALL, week, now=at(21, 9)).allowed
    six = ContactHistoryView(call_attempts_at=tuple(at(d, 10) for d in range(15, 21)))
    assert check(CALL, six, now=at(20, 15)).allowed


def test_quiet_hours_come_before_the_caps() -> None:
    sent = ContactHistoryView(sms_sent_at=(at(20, 9),))
    decision = check(history=sent, now=at(20, 22))
    assert decision.reason is SuppressionReason.QUIET_HOURS and decision.next_window_start == at(21, 8)


# --- case state and phone -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("case", "reason"),
    [
        (CaseView("acc-1", 12, "C", own_phone=PHONE, cured=True), SuppressionReason.CURED),
        (CaseView("acc-1", -1, "C", own_phone=PHONE, bill_paid=True), SuppressionReason.CURED),
        (CaseView("acc-1", 12, "C", own_phone=PHONE, plan_active=True), SuppressionReason.PLAN_ACTIVE),
        (
            CaseView("acc-1", 12, "C", own_phone=PHONE, promise_pending_until=date(2026, 3, 20)),
            SuppressionReason.PROMISE_PENDING,
        ),
        (CaseView("acc-1", 12, "C", own_phone="13900000000"), SuppressionReason.NOT_OWN_PHONE),
        (CaseView("acc-1", 12, "C", own_phone=PHONE, phone_reported_wrong=True), SuppressionReason.NOT_OWN_PHONE),
        (CaseView("acc-1", 12, "C", own_phone=None), SuppressionReason.NOT_OWN_PHONE),
    ],
)
def test_case_state_suppresses(case: CaseView, reason: SuppressionReason) -> None:
    for request in (SMS, CALL):
        decision = check(request, case=case)
        assert not decision.allowed and decision.reason is reason and decision.next_window_start is None


def test_promise_pause_ends_after_its_last_day() -> None:
    case = CaseView("acc-1", 12, "C", own_phone=PHONE, promise_pending_until=date(2026, 3, 20))
    assert check(case=case, now=at(20, 20, 59)).reason is SuppressionReason.PROMISE_PENDING
    assert check(case=case, now=at(21, 8)).allowed


def test_plan_reminders_are_the_only_contact_during_a_plan() -> None:
    reminder = ContactRequest(ActionKind.PLAN_REMINDER, PHONE, "plan_installment_reminder")
    on_plan = CaseView("acc-1", 0, "C", own_phone=PHONE, plan_active=True, cured=True)
    assert check(reminder, case=on_plan).allowed
    assert check(SMS, case=on_plan).reason is SuppressionReason.PLAN_ACTIVE
    assert check(CALL, case=on_plan).reason is SuppressionReason.PLAN_ACTIVE
    plan_over = CaseView("acc-1", 0, "C", own_phone=PHONE)
    assert check(reminder, case=plan_over).reason is SuppressionReason.CURED


def test_own_phone_compares_normalized_numbers() -> None:
    assert check(ContactRequest(ActionKind.SMS, "+86 138-1234-5678", "early")).allowed


def test_tasks_are_not_contacts() -> None:
    with pytest.raises(ValueError, match="task"):
        ContactRequest(ActionKind.AGENCY, PHONE)


def test_case_block_reason_ignores_the_clock() -> None:
    assert case_block_reason(CALL, CASE, date(2026, 3, 20)) is None


# --- masking --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "masked"),
    [("张三", "张*"), ("张小三", "张**"), ("欧阳娜娜", "欧***"), ("张", "*"), ("", ""), ("张*", "张*")],
)
def test_mask_name(name: str, masked: str) -> None:
    assert mask_name(name) == masked


@pytest.mark.parametrize(
    ("phone", "masked"),
    [("13812345678", "138****5678"), ("+86 138 1234 5678", "138****5678"), ("1234", "****"), ("123456", "****56")],
)
def test_mask_phone(phone: str, masked: str) -> None:
    assert mask_phone(phone) == masked
