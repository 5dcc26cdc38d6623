"""Rule 2.7, the arrears tolerance, in the domain: the worked example of docs/rules.md."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import pytest

from services.accounts.domain.overdue import BillState, in_arrears
from tests.support.close_oracle import close_bill_for_day, counts_for_dpd
from shared.rules import OverdueRules, ProductRules

D = Decimal
RULES = ProductRules().overdue
DUE = date(2026, 3, 10)


def bill(unpaid: str) -> BillState:
    return BillState("bill-1", DUE, D("1000.00"), D(unpaid))


def test_the_default_tolerance_is_one_yuan() -> None:
    assert RULES.arrears_tolerance == D("1.00")
    assert RULES.arrears_tolerance_fen == 100


@pytest.mark.parametrize(("unpaid", "overdue"), [("0.01", False), ("0.80", False), ("1.00", False), ("1.01", True)])
def test_principal_at_or_below_the_tolerance_is_not_in_arrears(unpaid: str, overdue: bool) -> None:
    assert in_arrears(D(unpaid), RULES) is overdue
    assert counts_for_dpd(bill(unpaid), date(2026, 3, 11), RULES) is overdue


def test_a_tolerated_bill_gets_no_dpd_penalty_fee_mark_or_charge_off() -> None:
    """0.80 left on the bill: the close of 03-11, of 03-14 (end of grace) and of DPD 180 find
    nothing overdue."""
    for day in (date(2026, 3, 11), date(2026, 3, 14), date(2026, 9, 6)):
        result = close_bill_for_day(bill("0.80"), day, RULES)
        assert (result.dpd, result.penalty, result.late_fee, result.bureau_mark, result.charge_off) == (
            0,
            D("0"),
            D("0"),
            False,
            False,
        )
        assert not result.overdue and not result.newly_overdue


def test_just_above_the_tolerance_the_bill_is_overdue() -> None:
    """1.01 left: DPD 1, penalty round(1.01 × 0.0005) = 0.00, the bill is overdue."""
    result = close_bill_for_day(bill("1.01"), date(2026, 3, 11), RULES)
    assert (result.dpd, result.penalty, result.newly_overdue) == (1, D("0.00"), True)


def test_a_zero_tolerance_is_the_rule_without_it() -> None:
    rules = OverdueRules(arrears_tolerance=D("0"))
    result = close_bill_for_day(bill("0.80"), date(2026, 3, 11), rules)
    assert (result.dpd, result.newly_overdue) == (1, True)


def test_a_negative_tolerance_is_refused() -> None:
    with pytest.raises(ValueError):
        OverdueRules(arrears_tolerance=D("-0.01"))
