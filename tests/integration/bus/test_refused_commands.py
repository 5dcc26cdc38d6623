"""A command the contract refuses is answered by its service, in the batch's transaction (real PostgreSQL).

What must hold: the answering service writes the rejection to its outbox, the message
to its dead letters and its event id to its inbox, in the same commit as the batch's
other events; the valid commands around it are applied as usual; a redelivery is a
duplicate (one answer, one dead letter); the command's other consumers record nothing;
a command whose business id cannot be read is only dead-lettered.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import MetaData, select

from shared.bus.handling import BatchHandler, BusTables, Delivery, EventApplier
from shared.bus.tables import add_bus_tables
from shared.clock import SystemClock
from shared.rules import ProductRules
from tests.support.customers import credit_line, repayment
from tests.support.system import envelope, row_count, scratch_database

pytestmark = pytest.mark.integration
metadata = MetaData()
_bus = add_bus_tables(metadata)
TABLES = BusTables(_bus["outbox"], _bus["inbox"], _bus["dead_letters"])
PAID_AT = "2026-03-20T18:00:00+08:00"


@pytest.fixture()
def engine() -> Iterator[Any]:
    with scratch_database("bt_refused", metadata) as engine:
        yield engine


def _delivery(event_type: str, payload: dict[str, Any], aggregate_id: str = "acc-1") -> Delivery:
    return Delivery(body=json.dumps(envelope(event_type, payload, aggregate_id)).encode())


def _applier(engine: Any, service: str, seen: list[str]) -> EventApplier:
    handlers: dict[str, Any] = {
        "repayment.received": BatchHandler(lambda items: seen.extend(e.payment_id for _, e in items)),
        "credit.line.granted": BatchHandler(lambda items: seen.extend(e.account_id for _, e in items)),
    }
    return EventApplier(service, engine, TABLES, handlers, ProductRules(), SystemClock(), max_attempts=1)


def _rows(engine: Any, table: Any) -> list[Any]:
    with engine.connect() as conn:
        return list(conn.execute(select(table).order_by(table.c[list(table.c.keys())[0]])))


def test_refused_repayments_are_answered_between_applied_ones(engine: Any) -> None:
    seen: list[str] = []
    batch = [
        _delivery("repayment.received", repayment("acc-1", "10.00", PAID_AT, payment_id="ok-1")),
        _delivery("repayment.received", {**repayment("acc-1", "0", PAID_AT, payment_id="float"), "amount": 100.5}),
        _delivery("repayment.received", repayment("acc-1", "abc", PAID_AT, payment_id="abc")),
        _delivery("repayment.received", repayment("acc-1", "20.00", PAID_AT, payment_id="ok-2")),
    ]
    outcome = _applier(engine, "accounts", seen).apply_batch(batch)
    assert (outcome.applied, outcome.rejected, outcome.dead_lettered, len(outcome.ack)) == (2, 2, 2, 4)
    assert seen == ["ok-1", "ok-2"]

    replies = _rows(engine, TABLES.outbox)
    assert [(r.type, json.loads(r.payload)["payment_id"]) for r in replies] == [
        ("repayment.rejected", "float"),
        ("repayment.rejected", "abc"),
    ]
    first = json.loads(replies[0].payload)
    assert first == {
        "payment_id": "float",
        "account_id": "acc-1",
        "amount": None,
        "reason": "invalid_payload",
        "errors": [{"loc": "amount", "msg": first["errors"][0]["msg"]}],
    }
    sent = [json.loads(d.body) for d in batch]
    assert [r.causation_id for r in replies] == [sent[1]["event_id"], sent[2]["event_id"]]
    assert all(r.aggregate_id == "acc-1" for r in replies)

    letters = _rows(engine, TABLES.dead_letters)
    assert [(d.event_id, d.queue) for d in letters] == [
        (sent[1]["event_id"], "accounts.events"),
        (sent[2]["event_id"], "accounts.events"),
    ]
    assert all(d.reason.startswith("invalid_payload: amount") for d in letters)
    assert row_count(engine, TABLES.inbox.name) == 4

    again = _applier(engine, "accounts", seen).apply_batch(batch)  # redelivered after a lost ack
    assert (again.duplicates, again.rejected, len(again.ack)) == (4, 0, 4)
    assert (row_count(engine, TABLES.outbox.name), row_count(engine, TABLES.dead_letters.name)) == (2, 2)


def test_a_refused_grant_is_answered_once_and_never_echoes_personal_data(engine: Any) -> None:
    grant = {**credit_line("acc-9"), "identity_hash": "sh0rt", "phone": "1"}
    delivery = _delivery("credit.line.granted", grant, "acc-9")
    for service in ("collections", "restructuring"):
        outcome = _applier(engine, service, []).apply_batch([delivery])
        assert (outcome.ignored, outcome.dead_lettered, len(outcome.ack)) == (1, 0, 1)
    assert (
        row_count(engine, TABLES.outbox.name),
        row_count(engine, TABLES.dead_letters.name),
        row_count(engine, TABLES.inbox.name),
    ) == (
        0,
        0,
        0,
    ), "a consumer that does not answer the command records nothing"

    outcome = _applier(engine, "accounts", []).apply_batch([delivery])
    assert outcome.rejected == 1
    (reply,) = _rows(engine, TABLES.outbox)
    payload = json.loads(reply.payload)
    assert reply.type == "credit.line.rejected" and payload["account_id"] == "acc-9"
    assert [e["loc"] for e in payload["errors"]] == ["identity_hash", "phone"]
    assert "sh0rt" not in reply.payload and "张三" not in reply.payload


def test_a_command_without_a_readable_business_id_is_only_dead_lettered(engine: Any) -> None:
    nameless = {**repayment("acc-1", "abc", PAID_AT), "payment_id": 42}
    outcome = _applier(engine, "accounts", []).apply_batch([_delivery("repayment.received", nameless)])
    assert (outcome.rejected, outcome.dead_lettered) == (0, 1)
    assert row_count(engine, TABLES.outbox.name) == 0 and row_count(engine, TABLES.inbox.name) == 0


def test_a_senders_over_long_event_id_and_type_still_fit_the_dead_letters(engine: Any) -> None:
    body = {
        **envelope("repayment.received", repayment("acc-1", "1.00", PAID_AT), "acc-1"),
        "event_id": "e" * 200,
        "type": "t" * 200,
    }
    outcome = _applier(engine, "accounts", []).apply_batch([Delivery(body=json.dumps(body).encode())])
    assert outcome.dead_lettered == 1
    (letter,) = _rows(engine, TABLES.dead_letters)
    assert (len(letter.event_id), len(letter.type)) == (64, 64) and "e" * 200 in letter.body
