"""The desk's commands as contract events: which producer sends each, and its business id.

Every command is the contract's payload model (shared/events/payloads.py), so the API's
request bodies and the bus validate the same fields; :func:`command_envelope` wraps it
with ``new_envelope`` under the producer the contract names for it (the collectors' desk
for call outcomes, the operators' desk for pauses and waivers, the customer app for
offers and plans, the checkout for purchases).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from shared.events import payloads as p
from shared.events.envelope import new_envelope
from shared.events.owners import OWNERS

# The commands the desk sends, each under its type's owner (shared/events/owners.py).
PRODUCERS: dict[str, str] = {
    event_type: OWNERS[event_type]
    for event_type in (
        "collection.outcome.recorded",
        "delinquency.pause.requested",
        "delinquency.resume.requested",
        "waiver.requested",
        "waiver.decision.recorded",
        "plan.offers.requested",
        "plan.offer.accepted",
        "plan.adjustment.requested",
        "purchase.requested",
    )
}

# The field that names each command's business thing (docs/events.md, the rejections table).
BUSINESS_ID: dict[str, str] = {
    "collection.outcome.recorded": "task_id",
    "delinquency.pause.requested": "request_id",
    "delinquency.resume.requested": "request_id",
    "waiver.requested": "request_id",
    "waiver.decision.recorded": "decision_id",
    "plan.offers.requested": "request_id",
    "plan.offer.accepted": "offer_id",
    "plan.adjustment.requested": "request_id",
    "purchase.requested": "purchase_id",
}

# The answers the desk waits for: the first of them caused by a command is its outcome.
REPLIES: tuple[str, ...] = (
    "purchase.approved",
    "purchase.declined",
    "plan.offered",
    "plan.ineligible",
    "plan.activated",
    "plan.adjusted",
    "plan.adjustment.rejected",
    "collection.outcome.rejected",
    "delinquency.paused",
    "delinquency.pause.rejected",
    "delinquency.resumed",
    "delinquency.resume.rejected",
    "waiver.applied",
    "waiver.pending",
    "waiver.rejected",
    "waiver.approved",
    "waiver.declined",
    "waiver.decision.rejected",
)


def aggregate_of(event_type: str, payload: p.Payload) -> str:
    """The account (or plan, or waiver) a command is about."""
    for field in ("account_id", "plan_id", "waiver_id"):
        value = getattr(payload, field, None)
        if isinstance(value, str):
            return value
    raise ValueError(f"{event_type} names no aggregate")


def command_envelope(event_type: str, payload: p.Payload, occurred_at: datetime) -> dict[str, Any]:
    return new_envelope(
        event_type,
        payload,
        aggregate_id=aggregate_of(event_type, payload),
        producer=PRODUCERS[event_type],
        occurred_at=occurred_at,
    )


def business_id(event_type: str, payload: p.Payload) -> str:
    return str(getattr(payload, BUSINESS_ID[event_type]))
