"""``repayment.applied``: money that reached bills lowers their unpaid figures; money routed
to a plan pays its installments.

Every payment accounts applies reaches restructuring, and accounts applies them in runs,
so the payments are taken as a run on a
:class:`~services.restructuring.projection.ProjectionRun`: one ``SELECT`` of the bills the
run's allocations name, the bill allocations folded over those rows in memory in message
order, one upsert of the bills. Money routed to a plan goes through
:func:`~services.restructuring.plan_payments.pay_plan`, in order, on the ORM rows: plans
are few, and a plan payment touches no bill.

A payment counts once: the run's payment ids already taken (``applied_payments``, one
``SELECT``), or earlier in the run, are skipped whole. Accounts answers a retried
``repayment.received`` with the first ``repayment.applied`` again, under a new event id
and a newer sequence, which the inbox and the snapshot guard would both let through.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from decimal import Decimal

from sqlalchemy import select

from services.restructuring.models import AppliedPayment
from services.restructuring.plan_payments import pay_plan
from services.restructuring.projection import ProjectionRow, ProjectionRun
from shared.bus.handling import HandlerContext
from shared.db import upsert
from shared.events import payloads as p
from shared.money import to_fen
from shared.snapshot_order import included_in_snapshot

_REPAYMENT_COLUMNS = ("unpaid_principal_fen", "penalty_fen", "late_fee_fen")  # what a payment changes on a bill


def repayment_applied_batch(items: Sequence[tuple[HandlerContext, p.RepaymentApplied]]) -> None:
    """A run of applied payments, applied one after the other in message order."""
    if not items:
        return
    session = items[0][0].session
    taken = set(
        session.scalars(
            select(AppliedPayment.payment_id).where(
                AppliedPayment.payment_id.in_(sorted({event.payment_id for _, event in items}))
            )
        )
    )
    items = _first_time(items, taken)
    if not items:
        return
    upsert(
        session,
        AppliedPayment.__table__,
        [{"payment_id": event.payment_id, "account_id": event.account_id} for _, event in items],
        key="payment_id",
    )
    bill_ids = {a.target_id for _, event in items for a in event.allocations if a.target != "plan"}
    run = ProjectionRun(session, set(), bill_ids, account_bills=False)
    for ctx, event in items:
        to_plans: dict[str, Decimal] = defaultdict(Decimal)
        for allocation in event.allocations:
            if allocation.target == "plan":
                to_plans[allocation.target_id] += allocation.amount
            else:
                bill = run.bill(allocation.target_id, event.account_id)
                _reduce_bill(bill, allocation, ctx.envelope.sequence)
                run.changed(bill)
        for plan_id, amount in to_plans.items():
            pay_plan(ctx, plan_id, event.payment_id, amount, ctx.event_date)
    run.write(items[0][0], account_columns=(), bill_columns=_REPAYMENT_COLUMNS)


def _first_time(
    items: Sequence[tuple[HandlerContext, p.RepaymentApplied]], taken: set[str]
) -> list[tuple[HandlerContext, p.RepaymentApplied]]:
    """The run's payments not taken before (stored, or earlier in the run), in order."""
    fresh = []
    for ctx, event in items:
        if event.payment_id not in taken:
            taken.add(event.payment_id)
            fresh.append((ctx, event))
    return fresh


def _reduce_bill(bill: ProjectionRow, allocation: p.Allocation, seq: int | None) -> None:
    """A repayment is a delta: it applies unless the bill's snapshot already includes it.
    The next daily snapshot corrects any drift."""
    if included_in_snapshot(sequence=seq, snapshot_sequence=bill.as_of_seq):
        return
    fen = to_fen(allocation.amount)
    if allocation.component == "penalty_interest":
        bill.penalty_fen = max(bill.penalty_fen - fen, 0)
    elif allocation.component == "late_fee":
        bill.late_fee_fen = max(bill.late_fee_fen - fen, 0)
    else:
        bill.unpaid_principal_fen = max(bill.unpaid_principal_fen - fen, 0)
