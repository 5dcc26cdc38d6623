"""Today's worklist: the open collector tasks in priority order, read in SQL a page at a time.

The order, one rule for every reader (the desk's pages, ``baitiao collections worklist``):
more days past due first (a case's stage follows its DPD), then more owed, then the
customer's earliest pending promise sooner (a task with no pending promise last), then the
task id, so that the order is total and page N is rows N of the whole order. DPD and
amount come off the open tasks' index (``ix_collector_tasks_worklist``); the promise is
a subquery computed only for the rows a page reads.

A collector's worklist is their accounts' tasks: on PostgreSQL the account ids are bound
as one array (``= ANY``), not one parameter each: about 2,000 parameters, bound and
planned twice a page, were most of a collector's page's time. And the page is planned
for the array it is given: psycopg prepares a statement run five times, and PostgreSQL's
generic plan for it, which cannot know the array's length, walks the whole order and
filters it (twice as slow as a plan made for 2,000 accounts: docs/performance.md).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from decimal import Decimal

from sqlalchemy import ColumnElement, func, select, text
from sqlalchemy.orm import Session

from services.collections.models import CollectorTask, Customer, PromiseToPay
from shared.db import is_postgres, matches_any
from shared.money import from_fen


@dataclass(frozen=True)
class WorklistEntry:
    """One open task as a collector works it (the name and phone unmasked: mask to show)."""

    task_id: str
    account_id: str
    kind: str
    stage: str
    dpd: int
    amount: Decimal
    due_by: date
    promise_due: date | None
    name: str | None
    phone: str | None


def open_task_count(session: Session, accounts: Sequence[str] | None = None) -> int:
    """How many open tasks there are (of ``accounts`` only, when given)."""
    query = select(func.count()).select_from(CollectorTask).where(*_open_tasks(session, accounts))
    return int(session.scalar(query) or 0)


def open_tasks(
    session: Session, accounts: Sequence[str] | None = None, *, limit: int | None = None, offset: int = 0
) -> list[WorklistEntry]:
    """The open tasks in priority order (of ``accounts`` only, when given), ``limit`` of them
    from ``offset`` (every one when ``limit`` is None)."""
    if accounts is not None and not accounts:
        return []
    promise_due = (
        select(func.min(PromiseToPay.promised_date))
        .where(PromiseToPay.account_id == CollectorTask.account_id, PromiseToPay.status == "pending")
        .correlate(CollectorTask)
        .scalar_subquery()
    )
    query = (
        select(CollectorTask, Customer.name, Customer.phone, promise_due)
        .outerjoin(Customer, Customer.account_id == CollectorTask.account_id)
        .where(*_open_tasks(session, accounts))
        .order_by(
            CollectorTask.dpd.desc(),
            CollectorTask.amount_fen.desc(),
            promise_due.asc().nulls_last(),
            CollectorTask.task_id,
        )
        .limit(limit)
        .offset(offset)
    )
    return [
        WorklistEntry(
            t.task_id, t.account_id, t.kind, t.stage, t.dpd, from_fen(t.amount_fen), t.due_by, due, name, phone
        )
        for t, name, phone, due in session.execute(query)
    ]


def _open_tasks(session: Session, accounts: Sequence[str] | None) -> list[ColumnElement[bool]]:
    """The conditions of the open tasks (of ``accounts`` only, when given). On PostgreSQL,
    given accounts are one array parameter, and the transaction plans its statements for
    the ids it is given (the generic plan walks the whole order)."""
    where: list[ColumnElement[bool]] = [CollectorTask.status == "open"]
    if accounts is None:
        return where
    if is_postgres(session):
        session.execute(text("SET LOCAL plan_cache_mode = force_custom_plan"))
    return [*where, matches_any(session, CollectorTask.account_id, accounts)]
