"""Restructuring: the customers' requests (offers, an acceptance, an adjustment), one at a
time. Load, call the domain, save, emit.

The event types that come in floods (grants, bills, snapshots, cures, payments) are taken
as runs on the projection, each in a module of its own (``grants``, ``bills``,
``snapshots``, ``repayments``); ``registry`` maps every consumed type to its handler.

Business decisions use the event's own time (``business_date`` fields, the
envelope's ``occurred_at``, ``accepted_at``), never the wall clock.

Reason codes of this service (besides the domain's, see ``domain/offers.py`` and
``domain/plan.py``):

* ``plan.ineligible`` on ``plan.offers.requested``: ``unknown_account`` (no event named
  the account yet), ``plan_already_active``, ``no_overdue_bills``, ``dpd_too_high``,
  ``grade_not_eligible``, ``no_affordable_offer`` (every offer above the cap, beyond
  50 % of income, or a principal too small).
* ``plan.ineligible`` on ``plan.offer.accepted`` (its ``request_id`` field carries the
  ``offer_id``, the acceptance's only identifier): ``offer_unknown`` (no such offer, or
  an offer of another account), ``offer_expired`` (accepted at or after ``expires_at``),
  ``offer_used`` (this offer, or another offer of the same request, was already
  accepted), ``plan_already_active``.
* ``plan.adjustment.rejected``: ``plan_unknown``, ``plan_not_active``,
  ``new_term_missing`` / ``target_payment_missing`` (the kind's figure is absent), then
  the domain's ``already_adjusted``, ``installment_overdue``, ``nothing_remaining``,
  ``invalid_term``, ``term_too_long``, ``not_longer``, ``principal_too_small``,
  ``target_not_lower``, ``target_unreachable``.

Idempotency beyond the inbox: a ``request_id`` (offers, adjustments) is decided once;
an offer is accepted once; a ``payment_id`` is applied to a plan once. A command sent
again under a new event id (a retry) gets its first answer again, the same type and
payload (kept in ``command_answers``), and changes nothing: ``plan.offered`` or
``plan.ineligible`` for a request (``risk.assessed`` is not sent again: nothing was
assessed again), ``plan.activated`` or the refusal for an acceptance, ``plan.adjusted``
or ``plan.adjustment.rejected`` for an adjustment. One refusal is not kept:
``offer_unknown``, since the acceptance named an offer that is not (or not this
account's) to decide, and keeping it would let one mistaken message refuse the offer's
real owner later.

Its length: the three requests are one conversation with the customer (offers, the
acceptance of one, an adjustment of the plan it made) and share the answer book, the
account view and the offer rows; each handler stays next to the helpers only it calls.
"""

from __future__ import annotations

import json
import uuid
from datetime import date, datetime, timezone
from decimal import Decimal

from sqlalchemy import select, update

from services.restructuring import store
from services.restructuring.domain.plan import days_held
from services.restructuring.domain import (
    PLAN_ALREADY_ACTIVE,
    AdjustmentAccepted,
    AdjustmentRejected,
    Offer,
    build_schedule,
    extend,
    lower_payment,
    offer_expires_at,
)
from services.restructuring.models import (
    ANSWERS,
    AccountView,
    Adjustment,
    BillView,
    OfferRequest,
    OfferRow,
    Plan,
    PlanInstallment,
    RiskAssessmentRow,
)
from shared.bus.answers import Answer, AnswerBook, repeat
from shared.bus.handling import HandlerContext
from shared.clock import business_date
from shared.events import payloads as p
from shared.events.payloads import Payload
from shared.log import get_logger
from shared.money import from_fen, to_fen

log = get_logger(__name__)

OFFER_UNKNOWN = "offer_unknown"
OFFER_EXPIRED = "offer_expired"
OFFER_USED = "offer_used"
PLAN_UNKNOWN = "plan_unknown"
PLAN_NOT_ACTIVE = "plan_not_active"
NEW_TERM_MISSING = "new_term_missing"
TARGET_PAYMENT_MISSING = "target_payment_missing"

TRIGGER_OFFER_REQUEST = "offer_request"

OFFER_REQUESTS = AnswerBook(ANSWERS, "plan.offers.requested")
ACCEPTANCES = AnswerBook(ANSWERS, "plan.offer.accepted")
ADJUSTMENTS = AnswerBook(ANSWERS, "plan.adjustment.requested")

_IDS = uuid.UUID("6f1d7c1e-3a0b-4c55-9d61-2b7f4e0a9c11")  # namespace of the ids derived below


def derived_id(prefix: str, *parts: str) -> str:
    """A stable id from what it is derived from: a replayed request derives the same ids."""
    return f"{prefix}-{uuid.uuid5(_IDS, ':'.join(parts)).hex[:20]}"


def _answer(
    ctx: HandlerContext, book: AnswerBook, business_id: str, event_type: str, payload: Payload, aggregate_id: str
) -> None:
    """Emit a command's first answer and keep it for the command's retries."""
    reply = ctx.reply(event_type, payload, aggregate_id)
    ctx.outbox.emit_many(ctx.session, [reply])
    book.keep(ctx.session, {business_id: Answer.of(reply)})


def _answered_before(ctx: HandlerContext, book: AnswerBook, business_id: str) -> bool:
    """A retry of a command already answered: its first answer goes out again (True)."""
    answer = book.find(ctx.session, business_id)
    if answer is None:
        return False
    ctx.outbox.emit_many(ctx.session, [repeat(ctx, answer)])
    return True


def _account(ctx: HandlerContext, account_id: str) -> AccountView:
    """The account's projection row, created on first mention (events arrive in any order)."""
    account = ctx.session.get(AccountView, account_id)
    if account is None:
        account = AccountView(account_id=account_id, max_dpd=0, episode_assessed=False)
        ctx.session.add(account)
        ctx.session.flush()
    return account


def _assess_and_emit(
    ctx: HandlerContext,
    account_id: str,
    as_of: date,
    trigger: str,
    request_id: str | None,
    income: Decimal | None,
) -> store.Quote:
    """Score the account, keep the assessment, emit ``risk.assessed``; returns the quote."""
    quote = store.quote(ctx.session, account_id, as_of, ctx.rules, income)
    if quote.assessment is None or quote.inputs is None:
        return quote
    assessment, inputs = quote.assessment, quote.inputs
    ctx.session.add(
        RiskAssessmentRow(**store.assessment_values(account_id, as_of, trigger, request_id, assessment, inputs))
    )
    account = ctx.session.get(AccountView, account_id)
    if account is not None:
        account.last_grade, account.last_score = assessment.grade, assessment.score
    ctx.emit(
        "risk.assessed",
        p.RiskAssessed(
            account_id=account_id,
            score=assessment.score,
            grade=assessment.grade,
            factors=store.risk_factors(assessment),
        ),
        account_id,
    )
    return quote


# --- offers -------------------------------------------------------------------------------


def delinquency_paused(ctx: HandlerContext, event: p.DelinquencyPaused) -> None:
    """The account's delinquency is paused (RULES 2.8): the monitoring of its plan holds
    (``jobs._due_plans`` leaves it out). A pause already resumed changes nothing."""
    account = _account(ctx, event.account_id)
    if account.resumed_pause_on != event.paused_on:
        account.paused_on = event.paused_on


def delinquency_resumed(ctx: HandlerContext, event: p.DelinquencyResumed) -> None:
    """The pause is over: monitoring resumes, and the active plan's held days (those of the
    pause in its life) are added to the days it does not count."""
    account = _account(ctx, event.account_id)
    if account.paused_on is None or account.paused_on <= event.paused_on:
        account.paused_on = None
    account.resumed_pause_on = event.paused_on
    plan = ctx.session.scalar(
        select(Plan).where(Plan.account_id == event.account_id, Plan.status == "active").with_for_update()
    )
    if plan is not None:
        plan.days_held = (plan.days_held or 0) + days_held(event.paused_on, event.resumed_on, plan.start_date)


def plan_offers_requested(ctx: HandlerContext, event: p.PlanOffersRequested) -> None:
    """Assess, then offer every term the grade allows within the cap and the customer's
    means, or say why not. The offers are computed as of the request's own date."""
    session = ctx.session
    if _answered_before(ctx, OFFER_REQUESTS, event.request_id):
        return
    if session.get(OfferRequest, event.request_id) is not None:
        return  # decided before its answer was kept (older rows): not answered again
    offered_at = ctx.envelope.occurred_at
    as_of = business_date(offered_at)
    account = session.get(AccountView, event.account_id)
    if account is not None and event.monthly_income is not None:
        account.monthly_income_fen = to_fen(event.monthly_income)  # the customer's newest word on income
    quote = _assess_and_emit(
        ctx, event.account_id, as_of, TRIGGER_OFFER_REQUEST, event.request_id, event.monthly_income
    )
    request = OfferRequest(
        request_id=event.request_id,
        account_id=event.account_id,
        requested_at=offered_at,
        outcome="ineligible",
        reason=quote.reason,
        grade=quote.assessment.grade if quote.assessment else None,
    )
    session.add(request)
    if quote.reason is not None or quote.assessment is None:
        _answer(
            ctx,
            OFFER_REQUESTS,
            event.request_id,
            "plan.ineligible",
            p.PlanIneligible(
                request_id=event.request_id,
                account_id=event.account_id,
                reason=quote.reason or store.UNKNOWN_ACCOUNT,
            ),
            event.account_id,
        )
        return
    request.outcome = "offered"
    expires_at = offer_expires_at(offered_at, ctx.rules.restructuring)
    wire_offers = [_save_offer(ctx, event.request_id, quote, offer, offered_at, expires_at) for offer in quote.offers]
    _answer(
        ctx,
        OFFER_REQUESTS,
        event.request_id,
        "plan.offered",
        p.PlanOffered(
            request_id=event.request_id,
            account_id=event.account_id,
            grade=quote.assessment.grade,
            offers=wire_offers,
        ),
        event.account_id,
    )


def _save_offer(
    ctx: HandlerContext, request_id: str, quote: store.Quote, offer: Offer, offered_at: datetime, expires_at: datetime
) -> p.Offer:
    offer_id = derived_id("off", quote.account_id, request_id, str(offer.term), offer.method)
    assert quote.assessment is not None
    ctx.session.add(
        OfferRow(
            offer_id=offer_id,
            request_id=request_id,
            account_id=quote.account_id,
            grade=quote.assessment.grade,
            term=offer.term,
            method=offer.method,
            monthly_fee_rate=str(offer.monthly_fee_rate),
            principal_fen=to_fen(offer.principal),
            total_fee_fen=to_fen(offer.total_fee),
            apr=str(offer.apr),
            monthly_payment_fen=to_fen(offer.monthly_payment),
            schedule=store.schedule_json(offer.schedule.periods),
            bill_ids=json.dumps(list(quote.bill_ids)),
            offered_at=offered_at.astimezone(timezone.utc),
            expires_at=expires_at.astimezone(timezone.utc),
            status="offered",
            plan_id=None,
        )
    )
    return p.Offer(
        offer_id=offer_id,
        term=offer.term,
        method=offer.method,
        monthly_fee_rate=offer.monthly_fee_rate,
        principal=offer.principal,
        total_fee=offer.total_fee,
        apr=offer.apr,
        monthly_payment=offer.monthly_payment,
        expires_at=expires_at,
        schedule=store.schedule_lines(offer.schedule.periods),
    )


def plan_offer_accepted(ctx: HandlerContext, event: p.PlanOfferAccepted) -> None:
    """Turn a valid offer into an active plan, its schedule rebuilt from the acceptance date."""
    session = ctx.session
    if _answered_before(ctx, ACCEPTANCES, event.offer_id):
        return
    offer = session.scalar(select(OfferRow).where(OfferRow.offer_id == event.offer_id).with_for_update())
    reason = _acceptance_refusal(ctx, offer, event)
    if reason is not None:
        refusal = p.PlanIneligible(request_id=event.offer_id, account_id=event.account_id, reason=reason)
        if reason == OFFER_UNKNOWN:  # not this offer's answer to keep (see the module's docstring)
            ctx.emit("plan.ineligible", refusal, event.account_id)
        else:
            _answer(ctx, ACCEPTANCES, event.offer_id, "plan.ineligible", refusal, event.account_id)
        return
    assert offer is not None
    plan = _activate(ctx, offer, event)
    session.execute(
        update(OfferRow)
        .where(
            OfferRow.request_id == offer.request_id,
            OfferRow.offer_id != offer.offer_id,
            OfferRow.status == "offered",
        )
        .values(status="withdrawn")
    )
    offer.status, offer.plan_id = "accepted", plan.plan_id


def _acceptance_refusal(ctx: HandlerContext, offer: OfferRow | None, event: p.PlanOfferAccepted) -> str | None:
    if offer is None or offer.account_id != event.account_id:
        return OFFER_UNKNOWN
    if offer.status in ("accepted", "withdrawn"):
        return OFFER_USED
    if offer.status == "expired" or event.accepted_at >= store.utc_aware(offer.expires_at):
        offer.status = "expired"
        return OFFER_EXPIRED
    account = ctx.session.get(AccountView, offer.account_id)
    if account is not None and account.active_plan_id is not None:
        return PLAN_ALREADY_ACTIVE
    return None


def _activate(ctx: HandlerContext, offer: OfferRow, event: p.PlanOfferAccepted) -> Plan:
    """Save the plan and its installments, move the offer's bills into it, emit ``plan.activated``."""
    session = ctx.session
    start = business_date(event.accepted_at)
    rate = Decimal(offer.monthly_fee_rate)
    principal = from_fen(offer.principal_fen)
    schedule = build_schedule(offer.method, principal, offer.term, rate, start)
    bill_ids: list[str] = json.loads(offer.bill_ids)
    plan = Plan(
        plan_id=derived_id("plan", offer.offer_id),
        offer_id=offer.offer_id,
        account_id=offer.account_id,
        status="active",
        method=offer.method,
        monthly_fee_rate=offer.monthly_fee_rate,
        principal_fen=offer.principal_fen,
        term=offer.term,
        start_date=start,
        accepted_at=event.accepted_at.astimezone(timezone.utc),
        adjustments_made=0,
        bill_ids=json.dumps(bill_ids),
        fees_waived_fen=0,
        fees_cancelled_fen=0,
    )
    session.add(plan)
    session.flush()
    session.add_all([store.installment_row(plan.pk, line, None, None) for line in schedule.periods])
    _account(ctx, offer.account_id).active_plan_id = plan.plan_id
    if bill_ids:
        session.execute(update(BillView).where(BillView.bill_id.in_(bill_ids)).values(plan_id=plan.plan_id, dpd=0))
    _answer(
        ctx,
        ACCEPTANCES,
        offer.offer_id,
        "plan.activated",
        p.PlanActivated(
            plan_id=plan.plan_id,
            offer_id=offer.offer_id,
            account_id=offer.account_id,
            principal=principal,
            term=offer.term,
            bill_ids=bill_ids,
            schedule=store.schedule_lines(schedule.periods),
        ),
        plan.plan_id,
    )
    return plan


# --- adjustment ---------------------------------------------------------------------------


def plan_adjustment_requested(ctx: HandlerContext, event: p.PlanAdjustmentRequested) -> None:
    """Extend or lower the payment once per plan, or say why not."""
    session = ctx.session
    if _answered_before(ctx, ADJUSTMENTS, event.request_id):
        return
    if session.get(Adjustment, event.request_id) is not None:
        return  # decided before its answer was kept (older rows): not answered again
    on = ctx.event_date
    record = Adjustment(
        request_id=event.request_id, plan_id=event.plan_id, kind=event.kind, requested_on=on, outcome="rejected"
    )
    session.add(record)
    plan = session.scalar(select(Plan).where(Plan.plan_id == event.plan_id).with_for_update())
    reason = _adjustment_precheck(plan, event)
    if reason is not None:
        _reject_adjustment(ctx, record, reason)
        return
    assert plan is not None
    rows = store.load_installments(session, plan.pk)
    schedule, paid = store.plan_schedule(plan, rows), store.plan_paid(rows)
    rules = ctx.rules.restructuring
    if event.kind == "extend":
        decision = extend(schedule, paid, on, plan.adjustments_made, event.new_term or 0, rules)
    else:
        decision = lower_payment(schedule, paid, on, plan.adjustments_made, event.target_payment or Decimal(0), rules)
    if isinstance(decision, AdjustmentRejected):
        _reject_adjustment(ctx, record, decision.reason)
        return
    _replace_periods(ctx, plan, rows, decision)
    record.outcome, record.new_term = "adjusted", decision.new_term
    record.apr, record.monthly_payment_fen = str(decision.apr), to_fen(decision.monthly_payment)
    _answer(
        ctx,
        ADJUSTMENTS,
        event.request_id,
        "plan.adjusted",
        p.PlanAdjusted(
            plan_id=plan.plan_id,
            account_id=plan.account_id,
            request_id=event.request_id,
            kind=event.kind,
            schedule=store.schedule_lines(decision.rescheduled.periods),
            apr=decision.apr,
            monthly_payment=decision.monthly_payment,
        ),
        plan.plan_id,
    )


def _adjustment_precheck(plan: Plan | None, event: p.PlanAdjustmentRequested) -> str | None:
    if plan is None:
        return PLAN_UNKNOWN
    if plan.status != "active":
        return PLAN_NOT_ACTIVE
    if event.kind == "extend" and event.new_term is None:
        return NEW_TERM_MISSING
    if event.kind == "lower_payment" and event.target_payment is None:
        return TARGET_PAYMENT_MISSING
    return None


def _reject_adjustment(ctx: HandlerContext, record: Adjustment, reason: str) -> None:
    record.outcome, record.reason = "rejected", reason
    _answer(
        ctx,
        ADJUSTMENTS,
        record.request_id,
        "plan.adjustment.rejected",
        p.PlanAdjustmentRejected(
            plan_id=record.plan_id,
            request_id=record.request_id,
            reason=reason,
        ),
        record.plan_id,
    )


def _replace_periods(
    ctx: HandlerContext, plan: Plan, rows: list[PlanInstallment], decision: AdjustmentAccepted
) -> None:
    """Drop the re-scheduled periods and write the new ones (with the money carried over)."""
    first = decision.rescheduled.first_period
    for row in rows:
        if row.period >= first:
            ctx.session.delete(row)
    ctx.session.flush()
    ctx.session.add_all(
        [
            store.installment_row(plan.pk, line, decision.paid.get(line.period), None)
            for line in decision.rescheduled.periods
        ]
    )
    plan.term = decision.schedule.term
    plan.adjustments_made += 1
    if decision.unapplied > 0:
        log.warning("adjustment_unapplied", plan_id=plan.plan_id, amount=str(decision.unapplied))
