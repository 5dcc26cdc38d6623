"""``repayment.applied`` set-based: a run of payments in a handful of statements.

Every payment accounts applies reaches restructuring, and accounts applies them in runs,
so restructuring takes them as a run (``BatchHandler``): one ``SELECT`` of the bills the
run's allocations name, the bill allocations folded over those rows in memory in message
order (as ``handlers.repayment_applied`` applies them one by one), one upsert of the bills.
Money routed to a plan goes through the per-event plan logic (``handlers._pay_plan``, in
order, on the ORM rows): plans are few, and a plan payment touches no bill.
``tests/integration/restructuring/test_repayment_batch.py`` holds the run equal to the
reference.
"""
from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from decimal import Decimal

from services.restructuring.models import BillView
from services.restructuring.snapshots import _Row, _RunState, _write
from shared.bus.handling import HandlerContext
from shared.events import payloads as p
from shared.money import to_fen

_REPAYMENT_SET = ("unpaid_principal_fen", "penalty_fen", "late_fee_fen")  # what a payment changes on a bill


def repayment_applied_batch(items: Sequence[tuple[HandlerContext, p.RepaymentApplied]]) -> None:
    """A run of applied payments, same effects as ``handlers.repayment_applied`` on each in order."""
    if not items:
        return
    from services.restructuring import handlers as reference  # handlers imports this module to register it

    session = items[0][0].session
    bill_ids = {a.target_id for _, event in items for a in event.allocations if a.target != "plan"}
    state = _RunState(session, set(), bill_ids, account_bills=False)
    for ctx, event in items:
        to_plans: dict[str, Decimal] = defaultdict(Decimal)
        for allocation in event.allocations:
            if allocation.target == "plan":
                to_plans[allocation.target_id] += allocation.amount
            else:
                bill = state.bill(allocation.target_id, event.account_id)
                reduce_bill(bill, allocation, ctx.envelope.sequence)
                state.changed_bills[bill.bill_id] = bill
        for plan_id, amount in to_plans.items():
            reference._pay_plan(ctx, plan_id, event.payment_id, amount, ctx.event_date)
    _write(session, state, account_set=(), bill_set=_REPAYMENT_SET)


def reduce_bill(bill: BillView | _Row, allocation: p.Allocation, seq: int | None) -> None:
    """A repayment is a delta: it applies unless a snapshot newer than it (which already
    includes it) set the bill's figures. The next daily snapshot corrects any drift.
    (``bill``: the ORM row one at a time, the in-memory row in a run.)"""
    if seq is not None and bill.as_of_seq is not None and seq < bill.as_of_seq:
        return
    fen = to_fen(allocation.amount)
    if allocation.component == "penalty_interest":
        bill.penalty_fen = max(bill.penalty_fen - fen, 0)
    elif allocation.component == "late_fee":
        bill.late_fee_fen = max(bill.late_fee_fen - fen, 0)
    else:
        bill.unpaid_principal_fen = max(bill.unpaid_principal_fen - fen, 0)
