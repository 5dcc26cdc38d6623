"""``baitiao plan``: what a customer would be offered, and a plan's schedule.

Both commands read the restructuring database only (its projection of accounts and
its plans) and compute with the same domain functions as the service, so the
disclosure printed here is the one ``plan.offered`` would carry for the same date.
The business date defaults to today in Asia/Shanghai (``--date`` to choose one).
"""

from __future__ import annotations

import json
from contextlib import AbstractContextManager
from datetime import date
from decimal import Decimal
from typing import Any

import click
from rich.console import Console
from rich.table import Table
from sqlalchemy import select
from sqlalchemy.orm import Session

from baitiao.commands.values import AMOUNT, BUSINESS_DATE
from services.restructuring import store
from services.restructuring.models import Plan, PlanInstallment
from shared.clock import business_date, default_clock
from shared.db import engine_for, transaction
from shared.money import from_fen, wire
from shared.settings import get_settings


def _day(value: date | None) -> date:
    return value or business_date(default_clock.now())


def _session() -> AbstractContextManager[Session]:
    return transaction(engine_for(get_settings().db_url("restructuring")))


@click.group()
def plan() -> None:
    """Restructuring plans: offers an account would get, and a plan's schedule."""


@plan.command("offers")
@click.argument("account")
@click.option("--income", type=AMOUNT, default=None, help="Monthly income to use (else the one on file).")
@click.option("--date", "day", type=BUSINESS_DATE, default=None, help="Business date YYYY-MM-DD (default: today).")
@click.option("--json", "as_json", is_flag=True)
def offers(account: str, income: Decimal | None, day: date | None, as_json: bool) -> None:
    """The disclosure table for ACCOUNT's current state (no event is sent)."""
    as_of = _day(day)
    with _session() as session:
        quote = store.quote(session, account, as_of, get_settings().rules(), income)
    data = _quote_json(quote)
    if as_json:
        click.echo(json.dumps(data, ensure_ascii=False, indent=2))
        return
    _print_quote(data)


def _quote_json(quote: store.Quote) -> dict[str, Any]:
    assessment = quote.assessment
    return {
        "account_id": quote.account_id,
        "business_date": quote.as_of.isoformat(),
        "eligible": quote.reason is None,
        "reason": quote.reason,
        "score": assessment.score if assessment else None,
        "grade": assessment.grade if assessment else None,
        "factors": [{"name": f.name, "points": f.points} for f in assessment.factors] if assessment else [],
        "principal": wire(quote.principal),
        "bill_ids": list(quote.bill_ids),
        "offers": [
            {
                "term": o.term,
                "method": o.method,
                "monthly_fee_rate": str(o.monthly_fee_rate),
                "principal": wire(o.principal),
                "total_fee": wire(o.total_fee),
                "apr": str(o.apr),
                "monthly_payment": wire(o.monthly_payment),
                "schedule": [line.model_dump(mode="json") for line in store.schedule_lines(o.schedule.periods)],
            }
            for o in quote.offers
        ],
    }


def _print_quote(data: dict[str, Any]) -> None:
    console = Console()
    console.print(
        f"Account {data['account_id']} on {data['business_date']}: score {data['score']}, grade {data['grade']}"
    )
    if not data["eligible"]:
        console.print(f"[bold red]Not eligible for a plan[/]: {data['reason']}")
        return
    console.print(f"Restructured amount {data['principal']} (bills {', '.join(data['bill_ids'])})")
    summary = Table(title="Offers (valid 7 days once made)")
    for column in ("term", "method", "monthly fee rate", "monthly payment", "total fee", "annualized rate"):
        summary.add_column(column, justify="right")
    for o in data["offers"]:
        summary.add_row(
            str(o["term"]),
            o["method"],
            _pct(o["monthly_fee_rate"]),
            o["monthly_payment"],
            o["total_fee"],
            _pct(o["apr"]),
        )
    console.print(summary)
    for o in data["offers"]:
        table = Table(title=f"{o['term']} months, {o['method']}")
        for column in ("period", "due date", "principal", "fee", "total"):
            table.add_column(column, justify="right")
        for line in o["schedule"]:
            table.add_row(str(line["period"]), line["due_date"], line["principal"], line["fee"], line["total"])
        console.print(table)


def _pct(rate: str) -> str:
    return f"{(Decimal(rate) * 100).quantize(Decimal('0.01'))}%"


@plan.command("show")
@click.argument("plan_id")
@click.option(
    "--date", "day", type=BUSINESS_DATE, default=None, help="Business date YYYY-MM-DD for overdue (default: today)."
)
@click.option("--json", "as_json", is_flag=True)
def show(plan_id: str, day: date | None, as_json: bool) -> None:
    """PLAN_ID's schedule with what is paid and what is overdue."""
    as_of = _day(day)
    with _session() as session:
        row = session.scalar(select(Plan).where(Plan.plan_id == plan_id))
        if row is None:
            raise click.ClickException(f"no plan {plan_id}")
        data = plan_view(row, store.load_installments(session, row.pk), as_of)
    if as_json:
        click.echo(json.dumps(data, ensure_ascii=False, indent=2))
        return
    console = Console()
    console.print(
        f"Plan {data['plan_id']} of {data['account_id']}: {data['status']}, principal {data['principal']}, "
        f"{data['term']} periods, {data['method']} at {_pct(data['monthly_fee_rate'])} a month, "
        f"adjustments {data['adjustments_made']}"
    )
    table = Table(title=f"Schedule as of {data['business_date']}")
    for column in ("period", "due date", "principal", "fee", "total", "paid", "status", "DPD"):
        table.add_column(column, justify="right")
    for line in data["schedule"]:
        table.add_row(
            str(line["period"]),
            line["due_date"],
            line["principal"],
            line["fee"],
            line["total"],
            line["paid"],
            line["status"],
            str(line["dpd"] or ""),
        )
    console.print(table)


def plan_view(row: Plan, installments: list[PlanInstallment], as_of: date) -> dict[str, Any]:
    lines = []
    for i in installments:
        paid_fen = i.paid_principal_fen + i.paid_fee_fen
        overdue = i.status == "open" and i.due_date < as_of
        lines.append(
            {
                "period": i.period,
                "due_date": i.due_date.isoformat(),
                "principal": wire(from_fen(i.principal_fen)),
                "fee": wire(from_fen(i.fee_fen)),
                "total": wire(from_fen(i.principal_fen + i.fee_fen)),
                "paid": wire(from_fen(paid_fen)),
                "status": "overdue" if overdue else i.status,
                "dpd": (as_of - i.due_date).days if overdue else 0,
                "paid_on": i.paid_on.isoformat() if i.paid_on else None,
            }
        )
    return {
        "plan_id": row.plan_id,
        "account_id": row.account_id,
        "status": row.status,
        "method": row.method,
        "monthly_fee_rate": row.monthly_fee_rate,
        "principal": wire(from_fen(row.principal_fen)),
        "term": row.term,
        "start_date": row.start_date.isoformat(),
        "adjustments_made": row.adjustments_made,
        "bill_ids": json.loads(row.bill_ids),
        "business_date": as_of.isoformat(),
        "schedule": lines,
    }
