"""The public wire contract (EVENTS.md): envelope, payload models, field types."""

from shared.events.envelope import Envelope, InvalidPayload, UnreadableEvent, new_envelope, read_event
from shared.events.payloads import PAYLOADS, Payload

__all__ = ["Envelope", "InvalidPayload", "UnreadableEvent", "new_envelope", "read_event", "PAYLOADS", "Payload"]
