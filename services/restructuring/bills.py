"""``bill.issued`` and ``bill.overdue`` set-based: a night's bills in a handful of statements.

The statements job issues a bill for every account of a cycle day at once, and the close
after its due date sends ``bill.overdue`` for every one left unpaid, so restructuring
takes each as a run (``BatchHandler``): one ``SELECT`` of the run's accounts and one of
their bills, the events folded over the rows in memory in message order (as
``handlers.bill_issued`` and ``handlers.bill_overdue`` apply them one by one, the first
overdue of an episode assessing the risk on the in-memory rows as the snapshots do), one
upsert of the accounts and one of the bills, one insert of the assessments and one of
their ``risk.assessed``. The per-event handlers stay as the references;
``tests/integration/restructuring/test_bill_*_batch.py`` hold them equal.
"""
from __future__ import annotations

from collections.abc import Sequence

from typing import Any

from services.restructuring import store
from services.restructuring.models import BillView
from services.restructuring.snapshots import _RISK, _assess, _Row, _RunState, _upsert, _write
from shared.bus.handling import HandlerContext
from shared.bus.outbox import PendingEvent
from shared.events import payloads as p
from shared.money import to_fen

# What a bill.issued may change on a stored bill; an account row it creates is left as
# it is if another writer created it first.
_BILL_ISSUED_SET = ("statement_date", "due_date", "amount_fen", "unpaid_principal_fen")


def bill_issued_batch(items: Sequence[tuple[HandlerContext, p.BillIssued]]) -> None:
    """A run of new bills, same effects as ``handlers.bill_issued`` on each in order: unpaid in
    full, unless a repayment or a snapshot already said otherwise about the bill."""
    if not items:
        return
    session = items[0][0].session
    state = _RunState(session, {event.account_id for _, event in items}, {event.bill_id for _, event in items},
                      account_bills=False)
    for _, event in items:
        state.account(event.account_id)
        bill = state.bill(event.bill_id, event.account_id)
        first_news = bill.amount_fen is None and bill.as_of_date is None and bill.as_of_seq is None
        bill.statement_date, bill.due_date = event.statement_date, event.due_date
        bill.amount_fen = to_fen(event.amount)
        if first_news:
            bill.unpaid_principal_fen = bill.amount_fen
        state.changed_bills[bill.bill_id] = bill
    _write(session, state, account_set=(), bill_set=_BILL_ISSUED_SET)


def record_overdue(bill: BillView | _Row, event: p.BillOverdue, seq: int | None) -> None:
    """The overdue figures on the bill, unless a newer snapshot set them (``bill``: the ORM
    row one at a time, the in-memory row in a run)."""
    bill.due_date = bill.due_date or event.due_date
    bill.overdue_on = min(bill.overdue_on or event.business_date, event.business_date)
    if bill.plan_id is None and store.is_newer(event.business_date, seq, bill.as_of_date, bill.as_of_seq):
        bill.unpaid_principal_fen, bill.dpd = to_fen(event.unpaid_principal), event.dpd
        bill.max_dpd = max(bill.max_dpd, event.dpd)
        bill.as_of_date, bill.as_of_seq = event.business_date, seq


def bill_overdue_batch(items: Sequence[tuple[HandlerContext, p.BillOverdue]]) -> None:
    """A run of bills gone overdue, same effects as ``handlers.bill_overdue`` on each in order:
    the bill's overdue figures unless a newer snapshot set them, and the risk assessed once
    when the bill opens the account's overdue episode."""
    if not items:
        return
    session = items[0][0].session
    state = _RunState(session, {event.account_id for _, event in items}, {event.bill_id for _, event in items})
    assessments: list[dict[str, Any]] = []
    emitted: list[PendingEvent] = []
    for ctx, event in items:
        account = state.account(event.account_id)
        bill = state.bill(event.bill_id, event.account_id)
        record_overdue(bill, event, ctx.envelope.sequence)
        state.changed_bills[bill.bill_id] = bill
        if (account.cured_on is None or event.business_date > account.cured_on) and not account.episode_assessed:
            account.episode_assessed = True
            state.changed_accounts[account.account_id] = account
            _assess(ctx, account, state.bills_of.get(event.account_id, []), event.business_date, assessments, emitted)
    _write(session, state)
    if assessments:
        _upsert(session, _RISK, None, assessments)
    if emitted:
        items[0][0].outbox.emit_many(session, emitted)
