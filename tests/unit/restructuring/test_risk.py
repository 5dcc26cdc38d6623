"""The risk scorecard of RULES section 7, at every boundary."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import pytest

from services.restructuring.domain.risk import (
    Factor,
    assess_risk,
    grade_for,
    months_on_book,
    overdue_bills_in_lookback,
)
from shared.rules import RiskScorecard

D = Decimal
CARD = RiskScorecard()
NEUTRAL_INCOME = D("1000.00")  # with unpaid 3,600.00: DTI 0.3, 0 points


def points(name: str, **overrides: object) -> int:
    facts: dict[str, object] = dict(
        current_max_dpd=0,
        overdue_bills_last_12m=0,
        months_on_book=8,
        unpaid_total=D("3600.00"),
        monthly_income=NEUTRAL_INCOME,
        card=CARD,
    )
    facts.update(overrides)
    assessment = assess_risk(**facts)  # type: ignore[arg-type]  # each test overrides facts by name
    return next(f.points for f in assessment.factors if f.name == name)


@pytest.mark.parametrize(
    ("dpd", "expected"), [(0, 0), (1, -30), (30, -30), (31, -60), (60, -60), (61, -100), (90, -100), (91, -100)]
)
def test_current_dpd_bands(dpd: int, expected: int) -> None:
    assert points("current_dpd", current_max_dpd=dpd) == expected


@pytest.mark.parametrize(("bills", "expected"), [(0, 0), (1, -15), (2, -30), (6, -90), (7, -90), (20, -90)])
def test_overdue_bills_minus_15_each_at_most_90(bills: int, expected: int) -> None:
    assert points("overdue_bills_12m", overdue_bills_last_12m=bills) == expected


@pytest.mark.parametrize(
    ("months", "expected"), [(0, -20), (5, -20), (6, 0), (11, 0), (12, 15), (23, 15), (24, 30), (120, 30)]
)
def test_months_on_book_bands(months: int, expected: int) -> None:
    assert points("months_on_book", months_on_book=months) == expected


@pytest.mark.parametrize(
    ("unpaid", "income", "expected"),
    [
        (D("0.00"), D("1000.00"), 30),
        (D("2400.00"), D("1000.00"), 30),  # exactly 0.2
        (D("2400.01"), D("1000.00"), 0),  # just above 0.2
        (D("6000.00"), D("1000.00"), 0),  # exactly 0.5
        (D("6000.01"), D("1000.00"), -40),  # just above 0.5
        (D("6000.00"), None, -20),  # income unknown
        (D("6000.00"), D("0.00"), -20),  # no income: the ratio is undefined, counted unknown
    ],
)
def test_debt_to_income_bands(unpaid: Decimal, income: Decimal | None, expected: int) -> None:
    assert points("debt_to_income", unpaid_total=unpaid, monthly_income=income) == expected


@pytest.mark.parametrize(
    ("score", "grade"),
    [
        (700, "A"),
        (620, "A"),
        (619, "B"),
        (580, "B"),
        (579, "C"),
        (540, "C"),
        (539, "D"),
        (500, "D"),
        (499, "E"),
        (300, "E"),
    ],
)
def test_grade_floors(score: int, grade: str) -> None:
    assert grade_for(score, CARD) == grade


def test_whole_assessment_lists_every_factor_and_adds_up() -> None:
    """DPD 12 −30, 2 bills −30, 30 months +30, DTI 1,800 / 12,000 = 0.15 +30: 600 → 600, grade B."""
    assessment = assess_risk(12, 2, 30, D("1800.00"), D("1000.00"), CARD)
    assert assessment.factors == (
        Factor("current_dpd", -30),
        Factor("overdue_bills_12m", -30),
        Factor("months_on_book", 30),
        Factor("debt_to_income", 30),
    )
    assert (assessment.score, assessment.grade) == (600, "B")


@pytest.mark.parametrize(
    ("facts", "score", "grade"),
    [
        ((1, 0, 24, D("100.00"), D("10000.00")), 630, "A"),  # 600 −30 +0 +30 +30
        ((1, 1, 12, D("100.00"), D("10000.00")), 600, "B"),  # 600 −30 −15 +15 +30
        ((35, 1, 8, D("100.00"), D("10000.00")), 555, "C"),  # 600 −60 −15 +0 +30
        ((35, 1, 8, D("9000.00"), None), 505, "D"),  # 600 −60 −15 +0 −20
        ((70, 3, 3, D("9000.00"), D("1000.00")), 395, "E"),  # 600 −100 −45 −20 −40 (DTI 0.75)
    ],
)
def test_assessment_examples_per_grade(facts: tuple, score: int, grade: str) -> None:
    assessment = assess_risk(*facts, card=CARD)
    assert (assessment.score, assessment.grade) == (score, grade)
    assert assessment.score == CARD.base_score + sum(f.points for f in assessment.factors)


def test_months_on_book_counts_whole_clamped_months() -> None:
    assert months_on_book(date(2025, 3, 15), date(2026, 3, 14)) == 11
    assert months_on_book(date(2025, 3, 15), date(2026, 3, 15)) == 12
    assert months_on_book(date(2024, 1, 31), date(2024, 2, 28)) == 0
    assert months_on_book(date(2024, 1, 31), date(2024, 2, 29)) == 1
    assert months_on_book(date(2025, 1, 31), date(2025, 2, 28)) == 1
    assert months_on_book(date(2026, 5, 1), date(2026, 4, 1)) == 0


def test_overdue_bills_in_the_last_12_months() -> None:
    due_dates = [date(2025, 3, 15), date(2025, 3, 16), date(2026, 3, 10), date(2026, 3, 16)]
    assert overdue_bills_in_lookback(due_dates, date(2026, 3, 15), CARD) == 2
