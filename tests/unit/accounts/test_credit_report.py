"""RULES section 5: bureau statuses and mark retention."""

from __future__ import annotations

from datetime import date

import pytest

from services.accounts.domain.credit_report import (
    bureau_status,
    mark_due,
    mark_purge_date,
    marks_to_purge,
    report_month,
)
from shared.rules import CreditReportRules

RULES = CreditReportRules()


@pytest.mark.parametrize(
    ("dpd", "status"),
    [
        (0, "N"),
        (1, "1"),
        (30, "1"),
        (31, "2"),
        (60, "2"),
        (61, "3"),
        (90, "3"),
        (91, "4"),
        (120, "4"),
        (121, "5"),
        (150, "5"),
        (151, "6"),
        (180, "6"),
        (181, "7"),
        (700, "7"),
    ],
)
def test_dpd_buckets(dpd: int, status: str) -> None:
    assert bureau_status(dpd, settled_and_closed=False, charged_off=False, in_active_plan=False) == status


def test_precedence_settled_then_charged_off_then_plan_then_dpd() -> None:
    assert bureau_status(200, True, True, True) == "C"
    assert bureau_status(200, False, True, True) == "G"
    assert bureau_status(45, False, False, True) == "R"
    assert bureau_status(0, False, False, True) == "R"
    assert bureau_status(0, False, False, False) == "N"


def test_a_mark_is_due_once_when_a_bill_passes_grace() -> None:
    assert not mark_due(3, False, RULES)
    assert mark_due(4, False, RULES)
    assert not mark_due(10, True, RULES)


def test_marks_are_purged_five_years_after_settlement() -> None:
    settled = date(2026, 4, 2)
    assert not marks_to_purge(settled, date(2031, 4, 1), RULES)
    assert marks_to_purge(settled, date(2031, 4, 2), RULES)
    assert not marks_to_purge(None, date(2099, 1, 1), RULES)
    assert mark_purge_date(date(2028, 2, 29), RULES) == date(2033, 2, 28)


def test_the_report_of_the_1st_covers_the_month_before() -> None:
    assert report_month(date(2026, 4, 1)) == (date(2026, 3, 1), date(2026, 3, 31))
    assert report_month(date(2026, 1, 1)) == (date(2025, 12, 1), date(2025, 12, 31))
