"""The envelope and payloads of EVENTS.md: strict where money and types are concerned."""

from __future__ import annotations

import json
import uuid
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from shared.events import UnreadableEvent, new_envelope, read_event
from shared.events.payloads import PAYLOADS
from shared.money import MoneyError, fen_str, from_fen, parse_amount, round_fen, to_fen


def _body(event_type: str, payload: dict, **overrides) -> bytes:
    envelope = {
        "event_id": str(uuid.uuid4()),
        "type": event_type,
        "version": 1,
        "occurred_at": "2026-03-20T10:15:00+08:00",
        "producer": "test",
        "correlation_id": None,
        "causation_id": None,
        "aggregate_id": "acc-1",
        "sequence": None,
        "payload": payload,
    }
    envelope.update(overrides)
    return json.dumps(envelope).encode()


GRANT = {
    "account_id": "acc-1",
    "customer_id": "c-1",
    "identity_hash": "ab" * 16,
    "credit_limit": "5000.00",
    "name": "张三",
    "phone": "13812345678",
    "opened_on": "2026-01-01",
}


def test_a_valid_event_reads_back_typed() -> None:
    envelope, payload = read_event(_body("credit.line.granted", GRANT))
    assert envelope.type == "credit.line.granted"
    assert payload.credit_limit == Decimal("5000.00")


@pytest.mark.parametrize(
    "body, reason",
    [
        (b"\xff\xfe not json", "not_json"),
        (b"[1, 2]", "not_an_envelope"),
        (_body("credit.line.teleported", GRANT), "unknown_type"),
        (_body("credit.line.granted", {**GRANT, "credit_limit": 5000.0}), "invalid_payload"),
        (_body("credit.line.granted", {**GRANT, "credit_limit": "-1.00"}), "invalid_payload"),
        (_body("credit.line.granted", {**GRANT, "credit_limit": "10.001"}), "invalid_payload"),
        (_body("credit.line.granted", {**GRANT, "credit_limit": "lots"}), "invalid_payload"),
        (_body("credit.line.granted", GRANT, occurred_at="2026-03-20T10:15:00"), "invalid_envelope"),
        (_body("credit.line.granted", GRANT, event_id="not-a-uuid"), "invalid_envelope"),
    ],
)
def test_unreadable_messages_say_why(body: bytes, reason: str) -> None:
    with pytest.raises(UnreadableEvent) as caught:
        read_event(body)
    assert caught.value.reason.startswith(reason)


def test_commands_with_a_business_reply_accept_any_decimal_and_judge_it_later() -> None:
    _, payload = read_event(
        _body(
            "purchase.requested",
            {
                "purchase_id": "p",
                "account_id": "a",
                "amount": "-5.001",
                "merchant": "m",
                "requested_at": "2026-03-01T10:00:00+08:00",
            },
        )
    )
    assert payload.amount == Decimal("-5.001")


def test_every_event_type_of_events_md_has_a_payload_model() -> None:
    assert (
        len(PAYLOADS) == 61
    )  # with the three rejections added for commands that had none, the notice, the pause, waivers
    assert {"repayment.applied", "plan.offered", "daily.close.completed", "sms.delivery.reported"} <= set(PAYLOADS)


def test_new_envelope_writes_money_as_decimal_strings() -> None:
    from datetime import datetime, timezone

    body = new_envelope(
        "purchase.approved",
        {"purchase_id": "p", "account_id": "a", "amount": Decimal("12.3"), "available_limit": Decimal("0")},
        aggregate_id="a",
        producer="accounts",
        occurred_at=datetime.now(timezone.utc),
    )
    assert body["payload"]["amount"] == "12.30" and body["payload"]["available_limit"] == "0.00"


@given(st.integers(min_value=-(10**12), max_value=10**12))
def test_fen_round_trips(fen: int) -> None:
    assert to_fen(from_fen(fen)) == fen
    assert fen_str(fen) == str(from_fen(fen))


def test_rounding_is_half_up_to_the_fen_and_floats_are_refused() -> None:
    assert round_fen(Decimal("0.005")) == Decimal("0.01")
    assert round_fen(Decimal("0.2575")) == Decimal("0.26")
    with pytest.raises(MoneyError):
        parse_amount(1.5)  # type: ignore[arg-type]  # a float on the wire, which must be refused
    with pytest.raises(MoneyError):
        to_fen(Decimal("0.001"))
