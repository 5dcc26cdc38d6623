"""``account.cured`` set-based: a run of cures in a handful of statements.

Every payment that clears an account's overdue sends a cure, so a morning of payments
sends thousands; one at a time, each cost a dozen statements (the case locked, its bills,
its queued contacts, its open tasks read, each read flushing what came before). The run
leaves the rows and the events that applying its cures one by one, in message order,
leaves (``handlers.account_cured``, the reference, held equal by
``tests/integration/collections/test_cured_batch.py``):

1. the run's cases locked (``lock_cases``: pk order, the missing ones created as
   ``ensure_case`` would); their unpaid bills, queued contacts (locked) and open tasks,
   one ``SELECT`` each;
2. every cure folded over those objects in message order, with the reference's rules:
   the snapshot guard (``_newer``), the overdue zeroed, then, outside a plan, the queued
   contacts suppressed (``contact.suppressed``, in id order), the case closed (cured;
   its open tasks cancelled) and the pending promises kept;
3. the flush writes what changed (one executemany a table); the promises, as in the
   reference, by a Core ``UPDATE`` per business date.
"""
from __future__ import annotations

from collections import defaultdict
from datetime import date
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from services.collections.casebook import begin_run, close_case, lock_cases, suppress
from services.collections.models import Bill, CollectorTask, ContactAttempt, PromiseToPay
from shared.bus.handling import HandlerContext
from shared.events import payloads as p


def account_cured_batch(items: list[tuple[HandlerContext, p.AccountCured]]) -> None:
    """A run of cures (one in the guarded retry pass), as one by one in order."""
    if not items:
        return
    from services.collections import handlers as reference  # handlers imports this module

    begun = begin_run(items, reference.account_cured)
    if begun is None:  # a database without an upsert: applied one event at a time
        return
    session, insert = begun

    first_date: dict[str, date] = {}
    for _, event in items:
        first_date.setdefault(event.account_id, event.business_date)
    cases = lock_cases(session, insert, first_date)
    accounts = sorted(first_date)
    bills = _by_account(session, select(Bill).where(Bill.account_id.in_(accounts), Bill.unpaid_fen > 0))
    contacts = _by_account(session, select(ContactAttempt).where(
        ContactAttempt.account_id.in_(accounts), ContactAttempt.status.in_(("queued", "sending")),
    ).order_by(ContactAttempt.id).with_for_update())
    tasks = _by_account(session, select(CollectorTask).where(
        CollectorTask.account_id.in_(accounts), CollectorTask.status == "open"))

    kept_on: dict[str, date] = {}  # account -> the business date its pending promises were kept on
    with session.no_autoflush:
        for ctx, event in items:
            account, on = event.account_id, event.business_date
            case = cases[account]
            if not reference._newer(case.delinquency_as_of, case.delinquency_seq, on, ctx.envelope.sequence):
                continue
            case.delinquency_as_of, case.delinquency_seq = on, ctx.envelope.sequence
            case.max_dpd, case.overdue_principal_fen, case.total_overdue_fen = 0, 0, 0
            for bill in bills.get(account, ()):
                if bill.due_date < on and bill.unpaid_fen > 0:
                    bill.unpaid_fen = 0
            if case.plan_active:
                continue  # the plan's bills left DPD; its own reminders go on
            for contact in contacts.get(account, ()):
                if contact.status in ("queued", "sending"):
                    suppress(ctx.emit, contact, "cured")
            close_case(session, ctx.emit, case, "cured", on, open_tasks=tasks.get(account, []))
            kept_on.setdefault(account, on)  # a later cure of the run finds none pending
    _keep_promises(session, kept_on)


def _by_account(session: Session, query: Any) -> dict[str, list[Any]]:
    """The rows of ``query`` (read afresh: the session was flushed) grouped by account, in order."""
    grouped: dict[str, list[Any]] = defaultdict(list)
    for row in session.scalars(query.execution_options(populate_existing=True)):
        grouped[row.account_id].append(row)
    return grouped


def _keep_promises(session: Session, kept_on: dict[str, date]) -> None:
    """Pending promises of the cured accounts are kept, decided on the cure's business date."""
    by_date: dict[date, list[str]] = defaultdict(list)
    for account, on in kept_on.items():
        by_date[on].append(account)
    for on, accounts in sorted(by_date.items()):
        session.execute(PromiseToPay.__table__.update().where(
            PromiseToPay.account_id.in_(sorted(accounts)), PromiseToPay.status == "pending",
        ).values(status="kept", decided_on=on))
