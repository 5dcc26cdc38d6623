"""What an outside system sees when it sends something the contract refuses.

Through the public events only, on the running system: an invalid command whose
envelope and business id can be read gets its own rejection (reason
``invalid_payload``, with the fields at fault) and is kept in the answering service's
dead letters; junk that cannot be read at all is dead-lettered without a reply; a
message of a type the contract does not know is dead-lettered ``unknown_type``; a
known event still reaches each of its services exactly once.
"""

from __future__ import annotations

import time
from typing import Any

import pytest
from sqlalchemy import create_engine, text

from tests.support.customers import credit_line, new_id, purchase, repayment
from tests.support.system import envelope

pytestmark = pytest.mark.e2e

PAID_AT = "2026-03-20T18:00:00+08:00"


def _by(key: str, value: str):
    return lambda payload: payload.get(key) == value


def _dead_letters(system, service: str, where: str, **params: Any) -> list[dict[str, Any]]:
    engine = create_engine(system.databases.url(service))
    try:
        with engine.connect() as conn:
            rows = conn.execute(text(f"SELECT * FROM dead_letters WHERE {where} ORDER BY id"), params)
            return [dict(row._mapping) for row in rows]
    finally:
        engine.dispose()


def _inbox_count(system, service: str, event_id: str) -> int:
    engine = create_engine(system.databases.url(service))
    try:
        with engine.connect() as conn:
            return conn.execute(text("SELECT count(*) FROM inbox WHERE event_id = :e"), {"e": event_id}).scalar_one()
    finally:
        engine.dispose()


def _wait_dead_letter(system, service: str, where: str, timeout: float = 30.0, **params: Any) -> list[dict[str, Any]]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        rows = _dead_letters(system, service, where, **params)
        if rows:
            return rows
        system.outside.pump(0.2)
    raise AssertionError(f"no dead letter in {service} where {where} {params}")


def _error_fields(reply: dict[str, Any]) -> list[str]:
    return [error["loc"] for error in reply["payload"]["errors"]]


def _open_line(system, limit: str = "5000.00") -> str:
    account = new_id("acc")
    system.outside.publish("credit.line.granted", credit_line(account, limit), account)
    system.outside.wait_for("credit.line.opened", _by("account_id", account))
    return account


@pytest.mark.parametrize("amount", [100.5, "abc"], ids=["float", "not-a-number"])
def test_a_repayment_with_an_unreadable_amount_is_rejected_and_kept(system, amount: Any) -> None:
    out = system.outside
    account = _open_line(system)
    payment = {**repayment(account, "0.00", PAID_AT), "amount": amount}
    sent = out.publish("repayment.received", payment, account)

    reply = out.wait_for("repayment.rejected", _by("payment_id", payment["payment_id"]))[0]
    assert reply["payload"]["reason"] == "invalid_payload"
    assert reply["payload"]["account_id"] == account
    assert reply["payload"]["amount"] is None  # what was sent is not a decimal string
    assert _error_fields(reply) == ["amount"]
    assert reply["causation_id"] == sent["event_id"] and reply["producer"] == "accounts"
    letters = _wait_dead_letter(system, "accounts", "event_id = :e", e=sent["event_id"])
    assert len(letters) == 1 and letters[0]["reason"].startswith("invalid_payload")


def test_a_purchase_with_amount_abc_is_declined_invalid_payload(system) -> None:
    out = system.outside
    account = _open_line(system)
    request = purchase(account, "abc")
    sent = out.publish("purchase.requested", request, account)
    reply = out.wait_for("purchase.declined", _by("purchase_id", request["purchase_id"]))[0]
    assert reply["payload"]["reason"] == "invalid_payload"
    assert reply["payload"]["amount"] is None
    assert _error_fields(reply) == ["amount"]
    assert _wait_dead_letter(system, "accounts", "event_id = :e", e=sent["event_id"])
    # "-5.00" is a decimal string: accounts judges it, as before.
    negative = purchase(account, "-5.00")
    out.publish("purchase.requested", negative, account)
    assert (
        out.wait_for("purchase.declined", _by("purchase_id", negative["purchase_id"]))[0]["payload"]["reason"]
        == "invalid_amount"
    )


def test_a_grant_with_a_short_identity_hash_is_rejected_without_echoing_it(system) -> None:
    out = system.outside
    account = new_id("acc")
    grant = {**credit_line(account), "identity_hash": "sh0rt"}
    sent = out.publish("credit.line.granted", grant, account)
    reply = out.wait_for("credit.line.rejected", _by("account_id", account))[0]
    assert reply["payload"]["reason"] == "invalid_payload"
    assert _error_fields(reply) == ["identity_hash"]
    assert "sh0rt" not in str(reply)  # personal data is never echoed
    assert _wait_dead_letter(system, "accounts", "event_id = :e", e=sent["event_id"])
    out.pump(2.0)
    # Recorded once, by the service that answers it; its other consumers only ack it.
    for service in ("collections", "restructuring"):
        assert _dead_letters(system, service, "event_id = :e", e=sent["event_id"]) == []
    assert out.events("credit.line.opened", _by("account_id", account)) == []


def test_over_long_ids_and_texts_are_invalid_payloads_with_a_reply(system) -> None:
    out = system.outside
    account = _open_line(system)
    long_account = "a" * 65
    payment = repayment(long_account, "10.00", PAID_AT)
    sent = out.publish("repayment.received", payment, account)
    reply = out.wait_for("repayment.rejected", _by("payment_id", payment["payment_id"]))[0]
    assert reply["payload"]["reason"] == "invalid_payload"
    assert reply["payload"]["account_id"] is None and reply["payload"]["amount"] == "10.00"
    assert _error_fields(reply) == ["account_id"]
    assert _wait_dead_letter(system, "accounts", "event_id = :e", e=sent["event_id"])

    request = {**purchase(account, "10.00"), "merchant": "m" * 129}
    out.publish("purchase.requested", request, account)
    declined = out.wait_for("purchase.declined", _by("purchase_id", request["purchase_id"]))[0]
    assert declined["payload"]["reason"] == "invalid_payload" and _error_fields(declined) == ["merchant"]

    plan_request = {"request_id": new_id("req"), "plan_id": "p" * 65, "kind": "extend", "new_term": 6}
    out.publish("plan.adjustment.requested", plan_request, account)
    rejected = out.wait_for("plan.adjustment.rejected", _by("request_id", plan_request["request_id"]))[0]
    assert rejected["payload"]["reason"] == "invalid_payload" and rejected["payload"]["plan_id"] is None
    assert rejected["producer"] == "restructuring"


def test_unreadable_junk_is_dead_lettered_without_a_reply(system) -> None:
    out = system.outside
    marker = new_id("junk")
    out.publish_raw(f"{{not json {marker}".encode(), "repayment.received")
    out.publish_raw({"payment_id": marker, "amount": "1.00"}, "repayment.received")  # JSON, no envelope
    letters = _wait_dead_letter(system, "accounts", "body LIKE :m", m=f"%{marker}%")
    deadline = time.monotonic() + 30
    while len(letters) < 2 and time.monotonic() < deadline:
        out.pump(0.2)
        letters = _dead_letters(system, "accounts", "body LIKE :m", m=f"%{marker}%")
    reasons = sorted(letter["reason"].split(":")[0] for letter in letters)
    # a JSON object is believed before it is read as an envelope: with no signature, unsigned
    assert reasons == ["not_json", "unsigned"], reasons
    out.pump(2.0)
    assert [e for e in out.seen if marker in str(e.get("payload"))] == []


def test_a_type_the_contract_does_not_know_is_dead_lettered_unknown_type(system) -> None:
    out = system.outside
    sent = envelope("foo.bar", {"hello": "world"}, new_id("acc"))
    out.publish_raw(sent, "foo.bar")
    letters = _wait_dead_letter(system, "accounts", "event_id = :e", e=sent["event_id"])
    assert len(letters) == 1
    assert letters[0]["reason"].startswith("unknown_type") and letters[0]["queue"] == "unrouted"


def test_a_known_event_still_reaches_each_of_its_services_exactly_once(system) -> None:
    out = system.outside
    account = new_id("acc")
    sent = out.publish("credit.line.granted", credit_line(account), account)
    out.wait_for("credit.line.opened", _by("account_id", account))
    deadline = time.monotonic() + 30
    services = ("accounts", "collections", "restructuring")
    while time.monotonic() < deadline and not all(_inbox_count(system, s, sent["event_id"]) for s in services):
        out.pump(0.2)
    out.pump(2.0)
    assert [_inbox_count(system, s, sent["event_id"]) for s in services] == [1, 1, 1]
    for service in services:
        assert _dead_letters(system, service, "event_id = :e", e=sent["event_id"]) == []
    assert len(out.events("credit.line.opened", _by("account_id", account))) == 1
