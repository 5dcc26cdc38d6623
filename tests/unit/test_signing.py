"""Signed envelopes: owners, canonical bytes, and the order a message is refused in."""

from __future__ import annotations

import json
from datetime import datetime, timezone

import pytest

from shared.events.envelope import RefusedEvent, new_envelope, read_event
from shared.events.owners import OWNERS, PRODUCERS
from shared.events.payloads import PAYLOADS
from shared.events.signing import (
    KeyRing,
    KeyTextError,
    SigningKey,
    canonical_bytes,
    parse_signing_keys,
    parse_verify_keys,
    ring_text,
    sign_envelope,
    verify_text,
)
from tests.support.signing import RETIRED, TEST_RING

CURED = {
    "account_id": "acc-1",
    "cured_at": "2026-03-05T10:00:00+08:00",
}


def test_every_type_of_the_contract_has_one_known_owner() -> None:
    assert set(OWNERS) == set(PAYLOADS)
    assert set(OWNERS.values()) <= set(PRODUCERS)


def _grant() -> dict:
    payload = {
        "account_id": "acc-1",
        "customer_id": "c-1",
        "identity_hash": "ab" * 16,
        "credit_limit": "5000.00",
        "name": "张三",
        "phone": "13812345678",
        "opened_on": "2026-01-01",
    }
    return new_envelope(
        "credit.line.granted",
        payload,
        aggregate_id="acc-1",
        producer="credit-approval",
        occurred_at=datetime(2026, 3, 1, tzinfo=timezone.utc),
    )


def test_a_signed_envelope_from_its_owner_is_read() -> None:
    body = sign_envelope(_grant(), TEST_RING.signer("credit-approval"))
    envelope, _ = read_event(json.dumps(body).encode(), TEST_RING)
    assert envelope.producer == "credit-approval" and envelope.key_id == "test1"


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        (lambda b: {k: v for k, v in b.items() if k not in ("signature", "key_id")}, "unsigned"),
        (lambda b: sign_envelope(b, TEST_RING.signer("checkout")), "forged"),
        (lambda b: {**b, "aggregate_id": "acc-2"}, "bad_signature"),
        (lambda b: sign_envelope(b, SigningKey.generate("credit-approval", "test1")), "bad_signature"),
        (lambda b: {**b, "key_id": "nope"}, "bad_signature"),
    ],
    ids=["unsigned", "wrong-owner", "tampered", "other-key-same-id", "unknown-key-id"],
)
def test_a_message_not_believed_is_refused_with_its_reason(change, reason) -> None:
    body = change(sign_envelope(_grant(), TEST_RING.signer("credit-approval")))
    with pytest.raises(RefusedEvent) as refused:
        read_event(json.dumps(body).encode(), TEST_RING)
    assert refused.value.refusal == reason and refused.value.reason.startswith(reason + ":")


def test_one_byte_changed_in_the_wire_text_does_not_verify() -> None:
    text = json.dumps(sign_envelope(_grant(), TEST_RING.signer("credit-approval")))
    tampered = text.replace('"5000.00"', '"5000.01"')
    assert tampered != text
    with pytest.raises(RefusedEvent) as refused:
        read_event(tampered.encode(), TEST_RING)
    assert refused.value.refusal == "bad_signature"


def test_a_retired_key_no_longer_verifies_and_two_keys_are_valid_during_a_rotation() -> None:
    new = SigningKey.generate("accounts", "2026b")
    rotating = KeyRing([new], parse_verify_keys(verify_text([RETIRED])))
    body = {"type": "account.cured", "producer": "accounts", "event_id": "e", "payload": CURED}
    rotating.check(sign_envelope(body, RETIRED))
    rotating.check(sign_envelope(body, new))
    with pytest.raises(Exception, match="unknown or retired"):
        KeyRing([new]).check(sign_envelope(body, RETIRED))


def test_canonical_bytes_ignore_key_order_and_the_signature() -> None:
    a = {"b": 1, "a": {"y": "é", "x": None}, "signature": "s"}
    b = {"a": {"x": None, "y": "é"}, "b": 1}
    assert canonical_bytes(a) == canonical_bytes(b) == '{"a":{"x":null,"y":"é"},"b":1}'.encode()


def test_key_text_round_trips_and_is_never_shown() -> None:
    key = SigningKey.generate("payment-gateway")
    (again,) = parse_signing_keys(f"# a comment\n{ring_text([key])}")
    assert again.private.private_bytes_raw() == key.private.private_bytes_raw()
    assert key.text().split(":")[2] not in repr(key) and "private" not in repr(TEST_RING)
    with pytest.raises(KeyTextError):
        parse_signing_keys("payment-gateway:k1:c2hvcnQ=")
