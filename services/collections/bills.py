"""``bill.issued``: a new bill; the pre-due reminders count from its due date.

The statements job issues a bill for every account of a cycle day at once, so the bills
are taken as a run (``BatchHandler``; a run of one is the same code):

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

from typing import Any

from sqlalchemy import select

from services.collections.casebook import first_dates, lock_cases, reopen_if_due
from services.collections.models import Bill
from shared.bus.handling import HandlerContext
from shared.db import upsert
from shared.events import payloads as p
from shared.money import to_fen


def bill_issued_batch(items: list[tuple[HandlerContext, p.BillIssued]]) -> None:
    """A run of new bills (one in the guarded retry pass), applied one after the other in order."""
    if not items:
        return
    session = items[0][0].session
    session.flush()  # what earlier handlers of this transaction changed, before reading
    known = set(session.scalars(select(Bill.bill_id).where(Bill.bill_id.in_(sorted({e.bill_id for _, e in items})))))
    cases = lock_cases(session, first_dates((event.account_id, event.statement_date) for _, event in items))
    new_bills: list[dict[str, Any]] = []
    for _, event in items:
        case = cases[event.account_id]
        if event.bill_id not in known:
            known.add(event.bill_id)
            amount = to_fen(event.amount)
            new_bills.append(
                {
                    "bill_id": event.bill_id,
                    "account_id": event.account_id,
                    "due_date": event.due_date,
                    "amount_fen": amount,
                    "unpaid_fen": amount,
                    "dpd": 0,
                }
            )
        reopen_if_due(case, event.statement_date)
        if case.opened_on is None:
            case.opened_on = event.statement_date
    upsert(session, Bill.__table__, new_bills, key="bill_id")
