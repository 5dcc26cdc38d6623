"""The restructuring service's tables (its database only). Money is integer fen.

Two kinds of tables live here:

* the **projection** of what restructuring needs to know about accounts and bills,
  built only from events (``credit.line.granted``, ``bill.*``,
  ``account.delinquency.updated``, ``account.cured``, ``repayment.applied``): no
  other service's tables are ever read;
* what restructuring **owns**: risk assessments, offer requests and offers, plans,
  their installments, adjustments, payments received for plans, and the job runs.

Out-of-order safety: every bill row remembers the position of the event its figures
came from (``as_of_date``, ``as_of_seq``: the business date and the envelope's
per-producer ``sequence``). An event older than that position never overwrites it.
Rates are stored as decimal strings (exact, and as configured), never as floats.
"""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import BigInteger, Boolean, Date, DateTime, Index, Integer, String, Text, text
from sqlalchemy.orm import Mapped, mapped_column

from services.restructuring.domain.schedule import Method
from shared.bus.answers import add_answers_table
from shared.bus.handling import BusTables
from shared.bus.tables import add_bus_tables
from shared.job_runs import JobRunColumns
from shared.db import BigId, service_base

Base = service_base()
_bus = add_bus_tables(Base.metadata)
BUS = BusTables(_bus["outbox"], _bus["inbox"], _bus["dead_letters"])
ANSWERS = add_answers_table(Base.metadata)  # the first answer to each command, for its retries

Fen = BigInteger


# --- projection (built from events) ----------------------------------------------------


class AccountView(Base):
    """What restructuring knows about one credit line.

    ``delinquency_as_of``/``delinquency_seq`` are the position of the newest
    delinquency snapshot applied (``account.delinquency.updated`` or ``account.cured``);
    ``episode_assessed`` says the risk of the current overdue episode was already
    assessed (reset on cure), so ``risk.assessed`` goes out once when it starts.
    """

    __tablename__ = "account_views"

    account_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    opened_on: Mapped[date | None] = mapped_column(Date, nullable=True)
    monthly_income_fen: Mapped[int | None] = mapped_column(Fen, nullable=True)
    max_dpd: Mapped[int] = mapped_column(Integer, default=0)
    delinquency_as_of: Mapped[date | None] = mapped_column(Date, nullable=True)
    delinquency_seq: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    episode_assessed: Mapped[bool] = mapped_column(Boolean, default=False)
    cured_on: Mapped[date | None] = mapped_column(Date, nullable=True)
    active_plan_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    last_grade: Mapped[str | None] = mapped_column(String(1), nullable=True)
    last_score: Mapped[int | None] = mapped_column(Integer, nullable=True)
    # The delinquency pause (RULES 2.8): plan monitoring holds while ``paused_on`` is set;
    # ``resumed_pause_on`` the start of the last pause resumed (a late pause of it is ignored).
    paused_on: Mapped[date | None] = mapped_column(Date, nullable=True)
    resumed_pause_on: Mapped[date | None] = mapped_column(Date, nullable=True)


class BillView(Base):
    """One bill of an account, with what is still unpaid on it as last reported.

    ``overdue_on`` is the business date it first went overdue (kept after a cure: the
    scorecard counts the bills that went overdue in the last 12 months);
    ``plan_id`` is set once a plan restructured it (it then no longer counts for DPD).
    """

    __tablename__ = "bill_views"

    bill_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    account_id: Mapped[str] = mapped_column(String(64), index=True)
    statement_date: Mapped[date | None] = mapped_column(Date, nullable=True)
    due_date: Mapped[date | None] = mapped_column(Date, nullable=True)
    amount_fen: Mapped[int | None] = mapped_column(Fen, nullable=True)  # billed principal
    unpaid_principal_fen: Mapped[int] = mapped_column(Fen, default=0)
    penalty_fen: Mapped[int] = mapped_column(Fen, default=0)
    late_fee_fen: Mapped[int] = mapped_column(Fen, default=0)
    dpd: Mapped[int] = mapped_column(Integer, default=0)
    max_dpd: Mapped[int] = mapped_column(Integer, default=0)
    overdue_on: Mapped[date | None] = mapped_column(Date, nullable=True)
    plan_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    as_of_date: Mapped[date | None] = mapped_column(Date, nullable=True)
    as_of_seq: Mapped[int | None] = mapped_column(BigInteger, nullable=True)


# --- owned by restructuring ------------------------------------------------------------


class RiskAssessmentRow(Base):
    """Every ``risk.assessed`` we emitted, with the facts it was computed from."""

    __tablename__ = "risk_assessments"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    account_id: Mapped[str] = mapped_column(String(64), index=True)
    assessed_on: Mapped[date] = mapped_column(Date)
    trigger: Mapped[str] = mapped_column(String(16))  # first_overdue | offer_request
    request_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    score: Mapped[int] = mapped_column(Integer)
    grade: Mapped[str] = mapped_column(String(1))
    factors: Mapped[str] = mapped_column(Text)  # JSON [{name, points}]
    current_dpd: Mapped[int] = mapped_column(Integer)
    overdue_bills_12m: Mapped[int] = mapped_column(Integer)
    months_on_book: Mapped[int] = mapped_column(Integer)
    unpaid_total_fen: Mapped[int] = mapped_column(Fen)
    monthly_income_fen: Mapped[int | None] = mapped_column(Fen, nullable=True)


class OfferRequest(Base):
    """One ``plan.offers.requested``: answered once, whatever the redeliveries."""

    __tablename__ = "offer_requests"

    request_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    account_id: Mapped[str] = mapped_column(String(64), index=True)
    requested_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    outcome: Mapped[str] = mapped_column(String(16))  # offered | ineligible
    reason: Mapped[str | None] = mapped_column(String(64), nullable=True)
    grade: Mapped[str | None] = mapped_column(String(1), nullable=True)


class OfferRow(Base):
    """One disclosed offer. ``bill_ids`` (JSON) are the overdue bills it restructures;
    ``schedule`` (JSON) is the schedule as disclosed (computed as if accepted on the
    offer day; the plan's own schedule is rebuilt from the acceptance date)."""

    __tablename__ = "offers"

    offer_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    request_id: Mapped[str] = mapped_column(String(64), index=True)
    account_id: Mapped[str] = mapped_column(String(64), index=True)
    grade: Mapped[str] = mapped_column(String(1))
    term: Mapped[int] = mapped_column(Integer)
    method: Mapped[Method] = mapped_column(String(24))
    monthly_fee_rate: Mapped[str] = mapped_column(String(16))  # decimal string
    principal_fen: Mapped[int] = mapped_column(Fen)
    total_fee_fen: Mapped[int] = mapped_column(Fen)
    apr: Mapped[str] = mapped_column(String(16))  # decimal string, four decimals
    monthly_payment_fen: Mapped[int] = mapped_column(Fen)
    schedule: Mapped[str] = mapped_column(Text)
    bill_ids: Mapped[str] = mapped_column(Text)
    offered_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    status: Mapped[str] = mapped_column(String(16))  # offered | accepted | expired | withdrawn
    plan_id: Mapped[str | None] = mapped_column(String(64), nullable=True)


class Plan(Base):
    """An accepted restructuring plan. ``pk`` is dense so the monitor can chunk by range."""

    __tablename__ = "plans"

    pk: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    plan_id: Mapped[str] = mapped_column(String(64), unique=True)
    offer_id: Mapped[str] = mapped_column(String(64), unique=True)
    account_id: Mapped[str] = mapped_column(String(64), index=True)
    status: Mapped[str] = mapped_column(String(16))  # active | completed | defaulted
    method: Mapped[Method] = mapped_column(String(24))
    monthly_fee_rate: Mapped[str] = mapped_column(String(16))
    principal_fen: Mapped[int] = mapped_column(Fen)
    term: Mapped[int] = mapped_column(Integer)  # current number of periods (after adjustment)
    start_date: Mapped[date] = mapped_column(Date)  # acceptance date: anchor of every due date
    accepted_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    adjustments_made: Mapped[int] = mapped_column(Integer, default=0)
    bill_ids: Mapped[str] = mapped_column(Text)  # JSON list
    ended_on: Mapped[date | None] = mapped_column(Date, nullable=True)
    fees_waived_fen: Mapped[int] = mapped_column(Fen, default=0)  # early settlement
    fees_cancelled_fen: Mapped[int] = mapped_column(Fen, default=0)  # default
    # days its monitoring was held by delinquency pauses: the monitor judges the plan as of
    # that many days before the business date (RULES 2.8, ``domain.plan.monitoring_date``)
    days_held: Mapped[int] = mapped_column(Integer, default=0, server_default="0")


Index("ix_plans_active", Plan.pk, postgresql_where=text("status = 'active'"), sqlite_where=text("status = 'active'"))


class PlanInstallment(Base):
    """One period of a plan and what was paid on it.

    ``status``: ``open`` (not fully paid), ``paid``, ``waived`` (early settlement
    waived its fee), ``defaulted`` (moved into the default bill).
    ``overdue_notified_on`` is when ``plan.installment.overdue`` went out for it (once).
    """

    __tablename__ = "plan_installments"

    plan_pk: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    period: Mapped[int] = mapped_column(Integer, primary_key=True)
    due_date: Mapped[date] = mapped_column(Date, index=True)
    principal_fen: Mapped[int] = mapped_column(Fen)
    fee_fen: Mapped[int] = mapped_column(Fen)
    paid_principal_fen: Mapped[int] = mapped_column(Fen, default=0)
    paid_fee_fen: Mapped[int] = mapped_column(Fen, default=0)
    status: Mapped[str] = mapped_column(String(16), default="open")
    paid_on: Mapped[date | None] = mapped_column(Date, nullable=True)
    overdue_notified_on: Mapped[date | None] = mapped_column(Date, nullable=True)


Index(
    "ix_plan_installments_open_due",
    PlanInstallment.due_date,
    PlanInstallment.plan_pk,
    postgresql_where=text("status = 'open'"),
    sqlite_where=text("status = 'open'"),
)


class PlanPayment(Base):
    """Money ``repayment.applied`` routed to a plan: one row per payment, so a payment
    is applied to a plan once even if announced twice."""

    __tablename__ = "plan_payments"

    plan_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    payment_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    amount_fen: Mapped[int] = mapped_column(Fen)
    applied_fen: Mapped[int] = mapped_column(Fen)
    unapplied_fen: Mapped[int] = mapped_column(Fen, default=0)
    paid_on: Mapped[date] = mapped_column(Date)


class AppliedPayment(Base):
    """A ``repayment.applied`` already taken into the projection and the plans: a payment
    counts once, even when accounts answers a retry of it with the same payload again."""

    __tablename__ = "applied_payments"

    payment_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    account_id: Mapped[str] = mapped_column(String(64))


class Adjustment(Base):
    """One ``plan.adjustment.requested`` and its answer (answered once per request_id)."""

    __tablename__ = "plan_adjustments"

    request_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    plan_id: Mapped[str] = mapped_column(String(64), index=True)
    kind: Mapped[str] = mapped_column(String(16))
    requested_on: Mapped[date] = mapped_column(Date)
    outcome: Mapped[str] = mapped_column(String(16))  # adjusted | rejected
    reason: Mapped[str | None] = mapped_column(String(64), nullable=True)
    new_term: Mapped[int | None] = mapped_column(Integer, nullable=True)
    apr: Mapped[str | None] = mapped_column(String(16), nullable=True)
    monthly_payment_fen: Mapped[int | None] = mapped_column(Fen, nullable=True)


class JobRun(JobRunColumns, Base):
    """A scheduled job's run for a business date: what makes every job idempotent."""

    __tablename__ = "job_runs"
