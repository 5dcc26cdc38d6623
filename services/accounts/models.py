"""The accounts service's tables (its database only). Money is integer fen.

The ledger of record: credit lines, purchases, bills, double-entry ledger,
repayments, restrictions history (the lock ladder), bureau marks, and the
projection of restructuring plans that accounts needs to route money.
"""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import BigInteger, Boolean, Date, DateTime, ForeignKey, Index, Integer, String, Text, text
from sqlalchemy.orm import Mapped, mapped_column

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


class Account(Base):
    """A credit line. ``pk`` is a dense integer key so the nightly close can chunk by range."""

    __tablename__ = "accounts"

    pk: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    account_id: Mapped[str] = mapped_column(String(64), unique=True)
    customer_id: Mapped[str] = mapped_column(String(64))
    identity_hash: Mapped[str] = mapped_column(String(128), index=True)
    opened_on: Mapped[date] = mapped_column(Date)
    granted_limit_fen: Mapped[int] = mapped_column(Fen)
    credit_limit_fen: Mapped[int] = mapped_column(Fen)  # effective limit (after a cut)
    limit_cut: Mapped[bool] = mapped_column(Boolean, default=False)
    unpaid_principal_fen: Mapped[int] = mapped_column(Fen, default=0)  # billed and unbilled
    credit_balance_fen: Mapped[int] = mapped_column(Fen, default=0)
    status: Mapped[str] = mapped_column(String(16), default="open")  # open | closed
    level: Mapped[int] = mapped_column(Integer, default=0)  # own lock-ladder level 0..4
    linked_level: Mapped[int] = mapped_column(Integer, default=0)  # max own level of the identity's other accounts
    max_dpd: Mapped[int] = mapped_column(Integer, default=0)
    last_overdue_on: Mapped[date | None] = mapped_column(Date, nullable=True)
    active_plan_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    monthly_income_fen: Mapped[int | None] = mapped_column(Fen, nullable=True)
    # The delinquency pause (RULES 2.8): set while paused, cleared on resume.
    pause_reason: Mapped[str | None] = mapped_column(String(24), nullable=True)
    paused_on: Mapped[date | None] = mapped_column(Date, nullable=True)
    paused_until: Mapped[date | None] = mapped_column(Date, nullable=True)  # resumes after this date's close
    pause_request_id: Mapped[str | None] = mapped_column(String(64), nullable=True)


class Purchase(Base):
    __tablename__ = "purchases"

    purchase_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    account_pk: Mapped[int] = mapped_column(ForeignKey("accounts.pk"), index=True)
    amount_fen: Mapped[int] = mapped_column(Fen)
    merchant: Mapped[str] = mapped_column(String(128))
    requested_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    posted_on: Mapped[date] = mapped_column(Date)
    bill_id: Mapped[str | None] = mapped_column(String(64), nullable=True)


Index(
    "ix_purchases_unbilled",
    Purchase.account_pk,
    Purchase.posted_on,
    postgresql_where=text("bill_id IS NULL"),
    sqlite_where=text("bill_id IS NULL"),
)


class Bill(Base):
    """One statement's bill. Outstanding components and cumulative charges are kept apart:
    the 24% cap is judged on what was charged, allocation on what is still unpaid."""

    __tablename__ = "bills"

    pk: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    bill_id: Mapped[str] = mapped_column(String(64), unique=True)
    account_pk: Mapped[int] = mapped_column(ForeignKey("accounts.pk"), index=True)
    statement_date: Mapped[date] = mapped_column(Date)
    due_date: Mapped[date] = mapped_column(Date, index=True)
    due_ordinal: Mapped[int] = mapped_column(
        Integer
    )  # due_date.toordinal(): DPD = T.toordinal() - due_ordinal, portable SQL
    principal_fen: Mapped[int] = mapped_column(Fen)  # original principal
    charge_cap_fen: Mapped[int] = mapped_column(Fen)  # 24% of the original principal
    unpaid_principal_fen: Mapped[int] = mapped_column(Fen)
    unpaid_penalty_fen: Mapped[int] = mapped_column(Fen, default=0)
    unpaid_late_fee_fen: Mapped[int] = mapped_column(Fen, default=0)
    penalty_charged_fen: Mapped[int] = mapped_column(Fen, default=0)
    late_fee_charged_fen: Mapped[int] = mapped_column(Fen, default=0)
    dpd: Mapped[int] = mapped_column(Integer, default=0)
    overdue_since: Mapped[date | None] = mapped_column(Date, nullable=True)
    bureau_marked_on: Mapped[date | None] = mapped_column(Date, nullable=True)
    charged_off_on: Mapped[date | None] = mapped_column(Date, nullable=True)
    written_off_fen: Mapped[int] = mapped_column(Fen, default=0)
    plan_id: Mapped[str | None] = mapped_column(String(64), nullable=True)  # moved into a plan
    settled_on: Mapped[date | None] = mapped_column(Date, nullable=True)
    origin: Mapped[str] = mapped_column(String(16), default="statement")  # statement | plan_default
    last_closed_on: Mapped[date | None] = mapped_column(Date, nullable=True)  # makes a re-run chunk a no-op
    # The pre-report notice (collection.notice.sent, RULES 5.4): its date and channel; until
    # it is given the bill's overdue stays out of the monthly report.
    report_notice_on: Mapped[date | None] = mapped_column(Date, nullable=True)
    report_notice_channel: Mapped[str | None] = mapped_column(String(8), nullable=True)
    # the date a repayment left the unpaid principal within the arrears tolerance (rule 2.7)
    within_tolerance_on: Mapped[date | None] = mapped_column(Date, nullable=True)
    # principal set aside by open disputes (RULES 4.6): not charged, not judged for DPD
    disputed_fen: Mapped[int] = mapped_column(Fen, default=0, server_default="0")


# What the nightly close reads: only bills with principal still unpaid (a small share of all bills).
Index(
    "ix_bills_open",
    Bill.account_pk,
    postgresql_where=text("unpaid_principal_fen > 0"),
    sqlite_where=text("unpaid_principal_fen > 0"),
)


class DailyAccrual(Base):
    """What one close charged on one bill, and on what principal: the record that lets a
    late repayment notice reverse exactly the penalty accrued after its ``paid_at``."""

    __tablename__ = "daily_accruals"
    # The close posts and reads back one day's accruals per chunk of accounts: without this
    # index it walks every accrual the chunk's accounts ever had (180 days of them by June).
    __table_args__ = (Index("ix_daily_accruals_day_account", "business_date", "account_pk"),)

    bill_pk: Mapped[int] = mapped_column(ForeignKey("bills.pk"), primary_key=True)
    business_date: Mapped[date] = mapped_column(Date, primary_key=True)
    account_pk: Mapped[int] = mapped_column(BigInteger, index=True)
    basis_fen: Mapped[int] = mapped_column(Fen)
    penalty_fen: Mapped[int] = mapped_column(Fen, default=0)
    late_fee_fen: Mapped[int] = mapped_column(Fen, default=0)


class LedgerEntry(Base):
    """Double-entry ledger line. Every posting (``posting_id``) has debits == credits."""

    __tablename__ = "ledger_entries"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    posting_id: Mapped[str] = mapped_column(String(80), index=True)
    account_pk: Mapped[int] = mapped_column(BigInteger, index=True)
    bill_pk: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    business_date: Mapped[date] = mapped_column(Date)
    ledger_account: Mapped[str] = mapped_column(String(32))
    debit_fen: Mapped[int] = mapped_column(Fen, default=0)
    credit_fen: Mapped[int] = mapped_column(Fen, default=0)
    kind: Mapped[str] = mapped_column(String(32))


class Repayment(Base):
    __tablename__ = "repayments"

    payment_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    account_id: Mapped[str] = mapped_column(String(64), index=True)
    amount: Mapped[str] = mapped_column(String(40))  # as received, even when rejected
    currency: Mapped[str] = mapped_column(String(8))
    paid_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    paid_on: Mapped[date] = mapped_column(Date)
    channel: Mapped[str] = mapped_column(String(32))
    status: Mapped[str] = mapped_column(String(16))  # applied | rejected
    reason: Mapped[str | None] = mapped_column(String(64), nullable=True)
    allocations: Mapped[str | None] = mapped_column(Text, nullable=True)  # JSON, as emitted


class RestrictionHistory(Base):
    """Each lock-ladder level with when it was added and lifted: never deleted."""

    __tablename__ = "restriction_history"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    account_pk: Mapped[int] = mapped_column(BigInteger, index=True)
    measure: Mapped[str] = mapped_column(String(40))
    cause: Mapped[str] = mapped_column(String(20))
    added_on: Mapped[date] = mapped_column(Date)
    lifted_on: Mapped[date | None] = mapped_column(Date, nullable=True)


class Dispute(Base):
    """A customer's dispute (RULES 4.6) by its id: the amount set aside on its bill while
    open, the resolution and what it credited back; ``alerted_on`` the service-level alert."""

    __tablename__ = "disputes"

    dispute_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    account_pk: Mapped[int] = mapped_column(ForeignKey("accounts.pk"), index=True)
    bill_pk: Mapped[int] = mapped_column(ForeignKey("bills.pk"))
    purchase_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    amount_fen: Mapped[int] = mapped_column(Fen)
    reason: Mapped[str] = mapped_column(String(24))
    opened_on: Mapped[date] = mapped_column(Date)
    status: Mapped[str] = mapped_column(String(16))  # open | resolved
    outcome: Mapped[str | None] = mapped_column(String(16), nullable=True)
    resolved_by: Mapped[str | None] = mapped_column(String(64), nullable=True)
    resolved_on: Mapped[date | None] = mapped_column(Date, nullable=True)
    credited_fen: Mapped[int] = mapped_column(Fen, default=0)
    charges_reversed_fen: Mapped[int] = mapped_column(Fen, default=0)
    alerted_on: Mapped[date | None] = mapped_column(Date, nullable=True)


class Waiver(Base):
    """A hardship waiver (RULES 4.5), by the operator's request id: pending until a second
    operator decides when above the threshold; ``applied_fen`` what it took off."""

    __tablename__ = "waivers"

    waiver_id: Mapped[str] = mapped_column(String(64), primary_key=True)  # the request id
    account_pk: Mapped[int] = mapped_column(ForeignKey("accounts.pk"), index=True)
    bill_pk: Mapped[int] = mapped_column(ForeignKey("bills.pk"))
    component: Mapped[str] = mapped_column(String(16))  # penalty_interest | late_fee
    amount_fen: Mapped[int] = mapped_column(Fen)
    reason: Mapped[str] = mapped_column(String(24))
    requested_by: Mapped[str] = mapped_column(String(64))
    requested_on: Mapped[date] = mapped_column(Date)
    status: Mapped[str] = mapped_column(String(16))  # pending | applied | declined
    decided_by: Mapped[str | None] = mapped_column(String(64), nullable=True)
    decided_on: Mapped[date | None] = mapped_column(Date, nullable=True)
    applied_fen: Mapped[int] = mapped_column(Fen, default=0)


class BureauMark(Base):
    """A bill reported to the bureau (past grace). Kept 5 years after settlement, then purged."""

    __tablename__ = "bureau_marks"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    account_pk: Mapped[int] = mapped_column(BigInteger, index=True)
    bill_pk: Mapped[int] = mapped_column(BigInteger, unique=True)
    marked_on: Mapped[date] = mapped_column(Date)
    settled_on: Mapped[date | None] = mapped_column(Date, nullable=True)


class CreditReportRun(Base):
    """A monthly bureau file that was written (one per month)."""

    __tablename__ = "credit_reports"

    month: Mapped[str] = mapped_column(String(7), primary_key=True)  # YYYY-MM
    accounts: Mapped[int] = mapped_column(Integer)
    path: Mapped[str] = mapped_column(String(400))
    generated_on: Mapped[date] = mapped_column(Date)


class PlanProjection(Base):
    """What accounts knows of a restructuring plan: enough to route money and unwind it."""

    __tablename__ = "plans"

    plan_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    account_pk: Mapped[int] = mapped_column(BigInteger, index=True)
    status: Mapped[str] = mapped_column(String(16))  # active | defaulted | completed
    principal_fen: Mapped[int] = mapped_column(Fen)
    outstanding_fen: Mapped[int] = mapped_column(Fen)  # plan receivable still unpaid (principal + fees)
    total_fee_fen: Mapped[int] = mapped_column(Fen, default=0)
    paid_fen: Mapped[int] = mapped_column(Fen, default=0)
    activated_on: Mapped[date] = mapped_column(Date)
    ended_on: Mapped[date | None] = mapped_column(Date, nullable=True)


class JobRun(JobRunColumns, Base):
    """A scheduled job's run for a business date: what makes every job idempotent."""

    __tablename__ = "job_runs"
