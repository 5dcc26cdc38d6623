"""Credit line, purchases and bills (RULES section 1).

Decisions not spelled out by RULES.md:

* ``statement_dates_between(a, b)`` is inclusive at both ends, so a catch-up from the
  last run date needs ``a = last_run + 1 day``.
* A purchase posted *on* a statement date is not "posted before S": it goes on the next
  statement (the statements job runs at 00:10, the day has started).
* When a configured due day is not after the statement day, the bill is due on that day
  of the next month (a bill is never due before it is issued). The defaults (1st / 10th)
  give the rulebook's "the 10th of S's month".
* Purchase decline precedence, first match wins: ``unknown_account``,
  ``invalid_amount``, ``account_closed``, ``account_restricted``,
  ``linked_account_restricted``, ``insufficient_limit``. An unknown account is named
  first because nothing else can be said about it; a closed account before a
  restricted one because closure is final.
* A credit balance is not netted into the statement: the bill is issued for the
  purchases and the credit balance then pays it as a repayment
  (``allocate_repayment(credit_balance, [new bill], ...)``), so the ledger shows both.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from typing import Literal

from shared.money import FEN, ZERO
from shared.rules import BillingRules

DECLINE_ACCOUNT_RESTRICTED = "account_restricted"
DECLINE_LINKED_ACCOUNT_RESTRICTED = "linked_account_restricted"
DECLINE_INSUFFICIENT_LIMIT = "insufficient_limit"
DECLINE_ACCOUNT_CLOSED = "account_closed"
DECLINE_UNKNOWN_ACCOUNT = "unknown_account"
DECLINE_INVALID_AMOUNT = "invalid_amount"

# The account's standing for borrowing, as lock_ladder.account_status_for derives it.
AccountStatus = Literal["open", "restricted", "linked_restricted", "closed"]
STATUS_OPEN: AccountStatus = "open"
STATUS_RESTRICTED: AccountStatus = "restricted"
STATUS_LINKED_RESTRICTED: AccountStatus = "linked_restricted"
STATUS_CLOSED: AccountStatus = "closed"


def _add_months(year: int, month: int, months: int) -> tuple[int, int]:
    index = year * 12 + (month - 1) + months
    return index // 12, index % 12 + 1


def is_statement_date(day: date, rules: BillingRules) -> bool:
    """The statement day is the 1st of each month (``statement_day``)."""
    return day.day == rules.statement_day


def statement_dates_between(a: date, b: date, rules: BillingRules) -> list[date]:
    """Every statement date S with a <= S <= b, oldest first (empty when a > b).

    The statements job catches up missed days with it, in order.
    """
    dates: list[date] = []
    year, month = a.year, a.month
    while date(year, month, 1) <= b:
        candidate = date(year, month, rules.statement_day)
        if a <= candidate <= b:
            dates.append(candidate)
        year, month = _add_months(year, month, 1)
    return dates


def next_statement_date(posted_on: date, rules: BillingRules) -> date:
    """The statement that bills a purchase posted on ``posted_on``: the first statement
    date strictly after it (purchases are billed when posted *before* S)."""
    this_month = date(posted_on.year, posted_on.month, rules.statement_day)
    if this_month > posted_on:
        return this_month
    year, month = _add_months(posted_on.year, posted_on.month, 1)
    return date(year, month, rules.statement_day)


def due_date_for(statement_date: date, rules: BillingRules) -> date:
    """The due date of the bill of statement ``S``: the 10th of S's month.

    Purchases are interest free up to this date.
    """
    if rules.due_day > statement_date.day:
        return statement_date.replace(day=rules.due_day)
    year, month = _add_months(statement_date.year, statement_date.month, 1)
    return date(year, month, rules.due_day)


@dataclass(frozen=True)
class UnbilledPurchase:
    """An approved purchase not yet on a bill."""

    purchase_id: str
    posted_on: date
    amount: Decimal


@dataclass(frozen=True)
class Statement:
    """One bill to issue: every approved, unbilled purchase posted before S."""

    statement_date: date
    due_date: date
    amount: Decimal
    purchase_ids: tuple[str, ...]


def build_statement(
    statement_date: date, purchases: Iterable[UnbilledPurchase], rules: BillingRules
) -> Statement | None:
    """The bill of ``statement_date``, or None: no bill is issued for zero."""
    billed = sorted(
        (p for p in purchases if p.posted_on < statement_date),
        key=lambda p: (p.posted_on, p.purchase_id),
    )
    amount = sum((p.amount for p in billed), ZERO)
    if amount <= 0:
        return None
    return Statement(
        statement_date=statement_date,
        due_date=due_date_for(statement_date, rules),
        amount=amount,
        purchase_ids=tuple(p.purchase_id for p in billed),
    )


def available_limit(effective_limit: Decimal, unpaid_principal: Decimal, frozen: bool) -> Decimal:
    """available = effective credit limit - unpaid principal (billed and unbilled),
    never below 0; 0 while the lock ladder freezes it."""
    if frozen:
        return ZERO
    return max(ZERO, effective_limit - unpaid_principal)


def is_valid_amount(amount: Decimal) -> bool:
    """A money amount is a finite Decimal > 0 with at most two decimals."""
    if not isinstance(amount, Decimal) or not amount.is_finite() or amount <= 0:
        return False
    return amount == amount.quantize(FEN)


@dataclass(frozen=True)
class PurchaseDecision:
    """``purchase.approved`` (reason None) or ``purchase.declined`` with its reason.

    ``available_after`` is the available limit once the decision is applied: the
    ``available_limit`` of purchase.approved.
    """

    approved: bool
    reason: str | None
    available_after: Decimal


def purchase_decision(account_status: AccountStatus | None, available: Decimal, amount: Decimal) -> PurchaseDecision:
    """Approve when the account allows borrowing and available >= amount.

    ``account_status`` None means the account is not known. Precedence of the decline
    reasons is in the module docstring.
    """
    reason = _decline_reason(account_status, available, amount)
    if reason is not None:
        return PurchaseDecision(False, reason, available)
    return PurchaseDecision(True, None, available - amount)


def _decline_reason(account_status: AccountStatus | None, available: Decimal, amount: Decimal) -> str | None:
    if account_status is None:
        return DECLINE_UNKNOWN_ACCOUNT
    if not is_valid_amount(amount):
        return DECLINE_INVALID_AMOUNT
    if account_status == STATUS_CLOSED:
        return DECLINE_ACCOUNT_CLOSED
    if account_status == STATUS_RESTRICTED:
        return DECLINE_ACCOUNT_RESTRICTED
    if account_status == STATUS_LINKED_RESTRICTED:
        return DECLINE_LINKED_ACCOUNT_RESTRICTED
    if available < amount:
        return DECLINE_INSUFFICIENT_LIMIT
    return None
