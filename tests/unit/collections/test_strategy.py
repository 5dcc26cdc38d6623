"""The packaged strategy (RULES section 6's table) and the daily plan it produces."""

from __future__ import annotations

from dataclasses import replace
from datetime import date, timedelta
from pathlib import Path

import pytest
import yaml

from services.collections.domain.stages import ActionKind, CaseView, Stage
from services.collections.domain.strategy import (
    PlannedAction,
    Strategy,
    StrategyError,
    Trigger,
    actions_for_day,
    effective_grade,
    load_strategy,
)
from shared.rules import CollectionsRules, Grade

DUE = date(2026, 3, 10)


@pytest.fixture(scope="module")
def strategy() -> Strategy:
    return load_strategy()


def on(dpd: int) -> date:
    """The business date of a DPD for a bill due on DUE."""
    return DUE + timedelta(days=dpd)


def simulate(strategy: Strategy, grade: Grade, dpds: range, **case_fields: object) -> dict[int, list[PlannedAction]]:
    """Run the daily plan day after day, recording created tasks as the service would."""
    case = CaseView("acc-1", dpds.start, grade, **case_fields)  # type: ignore[arg-type]  # each test names the fields it sets
    plans: dict[int, list[PlannedAction]] = {}
    for dpd in dpds:
        case = replace(case, dpd=dpd)
        planned = actions_for_day(case, on(dpd), strategy)
        if planned:
            plans[dpd] = planned
        case = _record_tasks(case, planned, on(dpd))
    return plans


def _record_tasks(case: CaseView, planned: list[PlannedAction], day: date) -> CaseView:
    field_of = {
        ActionKind.CALL: "last_call_task_on",
        ActionKind.AGENCY: "agency_referred_on",
        ActionKind.LEGAL: "legal_case_opened_on",
    }
    for action in planned:
        if action.kind in field_of:
            case = replace(case, **{field_of[action.kind]: day})
    return case


def days_of(plans: dict[int, list[PlannedAction]], kind: ActionKind, template: str | None = None) -> list[int]:
    return [
        dpd
        for dpd, planned in plans.items()
        for a in planned
        if a.kind is kind and (template is None or a.template == template)
    ]


def sms_days(plans: dict[int, list[PlannedAction]]) -> list[int]:
    return [dpd for dpd, planned in plans.items() if any(a.kind.is_message for a in planned)]


# --- pre-due ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("grade", "expected"),
    [("A", [-1]), ("B", [-1]), ("C", [-3, -1]), ("D", [-3, -1, 0]), ("E", [-3, -1, 0])],
)
def test_pre_due_sms_days_per_grade(strategy: Strategy, grade: str, expected: list[int]) -> None:
    assert sms_days(simulate(strategy, grade, range(-7, 1))) == expected


def test_pre_due_d0_uses_the_due_today_template(strategy: Strategy) -> None:
    plans = simulate(strategy, "D", range(-3, 1))
    assert [a.template for a in plans[0]] == ["due_today"]
    assert all(a.stage is Stage.PRE_DUE for p in plans.values() for a in p)


def test_no_pre_due_reminder_once_the_bill_is_paid(strategy: Strategy) -> None:
    assert simulate(strategy, "E", range(-3, 1), bill_paid=True) == {}


# --- grace ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("grade", "expected"),
    [("A", [1]), ("B", [1]), ("C", [1, 3]), ("D", [1, 2, 3]), ("E", [1, 2, 3])],
)
def test_grace_sms_days_per_grade(strategy: Strategy, grade: str, expected: list[int]) -> None:
    assert sms_days(simulate(strategy, grade, range(1, 4))) == expected


@pytest.mark.parametrize("grade", ["A", "B", "C", "D", "E"])
def test_first_grace_sms_is_the_bureau_notice_whatever_the_grade(strategy: Strategy, grade: Grade) -> None:
    planned = actions_for_day(CaseView("acc-1", 1, grade), on(1), strategy)
    assert [(a.kind, a.template) for a in planned] == [(ActionKind.SMS, "grace_first")]


# --- early ----------------------------------------------------------------------------------------


def test_early_sms_every_7_days_for_a_and_b_with_plan_invitation_at_10(strategy: Strategy) -> None:
    plans = simulate(strategy, "A", range(4, 31))
    assert days_of(plans, ActionKind.SMS, "early") == [4, 11, 18, 25]
    assert days_of(plans, ActionKind.PLAN_INVITATION) == [10]
    assert days_of(plans, ActionKind.CALL) == []


def test_early_sms_every_3_days_for_c_and_the_invitation_replaces_day_10s_sms(strategy: Strategy) -> None:
    plans = simulate(strategy, "C", range(4, 31))
    assert sms_days(plans) == [4, 7, 10, 13, 16, 19, 22, 25, 28]
    assert [a.template for a in plans[10]] == ["plan_invitation"]  # one SMS a day, the invitation wins


def test_early_for_d_and_e_sms_every_2_days_call_at_7_then_weekly_no_invitation(strategy: Strategy) -> None:
    for grade in ("D", "E"):
        plans = simulate(strategy, grade, range(4, 31))
        assert sms_days(plans) == list(range(4, 31, 2))
        assert days_of(plans, ActionKind.CALL) == [7, 14, 21, 28]
        assert days_of(plans, ActionKind.PLAN_INVITATION) == []


def test_never_more_than_one_message_planned_a_day(strategy: Strategy) -> None:
    for grade in "ABCDE":
        for planned in simulate(strategy, grade, range(-5, 100)).values():
            assert sum(1 for a in planned if a.kind.is_message) <= 1


# --- mid, late, legal -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("grade", "expected"),
    [
        ("A", [31, 38, 45, 52, 59]),  # weekly
        ("B", [31, 38, 45, 52, 59]),
        ("C", [31, 34, 38, 41, 45, 48, 52, 55, 59]),  # twice a week: offsets 0 and 3 of each week
        ("D", list(range(31, 61))),  # every day
        ("E", list(range(31, 61))),
    ],
)
def test_mid_stage_call_cadence(strategy: Strategy, grade: str, expected: list[int]) -> None:
    plans = simulate(strategy, grade, range(31, 61))
    assert days_of(plans, ActionKind.CALL) == expected
    assert sms_days(plans) == []
    assert all(a.trigger is Trigger.SCHEDULED for p in plans.values() for a in p)


@pytest.mark.parametrize("grade", list("ABCDE"))
def test_agency_at_61_and_legal_at_91_once(strategy: Strategy, grade: str) -> None:
    plans = simulate(strategy, grade, range(61, 200))
    assert days_of(plans, ActionKind.AGENCY) == [61]
    assert days_of(plans, ActionKind.LEGAL) == [91]
    assert plans[61][0].stage is Stage.LATE and plans[91][0].stage is Stage.LEGAL


# --- catch-up, pauses, plans ----------------------------------------------------------------


def test_a_case_jumping_into_mid_gets_its_call_at_once(strategy: Strategy) -> None:
    planned = actions_for_day(CaseView("acc-1", 35, "A", last_call_task_on=None), on(35), strategy)
    assert [(a.kind, a.trigger) for a in planned] == [(ActionKind.CALL, Trigger.CATCH_UP)]


def test_agency_referral_missed_during_a_pause_is_caught_up(strategy: Strategy) -> None:
    case = CaseView("acc-1", 64, "B", agency_referred_on=None)
    assert [(a.kind, a.trigger) for a in actions_for_day(case, on(64), strategy)] == [
        (ActionKind.AGENCY, Trigger.CATCH_UP)
    ]
    referred = replace(case, agency_referred_on=on(64))
    assert actions_for_day(replace(referred, dpd=65), on(65), strategy) == []


def test_nothing_planned_for_a_cured_case(strategy: Strategy) -> None:
    assert actions_for_day(CaseView("acc-1", 45, "E", cured=True), on(45), strategy) == []


def test_promise_pending_pauses_the_plan_then_calls_resume(strategy: Strategy) -> None:
    # Grade D mid calls daily; promise for DPD 42, paused through DPD 43.
    case = CaseView("acc-1", 40, "D", last_call_task_on=on(40), promise_pending_until=on(43))
    for dpd in (41, 42, 43):
        assert actions_for_day(replace(case, dpd=dpd), on(dpd), strategy) == []
    assert [a.kind for a in actions_for_day(replace(case, dpd=44), on(44), strategy)] == [ActionKind.CALL]


def test_broken_promise_brings_the_next_call_forward(strategy: Strategy) -> None:
    # Grade A mid: calls on 31, 38, 45. Promise made at the DPD 38 call, broken on DPD 41.
    case = CaseView("acc-1", 41, "A", last_call_task_on=on(38), promise_pending_until=on(40))
    assert actions_for_day(case, on(41), strategy) == []  # not broken: waits for DPD 45
    broken = replace(case, promise_broken=True)
    planned = actions_for_day(broken, on(41), strategy)
    assert [(a.kind, a.trigger) for a in planned] == [(ActionKind.CALL, Trigger.BROKEN_PROMISE)]


def test_broken_promise_in_an_sms_only_stage_brings_the_next_sms_forward(strategy: Strategy) -> None:
    case = CaseView("acc-1", 13, "A", promise_broken=True)  # next early SMS would be DPD 18
    planned = actions_for_day(case, on(13), strategy)
    assert [(a.kind, a.template, a.trigger) for a in planned] == [(ActionKind.SMS, "early", Trigger.BROKEN_PROMISE)]


def test_plan_active_only_plan_installment_reminders(strategy: Strategy) -> None:
    due = date(2026, 5, 15)
    case = CaseView("acc-1", 0, "C", plan_active=True, plan_installment_due_on=due)
    reminder_days = [
        offset for offset in range(-10, 20) if actions_for_day(case, due + timedelta(days=offset), strategy)
    ]
    assert reminder_days == [-3, -1, 0, 1, 3, 7]
    (action,) = actions_for_day(case, due, strategy)
    assert (action.kind, action.template, action.trigger) == (
        ActionKind.PLAN_REMINDER,
        "plan_installment_reminder",
        Trigger.PLAN_INSTALLMENT,
    )
    # even with a DPD that would call daily, an active plan pauses the strategy
    assert actions_for_day(CaseView("acc-1", 45, "E", plan_active=True), on(45), strategy) == []


def test_effective_grade_defaults_to_c_until_risk_is_assessed() -> None:
    rules = CollectionsRules()
    assert effective_grade(None, rules) == "C"
    assert effective_grade("E", rules) == "E"
    with pytest.raises(ValueError):
        effective_grade("Z", rules)


# --- validation of the file ----------------------------------------------------------------


def _packaged() -> dict:
    return yaml.safe_load(
        (Path(__file__).parents[3] / "services/collections/strategy.yaml").read_text(encoding="utf-8")
    )


def _load(tmp_path: Path, data: dict) -> Strategy:
    path = tmp_path / "strategy.yaml"
    path.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    return load_strategy(path)


def test_the_packaged_file_round_trips(tmp_path: Path) -> None:
    assert _load(tmp_path, _packaged()) == load_strategy()


def test_unknown_stage_is_rejected_by_name(tmp_path: Path) -> None:
    data = _packaged()
    data["stages"]["erly"] = data["stages"].pop("early")
    with pytest.raises(StrategyError, match="unknown stages \\['erly'\\]"):
        _load(tmp_path, data)


def test_unknown_grade_is_rejected(tmp_path: Path) -> None:
    data = _packaged()
    data["grade_groups"]["DE"] = ["D", "F"]
    with pytest.raises(StrategyError, match="unknown grades \\['F'\\]"):
        _load(tmp_path, data)


def test_unknown_template_is_rejected(tmp_path: Path) -> None:
    data = _packaged()
    data["stages"]["early"]["AB"][1]["template"] = "earlyy"
    with pytest.raises(StrategyError, match="unknown templates \\['earlyy'\\]"):
        _load(tmp_path, data)


def test_unknown_grade_group_and_uncovered_grade_are_rejected(tmp_path: Path) -> None:
    data = _packaged()
    data["stages"]["mid"]["XY"] = data["stages"]["mid"].pop("C")
    with pytest.raises(StrategyError, match="unknown grade groups \\['XY'\\]"):
        _load(tmp_path, data)
    data = _packaged()
    del data["stages"]["mid"]["C"]
    with pytest.raises(StrategyError, match="grades \\['C'\\] are not covered"):
        _load(tmp_path, data)


def test_first_grace_sms_must_be_the_bureau_notice(tmp_path: Path) -> None:
    data = _packaged()
    data["stages"]["grace"]["AB"][0]["template"] = "grace"
    with pytest.raises(StrategyError, match="bureau notice"):
        _load(tmp_path, data)


def test_a_dpd_outside_its_stage_is_rejected(tmp_path: Path) -> None:
    data = _packaged()
    data["stages"]["late"]["all"][0]["on_dpd"] = [60]
    with pytest.raises(StrategyError, match="outside the stage"):
        _load(tmp_path, data)


def test_a_rule_needs_exactly_one_schedule(tmp_path: Path) -> None:
    data = _packaged()
    data["stages"]["mid"]["AB"][0]["on_dpd"] = [31]
    with pytest.raises(StrategyError, match="exactly one of"):
        _load(tmp_path, data)


def test_unknown_action_kind_is_rejected(tmp_path: Path) -> None:
    data = _packaged()
    data["stages"]["mid"]["AB"][0]["kind"] = "visit"
    with pytest.raises(StrategyError, match="kind"):
        _load(tmp_path, data)
