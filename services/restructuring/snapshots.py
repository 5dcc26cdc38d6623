"""The nightly flood of ``account.delinquency.updated``, applied set-based.

One daily close sends about 100,000 snapshots. :func:`account_delinquency_updated_batch`
takes a whole run of them (``BatchHandler``) and does, for the run:

1. one ``SELECT`` of the accounts named and one of their bills (and of every bill listed),
2. the per-event logic of :func:`services.restructuring.handlers.account_delinquency_updated`
   replayed in memory, event after event in the order received (so two snapshots of one
   account in one run, or an older one after a newer one, end exactly as they would one
   by one), including the first-overdue risk assessment (the pure scorecard on the
   in-memory rows, as ``store.load_facts`` would read them at that point),
3. one upsert of the accounts changed, one of the bills changed, one insert of the
   assessments and one of the ``risk.assessed`` events (the outbox's ``emit_many``).

The per-event handler stays as the reference; ``tests/integration/restructuring/
test_delinquency_batch.py`` holds the two equal (state and events), on PostgreSQL and
SQLite. Upserts are ``INSERT .. ON CONFLICT DO UPDATE`` on both (see :func:`_upsert`).
"""
from __future__ import annotations

import functools
import json
from collections.abc import Iterable, Sequence
from datetime import date, timedelta
from typing import Any

from sqlalchemy import Table, any_, bindparam, or_, select, text
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from services.restructuring import store
from services.restructuring.models import AccountView, BillView, RiskAssessmentRow
from shared.bus.handling import HandlerContext
from shared.bus.outbox import PendingEvent
from shared.db import expire_loaded, is_postgres
from shared.events import payloads as p
from shared.money import to_fen

TRIGGER_FIRST_OVERDUE = "first_overdue"

_ACCOUNTS: Table = AccountView.__table__  # type: ignore[assignment]
_BILLS: Table = BillView.__table__  # type: ignore[assignment]
_RISK: Table = RiskAssessmentRow.__table__  # type: ignore[assignment]

# What the snapshot handler may change on an existing row (nothing else is written back).
_ACCOUNT_SET = ("max_dpd", "delinquency_as_of", "delinquency_seq", "episode_assessed", "last_grade", "last_score")
_BILL_SET = ("due_date", "overdue_on", "unpaid_principal_fen", "penalty_fen", "late_fee_fen", "dpd", "max_dpd",
             "as_of_date", "as_of_seq")


def first_overdue_day(due_date: date) -> date:
    """A bill is overdue from the close of the day after its due date (RULES 2, DPD 1)."""
    return due_date + timedelta(days=1)


class _Row:
    """One projection row in memory: the attributes ``store.facts_of`` reads, and the columns."""

    def __init__(self, values: dict[str, Any]):
        self.__dict__.update(values)

    def values(self, columns: Iterable[str]) -> dict[str, Any]:
        return {c: self.__dict__[c] for c in columns}


def _new_account(account_id: str) -> _Row:
    """As ``handlers._account`` creates it on first mention."""
    return _Row({
        "account_id": account_id, "opened_on": None, "monthly_income_fen": None, "max_dpd": 0,
        "delinquency_as_of": None, "delinquency_seq": None, "episode_assessed": False, "cured_on": None,
        "active_plan_id": None, "last_grade": None, "last_score": None,
    })


def _new_bill(bill_id: str, account_id: str) -> _Row:
    """As ``handlers._bill`` creates it on first mention."""
    return _Row({
        "bill_id": bill_id, "account_id": account_id, "statement_date": None, "due_date": None, "amount_fen": None,
        "unpaid_principal_fen": 0, "penalty_fen": 0, "late_fee_fen": 0, "dpd": 0, "max_dpd": 0, "overdue_on": None,
        "plan_id": None, "as_of_date": None, "as_of_seq": None,
    })


def _one_of(column: Any, values: set[str], postgres: bool) -> Any:
    """``column = ANY(:array)`` on PostgreSQL (one parameter, whatever the run's length), else ``IN``."""
    if postgres:
        return column == any_(bindparam(None, sorted(values), type_=postgresql.ARRAY(column.type)))
    return column.in_(values)


class _RunState:
    """The accounts and bills a run touches, loaded once, changed in memory, written once."""

    def __init__(self, session: Session, account_ids: set[str], bill_ids: set[str], *, account_bills: bool = True):
        """``account_bills``: every bill of the accounts too (a snapshot clears those it no
        longer lists), not only the ``bill_ids`` named."""
        session.flush()  # what earlier handlers of this transaction changed through the ORM
        postgres = is_postgres(session)
        self.accounts = {
            row["account_id"]: _Row(dict(row))
            for row in session.execute(select(_ACCOUNTS).where(_one_of(_ACCOUNTS.c.account_id, account_ids, postgres)))
            .mappings()
        }
        condition = _one_of(_BILLS.c.account_id, account_ids, postgres) if account_bills else None
        if bill_ids:
            by_id = _one_of(_BILLS.c.bill_id, bill_ids, postgres)
            condition = by_id if condition is None else or_(condition, by_id)
        rows = session.execute(select(_BILLS).where(condition)).mappings() if condition is not None else ()
        self.bills = {row["bill_id"]: _Row(dict(row)) for row in rows}
        self.bills_of: dict[str, list[_Row]] = {}
        for bill in self.bills.values():
            self.bills_of.setdefault(bill.account_id, []).append(bill)
        self.changed_accounts: dict[str, _Row] = {}
        self.changed_bills: dict[str, _Row] = {}

    def account(self, account_id: str) -> _Row:
        account = self.accounts.get(account_id)
        if account is None:
            account = self.accounts[account_id] = _new_account(account_id)
            self.changed_accounts[account_id] = account
        return account

    def bill(self, bill_id: str, account_id: str) -> _Row:
        bill = self.bills.get(bill_id)
        if bill is None:
            bill = self.bills[bill_id] = _new_bill(bill_id, account_id)
            self.bills_of.setdefault(account_id, []).append(bill)
            self.changed_bills[bill_id] = bill
        return bill


def account_delinquency_updated_batch(items: Sequence[tuple[HandlerContext, p.AccountDelinquencyUpdated]]) -> None:
    """A run of daily snapshots, same effects as ``handlers.account_delinquency_updated``
    applied to each in order: an older snapshot never overwrites a newer one (per account
    and per bill), a bill missing from a newer snapshot is no longer overdue, and the first
    snapshot of an overdue episode assesses the risk once (``risk.assessed``)."""
    if not items:
        return
    session = items[0][0].session
    state = _RunState(session, {event.account_id for _, event in items},
                      {line.bill_id for _, event in items for line in event.bills})
    assessments: list[dict[str, Any]] = []
    emitted: list[PendingEvent] = []
    for ctx, event in items:
        _apply(ctx, event, state, assessments, emitted)
    _write(session, state)
    if assessments:
        _upsert(session, _RISK, None, assessments)
    if emitted:
        items[0][0].outbox.emit_many(session, emitted)


def _apply(ctx: HandlerContext, event: p.AccountDelinquencyUpdated, state: _RunState,
           assessments: list[dict[str, Any]], emitted: list[PendingEvent]) -> None:
    """One snapshot on the in-memory rows (line for line the per-event handler)."""
    account = state.account(event.account_id)
    seq, as_of = ctx.envelope.sequence, event.business_date
    if not store.is_newer(as_of, seq, account.delinquency_as_of, account.delinquency_seq):
        return
    account.max_dpd = event.max_dpd
    account.delinquency_as_of, account.delinquency_seq = as_of, seq
    state.changed_accounts[account.account_id] = account
    listed = {b.bill_id for b in event.bills}
    for line in event.bills:
        bill = state.bill(line.bill_id, event.account_id)
        bill.due_date = bill.due_date or line.due_date
        bill.overdue_on = bill.overdue_on or first_overdue_day(line.due_date)
        if bill.plan_id is None and store.is_newer(as_of, seq, bill.as_of_date, bill.as_of_seq):
            bill.unpaid_principal_fen = to_fen(line.unpaid_principal)
            bill.penalty_fen, bill.late_fee_fen = to_fen(line.penalty_interest), to_fen(line.late_fee)
            bill.dpd, bill.max_dpd = line.dpd, max(bill.max_dpd, line.dpd)
            bill.as_of_date, bill.as_of_seq = as_of, seq
        state.changed_bills[bill.bill_id] = bill
    _clear_unlisted(state, event.account_id, listed, as_of, seq)
    if event.bills and (account.cured_on is None or as_of > account.cured_on) and not account.episode_assessed:
        account.episode_assessed = True
        _assess(ctx, account, state.bills_of.get(event.account_id, []), as_of, assessments, emitted)


def _clear_unlisted(state: _RunState, account_id: str, listed: set[str], as_of: date, seq: int | None) -> None:
    """Bills overdue before but absent from this (newer) snapshot were paid off
    (``handlers._clear_unlisted`` on the in-memory rows)."""
    for bill in state.bills_of.get(account_id, ()):
        if bill.plan_id is not None or bill.dpd <= 0 or bill.bill_id in listed:
            continue
        if not store.is_newer(as_of, seq, bill.as_of_date, bill.as_of_seq):
            continue
        bill.unpaid_principal_fen = bill.penalty_fen = bill.late_fee_fen = 0
        bill.dpd = 0
        bill.as_of_date, bill.as_of_seq = as_of, seq
        state.changed_bills[bill.bill_id] = bill


def account_cured_batch(items: Sequence[tuple[HandlerContext, p.AccountCured]]) -> None:
    """A run of cures, same effects as ``handlers.account_cured`` on each in order: the
    episode ends (the next one is assessed again) and the bills still counted overdue are
    paid off, unless a newer snapshot of the account was applied already."""
    if not items:
        return
    session = items[0][0].session
    state = _RunState(session, {event.account_id for _, event in items}, set())
    for ctx, event in items:
        account = state.account(event.account_id)
        seq, as_of = ctx.envelope.sequence, event.business_date
        if not store.is_newer(as_of, seq, account.delinquency_as_of, account.delinquency_seq):
            continue
        account.max_dpd, account.episode_assessed, account.cured_on = 0, False, as_of
        account.delinquency_as_of, account.delinquency_seq = as_of, seq
        state.changed_accounts[account.account_id] = account
        _clear_unlisted(state, event.account_id, set(), as_of, seq)
    _write(session, state, account_set=(*_ACCOUNT_SET, "cured_on"))


def _assess(ctx: HandlerContext, account: _Row, bills: list[_Row], as_of: date,
            assessments: list[dict[str, Any]], emitted: list[PendingEvent]) -> None:
    """``handlers._assess_and_emit`` for the first-overdue trigger, on the in-memory rows."""
    facts = store.facts_of(account, _by_due_date(bills), as_of)
    inputs = store.risk_inputs(facts, as_of, ctx.rules)
    assessment = store.assess(inputs, ctx.rules)
    assessments.append(store.assessment_values(account.account_id, as_of, TRIGGER_FIRST_OVERDUE, None,
                                               assessment, inputs))
    account.last_grade, account.last_score = assessment.grade, assessment.score
    payload = p.RiskAssessed(account_id=account.account_id, score=assessment.score, grade=assessment.grade,
                             factors=store.risk_factors(assessment))
    emitted.append(ctx.reply("risk.assessed", payload, account.account_id))  # one insert for the run


def _by_due_date(bills: list[_Row]) -> list[_Row]:
    """The order ``store.load_facts`` reads them in (nulls last, as PostgreSQL sorts)."""
    return sorted(bills, key=lambda b: (b.due_date is None, b.due_date or date.min))


def _write(session: Session, state: _RunState, account_set: Sequence[str] = _ACCOUNT_SET,
           bill_set: Sequence[str] = _BILL_SET) -> None:
    """Upsert what the run changed; on an existing row only the ``*_set`` columns change."""
    # In key order: two transactions upserting overlapping rows then lock them in the same order.
    accounts = [state.changed_accounts[k].values(_ACCOUNTS.columns.keys()) for k in sorted(state.changed_accounts)]
    bills = [state.changed_bills[k].values(_BILLS.columns.keys()) for k in sorted(state.changed_bills)]
    _upsert(session, _ACCOUNTS, "account_id", accounts, account_set)
    _upsert(session, _BILLS, "bill_id", bills, bill_set)
    # The ORM may hold these rows from an earlier handler of this transaction: reload them when next used.
    expire_loaded(session, AccountView, state.changed_accounts)
    expire_loaded(session, BillView, state.changed_bills)


def _upsert(session: Session, table: Table, key: str | None, rows: list[dict[str, Any]],
            update: Sequence[str] = ()) -> None:
    """``INSERT .. ON CONFLICT (key) DO UPDATE`` of all the rows (a plain insert without a key;
    ``DO NOTHING`` when nothing is to be updated: a row someone else created stays theirs).

    PostgreSQL: one statement whatever the number of rows, the rows in one JSON parameter
    (``jsonb_to_recordset``): a 200-row ``VALUES`` list costs more to compile and to convert
    than to run, and an executemany runs the statement once per row. SQLite (embedded, in
    process): an executemany of the dialect's upsert.
    """
    if not rows:
        return
    if is_postgres(session):
        session.execute(_pg_statement(table, key, tuple(update)), {"rows": json.dumps(rows, default=_json_value)})
    else:
        session.execute(_sqlite_statement(table, key, tuple(update)), rows)


def _json_value(value: Any) -> str:
    if isinstance(value, date):
        return value.isoformat()
    raise TypeError(f"{type(value).__name__} in a projection row")


@functools.cache
def _pg_statement(table: Table, key: str | None, update: tuple[str, ...]) -> Any:
    dialect = postgresql.dialect()
    quote = dialect.identifier_preparer.quote
    columns = [c for c in table.columns if c is not table.autoincrement_column]  # a serial id fills itself
    names = ", ".join(quote(c.name) for c in columns)
    record = ", ".join(f"{quote(c.name)} {c.type.compile(dialect=dialect)}" for c in columns)
    sql = (f"INSERT INTO {quote(table.name)} ({names}) SELECT {names}"
           f" FROM jsonb_to_recordset(CAST(:rows AS jsonb)) AS r({record})")
    if key is not None and not update:
        sql += f" ON CONFLICT ({quote(key)}) DO NOTHING"
    elif key is not None:
        assignments = ", ".join(f"{quote(c)} = EXCLUDED.{quote(c)}" for c in update)
        sql += f" ON CONFLICT ({quote(key)}) DO UPDATE SET {assignments}"
    return text(sql)


@functools.cache
def _sqlite_statement(table: Table, key: str | None, update: tuple[str, ...]) -> Any:
    stmt = sqlite.insert(table)
    if key is None:
        return stmt
    if not update:
        return stmt.on_conflict_do_nothing(index_elements=[table.c[key]])
    return stmt.on_conflict_do_update(index_elements=[table.c[key]], set_={c: stmt.excluded[c] for c in update})
