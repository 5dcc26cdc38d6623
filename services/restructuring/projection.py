"""A run of events on restructuring's projection: loaded once, folded in memory, written once.

Restructuring projects accounts' bills and snapshots into ``account_views`` and
``bill_views``. The event types that come in floods (grants, bills issued and gone
overdue, the nightly snapshots, cures, payments) are each taken as a run
(``BatchHandler``; a run of one, the guarded retry pass, is the same code), and every
one of them works the same way through :class:`ProjectionRun`:

1. one ``SELECT ... FOR UPDATE`` of the run's accounts (so that two workers' runs on
   one account follow each other) and one ``SELECT`` of the bills it can touch
   (``ProjectionRun(...)``);
2. the events folded over those rows in memory, in message order (``run.account``,
   ``run.bill``: a row first mentioned is created as a new one; ``run.changed``);
3. one upsert of the accounts changed and one of the bills changed, only the columns the
   event type may change written on a stored row (``run.write``), then one insert of the
   assessments the run made and one of their ``risk.assessed`` (``run.write``).

A run's result is by construction that of its events one after the other.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import date, timedelta
from typing import Any

from sqlalchemy import Table, or_, select
from sqlalchemy.orm import Session

from services.restructuring import store
from services.restructuring.models import AccountView, BillView, RiskAssessmentRow
from shared.bus.handling import HandlerContext
from shared.bus.outbox import PendingEvent
from shared.db import expire_loaded, matches_any, upsert
from shared.events import payloads as p

TRIGGER_FIRST_OVERDUE = "first_overdue"

ACCOUNTS: Table = AccountView.__table__
BILLS: Table = BillView.__table__
RISK_ASSESSMENTS: Table = RiskAssessmentRow.__table__

# What a snapshot may change on a stored row (nothing else is written back).
SNAPSHOT_ACCOUNT_COLUMNS = (
    "max_dpd",
    "delinquency_as_of",
    "delinquency_seq",
    "episode_assessed",
    "last_grade",
    "last_score",
)
SNAPSHOT_BILL_COLUMNS = (
    "due_date",
    "overdue_on",
    "unpaid_principal_fen",
    "penalty_fen",
    "late_fee_fen",
    "dpd",
    "max_dpd",
    "as_of_date",
    "as_of_seq",
)


def first_overdue_day(due_date: date) -> date:
    """A bill is overdue from the close of the day after its due date (RULES 2, DPD 1)."""
    return due_date + timedelta(days=1)


class ProjectionRow:
    """One projection row in memory: the attributes ``store.facts_of`` reads, and the columns."""

    def __init__(self, values: dict[str, Any]):
        self.__dict__.update(values)

    def values(self, columns: Iterable[str]) -> dict[str, Any]:
        return {c: self.__dict__[c] for c in columns}


def new_account(account_id: str) -> ProjectionRow:
    """An account on first mention: nothing overdue, nothing known (events arrive in any order)."""
    return ProjectionRow(
        {
            "account_id": account_id,
            "opened_on": None,
            "monthly_income_fen": None,
            "max_dpd": 0,
            "delinquency_as_of": None,
            "delinquency_seq": None,
            "episode_assessed": False,
            "cured_on": None,
            "active_plan_id": None,
            "last_grade": None,
            "last_score": None,
            "paused_on": None,
            "resumed_pause_on": None,
        }
    )


def new_bill(bill_id: str, account_id: str) -> ProjectionRow:
    """A bill on first mention: nothing unpaid until an event says so."""
    return ProjectionRow(
        {
            "bill_id": bill_id,
            "account_id": account_id,
            "statement_date": None,
            "due_date": None,
            "amount_fen": None,
            "unpaid_principal_fen": 0,
            "penalty_fen": 0,
            "late_fee_fen": 0,
            "dpd": 0,
            "max_dpd": 0,
            "overdue_on": None,
            "plan_id": None,
            "as_of_date": None,
            "as_of_seq": None,
        }
    )


class ProjectionRun:
    """The accounts and bills a run touches, loaded once, changed in memory, written once."""

    def __init__(self, session: Session, account_ids: set[str], bill_ids: set[str], *, account_bills: bool = True):
        """``account_bills``: every bill of the accounts too (a snapshot clears those it no
        longer lists, an assessment counts them), not only the ``bill_ids`` named."""
        session.flush()  # what earlier handlers of this transaction changed through the ORM
        self.session = session
        # Locked in key order until the run commits: a run of another worker on the same
        # accounts waits, then reads what this one wrote (two runs on one stale row would
        # both assess the account's first overdue). SQLite has one writer and no FOR UPDATE.
        locked = (
            select(ACCOUNTS)
            .where(matches_any(session, ACCOUNTS.c.account_id, account_ids))
            .order_by(ACCOUNTS.c.account_id)
            .with_for_update()
        )
        self.accounts = {row["account_id"]: ProjectionRow(dict(row)) for row in session.execute(locked).mappings()}
        condition = matches_any(session, BILLS.c.account_id, account_ids) if account_bills else None
        if bill_ids:
            by_id = matches_any(session, BILLS.c.bill_id, bill_ids)
            condition = by_id if condition is None else or_(condition, by_id)
        rows = session.execute(select(BILLS).where(condition)).mappings() if condition is not None else ()
        self.bills = {row["bill_id"]: ProjectionRow(dict(row)) for row in rows}
        self.bills_of: dict[str, list[ProjectionRow]] = {}
        for bill in self.bills.values():
            self.bills_of.setdefault(bill.account_id, []).append(bill)
        self.changed_accounts: dict[str, ProjectionRow] = {}
        self.changed_bills: dict[str, ProjectionRow] = {}
        self.assessments: list[dict[str, Any]] = []
        self.replies: list[PendingEvent] = []

    def account(self, account_id: str) -> ProjectionRow:
        """The account's row, created (and to be written) on first mention."""
        account = self.accounts.get(account_id)
        if account is None:
            account = self.accounts[account_id] = new_account(account_id)
            self.changed_accounts[account_id] = account
        return account

    def bill(self, bill_id: str, account_id: str) -> ProjectionRow:
        """The bill's row, created (and to be written) on first mention."""
        bill = self.bills.get(bill_id)
        if bill is None:
            bill = self.bills[bill_id] = new_bill(bill_id, account_id)
            self.bills_of.setdefault(account_id, []).append(bill)
            self.changed_bills[bill_id] = bill
        return bill

    def changed(self, row: ProjectionRow) -> None:
        """``row`` (an account or a bill of the run) is to be written back."""
        if hasattr(row, "bill_id"):
            self.changed_bills[row.bill_id] = row
        else:
            self.changed_accounts[row.account_id] = row

    def assess_first_overdue(self, ctx: HandlerContext, account: ProjectionRow, as_of: date) -> None:
        """``risk.assessed`` once when an account goes overdue (once per overdue episode),
        scored on the run's rows as the account stands now."""
        if account.episode_assessed:
            return
        account.episode_assessed = True
        bills = sorted(
            self.bills_of.get(account.account_id, []),  # nulls last, as PostgreSQL sorts
            key=lambda b: (b.due_date is None, b.due_date or date.min),
        )
        facts = store.facts_of(account, bills, as_of)
        inputs = store.risk_inputs(facts, as_of, ctx.rules)
        assessment = store.assess(inputs, ctx.rules)
        self.assessments.append(
            store.assessment_values(account.account_id, as_of, TRIGGER_FIRST_OVERDUE, None, assessment, inputs)
        )
        account.last_grade, account.last_score = assessment.grade, assessment.score
        self.changed(account)
        payload = p.RiskAssessed(
            account_id=account.account_id,
            score=assessment.score,
            grade=assessment.grade,
            factors=store.risk_factors(assessment),
        )
        self.replies.append(ctx.reply("risk.assessed", payload, account.account_id))

    def write(
        self,
        ctx: HandlerContext,
        *,
        account_columns: Sequence[str] = SNAPSHOT_ACCOUNT_COLUMNS,
        bill_columns: Sequence[str] = SNAPSHOT_BILL_COLUMNS,
    ) -> None:
        """Write what the run changed: on a stored row only the ``*_columns`` change (none:
        a row another writer created first stays as it is); then the run's assessments and
        their ``risk.assessed`` (``ctx``: any context of the run, for its outbox)."""
        session = self.session
        upsert(
            session,
            ACCOUNTS,
            [row.values(ACCOUNTS.columns.keys()) for row in self.changed_accounts.values()],
            key="account_id",
            update=account_columns,
        )
        upsert(
            session,
            BILLS,
            [row.values(BILLS.columns.keys()) for row in self.changed_bills.values()],
            key="bill_id",
            update=bill_columns,
        )
        # The ORM may hold these rows from an earlier handler of this transaction: reload them when next used.
        expire_loaded(session, AccountView, self.changed_accounts)
        expire_loaded(session, BillView, self.changed_bills)
        upsert(session, RISK_ASSESSMENTS, self.assessments, key=None)
        if self.replies:
            ctx.outbox.emit_many(session, self.replies)
