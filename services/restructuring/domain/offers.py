"""Eligibility and offers of a restructuring plan (RULES section 8).

Decisions on points the rulebook leaves open:

* Eligibility reasons are checked in this order: ``plan_already_active`` first (an
  active plan takes its bills out of DPD, so "no overdue bills" would hide the real
  reason), then ``no_overdue_bills``, ``dpd_too_high``, ``grade_not_eligible``.
  When every offer is filtered out (cap, affordability, a principal too small for the
  terms) the caller answers ``plan.ineligible`` with ``NO_OFFER_WITHIN_LIMITS``.
* The schedule of an offer is computed as if accepted on ``start_date`` (the day the
  offers are made). The plan's real schedule is re-computed from the acceptance date
  with :func:`schedule.build_schedule` (same method, principal, term and rate).
* Expiry is the caller's: :func:`offer_expires_at` = offered_at + ``offer_valid_days``
  (a timestamp, as the wire's ``expires_at``); an offer accepted at or after it is refused.
* The cap compares the disclosed (rounded) annualized rate: an offer shown at 24.00 %
  is made, one at 24.01 % is not.
* Affordability compares the regular monthly payment (the first period's total) with
  ``affordability_ratio`` × income; an income that is None or not positive is unknown
  and nothing is dropped for it.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal

from services.restructuring.domain.apr import schedule_apr
from services.restructuring.domain.schedule import Method, Schedule, ScheduleError, build_schedule
from shared.money import ZERO
from shared.rules import Grade, RestructuringRules

NO_OVERDUE_BILLS = "no_overdue_bills"
DPD_TOO_HIGH = "dpd_too_high"
PLAN_ALREADY_ACTIVE = "plan_already_active"
GRADE_NOT_ELIGIBLE = "grade_not_eligible"
NO_OFFER_WITHIN_LIMITS = "no_affordable_offer"


def check_eligibility(
    has_overdue_bills: bool, max_dpd: int, has_active_plan: bool, grade: Grade, rules: RestructuringRules
) -> str | None:
    """None when the account may be offered a plan, else the ``plan.ineligible`` reason."""
    if has_active_plan:
        return PLAN_ALREADY_ACTIVE
    if not has_overdue_bills:
        return NO_OVERDUE_BILLS
    if max_dpd > rules.max_dpd:
        return DPD_TOO_HIGH
    if grade not in rules.eligible_grades:
        return GRADE_NOT_ELIGIBLE
    return None


@dataclass(frozen=True)
class OverdueBillBalance:
    """What is still unpaid on one overdue bill (as in ``account.delinquency.updated``)."""

    bill_id: str
    unpaid_principal: Decimal
    penalty_interest: Decimal
    late_fee: Decimal

    @property
    def unpaid_total(self) -> Decimal:
        return self.unpaid_principal + self.penalty_interest + self.late_fee


def restructured_principal(bills: Iterable[OverdueBillBalance]) -> Decimal:
    """All unpaid amounts of the overdue bills (principal, penalty interest, late fee):
    the plan replaces those bills entirely, so nothing of them may stay behind."""
    return sum((bill.unpaid_total for bill in bills), ZERO)


@dataclass(frozen=True)
class Offer:
    """One offer as ``plan.offered`` discloses it (without offer_id and expires_at,
    which the caller assigns)."""

    term: int
    method: Method
    monthly_fee_rate: Decimal
    principal: Decimal
    total_fee: Decimal
    apr: Decimal
    monthly_payment: Decimal
    schedule: Schedule


def offer_expires_at(offered_at: datetime, rules: RestructuringRules) -> datetime:
    """Offers are valid ``offer_valid_days`` (7) from the moment they are made."""
    return offered_at + timedelta(days=rules.offer_valid_days)


def make_offer(schedule: Schedule) -> Offer:
    """The disclosure of a schedule: its figures and its annualized rate."""
    return Offer(
        term=schedule.term,
        method=schedule.method,
        monthly_fee_rate=schedule.monthly_fee_rate,
        principal=schedule.principal,
        total_fee=schedule.total_fee,
        apr=schedule_apr(schedule),
        monthly_payment=schedule.monthly_payment,
        schedule=schedule,
    )


def is_affordable(monthly_payment: Decimal, monthly_income: Decimal | None, rules: RestructuringRules) -> bool:
    """A payment above half the known monthly income sets the plan up to fail."""
    if monthly_income is None or monthly_income <= 0:
        return True
    return monthly_payment <= rules.affordability_ratio * monthly_income


def build_offers(
    principal: Decimal, grade: Grade, monthly_income: Decimal | None, start_date: date, rules: RestructuringRules
) -> list[Offer]:
    """Every offer the grade allows (terms × configured methods), by term then method,
    minus those above the rate cap or beyond the customer's means."""
    rate = rules.monthly_fee_rate_by_grade.get(grade)
    if rate is None or principal <= 0:
        return []
    offers: list[Offer] = []
    for term in rules.terms_by_grade.get(grade, []):
        for method in rules.methods:
            try:
                offer = make_offer(build_schedule(method, principal, term, rate, start_date))
            except ScheduleError:
                continue  # a principal too small to spread over this many months
            if offer.apr <= rules.apr_cap and is_affordable(offer.monthly_payment, monthly_income, rules):
                offers.append(offer)
    return offers
