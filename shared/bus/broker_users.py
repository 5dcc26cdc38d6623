"""The broker's users: one Redis ACL user per component, and what each may touch.

The system's own processes (each service's workers, the beat, the desk, the operators'
command line) each log in as a user of their own, so one component's password is changed
or turned off alone; they may use every key and channel, and no command Redis counts as
dangerous (``FLUSHALL``, ``CONFIG``, ``ACL``, ``KEYS``, ``SHUTDOWN``, ...) but ``INFO``.

An outside producer may do no more than kombu needs to publish its own event types to
the topic exchange: read the exchange's binding table, and push onto the queues those
types are routed to (the services' queues that bind them, the catch-all ``unrouted``)
and onto taps, the queues named ``tap.*`` that an outside listener keeps a copy in. It
cannot read a queue, change a binding, or write into a queue it does not feed: a
service never sees a message from a producer that has no business speaking to it, even
before its signature is checked.

:func:`acl_text` is ``deploy/redis/users.acl`` (``baitiao broker users`` prints it; a
test keeps the two equal): each line ``user NAME RULES``, without ``on``/``off`` and
password, which ``deploy/redis/start.sh`` adds from each user's compose secret.
"""

from __future__ import annotations

from shared.bus.topology import EXCHANGE_NAME, UNROUTED_QUEUE, events_queue_name, services_bound_to
from shared.events.owners import OUTSIDE_PRODUCERS, types_owned_by

# The system's own components, each a user (the compose services that log in as it).
SYSTEM_USERS: tuple[str, ...] = ("accounts", "collections", "restructuring", "beat", "desk", "cli")
SYSTEM_RULES = "~* &* +@all -@dangerous +info"
BINDING_TABLE = f"_kombu.binding.{EXCHANGE_NAME}"
TAPS = "tap.*"
# What a kombu publish sends: PING when its channel opens, the binding table's members, LPUSH
# (redis-py's CLIENT SETINFO on connecting is refused, and redis-py carries on).
PUBLISH_COMMANDS = "+ping +select +smembers +lpush"


def queues_fed_by(producer: str) -> tuple[str, ...]:
    """The queues a publish of ``producer``'s own event types pushes onto."""
    queues = {
        events_queue_name(service)
        for event_type in types_owned_by(producer)
        for service in services_bound_to(event_type)
    }
    return (*sorted(queues), UNROUTED_QUEUE)


def outside_producer_rules(producer: str) -> str:
    writes = " ".join(f"%W~{queue}" for queue in (*queues_fed_by(producer), TAPS))
    return f"resetchannels -@all {PUBLISH_COMMANDS} %R~{BINDING_TABLE} {writes}"


def acl_rules() -> dict[str, str]:
    """Every broker user and its rights, the system's first."""
    return {
        **{user: SYSTEM_RULES for user in SYSTEM_USERS},
        **{producer: outside_producer_rules(producer) for producer in OUTSIDE_PRODUCERS},
    }


def acl_text() -> str:
    lines = [
        "# The broker's users and their rights (shared/bus/broker_users.py; `baitiao broker users`",
        "# prints this file). deploy/redis/start.sh adds each user's password from its secret.",
    ]
    lines += [f"user {user} {rules}" for user, rules in acl_rules().items()]
    return "\n".join(lines) + "\n"
