"""``bill.issued`` and ``bill.overdue``: a new bill, and a bill gone overdue.

A new bill is unpaid in full until a repayment or a snapshot says otherwise. A bill gone
overdue takes the overdue figures unless a newer snapshot set them, and when it opens the
account's overdue episode the risk is assessed (``risk.assessed``).

The statements job issues a bill for every account of a cycle day at once, and the close
after its due date sends ``bill.overdue`` for every one left unpaid, so each type is taken
as a run on a :class:`~services.restructuring.projection.ProjectionRun` (the fold in
memory in message order, one upsert of the accounts and one of the bills, one insert of
the assessments and one of their ``risk.assessed``).
"""

from __future__ import annotations

from collections.abc import Sequence

from services.restructuring.projection import ProjectionRow, ProjectionRun
from shared.bus.handling import HandlerContext
from shared.events import payloads as p
from shared.money import to_fen
from shared.snapshot_order import supersedes

# What a bill.issued may change on a stored bill; an account row it creates is left as
# it is if another writer created it first.
_BILL_ISSUED_COLUMNS = ("statement_date", "due_date", "amount_fen", "unpaid_principal_fen")


def bill_issued_batch(items: Sequence[tuple[HandlerContext, p.BillIssued]]) -> None:
    """A run of new bills, applied one after the other in message order."""
    if not items:
        return
    run = ProjectionRun(
        items[0][0].session,
        {event.account_id for _, event in items},
        {event.bill_id for _, event in items},
        account_bills=False,
    )
    for _, event in items:
        run.account(event.account_id)
        bill = run.bill(event.bill_id, event.account_id)
        # nothing said about the bill yet (a payment or a snapshot may come first)
        unheard_of = bill.amount_fen is None and bill.as_of_date is None and bill.as_of_seq is None
        bill.statement_date, bill.due_date = event.statement_date, event.due_date
        bill.amount_fen = to_fen(event.amount)
        if unheard_of:
            bill.unpaid_principal_fen = bill.amount_fen
        run.changed(bill)
    run.write(items[0][0], account_columns=(), bill_columns=_BILL_ISSUED_COLUMNS)


def _record_overdue(bill: ProjectionRow, event: p.BillOverdue, seq: int | None) -> None:
    """The overdue figures on the bill, unless a newer snapshot set them."""
    bill.due_date = bill.due_date or event.due_date
    bill.overdue_on = min(bill.overdue_on or event.business_date, event.business_date)
    if bill.plan_id is None and supersedes(
        business_date=event.business_date, sequence=seq, stored_date=bill.as_of_date, stored_sequence=bill.as_of_seq
    ):
        bill.unpaid_principal_fen, bill.dpd = to_fen(event.unpaid_principal), event.dpd
        bill.max_dpd = max(bill.max_dpd, event.dpd)
        bill.as_of_date, bill.as_of_seq = event.business_date, seq


def bill_overdue_batch(items: Sequence[tuple[HandlerContext, p.BillOverdue]]) -> None:
    """A run of bills gone overdue, applied one after the other in message order."""
    if not items:
        return
    run = ProjectionRun(
        items[0][0].session, {event.account_id for _, event in items}, {event.bill_id for _, event in items}
    )
    for ctx, event in items:
        account = run.account(event.account_id)
        bill = run.bill(event.bill_id, event.account_id)
        _record_overdue(bill, event, ctx.envelope.sequence)
        run.changed(bill)
        if account.cured_on is None or event.business_date > account.cured_on:
            run.assess_first_overdue(ctx, account, event.business_date)
    run.write(items[0][0])
