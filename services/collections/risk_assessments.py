"""``risk.assessed``: the account's grade drives the strategy (grade C until one arrives).

Restructuring scores every account whose delinquency snapshot it takes, so a night brings
one ``risk.assessed`` per overdue account, in a block, taken as a run: the run's cases
locked (``lock_cases``, the missing ones opened on the event's date as ``ensure_case``
would), each grade taken in message order unless the case holds a newer one
(``shared.snapshot_order``: the grade carries no business date, so the sequence decides),
and the changed cases written by the flush (one executemany).
"""

from __future__ import annotations

from services.collections.casebook import first_dates, lock_cases
from shared.bus.handling import HandlerContext
from shared.events import payloads as p
from shared.snapshot_order import supersedes


def risk_assessed_batch(items: list[tuple[HandlerContext, p.RiskAssessed]]) -> None:
    """A run of grades (one in the guarded retry pass), applied one after the other in order."""
    if not items:
        return
    session = items[0][0].session
    session.flush()  # what earlier handlers of this transaction changed, before reading
    cases = lock_cases(session, first_dates((event.account_id, ctx.event_date) for ctx, event in items))
    for ctx, event in items:
        case, seq = cases[event.account_id], ctx.envelope.sequence
        if supersedes(business_date=None, sequence=seq, stored_date=None, stored_sequence=case.grade_seq):
            case.grade, case.grade_seq = event.grade, seq
