"""Between the tables and the pure domain: load rows as domain values, and back.

The handlers, the plan monitor and the command line all see an account and a plan
the same way through these functions, so the figures a customer is shown by
``baitiao plan offers`` are the figures ``plan.offered`` would disclose.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from services.restructuring.domain import (
    NO_OFFER_WITHIN_LIMITS,
    Installment,
    InstallmentPaid,
    Offer,
    OverdueBillBalance,
    RiskAssessment,
    Schedule,
    assess_risk,
    build_offers,
    check_eligibility,
    months_on_book,
    overdue_bills_in_lookback,
    restructured_principal,
)
from services.restructuring.models import AccountView, BillView, Plan, PlanInstallment
from shared.events import payloads as p
from shared.money import ZERO, from_fen, to_fen
from shared.rules import ProductRules

UNKNOWN_ACCOUNT = "unknown_account"


# --- account facts, risk and offers ----------------------------------------------------


@dataclass(frozen=True)
class AccountFacts:
    """Everything the scorecard and the eligibility rule need, read from the projection."""

    account_id: str
    opened_on: date | None
    monthly_income: Decimal | None
    current_max_dpd: int
    overdue_bills: tuple[OverdueBillBalance, ...]
    overdue_due_dates: tuple[date, ...]
    unpaid_total: Decimal
    active_plan_id: str | None


def _bill_dpd(bill: BillView, as_of: date) -> int:
    """DPD is T − D (RULES 2): the projection's figure lags a close behind at most, so the
    due date, when known, gives today's DPD of a bill that is still unpaid."""
    if bill.due_date is not None:
        return max(bill.dpd, (as_of - bill.due_date).days)
    return bill.dpd


def _unpaid_fen(bill: BillView) -> int:
    return bill.unpaid_principal_fen + bill.penalty_fen + bill.late_fee_fen


def load_facts(session: Session, account_id: str, as_of: date) -> AccountFacts | None:
    """The account as restructuring sees it on ``as_of``; None when no event named it yet."""
    account = session.get(AccountView, account_id)
    if account is None:
        return None
    bills = session.scalars(select(BillView).where(BillView.account_id == account_id).order_by(BillView.due_date)).all()
    return facts_of(account, bills, as_of)


def facts_of(account: Any, bills: Sequence[Any], as_of: date) -> AccountFacts:
    """The facts of one account from its projection rows (ORM objects, or any objects with
    the same attributes: the batched snapshot handler passes its in-memory rows)."""
    account_id = account.account_id
    open_bills = [b for b in bills if b.plan_id is None and _unpaid_fen(b) > 0]
    overdue = [b for b in open_bills if b.dpd > 0]
    went_overdue = [b.due_date or (b.overdue_on - timedelta(days=1)) for b in bills if b.overdue_on is not None]
    return AccountFacts(
        account_id=account_id,
        opened_on=account.opened_on,
        monthly_income=from_fen(account.monthly_income_fen) if account.monthly_income_fen is not None else None,
        current_max_dpd=max((_bill_dpd(b, as_of) for b in overdue), default=0),
        overdue_bills=tuple(
            OverdueBillBalance(
                b.bill_id, from_fen(b.unpaid_principal_fen), from_fen(b.penalty_fen), from_fen(b.late_fee_fen)
            )
            for b in overdue
        ),
        overdue_due_dates=tuple(went_overdue),
        unpaid_total=sum((from_fen(_unpaid_fen(b)) for b in open_bills), ZERO),
        active_plan_id=account.active_plan_id,
    )


@dataclass(frozen=True)
class RiskInputs:
    """The plain facts of one assessment (kept with it, so a score can be explained)."""

    current_dpd: int
    overdue_bills_12m: int
    months_on_book: int
    unpaid_total: Decimal
    monthly_income: Decimal | None


def risk_inputs(facts: AccountFacts, as_of: date, rules: ProductRules, income: Decimal | None = None) -> RiskInputs:
    """An unknown opening date counts as 0 months on book (the most prudent band)."""
    return RiskInputs(
        current_dpd=facts.current_max_dpd,
        overdue_bills_12m=overdue_bills_in_lookback(facts.overdue_due_dates, as_of, rules.risk),
        months_on_book=months_on_book(facts.opened_on, as_of) if facts.opened_on else 0,
        unpaid_total=facts.unpaid_total,
        monthly_income=income if income is not None else facts.monthly_income,
    )


def assess(inputs: RiskInputs, rules: ProductRules) -> RiskAssessment:
    return assess_risk(
        inputs.current_dpd,
        inputs.overdue_bills_12m,
        inputs.months_on_book,
        inputs.unpaid_total,
        inputs.monthly_income,
        rules.risk,
    )


@dataclass(frozen=True)
class Quote:
    """The answer to "what can this account be offered on ``as_of``": the assessment,
    then either offers or the ``plan.ineligible`` reason."""

    account_id: str
    as_of: date
    inputs: RiskInputs | None
    assessment: RiskAssessment | None
    reason: str | None
    principal: Decimal
    bill_ids: tuple[str, ...]
    offers: tuple[Offer, ...]


def quote(session: Session, account_id: str, as_of: date, rules: ProductRules, income: Decimal | None = None) -> Quote:
    """Risk, eligibility and offers for an account, from the projection and the domain only."""
    facts = load_facts(session, account_id, as_of)
    if facts is None:
        return Quote(account_id, as_of, None, None, UNKNOWN_ACCOUNT, ZERO, (), ())
    inputs = risk_inputs(facts, as_of, rules, income)
    assessment = assess(inputs, rules)
    principal = restructured_principal(facts.overdue_bills)
    bill_ids = tuple(b.bill_id for b in facts.overdue_bills)
    reason = check_eligibility(
        bool(facts.overdue_bills),
        facts.current_max_dpd,
        facts.active_plan_id is not None,
        assessment.grade,
        rules.restructuring,
    )
    offers: tuple[Offer, ...] = ()
    if reason is None:
        offers = tuple(build_offers(principal, assessment.grade, inputs.monthly_income, as_of, rules.restructuring))
        if not offers:
            reason = NO_OFFER_WITHIN_LIMITS
    return Quote(account_id, as_of, inputs, assessment, reason, principal, bill_ids, offers)


# --- schedules on the wire and in the tables -------------------------------------------


def schedule_lines(periods: Sequence[Installment]) -> list[p.ScheduleLine]:
    return [
        p.ScheduleLine(period=i.period, due_date=i.due_date, principal=i.principal, fee=i.fee, total=i.total)
        for i in periods
    ]


def schedule_json(periods: Sequence[Installment]) -> str:
    return json.dumps([line.model_dump(mode="json") for line in schedule_lines(periods)])


def assessment_values(
    account_id: str,
    as_of: date,
    trigger: str,
    request_id: str | None,
    assessment: RiskAssessment,
    inputs: RiskInputs,
) -> dict[str, Any]:
    """The columns of one ``risk_assessments`` row (the assessment and the facts it came from)."""
    return {
        "account_id": account_id,
        "assessed_on": as_of,
        "trigger": trigger,
        "request_id": request_id,
        "score": assessment.score,
        "grade": assessment.grade,
        "factors": json.dumps([{"name": f.name, "points": f.points} for f in assessment.factors]),
        "current_dpd": inputs.current_dpd,
        "overdue_bills_12m": inputs.overdue_bills_12m,
        "months_on_book": inputs.months_on_book,
        "unpaid_total_fen": to_fen(inputs.unpaid_total),
        "monthly_income_fen": to_fen(inputs.monthly_income) if inputs.monthly_income is not None else None,
    }


def risk_factors(assessment: RiskAssessment) -> list[p.RiskFactor]:
    return [p.RiskFactor(name=f.name, points=f.points) for f in assessment.factors]


def load_installments(session: Session, plan_pk: int) -> list[PlanInstallment]:
    return list(
        session.scalars(
            select(PlanInstallment).where(PlanInstallment.plan_pk == plan_pk).order_by(PlanInstallment.period)
        )
    )


def plan_schedule(plan: Plan, rows: Sequence[PlanInstallment]) -> Schedule:
    """The plan's whole current schedule as the domain sees it."""
    periods = tuple(Installment(r.period, r.due_date, from_fen(r.principal_fen), from_fen(r.fee_fen)) for r in rows)
    return Schedule(
        plan.method,
        sum((i.principal for i in periods), ZERO),
        Decimal(plan.monthly_fee_rate),
        plan.start_date,
        periods,
    )


def plan_paid(rows: Sequence[PlanInstallment]) -> dict[int, InstallmentPaid]:
    return {
        r.period: InstallmentPaid(from_fen(r.paid_fee_fen), from_fen(r.paid_principal_fen))
        for r in rows
        if r.paid_fee_fen or r.paid_principal_fen
    }


def installment_row(
    plan_pk: int, line: Installment, paid: InstallmentPaid | None, paid_on: date | None
) -> PlanInstallment:
    paid = paid or InstallmentPaid()
    row = PlanInstallment(
        plan_pk=plan_pk,
        period=line.period,
        due_date=line.due_date,
        principal_fen=to_fen(line.principal),
        fee_fen=to_fen(line.fee),
        paid_principal_fen=to_fen(paid.principal),
        paid_fee_fen=to_fen(paid.fee),
        status="open",
        paid_on=None,
        overdue_notified_on=None,
    )
    if paid.total >= line.total:
        row.status, row.paid_on = "paid", paid_on
    return row


def store_paid(rows: Sequence[PlanInstallment], paid: dict[int, InstallmentPaid], paid_on: date) -> list[int]:
    """Write the domain's new paid mapping onto the rows; returns the periods newly paid."""
    newly_paid = []
    for row in rows:
        amounts = paid.get(row.period, InstallmentPaid())
        row.paid_fee_fen, row.paid_principal_fen = to_fen(amounts.fee), to_fen(amounts.principal)
        if row.status == "open" and row.paid_fee_fen >= row.fee_fen and row.paid_principal_fen >= row.principal_fen:
            row.status, row.paid_on = "paid", paid_on
            newly_paid.append(row.period)
    return newly_paid


def utc_aware(value: datetime) -> datetime:
    """Instants are written in UTC; SQLite hands them back naive, PostgreSQL aware.
    Comparisons with an event's timestamp need an aware value either way."""
    return value if value.tzinfo is not None else value.replace(tzinfo=timezone.utc)
