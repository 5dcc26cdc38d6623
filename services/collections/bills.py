"""``bill.issued`` set-based: a statement run's bills in a handful of statements.

The statements job issues a bill for every account of a cycle day at once, so
collections takes them as a run (``BatchHandler``) instead of one at a time, and leaves
what applying them one by one in message order leaves (``handlers.bill_issued``, the
reference; ``tests/integration/collections/test_bill_issued_batch.py`` holds the two
equal):

1. the run's bill ids already stored, in one ``SELECT``;
2. the run's cases, locked and read afresh in one ``SELECT ... FOR UPDATE``, the missing
   ones created first as ``ensure_case`` would (``casebook.lock_cases``);
3. the events folded over those in Python, in message order: a bill is stored once, a
   cured case reopens for a bill issued on or after its cure, a case opened before any
   episode takes the statement date;
4. one ``INSERT .. ON CONFLICT DO NOTHING`` of the new bills (a bill an overdue snapshot
   stores at the same time is that snapshot's); the cases are ORM objects of the session,
   so the flush writes what changed and a later handler of the transaction reads it.
"""
from __future__ import annotations

from datetime import date
from typing import Any

from sqlalchemy import select

from services.collections.casebook import lock_cases
from services.collections.models import Bill
from shared.bus.handling import HandlerContext
from shared.db import upsert_insert
from shared.events import payloads as p
from shared.money import to_fen

BILLS = Bill.__table__


def bill_issued_batch(items: list[tuple[HandlerContext, p.BillIssued]]) -> None:
    """A run of new bills (one in the guarded retry pass), as one by one in order."""
    if not items:
        return
    from services.collections import handlers as reference  # handlers imports this module to register it

    session = items[0][0].session
    insert = upsert_insert(session)
    session.flush()  # what earlier handlers of this transaction changed, before reading
    known = set(session.scalars(select(Bill.bill_id).where(Bill.bill_id.in_(sorted({e.bill_id for _, e in items})))))
    opened_on: dict[str, date] = {}
    for _, event in items:
        opened_on.setdefault(event.account_id, event.statement_date)
    cases = lock_cases(session, insert, opened_on)
    new_bills: list[dict[str, Any]] = []
    for _, event in items:
        case = cases[event.account_id]
        if event.bill_id not in known:
            known.add(event.bill_id)
            amount = to_fen(event.amount)
            new_bills.append({"bill_id": event.bill_id, "account_id": event.account_id, "due_date": event.due_date,
                              "amount_fen": amount, "unpaid_fen": amount, "dpd": 0})
        reference._reopen_if_due(case, event.statement_date)
        if case.opened_on is None:
            case.opened_on = event.statement_date
    if new_bills:
        session.execute(insert(BILLS).on_conflict_do_nothing(index_elements=[BILLS.c.bill_id]), new_bills)
