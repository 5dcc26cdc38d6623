"""``risk.assessed`` set-based: the grades of a night's snapshots in a handful of statements.

Restructuring scores every account whose delinquency snapshot it takes, so a night brings
one ``risk.assessed`` per overdue account, in a block. The run leaves the cases that
``handlers.risk_assessed`` one event at a time leaves (held equal by
``tests/integration/collections/test_risk_assessed_batch.py``): the run's cases locked
(``lock_cases``, the missing ones opened on the event's date as ``ensure_case`` would),
each grade taken in message order unless the case holds one of a higher sequence, and
the changed cases written by the flush (one executemany).
"""
from __future__ import annotations

from datetime import date

from services.collections.casebook import begin_run, lock_cases
from shared.bus.handling import HandlerContext
from shared.events import payloads as p


def risk_assessed_batch(items: list[tuple[HandlerContext, p.RiskAssessed]]) -> None:
    """A run of grades (one in the guarded retry pass), as one by one in order."""
    if not items:
        return
    from services.collections import handlers as reference  # handlers imports this module

    begun = begin_run(items, reference.risk_assessed)
    if begun is None:  # a database without an upsert: applied one event at a time
        return
    session, insert = begun
    first_date: dict[str, date] = {}
    for ctx, event in items:
        first_date.setdefault(event.account_id, ctx.event_date)
    cases = lock_cases(session, insert, first_date)
    for ctx, event in items:
        case, seq = cases[event.account_id], ctx.envelope.sequence
        if seq is not None and case.grade_seq is not None and seq < case.grade_seq:
            continue  # an older assessment than the one the case holds
        case.grade, case.grade_seq = event.grade, seq
