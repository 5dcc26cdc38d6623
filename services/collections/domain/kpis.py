"""Collection KPIs from plain records: roll rates, cure rates by stage, promises kept.

The records are observations over one period (a day, a month: the caller chooses):
for each case, its stage at the start of the period and where it stood at the end,
either a stage or how the case closed. Rates keep their counts (a rate of 0 cases is
"no data", not 0%), and print as a fraction to 4 decimals, rounded half-up.
"""
from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
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
