"""Schedules and due dates (RULES section 8), checked against hand figures."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import pytest

from services.restructuring.domain.apr import schedule_apr
from services.restructuring.domain.schedule import (
    ScheduleError,
    add_months,
    annuity_payment,
    build_schedule,
    equal_installment_schedule,
    equal_principal_schedule,
    installment_due_dates,
)

D = Decimal


def test_worked_example_of_rules_section_8() -> None:
    """P = 3,000.00, 6 months, grade B (0.60 %): 500.00 + 18.00 = 518.00, fee 108.00, 12.24 %."""
    schedule = equal_principal_schedule(D("3000.00"), 6, D("0.0060"), date(2026, 3, 15))
    assert [p.period for p in schedule.periods] == [1, 2, 3, 4, 5, 6]
    assert all(p.principal == D("500.00") for p in schedule.periods)
    assert all(p.fee == D("18.00") for p in schedule.periods)
    assert all(p.total == D("518.00") for p in schedule.periods)
    assert schedule.monthly_payment == D("518.00")
    assert schedule.total_fee == D("108.00")
    assert schedule.total_payable == D("3108.00")
    assert schedule_apr(schedule) == D("0.1224")
    assert [p.due_date for p in schedule.periods] == [
        date(2026, 4, 15),
        date(2026, 5, 15),
        date(2026, 6, 15),
        date(2026, 7, 15),
        date(2026, 8, 15),
        date(2026, 9, 15),
    ]


def test_equal_principal_last_period_takes_the_remainder() -> None:
    """1,000.00 / 3 = 333.33 (half-up), the last period takes 333.34; fee round(1000 × 0.7 %) = 7.00."""
    schedule = equal_principal_schedule(D("1000.00"), 3, D("0.0070"), date(2026, 1, 10))
    assert [p.principal for p in schedule.periods] == [D("333.33"), D("333.33"), D("333.34")]
    assert [p.fee for p in schedule.periods] == [D("7.00")] * 3
    assert schedule.monthly_payment == D("340.33")
    assert schedule.total_fee == D("21.00")


def test_equal_principal_rounds_half_up_and_last_period_is_smaller() -> None:
    """100.00 / 8 = 12.50 exactly; 1.00 / 8 = 0.125 → 0.13 half-up, the last takes 0.09.
    Fee: 1,234.50 × 0.5 % = 6.1725 → 6.17."""
    assert [p.principal for p in equal_principal_schedule(D("1.00"), 8, D("0.005"), date(2026, 1, 1)).periods] == [
        D("0.13")
    ] * 7 + [D("0.09")]
    schedule = equal_principal_schedule(D("1234.50"), 3, D("0.005"), date(2026, 1, 1))
    assert schedule.periods[0].fee == D("6.17")


def test_equal_installment_by_hand() -> None:
    """1,000.00 over 3 months at 1 %: payment = 1000 × 0.01 × 1.01³ / (1.01³ − 1) = 340.0221 → 340.02.
    Period 1: interest 10.00, principal 330.02, balance 669.98.
    Period 2: interest 6.6998 → 6.70, principal 333.32, balance 336.66.
    Period 3: interest 3.3666 → 3.37, principal clears 336.66, total 340.03."""
    schedule = equal_installment_schedule(D("1000.00"), 3, D("0.01"), date(2026, 1, 31))
    assert annuity_payment(D("1000.00"), 3, D("0.01")) == D("340.02")
    assert [(p.principal, p.fee, p.total) for p in schedule.periods] == [
        (D("330.02"), D("10.00"), D("340.02")),
        (D("333.32"), D("6.70"), D("340.02")),
        (D("336.66"), D("3.37"), D("340.03")),
    ]
    assert schedule.monthly_payment == D("340.02")
    assert schedule.total_fee == D("20.07")
    assert schedule_apr(schedule) == D("0.1200")  # an annuity at 1 % a month is exactly 12 %


def test_equal_installment_worked_example_principal() -> None:
    """3,000.00 over 6 months at 0.60 %: 1.006⁶ = 1.0365443395, payment
    3000 × 0.006 × 1.0365443395 / 0.0365443395 = 510.5523 → 510.55; first interest 18.00,
    principal 492.55; the last period clears the balance (510.56); the APR is the nominal 7.20 %."""
    schedule = equal_installment_schedule(D("3000.00"), 6, D("0.0060"), date(2026, 3, 15))
    assert schedule.monthly_payment == D("510.55")
    assert (schedule.periods[0].principal, schedule.periods[0].fee) == (D("492.55"), D("18.00"))
    assert schedule.periods[-1].total == D("510.56")
    assert sum(p.principal for p in schedule.periods) == D("3000.00")
    assert schedule_apr(schedule) == D("0.0720")


def test_zero_rate_annuity() -> None:
    schedule = equal_installment_schedule(D("100.00"), 3, D("0"), date(2026, 1, 1))
    assert [p.principal for p in schedule.periods] == [D("33.33"), D("33.33"), D("33.34")]
    assert schedule.total_fee == 0
    assert schedule_apr(schedule) == D("0.0000")


def test_due_dates_clamp_to_month_end_from_the_acceptance_day() -> None:
    """Accepted 31 January: 28 Feb (29 in a leap year), then 31 March again, 30 April..."""
    assert installment_due_dates(date(2026, 1, 31), 4) == [
        date(2026, 2, 28),
        date(2026, 3, 31),
        date(2026, 4, 30),
        date(2026, 5, 31),
    ]
    assert installment_due_dates(date(2028, 1, 31), 2) == [date(2028, 2, 29), date(2028, 3, 31)]
    assert installment_due_dates(date(2026, 11, 30), 3) == [date(2026, 12, 30), date(2027, 1, 30), date(2027, 2, 28)]


def test_add_months_backwards_and_first_period() -> None:
    assert add_months(date(2026, 3, 31), -1) == date(2026, 2, 28)
    assert add_months(date(2026, 1, 15), -12) == date(2025, 1, 15)
    later = build_schedule("equal_principal", D("600.00"), 2, D("0.005"), date(2026, 1, 31), first_period=3)
    assert [(p.period, p.due_date) for p in later.periods] == [(3, date(2026, 4, 30)), (4, date(2026, 5, 31))]


@pytest.mark.parametrize(
    ("principal", "term"), [(D("0"), 3), (D("-5.00"), 3), (D("100.001"), 3), (D("100.00"), 0), (D("1.32"), 24)]
)
def test_impossible_schedules_are_refused(principal: Decimal, term: int) -> None:
    with pytest.raises(ScheduleError):
        equal_principal_schedule(principal, term, D("0.006"), date(2026, 1, 1))


def test_unknown_method() -> None:
    with pytest.raises(ScheduleError):
        build_schedule("balloon", D("100.00"), 3, D("0.006"), date(2026, 1, 1))  # type: ignore[arg-type]  # the unknown method under test
