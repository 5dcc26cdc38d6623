"""RULES 4.5, hardship waivers with maker-checker, in the domain: the worked example."""

from __future__ import annotations

from decimal import Decimal

from services.accounts.domain.ledger import customer_balance, hardship_waiver_posted, late_fee_charged
from services.accounts.domain.waivers import (
    AMOUNT_ABOVE_OUTSTANDING,
    APPROVER_IS_REQUESTER,
    BILL_CHARGED_OFF,
    BILL_IN_PLAN,
    NON_POSITIVE_AMOUNT,
    NOT_PENDING,
    UNKNOWN_ACCOUNT,
    UNKNOWN_BILL,
    UNKNOWN_WAIVER,
    BillFacts,
    amount_to_apply,
    decision_rejection,
    needs_approval,
    request_rejection,
)
from shared.rules import ProductRules

D = Decimal
FEE_OWED = BillFacts(in_plan=False, charged_off=False, outstanding=D("10.00"))
THRESHOLD = ProductRules().waivers.approval_threshold


def test_the_default_threshold_is_100() -> None:
    assert THRESHOLD == D("100.00")


def test_at_or_below_the_threshold_one_operator_suffices() -> None:
    assert not needs_approval(D("10.00"), THRESHOLD)
    assert not needs_approval(D("100.00"), THRESHOLD)
    assert needs_approval(D("100.01"), THRESHOLD)
    assert needs_approval(D("10.00"), D("5.00"))


def test_requests_are_refused_first_match_wins() -> None:
    assert request_rejection(False, None, D("1")) == UNKNOWN_ACCOUNT
    assert request_rejection(True, None, D("1")) == UNKNOWN_BILL
    assert request_rejection(True, BillFacts(True, True, D("10")), D("1")) == BILL_IN_PLAN
    assert request_rejection(True, BillFacts(False, True, D("10")), D("1")) == BILL_CHARGED_OFF
    assert request_rejection(True, FEE_OWED, D("0")) == NON_POSITIVE_AMOUNT
    assert request_rejection(True, FEE_OWED, D("10.01")) == AMOUNT_ABOVE_OUTSTANDING
    assert request_rejection(True, FEE_OWED, D("10.00")) is None


def test_the_checker_must_not_be_the_maker() -> None:
    assert decision_rejection(None, None, "op-2") == UNKNOWN_WAIVER
    assert decision_rejection("applied", "op-1", "op-2") == NOT_PENDING
    assert decision_rejection("pending", "op-1", "op-1") == APPROVER_IS_REQUESTER
    assert decision_rejection("pending", "op-1", "op-2") is None


def test_applied_at_most_what_is_still_owed() -> None:
    assert amount_to_apply(D("10.00"), D("10.00")) == D("10.00")
    assert amount_to_apply(D("10.00"), D("4.00")) == D("4.00")
    assert amount_to_apply(D("10.00"), D("0.00")) == D("0.00")


def test_the_waiver_posting_balances_and_lowers_what_the_customer_owes() -> None:
    posting = hardship_waiver_posted("late_fee", D("10.00"))
    assert posting.total_debit == posting.total_credit == D("10.00")
    assert customer_balance([late_fee_charged(D("10.00")), posting]) == D("0.00")
    penalty = hardship_waiver_posted("penalty_interest", D("5.00"))
    assert {line.account.value for line in penalty.lines} == {"waiver_expense", "customer_penalty"}
