"""Disputes (RULES 4.6): a customer disputes a purchase, or part of a bill, from the app.

While a dispute is open the disputed amount is set aside: the close charges penalty
interest and the late fee on the bill's principal less the disputed amount only, and
judges DPD on that remainder (within the arrears tolerance, rule 2.7, the bill is not
overdue); the delinquency snapshot, so collections, leaves it out. The rest of the bill
follows the rules as before. An operator resolves it:

* upheld: the disputed amount is credited back through the ledger, and the charges
  that accrued on it before it was disputed are reversed (each close's share of its
  penalty, and of the late fee, in proportion to the amount in that close's basis);
* partly upheld: the same for the part upheld, the rest owes again;
* rejected: the amount owes again; the charges of the days it was set aside are not
  charged unless ``disputes.charge_disputed_days_on_rejection`` says so.

A dispute open longer than ``disputes.service_level_days`` raises an alert, once.

Pure rules: plain values in, decisions out.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal
from typing import Literal, get_args

from shared.money import ZERO, round_fen

DisputeReason = Literal["not_received", "not_as_described", "unauthorised", "duplicate_charge", "cancelled"]
Outcome = Literal["upheld", "partly_upheld", "rejected"]
DISPUTE_REASONS: tuple[str, ...] = get_args(DisputeReason)
OUTCOMES: tuple[str, ...] = get_args(Outcome)

OPEN, RESOLVED = "open", "resolved"

UNKNOWN_ACCOUNT = "unknown_account"
UNKNOWN_BILL = "unknown_bill"
BILL_IN_PLAN = "bill_in_plan"
BILL_CHARGED_OFF = "bill_charged_off"
NON_POSITIVE_AMOUNT = "non_positive_amount"
AMOUNT_ABOVE_UNDISPUTED = "amount_above_undisputed"
UNKNOWN_DISPUTE = "unknown_dispute"
NOT_OPEN = "not_open"
UPHELD_AMOUNT_INVALID = "upheld_amount_invalid"


@dataclass(frozen=True)
class DisputedBill:
    """What a dispute is judged on: the bill as it stands."""

    in_plan: bool
    charged_off: bool
    unpaid_principal: Decimal
    disputed: Decimal  # already set aside by other open disputes


def open_rejection(account_known: bool, bill: DisputedBill | None, amount: Decimal) -> str | None:
    """Why a dispute cannot be opened, first match wins; None when it can."""
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
    if amount > bill.unpaid_principal - bill.disputed:
        return AMOUNT_ABOVE_UNDISPUTED
    return None


def resolution_rejection(status: str | None, outcome: str, amount: Decimal, upheld: Decimal | None) -> str | None:
    """Why a resolution cannot be recorded; None when it can."""
    if status is None:
        return UNKNOWN_DISPUTE
    if status != OPEN:
        return NOT_OPEN
    if outcome == "partly_upheld" and (upheld is None or not ZERO < upheld < amount):
        return UPHELD_AMOUNT_INVALID
    return None


def upheld_amount(outcome: str, amount: Decimal, upheld: Decimal | None) -> Decimal:
    """What the resolution credits back: all of it, the part upheld, or nothing."""
    if outcome == "upheld":
        return amount
    if outcome == "partly_upheld":
        assert upheld is not None
        return upheld
    return ZERO


def collectable(unpaid_principal: Decimal, disputed: Decimal) -> Decimal:
    """The principal the close charges and judges: what is not set aside by a dispute."""
    return max(ZERO, unpaid_principal - disputed)


def charge_share(charge: Decimal, part: Decimal, basis: Decimal) -> Decimal:
    """The share of one close's charge that ``part`` of its basis bore, half-up to the fen."""
    if basis <= 0 or charge <= 0:
        return ZERO
    return min(charge, round_fen(charge * min(part, basis) / basis))


def service_level_breached(opened_on: date, today: date, service_level_days: int) -> bool:
    """Open longer than the service level: the close of a date after opened + days alerts."""
    return today > opened_on + timedelta(days=service_level_days)
