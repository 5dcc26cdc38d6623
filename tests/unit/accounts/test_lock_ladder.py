"""RULES section 3: the lock ladder, linked accounts, limit cut and restore, cure, plans."""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal

import pytest

from services.accounts.domain.billing import STATUS_CLOSED, STATUS_LINKED_RESTRICTED, STATUS_OPEN, STATUS_RESTRICTED
from services.accounts.domain.lock_ladder import (
    AVAILABLE_FROZEN,
    BORROWING_SUSPENDED,
    CAUSE_CURE,
    CAUSE_LIMIT_RESTORED,
    CAUSE_LINKED_ACCOUNT,
    CAUSE_OWN_OVERDUE,
    CAUSE_PLAN,
    CLOSED,
    LIMIT_CUT,
    LINKED_AVAILABLE_FROZEN,
    LINKED_BORROWING_SUSPENDED,
    REPORTED_TO_BUREAU,
    LadderState,
    account_measures,
    account_status_for,
    available_frozen,
    effective_credit_limit,
    ladder_level,
    limit_restore_due,
    linked_effect,
    lock_ladder,
    measures_for,
)
from shared.rules import LockLadderRules

D = Decimal
RULES = LockLadderRules()
T = date(2026, 3, 14)


@pytest.mark.parametrize(
    ("max_dpd", "level"),
    [(0, 0), (1, 1), (3, 1), (4, 2), (30, 2), (31, 3), (90, 3), (91, 4), (180, 4), (400, 4)],
)
def test_ladder_level_at_every_threshold(max_dpd: int, level: int) -> None:
    assert ladder_level(max_dpd, RULES) == level


def test_measures_accumulate_level_by_level() -> None:
    assert measures_for(0) == []
    assert measures_for(1) == [BORROWING_SUSPENDED]
    assert measures_for(2) == [BORROWING_SUSPENDED, REPORTED_TO_BUREAU, LIMIT_CUT]
    assert measures_for(3) == [BORROWING_SUSPENDED, REPORTED_TO_BUREAU, LIMIT_CUT, AVAILABLE_FROZEN]
    assert measures_for(4) == [BORROWING_SUSPENDED, REPORTED_TO_BUREAU, LIMIT_CUT, AVAILABLE_FROZEN, CLOSED]


@pytest.mark.parametrize(
    ("other_level", "measures"),
    [
        (0, []),
        (1, []),
        (2, []),
        (3, [LINKED_BORROWING_SUSPENDED]),
        (4, [LINKED_BORROWING_SUSPENDED, LINKED_AVAILABLE_FROZEN]),
    ],
)
def test_linked_effect(other_level: int, measures: list[str]) -> None:
    assert linked_effect(other_level) == measures


def test_status_and_freeze_from_measures() -> None:
    assert account_status_for(account_measures(0)) == STATUS_OPEN
    assert account_status_for(account_measures(1)) == STATUS_RESTRICTED
    assert account_status_for(account_measures(0, linked_level=3)) == STATUS_LINKED_RESTRICTED
    assert account_status_for(account_measures(0, closed=True)) == STATUS_CLOSED
    assert account_status_for(account_measures(0, plan_active=True)) == STATUS_RESTRICTED
    assert not available_frozen(account_measures(2))
    assert available_frozen(account_measures(3))
    assert available_frozen(account_measures(0, linked_level=4))


def test_limit_cut_to_half_and_restored_after_90_clean_days() -> None:
    assert effective_credit_limit(D("5000.00"), False, RULES) == D("5000.00")
    assert effective_credit_limit(D("5000.00"), True, RULES) == D("2500.00")
    assert effective_credit_limit(D("0.05"), True, RULES) == D("0.03")
    assert not limit_restore_due(T, T + timedelta(days=89), RULES)
    assert limit_restore_due(T, T + timedelta(days=90), RULES)


def step(previous: LadderState, max_dpd: int, day: date, **kw: object):
    return lock_ladder(previous, max_dpd=max_dpd, business_date=day, rules=RULES, **kw)  # type: ignore[arg-type]  # each test names the facts it sets


def test_climb_then_cure_lifts_suspension_and_freeze_but_not_closure_or_cut() -> None:
    state = LadderState()
    first = step(state, 1, T)
    assert first.changed and first.cause == CAUSE_OWN_OVERDUE and first.measures_added == (BORROWING_SUSPENDED,)
    frozen = step(first.state, 31, T + timedelta(days=30))
    assert frozen.measures == (BORROWING_SUSPENDED, REPORTED_TO_BUREAU, LIMIT_CUT, AVAILABLE_FROZEN)
    closed = step(frozen.state, 91, T + timedelta(days=90))
    assert CLOSED in closed.measures and closed.state.event_level == 4

    cured = step(closed.state, 0, T + timedelta(days=91))
    assert cured.cured and cured.cause == CAUSE_CURE
    assert cured.measures == (LIMIT_CUT, CLOSED)
    assert set(cured.measures_lifted) == {BORROWING_SUSPENDED, REPORTED_TO_BUREAU, AVAILABLE_FROZEN}
    assert cured.state.event_level == 4


def test_cure_of_a_cut_account_then_restore_after_90_days() -> None:
    reported = step(LadderState(), 4, T)
    cured = step(reported.state, 0, T + timedelta(days=1))
    assert cured.cured and cured.measures == (LIMIT_CUT,)
    last_overdue = T
    quiet = step(cured.state, 0, last_overdue + timedelta(days=89))
    assert not quiet.changed and quiet.state.limit_cut
    restored = step(quiet.state, 0, last_overdue + timedelta(days=90))
    assert restored.limit_restored and restored.cause == CAUSE_LIMIT_RESTORED
    assert restored.measures == () and not restored.state.limit_cut


def test_a_new_overdue_restarts_the_90_days_and_does_not_cut_twice() -> None:
    state = step(LadderState(), 4, T).state
    state = step(state, 0, T + timedelta(days=1)).state
    again = step(state, 4, T + timedelta(days=60))
    assert again.state.last_overdue_date == T + timedelta(days=60)
    assert effective_credit_limit(D("5000.00"), again.state.limit_cut, RULES) == D("2500.00")
    assert not step(again.state, 0, T + timedelta(days=120)).limit_restored


def test_measures_follow_the_current_max_dpd_while_still_overdue() -> None:
    frozen = step(LadderState(), 40, T).state
    lower = step(frozen, 10, T + timedelta(days=1))
    assert AVAILABLE_FROZEN in lower.measures_lifted and not lower.cured
    assert lower.measures == (BORROWING_SUSPENDED, REPORTED_TO_BUREAU, LIMIT_CUT)


def test_plan_keeps_the_account_suspended_and_its_end_is_a_cure() -> None:
    overdue = step(LadderState(), 20, T).state
    in_plan = step(overdue, 0, T + timedelta(days=1), plan_active=True)
    assert not in_plan.cured and in_plan.cause == CAUSE_PLAN
    assert in_plan.measures == (BORROWING_SUSPENDED, LIMIT_CUT)
    assert in_plan.state.event_level == 1
    assert not step(in_plan.state, 0, T + timedelta(days=200), plan_active=True).limit_restored
    done = step(in_plan.state, 0, T + timedelta(days=201), plan_active=False)
    assert done.cured and done.cause == CAUSE_CURE


def test_linked_accounts_are_suspended_then_frozen_and_released() -> None:
    clean = LadderState()
    suspended = step(clean, 0, T, linked_level=3)
    assert suspended.cause == CAUSE_LINKED_ACCOUNT and suspended.measures == (LINKED_BORROWING_SUSPENDED,)
    frozen = step(suspended.state, 0, T, linked_level=4)
    assert frozen.measures == (LINKED_BORROWING_SUSPENDED, LINKED_AVAILABLE_FROZEN)
    released = step(frozen.state, 0, T, linked_level=0)
    assert released.measures == () and not released.cured


def test_a_linked_suspension_is_an_effective_level_of_at_least_one() -> None:
    """An app reading only ``level`` must not show as unrestricted an account whose
    purchases are all declined because of its twin."""
    suspended = step(LadderState(), 0, T, linked_level=3)
    assert suspended.state.level == 0 and suspended.state.event_level == 1
    assert step(suspended.state, 0, T, linked_level=4).state.event_level == 1
    assert step(LadderState(), 40, T, linked_level=3).state.event_level == 3
    assert step(suspended.state, 0, T, linked_level=0).state.event_level == 0
