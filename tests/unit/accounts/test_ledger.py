"""RULES section 4: double entry, and billed - paid - waived - written off to the fen."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import pytest

from services.accounts.domain.allocation import BillDue, allocate_repayment
from services.accounts.domain.ledger import (
    Account,
    Posting,
    PostingLine,
    UnbalancedPosting,
    balances,
    charged_off,
    customer_balance,
    grace_waiver_posted,
    late_fee_charged,
    moved_into_plan,
    penalty_accrued,
    plan_default_to_bill,
    plan_fee_due,
    purchase_posted,
    repayment_allocated,
)
from shared.rules import OverdueRules

D = Decimal


def test_an_unbalanced_posting_is_refused() -> None:
    with pytest.raises(UnbalancedPosting):
        Posting((PostingLine(Account.CASH, debit=D("1.00")), PostingLine(Account.CREDIT_BALANCE, credit=D("0.99"))))
    with pytest.raises(UnbalancedPosting):
        Posting((PostingLine(Account.CASH, debit=D("1.001")), PostingLine(Account.CREDIT_BALANCE, credit=D("1.001"))))
    with pytest.raises(UnbalancedPosting):
        Posting((PostingLine(Account.CASH, debit=D("1"), credit=D("1")),))


def test_zero_charges_move_nothing() -> None:
    assert penalty_accrued(D("0.00")).lines == ()


def test_customer_balance_identity_through_a_life() -> None:
    """billed - paid - waived - (written off - recovered) == customer balance, at each step."""
    postings = [purchase_posted(D("1000.00")), purchase_posted(D("200.00"))]
    billed, paid, waived, written_off = D("1200.00"), D("0"), D("0"), D("0")

    postings += [penalty_accrued(D("0.60")), penalty_accrued(D("0.60")), late_fee_charged(D("12.00"))]
    billed += D("13.20")
    postings.append(grace_waiver_posted(D("0.60")))
    waived += D("0.60")
    bill = BillDue("b-1", date(2026, 3, 10), D("0.60"), D("12.00"), D("1200.00"))
    allocation = allocate_repayment(D("212.60"), [bill], D("0"), date(2026, 3, 20), OverdueRules())
    postings.append(repayment_allocated(allocation))
    paid += D("212.60")
    assert customer_balance(postings) == billed - paid - waived - written_off

    postings.append(moved_into_plan(D("1000.00"), D("0"), D("0")))
    postings += [plan_fee_due(D("6.00")), plan_fee_due(D("6.00"))]
    billed += D("12.00")
    postings.append(plan_default_to_bill(D("1012.00")))
    postings.append(penalty_accrued(D("3.00")))  # the defaulted bill accrues again
    billed += D("3.00")
    postings.append(charged_off(D("1012.00"), D("3.00"), D("0")))
    written_off += D("1015.00")
    assert customer_balance(postings) == billed - paid - waived - written_off == 0

    recovered = BillDue("b-2", date(2026, 4, 10), D("0"), D("0"), D("1012.00"))
    recovery = allocate_repayment(D("1100.00"), [recovered], D("0"), date(2026, 12, 1), OverdueRules())
    postings.append(repayment_allocated(recovery, charged_off_bill_ids={"b-2"}))
    paid += D("1100.00")
    written_off -= D("1012.00")
    assert customer_balance(postings) == billed - paid - waived - written_off == D("-88.00")
    assert balances(postings)[Account.CREDIT_BALANCE] == D("-88.00")
    assert sum(balances(postings).values()) == 0
