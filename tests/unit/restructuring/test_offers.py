"""Eligibility and offers (RULES section 8)."""

from __future__ import annotations

from datetime import date, datetime, timedelta, timezone
from decimal import Decimal

import pytest

from services.restructuring.domain.offers import (
    DPD_TOO_HIGH,
    GRADE_NOT_ELIGIBLE,
    NO_OVERDUE_BILLS,
    PLAN_ALREADY_ACTIVE,
    OverdueBillBalance,
    build_offers,
    check_eligibility,
    offer_expires_at,
    restructured_principal,
)
from shared.rules import RestructuringRules, Grade

D = Decimal
RULES = RestructuringRules()
TODAY = date(2026, 3, 15)


@pytest.mark.parametrize(
    ("overdue", "dpd", "active", "grade", "reason"),
    [
        (True, 10, False, "B", None),
        (True, 90, False, "D", None),  # DPD 90 is still eligible
        (False, 0, False, "A", NO_OVERDUE_BILLS),
        (True, 91, False, "A", DPD_TOO_HIGH),
        (True, 10, True, "A", PLAN_ALREADY_ACTIVE),
        (False, 0, True, "A", PLAN_ALREADY_ACTIVE),  # the plan is the real reason
        (True, 10, False, "E", GRADE_NOT_ELIGIBLE),
        (True, 120, False, "E", DPD_TOO_HIGH),
    ],
)
def test_eligibility(overdue: bool, dpd: int, active: bool, grade: Grade, reason: str | None) -> None:
    assert check_eligibility(overdue, dpd, active, grade, RULES) == reason


def test_restructured_principal_takes_every_unpaid_amount() -> None:
    """The section 2 bill at 03-20 after the repayment: 515.00 principal, penalty and
    late fee paid; another bill with 1,000.00 + 5.00 + 10.00."""
    bills = [
        OverdueBillBalance("b1", D("515.00"), D("0.00"), D("0.00")),
        OverdueBillBalance("b2", D("1000.00"), D("5.00"), D("10.00")),
    ]
    assert restructured_principal(bills) == D("1530.00")
    assert restructured_principal([]) == D("0.00")


def test_grade_b_offers_every_term_and_discloses_the_worked_example() -> None:
    offers = build_offers(D("3000.00"), "B", None, TODAY, RULES)
    assert [(o.term, o.method) for o in offers] == [(t, "equal_principal") for t in (3, 6, 9, 12, 18, 24)]
    six = offers[1]
    assert (six.principal, six.monthly_fee_rate, six.monthly_payment, six.total_fee, six.apr) == (
        D("3000.00"),
        D("0.0060"),
        D("518.00"),
        D("108.00"),
        D("0.1224"),
    )
    assert six.schedule.term == 6 and six.schedule.periods[0].due_date == date(2026, 4, 15)


def test_grade_d_terms_and_rate() -> None:
    offers = build_offers(D("3000.00"), "D", None, TODAY, RULES)
    assert [o.term for o in offers] == [3, 6, 12]
    assert {o.monthly_fee_rate for o in offers} == {D("0.0080")}
    assert offers[1].schedule.periods[0].fee == D("24.00")


def test_grade_e_gets_no_offer() -> None:
    assert build_offers(D("3000.00"), "E", None, TODAY, RULES) == []


def test_affordability_at_half_the_income() -> None:
    """518.00 is exactly half of 1,036.00: still made; one fen less of income drops it."""

    def terms(income: Decimal | None) -> list[int]:
        return [o.term for o in build_offers(D("3000.00"), "B", income, TODAY, RULES)]

    assert terms(D("1036.00")) == [6, 9, 12, 18, 24]
    assert terms(D("1035.99")) == [9, 12, 18, 24]
    assert terms(D("100.00")) == []
    assert terms(None) == [3, 6, 9, 12, 18, 24]


def test_apr_cap_drops_dearer_offers() -> None:
    """Grade B, 3,000.00: APRs 3 m 0.1077, 6 m 0.1224, 9 m 0.1278, 12 m 0.1303, 18 m 0.1323,
    24 m 0.1327; a cap equal to an offer's disclosed rate keeps it."""
    offers = build_offers(D("3000.00"), "B", None, TODAY, RULES)
    aprs = {o.term: o.apr for o in offers}
    capped = build_offers(D("3000.00"), "B", None, TODAY, RULES.model_copy(update={"apr_cap": D("0.1224")}))
    assert aprs == {3: D("0.1077"), 6: D("0.1224"), 9: D("0.1278"), 12: D("0.1303"), 18: D("0.1323"), 24: D("0.1327")}
    assert [o.term for o in capped] == [3, 6]


def test_both_methods_when_configured() -> None:
    rules = RULES.model_copy(update={"methods": ["equal_principal", "equal_installment"]})
    offers = build_offers(D("3000.00"), "C", None, TODAY, rules)
    assert len(offers) == 12
    assert [o.method for o in offers[:2]] == ["equal_principal", "equal_installment"]
    annuity = offers[3]
    # 3000 × 0.007 × 1.007⁶ / (1.007⁶ − 1) = 512.3212 → 512.32
    assert (annuity.term, annuity.method, annuity.monthly_payment) == (6, "equal_installment", D("512.32"))


def test_tiny_principal_drops_the_terms_it_cannot_fill() -> None:
    """1.32 over 24 months would need 0.06 × 23 = 1.38 before the last period."""
    assert 24 not in [o.term for o in build_offers(D("1.32"), "A", None, TODAY, RULES)]


def test_offer_expiry() -> None:
    offered_at = datetime(2026, 3, 15, 10, 0, tzinfo=timezone(timedelta(hours=8)))
    assert offer_expires_at(offered_at, RULES) == datetime(2026, 3, 22, 10, 0, tzinfo=timezone(timedelta(hours=8)))
