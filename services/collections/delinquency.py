"""``account.delinquency.updated`` and ``bill.overdue``: the close's absolute snapshots of an
account's overdue and of its bills, a run of them in a handful of statements.

The nightly close sends one snapshot per overdue account (about 100,000 a night), so
they are taken as a run (``BatchHandler``; a run of one is the same code):

1. lock the run's cases (``SELECT ... FOR UPDATE``), creating the missing ones first
   (``INSERT ... ON CONFLICT DO NOTHING``, opened on the business date of the account's
   first event in the run, as ``ensure_case`` would);
2. read every bill the run can touch: the listed ones, and the account's open overdue
   bills outside a plan (those a newer snapshot clears when it no longer lists them);
3. fold the events over those rows in Python, in run order: a snapshot older than the
   stored one (``shared.snapshot_order``) is ignored whole; overdue bills missing from a
   newer snapshot were paid; an account that owes again reopens its cured case
   (``casebook.reopen_if_due``);
4. write back only what changed: one upsert for the cases, one for the bills.

The guard is folded event by event rather than "keep the newest per account": a run's
result is then, by construction, that of its events one after the other. ORM objects of
the session for the rows written are expired, so a handler later in the same
transaction reads the new state.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, fields
from datetime import date
from typing import Any

from sqlalchemy import and_, or_, select
from sqlalchemy.orm import Session

from services.collections.casebook import first_dates, lock_cases_read_by, reopen_if_due
from services.collections.models import Bill, CollectionCase
from shared.bus.handling import HandlerContext
from shared.db import expire_loaded, upsert
from shared.events import payloads as p
from shared.log import get_logger
from shared.money import to_fen
from shared.snapshot_order import supersedes

log = get_logger(__name__)

CASES = CollectionCase.__table__
BILLS = Bill.__table__


@dataclass
class _Case:
    """The columns of a case the snapshot reads or writes, named as on the model (so
    ``casebook.reopen_if_due`` works on it as on the ORM object)."""

    pk: int
    account_id: str
    status: str
    opened_on: date | None
    closed_reason: str | None
    closed_on: date | None
    stage: str | None
    max_dpd: int
    overdue_principal_fen: int
    total_overdue_fen: int
    delinquency_as_of: date | None
    delinquency_seq: int | None
    plan_active: bool
    promise_broken: bool


@dataclass
class _Bill:
    bill_id: str
    account_id: str
    due_date: date
    amount_fen: int
    unpaid_fen: int
    dpd: int
    state_date: date | None
    state_seq: int | None
    plan_id: str | None


_CASE_COLUMNS = [f.name for f in fields(_Case)]
_BILL_COLUMNS = [f.name for f in fields(_Bill)]
# What a snapshot may change (everything else of the row is written back as read, under the lock).
_CASE_WRITTEN = [
    "status",
    "opened_on",
    "closed_reason",
    "closed_on",
    "stage",
    "max_dpd",
    "overdue_principal_fen",
    "total_overdue_fen",
    "delinquency_as_of",
    "delinquency_seq",
    "promise_broken",
]
_BILL_WRITTEN = ["unpaid_fen", "dpd", "state_date", "state_seq"]


def account_delinquency_updated_batch(items: list[tuple[HandlerContext, p.AccountDelinquencyUpdated]]) -> None:
    """A run of daily delinquency snapshots (any length, one in the guarded retry pass)."""
    if not items:
        return
    session = items[0][0].session
    session.flush()  # what earlier handlers of this transaction changed, before reading
    cases = _lock_cases(session, items)
    bills = _load_bills(session, items)
    by_account: dict[str, list[_Bill]] = defaultdict(list)
    for bill in bills.values():
        by_account[bill.account_id].append(bill)

    dirty_cases: dict[str, _Case] = {}
    new_bills: set[str] = set()
    dirty_bills: set[str] = set()
    for ctx, event in items:
        seq = ctx.envelope.sequence
        as_of = event.business_date
        case = cases[event.account_id]
        if not supersedes(
            business_date=as_of, sequence=seq, stored_date=case.delinquency_as_of, stored_sequence=case.delinquency_seq
        ):
            log.info("stale_delinquency_ignored", account_id=event.account_id, business_date=str(as_of))
            continue
        case.delinquency_as_of, case.delinquency_seq = as_of, seq
        case.max_dpd = event.max_dpd
        case.overdue_principal_fen = to_fen(event.overdue_principal)
        case.total_overdue_fen = to_fen(event.total_overdue)
        dirty_cases[case.account_id] = case
        listed: set[str] = set()
        for line in event.bills:
            listed.add(line.bill_id)
            unpaid = to_fen(line.unpaid_principal)
            bill = bills.get(line.bill_id)
            if bill is None:
                bill = _Bill(
                    bill_id=line.bill_id,
                    account_id=event.account_id,
                    due_date=line.due_date,
                    amount_fen=unpaid,
                    unpaid_fen=unpaid,
                    dpd=line.dpd,
                    state_date=as_of,
                    state_seq=seq,
                    plan_id=None,
                )
                bills[bill.bill_id] = bill
                by_account[bill.account_id].append(bill)
                new_bills.add(bill.bill_id)
            elif _bill_superseded(bill, as_of, seq):
                bill.unpaid_fen, bill.dpd, bill.state_date, bill.state_seq = unpaid, line.dpd, as_of, seq
                dirty_bills.add(bill.bill_id)
        for bill in by_account.get(event.account_id, ()):  # overdue bills a newer snapshot no longer lists: paid
            if (
                bill.bill_id not in listed
                and bill.due_date < as_of
                and bill.unpaid_fen > 0
                and bill.plan_id is None
                and _bill_superseded(bill, as_of, seq)
            ):
                bill.unpaid_fen, bill.state_date, bill.state_seq = 0, as_of, seq
                dirty_bills.add(bill.bill_id)
        if event.max_dpd > 0:
            reopen_if_due(case, as_of)

    _write_cases(session, list(dirty_cases.values()))
    _write_bills(session, [bills[b] for b in bills if b in new_bills or b in dirty_bills])


def bill_overdue_batch(items: list[tuple[HandlerContext, p.BillOverdue]]) -> None:
    """A run of ``bill.overdue`` (a bill went overdue, also the bill a defaulted plan becomes;
    the close sends one per bill, in a block per chunk of accounts), one after the other in
    order: the case ensured, the bill's snapshot taken unless ours is newer, a cured case
    reopened while the bill is unpaid. The same locks, reads and writes as the
    delinquency snapshots."""
    if not items:
        return
    session = items[0][0].session
    session.flush()  # what earlier handlers of this transaction changed, before reading
    cases = _lock_cases(session, items)
    query = select(*(BILLS.c[name] for name in _BILL_COLUMNS)).where(
        BILLS.c.bill_id.in_(sorted({event.bill_id for _, event in items}))
    )
    bills = {row.bill_id: _Bill(**row._mapping) for row in session.execute(query)}
    dirty_cases: dict[str, _Case] = {}
    dirty_bills: set[str] = set()
    for ctx, event in items:
        seq, as_of, unpaid = ctx.envelope.sequence, event.business_date, to_fen(event.unpaid_principal)
        bill = bills.get(event.bill_id)
        if bill is None:
            bills[event.bill_id] = _Bill(
                bill_id=event.bill_id,
                account_id=event.account_id,
                due_date=event.due_date,
                amount_fen=unpaid,
                unpaid_fen=unpaid,
                dpd=event.dpd,
                state_date=as_of,
                state_seq=seq,
                plan_id=None,
            )
            dirty_bills.add(event.bill_id)
        elif _bill_superseded(bill, as_of, seq):
            bill.unpaid_fen, bill.dpd, bill.state_date, bill.state_seq = unpaid, event.dpd, as_of, seq
            dirty_bills.add(event.bill_id)
        if unpaid > 0:
            case = cases[event.account_id]
            was_closed = case.status == "closed"
            reopen_if_due(case, as_of)
            if was_closed and case.status == "open":  # reopened: a new episode
                dirty_cases[case.account_id] = case
    _write_cases(session, list(dirty_cases.values()))
    _write_bills(session, [bills[b] for b in sorted(dirty_bills)])


def _bill_superseded(bill: _Bill, as_of: date, seq: int | None) -> bool:
    """Whether a snapshot of ``as_of`` / ``seq`` replaces the bill's stored one."""
    return supersedes(business_date=as_of, sequence=seq, stored_date=bill.state_date, stored_sequence=bill.state_seq)


def _lock_cases(
    session: Session,
    items: list[tuple[HandlerContext, p.AccountDelinquencyUpdated]] | list[tuple[HandlerContext, p.BillOverdue]],
) -> dict[str, _Case]:
    """The run's cases, locked in pk order as every run locks them; the missing ones
    created as ensure_case would, opened on the account's first snapshot's date."""
    return lock_cases_read_by(_select_cases, session, first_dates((e.account_id, e.business_date) for _, e in items))


def _select_cases(session: Session, accounts: Iterable[str]) -> dict[str, _Case]:
    query = (
        select(*(CASES.c[name] for name in _CASE_COLUMNS))
        .where(CASES.c.account_id.in_(sorted(accounts)))
        .order_by(CASES.c.pk)
        .with_for_update()
    )
    return {row.account_id: _Case(**row._mapping) for row in session.execute(query)}


def _load_bills(session: Session, items: list[tuple[HandlerContext, p.AccountDelinquencyUpdated]]) -> dict[str, _Bill]:
    """Every bill the run can touch: listed in a snapshot, or open overdue outside a plan."""
    accounts = {event.account_id for _, event in items}
    listed = {line.bill_id for _, event in items for line in event.bills}
    clauses = [and_(BILLS.c.account_id.in_(accounts), BILLS.c.unpaid_fen > 0, BILLS.c.plan_id.is_(None))]
    if listed:
        clauses.append(BILLS.c.bill_id.in_(listed))
    query = select(*(BILLS.c[name] for name in _BILL_COLUMNS)).where(or_(*clauses))
    return {row.bill_id: _Bill(**row._mapping) for row in session.execute(query)}


def _write_cases(session: Session, cases: list[_Case]) -> None:
    upsert(session, CASES, [_columns(case, _CASE_COLUMNS) for case in cases], key="account_id", update=_CASE_WRITTEN)
    expire_loaded(session, CollectionCase, (case.pk for case in cases))


def _write_bills(session: Session, bills: list[_Bill]) -> None:
    upsert(session, BILLS, [_columns(bill, _BILL_COLUMNS) for bill in bills], key="bill_id", update=_BILL_WRITTEN)
    expire_loaded(session, Bill, (bill.bill_id for bill in bills))


def _columns(row: Any, names: list[str]) -> dict[str, Any]:
    return {name: getattr(row, name) for name in names}
