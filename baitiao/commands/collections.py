"""``baitiao collections``: the collectors' worklist, an account's contact history, KPIs.

Reads the collections database only (get_settings().db_url("collections")). Names and
phones are shown masked, as everywhere outside the SMS gateway.

Its length: one command group, each of its three reports (worklist, history, KPIs) next to
the queries that feed it; they share the group's engine, the masking and the JSON output.
"""

from __future__ import annotations

import json
from collections import Counter
from datetime import date, timedelta
from typing import Any

import click
from sqlalchemy import Engine, and_, or_, select
from sqlalchemy.orm import Session

from baitiao.commands.values import BUSINESS_DATE
from baitiao.desk.masking import shown_name, shown_phone
from services.collections.domain import (
    CaseEnd,
    PromiseState,
    Stage,
    StageObservation,
    cure_rates_by_stage,
    roll_rate,
    roll_rates,
)
from services.collections.domain.kpis import (
    DEFINITIONS,
    CohortCase,
    Episode,
    Rate,
    cohort_figures,
    delinquency_episodes,
    in_cohort,
)
from services.collections.models import (
    Bill,
    CaseClosure,
    CaseStageHistory,
    CollectionCase,
    CollectorTask,
    ContactAttempt,
    PromiseToPay,
    SmsMessage,
)
from services.collections.worklist import WorklistEntry, open_tasks
from shared.db import engine_for
from shared.money import from_fen, wire
from shared.settings import get_settings


def _engine() -> Engine:
    return engine_for(get_settings().db_url("collections"))


def _echo_json(data: Any) -> None:
    click.echo(json.dumps(data, ensure_ascii=False, indent=2, default=str))


@click.group()
def collections() -> None:
    """Collections: worklist, contact history, KPIs."""


# --- worklist ---------------------------------------------------------------------------------


def worklist_rows(session: Session) -> list[dict[str, Any]]:
    """Every open task in the worklist's order (services.collections.worklist, the desk's),
    names and phones masked."""
    return [worklist_row(number, e, unmasked=False) for number, e in enumerate(open_tasks(session), start=1)]


def worklist_row(priority: int, e: WorklistEntry, *, unmasked: bool) -> dict[str, Any]:
    """One task as the worklist shows it (the desk's pages and this command alike)."""
    return {
        "priority": priority,
        "task_id": e.task_id,
        "account_id": e.account_id,
        "kind": e.kind,
        "stage": e.stage,
        "dpd": e.dpd,
        "amount": wire(e.amount),
        "due_by": e.due_by.isoformat(),
        "promise_due": e.promise_due.isoformat() if e.promise_due else None,
        "customer": shown_name(e.name, unmasked),
        "phone": shown_phone(e.phone, unmasked),
    }


@collections.command("worklist")
@click.option("--json", "as_json", is_flag=True)
def worklist(as_json: bool) -> None:
    """Open collector tasks by priority."""
    with Session(_engine()) as session:
        rows = worklist_rows(session)
    if as_json:
        _echo_json(rows)
        return
    if not rows:
        click.echo("no open tasks")
    for r in rows:
        click.echo(
            f"{r['priority']:>4} {r['kind']:7} {r['account_id']:16} DPD {r['dpd']:>4} {r['amount']:>12} "
            f"due {r['due_by']}  {r['customer'] or '-'} {r['phone'] or '-'}  {r['task_id']}"
        )


# --- history ----------------------------------------------------------------------------------


def history_rows(session: Session, account_id: str) -> dict[str, Any]:
    """Everything collections did and heard for one account, in order."""
    case = session.scalar(select(CollectionCase).where(CollectionCase.account_id == account_id))
    contacts = session.scalars(
        select(ContactAttempt)
        .where(ContactAttempt.account_id == account_id)
        .order_by(ContactAttempt.business_date, ContactAttempt.id)
    ).all()
    messages = {
        m.contact_id: m for m in session.scalars(select(SmsMessage).where(SmsMessage.account_id == account_id)).all()
    }
    tasks = session.scalars(
        select(CollectorTask).where(CollectorTask.account_id == account_id).order_by(CollectorTask.created_on)
    ).all()
    promises = session.scalars(
        select(PromiseToPay).where(PromiseToPay.account_id == account_id).order_by(PromiseToPay.id)
    ).all()
    closures = session.scalars(
        select(CaseClosure).where(CaseClosure.account_id == account_id).order_by(CaseClosure.id)
    ).all()
    return {
        "account_id": account_id,
        "case": None
        if case is None
        else {
            "status": case.status,
            "stage": case.stage,
            "grade": case.grade or "C (default)",
            "max_dpd": case.max_dpd,
            "total_overdue": str(from_fen(case.total_overdue_fen)),
            "plan_active": case.plan_active,
            "closed_reason": case.closed_reason,
        },
        "contacts": [_contact_row(c, messages.get(c.id)) for c in contacts],
        "tasks": [
            {
                "task_id": t.task_id,
                "kind": t.kind,
                "stage": t.stage,
                "created_on": t.created_on.isoformat(),
                "due_by": t.due_by.isoformat(),
                "status": t.status,
                "outcome": t.outcome,
            }
            for t in tasks
        ],
        "promises": [
            {
                "recorded_on": p.recorded_on.isoformat(),
                "promised_date": p.promised_date.isoformat(),
                "promised_amount": str(from_fen(p.promised_amount_fen)) if p.promised_amount_fen is not None else None,
                "pause_until": p.pause_until.isoformat(),
                "status": p.status,
            }
            for p in promises
        ],
        "closures": [{"closed_on": c.closed_on.isoformat(), "reason": c.reason, "stage": c.stage} for c in closures],
    }


def _contact_row(contact: ContactAttempt, message: SmsMessage | None) -> dict[str, Any]:
    return {
        "business_date": contact.business_date.isoformat(),
        "channel": contact.channel,
        "kind": contact.kind,
        "template": contact.template,
        "stage": contact.stage,
        "dpd": contact.dpd,
        "status": contact.status,
        "reason": contact.reason,
        "planned_for": contact.planned_for,
        "sent_at": contact.sent_at,
        "deferrals": contact.deferrals,
        "task_id": contact.task_id,
        "message_id": message.message_id if message else None,
        "delivery": message.status if message else None,
        "segments": message.segments if message else None,
    }


@collections.command("history")
@click.argument("account")
@click.option("--json", "as_json", is_flag=True)
def history(account: str, as_json: bool) -> None:
    """An account's case, contacts (sent and suppressed, with why), tasks and promises."""
    with Session(_engine()) as session:
        data = history_rows(session, account)
    if as_json:
        _echo_json(data)
        return
    case = data["case"]
    if case is None:
        raise click.ClickException(f"no collection case for {account}")
    click.echo(
        f"{account}: {case['status']} stage {case['stage']} grade {case['grade']} DPD {case['max_dpd']} "
        f"overdue {case['total_overdue']}" + (f" closed {case['closed_reason']}" if case["closed_reason"] else "")
    )
    for c in data["contacts"]:
        why = f" ({c['reason']})" if c["reason"] else ""
        click.echo(
            f"  {c['business_date']} {c['channel']:6} {c['template']:26} {c['status']}{why}"
            + (f" {c['delivery']}" if c["delivery"] else "")
        )
    for t in data["tasks"]:
        click.echo(f"  task {t['created_on']} {t['kind']:7} due {t['due_by']} {t['status']} {t['outcome'] or ''}")
    for p in data["promises"]:
        click.echo(f"  promise {p['recorded_on']} → {p['promised_date']} {p['promised_amount'] or '-'} {p['status']}")


# --- KPIs ---------------------------------------------------------------------------------------

REACHED_BY_CALL = ("promise_to_pay", "refused", "paid")  # call outcomes that spoke to the customer


def observations(session: Session, start: date, end: date) -> list[StageObservation]:
    """Per case open at ``start``: its stage then, and its stage or closing at ``end``."""
    timeline: dict[str, list[tuple[date, int, str, bool]]] = {}
    for row in session.scalars(select(CaseStageHistory).where(CaseStageHistory.business_date <= end)).all():
        timeline.setdefault(row.account_id, []).append((row.business_date, row.id * 2, row.stage, False))
    for row in session.scalars(select(CaseClosure).where(CaseClosure.closed_on <= end)).all():
        timeline.setdefault(row.account_id, []).append((row.closed_on, row.id * 2 + 1, row.reason, True))
    result = []
    for account_id, entries in timeline.items():
        entries.sort()
        at_start = [e for e in entries if e[0] <= start]
        if not at_start or at_start[-1][3]:
            continue  # not in collections at the start of the period
        last = entries[-1]
        end_state: Stage | CaseEnd = CaseEnd(last[2]) if last[3] else Stage(last[2])
        result.append(StageObservation(account_id, Stage(at_start[-1][2]), end_state))
    return result


def cohort_cases(session: Session, start: date, end: date) -> list[CohortCase]:
    """The cases opened in [start, end] (first day past due in it), each as it stood on ``end``.

    An episode's first day past due is the day after the due date of its oldest bill that
    went overdue (collections' bills keep the DPD they reached); it ends at the case's
    next closing. Stages come from the stage history the daily job writes."""
    overdue: dict[str, list[date]] = {}
    for account_id, due_date in session.execute(
        select(Bill.account_id, Bill.due_date).where(Bill.dpd > 0, Bill.due_date < end)
    ):
        overdue.setdefault(account_id, []).append(due_date + timedelta(days=1))
    if not overdue:
        return []
    accounts = sorted(overdue)
    closures: dict[str, list[tuple[date, CaseEnd]]] = {}
    for row in session.scalars(
        select(CaseClosure).where(CaseClosure.account_id.in_(accounts), CaseClosure.closed_on <= end)
    ):
        closures.setdefault(row.account_id, []).append((row.closed_on, CaseEnd(row.reason)))
    episodes = [
        e
        for account in accounts
        for e in in_cohort(delinquency_episodes(account, overdue[account], closures.get(account, [])), start, end)
    ]
    if not episodes:
        return []
    mine = sorted({e.account_id for e in episodes})
    stages = _by_account(
        session.execute(
            select(
                CaseStageHistory.account_id, CaseStageHistory.business_date, CaseStageHistory.stage, CaseStageHistory.id
            ).where(CaseStageHistory.account_id.in_(mine), CaseStageHistory.business_date <= end)
        )
    )
    contacts = _by_account(
        session.execute(
            select(ContactAttempt.account_id, ContactAttempt.business_date).where(
                ContactAttempt.account_id.in_(mine),
                ContactAttempt.business_date <= end,
                or_(
                    and_(ContactAttempt.channel == "sms", ContactAttempt.status == "sent"),
                    and_(
                        ContactAttempt.channel == "call",
                        ContactAttempt.status == "attempted",
                        ContactAttempt.reason.in_(REACHED_BY_CALL),
                    ),
                ),
            )
        )
    )
    promises = _by_account(
        session.execute(
            select(
                PromiseToPay.account_id, PromiseToPay.recorded_on, PromiseToPay.status, PromiseToPay.decided_on
            ).where(PromiseToPay.account_id.in_(mine), PromiseToPay.recorded_on <= end)
        )
    )
    return [
        _cohort_case(
            e, end, stages.get(e.account_id, []), contacts.get(e.account_id, []), promises.get(e.account_id, [])
        )
        for e in episodes
    ]


def _by_account(rows: Any) -> dict[str, list[Any]]:
    """Result rows (their first column the account id) grouped by account."""
    grouped: dict[str, list[Any]] = {}
    for row in rows:
        grouped.setdefault(row.account_id, []).append(row)
    return grouped


def _cohort_case(
    episode: Episode, end: date, stages: list[Any], contacts: list[Any], promises: list[Any]
) -> CohortCase:
    """One episode with what happened in it up to ``end`` (or its closing, if earlier)."""
    last = min(episode.closed_on or end, end)

    def within(day: date) -> bool:
        return episode.opened_on <= day <= last

    judged = sorted((r.business_date, r.id, Stage(r.stage)) for r in stages if within(r.business_date))
    states = tuple(
        PromiseState(r.status)
        if r.decided_on is not None and r.decided_on <= end
        else PromiseState.PENDING  # decided after the period: still pending on its last day
        for r in promises
        if within(r.recorded_on)
    )
    return CohortCase(
        episode,
        stages_reached=frozenset(stage for _, _, stage in judged),
        stage=judged[-1][2] if judged else None,
        contacted=any(within(r.business_date) for r in contacts),
        promises=states,
    )


def _rate(rate: Rate) -> dict[str, Any]:
    return {
        "numerator": rate.numerator,
        "denominator": rate.denominator,
        "value": str(rate.value) if rate.value is not None else None,
    }


def kpi_report(session: Session, start: date, end: date) -> dict[str, Any]:
    """The period's cohort (cases opened in it, followed to ``end``), the contacts made in
    it, and the cases open on ``start`` followed to ``end``; the definitions beside them."""
    contacts = session.scalars(
        select(ContactAttempt).where(ContactAttempt.business_date >= start, ContactAttempt.business_date <= end)
    ).all()
    by_channel: Counter[tuple[str, str]] = Counter()
    for c in contacts:
        if c.channel not in ("sms", "call"):
            continue  # agency referrals and legal files are tasks, not contacts
        outcome = c.status if c.status not in ("suppressed", "attempted", "failed") else f"{c.status}:{c.reason}"
        by_channel[(c.channel, outcome)] += 1
    cohort = cohort_figures(cohort_cases(session, start, end), end)
    seen = observations(session, start, end)
    stages = [s for s in Stage]
    return {
        "from": start.isoformat(),
        "to": end.isoformat(),
        "definitions": dict(DEFINITIONS),
        "cohort": {
            "cases": cohort.cases,
            "outcomes": cohort.outcomes,
            "cure_rate": _rate(cohort.cure_rate),
            "roll_rates": {name: _rate(r) for name, r in cohort.roll_rates.items()},
            "contact_rate": _rate(cohort.contact_rate),
            "promise_kept_rate": _rate(cohort.promise_kept_rate),
        },
        "contacts": [{"channel": ch, "outcome": out, "count": n} for (ch, out), n in sorted(by_channel.items())],
        "open_on_from": {
            "cases": len(seen),
            "cure_rate_by_stage": {s.value: _rate(r) for s, r in cure_rates_by_stage(seen).items()},
            "roll_forward_rate_by_stage": {s.value: _rate(r) for s, r in roll_rates(seen).items()},
            "roll_rates": {
                f"{a.value}->{b.value}": _rate(roll_rate(seen, a, b)) for a, b in zip(stages, stages[1:], strict=False)
            },
        },
    }


@collections.command("kpis")
@click.option("--from", "first", type=BUSINESS_DATE, required=True, help="First business date YYYY-MM-DD.")
@click.option("--to", "last", type=BUSINESS_DATE, required=True, help="Last business date YYYY-MM-DD.")
@click.option("--json", "as_json", is_flag=True)
def kpis(first: date, last: date, as_json: bool) -> None:
    """The cases opened in the period and how they stand at its end (cure, roll, contact and
    promise-kept rates), the contacts made, and the cases open on --from; with definitions."""
    if last < first:
        raise click.BadParameter("--to is before --from", param_hint="--to")
    with Session(_engine()) as session:
        report = kpi_report(session, first, last)
    if as_json:
        _echo_json(report)
        return
    define = report["definitions"]
    cohort = report["cohort"]
    click.echo(f"collections KPIs {report['from']} .. {report['to']}")
    click.echo(f"cases opened in the period: {cohort['cases']}  ({define['cohort']})")
    click.echo("  outcomes as of --to: " + ", ".join(f"{k} {v}" for k, v in cohort["outcomes"].items()))
    click.echo(f"  cure rate          {_fmt(cohort['cure_rate']):>20}   {define['cure_rate']}")
    click.echo(f"  contact rate       {_fmt(cohort['contact_rate']):>20}   {define['contact_rate']}")
    click.echo(f"  promise kept rate  {_fmt(cohort['promise_kept_rate']):>20}   {define['promise_kept_rate']}")
    click.echo(f"  roll rates ({define['roll_rate']}):")
    for name, rate in cohort["roll_rates"].items():
        click.echo(f"    {name:14} {_fmt(rate)}")
    click.echo("contacts made in the period:")
    for row in report["contacts"]:
        click.echo(f"  {row['channel']:7} {row['outcome']:28} {row['count']:>8}")
    stock = report["open_on_from"]
    click.echo(f"cases open on --from: {stock['cases']}  ({define['open_on_from']})")
    click.echo("  cure rate by stage on --from / roll forward rate (a later stage or charged off):")
    for stage in Stage:
        cure, roll = stock["cure_rate_by_stage"][stage.value], stock["roll_forward_rate_by_stage"][stage.value]
        click.echo(f"    {stage.value:8} cured {_fmt(cure):>18}   rolled {_fmt(roll):>18}")
    click.echo("  roll rates (stage on --from -> stage on --to):")
    for name, rate in stock["roll_rates"].items():
        click.echo(f"    {name:14} {_fmt(rate)}")


def _fmt(rate: dict[str, Any]) -> str:
    if rate["value"] is None:
        return "n/a (0 cases)"
    return f"{rate['value']} ({rate['numerator']}/{rate['denominator']})"
