"""``contact_dispatch`` (every minute 08:00–21:00; by hand with --date and --at) sends the
queued contacts due at the job's instant, each re-checked by the compliance guard just
before it goes out (``contact_guard``). Each run of contacts is claimed in one short
transaction, sent outside any, and recorded in another, so a slow provider holds no locks.
"""

from __future__ import annotations

import time
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, select

from services.collections.casebook import (
    Emit,
    utc,
)
from services.collections.models import (
    CollectionCase,
    ContactAttempt,
    SmsMessage,
)
from services.collections.sms_gateway import (
    GatewayReceipt,
    SmsGateway,
    gateway_from_settings,
)
from services.collections.slices import BufferedEmit, in_share, window_start
from services.collections.report_notices import record_notices
from services.collections.contact_guard import IN_FLIGHT, Prepared, prepare_run
from shared.clock import at_local
from shared.db import transaction
from shared.events import payloads as p
from shared.jobs import JobContext, JobResult
from shared.log import get_logger

log = get_logger(__name__)

# Contacts go one by one to the SMS gateway: 500 at the HTTP gateway's timeout budget
# still fit well inside SEND_BUDGET, and what does not is put back unsent anyway.
CONTACTS_PER_SLICE = 500
# Fewer contacts due than this: the dispatcher sends them in one chain, not fanned out
# (``dispatch_worth_fanning_out``).
FAN_OUT_FROM_CONTACTS = 100
MAX_SEND_ATTEMPTS = 5  # dispatch runs that found the gateway down before a contact fails
RETRY_AFTER = timedelta(minutes=1)
# A run of contacts is claimed together; what is not handed to the gateway within this
# long of the claim goes back to the queue unsent (well before IN_FLIGHT runs out).
SEND_BUDGET = IN_FLIGHT.total_seconds() / 2


def dispatch_instant(ctx: JobContext) -> datetime:
    """The moment the dispatcher acts as: --at when given; beat gives no --at, so then the
    job clock's now when it is on the business date; else (a past date by hand) the window's
    opening of that date."""
    if ctx.at:
        return ctx.instant
    now = ctx.clock.now()
    if at_local(ctx.business_date, "00:00") <= now < at_local(ctx.business_date + timedelta(days=1), "00:00"):
        return now
    return window_start(ctx)


def contact_dispatch(ctx: JobContext, gateway: SmsGateway | None = None) -> JobResult:
    """Send the queued contacts due at the job's instant (one slice).

    The slice goes in runs of contacts of distinct accounts, in the slice's order: each run
    is claimed and re-checked by the guard in one transaction (a few set-based reads),
    then sent one by one outside any transaction, then recorded in one transaction. A
    run never holds two contacts of one account, so each contact is judged against
    everything recorded for its account before it, exactly as one at a time."""
    now = dispatch_instant(ctx)
    gateway = gateway or gateway_from_settings(ctx.settings)
    with transaction(ctx.engine) as session:
        query = (
            select(ContactAttempt.id, ContactAttempt.account_id)
            .where(
                *_due_contacts(now),
                *in_share(ctx, _case_pk_of_contact()),
            )
            .order_by(ContactAttempt.planned_for, ContactAttempt.id)
            .limit(CONTACTS_PER_SLICE)
        )
        due = [(contact_id, account_id) for contact_id, account_id in session.execute(query).all()]
    # the chain's counts so far, carried from slice to slice: the summary is the chain's
    totals: dict[str, int] = dict(ctx.state.get("totals", {}))
    totals["contacts"] = totals.get("contacts", 0) + len(due)
    for run in _runs_of_distinct_accounts(due):
        for outcome in _dispatch_run(ctx, run, now, gateway):
            totals[outcome] = totals.get(outcome, 0) + 1
    more = len(due) == CONTACTS_PER_SLICE
    return JobResult(summary={"at": now.isoformat(), **totals}, more=more, state={"totals": totals} if more else {})


def dispatch_worth_fanning_out(ctx: JobContext) -> bool:
    """Fan the dispatcher out only when enough contacts are due for two job processes to
    beat one: most runs after the morning's find a handful (deferred ones, retries), and a
    fan-out costs two more task round trips than sending those in this task."""
    with transaction(ctx.engine) as session:
        due = select(ContactAttempt.id).where(*_due_contacts(dispatch_instant(ctx))).limit(FAN_OUT_FROM_CONTACTS)
        return session.scalar(select(func.count()).select_from(due.subquery())) >= FAN_OUT_FROM_CONTACTS


def _due_contacts(now: datetime) -> list[Any]:
    """The condition of an SMS contact due to go at ``now``."""
    return [
        ContactAttempt.channel == "sms",
        ContactAttempt.status.in_(("queued", "sending")),
        ContactAttempt.planned_for <= utc(now),
    ]


def _case_pk_of_contact() -> Any:
    """The pk of the contact's case (NULL without one: such a contact is share 0's)."""
    return select(CollectionCase.pk).where(CollectionCase.account_id == ContactAttempt.account_id).scalar_subquery()


def _runs_of_distinct_accounts(due: list[tuple[int, str]]) -> list[list[int]]:
    """The contact ids cut, in order, into runs in which no account appears twice."""
    runs: list[list[int]] = []
    seen: set[str] = set()
    for contact_id, account_id in due:
        if not runs or account_id in seen:
            runs.append([])
            seen = set()
        runs[-1].append(contact_id)
        seen.add(account_id)
    return runs


def _dispatch_run(ctx: JobContext, contact_ids: list[int], now: datetime, gateway: SmsGateway) -> list[str]:
    """Guard, then send, then record: the gateway calls outside any transaction."""
    prepared = prepare_run(ctx, contact_ids, now)
    claimed_at = time.monotonic()
    receipts: list[tuple[Prepared, GatewayReceipt | None]] = []
    try:
        for item in prepared:
            if not isinstance(item, Prepared):
                continue
            if time.monotonic() - claimed_at > SEND_BUDGET:
                # a slow gateway: the rest goes back to the queue unsent rather than sit
                # "sending" until another dispatcher takes it for a dead one
                receipts.append((item, None))
                continue
            receipts.append((item, gateway.send(item.sms)))
    finally:  # what the gateway took is recorded even if a later send blew up
        recorded = _record_sends(ctx, receipts, now) if receipts else {}
    return [recorded.get(item.contact_id, "skipped") if isinstance(item, Prepared) else item for item in prepared]


def _record_sends(ctx: JobContext, sent: list[tuple[Prepared, GatewayReceipt | None]], now: datetime) -> dict[int, str]:
    """What the gateway said, for a run in one transaction: sent (reminder.sent), failed
    for good, or retry next run; no receipt: never handed over, queued again as it was."""
    with transaction(ctx.engine) as session:
        ids = [prepared.contact_id for prepared, _ in sent]
        contacts = {
            c.id: c
            for c in session.scalars(
                select(ContactAttempt).where(ContactAttempt.id.in_(ids)).order_by(ContactAttempt.id).with_for_update()
            ).all()
        }
        messages = {
            m.message_id: m
            for m in session.scalars(
                select(SmsMessage).where(SmsMessage.message_id.in_([prepared.sms.message_id for prepared, _ in sent]))
            ).all()
        }
        emit = BufferedEmit(now)
        outcomes = {
            prepared.contact_id: _record_send(
                ctx, emit, contacts.get(prepared.contact_id), messages.get(prepared.sms.message_id), receipt, now
            )
            for prepared, receipt in sent
        }
        record_notices(
            ctx,
            session,
            emit,
            [contacts[prepared.contact_id] for prepared, _ in sent if outcomes.get(prepared.contact_id) == "sent"],
            now,
        )
        emit.flush(ctx, session)
        return outcomes


def _record_send(
    ctx: JobContext,
    emit: Emit,
    contact: ContactAttempt | None,
    message: SmsMessage | None,
    receipt: GatewayReceipt | None,
    now: datetime,
) -> str:
    """What the gateway said about one contact."""
    assert contact is not None and message is not None
    if contact.status != "sending" or contact.message_id != message.message_id:
        return "skipped"  # another dispatcher already recorded it
    if receipt is None:  # not sent (out of time): due again at once, this attempt not counted
        contact.status, contact.send_attempts = "queued", contact.send_attempts - 1
        return "requeued"
    message.gateway_attempts += receipt.attempts
    message.gateway_response = receipt.response[:1000]
    if receipt.accepted:
        contact.status, contact.sent_at, contact.reason = "sent", utc(now), None
        message.status, message.sent_at = "sent", utc(now)
        emit(
            "reminder.sent",
            p.ReminderSent(
                message_id=message.message_id,
                account_id=contact.account_id,
                channel="sms",
                template=contact.template,
                stage=contact.stage,
                business_date=ctx.business_date,
                sent_at=now,
                segments=message.segments,
            ),
            contact.account_id,
        )
        return "sent"
    if receipt.permanent or contact.send_attempts >= MAX_SEND_ATTEMPTS:
        contact.status, contact.reason = "failed", "gateway_rejected" if receipt.permanent else "gateway_down"
        message.status = "failed"
        log.warning("sms_failed", message_id=message.message_id, account_id=contact.account_id, reason=contact.reason)
        return "failed"
    contact.status, contact.planned_for = "queued", utc(now + RETRY_AFTER)
    return "retry"
