"""The collections service's tables (its database only). Money is integer fen.

What collections keeps, all built from events (ARCHITECTURE: it owns cases, contact
plans, contact history, SMS messages, collector tasks and outcomes, promises to pay):

- ``customers``: the ONLY place a customer's name and phone are stored in the whole
  system outside the granting system; they are read to send an SMS and nowhere else.
  Events and logs carry masked forms only.
- ``bills`` and ``plans`` / ``plan_installments``: the projection of accounts' bills and
  restructuring's plans that the strategy needs (due dates, unpaid principal, plan state).
- ``cases``: one per account, its stage, grade, delinquency snapshot and status.
- ``case_stage_history`` and ``case_closures``: what the KPIs (roll and cure rates) read.
- ``contact_attempts``: every contact planned, sent or suppressed, with its reason.
- ``sms_messages``: what went to the gateway and what the gateway said.
- ``collector_tasks``, ``promises``, ``repayments``.

Timestamps are stored in UTC (SQLite keeps no offset); read them with
:func:`services.collections.timeutil.aware`.
"""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import BigInteger, Boolean, Date, DateTime, Index, Integer, String, Text, UniqueConstraint, text
from sqlalchemy.orm import Mapped, mapped_column

from shared.bus.handling import BusTables
from shared.bus.tables import add_bus_tables
from shared.db import BigId, service_base
from shared.job_runs import JobRunColumns

Base = service_base()
_bus = add_bus_tables(Base.metadata)
BUS = BusTables(_bus["outbox"], _bus["inbox"], _bus["dead_letters"])

Fen = BigInteger


class Customer(Base):
    """Contact data from ``credit.line.granted``: personal data, stored here only, never logged."""

    __tablename__ = "customers"

    account_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    customer_id: Mapped[str] = mapped_column(String(64), index=True)
    name: Mapped[str] = mapped_column(String(128))
    phone: Mapped[str] = mapped_column(String(32))
    opened_on: Mapped[date] = mapped_column(Date)


class CollectionCase(Base):
    """The collection case of one account.

    ``status`` is ``open`` or ``closed`` (``closed_reason`` cured / restructured /
    charged_off). A cured case reopens when the account goes overdue again or a new
    bill is issued; ``opened_on`` starts the episode (tasks before it do not count).
    ``stage`` is the stage last acted on by the daily job (None: not judged yet).
    The delinquency snapshot is kept with its (business date, sequence) so that an
    older ``account.delinquency.updated`` never overwrites a newer one.
    """

    __tablename__ = "cases"

    pk: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    account_id: Mapped[str] = mapped_column(String(64), unique=True)
    status: Mapped[str] = mapped_column(String(16), default="open")
    opened_on: Mapped[date | None] = mapped_column(Date, nullable=True)
    closed_reason: Mapped[str | None] = mapped_column(String(16), nullable=True)
    closed_on: Mapped[date | None] = mapped_column(Date, nullable=True)
    stage: Mapped[str | None] = mapped_column(String(16), nullable=True)
    grade: Mapped[str | None] = mapped_column(String(1), nullable=True)  # None: not assessed (counts as C)
    grade_seq: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    max_dpd: Mapped[int] = mapped_column(Integer, default=0)
    overdue_principal_fen: Mapped[int] = mapped_column(Fen, default=0)
    total_overdue_fen: Mapped[int] = mapped_column(Fen, default=0)
    delinquency_as_of: Mapped[date | None] = mapped_column(Date, nullable=True)
    delinquency_seq: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    plan_active: Mapped[bool] = mapped_column(Boolean, default=False)
    active_plan_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    promise_broken: Mapped[bool] = mapped_column(Boolean, default=False)
    phone_reported_wrong: Mapped[bool] = mapped_column(Boolean, default=False)
    # The account's delinquency pause (RULES 2.8): no contact while ``paused_on`` is set;
    # ``resumed_pause_on`` is the start of the last pause resumed (a late ``delinquency.paused``
    # of that pause changes nothing).
    paused_on: Mapped[date | None] = mapped_column(Date, nullable=True)
    pause_reason: Mapped[str | None] = mapped_column(String(24), nullable=True)
    resumed_pause_on: Mapped[date | None] = mapped_column(Date, nullable=True)


class Bill(Base):
    """Accounts' bill as collections sees it: due date and unpaid principal.

    ``state_date``/``state_seq``: the business date and sequence of the last absolute
    snapshot (bill.overdue, account.delinquency.updated); a repayment older than the
    snapshot is already in it and is not subtracted again.
    """

    __tablename__ = "bills"

    bill_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    account_id: Mapped[str] = mapped_column(String(64), index=True)
    due_date: Mapped[date] = mapped_column(Date)
    amount_fen: Mapped[int] = mapped_column(Fen)
    unpaid_fen: Mapped[int] = mapped_column(Fen)
    dpd: Mapped[int] = mapped_column(Integer, default=0)
    state_date: Mapped[date | None] = mapped_column(Date, nullable=True)
    state_seq: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    plan_id: Mapped[str | None] = mapped_column(String(64), nullable=True)  # moved into a plan
    charged_off_on: Mapped[date | None] = mapped_column(Date, nullable=True)
    # The pre-report notice about this bill (RULES 5.4): the date it went out, by SMS or letter.
    report_notice_on: Mapped[date | None] = mapped_column(Date, nullable=True)
    # principal set aside by open disputes (RULES 4.6): not collected while disputed
    disputed_fen: Mapped[int] = mapped_column(Fen, default=0, server_default="0")


class Plan(Base):
    """A restructuring plan: while ``active`` only its own installment reminders go out."""

    __tablename__ = "plans"

    plan_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    account_id: Mapped[str] = mapped_column(String(64), index=True)
    status: Mapped[str] = mapped_column(String(16))  # active | defaulted | completed
    activated_on: Mapped[date] = mapped_column(Date)
    ended_on: Mapped[date | None] = mapped_column(Date, nullable=True)


class PlanInstallment(Base):
    __tablename__ = "plan_installments"

    plan_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    period: Mapped[int] = mapped_column(Integer, primary_key=True)
    due_date: Mapped[date] = mapped_column(Date)
    total_fen: Mapped[int] = mapped_column(Fen)
    status: Mapped[str] = mapped_column(String(16), default="due")  # due | overdue | paid


class CaseStageHistory(Base):
    """The stage a case was in from a business date on: what roll and cure rates read."""

    __tablename__ = "case_stage_history"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    account_id: Mapped[str] = mapped_column(String(64), index=True)
    business_date: Mapped[date] = mapped_column(Date)
    stage: Mapped[str] = mapped_column(String(16))


class CaseClosure(Base):
    """A case closed (cured, restructured, charged_off), with the stage it was in."""

    __tablename__ = "case_closures"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    account_id: Mapped[str] = mapped_column(String(64), index=True)
    closed_on: Mapped[date] = mapped_column(Date)
    reason: Mapped[str] = mapped_column(String(16))
    stage: Mapped[str | None] = mapped_column(String(16), nullable=True)


class ContactAttempt(Base):
    """Every contact, planned, sent or suppressed, with its reason (RULES 6, compliance).

    ``plan_key`` makes planning idempotent: ``account|date|kind|template`` (None for call
    attempts reported by collectors). ``status``: queued → sending → sent | failed, or
    suppressed (``reason``); a call attempt reported by a collector is ``attempted``
    with the outcome as its reason. ``deferrals`` counts quiet-hours postponements.
    """

    __tablename__ = "contact_attempts"
    __table_args__ = (UniqueConstraint("plan_key", name="uq_contact_attempts_plan_key"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    plan_key: Mapped[str | None] = mapped_column(String(200), nullable=True)
    account_id: Mapped[str] = mapped_column(String(64), index=True)
    business_date: Mapped[date] = mapped_column(Date, index=True)
    channel: Mapped[str] = mapped_column(String(8))  # sms | call
    kind: Mapped[str] = mapped_column(String(20))  # sms | plan_invitation | plan_reminder | call
    template: Mapped[str] = mapped_column(String(64))  # the SMS template, or "call"
    stage: Mapped[str] = mapped_column(String(16))
    dpd: Mapped[int] = mapped_column(Integer, default=0)
    trigger: Mapped[str] = mapped_column(String(20), default="scheduled")
    bill_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    task_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    status: Mapped[str] = mapped_column(String(16))
    reason: Mapped[str | None] = mapped_column(String(32), nullable=True)
    planned_for: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    attempted_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    sent_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    deferrals: Mapped[int] = mapped_column(Integer, default=0)
    send_attempts: Mapped[int] = mapped_column(Integer, default=0)
    message_id: Mapped[str | None] = mapped_column(String(64), nullable=True)


Index("ix_contact_attempts_due", ContactAttempt.status, ContactAttempt.planned_for)


class SmsMessage(Base):
    """One SMS handed (or about to be handed) to the gateway. ``message_id`` is also the
    idempotency key the gateway dedups on, so a retry never sends twice. The text holds
    the masked name only; the phone is kept masked here (the real one is in customers)."""

    __tablename__ = "sms_messages"

    message_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    idempotency_key: Mapped[str] = mapped_column(String(64), unique=True)
    contact_id: Mapped[int] = mapped_column(BigInteger, unique=True)
    account_id: Mapped[str] = mapped_column(String(64), index=True)
    template: Mapped[str] = mapped_column(String(64))
    phone_masked: Mapped[str] = mapped_column(String(32))
    text: Mapped[str] = mapped_column(Text)
    segments: Mapped[int] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(16))  # queued | sent | delivered | failed
    gateway_attempts: Mapped[int] = mapped_column(Integer, default=0)
    gateway_response: Mapped[str | None] = mapped_column(Text, nullable=True)
    sent_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    reported_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


class CollectorTask(Base):
    """Work for people: a call, an agency referral, a legal case.

    ``status``: open → done (an outcome recorded) | superseded (a newer task of the
    same kind) | cancelled (the case closed). ``dpd`` and ``amount_fen`` at creation
    order the worklist.
    """

    __tablename__ = "collector_tasks"
    __table_args__ = (UniqueConstraint("account_id", "created_on", "kind", name="uq_collector_tasks_day_kind"),)

    task_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    account_id: Mapped[str] = mapped_column(String(64), index=True)
    kind: Mapped[str] = mapped_column(String(8))  # call | agency | legal
    stage: Mapped[str] = mapped_column(String(16))
    dpd: Mapped[int] = mapped_column(Integer)
    amount_fen: Mapped[int] = mapped_column(Fen)
    trigger: Mapped[str] = mapped_column(String(20))
    created_on: Mapped[date] = mapped_column(Date)
    due_by: Mapped[date] = mapped_column(Date)
    status: Mapped[str] = mapped_column(String(16), default="open")
    outcome: Mapped[str | None] = mapped_column(String(20), nullable=True)
    outcome_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


# The desk's worklist order (baitiao/desk/reads.py), open tasks only: a page is read off the
# index in order; a collector's open tasks are found by account.
_OPEN = text("status = 'open'")
Index(
    "ix_collector_tasks_worklist",
    CollectorTask.dpd.desc(),
    CollectorTask.amount_fen.desc(),
    CollectorTask.task_id,
    postgresql_where=_OPEN,
    sqlite_where=_OPEN,
)
Index("ix_collector_tasks_open_account", CollectorTask.account_id, postgresql_where=_OPEN, sqlite_where=_OPEN)


class PromiseToPay(Base):
    """A promise from a collector's outcome: pauses contact through ``pause_until``.

    ``status``: pending → kept | broken (judged by the daily job).
    """

    __tablename__ = "promises"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    account_id: Mapped[str] = mapped_column(String(64), index=True)
    task_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    recorded_on: Mapped[date] = mapped_column(Date)
    promised_date: Mapped[date] = mapped_column(Date)
    promised_amount_fen: Mapped[int | None] = mapped_column(Fen, nullable=True)
    pause_until: Mapped[date] = mapped_column(Date)
    status: Mapped[str] = mapped_column(String(16), default="pending")
    decided_on: Mapped[date | None] = mapped_column(Date, nullable=True)


class Repayment(Base):
    """Repayments applied (from ``repayment.applied``): what keeps a promise."""

    __tablename__ = "repayments"

    payment_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    account_id: Mapped[str] = mapped_column(String(64), index=True)
    amount_fen: Mapped[int] = mapped_column(Fen)
    applied_on: Mapped[date] = mapped_column(Date)


class JobRun(JobRunColumns, Base):
    """A scheduled job's run for a business date: collections-daily catches up from it."""

    __tablename__ = "job_runs"
