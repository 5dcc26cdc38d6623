"""Monitoring, default, payments, early settlement and adjustment of a plan (RULES section 8).

The plan of most tests is the worked example: 3,000.00 over 6 months at 0.60 %,
accepted 2026-03-15, so installments of 518.00 (500.00 + 18.00) fall due on the 15th
from April to September.
"""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import pytest

from services.restructuring.domain.apr import schedule_apr
from services.restructuring.domain.plan import (
    ALREADY_ADJUSTED,
    INSTALLMENT_OVERDUE,
    INVALID_TERM,
    NOT_LONGER,
    NOTHING_REMAINING,
    TARGET_NOT_LOWER,
    TARGET_UNREACHABLE,
    TERM_TOO_LONG,
    AdjustmentAccepted,
    AdjustmentRejected,
    InstallmentAllocation,
    InstallmentPaid,
    OverdueInstallment,
    PlanError,
    apply_payment,
    current_period,
    default_settlement,
    early_settlement_quote,
    extend,
    is_defaulted,
    lower_payment,
    overdue_installments,
    review_plan,
    total_paid,
)
from services.restructuring.domain.schedule import equal_principal_schedule
from shared.rules import RestructuringRules

D = Decimal
RULES = RestructuringRules()
PLAN = equal_principal_schedule(D("3000.00"), 6, D("0.0060"), date(2026, 3, 15))
FULL = InstallmentPaid(D("18.00"), D("500.00"))


def paid_through(last_period: int) -> dict[int, InstallmentPaid]:
    return {k: FULL for k in range(1, last_period + 1)}


# --- monitoring and default -------------------------------------------------------


def test_installment_is_overdue_the_day_after_its_due_date() -> None:
    assert overdue_installments(PLAN, {}, date(2026, 4, 15)) == []
    assert overdue_installments(PLAN, {}, date(2026, 4, 16)) == [
        OverdueInstallment(1, date(2026, 4, 15), 1, D("518.00"))
    ]
    partly = {1: InstallmentPaid(D("18.00"), D("100.00"))}
    assert overdue_installments(PLAN, partly, date(2026, 4, 20))[0].amount == D("400.00")


def test_default_at_dpd_31_of_a_single_installment() -> None:
    """Only the last installment (due 09-15) is left: DPD 30 on 10-15, 31 on 10-16."""
    paid = paid_through(5)
    assert not is_defaulted(PLAN, paid, date(2026, 10, 15), RULES)
    assert len(overdue_installments(PLAN, paid, date(2026, 10, 16))) == 1
    assert is_defaulted(PLAN, paid, date(2026, 10, 16), RULES)


def test_default_when_two_installments_are_overdue_at_once() -> None:
    """Accepted 31 Dec: due 31 Jan and 28 Feb. On 1 Mar the first is at DPD 29 only,
    but two are overdue at once."""
    plan = equal_principal_schedule(D("900.00"), 3, D("0.005"), date(2025, 12, 31))
    assert not is_defaulted(plan, {}, date(2026, 2, 28), RULES)
    review = review_plan(plan, {}, date(2026, 3, 1), RULES)
    assert [(o.period, o.dpd) for o in review.overdue] == [(1, 29), (2, 1)]
    assert review.defaulted and not review.completed
    three = RULES.model_copy(update={"default_overdue_installments": 3})
    assert not is_defaulted(plan, {}, date(2026, 3, 1), three)


def test_default_settlement_amounts() -> None:
    """Period 1 paid, 10.00 of period 2's fee paid; on 06-16 periods 2 (DPD 32) and 3 (DPD 1)
    are overdue. Outstanding principal 2,500.00; fees due 8.00 + 18.00; fees of periods
    4–6 cancelled (54.00); the bill is due on 05-15. 2,500 + 26 + 54 + 528 = 3,108."""
    paid = {1: FULL, 2: InstallmentPaid(D("10.00"), D("0.00"))}
    settlement = default_settlement(PLAN, paid, date(2026, 6, 16))
    assert settlement.outstanding_principal == D("2500.00")
    assert settlement.fees_due == D("26.00")
    assert settlement.fees_cancelled == D("54.00")
    assert settlement.first_missed_due_date == date(2026, 5, 15)
    assert settlement.bill_amount == D("2526.00")
    assert settlement.bill_amount + settlement.fees_cancelled + total_paid(paid) == PLAN.total_payable


def test_default_settlement_counts_the_fee_of_an_installment_due_that_day() -> None:
    """On 06-15 period 3 is due the same day: its fee is already due (earned at its due date)."""
    paid = {1: FULL}
    settlement = default_settlement(PLAN, paid, date(2026, 6, 15))
    assert settlement.fees_due == D("36.00")
    assert settlement.fees_cancelled == D("54.00")


def test_no_default_settlement_without_an_overdue_installment() -> None:
    with pytest.raises(PlanError):
        default_settlement(PLAN, {}, date(2026, 4, 15))


# --- payments and early settlement ------------------------------------------------


def test_payment_goes_oldest_period_first_fee_then_principal() -> None:
    application = apply_payment(PLAN, {}, D("600.00"), date(2026, 4, 10))
    assert application.allocations == (
        InstallmentAllocation(1, D("18.00"), D("500.00")),
        InstallmentAllocation(2, D("18.00"), D("64.00")),
    )
    assert application.periods_completed == (1,)
    assert application.paid[2] == InstallmentPaid(D("18.00"), D("64.00"))
    assert not application.completed and application.unapplied == 0


def test_current_period_is_the_first_unpaid_one_not_yet_past_due() -> None:
    assert current_period(PLAN, {}, date(2026, 3, 20)) == 1
    assert current_period(PLAN, {}, date(2026, 4, 15)) == 1  # due today
    assert current_period(PLAN, {}, date(2026, 4, 16)) == 2  # period 1 is overdue, not current
    assert current_period(PLAN, paid_through(6), date(2026, 4, 16)) is None


def test_settlement_quote() -> None:
    """Right after acceptance: 3,000.00 + the first fee 18.00; five fees waived (90.00)."""
    quote = early_settlement_quote(PLAN, {}, date(2026, 3, 20))
    assert (quote.current_period, quote.amount, quote.fees_waived) == (1, D("3018.00"), D("90.00"))
    after_one = early_settlement_quote(PLAN, paid_through(1), date(2026, 4, 20))
    assert (after_one.current_period, after_one.principal, after_one.fees, after_one.fees_waived) == (
        2,
        D("2500.00"),
        D("18.00"),
        D("72.00"),
    )


def test_settlement_quote_never_waives_an_overdue_fee() -> None:
    quote = early_settlement_quote(PLAN, {}, date(2026, 4, 20))
    assert (quote.current_period, quote.amount, quote.fees_waived) == (2, D("3036.00"), D("72.00"))
    last_overdue = early_settlement_quote(PLAN, paid_through(5), date(2026, 9, 20))
    assert (last_overdue.current_period, last_overdue.amount) == (None, D("518.00"))
    assert last_overdue.fees_waived == D("0.00")


def test_paying_the_settlement_amount_completes_the_plan() -> None:
    application = apply_payment(PLAN, paid_through(1), D("2600.00"), date(2026, 4, 20))
    assert application.completed and application.settled_early
    assert application.fees_waived == D("72.00")
    assert application.unapplied == D("82.00")
    assert application.allocations[0] == InstallmentAllocation(2, D("18.00"), D("500.00"))
    assert all(a.fee == 0 and a.principal == D("500.00") for a in application.allocations[1:])
    assert application.periods_completed == (2, 3, 4, 5, 6)
    assert sum(a.total for a in application.allocations) + application.unapplied == D("2600.00")


def test_paying_the_last_installment_completes_without_waiver() -> None:
    application = apply_payment(PLAN, paid_through(5), D("518.00"), date(2026, 9, 10))
    assert application.completed and not application.settled_early
    assert (application.fees_waived, application.unapplied, application.periods_completed) == (D("0.00"), 0, (6,))


def test_a_payment_must_be_positive() -> None:
    with pytest.raises(PlanError):
        apply_payment(PLAN, {}, D("0.00"), date(2026, 4, 1))


# --- adjustment -------------------------------------------------------------------


def test_extend_reschedules_the_remaining_principal_from_the_next_due_date() -> None:
    """Period 1 paid; 2,500.00 over 10 periods: 250.00 + round(2500 × 0.6 %) = 15.00 = 265.00,
    periods 2..11 due 05-15 … 2027-02-15."""
    decision = extend(PLAN, paid_through(1), date(2026, 4, 20), 0, 10, RULES)
    assert isinstance(decision, AdjustmentAccepted)
    new = decision.rescheduled
    assert [p.period for p in new.periods] == list(range(2, 12))
    assert new.periods[0].due_date == date(2026, 5, 15) and new.periods[-1].due_date == date(2027, 2, 15)
    assert {(p.principal, p.fee) for p in new.periods} == {(D("250.00"), D("15.00"))}
    assert decision.monthly_payment == D("265.00")
    assert decision.apr == schedule_apr(equal_principal_schedule(D("2500.00"), 10, D("0.0060"), date(2026, 4, 15)))
    assert decision.schedule.term == 11
    assert sum(p.principal for p in decision.schedule.periods) == D("3000.00")
    assert decision.paid == paid_through(1) and decision.unapplied == 0


def test_extend_carries_what_was_paid_on_the_next_installment() -> None:
    """30.00 paid on period 2 (fee 18.00, principal 12.00) goes to the new period 2: fee 15.00,
    principal 15.00; nothing is lost."""
    paid = {1: FULL, 2: InstallmentPaid(D("18.00"), D("12.00"))}
    decision = extend(PLAN, paid, date(2026, 4, 20), 0, 10, RULES)
    assert isinstance(decision, AdjustmentAccepted)
    assert decision.paid[2] == InstallmentPaid(D("15.00"), D("15.00"))
    assert total_paid(decision.paid) == total_paid(paid)


@pytest.mark.parametrize(
    ("paid", "business_date", "made", "term", "reason"),
    [
        ({1: FULL}, date(2026, 4, 20), 1, 10, ALREADY_ADJUSTED),
        ({}, date(2026, 4, 20), 0, 10, INSTALLMENT_OVERDUE),
        ({1: FULL}, date(2026, 4, 20), 0, 5, NOT_LONGER),
        ({1: FULL}, date(2026, 4, 20), 0, 25, TERM_TOO_LONG),
        ({1: FULL}, date(2026, 4, 20), 0, 0, INVALID_TERM),
        (paid_through(6), date(2026, 9, 20), 0, 10, NOTHING_REMAINING),
    ],
)
def test_extend_rejections(paid: dict, business_date: date, made: int, term: int, reason: str) -> None:
    assert extend(PLAN, paid, business_date, made, term, RULES) == AdjustmentRejected(reason)


def test_extend_is_allowed_on_the_due_date_itself() -> None:
    """Period 1 due 04-15 and unpaid is not overdue yet on 04-15."""
    decision = extend(PLAN, {}, date(2026, 4, 15), 0, 12, RULES)
    assert isinstance(decision, AdjustmentAccepted)
    assert decision.rescheduled.periods[0].due_date == date(2026, 4, 15)
    assert decision.monthly_payment == D("268.00")  # 3000/12 = 250 + 18


def test_lower_payment_takes_the_shortest_term_meeting_the_target() -> None:
    """2,500.00 left, fee 15.00: 8 periods give 327.50, 9 give 277.78 + 15.00 = 292.78 ≤ 300.00."""
    decision = lower_payment(PLAN, paid_through(1), date(2026, 4, 20), 0, D("300.00"), RULES)
    assert isinstance(decision, AdjustmentAccepted)
    assert (decision.new_term, decision.monthly_payment) == (9, D("292.78"))
    assert decision.kind == "lower_payment"


def test_lower_payment_rejections() -> None:
    """2,500 / 24 = 104.17 + 15.00 = 119.17 is the lowest payment within 24 months."""

    def reject(target: Decimal, made: int = 0) -> object:
        return lower_payment(PLAN, paid_through(1), date(2026, 4, 20), made, target, RULES)

    assert reject(D("518.00")) == AdjustmentRejected(TARGET_NOT_LOWER)
    assert reject(D("119.16")) == AdjustmentRejected(TARGET_UNREACHABLE)
    assert isinstance(reject(D("119.17")), AdjustmentAccepted)
    assert reject(D("300.00"), made=1) == AdjustmentRejected(ALREADY_ADJUSTED)
