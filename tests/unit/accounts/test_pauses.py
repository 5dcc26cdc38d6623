"""RULES 2.8, the delinquency pause, in the domain: the worked example of docs/rules.md."""

from __future__ import annotations

from datetime import date

from services.accounts.domain.pauses import (
    ALREADY_PAUSED,
    NOT_PAUSED,
    UNKNOWN_ACCOUNT,
    UNTIL_NOT_AFTER_TODAY,
    days_not_counted,
    pause_rejection,
    paused_for_close,
    resume_rejection,
    resumed_on,
)
from services.accounts.domain.overdue import dpd

DUE = date(2026, 3, 10)
PAUSED = date(2026, 3, 12)


def test_the_pause_starts_after_the_close_of_its_own_date() -> None:
    assert not paused_for_close(PAUSED, PAUSED)
    assert paused_for_close(PAUSED, date(2026, 3, 13))
    assert not paused_for_close(None, date(2026, 3, 13))


def test_resumed_on_03_31_the_bill_does_not_count_19_days() -> None:
    days = days_not_counted(PAUSED, date(2026, 3, 31), DUE)
    assert days == 19
    counted_due = date.fromordinal(DUE.toordinal() + days)
    assert dpd(date(2026, 4, 1), counted_due) == 3  # counts on from DPD 2
    assert dpd(date(2026, 4, 2), counted_due) == 4  # the end of grace: the late fee


def test_a_bill_due_inside_the_pause_does_not_count_the_days_after_its_due_date() -> None:
    assert days_not_counted(PAUSED, date(2026, 4, 30), date(2026, 4, 10)) == 20
    assert days_not_counted(PAUSED, date(2026, 3, 20), date(2026, 3, 20)) == 0


def test_until_03_20_resumes_with_8_days_not_counted() -> None:
    assert days_not_counted(PAUSED, date(2026, 3, 20), DUE) == 8


def test_a_late_resume_counts_the_closes_that_skipped_the_account() -> None:
    assert resumed_on(date(2026, 3, 30), date(2026, 3, 31)) == date(2026, 3, 31)
    assert resumed_on(date(2026, 3, 31), date(2026, 3, 30)) == date(2026, 3, 31)
    assert resumed_on(date(2026, 3, 31), None) == date(2026, 3, 31)


def test_refusals_first_match_wins() -> None:
    assert pause_rejection(False, PAUSED, PAUSED, PAUSED) == UNKNOWN_ACCOUNT
    assert pause_rejection(True, PAUSED, None, PAUSED) == ALREADY_PAUSED
    assert pause_rejection(True, None, PAUSED, PAUSED) == UNTIL_NOT_AFTER_TODAY
    assert pause_rejection(True, None, date(2026, 3, 13), PAUSED) is None
    assert pause_rejection(True, None, None, PAUSED) is None
    assert resume_rejection(False, None) == UNKNOWN_ACCOUNT
    assert resume_rejection(True, None) == NOT_PAUSED
    assert resume_rejection(True, PAUSED) is None
