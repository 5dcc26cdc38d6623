"""``baitiao account``: one account as the ledger of record sees it, and the operator's
delinquency pause.

``show`` and ``ledger`` read the accounts database only, through the read models of
:mod:`services.accounts.queries`, so ``--json`` and the tables print the same facts.
``pause`` and ``resume`` are commands on the bus (``delinquency.pause.requested``,
``delinquency.resume.requested``, docs/events.md), published as any outside system
publishes them; accounts answers them on the bus, and ``show`` prints the pause.
An unknown account is an error (exit code 1), not an empty screen: an operator who
mistyped an id must not read "nothing owed".
"""

from __future__ import annotations

import json
import uuid
from datetime import date
from collections.abc import Callable
from typing import Any

import click
from rich.console import Console
from rich.table import Table
from sqlalchemy.orm import Session

from baitiao.commands.values import AMOUNT, BUSINESS_DATE
from services.accounts.domain.pauses import PAUSE_REASONS
from services.accounts.domain.waivers import WAIVER_COMPONENTS, WAIVER_REASONS
from services.accounts.queries import AccountNotFound, account_view, ledger_totals, ledger_view
from shared.db import engine_for, transaction
from shared.settings import get_settings


def _read(reader: Callable[[Session, str], Any], account_id: str) -> Any:
    """Run one read model in a transaction of the accounts database; unknown → exit 1."""
    try:
        with transaction(engine_for(get_settings().db_url("accounts"))) as session:
            return reader(session, account_id)
    except AccountNotFound as exc:
        raise click.ClickException(str(exc)) from exc


def _echo_json(data: Any) -> None:
    click.echo(json.dumps(data, ensure_ascii=False, indent=2))


@click.group()
def account() -> None:
    """Accounts: an account's standing, bills and ledger."""


@account.command("show")
@click.argument("account_id")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def show(account_id: str, as_json: bool) -> None:
    """ACCOUNT_ID's status, limits, restrictions, bills with DPD and charges, balances."""
    view = _read(account_view, account_id)
    if as_json:
        _echo_json(view)
        return
    console = Console()
    _print_header(console, view)
    _print_restrictions(console, view["restrictions"])
    _print_bills(console, view["bills"])
    _print_waivers(console, view["waivers"])
    _print_disputes(console, view["disputes"])
    _print_plan_and_repayments(console, view)
    _print_balances(console, view["balances"])


@account.command("ledger")
@click.argument("account_id")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def ledger(account_id: str, as_json: bool) -> None:
    """ACCOUNT_ID's ledger entries with the running customer balance, and the proof
    that its debits equal its credits."""
    entries = _read(ledger_view, account_id)
    totals = ledger_totals(entries)
    if as_json:
        _echo_json({"account_id": account_id, "entries": entries, "totals": totals})
        return
    console = Console()
    table = Table(title=f"Ledger of {account_id}")
    for column in ("date", "posting", "kind", "ledger account", "debit", "credit", "customer balance"):
        table.add_column(column, justify="right" if column in ("debit", "credit", "customer balance") else "left")
    for e in entries:
        table.add_row(
            e["date"],
            e["posting_id"],
            e["kind"],
            e["ledger_account"],
            _blank_zero(e["debit"]),
            _blank_zero(e["credit"]),
            e["customer_balance"],
        )
    console.print(table)
    verdict = "[green]balanced[/]" if totals["balanced"] else "[bold red]NOT BALANCED[/]"
    sign = "==" if totals["balanced"] else "!="
    console.print(f"debits {totals['debits']} {sign} credits {totals['credits']}: {verdict}")


OPERATORS_DESK = "operators-desk"  # the producer of the operators' commands


def _publish(event_type: str, payload: dict[str, Any], aggregate_id: str, on: date | None) -> str:
    """One command onto the topic exchange (routing key = its type); returns its event id.
    ``on``: the business date it is made on (noon, Asia/Shanghai), for a system on simulated
    time as ``jobs run --date``; None: now."""
    from baitiao.publishing import publish_envelope
    from shared.broker import broker_connection
    from shared.clock import at_local, default_clock
    from shared.embedded_broker import broker_for_command
    from shared.events.envelope import new_envelope
    from shared.events.owners import OPERATORS_DESK
    from shared.key_ring import key_ring

    settings = get_settings()
    body = new_envelope(
        event_type,
        payload,
        aggregate_id=aggregate_id,
        producer=OPERATORS_DESK,
        occurred_at=at_local(on, "12:00") if on else default_clock.now(),
    )
    with broker_for_command(settings) as url, broker_connection(url, settings) as connection:
        try:  # the operators' desk signs its commands: only a holder of its key is obeyed
            return publish_envelope(connection, body, OPERATORS_DESK, key_ring(settings))
        except LookupError as exc:
            raise click.ClickException(str(exc)) from None


@account.command("pause")
@click.argument("account_id")
@click.option("--reason", type=click.Choice(PAUSE_REASONS), required=True, help="Why the delinquency is paused.")
@click.option("--until", type=BUSINESS_DATE, default=None, help="Last paused date YYYY-MM-DD (default: until resumed).")
@click.option("--operator", "operator_id", required=True, help="The operator's staff id.")
@click.option("--request-id", default=None, help="The request's id (default: a new one; reuse it to retry).")
@click.option("--date", "on", type=BUSINESS_DATE, default=None, help="Business date of the command (default: now).")
def pause(account_id: str, reason: str, until: Any, operator_id: str, request_id: str | None, on: date | None) -> None:
    """Pause ACCOUNT_ID's delinquency: no charges, ladder, report or contact (RULES 2.8)."""
    request_id = request_id or uuid.uuid4().hex
    payload = {"request_id": request_id, "account_id": account_id, "reason": reason, "operator_id": operator_id}
    if until is not None:
        payload["until"] = until.isoformat()
    _publish("delinquency.pause.requested", payload, account_id, on)
    click.echo(f"pause requested: request {request_id} (answered by delinquency.paused or .pause.rejected)")


@account.command("resume")
@click.argument("account_id")
@click.option("--operator", "operator_id", required=True, help="The operator's staff id.")
@click.option("--request-id", default=None, help="The request's id (default: a new one; reuse it to retry).")
@click.option("--date", "on", type=BUSINESS_DATE, default=None, help="Business date of the command (default: now).")
def resume(account_id: str, operator_id: str, request_id: str | None, on: date | None) -> None:
    """Resume ACCOUNT_ID's delinquency: DPD counts on from where it stood."""
    request_id = request_id or uuid.uuid4().hex
    payload = {"request_id": request_id, "account_id": account_id, "operator_id": operator_id}
    _publish("delinquency.resume.requested", payload, account_id, on)
    click.echo(f"resume requested: request {request_id} (answered by delinquency.resumed or .resume.rejected)")


@account.command("waive")
@click.argument("account_id")
@click.option("--bill", "bill_id", required=True, help="The bill whose charge is waived.")
@click.option("--component", type=click.Choice(WAIVER_COMPONENTS), required=True)
@click.option("--amount", type=AMOUNT, required=True, help="Amount to waive, e.g. 12.50.")
@click.option("--reason", type=click.Choice(WAIVER_REASONS), required=True)
@click.option("--operator", "operator_id", required=True, help="The requesting operator's staff id (the maker).")
@click.option("--request-id", default=None, help="The waiver's id (default: a new one; reuse it to retry).")
@click.option("--date", "on", type=BUSINESS_DATE, default=None, help="Business date of the command (default: now).")
def waive(
    account_id: str,
    bill_id: str,
    component: str,
    amount: Any,
    reason: str,
    operator_id: str,
    request_id: str | None,
    on: date | None,
) -> None:
    """Waive penalty interest or a late fee on a bill (RULES 4.5); above the threshold it waits
    for a second operator's `account waiver approve`."""
    request_id = request_id or uuid.uuid4().hex
    payload = {
        "request_id": request_id,
        "account_id": account_id,
        "bill_id": bill_id,
        "component": component,
        "amount": str(amount),
        "reason": reason,
        "requested_by": operator_id,
    }
    _publish("waiver.requested", payload, account_id, on)
    click.echo(f"waiver requested: {request_id} (answered by waiver.applied, waiver.pending or waiver.rejected)")


@account.group("waiver")
def waiver() -> None:
    """A second operator's decision on a pending waiver (maker-checker)."""


def _decide(waiver_id: str, decision: str, operator_id: str, decision_id: str | None, on: date | None) -> None:
    decision_id = decision_id or uuid.uuid4().hex
    payload = {"decision_id": decision_id, "waiver_id": waiver_id, "decision": decision, "decided_by": operator_id}
    _publish("waiver.decision.recorded", payload, waiver_id, on)
    click.echo(
        f"decision {decision_id} sent ({decision}); answered by waiver.approved, .declined or .decision.rejected"
    )


_DECISION_OPTIONS = [
    click.argument("waiver_id"),
    click.option("--operator", "operator_id", required=True, help="The checker's staff id (not the requester's)."),
    click.option("--decision-id", default=None, help="The decision's id (default: a new one; reuse it to retry)."),
    click.option("--date", "on", type=BUSINESS_DATE, default=None, help="Business date of the command (default: now)."),
]


def _with_decision_options(command: Any) -> Any:
    for option in reversed(_DECISION_OPTIONS):
        command = option(command)
    return command


@waiver.command("approve")
@_with_decision_options
def waiver_approve(waiver_id: str, operator_id: str, decision_id: str | None, on: date | None) -> None:
    """Approve WAIVER_ID: it is applied at once."""
    _decide(waiver_id, "approve", operator_id, decision_id, on)


@waiver.command("decline")
@_with_decision_options
def waiver_decline(waiver_id: str, operator_id: str, decision_id: str | None, on: date | None) -> None:
    """Decline WAIVER_ID: nothing is waived."""
    _decide(waiver_id, "decline", operator_id, decision_id, on)


def _print_disputes(console: Console, disputes: list[dict[str, Any]]) -> None:
    if not disputes:
        return
    table = Table(title="Disputes")
    for column in ("dispute", "bill", "amount", "reason", "opened", "status", "outcome", "credited", "reversed"):
        table.add_column(column)
    for d in disputes:
        table.add_row(
            d["dispute_id"],
            d["bill_id"],
            d["amount"],
            d["reason"],
            d["opened_on"],
            d["status"] + (" (past service level)" if d["service_level_alert_on"] else ""),
            d["outcome"] or "-",
            d["credited"],
            d["charges_reversed"],
        )
    console.print(table)


def _print_waivers(console: Console, waivers: list[dict[str, Any]]) -> None:
    if not waivers:
        return
    table = Table(title="Waivers")
    for column in ("waiver", "bill", "component", "amount", "reason", "status", "maker", "checker", "applied"):
        table.add_column(column)
    for w in waivers:
        table.add_row(
            w["waiver_id"],
            w["bill_id"],
            w["component"],
            w["amount"],
            w["reason"],
            w["status"],
            w["requested_by"],
            w["decided_by"] or "-",
            w["applied"],
        )
    console.print(table)


def _print_header(console: Console, view: dict[str, Any]) -> None:
    cut = " (cut)" if view["limit_cut"] else ""
    console.print(f"[bold]Account {view['account_id']}[/] (customer {view['customer_id']}, opened {view['opened_on']})")
    console.print(
        f"status {view['status']}, borrowing {view['borrowing']}, level {view['level']} "
        f"(linked {view['linked_level']}), max DPD {view['max_dpd']}"
    )
    console.print(
        f"granted limit {view['granted_limit']}, credit limit {view['credit_limit']}{cut}, "
        f"available {view['available']}"
    )
    console.print(f"unpaid principal {view['unpaid_principal']}, credit balance {view['credit_balance']}")
    pause = view.get("pause")
    if pause:
        until = f" until {pause['until']}" if pause["until"] else " until resumed"
        console.print(f"delinquency paused ({pause['reason']}) since {pause['paused_on']}{until}")


def _print_restrictions(console: Console, restrictions: dict[str, Any]) -> None:
    current = ", ".join(restrictions["current"]) or "none"
    console.print(f"current measures: {current}")
    if not restrictions["history"]:
        return
    table = Table(title="Restrictions")
    for column in ("measure", "cause", "added", "lifted"):
        table.add_column(column)
    for r in restrictions["history"]:
        table.add_row(r["measure"], r["cause"], r["added_on"], r["lifted_on"] or "-")
    console.print(table)


def _print_bills(console: Console, bills: list[dict[str, Any]]) -> None:
    table = Table(title="Bills")
    columns = (
        "bill",
        "statement",
        "due",
        "DPD",
        "principal",
        "unpaid principal",
        "unpaid penalty",
        "unpaid late fee",
        "penalty charged",
        "late fee charged",
        "state",
    )
    for column in columns:
        table.add_column(column, justify="left" if column in ("bill", "state") else "right")
    for b in bills:
        table.add_row(
            b["bill_id"],
            b["statement_date"],
            b["due_date"],
            str(b["dpd"]),
            b["principal"],
            b["unpaid_principal"],
            b["unpaid_penalty"],
            b["unpaid_late_fee"],
            b["penalty_charged"],
            b["late_fee_charged"],
            _bill_state(b),
        )
    console.print(table)
    for b in bills:
        if b.get("report_notice_on") or b.get("bureau_marked_on"):
            console.print(f"bureau notice {b['bill_id']}: {_notice(b)}")


def _notice(bill: dict[str, Any]) -> str:
    """The pre-report notice (RULES 5.4): when and how the customer was told, or what waits on it."""
    if bill.get("report_notice_on"):
        return f"{bill['report_notice_channel']} {bill['report_notice_on']}"
    return "pending: mark not reported" if bill.get("bureau_marked_on") else "-"


def _bill_state(bill: dict[str, Any]) -> str:
    if bill["settled_on"]:
        return f"settled {bill['settled_on']}"
    if bill["charged_off"]:
        return f"charged off {bill['charged_off_on']}"
    if bill["in_plan"]:
        return f"in plan {bill['plan_id']}"
    return "overdue" if bill["dpd"] > 0 else "open"


def _print_plan_and_repayments(console: Console, view: dict[str, Any]) -> None:
    plan = view["active_plan"]
    if plan:
        console.print(
            f"active plan {plan['plan_id']}: outstanding {plan.get('outstanding', '?')}, "
            f"paid {plan.get('paid', '?')}, since {plan.get('activated_on', '?')}"
        )
    if not view["repayments"]:
        return
    table = Table(title="Recent repayments")
    for column in ("payment", "paid on", "amount", "status", "allocations"):
        table.add_column(column)
    for r in view["repayments"]:
        allocations = "; ".join(
            f"{a.get('target_id', a.get('target'))} {a.get('component')} {a.get('amount')}" for a in r["allocations"]
        )
        table.add_row(r["payment_id"], r["paid_on"], r["amount"], r["reason"] or r["status"], allocations)
    console.print(table)


def _print_balances(console: Console, balances: dict[str, Any]) -> None:
    table = Table(title="Ledger balances (debit − credit)")
    table.add_column("ledger account")
    table.add_column("balance", justify="right")
    for name, amount in balances["by_account"].items():
        table.add_row(name, amount)
    table.add_row("[bold]customer balance[/]", f"[bold]{balances['customer_balance']}[/]")
    console.print(table)


def _blank_zero(amount: str) -> str:
    return "" if amount == "0.00" else amount
