"""Collection KPIs from plain records."""
from __future__ import annotations

from decimal import Decimal

from services.collections.domain.kpis import (
    CaseEnd,
    Rate,
    StageObservation,
    cure_rates_by_stage,
    promise_kept_rate,
    roll_rate,
    roll_rates,
)
from services.collections.domain.promises import PromiseState
from services.collections.domain.stages import Stage

OBSERVATIONS = [
    StageObservation("a1", Stage.EARLY, Stage.MID),
    StageObservation("a2", Stage.EARLY, Stage.EARLY),
    StageObservation("a3", Stage.EARLY, CaseEnd.CURED),
    StageObservation("a4", Stage.EARLY, CaseEnd.RESTRUCTURED),
    StageObservation("a5", Stage.MID, Stage.LATE),
    StageObservation("a6", Stage.MID, Stage.EARLY),  # oldest bill paid: rolled back
    StageObservation("a7", Stage.LEGAL, CaseEnd.CHARGED_OFF),
]


def test_roll_rates_count_forward_moves_and_charge_offs() -> None:
    rates = roll_rates(OBSERVATIONS)
    assert rates[Stage.EARLY] == Rate(1, 4) and rates[Stage.EARLY].value == Decimal("0.2500")
    assert rates[Stage.MID] == Rate(1, 2)
    assert rates[Stage.LEGAL] == Rate(1, 1)
    assert rates[Stage.GRACE].value is None  # no case started there: no data, not 0%


def test_roll_rate_between_two_stages() -> None:
    assert roll_rate(OBSERVATIONS, Stage.EARLY, Stage.MID) == Rate(1, 4)
    assert roll_rate(OBSERVATIONS, Stage.MID, Stage.EARLY) == Rate(1, 2)


def test_cure_rate_by_stage_does_not_count_restructuring() -> None:
    cures = cure_rates_by_stage(OBSERVATIONS)
    assert cures[Stage.EARLY] == Rate(1, 4)
    assert cures[Stage.MID] == Rate(0, 2) and cures[Stage.MID].value == Decimal("0.0000")


def test_promise_kept_rate_ignores_pending_promises() -> None:
    states = [PromiseState.KEPT, PromiseState.KEPT, PromiseState.BROKEN, PromiseState.PENDING]
    assert promise_kept_rate(states) == Rate(2, 3)
    assert promise_kept_rate(states).value == Decimal("0.6667")
    assert promise_kept_rate([]).value is None
