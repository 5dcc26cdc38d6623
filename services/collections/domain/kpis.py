"""Collection KPIs from plain records: the period's cohort, roll rates, cure rates, promises kept.

Two views of a period [A, B] (the caller chooses it: a day, a month):

* **the cohort**: the cases *opened* in the period, i.e. the delinquency episodes whose
  first day past due (DPD 1) falls in [A, B], each followed to B: cured, restructured,
  charged off, or still open in the stage it was in on B. This is what "the March
  numbers" means: an account that went overdue on 03-11 and was cured on 03-15 counts in
  March as a case opened and cured (``delinquency_episodes``, ``cohort_figures``);
* **the cases open on A**, each with its stage on A and where it stood on B (the stock
  at the start of the period, ``StageObservation``): the classic stage-to-stage roll.

Definitions (``DEFINITIONS``, printed beside the numbers):

* roll rate (a → b): of the cases that reached stage a, the share that reached b;
* cure rate: of the cases, the share that ended cured (all overdue paid; a plan is not a cure);
* contact rate: of the cases, the share reached at least once while open: an SMS sent,
  or a collector's call that spoke to the customer (outcome ``promise_to_pay``,
  ``refused`` or ``paid``);
* promise kept rate: of the promises already decided, the share kept (pending ones
  are not counted yet).

Rates keep their counts (a rate of 0 cases is "no data", not 0%), and print as a
fraction to 4 decimals, rounded half-up.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import date
from decimal import ROUND_HALF_UP, Decimal
from enum import StrEnum

from .promises import PromiseState
from .stages import STAGE_ORDER, Stage, stage_rank


class CaseEnd(StrEnum):
    """How a case left collections (the reasons of ``collection.case.closed``)."""

    CURED = "cured"
    RESTRUCTURED = "restructured"
    CHARGED_OFF = "charged_off"


@dataclass(frozen=True)
class StageObservation:
    """One case over one period: its stage at the start, its stage or closing at the end."""

    account_id: str
    start: Stage
    end: Stage | CaseEnd


@dataclass(frozen=True)
class Rate:
    """numerator out of denominator; ``value`` is None when there is nothing to measure."""

    numerator: int
    denominator: int

    @property
    def value(self) -> Decimal | None:
        if self.denominator == 0:
            return None
        return (Decimal(self.numerator) / Decimal(self.denominator)).quantize(Decimal("0.0001"), ROUND_HALF_UP)


def _rate(observations: list[StageObservation], stage: Stage, hit: Callable[[StageObservation], bool]) -> Rate:
    """Among cases that started the period in ``stage``, the share for which ``hit`` holds."""
    started = [o for o in observations if o.start is stage]
    return Rate(sum(1 for o in started if hit(o)), len(started))


def rolled_forward(observation: StageObservation) -> bool:
    """The case ended in a later stage than it started, or was charged off."""
    end = observation.end
    if isinstance(end, CaseEnd):
        return end is CaseEnd.CHARGED_OFF
    return stage_rank(end) > stage_rank(observation.start)


def roll_rates(observations: Iterable[StageObservation]) -> dict[Stage, Rate]:
    """Per starting stage, the share of cases that rolled forward (later stage or charge-off)."""
    records = list(observations)
    return {stage: _rate(records, stage, rolled_forward) for stage in STAGE_ORDER}


def roll_rate(observations: Iterable[StageObservation], from_stage: Stage, to_stage: Stage | CaseEnd) -> Rate:
    """The share of cases starting in ``from_stage`` that ended exactly in ``to_stage``
    (e.g. early → mid, the classic "M1 → M2" roll)."""
    return _rate(list(observations), from_stage, lambda o: o.end == to_stage)


def cure_rates_by_stage(observations: Iterable[StageObservation]) -> dict[Stage, Rate]:
    """Per starting stage, the share of cases that ended cured (a restructuring is not a cure)."""
    records = list(observations)
    return {stage: _rate(records, stage, lambda o: o.end == CaseEnd.CURED) for stage in STAGE_ORDER}


def promise_kept_rate(states: Iterable[PromiseState]) -> Rate:
    """Kept promises out of those already decided; pending promises are not counted yet."""
    decided = [s for s in states if s is not PromiseState.PENDING]
    return Rate(sum(1 for s in decided if s is PromiseState.KEPT), len(decided))


DEFINITIONS: dict[str, str] = {
    "cohort": "the cases opened in the period: delinquency episodes whose first day past due (DPD 1) "
    "falls between --from and --to, each followed to --to",
    "roll_rate": "roll rate a->b: of the cases that reached stage a, the share that reached stage b",
    "cure_rate": "cure rate: of the cases, the share that ended cured (all overdue paid; a plan is not a cure)",
    "contact_rate": "contact rate: of the cases, the share reached at least once while open (an SMS sent, "
    "or a call that spoke to the customer: promise_to_pay, refused, paid)",
    "promise_kept_rate": "promise kept rate: of the promises decided by --to, the share kept "
    "(pending promises are not counted yet)",
    "open_on_from": "the cases open on --from, with their stage that day and where they stood on --to",
}

COHORT_ROLLS: tuple[tuple[Stage, Stage], ...] = (
    (Stage.GRACE, Stage.EARLY),
    (Stage.EARLY, Stage.MID),
    (Stage.MID, Stage.LATE),
    (Stage.LATE, Stage.LEGAL),
)


@dataclass(frozen=True)
class Episode:
    """One delinquency episode of an account: from its first day past due to its closing
    (``closed_on``/``end`` None: still open)."""

    account_id: str
    opened_on: date
    closed_on: date | None = None
    end: CaseEnd | None = None


def delinquency_episodes(
    account_id: str, overdue_from: Iterable[date], closures: Iterable[tuple[date, CaseEnd]]
) -> list[Episode]:
    """An account's episodes from the first days past due of its bills (due date + 1 of each
    bill that went overdue) and its case's closings: an episode opens on the first such day
    after the last closing and ends at the first closing on or after it."""
    days = sorted(set(overdue_from))
    ends = sorted(closures)
    episodes: list[Episode] = []
    after: date | None = None  # the closing of the previous episode
    for day in days:
        if after is not None and day <= after:
            continue
        if episodes and episodes[-1].closed_on is None:
            break  # the open episode takes every later overdue bill
        closing = next(((on, end) for on, end in ends if on >= day), None)
        if closing is None:
            episodes.append(Episode(account_id, day))
            break
        episodes.append(Episode(account_id, day, closing[0], closing[1]))
        after = closing[0]
    return episodes


@dataclass(frozen=True)
class CohortCase:
    """A case of the cohort as it stood on the period's last day."""

    episode: Episode
    stages_reached: frozenset[Stage] = frozenset()  # the stages it was judged in by then
    stage: Stage | None = None  # still open: its stage then (None: not judged yet)
    contacted: bool = False
    promises: tuple[PromiseState, ...] = field(default=())

    def outcome(self, as_of: date) -> str:
        """``cured``, ``restructured``, ``charged_off``, or ``open:<stage>`` (``open:not_judged``)."""
        episode = self.episode
        if episode.end is not None and episode.closed_on is not None and episode.closed_on <= as_of:
            return episode.end.value
        return f"open:{self.stage.value if self.stage else 'not_judged'}"


def in_cohort(episodes: Iterable[Episode], start: date, end: date) -> list[Episode]:
    """The episodes opened in [start, end]."""
    return [e for e in episodes if start <= e.opened_on <= end]


@dataclass(frozen=True)
class CohortFigures:
    cases: int
    outcomes: dict[str, int]
    cure_rate: Rate
    roll_rates: dict[str, Rate]
    contact_rate: Rate
    promise_kept_rate: Rate


def cohort_figures(cases: Iterable[CohortCase], as_of: date) -> CohortFigures:
    """The cohort's counts and rates as of ``as_of`` (the period's last day)."""
    records = list(cases)
    outcomes: dict[str, int] = {end.value: 0 for end in CaseEnd}
    for case in records:
        outcome = case.outcome(as_of)
        outcomes[outcome] = outcomes.get(outcome, 0) + 1
    rolls = {}
    for a, b in COHORT_ROLLS:
        reached = [c for c in records if a in c.stages_reached]
        rolls[f"{a.value}->{b.value}"] = Rate(sum(1 for c in reached if b in c.stages_reached), len(reached))
    return CohortFigures(
        cases=len(records),
        outcomes=outcomes,
        cure_rate=Rate(outcomes[CaseEnd.CURED.value], len(records)),
        roll_rates=rolls,
        contact_rate=Rate(sum(1 for c in records if c.contacted), len(records)),
        promise_kept_rate=promise_kept_rate(state for c in records for state in c.promises),
    )
