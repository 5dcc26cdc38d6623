"""The collection strategy: RULES section 6's table as validated data, and the daily plan.

The table (which SMS on which day, which task when, per stage and risk grade) lives in
``strategy.yaml`` so that collections managers can tune it without a release; this
module validates that file at load, refusing anything it cannot execute, and turns it
into :func:`actions_for_day`: what the strategy wants done for one case on one day.

Schedules are in DPD terms only (see ``strategy.yaml``'s header for the exact meaning
of ``on_dpd``, ``every_days`` and ``week_offsets``), anchored on the stage's first DPD.
A case therefore needs no "stage entered on" date: its DPD says where it is in every
cadence, and the plan for a day is the same however often the day is re-run.

Its length: the strategy file's schema, its validation and the day's plan are one rule
(what the table means), and splitting them would put the schema apart from what reads it.

What the plan does *not* judge is whether a contact may happen right now (the contact
window, the caps, the customer's own phone): that is the compliance guard's job, just
before each contact.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, timedelta
from enum import StrEnum
from importlib import resources
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, ValidationInfo, field_validator, model_validator

from shared.rules import CollectionsRules, Grade

from .stages import GRADES, STAGE_ORDER, ActionKind, CaseView, Stage, stage_bounds
from .templates import TemplateCatalog, load_templates

# How far ahead a "next occurrence" is looked for: farther than any cadence can skip.
_LOOKAHEAD_DAYS = 366


class StrategyError(ValueError):
    """A strategy file that cannot be executed; the message names the offending entry."""


def _allowed_dpds(stage: Stage) -> tuple[int | None, int | None]:
    """The DPDs a rule of this stage may name: pre-due is every DPD <= 0."""
    if stage is Stage.PRE_DUE:
        return (None, 0)
    return stage_bounds(stage)


def _inside(dpd: int, bounds: tuple[int | None, int | None]) -> bool:
    low, high = bounds
    return (low is None or dpd >= low) and (high is None or dpd <= high)


class ActionRule(BaseModel):
    """One line of the table: an action kind, its template, and exactly one schedule.

    In DPD terms, with ``anchor`` = ``from_dpd`` or the stage's first DPD and the rule
    ending at ``until_dpd`` or the stage's last DPD:

    - ``on_dpd: [d, ...]``: exactly those DPDs;
    - ``every_days: n``: anchor, anchor + n, anchor + 2n, ... ("weekly" is n = 7,
      "every day" n = 1; early-stage SMS every 7 days: DPD 4, 11, 18, 25);
    - ``week_offsets: [o, ...]``: the stage in 7-day weeks from the anchor, firing on
      those offsets of each week ("twice a week" = [0, 3]: mid-stage DPD 31, 34, 38, 41…).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: ActionKind
    template: str | None = None
    on_dpd: tuple[int, ...] | None = None
    every_days: int | None = Field(default=None, ge=1)
    week_offsets: tuple[int, ...] | None = None
    from_dpd: int | None = None
    until_dpd: int | None = None

    @model_validator(mode="after")
    def _well_formed(self) -> "ActionRule":
        schedules = [s for s in (self.on_dpd, self.every_days, self.week_offsets) if s is not None]
        if len(schedules) != 1:
            raise ValueError("give exactly one of on_dpd, every_days, week_offsets")
        if self.kind is ActionKind.PLAN_REMINDER:
            raise ValueError("plan_reminder belongs in plan_reminders, not in a stage")
        if self.kind.is_message and not self.template:
            raise ValueError(f"a {self.kind} needs a template")
        if self.kind.is_task and self.template is not None:
            raise ValueError(f"a {self.kind} task takes no SMS template")
        self._check_lists()
        return self

    def _check_lists(self) -> None:
        if self.on_dpd is not None and (not self.on_dpd or len(set(self.on_dpd)) != len(self.on_dpd)):
            raise ValueError("on_dpd must list distinct DPDs")
        if self.week_offsets is not None:
            if not self.week_offsets or len(set(self.week_offsets)) != len(self.week_offsets):
                raise ValueError("week_offsets must list distinct offsets")
            if any(not 0 <= offset <= 6 for offset in self.week_offsets):
                raise ValueError("week_offsets are days within a week: 0 to 6")

    # --- the schedule in DPD terms -------------------------------------------------------

    def anchor(self, stage: Stage) -> int:
        """Where cadences count from: ``from_dpd``, else the stage's first DPD."""
        return self.from_dpd if self.from_dpd is not None else stage_bounds(stage)[0]

    def last_dpd(self, stage: Stage) -> int | None:
        """The last DPD the rule can fire on (None: open-ended, as the legal stage)."""
        return self.until_dpd if self.until_dpd is not None else stage_bounds(stage)[1]

    def fires_on(self, stage: Stage, dpd: int) -> bool:
        """True when the rule's schedule includes this DPD."""
        if self.on_dpd is not None:
            return dpd in self.on_dpd
        last = self.last_dpd(stage)
        offset = dpd - self.anchor(stage)
        if offset < 0 or (last is not None and dpd > last):
            return False
        if self.every_days is not None:
            return offset % self.every_days == 0
        assert self.week_offsets is not None
        return offset % 7 in self.week_offsets

    def latest_at_or_before(self, stage: Stage, dpd: int) -> int | None:
        """The last scheduled DPD up to and including ``dpd`` (None if none yet)."""
        if self.on_dpd is not None:
            return max((d for d in self.on_dpd if d <= dpd), default=None)
        last = self.last_dpd(stage)
        top = dpd if last is None else min(dpd, last)
        return next((d for d in range(top, self.anchor(stage) - 1, -1) if self.fires_on(stage, d)), None)

    def next_after(self, stage: Stage, dpd: int) -> int | None:
        """The first scheduled DPD after ``dpd`` (None if the rule is done)."""
        if self.on_dpd is not None:
            return min((d for d in self.on_dpd if d > dpd), default=None)
        start = max(dpd + 1, self.anchor(stage))
        return next((d for d in range(start, start + _LOOKAHEAD_DAYS) if self.fires_on(stage, d)), None)


class PlanReminderRule(BaseModel):
    """The active plan's installment reminders: days relative to the installment's due date."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    template: str
    days_from_due: tuple[int, ...] = Field(min_length=1)


class Strategy(BaseModel):
    """The whole strategy file. Build it with :func:`load_strategy`, which also checks
    every template name against the template catalog."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    version: Literal[1] = 1
    bureau_notice_template: str
    grade_groups: dict[str, tuple[Grade, ...]]
    stages: dict[Stage, dict[str, tuple[ActionRule, ...]]]
    plan_reminders: PlanReminderRule

    @field_validator("grade_groups", mode="before")
    @classmethod
    def _known_grades(cls, groups: Any) -> Any:
        if isinstance(groups, dict):
            for name, grades in groups.items():
                unknown = [g for g in (grades or []) if g not in GRADES]
                if unknown:
                    raise ValueError(f"grade group {name!r}: unknown grades {unknown}; known: {', '.join(GRADES)}")
        return groups

    @field_validator("stages", mode="before")
    @classmethod
    def _known_stages(cls, stages: Any) -> Any:
        if isinstance(stages, dict):
            known = [str(s) for s in STAGE_ORDER]
            unknown = [str(name) for name in stages if name not in known]
            if unknown:
                raise ValueError(f"unknown stages {unknown}; known: {', '.join(known)}")
            missing = [name for name in known if name not in stages]
            if missing:
                raise ValueError(f"stages missing from the strategy: {', '.join(missing)}")
        return stages

    @model_validator(mode="after")
    def _consistent(self, info: ValidationInfo) -> "Strategy":
        for stage, groups in self.stages.items():
            self._check_coverage(stage, groups)
            for group, rules in groups.items():
                for rule in rules:
                    _check_rule_in_stage(stage, group, rule)
        self._check_bureau_notice()
        catalog = (info.context or {}).get("templates")
        if catalog is not None:
            self._check_templates(catalog)
        return self

    def _check_coverage(self, stage: Stage, groups: dict[str, tuple[ActionRule, ...]]) -> None:
        """Every grade is covered by exactly one grade group in every stage."""
        unknown = [g for g in groups if g not in self.grade_groups]
        if unknown:
            raise ValueError(f"stage {stage}: unknown grade groups {unknown}; defined: {', '.join(self.grade_groups)}")
        covered = [grade for group in groups for grade in self.grade_groups[group]]
        twice = sorted({g for g in covered if covered.count(g) > 1})
        missing = [g for g in GRADES if g not in covered]
        if twice:
            raise ValueError(f"stage {stage}: grades {twice} are in more than one grade group")
        if missing:
            raise ValueError(f"stage {stage}: grades {missing} are not covered")

    def _check_bureau_notice(self) -> None:
        """RULES: the first grace SMS (DPD 1), whatever the grade, is the bureau notice."""
        first_grace = stage_bounds(Stage.GRACE)[0]
        for grade in GRADES:
            rules = self.rules_for(Stage.GRACE, grade)
            if not any(
                r.template == self.bureau_notice_template and r.fires_on(Stage.GRACE, first_grace) for r in rules
            ):
                raise ValueError(
                    f"grace stage, grade {grade}: the SMS on DPD {first_grace} must use the bureau notice "
                    f"template {self.bureau_notice_template!r}"
                )

    def _check_templates(self, catalog: TemplateCatalog) -> None:
        """Every template the strategy names exists; the bureau notice is marked as one."""
        unknown = [(where, name) for where, name in self.template_uses() if name not in catalog]
        if unknown:
            places = "; ".join(f"{where}: {name!r}" for where, name in unknown)
            names = sorted({name for _, name in unknown})
            raise ValueError(f"unknown templates {names} ({places}); known: {', '.join(sorted(catalog.names))}")
        if not catalog.get(self.bureau_notice_template).bureau_notice:
            raise ValueError(f"template {self.bureau_notice_template!r} is not marked bureau_notice")

    def template_uses(self) -> list[tuple[str, str]]:
        """Every template name the strategy uses, with where it is used."""
        uses = [
            (f"stage {stage}, group {group}", rule.template)
            for stage, groups in self.stages.items()
            for group, rules in groups.items()
            for rule in rules
            if rule.template
        ]
        return uses + [
            ("bureau_notice_template", self.bureau_notice_template),
            ("plan_reminders", self.plan_reminders.template),
        ]

    def first_pre_due_dpd(self) -> int:
        """The earliest DPD on which any pre-due rule of any grade can act (D-3 as shipped).

        Before it, a pre-due case has nothing to do: no message or task fires (tasks
        catch up only days that were scheduled), so the daily run can pass it by unless
        something else is pending for it (a promise, a stage to record)."""
        rules = [rule for group in self.stages.get(Stage.PRE_DUE, {}).values() for rule in group]
        return min((min(r.on_dpd) if r.on_dpd is not None else r.anchor(Stage.PRE_DUE) for r in rules), default=0)

    def rules_for(self, stage: Stage, grade: Grade) -> tuple[ActionRule, ...]:
        """The rules of a stage for a grade (validation guarantees exactly one group)."""
        for group, rules in self.stages.get(stage, {}).items():
            if grade in self.grade_groups[group]:
                return rules
        return ()


def _check_rule_in_stage(stage: Stage, group: str, rule: ActionRule) -> None:
    """The DPDs a rule names lie inside its stage, so a typo cannot silently never fire."""
    bounds = _allowed_dpds(stage)
    named = list(rule.on_dpd or ()) + [d for d in (rule.from_dpd, rule.until_dpd) if d is not None]
    outside = [d for d in named if not _inside(d, bounds)]
    if outside:
        low, high = bounds
        span = f"{'' if low is None else low}..{'' if high is None else high}"
        raise ValueError(f"stage {stage}, group {group}: DPDs {outside} lie outside the stage ({span})")
    if rule.from_dpd is not None and rule.until_dpd is not None and rule.from_dpd > rule.until_dpd:
        raise ValueError(f"stage {stage}, group {group}: from_dpd {rule.from_dpd} is after until_dpd {rule.until_dpd}")


# --- loading ------------------------------------------------------------------------------------


def load_strategy(path: str | Path | None = None, *, templates: TemplateCatalog | None = None) -> Strategy:
    """The packaged ``strategy.yaml`` (path None) or the given file, validated.

    Template names are checked against ``templates`` (default: the packaged catalog);
    any problem raises :class:`StrategyError` naming the stage, group or template.
    """
    catalog = templates if templates is not None else load_templates(None)
    data = yaml.safe_load(_read(path)) or {}
    try:
        return Strategy.model_validate(data, context={"templates": catalog})
    except ValidationError as exc:
        raise StrategyError(f"strategy {path or 'strategy.yaml (packaged)'} rejected:\n{exc}") from exc


def _read(path: str | Path | None) -> str:
    if path is None:
        return resources.files("services.collections").joinpath("strategy.yaml").read_text(encoding="utf-8")
    return Path(path).read_text(encoding="utf-8")


def effective_grade(grade: str | None, rules: CollectionsRules) -> Grade:
    """The grade the strategy uses: the assessed one, else the default (C) until
    restructuring's ``risk.assessed`` arrives."""
    if grade is None:
        return rules.default_grade
    if grade not in GRADES:
        raise ValueError(f"unknown risk grade {grade!r}")
    return grade


# --- the daily plan ---------------------------------------------------------------------------


class Trigger(StrEnum):
    """Why an action is planned today (kept with the action for the audit trail)."""

    SCHEDULED = "scheduled"  # today is one of the rule's days
    CATCH_UP = "catch_up"  # a task day passed with no task since (pause, DPD jump, missed run)
    BROKEN_PROMISE = "broken_promise"  # the next action, brought forward by a broken promise
    PLAN_INSTALLMENT = "plan_installment"  # the active plan's own installment reminder


@dataclass(frozen=True)
class PlannedAction:
    """One thing the strategy wants done for a case today.

    ``kind``: sms, plan_invitation, plan_reminder (messages, with a ``template``) or
    call, agency, legal (tasks, template None). ``dpd`` is the case's DPD today (the
    ``{dpd}`` of the text), ``stage`` its stage today.
    """

    kind: ActionKind
    template: str | None
    stage: Stage
    dpd: int
    trigger: Trigger


def actions_for_day(case: CaseView, business_date: date, strategy: Strategy) -> list[PlannedAction]:
    """What the strategy wants done for this case on this business date.

    - a cured case, or a pre-due bill already paid: nothing;
    - a restructuring plan active: only the plan's installment reminders;
    - a promise to pay pending (through its last paused date): nothing; tasks whose days
      passed meanwhile are caught up the day after, SMS resume on their next day;
    - otherwise the stage's rules for the grade: messages scheduled today, tasks due
      (scheduled today or caught up), and after a broken promise the next action at
      once; at most one message per day (priority: bureau notice, plan invitation,
      then the order of the file).
    """
    if case.closed:
        return []
    if case.plan_active:
        return _plan_reminders(case, business_date, strategy)
    if case.promise_pending_on(business_date):
        return []
    rules = strategy.rules_for(case.stage, case.grade)
    planned = _messages_today(case, rules) + _tasks_due(case, business_date, rules)
    if case.promise_broken:
        planned += _next_actions(case, rules)
    return _one_message_per_day(_unique(planned), strategy)


def _messages_today(case: CaseView, rules: Iterable[ActionRule]) -> list[PlannedAction]:
    """Messages whose schedule includes today's DPD (missed messages are not caught up)."""
    return [
        _action(rule, case, Trigger.SCHEDULED)
        for rule in rules
        if rule.kind.is_message and rule.fires_on(case.stage, case.dpd)
    ]


def _tasks_due(case: CaseView, business_date: date, rules: Iterable[ActionRule]) -> list[PlannedAction]:
    """Tasks whose latest scheduled day (today or earlier in the stage) has no task since."""
    due = []
    for rule in (r for r in rules if r.kind.is_task):
        latest = rule.latest_at_or_before(case.stage, case.dpd)
        if latest is None:
            continue
        scheduled_on = business_date - timedelta(days=case.dpd - latest)
        last = case.last_task_on(rule.kind)
        if last is None or last < scheduled_on:
            due.append(_action(rule, case, Trigger.SCHEDULED if latest == case.dpd else Trigger.CATCH_UP))
    return due


def _next_actions(case: CaseView, rules: tuple[ActionRule, ...]) -> list[PlannedAction]:
    """After a broken promise, the stage's next action, brought forward to today.

    "Next" is the earliest upcoming task (a collector follows up a promise made to a
    collector); a stage with no task left brings forward its next message instead. A
    stage with nothing left (late after the agency referral) brings nothing forward:
    legal at 91 is a threshold of the rulebook, not a step a promise can hasten.
    """
    for group in ([r for r in rules if r.kind.is_task], [r for r in rules if r.kind.is_message]):
        upcoming = [(r.next_after(case.stage, case.dpd), r) for r in group]
        days = [day for day, _ in upcoming if day is not None]
        if days:
            first = min(days)
            return [_action(r, case, Trigger.BROKEN_PROMISE) for day, r in upcoming if day == first]
    return []


def _plan_reminders(case: CaseView, business_date: date, strategy: Strategy) -> list[PlannedAction]:
    """The active plan's installment reminder, on its days around the installment due date."""
    due_on = case.plan_installment_due_on
    rule = strategy.plan_reminders
    if due_on is None or (business_date - due_on).days not in rule.days_from_due:
        return []
    return [PlannedAction(ActionKind.PLAN_REMINDER, rule.template, case.stage, case.dpd, Trigger.PLAN_INSTALLMENT)]


def _action(rule: ActionRule, case: CaseView, trigger: Trigger) -> PlannedAction:
    return PlannedAction(rule.kind, rule.template, case.stage, case.dpd, trigger)


def _unique(planned: list[PlannedAction]) -> list[PlannedAction]:
    """One action per (kind, template): the first reason found wins."""
    seen: set[tuple[ActionKind, str | None]] = set()
    unique = []
    for action in planned:
        key = (action.kind, action.template)
        if key not in seen:
            seen.add(key)
            unique.append(action)
    return unique


def _one_message_per_day(planned: list[PlannedAction], strategy: Strategy) -> list[PlannedAction]:
    """Keep the single most important message of the day, and every task."""
    messages = [a for a in planned if a.kind.is_message]
    tasks = [a for a in planned if a.kind.is_task]
    if not messages:
        return tasks
    best = min(enumerate(messages), key=lambda pair: (_message_priority(pair[1], strategy), pair[0]))[1]
    return [best] + tasks


def _message_priority(action: PlannedAction, strategy: Strategy) -> int:
    """Bureau notice first (the law requires it), then the plan invitation, then the rest."""
    if action.template == strategy.bureau_notice_template:
        return 0
    return 1 if action.kind is ActionKind.PLAN_INVITATION else 2
