"""Risk assessment: the scorecard of RULES section 7.

Points from a base score (600), one factor per rule line, and a grade from the score's
floor. The grade decides whether a plan is offered, its terms and its fee rate, and it
drives the collection strategy (``risk.assessed``). Every factor is always listed,
even at 0 points, so that the disclosed factors add up to the score:
``score == card.base_score + sum(f.points for f in factors)``.

Decisions on points the rulebook leaves open:

* current DPD 0 (not overdue, e.g. an offer requested after a partial cure) scores 0;
  a DPD beyond the last band (> 90) scores as the last, most severe, band;
* months on book between the bands (6–11) score 0;
* an income that is not positive counts as unknown (the ratio is undefined), the
  factor is still named ``debt_to_income`` with the "income unknown" points.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date
from decimal import Decimal

from services.restructuring.domain.schedule import add_months
from shared.rules import Grade, RiskScorecard

FACTOR_CURRENT_DPD = "current_dpd"
FACTOR_OVERDUE_BILLS = "overdue_bills_12m"
FACTOR_MONTHS_ON_BOOK = "months_on_book"
FACTOR_DEBT_TO_INCOME = "debt_to_income"


@dataclass(frozen=True)
class Factor:
    """One line of the scorecard and the points it gave (``{name, points}`` on the wire)."""

    name: str
    points: int


@dataclass(frozen=True)
class RiskAssessment:
    score: int
    grade: Grade
    factors: tuple[Factor, ...]


def months_on_book(opened_on: date, as_of: date) -> int:
    """Whole months since the line was opened: the largest m with opened_on + m months ≤ as_of.

    Months are counted with the same month-end clamping as due dates, so a line opened
    on 31 January has one month on book on 28 February.
    """
    if as_of < opened_on:
        return 0
    months = (as_of.year - opened_on.year) * 12 + (as_of.month - opened_on.month)
    while months > 0 and add_months(opened_on, months) > as_of:
        months -= 1
    return months


def overdue_bills_in_lookback(overdue_due_dates: Iterable[date], as_of: date, card: RiskScorecard) -> int:
    """How many bills went overdue in the lookback window (12 months up to ``as_of``).

    A bill counts when its due date (it went overdue the day after) falls after
    ``as_of`` − 12 months; the caller passes the due dates of bills that did go overdue.
    """
    window_start = add_months(as_of, -card.overdue_bill_lookback_months)
    return sum(1 for due in overdue_due_dates if window_start < due <= as_of)


def current_dpd_points(current_max_dpd: int, card: RiskScorecard) -> int:
    if current_max_dpd <= 0 or not card.dpd_points:
        return 0
    for low, high, points in card.dpd_points:
        if low <= current_max_dpd <= high:
            return points
    worst = max(card.dpd_points, key=lambda band: band[1])
    return worst[2] if current_max_dpd > worst[1] else 0


def overdue_bills_points(overdue_bills_last_12m: int, card: RiskScorecard) -> int:
    """−15 per bill, no worse than the floor (−90): six bills already say it all."""
    return max(card.overdue_bill_points * max(overdue_bills_last_12m, 0), card.overdue_bill_points_floor)


def months_on_book_points(months: int, card: RiskScorecard) -> int:
    for low, high, points in card.months_on_book_points:
        if months >= low and (high is None or months <= high):
            return points
    return 0


def debt_to_income(unpaid_total: Decimal, monthly_income: Decimal | None) -> Decimal | None:
    """Unpaid total ÷ a year of income, exact (no rounding); None when income is unknown."""
    if monthly_income is None or monthly_income <= 0:
        return None
    return unpaid_total / (monthly_income * 12)


def debt_to_income_points(ratio: Decimal | None, card: RiskScorecard) -> int:
    if ratio is None:
        return card.income_unknown_points
    for ceiling, points in sorted(card.dti_points):
        if ratio <= ceiling:
            return points
    return card.dti_above_points


def grade_for(score: int, card: RiskScorecard) -> Grade:
    """The best grade whose floor the score reaches; E below every floor."""
    for grade, floor in sorted(card.grade_floors.items(), key=lambda item: item[1], reverse=True):
        if score >= floor:
            return grade
    return "E"


def assess_risk(
    current_max_dpd: int,
    overdue_bills_last_12m: int,
    months_on_book: int,
    unpaid_total: Decimal,
    monthly_income: Decimal | None,
    card: RiskScorecard,
) -> RiskAssessment:
    """Score and grade an account from plain facts (RULES section 7)."""
    factors = (
        Factor(FACTOR_CURRENT_DPD, current_dpd_points(current_max_dpd, card)),
        Factor(FACTOR_OVERDUE_BILLS, overdue_bills_points(overdue_bills_last_12m, card)),
        Factor(FACTOR_MONTHS_ON_BOOK, months_on_book_points(months_on_book, card)),
        Factor(FACTOR_DEBT_TO_INCOME, debt_to_income_points(debt_to_income(unpaid_total, monthly_income), card)),
    )
    score = card.base_score + sum(f.points for f in factors)
    return RiskAssessment(score=score, grade=grade_for(score, card), factors=factors)
