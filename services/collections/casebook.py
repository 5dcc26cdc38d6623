"""The case as stored, turned into the domain's plain values, and the few state changes
that both the event handlers and the jobs make (closing a case, suppressing contacts).

Handlers and jobs load, call the domain (``services.collections.domain``), save and emit;
this module is the "load" and "save" they share, so a rule is written once.

Its length: every load and save of a case lives here, so that the lock order and the
opening of missing cases are written once for the handlers and the jobs.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable
from dataclasses import dataclass
from datetime import date, datetime, timezone
from functools import lru_cache
from typing import Any, TypeVar, overload

from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session

from services.collections.domain import (
    CaseView,
    ContactHistoryView,
    Stage,
    Strategy,
    TemplateCatalog,
    effective_grade,
    load_strategy,
    load_templates,
)
from services.collections.models import (
    Bill,
    CaseClosure,
    CollectionCase,
    CollectorTask,
    ContactAttempt,
    Customer,
    PlanInstallment,
    PromiseToPay,
)
from shared.db import upsert
from shared.events import payloads as p
from shared.rules import CollectionsRules

# emit(event_type, payload, aggregate_id): ctx.emit in a handler, the outbox in a job.
Emit = Callable[[str, p.Payload, str], object]
# A case as a run reads it: the ORM object, or a Core run's own record of a few columns.
Case = TypeVar("Case")


# --- time ------------------------------------------------------------------------------------


def utc(moment: datetime) -> datetime:
    """Stored instants are UTC: SQLite keeps no offset, so every row must agree on one."""
    if moment.tzinfo is None:
        raise ValueError("instants must be timezone-aware")
    return moment.astimezone(timezone.utc)


@overload
def aware(moment: datetime) -> datetime: ...
@overload
def aware(moment: datetime | None) -> datetime | None: ...
def aware(moment: datetime | None) -> datetime | None:
    """A stored instant back as an aware datetime (SQLite hands back naive UTC)."""
    if moment is None:
        return None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=timezone.utc)


# --- configuration ----------------------------------------------------------------------------


@lru_cache(maxsize=8)
def _catalog(templates_file: str | None) -> TemplateCatalog:
    return load_templates(templates_file)


@lru_cache(maxsize=8)
def _strategy(strategy_file: str | None, templates_file: str | None) -> Strategy:
    return load_strategy(strategy_file, templates=_catalog(templates_file))


def strategy_and_templates(rules: CollectionsRules) -> tuple[Strategy, TemplateCatalog]:
    """The validated strategy and templates (loaded once per file; a bad file fails loudly)."""
    return _strategy(rules.strategy_file, rules.templates_file), _catalog(rules.templates_file)


# --- cases ------------------------------------------------------------------------------------


def open_missing_cases(session: Session, opened_on: dict[str, date]) -> None:
    """Create the cases ``ensure_case`` would for these accounts (open, nothing owed yet,
    opened on the date given), in account order, with ``INSERT .. ON CONFLICT DO
    NOTHING``: a case that exists, or that another worker opens at the same time, is
    skipped, not an error."""
    rows = [
        {
            "account_id": account,
            "status": "open",
            "opened_on": on,
            "max_dpd": 0,
            "overdue_principal_fen": 0,
            "total_overdue_fen": 0,
            "plan_active": False,
            "promise_broken": False,
            "phone_reported_wrong": False,
        }
        for account, on in opened_on.items()
    ]
    upsert(session, CollectionCase.__table__, rows, key="account_id")


def lock_cases(session: Session, opened_on: dict[str, date]) -> dict[str, CollectionCase]:
    """A run's cases, locked (pk order) and read afresh; the missing ones created as
    ``ensure_case`` would, opened on the date given for the account (its first event's in
    the run), with ``INSERT .. ON CONFLICT DO NOTHING``: a case another worker opens at
    the same time is skipped, then locked with the rest."""
    return lock_cases_read_by(_select_cases, session, opened_on)


def lock_cases_read_by(
    read: Callable[[Session, Iterable[str]], dict[str, Case]], session: Session, opened_on: dict[str, date]
) -> dict[str, Case]:
    """:func:`lock_cases`, the cases read by ``read`` (which locks the cases of the accounts
    it is given, in pk order: every run locks in that one order), for a Core run that works
    on a few columns instead of ORM objects."""
    cases = read(session, opened_on)
    missing = [account for account in opened_on if account not in cases]
    if missing:
        open_missing_cases(session, {account: opened_on[account] for account in missing})
        cases.update(read(session, missing))
    return cases


def first_dates(accounts_and_dates: Iterable[tuple[str, date]]) -> dict[str, date]:
    """Each account's first date in a run (``(account, date)`` in message order): the date
    a case the run opens is opened on, as ``ensure_case`` on its first event would."""
    first: dict[str, date] = {}
    for account, on in accounts_and_dates:
        first.setdefault(account, on)
    return first


def _select_cases(session: Session, accounts: Iterable[str]) -> dict[str, CollectionCase]:
    query = (
        select(CollectionCase)
        .where(CollectionCase.account_id.in_(sorted(accounts)))
        .order_by(CollectionCase.pk)
        .with_for_update()
        .execution_options(populate_existing=True)
    )
    return {case.account_id: case for case in session.scalars(query)}


def ensure_case(session: Session, account_id: str, on: date | None = None) -> CollectionCase:
    """The account's case, created open (stage not judged yet) the first time it is needed."""
    case = session.scalar(select(CollectionCase).where(CollectionCase.account_id == account_id).with_for_update())
    if case is None:
        case = CollectionCase(
            account_id=account_id,
            status="open",
            opened_on=on,
            max_dpd=0,
            overdue_principal_fen=0,
            total_overdue_fen=0,
            plan_active=False,
            promise_broken=False,
            phone_reported_wrong=False,
        )
        session.add(case)
        session.flush()
    return case


def reopen_case(case: Any, on: date, *, keep_stage: bool) -> None:
    """Start a new episode: after a cure the stage starts afresh, after a defaulted plan
    it continues (so moving past the stage held before the plan is an escalation)."""
    case.status = "open"
    case.closed_reason = None
    case.closed_on = None
    case.opened_on = on
    case.promise_broken = False
    if not keep_stage:
        case.stage = None


def reopen_if_due(case: Any, on: date) -> None:
    """A cured case reopens when the account owes again on or after the cure (a new
    episode); a restructured case whose plan is over (completed) reopens for new bills.
    ``case``: the ORM object, or a Core run's record with the same attributes."""
    if case.status != "closed" or case.plan_active:
        return
    if case.closed_reason == "cured" and (case.closed_on is None or on >= case.closed_on):
        reopen_case(case, on, keep_stage=False)
    elif case.closed_reason == "restructured":
        reopen_case(case, on, keep_stage=False)


def keep_pending_promises(session: Session, kept_on: dict[str, date]) -> None:
    """Nothing is overdue any more on these accounts: every promise still pending was kept,
    decided on the account's date (``kept_on``): one ``UPDATE`` per date."""
    by_date: dict[date, list[str]] = {}
    for account, on in kept_on.items():
        by_date.setdefault(on, []).append(account)
    for on, accounts in sorted(by_date.items()):
        session.execute(
            PromiseToPay.__table__.update()
            .where(
                PromiseToPay.account_id.in_(sorted(accounts)),
                PromiseToPay.status == "pending",
            )
            .values(status="kept", decided_on=on)
        )


def close_case(
    session: Session,
    emit: Emit,
    case: CollectionCase,
    reason: str,
    on: date,
    *,
    open_tasks: list[CollectorTask] | None = None,
) -> bool:
    """Close an open case with its reason (collection.case.closed); False when already closed.

    Queued contacts and open tasks of the case go with it: nothing is sent for a case that
    is no longer collected (a plan's own reminders excepted, see suppress_queued).
    ``open_tasks``: the case's open tasks when the caller read them already (a run of
    events); else they are read here.
    """
    if case.status == "closed":
        return False
    case.status = "closed"
    case.closed_reason = reason
    case.closed_on = on
    case.promise_broken = False
    session.add(CaseClosure(account_id=case.account_id, closed_on=on, reason=reason, stage=case.stage))
    emit("collection.case.closed", p.CollectionCaseClosed(account_id=case.account_id, reason=reason), case.account_id)
    cancel_open_tasks(session, case.account_id, open_tasks)
    return True


def cancel_open_tasks(session: Session, account_id: str, known: list[CollectorTask] | None = None) -> int:
    """Cancel the account's open collector tasks; ``known``: the ones a run already read."""
    tasks = (
        known
        if known is not None
        else session.scalars(
            select(CollectorTask).where(CollectorTask.account_id == account_id, CollectorTask.status == "open")
        ).all()
    )
    open_tasks = [task for task in tasks if task.status == "open"]
    for task in open_tasks:
        task.status = "cancelled"
    return len(open_tasks)


def suppress_queued(session: Session, emit: Emit, account_id: str, reason: str, *, keep_plan_reminders: bool) -> int:
    """Suppress every contact still waiting to go out, each recorded and announced
    (contact.suppressed): a queued contact must never outlive the reason it was planned for."""
    contacts = session.scalars(
        select(ContactAttempt)
        .where(
            ContactAttempt.account_id == account_id,
            ContactAttempt.status.in_(("queued", "sending")),
        )
        .order_by(ContactAttempt.id)
        .with_for_update()
    ).all()
    count = 0
    for contact in contacts:
        if keep_plan_reminders and contact.kind == "plan_reminder":
            continue
        suppress(emit, contact, reason)
        count += 1
    return count


def suppress(emit: Emit, contact: ContactAttempt, reason: str) -> None:
    """Record a contact as suppressed with its reason and say so on the bus."""
    contact.status = "suppressed"
    contact.reason = reason
    emit(
        "contact.suppressed",
        p.ContactSuppressed(
            account_id=contact.account_id,
            channel=contact.channel,
            template=contact.template,
            reason=reason,
        ),
        contact.account_id,
    )


# --- the case as the domain sees it ----------------------------------------------------------


@dataclass(frozen=True)
class CaseFacts:
    """The CaseView plus what a message needs: the bill (or installment) it is about."""

    view: CaseView
    bill: Bill | None  # the nearest unpaid bill (pre-due) or the oldest overdue one
    installment: PlanInstallment | None
    amount_fen: int  # what the customer should pay now


def unpaid_bills(session: Session, account_id: str) -> list[Bill]:
    """Bills still collectable by the strategy: unpaid, not moved into a plan."""
    return list(
        session.scalars(
            select(Bill)
            .where(
                Bill.account_id == account_id,
                Bill.unpaid_fen > Bill.disputed_fen,  # a disputed amount is not collected
                Bill.plan_id.is_(None),
            )
            .order_by(Bill.due_date, Bill.bill_id)
        ).all()
    )


def next_installment(session: Session, plan_id: str | None) -> PlanInstallment | None:
    if plan_id is None:
        return None
    return session.scalar(
        select(PlanInstallment)
        .where(
            PlanInstallment.plan_id == plan_id,
            PlanInstallment.status != "paid",
        )
        .order_by(PlanInstallment.period)
        .limit(1)
    )


def case_facts(
    session: Session,
    case: CollectionCase,
    business_date: date,
    rules: CollectionsRules,
    *,
    contact_bill_id: str | None = None,
) -> CaseFacts | None:
    """The case on a business date, or None when there is nothing to collect or remind.

    DPD is counted from the oldest unpaid bill's due date (negative before due): the job
    is then a pure function of the stored state and the date, whatever day it is re-run.
    ``contact_bill_id``: the bill a queued contact was planned about (is it paid now?).
    """
    customer = session.get(Customer, case.account_id)
    bills = unpaid_bills(session, case.account_id)
    installment = next_installment(session, case.active_plan_id) if case.plan_active else None
    if not bills and installment is None and contact_bill_id is None:
        return None
    reminded = session.get(Bill, contact_bill_id) if contact_bill_id is not None else None
    return facts_from(
        case,
        business_date,
        rules,
        customer=customer,
        bills=bills,
        installment=installment,
        last_tasks=_last_tasks_on(session, case),
        promise_pending_until=_promise_pending_until(session, case.account_id),
        contact_bill_id=contact_bill_id,
        contact_bill=reminded,
    )


def facts_from(
    case: CollectionCase,
    business_date: date,
    rules: CollectionsRules,
    *,
    customer: Customer | None,
    bills: list[Bill],
    installment: PlanInstallment | None,
    last_tasks: dict[str, date],
    promise_pending_until: date | None,
    contact_bill_id: str | None = None,
    contact_bill: Bill | None = None,
) -> CaseFacts | None:
    """``case_facts`` from already loaded rows (the jobs load a whole slice at once, see
    :class:`SliceFacts`): ``bills`` the collectable unpaid bills by due date, ``installment``
    the plan's next unpaid one (plan_active cases only), ``contact_bill`` the row of
    ``contact_bill_id`` (None: no such bill)."""
    if not bills and installment is None and contact_bill_id is None:
        return None
    oldest = bills[0] if bills else None
    dpd = (business_date - oldest.due_date).days if oldest else 0
    overdue = [b for b in bills if b.due_date < business_date]
    cured = case.status == "closed" and case.closed_reason in ("cured", "charged_off")
    if oldest is None and not case.plan_active:
        cured = True  # nothing left unpaid at all
    bill_paid = False
    if contact_bill_id is not None:
        bill_paid = (
            contact_bill is None
            or contact_bill.unpaid_fen <= contact_bill.disputed_fen
            or contact_bill.plan_id is not None
        )
    view = CaseView(
        account_id=case.account_id,
        dpd=dpd,
        grade=effective_grade(case.grade, rules),
        last_call_task_on=last_tasks.get("call"),
        agency_referred_on=last_tasks.get("agency"),
        legal_case_opened_on=last_tasks.get("legal"),
        plan_active=case.plan_active,
        plan_installment_due_on=installment.due_date if installment else None,
        promise_pending_until=promise_pending_until,
        promise_broken=case.promise_broken,
        cured=cured,
        bill_paid=bill_paid,
        own_phone=customer.phone if customer else None,
        phone_reported_wrong=case.phone_reported_wrong,
        paused=case.paused_on is not None,
    )
    amount = _amount_due(case, overdue, oldest, installment)
    return CaseFacts(view=view, bill=oldest, installment=installment, amount_fen=amount)


@dataclass
class SliceFacts:
    """What ``case_facts`` reads, for a whole slice of cases in a few set-based queries,
    keyed by account (the jobs' per-case loop then runs without queries)."""

    customers: dict[str, Customer]
    bills: dict[str, list[Bill]]  # collectable unpaid bills, by due date then id
    installments: dict[str, PlanInstallment]  # plan_active cases: the next unpaid installment
    last_tasks: dict[str, dict[str, date]]  # kind -> last created_on in the current episode
    pending_promises: dict[str, list[PromiseToPay]]  # by id
    bills_by_id: dict[str, Bill]  # the bills asked for by id (contacts' bills)

    @classmethod
    def load(
        cls, session: Session, cases: list[CollectionCase], *, tolerance_fen: int, bill_ids: Collection[str] = ()
    ) -> SliceFacts:
        """Read the stored rows of ``cases`` (as stored: call before changing them). A bill is
        collectable when it owes more than its disputed amount plus the arrears tolerance
        (``overdue.arrears_tolerance``, RULES 2.7: within it a bill is never overdue)."""
        accounts = sorted({c.account_id for c in cases})
        customers: dict[str, Customer] = {}
        bills: dict[str, list[Bill]] = {}
        last_tasks: dict[str, dict[str, date]] = {}
        promises: dict[str, list[PromiseToPay]] = {}
        installments: dict[str, PlanInstallment] = {}
        bills_by_id: dict[str, Bill] = {}
        if accounts:
            for customer in session.scalars(select(Customer).where(Customer.account_id.in_(accounts))):
                customers[customer.account_id] = customer
            for bill in session.scalars(
                select(Bill)
                .where(
                    Bill.account_id.in_(accounts),
                    Bill.unpaid_fen > Bill.disputed_fen + tolerance_fen,  # disputed: not collected
                    Bill.plan_id.is_(None),
                )
                .order_by(Bill.account_id, Bill.due_date, Bill.bill_id)
            ):
                bills.setdefault(bill.account_id, []).append(bill)
            # the last task of each kind in the case's current episode (created_on >= opened_on)
            query = (
                select(CollectorTask.account_id, CollectorTask.kind, func.max(CollectorTask.created_on))
                .join(
                    CollectionCase,
                    CollectionCase.account_id == CollectorTask.account_id,
                )
                .where(
                    CollectorTask.account_id.in_(accounts),
                    or_(CollectionCase.opened_on.is_(None), CollectorTask.created_on >= CollectionCase.opened_on),
                )
                .group_by(CollectorTask.account_id, CollectorTask.kind)
            )
            for account_id, kind, on in session.execute(query).all():
                if on is not None:
                    last_tasks.setdefault(account_id, {})[kind] = _as_date(on)
            for promise in session.scalars(
                select(PromiseToPay)
                .where(
                    PromiseToPay.account_id.in_(accounts),
                    PromiseToPay.status == "pending",
                )
                .order_by(PromiseToPay.id)
            ):
                promises.setdefault(promise.account_id, []).append(promise)
            plans = {c.active_plan_id: c.account_id for c in cases if c.plan_active and c.active_plan_id is not None}
            if plans:
                for installment in session.scalars(
                    select(PlanInstallment)
                    .where(
                        PlanInstallment.plan_id.in_(sorted(plans)),
                        PlanInstallment.status != "paid",
                    )
                    .order_by(PlanInstallment.plan_id, PlanInstallment.period)
                ):
                    installments.setdefault(plans[installment.plan_id], installment)
        wanted = sorted(set(bill_ids))
        if wanted:
            for bill in session.scalars(select(Bill).where(Bill.bill_id.in_(wanted))):
                bills_by_id[bill.bill_id] = bill
        return cls(customers, bills, installments, last_tasks, promises, bills_by_id)

    def facts(
        self, case: CollectionCase, business_date: date, rules: CollectionsRules, *, contact_bill_id: str | None = None
    ) -> CaseFacts | None:
        """``case_facts`` of one case of the slice (promises as they are in memory now)."""
        account = case.account_id
        pending = [pr.pause_until for pr in self.pending_promises.get(account, ()) if pr.status == "pending"]
        return facts_from(
            case,
            business_date,
            rules,
            customer=self.customers.get(account),
            bills=self.bills.get(account, []),
            installment=self.installments.get(account) if case.plan_active else None,
            last_tasks=self.last_tasks.get(account, {}),
            promise_pending_until=max(pending) if pending else None,
            contact_bill_id=contact_bill_id,
            contact_bill=self.bills_by_id.get(contact_bill_id) if contact_bill_id is not None else None,
        )


def _amount_due(
    case: CollectionCase, overdue: list[Bill], oldest: Bill | None, installment: PlanInstallment | None
) -> int:
    """Plan reminder: the installment; overdue: the total overdue (principal, penalty, fees)
    from accounts' latest snapshot, at least the overdue principal; pre-due: the bill."""
    if case.plan_active and installment is not None:
        return installment.total_fen
    if overdue:
        return max(case.total_overdue_fen, sum(b.unpaid_fen for b in overdue))
    return oldest.unpaid_fen if oldest else 0


def _last_task_on(session: Session, case: CollectionCase, kind: str) -> date | None:
    """When the last task of this kind was created in the current episode of the case."""
    query = select(func.max(CollectorTask.created_on)).where(
        CollectorTask.account_id == case.account_id, CollectorTask.kind == kind
    )
    if case.opened_on is not None:
        query = query.where(CollectorTask.created_on >= case.opened_on)
    return session.scalar(query)


def _last_tasks_on(session: Session, case: CollectionCase) -> dict[str, date]:
    """``_last_task_on`` for every kind in one query (the daily run asks for three kinds
    per case)."""
    query = (
        select(CollectorTask.kind, func.max(CollectorTask.created_on))
        .where(CollectorTask.account_id == case.account_id)
        .group_by(CollectorTask.kind)
    )
    if case.opened_on is not None:
        query = query.where(CollectorTask.created_on >= case.opened_on)
    return {kind: _as_date(on) for kind, on in session.execute(query).all() if on is not None}


def _as_date(value: date | str) -> date:
    return value if isinstance(value, date) else date.fromisoformat(str(value)[:10])


def _promise_pending_until(session: Session, account_id: str) -> date | None:
    return session.scalar(
        select(func.max(PromiseToPay.pause_until)).where(
            PromiseToPay.account_id == account_id, PromiseToPay.status == "pending"
        )
    )


def contact_history(session: Session, account_id: str, *, exclude_id: int | None = None) -> ContactHistoryView:
    """SMS handed to the gateway (sending or sent) and call attempts, for the caps."""
    query = select(ContactAttempt.channel, ContactAttempt.attempted_at).where(
        ContactAttempt.account_id == account_id,
        ContactAttempt.status.in_(("sending", "sent", "attempted")),
        ContactAttempt.attempted_at.is_not(None),
    )
    if exclude_id is not None:
        query = query.where(ContactAttempt.id != exclude_id)
    sms: list[datetime] = []
    calls: list[datetime] = []
    for channel, moment in session.execute(query).all():
        assert moment is not None  # the query keeps attempted contacts only
        (sms if channel == "sms" else calls).append(aware(moment))
    return ContactHistoryView(sms_sent_at=tuple(sms), call_attempts_at=tuple(calls))


def stage_value(stage: str | None) -> Stage | None:
    return Stage(stage) if stage else None


def contact_histories(session: Session, account_ids: Collection[str]) -> dict[str, list[tuple[int, str, datetime]]]:
    """``contact_history``'s rows for many accounts: (contact id, channel, aware instant) per
    account, so that a caller can leave a contact out (see :func:`history_view`)."""
    rows: dict[str, list[tuple[int, str, datetime]]] = {}
    accounts = sorted(set(account_ids))
    if not accounts:
        return rows
    query = (
        select(ContactAttempt.account_id, ContactAttempt.id, ContactAttempt.channel, ContactAttempt.attempted_at)
        .where(
            ContactAttempt.account_id.in_(accounts),
            ContactAttempt.status.in_(("sending", "sent", "attempted")),
            ContactAttempt.attempted_at.is_not(None),
        )
        .order_by(ContactAttempt.account_id, ContactAttempt.id)
    )
    for account_id, contact_id, channel, moment in session.execute(query).all():
        assert moment is not None  # the query keeps attempted contacts only
        rows.setdefault(account_id, []).append((contact_id, channel, aware(moment)))
    return rows


def history_view(rows: list[tuple[int, str, datetime]], *, exclude_id: int | None = None) -> ContactHistoryView:
    """The ContactHistoryView of one account's ``contact_histories`` rows."""
    sms = tuple(m for i, ch, m in rows if ch == "sms" and i != exclude_id)
    calls = tuple(m for i, ch, m in rows if ch != "sms" and i != exclude_id)
    return ContactHistoryView(sms_sent_at=sms, call_attempts_at=calls)
