"""The bus's shape (EVENTS.md, Transport): one topic exchange, one durable queue per service.

Every process declares the whole topology before it publishes anything: kombu's
Redis transport routes by the binding table kept in Redis and silently drops a
message that matches no binding, so a producer that starts first must create
the bindings itself.

One more queue, ``unrouted``, is bound to ``#``: a copy of whatever an outside
producer publishes lands there, so a message of a type the contract does not know is
seen (and dead-lettered, shared/bus/unrouted.py) instead of dropped. The services'
relays leave it out of their routing (they only publish contract types).
"""

from __future__ import annotations

import re
from functools import cache

from kombu.connection import Connection
from kombu.entity import Exchange, Queue, binding

EXCHANGE_NAME = "baitiao.events"
EVENTS_EXCHANGE = Exchange(EXCHANGE_NAME, type="topic", durable=True)

# What each service consumes (ARCHITECTURE.md, "reacts to").
SERVICE_BINDINGS: dict[str, tuple[str, ...]] = {
    "accounts": (
        "credit.line.granted",
        "purchase.requested",
        "repayment.received",
        "plan.activated",
        "plan.defaulted",
        "plan.completed",
        "collection.notice.sent",
        "delinquency.pause.requested",
        "delinquency.resume.requested",
        "waiver.requested",
        "waiver.decision.recorded",
        "dispute.opened",
        "dispute.resolved",
    ),
    "collections": (
        "credit.line.granted",
        "bill.issued",
        "bill.overdue",
        "bill.charged_off",
        "account.delinquency.updated",
        "account.cured",
        "repayment.applied",
        "risk.assessed",
        "plan.*",
        "plan.installment.*",
        "collection.outcome.recorded",
        "sms.delivery.reported",
        "delinquency.paused",
        "delinquency.resumed",
        "dispute.accepted",
        "dispute.closed",
    ),
    "restructuring": (
        "credit.line.granted",
        "bill.issued",
        "bill.overdue",
        "account.delinquency.updated",
        "account.cured",
        "repayment.applied",
        "plan.offers.requested",
        "plan.offer.accepted",
        "plan.adjustment.requested",
        "delinquency.paused",
        "delinquency.resumed",
    ),
}


UNROUTED_QUEUE = "unrouted"


def events_queue_name(service: str) -> str:
    return f"{service}.events"


def jobs_queue_name(service: str) -> str:
    return f"{service}.jobs"


def events_queue(service: str) -> Queue:
    """The durable events queue of a service, bound to every key it consumes."""
    return Queue(
        events_queue_name(service),
        exchange=EVENTS_EXCHANGE,
        bindings=[binding(EVENTS_EXCHANGE, routing_key=key) for key in SERVICE_BINDINGS[service]],
        durable=True,
    )


def unrouted_queue() -> Queue:
    """The catch-all: bound to every key, it keeps a copy of each outside producer's message."""
    return Queue(UNROUTED_QUEUE, exchange=EVENTS_EXCHANGE, routing_key="#", durable=True)


@cache
def _binding_pattern(key: str) -> re.Pattern[str]:
    """A service's topic binding as a regular expression: ``*`` is one word (the services
    bind no ``#``)."""
    if "#" in key:
        raise ValueError(f"a service binds {key!r}: the routing check knows only '*' wildcards")
    return re.compile(r"\.".join(r"[^.]+" if w == "*" else re.escape(w) for w in key.split(".")) + r"\Z")


def services_bound_to(routing_key: str) -> tuple[str, ...]:
    """The services whose queue binds ``routing_key`` (each gets a copy of such a message)."""
    return tuple(
        service
        for service, keys in SERVICE_BINDINGS.items()
        if any(_binding_pattern(key).match(routing_key) for key in keys)
    )


def reaches_a_service(routing_key: str) -> bool:
    """Whether a routing key matches a binding of some service's queue (which then judges
    the message itself)."""
    return bool(services_bound_to(routing_key))


def declare_topology(connection: Connection) -> None:
    """Declare the exchange, the three queues, the catch-all and all their bindings (idempotent)."""
    channel = connection.default_channel
    EVENTS_EXCHANGE(channel).declare()
    for service in SERVICE_BINDINGS:
        events_queue(service)(channel).declare()
    unrouted_queue()(channel).declare()
