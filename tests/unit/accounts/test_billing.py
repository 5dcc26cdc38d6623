"""RULES section 1: statements, due dates, purchase decisions, the available limit."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import pytest

from services.accounts.domain.billing import (
    AccountStatus,
    DECLINE_ACCOUNT_CLOSED,
    DECLINE_ACCOUNT_RESTRICTED,
    DECLINE_INSUFFICIENT_LIMIT,
    DECLINE_INVALID_AMOUNT,
    DECLINE_LINKED_ACCOUNT_RESTRICTED,
    DECLINE_UNKNOWN_ACCOUNT,
    UnbilledPurchase,
    available_limit,
    build_statement,
    due_date_for,
    next_statement_date,
    purchase_decision,
    statement_dates_between,
)
from shared.rules import BillingRules

D = Decimal
RULES = BillingRules()


def test_statement_dates_between_is_inclusive_and_ordered() -> None:
    assert statement_dates_between(date(2026, 1, 1), date(2026, 3, 1), RULES) == [
        date(2026, 1, 1),
        date(2026, 2, 1),
        date(2026, 3, 1),
    ]
    assert statement_dates_between(date(2025, 12, 2), date(2026, 2, 28), RULES) == [date(2026, 1, 1), date(2026, 2, 1)]
    assert statement_dates_between(date(2026, 3, 2), date(2026, 3, 31), RULES) == []
    assert statement_dates_between(date(2026, 3, 2), date(2026, 3, 1), RULES) == []


def test_due_on_the_10th_of_the_statement_month() -> None:
    assert due_date_for(date(2026, 3, 1), RULES) == date(2026, 3, 10)
    assert due_date_for(date(2026, 12, 1), RULES) == date(2026, 12, 10)


def test_a_due_day_not_after_the_statement_day_falls_in_the_next_month() -> None:
    rules = BillingRules(statement_day=15, due_day=5)
    assert due_date_for(date(2026, 12, 15), rules) == date(2027, 1, 5)


def test_a_purchase_is_billed_by_the_first_statement_after_its_day() -> None:
    assert next_statement_date(date(2026, 2, 14), RULES) == date(2026, 3, 1)
    assert next_statement_date(date(2026, 3, 1), RULES) == date(2026, 4, 1)  # not "before S"
    assert next_statement_date(date(2026, 12, 31), RULES) == date(2027, 1, 1)


def test_build_statement_bills_purchases_posted_before_s_and_never_zero() -> None:
    purchases = [
        UnbilledPurchase("p-2", date(2026, 2, 20), D("250.10")),
        UnbilledPurchase("p-1", date(2026, 2, 14), D("1000.00")),
        UnbilledPurchase("p-3", date(2026, 3, 1), D("99.00")),  # on S: next statement
    ]
    statement = build_statement(date(2026, 3, 1), purchases, RULES)
    assert statement is not None
    assert statement.amount == D("1250.10")
    assert statement.purchase_ids == ("p-1", "p-2")
    assert statement.due_date == date(2026, 3, 10)
    assert build_statement(date(2026, 3, 1), purchases[2:], RULES) is None


def test_available_limit_never_below_zero_and_zero_when_frozen() -> None:
    assert available_limit(D("5000.00"), D("1000.00"), frozen=False) == D("4000.00")
    assert available_limit(D("2500.00"), D("3000.00"), frozen=False) == D("0.00")
    assert available_limit(D("5000.00"), D("0.00"), frozen=True) == D("0.00")


@pytest.mark.parametrize(
    ("status", "available", "amount", "reason"),
    [
        (None, "5000.00", "-1", DECLINE_UNKNOWN_ACCOUNT),
        ("open", "5000.00", "0.00", DECLINE_INVALID_AMOUNT),
        ("open", "5000.00", "-5.00", DECLINE_INVALID_AMOUNT),
        ("open", "5000.00", "1.005", DECLINE_INVALID_AMOUNT),
        ("closed", "5000.00", "10.00", DECLINE_ACCOUNT_CLOSED),
        ("restricted", "5000.00", "10.00", DECLINE_ACCOUNT_RESTRICTED),
        ("linked_restricted", "5000.00", "10.00", DECLINE_LINKED_ACCOUNT_RESTRICTED),
        ("open", "9.99", "10.00", DECLINE_INSUFFICIENT_LIMIT),
        ("open", "10.00", "10.00", None),
    ],
)
def test_purchase_decision(status: AccountStatus | None, available: str, amount: str, reason: str | None) -> None:
    decision = purchase_decision(status, D(available), D(amount))
    assert decision.reason == reason
    assert decision.approved is (reason is None)
    if decision.approved:
        assert decision.available_after == D(available) - D(amount)
