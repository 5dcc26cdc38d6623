"""The bus's shape (EVENTS.md, Transport): one topic exchange, one durable queue per service.

Every process declares the whole topology before it publishes anything: kombu's
Redis transport routes by the binding table kept in Redis and silently drops a
message that matches no binding, so a producer that starts first must create
the bindings itself.
"""
from __future__ import annotations

from kombu import Connection, Exchange, Queue

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
    ),
}


def events_queue_name(service: str) -> str:
    return f"{service}.events"


def jobs_queue_name(service: str) -> str:
    return f"{service}.jobs"


def events_queue(service: str) -> Queue:
    """The durable events queue of a service, bound to every key it consumes."""
    from kombu import binding

    return Queue(
        events_queue_name(service),
        exchange=EVENTS_EXCHANGE,
        bindings=[binding(EVENTS_EXCHANGE, routing_key=key) for key in SERVICE_BINDINGS[service]],
        durable=True,
    )


def declare_topology(connection: Connection) -> None:
    """Declare the exchange, the three queues and all their bindings (idempotent)."""
    channel = connection.default_channel
    EVENTS_EXCHANGE(channel).declare()
    for service in SERVICE_BINDINGS:
        events_queue(service)(channel).declare()
