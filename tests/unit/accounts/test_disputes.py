"""RULES 4.6, disputes, in the domain: the worked example of docs/rules.md."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

from services.accounts.domain.disputes import (
    AMOUNT_ABOVE_UNDISPUTED,
    BILL_CHARGED_OFF,
    BILL_IN_PLAN,
    NON_POSITIVE_AMOUNT,
    NOT_OPEN,
    UNKNOWN_ACCOUNT,
    UNKNOWN_BILL,
    UNKNOWN_DISPUTE,
    UPHELD_AMOUNT_INVALID,
    DisputedBill,
    charge_share,
    collectable,
    open_rejection,
    resolution_rejection,
    service_level_breached,
    upheld_amount,
)
from services.accounts.domain.ledger import (
    customer_balance,
    dispute_charges_reversed,
    dispute_upheld_posted,
    purchase_posted,
)
from services.accounts.domain.overdue import daily_penalty, late_fee
from shared.rules import ProductRules

D = Decimal
RULES = ProductRules()
BILL = DisputedBill(in_plan=False, charged_off=False, unpaid_principal=D("1400.00"), disputed=D("0"))


def test_the_disputed_amount_is_neither_charged_nor_judged() -> None:
    rest = collectable(D("1400.00"), D("400.00"))
    assert rest == D("1000.00")
    assert daily_penalty(rest, RULES.overdue) == D("0.50")  # not 0.70
    assert late_fee(rest, RULES.overdue) == D("10.00")  # not 14.00
    assert collectable(D("300.00"), D("400.00")) == D("0")


def test_upheld_after_two_closes_reverses_each_closes_share() -> None:
    assert charge_share(D("0.70"), D("400.00"), D("1400.00")) == D("0.20")
    assert 2 * charge_share(D("0.70"), D("400.00"), D("1400.00")) == D("0.40")
    assert charge_share(D("0.70"), D("2000.00"), D("1400.00")) == D("0.70")  # never more than the charge
    assert charge_share(D("0"), D("400.00"), D("1400.00")) == D("0")


def test_what_each_outcome_credits_back() -> None:
    assert upheld_amount("upheld", D("400.00"), None) == D("400.00")
    assert upheld_amount("partly_upheld", D("400.00"), D("150.00")) == D("150.00")
    assert upheld_amount("rejected", D("400.00"), None) == D("0")


def test_refusals_first_match_wins() -> None:
    assert open_rejection(False, None, D("1")) == UNKNOWN_ACCOUNT
    assert open_rejection(True, None, D("1")) == UNKNOWN_BILL
    assert open_rejection(True, DisputedBill(True, True, D("10"), D("0")), D("1")) == BILL_IN_PLAN
    assert open_rejection(True, DisputedBill(False, True, D("10"), D("0")), D("1")) == BILL_CHARGED_OFF
    assert open_rejection(True, BILL, D("0")) == NON_POSITIVE_AMOUNT
    assert open_rejection(True, DisputedBill(False, False, D("1400.00"), D("1000.01")), D("400.00")) == (
        AMOUNT_ABOVE_UNDISPUTED
    )
    assert open_rejection(True, BILL, D("400.00")) is None
    assert resolution_rejection(None, "upheld", D("400"), None) == UNKNOWN_DISPUTE
    assert resolution_rejection("resolved", "upheld", D("400"), None) == NOT_OPEN
    assert resolution_rejection("open", "partly_upheld", D("400"), None) == UPHELD_AMOUNT_INVALID
    assert resolution_rejection("open", "partly_upheld", D("400"), D("400")) == UPHELD_AMOUNT_INVALID
    assert resolution_rejection("open", "partly_upheld", D("400"), D("150")) is None


def test_the_service_level_alert_comes_with_the_close_after_15_days() -> None:
    assert not service_level_breached(date(2026, 3, 5), date(2026, 3, 20), 15)
    assert service_level_breached(date(2026, 3, 5), date(2026, 3, 21), 15)


def test_the_postings_balance_and_the_customer_owes_what_is_left() -> None:
    upheld = dispute_upheld_posted(D("300.00"), D("100.00"))
    assert upheld.total_debit == upheld.total_credit == D("400.00")
    assert customer_balance([purchase_posted(D("400.00")), upheld]) == D("0.00")
    reversal = dispute_charges_reversed(D("0.40"), D("0"))
    assert reversal.total_debit == reversal.total_credit == D("0.40")
