"""RULES section 2: DPD, penalty interest, late fee, the cap, charge-off, grace waiver."""

from __future__ import annotations

from dataclasses import replace
from datetime import date, timedelta
from decimal import Decimal

import pytest

from services.accounts.domain.overdue import (
    BillState,
    capped,
    daily_penalty,
    dpd,
    grace_waiver,
    late_fee,
    overdue_charge_cap,
)
from tests.support.close_oracle import bill_after_close, close_bill_for_day
from shared.rules import OverdueRules

D = Decimal
RULES = OverdueRules()
DUE = date(2026, 3, 10)


def bill(principal: str = "1000.00", **changes: object) -> BillState:
    state = BillState("b-1", DUE, D(principal), D(principal))
    return replace(state, **changes)  # type: ignore[arg-type]  # each test names the fields it changes


def run_closes(state: BillState, first: date, last: date) -> tuple[BillState, list]:
    results = []
    day = first
    while day <= last:
        result = close_bill_for_day(state, day, RULES)
        state = bill_after_close(state, result)
        results.append(result)
        day += timedelta(days=1)
    return state, results


def test_dpd_counts_days_after_the_due_date() -> None:
    assert dpd(date(2026, 3, 9), DUE) == 0
    assert dpd(DUE, DUE) == 0
    assert dpd(date(2026, 3, 11), DUE) == 1
    assert dpd(date(2026, 9, 6), DUE) == 180


@pytest.mark.parametrize(
    ("unpaid", "penalty"),
    [("1000.00", "0.50"), ("515.00", "0.26"), ("9.99", "0.00"), ("10.00", "0.01"), ("0.01", "0.00")],
)
def test_daily_penalty_rounds_half_up_to_the_fen(unpaid: str, penalty: str) -> None:
    assert daily_penalty(D(unpaid), RULES) == D(penalty)


@pytest.mark.parametrize(
    ("unpaid", "fee"),
    [("1000.00", "10.00"), ("3000.00", "30.00"), ("5000.00", "30.00"), ("12.35", "0.12"), ("12.50", "0.13")],
)
def test_late_fee_is_one_percent_at_most_thirty(unpaid: str, fee: str) -> None:
    assert late_fee(D(unpaid), RULES) == D(fee)


def test_cap_is_24_percent_truncated_and_cuts_the_charge_that_reaches_it() -> None:
    assert overdue_charge_cap(D("1000.00"), RULES) == D("240.00")
    assert overdue_charge_cap(D("0.99"), RULES) == D("0.23")  # 0.2376 never rounds up
    assert capped(D("0.50"), D("1000.00"), D("239.80"), RULES) == D("0.20")
    assert capped(D("0.50"), D("1000.00"), D("240.00"), RULES) == D("0.00")
    assert capped(D("0.50"), D("1000.00"), D("0.00"), RULES) == D("0.50")


def test_no_close_before_or_on_the_due_date_and_none_for_a_paid_bill() -> None:
    assert close_bill_for_day(bill(), DUE, RULES).dpd == 0
    paid = bill(unpaid_principal=D("0.00"))
    result = close_bill_for_day(paid, date(2026, 3, 11), RULES)
    assert (result.dpd, result.penalty, result.newly_overdue) == (0, 0, False)


def test_overdue_is_detected_once_on_the_first_close_with_dpd_1() -> None:
    _, results = run_closes(bill(), date(2026, 3, 11), date(2026, 3, 13))
    assert [r.newly_overdue for r in results] == [True, False, False]


def test_late_fee_and_bureau_mark_only_at_the_end_of_grace() -> None:
    _, results = run_closes(bill(), date(2026, 3, 11), date(2026, 3, 20))
    assert [r.late_fee for r in results] == [0, 0, 0, D("10.00")] + [0] * 6
    assert [r.bureau_mark for r in results] == [False, False, False, True] + [False] * 6


def test_the_close_is_idempotent() -> None:
    state, _ = run_closes(bill(), date(2026, 3, 11), date(2026, 3, 14))
    again = close_bill_for_day(state, date(2026, 3, 14), RULES)
    assert again.already_closed and again.penalty == 0 and again.late_fee == 0
    assert bill_after_close(state, again) == state


def test_a_bill_in_a_plan_neither_accrues_nor_counts() -> None:
    result = close_bill_for_day(bill(in_plan=True), date(2026, 4, 20), RULES)
    assert (result.dpd, result.penalty, result.late_fee) == (0, 0, 0)


def test_charge_off_at_dpd_180_once_then_accrual_stops() -> None:
    state, results = run_closes(bill(), date(2026, 3, 11), date(2026, 9, 10))
    by_dpd = {r.dpd: r for r in results}
    assert [r.dpd for r in results if r.charge_off] == [180]
    assert by_dpd[180].penalty == D("0.50")  # the charge-off close still accrues its day
    assert all(by_dpd[d].penalty == 0 for d in range(181, 185))
    assert by_dpd[184].dpd == 184  # still counts for the ladder: the debt stays collectable
    # 180 days x 0.50 + late fee 10.00, all written off with the principal
    assert by_dpd[180].charge_off_amount == D("1000.00") + D("90.00") + D("10.00")
    assert state.charged_off and state.penalty_charged_total == D("90.00")


def test_accrual_stops_at_the_cap() -> None:
    rules = OverdueRules(penalty_daily_rate=D("0.01"), charge_off_dpd=1000)  # 1% a day
    state = bill("100.00")
    total = D("0")
    for day in range(1, 40):
        result = close_bill_for_day(state, DUE + timedelta(days=day), rules)
        state = bill_after_close(state, result)
        total += result.penalty + result.late_fee
    assert total == D("24.00") == state.overdue_charges


def test_the_late_fee_shares_the_cap_after_the_day_penalty() -> None:
    state = bill("100.00", penalty_charged_total=D("23.80"), penalty_outstanding=D("23.80"))
    result = close_bill_for_day(state, DUE + timedelta(days=4), RULES)
    assert (result.penalty, result.late_fee) == (D("0.05"), D("0.15"))


@pytest.mark.parametrize("repaid_dpd", [1, 2, 3])
def test_grace_waiver_reverses_the_penalty_when_principal_is_repaid_in_grace(repaid_dpd: int) -> None:
    repaid_on = DUE + timedelta(days=repaid_dpd)
    state, _ = run_closes(bill(), date(2026, 3, 11), repaid_on)
    paid = replace(state, unpaid_principal=D("0.00"))
    waiver = grace_waiver(paid, repaid_on, RULES)
    assert waiver is not None and waiver.penalty_waived == D("0.50") * repaid_dpd
    # no late fee, no bureau mark afterwards: the closes skip a paid bill
    after = close_bill_for_day(paid, repaid_on + timedelta(days=1), RULES)
    assert (after.late_fee, after.bureau_mark, after.penalty) == (0, False, 0)


def test_no_grace_waiver_after_grace_nor_for_a_partial_repayment() -> None:
    state, _ = run_closes(bill(), date(2026, 3, 11), date(2026, 3, 14))
    assert grace_waiver(replace(state, unpaid_principal=D("0")), date(2026, 3, 14), RULES) is None
    assert grace_waiver(replace(state, unpaid_principal=D("1")), date(2026, 3, 12), RULES) is None
    assert grace_waiver(bill(unpaid_principal=D("0")), DUE, RULES) is None  # not overdue
