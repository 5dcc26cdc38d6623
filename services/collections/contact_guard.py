"""The last check before a contact goes out: a run of queued contacts is claimed and each
re-checked by the compliance guard in one transaction (suppressed, deferred to the next
window, or made ready with its rendered message, kept so that a retry resends the same).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from services.collections.casebook import (
    CaseFacts,
    Emit,
    SliceFacts,
    aware,
    contact_histories,
    history_view,
    strategy_and_templates,
    suppress,
    utc,
)
from services.collections.domain import (
    ActionKind,
    ContactRequest,
    TemplateCatalog,
    check_contact,
    mask_phone,
    render,
)
from services.collections.domain.notices import (
    SKIPPED_PAST_DATE,
)
from services.collections.models import (
    CollectionCase,
    ContactAttempt,
    Customer,
    SmsMessage,
)
from services.collections.sms_gateway import (
    OutgoingSms,
)
from services.collections.slices import MESSAGE_ID_NAMESPACE, BufferedEmit
from shared.clock import at_local
from shared.db import transaction
from shared.events import payloads as p
from shared.jobs import JobContext
from shared.money import from_fen


# A contact handed to the gateway less than this long ago is in flight in another
# dispatcher (runs can overlap): left alone. Older, its dispatcher died: resent with the
# same message_id, which the gateway dedups.
IN_FLIGHT = timedelta(minutes=2)


@dataclass(frozen=True)
class Prepared:
    """A contact that passed the guard and is about to go to the gateway."""

    contact_id: int
    sms: OutgoingSms


def prepare_run(ctx: JobContext, contact_ids: list[int], now: datetime) -> list[Prepared | str]:
    """Claim the run's contacts and re-check each with the compliance guard (in one
    transaction, after the claim): suppress, defer, or get it ready to send."""
    rules = ctx.rules.collections
    with transaction(ctx.engine) as session:
        # SKIP LOCKED: a contact another dispatcher holds is its to send (SQLite, one writer
        # at a time, renders no lock clause)
        query = (
            select(ContactAttempt)
            .where(ContactAttempt.id.in_(contact_ids))
            .order_by(ContactAttempt.id)
            .with_for_update(skip_locked=True)
        )
        claimed = {c.id: c for c in session.scalars(query).all()}
        outcomes: dict[int, Prepared | str] = {}
        ready: list[ContactAttempt] = []
        for contact_id in contact_ids:
            contact = claimed.get(contact_id)
            if contact is None or contact.status not in ("queued", "sending"):
                outcomes[contact_id] = "skipped"
            elif (
                contact.status == "sending"
                and contact.attempted_at is not None
                and aware(contact.attempted_at) > now - IN_FLIGHT
            ):
                outcomes[contact_id] = "in_flight"
            else:
                ready.append(contact)
        if ready:
            accounts = sorted({c.account_id for c in ready})
            cases = {
                c.account_id: c
                for c in session.scalars(select(CollectionCase).where(CollectionCase.account_id.in_(accounts))).all()
            }
            slice_facts = SliceFacts.load(
                session,
                list(cases.values()),
                tolerance_fen=ctx.rules.overdue.arrears_tolerance_fen,
                bill_ids=[c.bill_id for c in ready if c.bill_id],
            )
            customers = dict(slice_facts.customers)
            missing = [a for a in accounts if a not in customers]
            if missing:
                customers.update(
                    {
                        c.account_id: c
                        for c in session.scalars(select(Customer).where(Customer.account_id.in_(missing))).all()
                    }
                )
            histories = contact_histories(session, accounts)
            messages = {
                m.contact_id: m
                for m in session.scalars(
                    select(SmsMessage).where(SmsMessage.contact_id.in_([c.id for c in ready]))
                ).all()
            }
            emit = BufferedEmit(now)
            for contact in ready:
                case = cases.get(contact.account_id)
                facts = (
                    slice_facts.facts(case, ctx.business_date, rules, contact_bill_id=contact.bill_id) if case else None
                )
                outcomes[contact.id] = _judge_contact(
                    ctx,
                    session,
                    emit,
                    contact,
                    facts,
                    customers.get(contact.account_id),
                    histories.get(contact.account_id, []),
                    messages.get(contact.id),
                    slice_facts,
                    now,
                )
            emit.flush(ctx, session)
        return [outcomes[contact_id] for contact_id in contact_ids]


def _judge_contact(
    ctx: JobContext,
    session: Session,
    emit: Emit,
    contact: ContactAttempt,
    facts: CaseFacts | None,
    customer: Customer | None,
    history: list[tuple[int, str, datetime]],
    existing: SmsMessage | None,
    slice_facts: SliceFacts,
    now: datetime,
) -> Prepared | str:
    """The guard's verdict on one claimed contact, recorded on it."""
    rules = ctx.rules.collections
    if facts is None:
        suppress(emit, contact, "cured")
        return "suppressed"
    if _missed(contact, ctx):
        suppress(emit, contact, SKIPPED_PAST_DATE)
        return "suppressed"
    request = ContactRequest(
        kind=ActionKind(contact.kind), phone=customer.phone if customer else "", template=contact.template
    )
    decision = check_contact(request, history_view(history, exclude_id=contact.id), facts.view, now, rules.compliance)
    if decision.deferred:
        assert decision.next_window_start is not None and decision.reason is not None
        contact.planned_for = utc(decision.next_window_start)
        contact.deferrals += 1
        contact.reason = decision.reason.value
        emit(
            "contact.suppressed",
            p.ContactSuppressed(
                account_id=contact.account_id,
                channel=contact.channel,
                template=contact.template,
                reason=decision.reason.value,
            ),
            contact.account_id,
        )
        return "deferred"
    if not decision.allowed:
        assert decision.reason is not None
        suppress(emit, contact, decision.reason.value)
        return "suppressed"
    assert customer is not None
    sms = _message_for(session, contact, customer, facts, existing, slice_facts, ctx)
    contact.status, contact.attempted_at, contact.message_id = "sending", utc(now), sms.message_id
    contact.send_attempts += 1
    return Prepared(contact.id, sms)


def _missed(contact: ContactAttempt, ctx: JobContext) -> bool:
    """A contact that was due on an earlier date and never went (the dispatcher did not
    run then): not made late (RULES 6.11), except the pre-report notice, owed whatever the
    date. A deferred or retried contact is due again today: its planned_for was moved."""
    strategy, _ = strategy_and_templates(ctx.rules.collections)
    return contact.template != strategy.bureau_notice_template and aware(contact.planned_for) < at_local(
        ctx.business_date, "00:00"
    )


def _message_for(
    session: Session,
    contact: ContactAttempt,
    customer: Customer,
    facts: CaseFacts,
    existing: SmsMessage | None,
    slice_facts: SliceFacts,
    ctx: JobContext,
) -> OutgoingSms:
    """Render the template (masked name only) and keep the message; a retry reuses it."""
    if existing is not None:
        return OutgoingSms(existing.message_id, customer.phone, existing.text, existing.segments)
    _, catalog = strategy_and_templates(ctx.rules.collections)
    rendered = _render(catalog, contact, customer, facts, slice_facts, ctx)
    message_id = str(uuid.uuid5(MESSAGE_ID_NAMESPACE, f"contact:{contact.id}:{contact.plan_key}"))
    session.add(
        SmsMessage(
            message_id=message_id,
            idempotency_key=message_id,
            contact_id=contact.id,
            account_id=contact.account_id,
            template=contact.template,
            phone_masked=mask_phone(customer.phone),
            text=rendered.text,
            segments=rendered.segments,
            status="queued",
            gateway_attempts=0,
        )
    )
    return OutgoingSms(message_id, customer.phone, rendered.text, rendered.segments)


def _render(
    catalog: TemplateCatalog,
    contact: ContactAttempt,
    customer: Customer,
    facts: CaseFacts,
    slice_facts: SliceFacts,
    ctx: JobContext,
) -> Any:
    """The text with today's figures: the amount due now, its due date, today's DPD."""
    compliance = ctx.rules.collections.compliance
    due_on: date | None = None
    if contact.kind == "plan_reminder" and facts.installment is not None:
        due_on = facts.installment.due_date
    else:
        bill = slice_facts.bills_by_id.get(contact.bill_id) if contact.bill_id else facts.bill
        due_on = bill.due_date if bill is not None else None
    fields = {
        "name": customer.name,
        "amount": from_fen(facts.amount_fen),
        "due_date": due_on or ctx.business_date,
        "dpd": max(facts.view.dpd, 0),
        "link": ctx.settings.sms_repayment_link,
    }
    template = catalog.get(contact.template)
    return render(
        template,
        {k: v for k, v in fields.items() if k in template.fields},
        single_segment_chars=compliance.sms_segment_chars,
        concat_segment_chars=compliance.sms_concat_segment_chars,
    )
