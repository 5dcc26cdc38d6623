"""What the desk shows, read from the three services' databases.

Each read is the command line's own read model where one exists (``account show`` and
``ledger``: services.accounts.queries; ``collections history`` and ``kpis``;
``plan show``; ``dlq list``; ``status``'s job runs), so the desk and the CLI never
disagree; the worklist is collections' own (services.collections.worklist), which the
command line's ``collections worklist`` reads too.
"""

from __future__ import annotations

import json
from datetime import date
from decimal import Decimal
from typing import Any

from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from baitiao import registry
from baitiao.commands.collections import history_rows, kpi_report, worklist_row
from baitiao.commands.databases import service_engine
from baitiao.commands.plans import plan_view
from baitiao.commands.status import last_runs
from baitiao.desk.masking import shown_name, shown_phone
from services.accounts.queries import AccountNotFound, account_view, ledger_totals, ledger_view
from services.collections.models import CollectorTask, Customer
from services.collections.worklist import open_task_count, open_tasks
from services.restructuring import store
from services.restructuring.models import Adjustment, OfferRequest, OfferRow, Plan
from shared.db import transaction
from shared.money import from_fen, wire
from shared.settings import SERVICES, Settings

__all__ = ["AccountNotFound", "account_page", "worklist_page", "case_view", "plans_view", "kpis", "letters", "jobs"]


def _engine(settings: Settings, service: str) -> Engine:
    return service_engine(settings, service)  # type: ignore[arg-type]


# --- worklist -------------------------------------------------------------------------------


def worklist_page(
    settings: Settings, accounts: list[str] | None, *, unmasked: bool, page: int = 1, size: int = 50
) -> dict[str, Any]:
    """Open tasks by priority, one page (:mod:`services.collections.worklist`'s order, in
    SQL). ``accounts``: only these (a collector's own); None: every open task (a
    supervisor's view)."""
    with transaction(_engine(settings, "collections")) as session:
        total = open_task_count(session, accounts)
        entries = open_tasks(session, accounts, limit=size, offset=(page - 1) * size)
    first = (page - 1) * size + 1
    rows = [worklist_row(n, e, unmasked=unmasked) for n, e in enumerate(entries, start=first)]
    return {"page": page, "size": size, "total": total, "rows": rows}


# --- one account ----------------------------------------------------------------------------


def account_page(settings: Settings, account_id: str, *, unmasked: bool) -> dict[str, Any]:
    """The 360° view: accounts' standing, bills, ledger and bureau marks; collections' case,
    contacts, tasks and promises; restructuring's offers and plan. AccountNotFound when
    accounts does not know the account."""
    with transaction(_engine(settings, "accounts")) as session:
        view = account_view(session, account_id)
        ledger = ledger_view(session, account_id)
    case = case_view(settings, account_id, unmasked=unmasked)
    return {
        **view,
        "ledger": {"entries": ledger, "totals": ledger_totals(ledger)},
        "bureau": [
            {
                "bill_id": b["bill_id"],
                "marked_on": b["bureau_marked_on"],
                "notice_on": b["report_notice_on"],
                "notice_channel": b["report_notice_channel"],
            }
            for b in view["bills"]
            if b["bureau_marked_on"] or b["report_notice_on"]
        ],
        "collections": case,
        "plans": plans_view(settings, account_id),
        "owed": owed(view),
        "timeline": timeline(view, case),
    }


def owed(view: dict[str, Any]) -> str:
    """What the customer owes now: unpaid principal (billed and unbilled), and the penalty
    interest and late fees still unpaid on their bills."""
    charges = sum(
        (Decimal(b["unpaid_penalty"]) + Decimal(b["unpaid_late_fee"]) for b in view["bills"] if not b["settled_on"]),
        Decimal("0"),
    )
    return wire(Decimal(view["unpaid_principal"]) + charges)


def case_view(settings: Settings, account_id: str, *, unmasked: bool) -> dict[str, Any]:
    with transaction(_engine(settings, "collections")) as session:
        data = history_rows(session, account_id)
        customer = session.get(Customer, account_id)
    data["customer"] = (
        None
        if customer is None
        else {"name": shown_name(customer.name, unmasked), "phone": shown_phone(customer.phone, unmasked)}
    )
    return data


def timeline(view: dict[str, Any], case: dict[str, Any]) -> list[dict[str, Any]]:
    """Restrictions, bills, payments, contacts, promises and the plan, newest first."""
    events: list[dict[str, Any]] = []
    for r in view["restrictions"]["history"]:
        events.append({"on": r["added_on"] or "", "kind": "restriction", "what": r})
    for b in view["bills"]:
        events.append({"on": b["due_date"] or "", "kind": "bill", "what": b})
    for r in view["repayments"]:
        events.append({"on": r["paid_on"] or "", "kind": "payment", "what": r})
    for c in case["contacts"]:
        events.append({"on": c["business_date"], "kind": "contact", "what": c})
    for t in case["tasks"]:
        events.append({"on": t["created_on"], "kind": "task", "what": t})
    for p in case["promises"]:
        events.append({"on": p["recorded_on"], "kind": "promise", "what": p})
    if view["active_plan"] and view["active_plan"].get("activated_on"):
        events.append({"on": view["active_plan"]["activated_on"], "kind": "plan", "what": view["active_plan"]})
    return sorted(events, key=lambda e: e["on"], reverse=True)


def plans_view(settings: Settings, account_id: str, as_of: date | None = None) -> dict[str, Any]:
    """The offers last disclosed (each as ``plan.offered`` carried it), the plans and their
    schedules, and their adjustments."""
    from shared.clock import business_date, default_clock

    day = as_of or business_date(default_clock.now())
    with transaction(_engine(settings, "restructuring")) as session:
        request = session.scalar(
            select(OfferRequest)
            .where(OfferRequest.account_id == account_id)
            .order_by(OfferRequest.requested_at.desc())
            .limit(1)
        )
        offers = (
            session.scalars(
                select(OfferRow).where(OfferRow.request_id == request.request_id).order_by(OfferRow.term)
            ).all()
            if request is not None
            else []
        )
        plans = session.scalars(select(Plan).where(Plan.account_id == account_id).order_by(Plan.pk)).all()
        schedules = [plan_view(plan, store.load_installments(session, plan.pk), day) for plan in plans]
        adjustments = session.scalars(
            select(Adjustment).where(Adjustment.plan_id.in_([plan.plan_id for plan in plans]))
        ).all()
    return {
        "request": None
        if request is None
        else {
            "request_id": request.request_id,
            "outcome": request.outcome,
            "reason": request.reason,
            "grade": request.grade,
            "requested_at": request.requested_at.isoformat(),
        },
        "offers": [offer_disclosure(o) for o in offers],
        "plans": schedules,
        "adjustments": [
            {
                "request_id": a.request_id,
                "plan_id": a.plan_id,
                "kind": a.kind,
                "requested_on": a.requested_on.isoformat(),
                "outcome": a.outcome,
                "reason": a.reason,
                "new_term": a.new_term,
                "apr": a.apr,
                "monthly_payment": wire(from_fen(a.monthly_payment_fen)) if a.monthly_payment_fen is not None else None,
            }
            for a in adjustments
        ],
    }


def offer_disclosure(o: OfferRow) -> dict[str, Any]:
    """One offer exactly as ``plan.offered`` disclosed it (same fields, same strings)."""
    return {
        "offer_id": o.offer_id,
        "term": o.term,
        "method": o.method,
        "monthly_fee_rate": o.monthly_fee_rate,
        "principal": wire(from_fen(o.principal_fen)),
        "total_fee": wire(from_fen(o.total_fee_fen)),
        "apr": o.apr,
        "monthly_payment": wire(from_fen(o.monthly_payment_fen)),
        "expires_at": o.expires_at.isoformat(),
        "status": o.status,
        "schedule": json.loads(o.schedule),
    }


# --- supervisors and operators ---------------------------------------------------------------


def kpis(settings: Settings, start: date, end: date) -> dict[str, Any]:
    with Session(_engine(settings, "collections")) as session:
        return kpi_report(session, start, end)


def letters(settings: Settings, include_retired: bool = False, limit: int = 100) -> list[dict[str, Any]]:
    """Every service's dead letters, newest first, personal data masked (``dlq list``)."""
    from shared.bus.dead_letters import list_dead_letters, masked_view

    rows: list[dict[str, Any]] = []
    for name in SERVICES:
        table = registry.definition(name).bus.dead_letters
        for letter in list_dead_letters(_engine(settings, name), table, include_retired, limit):
            rows.append({**masked_view(letter), "id": f"{name}:{letter.id}", "service": name})
    return rows


def jobs(settings: Settings) -> list[dict[str, Any]]:
    """Each service's jobs with their last run (``status``)."""
    return [{"service": name, **job} for name in SERVICES for job in last_runs(_engine(settings, name), name)]


def task_status(settings: Settings, task_id: str) -> dict[str, Any] | None:
    """A collector task's state (what a recorded outcome did to it)."""
    with transaction(_engine(settings, "collections")) as session:
        task = session.get(CollectorTask, task_id)
        if task is None:
            return None
        return {"task_id": task.task_id, "account_id": task.account_id, "status": task.status, "outcome": task.outcome}
