"""The backbone seen from outside: a plain kombu producer following EVENTS.md, nothing else."""

from __future__ import annotations

import json

import pytest

from tests.support.customers import credit_line, new_id, purchase
from tests.support.system import envelope, run_cli

pytestmark = pytest.mark.e2e


def _by(key: str, value: str):
    return lambda payload: payload.get(key) == value


def test_credit_line_then_purchases_approved_and_declined(system) -> None:
    out = system.outside
    account = new_id("acc")
    out.publish("credit.line.granted", credit_line(account, "5000.00"), account)
    opened = out.wait_for("credit.line.opened", _by("account_id", account))[0]
    assert opened["payload"]["credit_limit"] == "5000.00"
    assert opened["producer"] == "accounts" and opened["sequence"] is not None

    ok = purchase(account, "1000.00")
    out.publish("purchase.requested", ok, account)
    approved = out.wait_for("purchase.approved", _by("purchase_id", ok["purchase_id"]))[0]["payload"]
    assert approved["amount"] == "1000.00"
    assert approved["available_limit"] == "4000.00"

    too_big = purchase(account, "4000.01")
    out.publish("purchase.requested", too_big, account)
    declined = out.wait_for("purchase.declined", _by("purchase_id", too_big["purchase_id"]))[0]["payload"]
    assert declined["reason"] == "insufficient_limit"

    unknown = purchase(new_id("nobody"), "10.00")
    out.publish("purchase.requested", unknown, unknown["account_id"])
    assert (
        out.wait_for("purchase.declined", _by("purchase_id", unknown["purchase_id"]))[0]["payload"]["reason"]
        == "unknown_account"
    )


def test_same_event_twice_is_applied_once(system) -> None:
    out = system.outside
    account = new_id("acc")
    out.publish("credit.line.granted", credit_line(account, "1000.00"), account)
    out.wait_for("credit.line.opened", _by("account_id", account))
    body = out.publish("purchase.requested", purchase(account, "600.00"), account)
    out.publish_raw(body, "purchase.requested")  # the very same event (same event_id) again
    out.wait_for("purchase.approved", _by("account_id", account))
    out.pump(3.0)
    replies = [e for e in out.seen if e.get("causation_id") == body["event_id"]]
    assert [r["type"] for r in replies] == ["purchase.approved"]
    # A second, different purchase of 600.00 must now fail: the first was applied exactly once.
    second = purchase(account, "600.00")
    out.publish("purchase.requested", second, account)
    assert (
        out.wait_for("purchase.declined", _by("purchase_id", second["purchase_id"]))[0]["payload"]["reason"]
        == "insufficient_limit"
    )


def test_bad_messages_go_to_dead_letters_and_the_worker_goes_on(system) -> None:
    out = system.outside
    account = new_id("acc")
    out.publish_raw(b"{this is not json", "purchase.requested")
    # A type nobody knows, sent on a key the accounts queue is bound to (a mislabelled producer).
    out.publish_raw(envelope("purchase.teleported", {"account_id": account}, account), "purchase.requested")
    out.publish(
        "purchase.requested",
        {
            "purchase_id": "x",
            "account_id": account,
            "amount": "ten yuan",
            "merchant": "m",
            "requested_at": "2026-02-14T12:00:00+08:00",
        },
        account,
    )
    negative = purchase(account, "-5.00")
    out.publish("credit.line.granted", credit_line(account), account)
    out.publish("purchase.requested", negative, account)
    valid = purchase(account, "12.34")
    out.publish("purchase.requested", valid, account)

    assert (
        out.wait_for("purchase.declined", _by("purchase_id", negative["purchase_id"]))[0]["payload"]["reason"]
        == "invalid_amount"
    )
    assert out.wait_for("purchase.approved", _by("purchase_id", valid["purchase_id"]))

    listing = run_cli(["dlq", "list", "--service", "accounts", "--json"], system.env)
    assert listing.returncode == 0, listing.stderr
    reasons = [row["reason"] for row in json.loads(listing.stdout)]
    assert any(r.startswith("not_json") for r in reasons), reasons
    assert any("unknown_type" in r and "purchase.teleported" in r for r in reasons)
    assert any(r.startswith("invalid_payload") and "amount" in r for r in reasons)
    assert system.workers.alive("accounts")


def test_dead_letter_replay_republishes_the_original_body(system) -> None:
    out = system.outside
    account = new_id("acc")
    out.publish("credit.line.granted", credit_line(account, "100.00"), account)
    out.wait_for("credit.line.opened", _by("account_id", account))
    bad = {
        "event_id": "not-a-uuid",
        "type": "purchase.requested",
        "version": 1,
        "occurred_at": "2026-02-14T12:00:00+08:00",
        "producer": "checkout",
        "aggregate_id": account,
        "payload": purchase(account, "1.00"),
    }
    out.publish_raw(bad, "purchase.requested")
    deadline_rows: list[dict] = []
    for _ in range(100):
        listing = json.loads(run_cli(["dlq", "list", "--service", "accounts", "--json"], system.env).stdout)
        deadline_rows = [r for r in listing if r["event_id"] == "not-a-uuid"]
        if deadline_rows:
            break
        out.pump(0.2)
    assert deadline_rows, "the malformed envelope never reached the dead letters"
    replay = run_cli(["dlq", "replay", deadline_rows[0]["id"]], system.env)
    assert replay.returncode == 0, replay.stderr
    assert "replayed" in replay.stdout
    # Still invalid, so it lands in the dead letters again: nothing is ever dropped silently.
    for _ in range(100):
        listing = json.loads(run_cli(["dlq", "list", "--service", "accounts", "--json"], system.env).stdout)
        if len([r for r in listing if r["event_id"] == "not-a-uuid"]) >= 1 and any(
            r["event_id"] == "not-a-uuid" and r["id"] != deadline_rows[0]["id"] for r in listing
        ):
            return
        out.pump(0.2)
    pytest.fail("the replayed message did not come back through the consumer")
