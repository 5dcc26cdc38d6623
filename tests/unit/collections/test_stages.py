"""Stages by DPD (RULES section 6) and their escalation order."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from services.collections.domain.stages import (
    STAGE_ORDER,
    CaseView,
    Escalation,
    Stage,
    escalation,
    is_escalation,
    stage_for,
    stage_rank,
)


@pytest.mark.parametrize(
    ("dpd", "stage"),
    [
        (-10, Stage.PRE_DUE),
        (-3, Stage.PRE_DUE),
        (0, Stage.PRE_DUE),
        (1, Stage.GRACE),
        (3, Stage.GRACE),
        (4, Stage.EARLY),
        (30, Stage.EARLY),
        (31, Stage.MID),
        (60, Stage.MID),
        (61, Stage.LATE),
        (90, Stage.LATE),
        (91, Stage.LEGAL),
        (400, Stage.LEGAL),
    ],
)
def test_stage_boundaries(dpd: int, stage: Stage) -> None:
    assert stage_for(dpd) is stage


@given(st.integers(min_value=-30, max_value=500), st.integers(min_value=0, max_value=100))
def test_stage_never_goes_back_as_dpd_grows(dpd: int, more: int) -> None:
    assert stage_rank(stage_for(dpd + more)) >= stage_rank(stage_for(dpd))


def test_order_is_the_escalation_order_not_alphabetical() -> None:
    assert [stage_rank(s) for s in STAGE_ORDER] == list(range(6))
    assert is_escalation(Stage.MID, Stage.LATE)
    assert not is_escalation(Stage.LEGAL, Stage.EARLY)  # "legal" < "early" as strings would lie


def test_escalation_only_forward_and_not_for_a_new_case() -> None:
    assert escalation(Stage.EARLY, 31) == Escalation(Stage.EARLY, Stage.MID)
    assert escalation(Stage.MID, 20) is None  # the oldest bill was paid: back to early, no event
    assert escalation(Stage.MID, 40) is None
    assert escalation(None, 5) is None


def test_case_view_refuses_an_unknown_grade() -> None:
    with pytest.raises(ValueError, match="unknown risk grade"):
        CaseView("acc-1", 5, "F")  # type: ignore[arg-type]  # the unknown grade under test
