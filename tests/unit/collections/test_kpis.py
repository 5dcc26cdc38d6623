"""Collection KPIs from plain records."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

from services.collections.domain.kpis import (
    DEFINITIONS,
    CaseEnd,
    CohortCase,
    Episode,
    Rate,
    StageObservation,
    cohort_figures,
    cure_rates_by_stage,
    delinquency_episodes,
    in_cohort,
    promise_kept_rate,
    roll_rate,
    roll_rates,
)
from services.collections.domain.promises import PromiseState
from services.collections.domain.stages import Stage

D = date.fromisoformat

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


# --- the period's cohort -------------------------------------------------------------------------


def test_an_episode_opens_on_the_first_day_past_due_and_ends_at_the_next_closing() -> None:
    episodes = delinquency_episodes("a", [D("2026-03-11"), D("2026-04-11")], [(D("2026-03-15"), CaseEnd.CURED)])
    assert episodes == [Episode("a", D("2026-03-11"), D("2026-03-15"), CaseEnd.CURED), Episode("a", D("2026-04-11"))]


def test_bills_overdue_while_an_episode_is_open_belong_to_it() -> None:
    episodes = delinquency_episodes(
        "a", [D("2026-03-11"), D("2026-04-11"), D("2026-05-11")], [(D("2026-05-20"), CaseEnd.RESTRUCTURED)]
    )
    assert episodes == [Episode("a", D("2026-03-11"), D("2026-05-20"), CaseEnd.RESTRUCTURED)]


def test_a_cure_on_the_first_day_past_due_is_an_episode_of_one_day() -> None:
    assert delinquency_episodes("a", [D("2026-03-11")], [(D("2026-03-11"), CaseEnd.CURED)]) == [
        Episode("a", D("2026-03-11"), D("2026-03-11"), CaseEnd.CURED)
    ]


def test_the_cohort_is_the_cases_opened_in_the_period() -> None:
    """The case that went overdue and was cured within March counts in March; the one
    opened in February (still open in March) does not."""
    march = [
        Episode("cured", D("2026-03-11"), D("2026-03-15"), CaseEnd.CURED),
        Episode("feb", D("2026-02-11")),
        Episode("late", D("2026-03-31")),
        Episode("april", D("2026-04-01")),
    ]
    assert [e.account_id for e in in_cohort(march, D("2026-03-01"), D("2026-03-31"))] == ["cured", "late"]


def test_outcomes_are_as_of_the_period_end() -> None:
    closed_later = CohortCase(Episode("a", D("2026-03-11"), D("2026-04-05"), CaseEnd.CURED), stage=Stage.EARLY)
    assert closed_later.outcome(D("2026-03-31")) == "open:early"
    assert closed_later.outcome(D("2026-04-30")) == "cured"
    assert CohortCase(Episode("b", D("2026-03-11"))).outcome(D("2026-03-31")) == "open:not_judged"


def test_cohort_figures_count_outcomes_and_rates_with_their_definitions() -> None:
    end = D("2026-03-31")
    cases = [
        CohortCase(
            Episode("a", D("2026-03-02"), D("2026-03-09"), CaseEnd.CURED),
            stages_reached=frozenset({Stage.GRACE, Stage.EARLY}),
            contacted=True,
            promises=(PromiseState.KEPT,),
        ),
        CohortCase(
            Episode("b", D("2026-03-02"), D("2026-03-20"), CaseEnd.RESTRUCTURED),
            stages_reached=frozenset({Stage.GRACE, Stage.EARLY}),
            contacted=True,
            promises=(PromiseState.BROKEN, PromiseState.PENDING),
        ),
        CohortCase(Episode("c", D("2026-03-05")), stages_reached=frozenset({Stage.GRACE}), stage=Stage.GRACE),
        CohortCase(
            Episode("d", D("2026-03-01"), D("2026-03-30"), CaseEnd.CHARGED_OFF),
            stages_reached=frozenset({Stage.GRACE, Stage.EARLY}),
        ),
    ]
    figures = cohort_figures(cases, end)
    assert figures.cases == 4
    assert figures.outcomes == {"cured": 1, "restructured": 1, "charged_off": 1, "open:grace": 1}
    assert figures.cure_rate == Rate(1, 4) and figures.cure_rate.value == Decimal("0.2500")
    assert figures.roll_rates["grace->early"] == Rate(3, 4)
    assert figures.roll_rates["early->mid"] == Rate(0, 3)
    assert figures.roll_rates["mid->late"].value is None  # no case reached mid: no data
    assert figures.contact_rate == Rate(2, 4)
    assert figures.promise_kept_rate == Rate(1, 2)  # the pending promise is not decided yet
    assert {"cohort", "roll_rate", "cure_rate", "contact_rate", "promise_kept_rate"} <= set(DEFINITIONS)


def test_an_empty_cohort_has_no_rates_not_zero_rates() -> None:
    figures = cohort_figures([], D("2026-03-31"))
    assert figures.cases == 0 and figures.cure_rate.value is None and figures.contact_rate.value is None
