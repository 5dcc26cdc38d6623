"""The contract's answers to refused commands, and the limits inbound payloads are held to."""

from __future__ import annotations

import json
import re
import uuid
from pathlib import Path
from typing import Any

import pytest

from shared.bus.outbox import payload_json
from shared.events import InvalidPayload, UnreadableEvent, read_event
from shared.events.payloads import PAYLOADS
from shared.events.rejections import REJECTIONS, answered_by
from shared.events.types import MAX_AMOUNT, MAX_DECIMAL_CHARS

DOC = Path(__file__).resolve().parents[2] / "docs" / "events.md"
PAID_AT = "2026-03-20T18:00:00+08:00"
REPAYMENT = {
    "payment_id": "pay-1",
    "account_id": "acc-1",
    "amount": "10.00",
    "currency": "CNY",
    "paid_at": PAID_AT,
    "channel": "app",
}
GRANT = {
    "account_id": "acc-1",
    "customer_id": "c-1",
    "identity_hash": "ab" * 16,
    "credit_limit": "5000.00",
    "name": "张三",
    "phone": "13812345678",
    "opened_on": "2026-01-01",
    "monthly_income": "8000.00",
}


def _body(event_type: str, payload: dict[str, Any], **envelope: Any) -> bytes:
    return json.dumps(
        {
            "event_id": str(uuid.uuid4()),
            "type": event_type,
            "occurred_at": PAID_AT,
            "producer": "test",
            "aggregate_id": "acc-1",
            "payload": payload,
            **envelope,
        }
    ).encode()


def _refused(event_type: str, payload: dict[str, Any]) -> InvalidPayload:
    with pytest.raises(InvalidPayload) as caught:
        read_event(_body(event_type, payload))
    return caught.value


def _inbound_types() -> set[str]:
    text = DOC.read_text(encoding="utf-8")
    section = text.split("## Inbound: published by outside systems", 1)[1].split("\n## ", 1)[0]
    return set(re.findall(r"^### ([a-z_.]+)\s*$", section, re.MULTILINE))


def test_every_inbound_command_has_a_rejection_of_the_contract() -> None:
    assert set(REJECTIONS) == _inbound_types()
    for rejection in REJECTIONS.values():
        assert rejection.reply in PAYLOADS and rejection.business_id in PAYLOADS[rejection.command].model_fields
        assert rejection.answered_by in ("accounts", "collections", "restructuring")
    assert set(answered_by("accounts")) == {
        "credit.line.granted",
        "purchase.requested",
        "repayment.received",
        "delinquency.pause.requested",
        "delinquency.resume.requested",
        "waiver.requested",
        "waiver.decision.recorded",
        "dispute.opened",
        "dispute.resolved",
    }


@pytest.mark.parametrize("command", sorted(REJECTIONS))
def test_the_answer_to_any_refused_command_is_a_valid_event_of_its_type(command: str) -> None:
    rejection = REJECTIONS[command]
    payload = {field: "x" * 65 for field in PAYLOADS[command].model_fields}  # every id and text too long
    refused = _refused(command, payload)
    reply = rejection.reply_payload(refused.envelope.payload, refused.errors)
    assert reply is not None and reply[rejection.fields[0][0]] == "x" * 65  # the business id, as sent
    assert all(reply[field] is None for field, _ in rejection.fields[1:])  # nothing refused is echoed
    wire = payload_json(rejection.reply, reply)
    assert wire["reason"] == "invalid_payload" and wire["errors"]


def test_the_answer_echoes_only_what_passed_and_never_a_value() -> None:
    refused = _refused("repayment.received", {**REPAYMENT, "amount": 100.5})
    reply = REJECTIONS["repayment.received"].reply_payload(refused.envelope.payload, refused.errors)
    assert reply == {
        "payment_id": "pay-1",
        "account_id": "acc-1",
        "amount": None,
        "reason": "invalid_payload",
        "errors": [{"loc": "amount", "msg": reply["errors"][0]["msg"]}],
    }

    secret = {**GRANT, "identity_hash": "sh0rt", "monthly_income": "8000.001", "phone": "1"}
    refused = _refused("credit.line.granted", secret)
    assert [e["loc"] for e in refused.errors] == ["identity_hash", "phone", "monthly_income"]
    said = json.dumps(refused.errors, ensure_ascii=False)
    assert "sh0rt" not in said and "8000.001" not in said and '"1"' not in said


def test_a_command_without_a_readable_business_id_has_no_answer() -> None:
    for business_id in (None, "", 42):
        refused = _refused("repayment.received", {**REPAYMENT, "payment_id": business_id, "amount": "abc"})
        assert REJECTIONS["repayment.received"].reply_payload(refused.envelope.payload, refused.errors) is None


@pytest.mark.parametrize(
    "amount, ok",
    [
        (str(MAX_AMOUNT - 1), True),
        ("999999999999.99", True),
        (str(MAX_AMOUNT), False),
        ("-" + str(MAX_AMOUNT), False),
        ("1e30", False),
        ("0" * (MAX_DECIMAL_CHARS - 4) + "1.00", True),
        ("0" * (MAX_DECIMAL_CHARS - 3) + "1.00", False),
    ],
)
def test_amounts_are_bounded(amount: str, ok: bool) -> None:
    body = _body("repayment.received", {**REPAYMENT, "amount": amount})
    if ok:
        read_event(body)
    else:
        assert _refused("repayment.received", {**REPAYMENT, "amount": amount}).errors[0]["loc"] == "amount"


@pytest.mark.parametrize(
    "paid_at, ok",
    [
        ("1900-01-01T00:00:00+08:00", True),
        ("2999-12-31T23:59:59-12:00", True),
        ("1899-12-31T23:59:59+08:00", False),
        ("9999-12-31T23:59:59-01:00", False),
        ("0001-01-01T00:00:00+08:00", False),
    ],
)
def test_timestamps_lie_in_the_contracts_calendar(paid_at: str, ok: bool) -> None:
    if ok:
        read_event(_body("repayment.received", {**REPAYMENT, "paid_at": paid_at}))
    else:
        assert _refused("repayment.received", {**REPAYMENT, "paid_at": paid_at}).errors[0]["loc"] == "paid_at"


@pytest.mark.parametrize("field, limit", [("payment_id", 64), ("account_id", 64), ("currency", 8), ("channel", 32)])
def test_inbound_texts_fit_their_columns(field: str, limit: int) -> None:
    read_event(_body("repayment.received", {**REPAYMENT, field: "x" * limit}))
    assert [e["loc"] for e in _refused("repayment.received", {**REPAYMENT, field: "x" * (limit + 1)}).errors] == [field]


@pytest.mark.parametrize("field", ["aggregate_id", "correlation_id", "causation_id"])
def test_an_envelope_id_over_its_column_is_an_invalid_envelope(field: str) -> None:
    read_event(_body("repayment.received", REPAYMENT, **{field: "e" * 64}))
    with pytest.raises(UnreadableEvent) as caught:
        read_event(_body("repayment.received", REPAYMENT, **{field: "e" * 65}))
    assert caught.value.reason.startswith("invalid_envelope") and not isinstance(caught.value, InvalidPayload)
