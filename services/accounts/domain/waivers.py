"""Hardship waivers (RULES 4.5): an operator gives up a bill's penalty interest or late fee.

A waiver at or below the approval threshold is applied at once on the requester's word;
above it, it waits (``pending``) until a second operator approves it (maker-checker: the
approver must not be the requester) or declines it. What is applied is what the bill
still owes of the component then, at most the amount asked. The charges the cap counts
(rule 2.4) are what was charged, so a waiver gives no room back.

Pure rules: plain values in, decisions out.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Literal, get_args

WaiverComponent = Literal["penalty_interest", "late_fee"]
WaiverReason = Literal["hardship", "bereavement", "disaster_relief", "service_failure", "goodwill"]
WAIVER_COMPONENTS: tuple[str, ...] = get_args(WaiverComponent)
WAIVER_REASONS: tuple[str, ...] = get_args(WaiverReason)

PENDING, APPLIED, DECLINED = "pending", "applied", "declined"

# refusals of a request, first match wins
UNKNOWN_ACCOUNT = "unknown_account"
UNKNOWN_BILL = "unknown_bill"
BILL_IN_PLAN = "bill_in_plan"
BILL_CHARGED_OFF = "bill_charged_off"
NON_POSITIVE_AMOUNT = "non_positive_amount"
AMOUNT_ABOVE_OUTSTANDING = "amount_above_outstanding"
# refusals of a decision
UNKNOWN_WAIVER = "unknown_waiver"
NOT_PENDING = "not_pending"
APPROVER_IS_REQUESTER = "approver_is_requester"


@dataclass(frozen=True)
class BillFacts:
    """What a waiver request is judged on: the bill as it stands."""

    in_plan: bool
    charged_off: bool
    outstanding: Decimal  # what the bill still owes of the component


def request_rejection(account_known: bool, bill: BillFacts | None, amount: Decimal) -> str | None:
    """Why a waiver request is refused, first match wins; None when it can go on."""
    if not account_known:
        return UNKNOWN_ACCOUNT
    if bill is None:
        return UNKNOWN_BILL
    if bill.in_plan:
        return BILL_IN_PLAN
    if bill.charged_off:
        return BILL_CHARGED_OFF
    if amount <= 0:
        return NON_POSITIVE_AMOUNT
    if amount > bill.outstanding:
        return AMOUNT_ABOVE_OUTSTANDING
    return None


def needs_approval(amount: Decimal, threshold: Decimal) -> bool:
    """Above the threshold a second operator must approve (at it, one operator suffices)."""
    return amount > threshold


def decision_rejection(status: str | None, requested_by: str | None, decided_by: str) -> str | None:
    """Why an approval or a decline is refused; None when it can be recorded."""
    if status is None:
        return UNKNOWN_WAIVER
    if status != PENDING:
        return NOT_PENDING
    if decided_by == requested_by:
        return APPROVER_IS_REQUESTER
    return None


def amount_to_apply(asked: Decimal, outstanding: Decimal) -> Decimal:
    """What the waiver takes off when applied: the amount asked, at most what is still owed
    (a payment between request and approval may have paid part of it)."""
    return max(Decimal("0.00"), min(asked, outstanding))
