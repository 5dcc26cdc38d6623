"""Pure rules of the collections service (RULES section 6).

No database, no broker, no clock, no settings: every function takes plain values
(dates, aware datetimes, Decimals, the rules objects, the loaded strategy and
templates) and returns frozen decisions. The service layer loads, calls, saves, emits.

- ``stages``: stages by DPD and their order, action kinds, ``CaseView``;
- ``strategy``: the strategy file (``strategy.yaml``) and ``actions_for_day``;
- ``templates``: SMS templates (``templates.yaml``), their checks, rendering, segments;
- ``compliance``: the guard before every contact, masking of names and phones;
- ``promises``: promises to pay, their pause and when they are broken;
- ``kpis``: roll rates, cure rates, promise-kept rate.
"""

from .compliance import (
    SHANGHAI,
    Channel,
    ComplianceDecision,
    ContactHistoryView,
    ContactRequest,
    SuppressionReason,
    case_block_reason,
    check_contact,
    is_own_phone,
    mask_name,
    mask_phone,
    next_window_start,
    normalize_phone,
    within_contact_window,
)
from .kpis import CaseEnd, Rate, StageObservation, cure_rates_by_stage, promise_kept_rate, roll_rate, roll_rates
from .promises import (
    CallOutcome,
    OutcomeEffect,
    Promise,
    PromiseError,
    PromiseState,
    effect_of_outcome,
    latest_promise_date,
    pause_until,
    promise_state,
)
from .stages import (
    GRADES,
    STAGE_ORDER,
    ActionKind,
    CaseView,
    Escalation,
    Stage,
    escalation,
    is_escalation,
    stage_bounds,
    stage_for,
    stage_rank,
)
from .strategy import (
    ActionRule,
    PlannedAction,
    Strategy,
    StrategyError,
    Trigger,
    actions_for_day,
    effective_grade,
    load_strategy,
)
from .templates import (
    ALLOWED_FIELDS,
    BANNED_WORDS,
    Rendered,
    SmsTemplate,
    TemplateCatalog,
    TemplateError,
    check_template,
    count_segments,
    load_templates,
    render,
)

__all__ = [
    "ALLOWED_FIELDS",
    "BANNED_WORDS",
    "GRADES",
    "SHANGHAI",
    "STAGE_ORDER",
    "ActionKind",
    "ActionRule",
    "CallOutcome",
    "CaseEnd",
    "CaseView",
    "Channel",
    "ComplianceDecision",
    "ContactHistoryView",
    "ContactRequest",
    "Escalation",
    "OutcomeEffect",
    "PlannedAction",
    "Promise",
    "PromiseError",
    "PromiseState",
    "Rate",
    "Rendered",
    "SmsTemplate",
    "Stage",
    "StageObservation",
    "Strategy",
    "StrategyError",
    "SuppressionReason",
    "TemplateCatalog",
    "TemplateError",
    "Trigger",
    "actions_for_day",
    "case_block_reason",
    "check_contact",
    "check_template",
    "count_segments",
    "cure_rates_by_stage",
    "effect_of_outcome",
    "latest_promise_date",
    "effective_grade",
    "escalation",
    "is_escalation",
    "is_own_phone",
    "load_strategy",
    "load_templates",
    "mask_name",
    "mask_phone",
    "next_window_start",
    "normalize_phone",
    "pause_until",
    "promise_kept_rate",
    "promise_state",
    "render",
    "roll_rate",
    "roll_rates",
    "stage_bounds",
    "stage_for",
    "stage_rank",
    "within_contact_window",
]
