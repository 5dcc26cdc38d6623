"""Forged, unsigned and tampered messages through the bus, against the real workers.

Issue 23: a plain kombu client that could reach Redis published ``account.cured`` for an
account one day overdue, ``producer`` set to anything, and collections closed the case.
Here every such message is refused by each worker it reaches: not applied, kept in that
service's dead letters with its reason (``unsigned``, ``forged``, ``bad_signature``), and
the workers carry on; a command signed by its owner is applied.
"""

from __future__ import annotations

import json
import time
from typing import Any

import pytest
from sqlalchemy import create_engine, text

from shared.events.signing import sign_envelope
from tests.e2e.conftest import System
from tests.support.customers import credit_line, new_id, purchase, repayment
from tests.support.signing import RETIRED, signed_as_owner, signed_by
from tests.support.system import envelope

pytestmark = pytest.mark.e2e


def _scalar(system: System, service: str, sql: str, **params: Any) -> Any:
    engine = create_engine(system.databases.url(service))
    try:
        with engine.connect() as conn:
            return conn.scalar(text(sql), params)
    finally:
        engine.dispose()


def _wait(what: str, probe: Any, timeout: float = 30) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = probe()
        if found:
            return found
        time.sleep(0.1)
    raise AssertionError(f"{what} within {timeout}s")


def _dead_letter_reason(system: System, service: str, event_id: str) -> str:
    return _wait(
        f"{service} dead-lettered {event_id}",
        lambda: _scalar(system, service, "SELECT reason FROM dead_letters WHERE event_id = :e", e=event_id),
    )


def _applied(system: System, service: str, event_id: str) -> bool:
    return bool(_scalar(system, service, "SELECT 1 FROM inbox WHERE event_id = :e", e=event_id))


def _wait_applied(system: System, service: str, event_id: str) -> None:
    _wait(f"{service} applied {event_id}", lambda: _applied(system, service, event_id))


def _case(system: System, account: str) -> tuple[str, str | None] | None:
    engine = create_engine(system.databases.url("collections"))
    try:
        with engine.connect() as conn:
            row = conn.execute(
                text("SELECT status, closed_reason FROM cases WHERE account_id = :a"), {"a": account}
            ).one_or_none()
            return None if row is None else (row.status, row.closed_reason)
    finally:
        engine.dispose()


def _one_day_overdue(system: System) -> str:
    """An account with a bill one day past due, as accounts told collections (signed by accounts)."""
    out, account, bill = system.outside, new_id("acc"), new_id("bill")
    out.publish("credit.line.granted", credit_line(account), account)
    issued = out.publish(
        "bill.issued",
        {
            "bill_id": bill,
            "account_id": account,
            "statement_date": "2026-03-01",
            "due_date": "2026-03-10",
            "amount": "1000.00",
        },
        account,
    )
    update = out.publish(
        "account.delinquency.updated",
        {
            "account_id": account,
            "business_date": "2026-03-11",
            "max_dpd": 1,
            "overdue_principal": "1000.00",
            "penalty_interest": "0.50",
            "late_fees": "0.00",
            "total_overdue": "1000.50",
            "bills": [
                {
                    "bill_id": bill,
                    "due_date": "2026-03-10",
                    "dpd": 1,
                    "unpaid_principal": "1000.00",
                    "penalty_interest": "0.50",
                    "late_fee": "0.00",
                }
            ],
        },
        account,
        occurred_at="2026-03-11T00:30:00+08:00",
    )
    _wait_applied(system, "collections", issued["event_id"])
    _wait_applied(system, "collections", update["event_id"])
    assert _case(system, account) == ("open", None)
    return account


def _cured(account: str) -> dict[str, Any]:
    return envelope(
        "account.cured",
        {"account_id": account, "business_date": "2026-03-12"},
        account,
        occurred_at="2026-03-12T10:00:00+08:00",
    )


def _repayment_applied(account: str) -> dict[str, Any]:
    payload = {
        "payment_id": new_id("pay"),
        "account_id": account,
        "amount": "1000.50",
        "allocations": [{"target": "bill", "target_id": "b", "component": "principal", "amount": "1000.50"}],
        "credit_balance": "0.00",
        "total_overdue": "0.00",
    }
    return envelope("repayment.applied", payload, account, occurred_at="2026-03-12T10:00:00+08:00")


def test_a_forged_cure_and_repayment_change_nothing_and_are_dead_lettered(system: System) -> None:
    account = _one_day_overdue(system)
    out = system.outside

    unsigned = _cured(account)  # the client: any producer, no signature
    unsigned["producer"] = "accounts"
    out.publish_raw(unsigned, "account.cured", sign=False)
    by_the_gateway = signed_by(_cured(account), "payment-gateway")  # a real key, not the owner's
    out.publish_raw(by_the_gateway, "account.cured")
    wrong_producer = signed_by(_repayment_applied(account), "payment-gateway")
    out.publish_raw(wrong_producer, "repayment.applied")

    assert _dead_letter_reason(system, "collections", unsigned["event_id"]).startswith("unsigned:")
    assert _dead_letter_reason(system, "collections", by_the_gateway["event_id"]).startswith("forged:")
    for service in ("collections", "restructuring"):  # both consume repayment.applied
        assert _dead_letter_reason(system, service, wrong_producer["event_id"]).startswith("forged:")
        assert not _applied(system, service, wrong_producer["event_id"])
    assert not _applied(system, "collections", unsigned["event_id"])
    assert not _applied(system, "collections", by_the_gateway["event_id"])
    assert _case(system, account) == ("open", None)
    assert not out.events("collection.case.closed", lambda p: p.get("account_id") == account)

    # the worker carries on: the cure accounts really signed closes the case
    cured = out.publish_raw(_cured(account), "account.cured")
    _wait_applied(system, "collections", cured["event_id"])
    assert _wait("the case closed", lambda: _case(system, account) == ("closed", "cured"))


def test_one_byte_changed_and_a_retired_key_are_bad_signatures(system: System) -> None:
    account = _one_day_overdue(system)
    out = system.outside

    signed = signed_as_owner(
        envelope("repayment.received", repayment(account, "1.00", "2026-03-12T10:00:00+08:00"), account)
    )
    wire = json.dumps(signed)
    tampered = wire.replace('"amount": "1.00"', '"amount": "9.00"')
    assert tampered != wire and len(tampered) == len(wire)
    out.publish_raw(tampered.encode(), "repayment.received")
    retired = sign_envelope(_cured(account), RETIRED)  # accounts' key, rotated out
    out.publish_raw(retired, "account.cured")

    reason = _dead_letter_reason(system, "accounts", signed["event_id"])
    assert reason.startswith("bad_signature:") and "does not verify" in reason
    assert "unknown or retired" in _dead_letter_reason(system, "collections", retired["event_id"])
    assert not _applied(system, "accounts", signed["event_id"])
    assert not out.events("repayment.applied", lambda p: p.get("payment_id") == signed["payload"]["payment_id"])
    assert _case(system, account) == ("open", None)


def test_an_unsigned_command_is_not_obeyed(system: System) -> None:
    out, account = system.outside, new_id("acc")
    opened = out.publish("credit.line.granted", credit_line(account), account)
    _wait_applied(system, "accounts", opened["event_id"])

    command = out.publish("purchase.requested", purchase(account, "100.00"), account, sign=False)
    assert _dead_letter_reason(system, "accounts", command["event_id"]).startswith("unsigned:")
    out.pump(1.0)
    purchase_id = command["payload"]["purchase_id"]
    assert not out.events("purchase.approved", lambda p: p.get("purchase_id") == purchase_id)
    assert not out.events("purchase.declined", lambda p: p.get("purchase_id") == purchase_id)


def test_a_signed_command_from_each_outside_producer_is_applied(system: System) -> None:
    out, account = system.outside, new_id("acc")
    at = "2026-03-12T10:00:00+08:00"
    commands = [
        ("accounts", "credit.line.granted", credit_line(account)),
        ("accounts", "purchase.requested", purchase(account, "100.00")),
        ("accounts", "repayment.received", repayment(account, "50.00", at)),
        ("restructuring", "plan.offers.requested", {"request_id": new_id("req"), "account_id": account}),
        (
            "collections",
            "collection.outcome.recorded",
            {"task_id": new_id("task"), "account_id": account, "outcome": "no_answer"},
        ),
        (
            "collections",
            "sms.delivery.reported",
            {"message_id": new_id("sms"), "status": "delivered", "reported_at": at},
        ),
        (
            "accounts",
            "delinquency.pause.requested",
            {"request_id": new_id("req"), "account_id": account, "reason": "regulator", "operator_id": "op-1"},
        ),
    ]
    producers = set()
    for service, event_type, payload in commands:
        sent = out.publish(event_type, payload, account, occurred_at=at)
        producers.add(sent["producer"])
        _wait_applied(system, service, sent["event_id"])
    assert producers == {
        "credit-approval",
        "checkout",
        "payment-gateway",
        "customer-app",
        "collectors-desk",
        "sms-provider",
        "operators-desk",
    }
    out.wait_for("credit.line.opened", lambda p: p.get("account_id") == account)
