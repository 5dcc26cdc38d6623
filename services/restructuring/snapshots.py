"""``account.delinquency.updated`` and ``account.cured``: the close's snapshots of an account.

The daily snapshot lists every overdue bill. An older snapshot never overwrites a newer
one, per account and per bill (``shared.snapshot_order``); a bill missing from a newer
snapshot is no longer overdue (repaid, or moved into a plan); the first snapshot of an
overdue episode assesses the risk once (``risk.assessed``). A cure ends the episode (the
next one is assessed again) and pays off the bills still counted overdue.

One daily close sends about 100,000 snapshots: each type is taken as a run on a
:class:`~services.restructuring.projection.ProjectionRun` (one ``SELECT`` of the accounts
named and one of their bills, the fold in memory in message order, one upsert each of the
accounts and bills changed, one insert of the assessments and one of their events).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date

from services.restructuring.projection import SNAPSHOT_ACCOUNT_COLUMNS, ProjectionRun, first_overdue_day
from shared.bus.handling import HandlerContext
from shared.events import payloads as p
from shared.money import to_fen
from shared.snapshot_order import supersedes


def account_delinquency_updated_batch(items: Sequence[tuple[HandlerContext, p.AccountDelinquencyUpdated]]) -> None:
    """A run of daily snapshots, applied one after the other in message order."""
    if not items:
        return
    run = ProjectionRun(
        items[0][0].session,
        {event.account_id for _, event in items},
        {line.bill_id for _, event in items for line in event.bills},
    )
    for ctx, event in items:
        _snapshot(run, ctx, event)
    run.write(items[0][0])


def _snapshot(run: ProjectionRun, ctx: HandlerContext, event: p.AccountDelinquencyUpdated) -> None:
    account = run.account(event.account_id)
    seq, as_of = ctx.envelope.sequence, event.business_date
    if not supersedes(
        business_date=as_of,
        sequence=seq,
        stored_date=account.delinquency_as_of,
        stored_sequence=account.delinquency_seq,
    ):
        return
    account.max_dpd = event.max_dpd
    account.delinquency_as_of, account.delinquency_seq = as_of, seq
    run.changed(account)
    listed = {b.bill_id for b in event.bills}
    for line in event.bills:
        bill = run.bill(line.bill_id, event.account_id)
        bill.due_date = bill.due_date or line.due_date
        bill.overdue_on = bill.overdue_on or first_overdue_day(line.due_date)
        if bill.plan_id is None and supersedes(
            business_date=as_of, sequence=seq, stored_date=bill.as_of_date, stored_sequence=bill.as_of_seq
        ):
            bill.unpaid_principal_fen = to_fen(line.unpaid_principal)
            bill.penalty_fen, bill.late_fee_fen = to_fen(line.penalty_interest), to_fen(line.late_fee)
            bill.dpd, bill.max_dpd = line.dpd, max(bill.max_dpd, line.dpd)
            bill.as_of_date, bill.as_of_seq = as_of, seq
        run.changed(bill)
    _clear_unlisted(run, event.account_id, listed, as_of, seq)
    if event.bills and (account.cured_on is None or as_of > account.cured_on):
        run.assess_first_overdue(ctx, account, as_of)


def _clear_unlisted(run: ProjectionRun, account_id: str, listed: set[str], as_of: date, seq: int | None) -> None:
    """Bills overdue before but absent from this (newer) snapshot were paid off."""
    for bill in run.bills_of.get(account_id, ()):
        if bill.plan_id is not None or bill.dpd <= 0 or bill.bill_id in listed:
            continue
        if not supersedes(
            business_date=as_of, sequence=seq, stored_date=bill.as_of_date, stored_sequence=bill.as_of_seq
        ):
            continue
        bill.unpaid_principal_fen = bill.penalty_fen = bill.late_fee_fen = 0
        bill.dpd = 0
        bill.as_of_date, bill.as_of_seq = as_of, seq
        run.changed(bill)


def account_cured_batch(items: Sequence[tuple[HandlerContext, p.AccountCured]]) -> None:
    """A run of cures, applied one after the other in message order: the episode ends and
    the bills still counted overdue are paid off, unless a newer snapshot of the account
    was applied already."""
    if not items:
        return
    run = ProjectionRun(items[0][0].session, {event.account_id for _, event in items}, set())
    for ctx, event in items:
        account = run.account(event.account_id)
        seq, as_of = ctx.envelope.sequence, event.business_date
        if not supersedes(
            business_date=as_of,
            sequence=seq,
            stored_date=account.delinquency_as_of,
            stored_sequence=account.delinquency_seq,
        ):
            continue
        account.max_dpd, account.episode_assessed, account.cured_on = 0, False, as_of
        account.delinquency_as_of, account.delinquency_seq = as_of, seq
        run.changed(account)
        _clear_unlisted(run, event.account_id, set(), as_of, seq)
    run.write(items[0][0], account_columns=(*SNAPSHOT_ACCOUNT_COLUMNS, "cured_on"))
