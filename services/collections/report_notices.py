"""The pre-report notice (RULES 6.10, 6.11): which cases owe one for an overdue bill not yet
noticed, the notice SMS queued or the letter task created when no own phone is known,
and the bills marked noticed once the notice SMS is handed to the gateway.
"""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from services.collections.casebook import (
    CaseFacts,
    Emit,
    SliceFacts,
    strategy_and_templates,
    utc,
)
from services.collections.domain import (
    ActionKind,
    PlannedAction,
)
from services.collections.domain.compliance import is_own_phone
from services.collections.domain.notices import (
    BillNotice,
    NoticeChannel,
    bills_awaiting_notice,
    notice_channel,
)
from services.collections.models import (
    Bill,
    CollectionCase,
    CollectorTask,
    ContactAttempt,
)
from services.collections.slices import MESSAGE_ID_NAMESPACE, planning_instant
from services.collections.day_plan import TASK_DUE_DAYS, DayState, plan_key
from shared.events import payloads as p
from shared.jobs import JobContext


Owed = dict[str, tuple[CollectionCase, CaseFacts, list[str], NoticeChannel]]


def notices_owed(
    decided: list[tuple[CollectionCase, CaseFacts, list[PlannedAction]]], slice_facts: SliceFacts, ctx: JobContext
) -> Owed:
    """The open cases with an overdue bill not yet noticed (RULES 6.10) that the day's plan
    does not already notify (the strategy's own notice SMS), with the bills and channel."""
    strategy, _ = strategy_and_templates(ctx.rules.collections)
    owed: Owed = {}
    for case, facts, actions in decided:
        if case.status != "open" or case.plan_active or facts.view.cured or facts.view.paused:
            continue
        bill_ids = bills_awaiting_notice(
            (BillNotice(b.bill_id, b.due_date, b.report_notice_on) for b in slice_facts.bills.get(case.account_id, [])),
            ctx.business_date,
        )
        customer = slice_facts.customers.get(case.account_id)
        channel = notice_channel(is_own_phone(customer.phone if customer else "", facts.view))
        planned_today = any(a.template == strategy.bureau_notice_template for a in actions)
        if bill_ids and (channel is NoticeChannel.LETTER or not planned_today):
            owed[case.account_id] = (case, facts, bill_ids, channel)
    return owed


def plan_notices(
    session: Session, state: DayState, emit: Emit, owed: Owed, slice_facts: SliceFacts, ctx: JobContext
) -> dict[str, int]:
    """Queue the notice SMS of each case owed one (unless an earlier day's is still queued),
    or create its letter task when the customer's own phone is not known."""
    if not owed:
        return {}
    strategy, _ = strategy_and_templates(ctx.rules.collections)
    template = strategy.bureau_notice_template
    keys = {
        account_id: plan_key(
            account_id, ctx.business_date, channel.value, template if channel is NoticeChannel.SMS else "letter"
        )
        for account_id, (_, _, _, channel) in owed.items()
    }
    planned = state.plan_keys | set(
        session.scalars(select(ContactAttempt.plan_key).where(ContactAttempt.plan_key.in_(sorted(keys.values())))).all()
    )
    queued = set(
        session.scalars(
            select(ContactAttempt.account_id).where(
                ContactAttempt.account_id.in_(sorted(owed)),
                ContactAttempt.template == template,
                ContactAttempt.channel == "sms",
                ContactAttempt.status.in_(("queued", "sending")),
            )
        ).all()
    )
    counts: dict[str, int] = {}
    for account_id, (case, facts, bill_ids, channel) in owed.items():
        key = keys[account_id]
        if key in planned or (channel is NoticeChannel.SMS and account_id in queued):
            continue
        state.plan_keys.add(key)
        if channel is NoticeChannel.SMS:
            session.add(
                ContactAttempt(
                    plan_key=key,
                    account_id=account_id,
                    business_date=ctx.business_date,
                    channel="sms",
                    kind=ActionKind.SMS.value,
                    template=template,
                    stage=facts.view.stage.value,
                    dpd=facts.view.dpd,
                    trigger=NOTICE_TRIGGER,
                    bill_id=bill_ids[0],
                    status="queued",
                    planned_for=utc(planning_instant(ctx)),
                    deferrals=0,
                    send_attempts=0,
                )
            )
            counts["notices_queued"] = counts.get("notices_queued", 0) + 1
        else:
            _notice_letter(session, emit, case, facts, bill_ids, slice_facts, ctx, key)
            counts["letters_created"] = counts.get("letters_created", 0) + 1
    return counts


# The trigger recorded on a notice planned because an overdue bill had none.
NOTICE_TRIGGER = "pre_report_notice"


def _notice_letter(
    session: Session,
    emit: Emit,
    case: CollectionCase,
    facts: CaseFacts,
    bill_ids: list[str],
    slice_facts: SliceFacts,
    ctx: JobContext,
    key: str,
) -> None:
    """A letter task as the notice (no own phone): created, recorded, and counted as the
    notice of the bills on the day (collection.task.created, collection.notice.sent)."""
    strategy, _ = strategy_and_templates(ctx.rules.collections)
    task_id = str(uuid.uuid5(MESSAGE_ID_NAMESPACE, key))
    due_by = ctx.business_date + timedelta(days=TASK_DUE_DAYS["letter"])
    stage = facts.view.stage.value
    session.add(
        CollectorTask(
            task_id=task_id,
            account_id=case.account_id,
            kind="letter",
            stage=stage,
            dpd=facts.view.dpd,
            amount_fen=facts.amount_fen,
            trigger=NOTICE_TRIGGER,
            created_on=ctx.business_date,
            due_by=due_by,
            status="open",
        )
    )
    session.add(
        ContactAttempt(
            plan_key=key,
            account_id=case.account_id,
            business_date=ctx.business_date,
            channel="letter",
            kind="letter",
            template=strategy.bureau_notice_template,
            stage=stage,
            dpd=facts.view.dpd,
            trigger=NOTICE_TRIGGER,
            bill_id=bill_ids[0],
            task_id=task_id,
            status="task_created",
            planned_for=utc(planning_instant(ctx)),
            deferrals=0,
            send_attempts=0,
        )
    )
    for bill in slice_facts.bills.get(case.account_id, []):
        if bill.bill_id in bill_ids:
            bill.report_notice_on = ctx.business_date
    emit(
        "collection.task.created",
        p.CollectionTaskCreated(
            task_id=task_id,
            account_id=case.account_id,
            kind="letter",
            stage=stage,
            due_by=due_by,
        ),
        case.account_id,
    )
    emit(
        "collection.notice.sent",
        p.CollectionNoticeSent(
            notice_id=task_id,
            account_id=case.account_id,
            channel="letter",
            bill_ids=bill_ids,
            business_date=ctx.business_date,
            sent_at=planning_instant(ctx),
        ),
        case.account_id,
    )


def record_notices(ctx: JobContext, session: Session, emit: Emit, sent: list[ContactAttempt], now: datetime) -> None:
    """A notice SMS handed to the gateway is the pre-report notice of the account's overdue
    bills not yet noticed (RULES 6.10): recorded on them, announced by collection.notice.sent."""
    strategy, _ = strategy_and_templates(ctx.rules.collections)
    notices = {c.account_id: c for c in sent if c.template == strategy.bureau_notice_template}
    if not notices:
        return
    bills = session.scalars(
        select(Bill)
        .where(
            Bill.account_id.in_(sorted(notices)),
            Bill.unpaid_fen > Bill.disputed_fen + ctx.rules.overdue.arrears_tolerance_fen,
            Bill.plan_id.is_(None),
            Bill.due_date < ctx.business_date,
            Bill.report_notice_on.is_(None),
        )
        .order_by(Bill.account_id, Bill.due_date, Bill.bill_id)
        .with_for_update()
    ).all()
    by_account: dict[str, list[Bill]] = {}
    for bill in bills:
        by_account.setdefault(bill.account_id, []).append(bill)
    for account_id, noticed in by_account.items():
        for bill in noticed:
            bill.report_notice_on = ctx.business_date
        emit(
            "collection.notice.sent",
            p.CollectionNoticeSent(
                notice_id=notices[account_id].message_id or str(notices[account_id].id),
                account_id=account_id,
                channel="sms",
                bill_ids=[b.bill_id for b in noticed],
                business_date=ctx.business_date,
                sent_at=now,
            ),
            account_id,
        )
