"""The lock ladder: restrictions by the account's maximum DPD (RULES section 3).

Levels (the ``level`` of ``account.restrictions.changed``):

====  ==========  ===========================================================
0     none        -
1     suspended   borrowing_suspended (max DPD >= 1)
2     reported    + reported_to_bureau, limit_cut (>= 4)
3     frozen      + available_frozen (>= 31); other accounts of the same
                  identity: linked_borrowing_suspended
4     closed      + closed (>= 91); other accounts: linked_available_frozen
====  ==========  ===========================================================

Charge-off at DPD 180 is a bill event (the daily close), not a level.

Decisions not spelled out by RULES.md:

* The maximum DPD counts only bills that count (past due, principal unpaid): bills moved
  into a restructuring plan do not.
* Measures follow the *current* maximum DPD: when a payment clears the oldest bill and
  the maximum DPD falls (say from 40 to 10), the freeze lifts at once, like a cure
  lifts it. Two measures are sticky: ``closed`` (a closed account stays closed) and
  ``limit_cut`` (until ``limit_restore_due``). ``reported_to_bureau`` is a current
  measure; the bureau marks themselves live in credit_report.
* The limit cut does not compound: a second delinquency while the limit is still cut
  keeps it at 50% of the granted limit (and restarts the 90 clean days).
* The 90 clean days are counted from ``last_overdue_date``, the last business date
  whose close found an overdue bill: the limit returns at the close of that date + 90,
  provided no bill is overdue then and no plan is active (a plan is arrears under
  treatment, not a clean record).
* An active plan adds ``borrowing_suspended`` (cause ``plan``) and makes the level at
  least 1.
* ``account.cured`` is emitted when an account that was restricted for arrears (own
  level >= 1 or an active plan) has neither an overdue bill nor an active plan any more.
  A plan's activation is not a cure; its completion, with nothing overdue, is.
* Linked effects come from the other accounts' *own overdue* levels, not from their
  sticky closure: a cured, closed account no longer holds its siblings.
* The cause of a change, first match wins: ``own_overdue`` (own level rose),
  ``cure``, ``plan`` (plan started or ended), ``linked_account``, ``limit_restored``,
  then ``own_overdue`` (own level fell while still overdue).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from decimal import Decimal

from shared.money import round_fen
from shared.rules import LockLadderRules

from .billing import (
    STATUS_CLOSED,
    STATUS_LINKED_RESTRICTED,
    STATUS_OPEN,
    STATUS_RESTRICTED,
    AccountStatus,
)

LEVEL_NONE = 0
LEVEL_SUSPENDED = 1
LEVEL_REPORTED = 2
LEVEL_FROZEN = 3
LEVEL_CLOSED = 4

BORROWING_SUSPENDED = "borrowing_suspended"
REPORTED_TO_BUREAU = "reported_to_bureau"
LIMIT_CUT = "limit_cut"
AVAILABLE_FROZEN = "available_frozen"
CLOSED = "closed"
LINKED_BORROWING_SUSPENDED = "linked_borrowing_suspended"
LINKED_AVAILABLE_FROZEN = "linked_available_frozen"

# The order in which measures are listed (the ladder's order, then linked ones).
MEASURE_ORDER: tuple[str, ...] = (
    BORROWING_SUSPENDED,
    REPORTED_TO_BUREAU,
    LIMIT_CUT,
    AVAILABLE_FROZEN,
    CLOSED,
    LINKED_BORROWING_SUSPENDED,
    LINKED_AVAILABLE_FROZEN,
)

_MEASURES_ADDED_AT: dict[int, tuple[str, ...]] = {
    LEVEL_SUSPENDED: (BORROWING_SUSPENDED,),
    LEVEL_REPORTED: (REPORTED_TO_BUREAU, LIMIT_CUT),
    LEVEL_FROZEN: (AVAILABLE_FROZEN,),
    LEVEL_CLOSED: (CLOSED,),
}

CAUSE_OWN_OVERDUE = "own_overdue"
CAUSE_LINKED_ACCOUNT = "linked_account"
CAUSE_CURE = "cure"
CAUSE_PLAN = "plan"
CAUSE_LIMIT_RESTORED = "limit_restored"


def ladder_level(max_dpd: int, rules: LockLadderRules) -> int:
    """The ladder level reached by the account's maximum DPD (0 to 4)."""
    thresholds = (rules.suspend_dpd, rules.report_dpd, rules.freeze_dpd, rules.close_dpd)
    return sum(1 for threshold in thresholds if max_dpd >= threshold)


def measures_for(level: int) -> list[str]:
    """The measures of a level: each level adds to those below it."""
    return [m for lvl in range(1, level + 1) for m in _MEASURES_ADDED_AT.get(lvl, ())]


def linked_effect(max_other_level: int) -> list[str]:
    """What the worst of the identity's *other* accounts imposes on this one:
    level >= 3 suspends its borrowing, level >= 4 also freezes its available limit."""
    measures: list[str] = []
    if max_other_level >= LEVEL_FROZEN:
        measures.append(LINKED_BORROWING_SUSPENDED)
    if max_other_level >= LEVEL_CLOSED:
        measures.append(LINKED_AVAILABLE_FROZEN)
    return measures


def effective_credit_limit(granted: Decimal, cut_applied: bool, rules: LockLadderRules) -> Decimal:
    """The credit limit in force: the granted limit, or 50% of it while cut
    (rounded half-up to the fen, since a limit is an amount)."""
    if not cut_applied:
        return granted
    return round_fen(granted * rules.limit_cut_ratio)


def limit_restore_due(last_overdue_date: date | None, business_date: date, rules: LockLadderRules) -> bool:
    """90 days with no overdue bill since the last close that found one: the cut
    limit returns to the granted limit."""
    if last_overdue_date is None:
        return True
    return (business_date - last_overdue_date).days >= rules.limit_restore_clean_days


def account_measures(
    level: int,
    *,
    closed: bool = False,
    limit_cut: bool = False,
    plan_active: bool = False,
    linked_level: int = 0,
) -> tuple[str, ...]:
    """All the measures on an account: its own level's, the sticky ones, the plan's
    suspension and what its linked accounts impose, in MEASURE_ORDER."""
    measures = set(measures_for(level)) | set(linked_effect(linked_level))
    if closed:
        measures.add(CLOSED)
    if plan_active:
        measures.add(BORROWING_SUSPENDED)
    if limit_cut:
        measures.add(LIMIT_CUT)
    return tuple(m for m in MEASURE_ORDER if m in measures)


def account_status_for(measures: tuple[str, ...] | list[str]) -> AccountStatus:
    """The account's standing for purchase_decision, from its measures."""
    if CLOSED in measures:
        return STATUS_CLOSED
    if BORROWING_SUSPENDED in measures:
        return STATUS_RESTRICTED
    if LINKED_BORROWING_SUSPENDED in measures:
        return STATUS_LINKED_RESTRICTED
    return STATUS_OPEN


def available_frozen(measures: tuple[str, ...] | list[str]) -> bool:
    """The available limit is held at 0: frozen, closed, or frozen by a linked account."""
    return any(m in measures for m in (AVAILABLE_FROZEN, CLOSED, LINKED_AVAILABLE_FROZEN))


@dataclass(frozen=True)
class LadderState:
    """An account's ladder state after a close (what the service stores)."""

    level: int = LEVEL_NONE  # own level from the counted maximum DPD
    closed: bool = False  # sticky
    limit_cut: bool = False  # sticky until limit_restore_due
    plan_active: bool = False
    linked_level: int = LEVEL_NONE  # max own level among the identity's other accounts
    last_overdue_date: date | None = None

    @property
    def measures(self) -> tuple[str, ...]:
        return account_measures(
            self.level,
            closed=self.closed,
            limit_cut=self.limit_cut,
            plan_active=self.plan_active,
            linked_level=self.linked_level,
        )

    @property
    def event_level(self) -> int:
        """The ``level`` of account.restrictions.changed, the account's *effective* level:
        4 once closed, at least 1 while a plan is active or while a linked account of the
        same identity suspends its borrowing, else the own level. An app reading only
        ``level`` must never show an account as unrestricted while its purchases are
        declined; ``measures`` says why."""
        if self.closed:
            return LEVEL_CLOSED
        suspended = self.plan_active or bool(linked_effect(self.linked_level))
        return max(self.level, LEVEL_SUSPENDED if suspended else LEVEL_NONE)


@dataclass(frozen=True)
class LadderDecision:
    """The ladder step of one close for one account."""

    state: LadderState
    measures: tuple[str, ...]
    measures_added: tuple[str, ...]  # delinquency history: added on business_date
    measures_lifted: tuple[str, ...]  # delinquency history: lifted on business_date
    changed: bool  # emit account.restrictions.changed
    cause: str | None
    cured: bool  # emit account.cured
    limit_restored: bool


def lock_ladder(
    previous: LadderState,
    *,
    max_dpd: int,
    business_date: date,
    rules: LockLadderRules,
    plan_active: bool = False,
    linked_level: int = LEVEL_NONE,
) -> LadderDecision:
    """Step 4 of the daily close: the account's measures from its maximum DPD.

    ``max_dpd`` is over the bills that count (not those in a plan); ``linked_level``
    is the max *own* level (``LadderState.level``) of the identity's other accounts.
    """
    level = ladder_level(max_dpd, rules)
    overdue = max_dpd >= 1
    last_overdue = business_date if overdue else previous.last_overdue_date
    restored = (
        previous.limit_cut and not overdue and not plan_active and limit_restore_due(last_overdue, business_date, rules)
    )
    state = LadderState(
        level=level,
        closed=previous.closed or level >= LEVEL_CLOSED,
        limit_cut=(previous.limit_cut and not restored) or level >= LEVEL_REPORTED,
        plan_active=plan_active,
        linked_level=linked_level,
        last_overdue_date=last_overdue,
    )
    was_restricted = previous.level >= LEVEL_SUSPENDED or previous.plan_active
    cured = was_restricted and not overdue and not plan_active
    before, after = previous.measures, state.measures
    changed = before != after
    return LadderDecision(
        state=state,
        measures=after,
        measures_added=tuple(m for m in after if m not in before),
        measures_lifted=tuple(m for m in before if m not in after),
        changed=changed,
        cause=_cause(previous, state, cured, restored) if changed else None,
        cured=cured,
        limit_restored=restored,
    )


def _cause(previous: LadderState, state: LadderState, cured: bool, restored: bool) -> str:
    """Why the measures changed (order of precedence in the module docstring)."""
    if state.level > previous.level:
        return CAUSE_OWN_OVERDUE
    if cured:
        return CAUSE_CURE
    if state.plan_active != previous.plan_active:
        return CAUSE_PLAN
    if state.linked_level != previous.linked_level:
        return CAUSE_LINKED_ACCOUNT
    if restored:
        return CAUSE_LIMIT_RESTORED
    return CAUSE_OWN_OVERDUE
