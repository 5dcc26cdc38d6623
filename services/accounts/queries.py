"""Read models of one account for the command line (``baitiao account show|ledger``).

Plain dicts of JSON-ready values (money as decimal strings with two decimals, dates as
ISO 8601) so that ``--json`` and the rich layout print the same facts. Reads only; the
available limit and the measures come from :mod:`services.accounts.standing`, the one
place that turns an account row into lock-ladder terms, so the screen agrees with what
a purchase decision would see.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from datetime import date
from decimal import Decimal
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from services.accounts import standing
from services.accounts.domain.ledger import CUSTOMER_RECEIVABLES, Account as LedgerAccount
from services.accounts.models import (
    Account,
    Bill,
    LedgerEntry,
    PlanProjection,
    Repayment,
    RestrictionHistory,
    Waiver,
    Dispute,
)
from shared.money import from_fen, to_fen, wire

RECENT_REPAYMENTS = 10

# The ledger accounts whose (debit - credit) make up what the customer owes net.
CUSTOMER_BALANCE_ACCOUNTS: frozenset[str] = frozenset(
    {str(a) for a in CUSTOMER_RECEIVABLES} | {str(LedgerAccount.CREDIT_BALANCE)}
)


class AccountNotFound(LookupError):
    """No account with that id in the accounts database."""


def money(fen: int | None) -> str:
    """Integer fen as the wire decimal string (``"12.30"``)."""
    return wire(from_fen(fen or 0))


def account_view(session: Session, account_id: str) -> dict[str, Any]:
    """Everything ``baitiao account show`` prints for one account."""
    account = load_account(session, account_id)
    return {
        "account_id": account.account_id,
        "customer_id": account.customer_id,
        "opened_on": _iso(account.opened_on),
        "status": account.status,
        "borrowing": standing.borrowing_status(account),
        "level": account.level,
        "linked_level": account.linked_level,
        "max_dpd": account.max_dpd,
        "granted_limit": money(account.granted_limit_fen),
        "credit_limit": money(account.credit_limit_fen),
        "limit_cut": account.limit_cut,
        "available": wire(standing.available(account)),
        "unpaid_principal": money(account.unpaid_principal_fen),
        "credit_balance": money(account.credit_balance_fen),
        "last_overdue_on": _iso(account.last_overdue_on),
        "pause": (
            {"reason": account.pause_reason, "paused_on": _iso(account.paused_on), "until": _iso(account.paused_until)}
            if account.paused_on is not None
            else None
        ),
        "restrictions": {
            "current": list(standing.measures(account)),
            "history": _restriction_history(session, account.pk),
        },
        "bills": _bills(session, account.pk),
        "waivers": _waivers(session, account.pk),
        "disputes": _disputes(session, account.pk),
        "active_plan": _active_plan(session, account),
        "repayments": _recent_repayments(session, account.account_id),
        "balances": ledger_balances(session, account.pk),
    }


def ledger_view(session: Session, account_id: str) -> list[dict[str, Any]]:
    """The account's ledger entries in posting order, each with the customer's running
    balance (receivables less credit balance) after it."""
    account = load_account(session, account_id)
    entries = session.scalars(
        select(LedgerEntry).where(LedgerEntry.account_pk == account.pk).order_by(LedgerEntry.id)
    ).all()
    return list(_with_running_balance(entries))


def ledger_totals(entries: list[dict[str, Any]]) -> dict[str, Any]:
    """Sum of debits and credits of the entries: every posting balances, so they must match."""
    debit_fen = sum(_fen(e["debit"]) for e in entries)
    credit_fen = sum(_fen(e["credit"]) for e in entries)
    return {"debits": money(debit_fen), "credits": money(credit_fen), "balanced": debit_fen == credit_fen}


def load_account(session: Session, account_id: str) -> Account:
    account = session.scalar(select(Account).where(Account.account_id == account_id))
    if account is None:
        raise AccountNotFound(f"no account {account_id}")
    return account


def ledger_balances(session: Session, account_pk: int) -> dict[str, Any]:
    """Per ledger account, debit − credit over this account's entries; and the customer's
    net balance, which RULES 4 says equals billed − paid − waived − written off."""
    rows = session.execute(
        select(LedgerEntry.ledger_account, func.sum(LedgerEntry.debit_fen - LedgerEntry.credit_fen))
        .where(LedgerEntry.account_pk == account_pk)
        .group_by(LedgerEntry.ledger_account)
        .order_by(LedgerEntry.ledger_account)
    ).all()
    by_account = {name: int(total or 0) for name, total in rows}
    customer = sum(total for name, total in by_account.items() if name in CUSTOMER_BALANCE_ACCOUNTS)
    return {
        "by_account": {name: money(total) for name, total in by_account.items()},
        "customer_balance": money(customer),
    }


def _restriction_history(session: Session, account_pk: int) -> list[dict[str, Any]]:
    rows = session.scalars(
        select(RestrictionHistory)
        .where(RestrictionHistory.account_pk == account_pk)
        .order_by(RestrictionHistory.added_on, RestrictionHistory.id)
    ).all()
    return [
        {"measure": r.measure, "cause": r.cause, "added_on": _iso(r.added_on), "lifted_on": _iso(r.lifted_on)}
        for r in rows
    ]


def _disputes(session: Session, account_pk: int) -> list[dict[str, Any]]:
    """The account's disputes (RULES 4.6), open and resolved."""
    rows = session.execute(
        select(Dispute, Bill.bill_id)
        .join(Bill, Bill.pk == Dispute.bill_pk)
        .where(Dispute.account_pk == account_pk)
        .order_by(Dispute.opened_on, Dispute.dispute_id)
    ).all()
    return [
        {
            "dispute_id": d.dispute_id,
            "bill_id": bill_id,
            "purchase_id": d.purchase_id,
            "amount": money(d.amount_fen),
            "reason": d.reason,
            "opened_on": _iso(d.opened_on),
            "status": d.status,
            "outcome": d.outcome,
            "credited": money(d.credited_fen),
            "charges_reversed": money(d.charges_reversed_fen),
            "resolved_on": _iso(d.resolved_on),
            "service_level_alert_on": _iso(d.alerted_on),
        }
        for d, bill_id in rows
    ]


def _waivers(session: Session, account_pk: int) -> list[dict[str, Any]]:
    """The account's hardship waivers (RULES 4.5), pending ones included."""
    rows = session.execute(
        select(Waiver, Bill.bill_id)
        .join(Bill, Bill.pk == Waiver.bill_pk)
        .where(Waiver.account_pk == account_pk)
        .order_by(Waiver.requested_on, Waiver.waiver_id)
    ).all()
    return [
        {
            "waiver_id": w.waiver_id,
            "bill_id": bill_id,
            "component": w.component,
            "amount": money(w.amount_fen),
            "reason": w.reason,
            "status": w.status,
            "requested_by": w.requested_by,
            "decided_by": w.decided_by,
            "applied": money(w.applied_fen),
        }
        for w, bill_id in rows
    ]


def _bills(session: Session, account_pk: int) -> list[dict[str, Any]]:
    rows = session.scalars(select(Bill).where(Bill.account_pk == account_pk).order_by(Bill.due_date, Bill.pk)).all()
    return [_bill(b) for b in rows]


def _bill(bill: Bill) -> dict[str, Any]:
    return {
        "bill_id": bill.bill_id,
        "statement_date": _iso(bill.statement_date),
        "due_date": _iso(bill.due_date),
        "dpd": bill.dpd,
        "principal": money(bill.principal_fen),
        "unpaid_principal": money(bill.unpaid_principal_fen),
        "disputed": money(bill.disputed_fen),
        "unpaid_penalty": money(bill.unpaid_penalty_fen),
        "unpaid_late_fee": money(bill.unpaid_late_fee_fen),
        "penalty_charged": money(bill.penalty_charged_fen),
        "late_fee_charged": money(bill.late_fee_charged_fen),
        "charged_off": bill.charged_off_on is not None,
        "charged_off_on": _iso(bill.charged_off_on),
        "in_plan": bill.plan_id is not None,
        "plan_id": bill.plan_id,
        "settled_on": _iso(bill.settled_on),
        "bureau_marked_on": _iso(bill.bureau_marked_on),
        "report_notice_on": _iso(bill.report_notice_on),
        "report_notice_channel": bill.report_notice_channel,
    }


def _active_plan(session: Session, account: Account) -> dict[str, Any] | None:
    if account.active_plan_id is None:
        return None
    plan = session.get(PlanProjection, account.active_plan_id)
    if plan is None:  # the account names a plan accounts has not projected: show the id
        return {"plan_id": account.active_plan_id}
    return {
        "plan_id": plan.plan_id,
        "status": plan.status,
        "principal": money(plan.principal_fen),
        "outstanding": money(plan.outstanding_fen),
        "total_fee": money(plan.total_fee_fen),
        "paid": money(plan.paid_fen),
        "activated_on": _iso(plan.activated_on),
    }


def _recent_repayments(session: Session, account_id: str) -> list[dict[str, Any]]:
    rows = session.scalars(
        select(Repayment)
        .where(Repayment.account_id == account_id)
        .order_by(Repayment.paid_at.desc(), Repayment.payment_id)
        .limit(RECENT_REPAYMENTS)
    ).all()
    return [
        {
            "payment_id": r.payment_id,
            "amount": r.amount,
            "currency": r.currency,
            "paid_at": r.paid_at.isoformat(),
            "paid_on": _iso(r.paid_on),
            "channel": r.channel,
            "status": r.status,
            "reason": r.reason,
            "allocations": json.loads(r.allocations) if r.allocations else [],
        }
        for r in rows
    ]


def _with_running_balance(entries: Iterable[LedgerEntry]) -> Iterable[dict[str, Any]]:
    running = 0
    for e in entries:
        if e.ledger_account in CUSTOMER_BALANCE_ACCOUNTS:
            running += e.debit_fen - e.credit_fen
        yield {
            "id": e.id,
            "date": _iso(e.business_date),
            "posting_id": e.posting_id,
            "kind": e.kind,
            "ledger_account": e.ledger_account,
            "bill_pk": e.bill_pk,
            "debit": money(e.debit_fen),
            "credit": money(e.credit_fen),
            "customer_balance": money(running),
        }


def _fen(amount: str) -> int:
    """A two-decimal string back to fen, exactly (it came from :func:`money`)."""
    return to_fen(Decimal(amount))


def _iso(day: date | None) -> str | None:
    return day.isoformat() if day is not None else None
