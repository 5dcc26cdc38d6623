"""``repayment.applied`` set-based: a run of payments in a handful of statements.

Every payment accounts applies reaches collections, so collections takes them as a run
(``BatchHandler``; a run of one is the same code) and leaves the rows that applying its
events one after the other, in message order, leaves:

1. the run's payment ids already stored, in one ``SELECT``;
2. the bills the run's principal allocations name, in one ``SELECT``;
3. the run's cases, locked in one ``SELECT ... FOR UPDATE`` (pk order); the missing ones
   created as ``ensure_case`` creates them (open, opened on the date of the account's
   first payment in the run) with ``INSERT ... ON CONFLICT DO NOTHING`` in account order,
   then locked too. A case another worker creates at the same time is not an error: the
   insert waits for it and skips it, the lock that follows finds it;
4. every payment folded over those rows in Python, in message order, with the same rules:
   a payment id counts once (stored before, or earlier in the run: skipped whole, since
   accounts answers a retried payment with the same ``repayment.applied`` again); a bill's unpaid
   principal goes down by the principal allocated to it unless the bill's snapshot
   (``state_seq``) already includes the payment; the case takes the payment's total
   overdue unless its delinquency snapshot includes it (both
   ``shared.snapshot_order.included_in_snapshot``). Neither guard moves a sequence, so
   two payments of one account in a run compose as one after the other;
5. one ``INSERT .. ON CONFLICT DO NOTHING`` of the new repayments (a payment another
   worker stores at the same time is the same payment); bills and cases are ORM objects of the session, so
   the flush writes what changed (one executemany each) and a handler later in the
   transaction reads the new state.

Allocations to plans and to charges (penalty interest, late fees) change nothing here.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from services.collections.casebook import first_dates, lock_cases
from services.collections.models import Bill, Repayment
from shared.bus.handling import HandlerContext
from shared.db import upsert
from shared.events import payloads as p
from shared.money import to_fen
from shared.snapshot_order import included_in_snapshot


def _principal(event: p.RepaymentApplied) -> Iterable[p.Allocation]:
    """The allocations that pay a bill's principal (the only ones collections counts)."""
    return (a for a in event.allocations if a.target == "bill" and a.component == "principal")


def repayment_applied_batch(items: list[tuple[HandlerContext, p.RepaymentApplied]]) -> None:
    """A run of applied payments (one in the guarded retry pass), applied one after the other in order."""
    if not items:
        return
    session = items[0][0].session
    session.flush()  # what earlier handlers of this transaction changed, before reading

    known = _known_payments(session, {event.payment_id for _, event in items})
    bills = _bills(session, {a.target_id for _, event in items for a in _principal(event)})
    cases = lock_cases(session, first_dates((event.account_id, ctx.event_date) for ctx, event in items))

    repayments: list[dict[str, Any]] = []
    for ctx, event in items:
        seq = ctx.envelope.sequence
        if event.payment_id in known:
            continue  # counted once: accounts answers a retried payment with the same payload again
        known.add(event.payment_id)
        repayments.append(
            {
                "payment_id": event.payment_id,
                "account_id": event.account_id,
                "amount_fen": to_fen(event.amount),
                "applied_on": ctx.event_date,
            }
        )
        for allocation in _principal(event):
            bill = bills.get(allocation.target_id)
            if bill is None or included_in_snapshot(sequence=seq, snapshot_sequence=bill.state_seq):
                continue
            bill.unpaid_fen = max(0, bill.unpaid_fen - to_fen(allocation.amount))
        case = cases[event.account_id]
        if not included_in_snapshot(sequence=seq, snapshot_sequence=case.delinquency_seq):
            case.total_overdue_fen = to_fen(event.total_overdue)
    upsert(session, Repayment.__table__, repayments, key="payment_id")


def _known_payments(session: Session, payment_ids: set[str]) -> set[str]:
    query = select(Repayment.payment_id).where(Repayment.payment_id.in_(sorted(payment_ids)))
    return set(session.scalars(query))


def _bills(session: Session, bill_ids: set[str]) -> dict[str, Bill]:
    if not bill_ids:
        return {}
    # populate_existing: read afresh (the session was flushed, so nothing pending is lost)
    query = select(Bill).where(Bill.bill_id.in_(sorted(bill_ids))).execution_options(populate_existing=True)
    return {bill.bill_id: bill for bill in session.scalars(query)}
