"""RULES section 4: allocation order, the grace rule, plan and credit balance, backdating."""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal

import pytest

from services.accounts.domain.allocation import (
    BillDue,
    CloseAccrual,
    allocate_repayment,
    backdated_penalty_reversal,
    dues_as_of,
)
from shared.rules import OverdueRules

D = Decimal
RULES = OverdueRules()
OLD = BillDue("b-old", date(2026, 2, 10), D("20.00"), D("10.00"), D("1000.00"))
NEW = BillDue("b-new", date(2026, 3, 10), D("1.00"), D("0.00"), D("300.00"))


def lines(allocation) -> list[tuple[str, str, str]]:
    return [(line.target_id, line.component, str(line.amount)) for line in allocation.lines]


def test_oldest_bill_first_penalty_then_late_fee_then_principal() -> None:
    allocation = allocate_repayment(D("1040.00"), [NEW, OLD], D("0"), date(2026, 3, 20), RULES)
    assert lines(allocation) == [
        ("b-old", "penalty_interest", "20.00"),
        ("b-old", "late_fee", "10.00"),
        ("b-old", "principal", "1000.00"),
        ("b-new", "penalty_interest", "1.00"),
        ("b-new", "principal", "9.00"),
    ]
    assert allocation.credit_balance == 0 and not allocation.waivers


def test_grace_rule_takes_principal_first_and_waives_the_penalty_when_cleared() -> None:
    in_grace = BillDue("b-1", date(2026, 3, 10), D("1.50"), D("0.00"), D("1000.00"))
    cleared = allocate_repayment(D("1000.00"), [in_grace], D("0"), date(2026, 3, 13), RULES)
    assert lines(cleared) == [("b-1", "principal", "1000.00")]
    assert [(w.bill_id, w.dpd, w.penalty_waived) for w in cleared.waivers] == [("b-1", 3, D("1.50"))]

    partial = allocate_repayment(D("600.00"), [in_grace], D("0"), date(2026, 3, 12), RULES)
    assert lines(partial) == [("b-1", "principal", "600.00")] and not partial.waivers


def test_after_grace_the_default_order_applies_again() -> None:
    past_grace = BillDue("b-1", date(2026, 3, 10), D("2.00"), D("10.00"), D("1000.00"))
    allocation = allocate_repayment(D("1012.00"), [past_grace], D("0"), date(2026, 3, 14), RULES)
    assert lines(allocation)[0] == ("b-1", "penalty_interest", "2.00")
    assert not allocation.waivers


def test_grace_waiver_leaves_the_rest_for_the_next_bill() -> None:
    in_grace = BillDue("b-1", date(2026, 3, 10), D("1.00"), D("0.00"), D("100.00"))
    next_bill = BillDue("b-2", date(2026, 4, 10), D("0"), D("0"), D("80.00"))
    allocation = allocate_repayment(D("150.00"), [in_grace, next_bill], D("0"), date(2026, 3, 12), RULES)
    assert lines(allocation) == [("b-1", "principal", "100.00"), ("b-2", "principal", "50.00")]


def test_beyond_the_bills_the_plan_then_a_credit_balance() -> None:
    allocation = allocate_repayment(D("400.00"), [NEW], D("50.00"), date(2026, 3, 1), RULES, plan_id="plan-7")
    assert lines(allocation)[-1] == ("plan-7", "plan", "50.00")
    assert allocation.credit_balance == D("49.00")
    assert allocation.allocated + allocation.credit_balance == D("400.00")


def test_a_bill_not_yet_due_can_be_paid_early() -> None:
    early = BillDue("b-1", date(2026, 3, 10), D("0"), D("0"), D("300.00"))
    allocation = allocate_repayment(D("300.00"), [early], D("0"), date(2026, 3, 2), RULES)
    assert lines(allocation) == [("b-1", "principal", "300.00")]


@pytest.mark.parametrize("amount", ["-1.00", "1.001"])
def test_bad_amounts_are_refused(amount: str) -> None:
    with pytest.raises(ValueError):
        allocate_repayment(D(amount), [OLD], D("0"), date(2026, 3, 1), RULES)


def _history(due: date, unpaid: Decimal, first: int, last: int) -> list[CloseAccrual]:
    """The closes of DPD first..last on a constant unpaid principal."""
    return [
        CloseAccrual(
            due + timedelta(days=d),
            unpaid,
            penalty=(unpaid * RULES.penalty_daily_rate).quantize(D("0.01")),
            late_fee=D("10.00") if d == 4 else D("0"),
            bureau_mark=d == 4,
        )
        for d in range(first, last + 1)
    ]


def test_backdated_only_the_closes_after_the_payment_date_are_rejudged() -> None:
    due = date(2026, 3, 10)
    closes = _history(due, D("1000.00"), 1, 13)
    reversal = backdated_penalty_reversal(closes, date(2026, 3, 20), D("485.00"), RULES)
    assert [c.close_date for c in reversal.per_close] == [date(2026, 3, 21), date(2026, 3, 22), date(2026, 3, 23)]
    assert reversal.penalty_reversed == D("0.72")


def test_backdated_payment_in_grace_undoes_the_late_fee_and_the_mark() -> None:
    """Paid in full on DPD 2, known on DPD 6: judged on DPD 2, the grace rule applies."""
    due = date(2026, 3, 10)
    closes = _history(due, D("1000.00"), 1, 6)
    paid_on = due + timedelta(days=2)
    now = BillDue("b-1", due, D("3.00"), D("10.00"), D("1000.00"))
    as_of = dues_as_of(now, closes, paid_on)
    assert (as_of.penalty_interest, as_of.late_fee) == (D("1.00"), D("0"))

    allocation = allocate_repayment(D("1000.00"), [as_of], D("0"), paid_on, RULES)
    assert [w.penalty_waived for w in allocation.waivers] == [D("1.00")]
    reversal = backdated_penalty_reversal(closes, paid_on, D("1000.00"), RULES)
    assert reversal.penalty_reversed == D("2.00")  # the closes of DPD 3..6, 0.50 each
    assert reversal.late_fee_reversed == D("10.00")
    assert reversal.bureau_mark_withdrawn
    # waived 1.00 + reversed 2.00 == all 3.00 of penalty ever accrued
    assert allocation.waivers[0].penalty_waived + reversal.penalty_reversed == now.penalty_interest


def test_backdated_partial_payment_before_grace_end_lowers_the_late_fee() -> None:
    due = date(2026, 3, 10)
    closes = _history(due, D("1000.00"), 1, 5)
    reversal = backdated_penalty_reversal(closes, due + timedelta(days=2), D("400.00"), RULES)
    assert reversal.late_fee_reversed == D("4.00")  # 10.00 charged, 1% of 600.00 due
    assert not reversal.bureau_mark_withdrawn


def test_a_reversal_never_exceeds_what_a_capped_close_posted() -> None:
    close = CloseAccrual(date(2026, 9, 1), D("1000.00"), penalty=D("0.10"))
    reversal = backdated_penalty_reversal([close], date(2026, 8, 1), D("600.00"), RULES)
    assert reversal.penalty_reversed == D("0.00")  # 0.20 on 400.00 would be more than 0.10
    reversal = backdated_penalty_reversal([close], date(2026, 8, 1), D("900.00"), RULES)
    assert reversal.penalty_reversed == D("0.05")
