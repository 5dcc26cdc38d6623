"""``account.cured``: no overdue left, so the case closes (cured) and whatever was still
queued is suppressed; a run of cures in a handful of statements.

Every payment that clears an account's overdue sends a cure, so a morning of payments
sends thousands, taken as a run (a run of one is the same code;
``tests/integration/collections/test_cured_batch.py`` holds runs of every length equal):

1. the run's cases locked (``lock_cases``: pk order, the missing ones created as
   ``ensure_case`` would); their unpaid bills, queued contacts (locked) and open tasks,
   one ``SELECT`` each;
2. every cure folded over those objects in message order: the snapshot guard
   (``shared.snapshot_order``), the overdue zeroed, then, outside a plan, the queued
   contacts suppressed (``contact.suppressed``, in id order), the case closed (cured;
   its open tasks cancelled) and the pending promises kept;
3. the flush writes what changed (one executemany a table); the promises by a Core
   ``UPDATE`` per business date (``casebook.keep_pending_promises``).
"""

from __future__ import annotations

from collections import defaultdict
from datetime import date
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from services.collections.casebook import close_case, first_dates, keep_pending_promises, lock_cases, suppress
from services.collections.models import Bill, CollectorTask, ContactAttempt
from shared.bus.handling import HandlerContext
from shared.events import payloads as p
from shared.snapshot_order import supersedes


def account_cured_batch(items: list[tuple[HandlerContext, p.AccountCured]]) -> None:
    """A run of cures (one in the guarded retry pass), applied one after the other in order."""
    if not items:
        return
    session = items[0][0].session
    session.flush()  # what earlier handlers of this transaction changed, before reading
    first_date = first_dates((event.account_id, event.business_date) for _, event in items)
    cases = lock_cases(session, first_date)
    accounts = sorted(first_date)
    bills = _by_account(session, select(Bill).where(Bill.account_id.in_(accounts), Bill.unpaid_fen > 0))
    contacts = _by_account(
        session,
        select(ContactAttempt)
        .where(
            ContactAttempt.account_id.in_(accounts),
            ContactAttempt.status.in_(("queued", "sending")),
        )
        .order_by(ContactAttempt.id)
        .with_for_update(),
    )
    tasks = _by_account(
        session, select(CollectorTask).where(CollectorTask.account_id.in_(accounts), CollectorTask.status == "open")
    )

    kept_on: dict[str, date] = {}  # account -> the business date its pending promises were kept on
    with session.no_autoflush:
        for ctx, event in items:
            account, on = event.account_id, event.business_date
            case = cases[account]
            if not supersedes(
                business_date=on,
                sequence=ctx.envelope.sequence,
                stored_date=case.delinquency_as_of,
                stored_sequence=case.delinquency_seq,
            ):
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
    keep_pending_promises(session, kept_on)


def _by_account(session: Session, query: Any) -> dict[str, list[Any]]:
    """The rows of ``query`` (read afresh: the session was flushed) grouped by account, in order."""
    grouped: dict[str, list[Any]] = defaultdict(list)
    for row in session.scalars(query.execution_options(populate_existing=True)):
        grouped[row.account_id].append(row)
    return grouped
