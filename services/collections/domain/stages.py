"""Collection stages by DPD, and the case as the collection rules see it (RULES section 6).

This module is the vocabulary the other domain modules share: the stages and their
order, the kinds of action a strategy can plan, and ``CaseView``, the plain-value
picture of one collection case that the strategy and the compliance guard judge.

DPD convention: a positive DPD counts days past the due date (business date − due
date). Before and on the due date the DPD is zero or negative and counts the days
*before* due: D−3 is DPD −3, D0 (the due date itself) is DPD 0. So one integer
orders a case's whole life, from the pre-due reminders to legal collection.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from enum import StrEnum

from shared.rules import Grade

GRADES: tuple[Grade, ...] = ("A", "B", "C", "D", "E")


class Stage(StrEnum):
    """A collection stage. Compare stages with :func:`stage_rank`, never as strings."""

    PRE_DUE = "pre_due"
    GRACE = "grace"
    EARLY = "early"
    MID = "mid"
    LATE = "late"
    LEGAL = "legal"


# The escalation order: a case only ever *escalates* towards the end of this tuple.
STAGE_ORDER: tuple[Stage, ...] = (
    Stage.PRE_DUE,
    Stage.GRACE,
    Stage.EARLY,
    Stage.MID,
    Stage.LATE,
    Stage.LEGAL,
)

# First and last DPD of each stage (RULES section 6). ``None`` as a last DPD means the
# stage never ends. Pre-due covers every DPD <= 0; its *first* DPD, D−3, is where the
# rulebook starts reminding and is the anchor of "every N days" cadences in it.
_STAGE_BOUNDS: dict[Stage, tuple[int, int | None]] = {
    Stage.PRE_DUE: (-3, 0),
    Stage.GRACE: (1, 3),
    Stage.EARLY: (4, 30),
    Stage.MID: (31, 60),
    Stage.LATE: (61, 90),
    Stage.LEGAL: (91, None),
}


class ActionKind(StrEnum):
    """What a strategy can plan for a day.

    ``sms``, ``plan_invitation`` and ``plan_reminder`` are text messages (channel SMS);
    ``call``, ``agency`` and ``legal`` are tasks for people (collectors, an outside
    agency, the legal team). ``plan_reminder`` is the one contact allowed while a
    restructuring plan is active: the plan's own installment reminder.
    """

    SMS = "sms"
    PLAN_INVITATION = "plan_invitation"
    PLAN_REMINDER = "plan_reminder"
    CALL = "call"
    AGENCY = "agency"
    LEGAL = "legal"

    @property
    def is_message(self) -> bool:
        """True for the kinds that go out as an SMS (and count against the SMS cap)."""
        return self in _MESSAGE_KINDS

    @property
    def is_task(self) -> bool:
        """True for the kinds that become a task for people (call, agency, legal)."""
        return not self.is_message


_MESSAGE_KINDS = frozenset({ActionKind.SMS, ActionKind.PLAN_INVITATION, ActionKind.PLAN_REMINDER})


def stage_for(dpd: int) -> Stage:
    """The stage of a case at this DPD: pre-due up to D0, then grace, early, mid, late, legal.

    Any DPD <= 0 is pre-due, however far the due date is; only the strategy decides
    on which of those days to remind.
    """
    if dpd <= 0:
        return Stage.PRE_DUE
    for stage in STAGE_ORDER[1:]:
        first, last = _STAGE_BOUNDS[stage]
        if first <= dpd and (last is None or dpd <= last):
            return stage
    raise AssertionError(f"no stage for DPD {dpd}")  # pragma: no cover - bounds are contiguous


def stage_bounds(stage: Stage) -> tuple[int, int | None]:
    """(first DPD, last DPD or None when open-ended) of a stage; pre-due starts at D−3."""
    return _STAGE_BOUNDS[stage]


def stage_rank(stage: Stage) -> int:
    """Position of a stage in the escalation order (pre-due 0 … legal 5)."""
    return STAGE_ORDER.index(stage)


def is_escalation(from_stage: Stage, to_stage: Stage) -> bool:
    """True when moving from one stage to the other goes *forward* (emits collection.escalated).

    Moving back (a repayment cleared the oldest bill, so the maximum DPD fell) is not an
    escalation: the case simply follows its new stage's strategy.
    """
    return stage_rank(to_stage) > stage_rank(from_stage)


@dataclass(frozen=True)
class Escalation:
    """A case moved forward: the payload of ``collection.escalated`` without the ids."""

    from_stage: Stage
    to_stage: Stage


def escalation(previous: Stage | None, dpd: int) -> Escalation | None:
    """The escalation a new DPD causes, if any.

    A new case (``previous`` is None) has not *escalated*: it opened in its stage.
    """
    if previous is None:
        return None
    current = stage_for(dpd)
    return Escalation(previous, current) if is_escalation(previous, current) else None


@dataclass(frozen=True)
class CaseView:
    """One collection case, as plain values, for the strategy and the compliance guard.

    The service builds it from its own projections; nothing here reads a database.

    - ``dpd``: the account's maximum DPD; zero or negative before due, computed from the
      nearest unpaid bill's due date (D−1 is −1).
    - ``grade``: the risk grade, already defaulted (see ``strategy.effective_grade``).
    - ``last_call_task_on`` / ``agency_referred_on`` / ``legal_case_opened_on``: when the
      last task of that kind was created *for this case*; tasks missed (a promise
      pause, a DPD jump into a stage, a skipped day) are caught up from these.
    - ``plan_active`` and ``plan_installment_due_on``: a restructuring plan is active and
      its nearest unpaid installment falls due on that date.
    - ``promise_pending_until``: the last business date of a promise-to-pay pause
      (inclusive; see ``promises.pause_until``).
    - ``promise_broken``: a promise was found broken and not yet acted on.
    - ``cured``: the account has no overdue bill left; ``bill_paid``: the bill a
      pre-due reminder is about has been paid.
    - ``own_phone`` and ``phone_reported_wrong``: the customer's own number, and whether a
      collector reported it as a wrong number.
    - ``paused``: the account's delinquency is paused (RULES 2.8): nobody contacts it.
    """

    account_id: str
    dpd: int
    grade: Grade
    last_call_task_on: date | None = None
    agency_referred_on: date | None = None
    legal_case_opened_on: date | None = None
    plan_active: bool = False
    plan_installment_due_on: date | None = None
    promise_pending_until: date | None = None
    promise_broken: bool = False
    cured: bool = False
    bill_paid: bool = False
    own_phone: str | None = None
    phone_reported_wrong: bool = False
    paused: bool = False

    def __post_init__(self) -> None:
        if self.grade not in GRADES:
            raise ValueError(f"unknown risk grade {self.grade!r}; expected one of {', '.join(GRADES)}")

    @property
    def stage(self) -> Stage:
        """The stage the case's DPD puts it in today."""
        return stage_for(self.dpd)

    @property
    def closed(self) -> bool:
        """Nothing left to collect: the account is cured or the reminded bill is paid."""
        return self.cured or self.bill_paid

    def last_task_on(self, kind: ActionKind) -> date | None:
        """When the last task of this kind was created for the case (None: never)."""
        return {
            ActionKind.CALL: self.last_call_task_on,
            ActionKind.AGENCY: self.agency_referred_on,
            ActionKind.LEGAL: self.legal_case_opened_on,
        }.get(kind)

    def promise_pending_on(self, business_date: date) -> bool:
        """True while a promise to pay pauses contact (through ``promise_pending_until``)."""
        return self.promise_pending_until is not None and business_date <= self.promise_pending_until
