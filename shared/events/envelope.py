"""The envelope of EVENTS.md and the one place a raw message becomes a typed event.

``read_event`` is what every consumer calls on a body: it either returns an
(envelope, payload) pair or raises ``UnreadableEvent`` with a reason fit for the
dead letters (``InvalidPayload`` when only the payload failed: the envelope was read,
so a command can still be answered, or ``RefusedEvent`` when a key ring was given and
the message is not believed: unsigned, forged or badly signed, shared/events/signing.py).
"""

from __future__ import annotations

import json
import uuid
from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from shared.events.payloads import PAYLOADS, Payload
from shared.events.rejections import field_errors
from shared.events.signing import KeyRing, SignatureRefused
from shared.events.types import ID_MAX, Timestamp


class UnreadableEvent(ValueError):
    """A message that cannot be applied: not JSON, unknown type, invalid payload."""

    def __init__(self, reason: str, event_id: str | None = None, event_type: str | None = None):
        super().__init__(reason)
        self.reason = reason
        self.event_id = event_id
        self.event_type = event_type


class InvalidPayload(UnreadableEvent):
    """The envelope was read; the payload failed validation (``errors``: loc and msg)."""

    def __init__(self, reason: str, envelope: "Envelope", errors: list[dict[str, str]]):
        super().__init__(reason, envelope.event_id, envelope.type)
        self.envelope = envelope
        self.errors = errors


class RefusedEvent(UnreadableEvent):
    """A message not believed (``refusal``: unsigned, forged or bad_signature): never applied,
    never answered, only dead-lettered."""

    def __init__(self, refusal: SignatureRefused, event_id: str | None, event_type: str | None):
        super().__init__(str(refusal), event_id, event_type)
        self.refusal = refusal.reason


class Envelope(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)

    event_id: str
    type: str
    version: int = 1
    occurred_at: Timestamp
    producer: str = Field(min_length=1)
    # The ids a service keeps (in its outbox, as its replies' correlation) fit its columns.
    correlation_id: str | None = Field(None, max_length=ID_MAX)
    causation_id: str | None = Field(None, max_length=ID_MAX)
    aggregate_id: str = Field(min_length=1, max_length=ID_MAX)
    sequence: int | None = None
    payload: dict[str, Any]
    # Who vouches for it: the producer's key id and its signature (shared/events/signing.py).
    key_id: str | None = Field(None, max_length=32)
    signature: str | None = Field(None, max_length=128)

    @field_validator("event_id")
    @classmethod
    def _uuid(cls, value: str) -> str:
        return str(uuid.UUID(value))

    @field_validator("type")
    @classmethod
    def _known_type(cls, value: str) -> str:
        if value not in PAYLOADS:
            raise ValueError(f"unknown event type {value!r}")
        return value


def _first_error(exc: ValidationError) -> str:
    parts = []
    for err in exc.errors()[:3]:
        where = ".".join(str(p) for p in err["loc"]) or "body"
        parts.append(f"{where}: {err['msg']}")
    return "; ".join(parts)


def read_event(body: bytes | str | dict[str, Any], trust: KeyRing | None = None) -> tuple[Envelope, Payload]:
    """Parse and validate one wire message (body as received from the broker).

    With ``trust`` (every worker passes its ring), a message is believed before it is
    read any further: signed, by the owner of its type, with a key of the ring."""
    data: Any = body
    if isinstance(body, (bytes, str)):
        try:
            data = json.loads(body)
        except (ValueError, UnicodeDecodeError) as exc:
            raise UnreadableEvent(f"not_json: {exc}") from exc
    if not isinstance(data, dict):
        raise UnreadableEvent("not_an_envelope: the body must be a JSON object")
    event_id = data.get("event_id") if isinstance(data.get("event_id"), str) else None
    event_type = data.get("type") if isinstance(data.get("type"), str) else None
    if event_type is not None and event_type not in PAYLOADS:
        raise UnreadableEvent(f"unknown_type: {event_type!r}", event_id, event_type)
    if trust is not None:
        try:
            trust.check(data)
        except SignatureRefused as exc:
            raise RefusedEvent(exc, event_id, event_type) from None
    try:
        envelope = Envelope.model_validate(data)
    except ValidationError as exc:
        raise UnreadableEvent(f"invalid_envelope: {_first_error(exc)}", event_id, event_type) from exc
    try:
        payload = PAYLOADS[envelope.type].model_validate(envelope.payload)
    except ValidationError as exc:
        raise InvalidPayload(f"invalid_payload: {_first_error(exc)}", envelope, field_errors(exc)) from exc
    return envelope, payload


def new_envelope(
    event_type: str,
    payload: Payload | dict[str, Any],
    *,
    aggregate_id: str,
    producer: str,
    occurred_at: datetime,
    correlation_id: str | None = None,
    causation_id: str | None = None,
    sequence: int | None = None,
    event_id: str | None = None,
) -> dict[str, Any]:
    """A wire-ready envelope dict (money already turned into decimal strings)."""
    if event_type not in PAYLOADS:
        raise ValueError(f"unknown event type {event_type!r}")
    model = payload if isinstance(payload, Payload) else PAYLOADS[event_type].model_validate(payload)
    event_id = event_id or str(uuid.uuid4())
    return {
        "event_id": event_id,
        "type": event_type,
        "version": 1,
        "occurred_at": occurred_at.isoformat(),
        "producer": producer,
        "correlation_id": correlation_id or event_id,
        "causation_id": causation_id,
        "aggregate_id": aggregate_id,
        "sequence": sequence,
        "payload": model.model_dump(mode="json"),
    }
