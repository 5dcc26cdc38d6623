"""``baitiao bench relay``: the outbox relay beside plain kombu publishing, same rows, same run.

N outbox rows (half ``repayment.applied``, half ``account.delinquency.updated``: each
goes to two queues, as in the real topology) are published in rounds of the relay's
batch size, alternately by:

1. the baseline: what a relay written straight on kombu does, each row's envelope
   parsed and handed to ``Producer.publish`` (JSON serializer) in a pipelined
   ``Producer.batch``, kombu routing every message;
2. ours: ``OutboxRelay.relay_once`` (the binding table and each event type's route
   read once per batch, the stored payload spliced into the envelope's JSON and handed
   to ``Producer.publish`` as it is, in one ``Producer.batch``).

3. ours unsigned: the same relay with the stored payload spliced into the envelope's
   JSON and no signature, as it published before envelopes were signed (a benchmark's
   comparison only: every real relay signs).

All do the same database read and stamp the rows ``published_at`` in the same
transaction, so they differ only in how they publish. Figures are microseconds per
event and their ratio; absolute numbers on a shared machine are noise.
"""

from __future__ import annotations

import json
import time
import uuid
from datetime import datetime, timezone
from typing import Any

from kombu import Producer
from sqlalchemy import MetaData, create_engine, select, update

from shared.broker import broker_client, broker_connection
from shared.bus.outbox import Outbox, PendingEvent
from shared.bus.relay import OutboxRelay, envelope_from_row, publish_envelopes
from shared.bus.tables import add_bus_tables
from shared.bus.topology import EVENTS_EXCHANGE, declare_topology, events_queue_name
from shared.db import transaction
from shared.events.signing import SigningKey
from shared.migrations import ensure_database

BATCH = 500


def _events(n: int) -> list[PendingEvent]:
    at = datetime(2026, 3, 14, 16, 30, tzinfo=timezone.utc)
    events = []
    for i in range(n):
        account = f"bench-{i % 5000}"
        if i % 2:
            payload: dict[str, Any] = {
                "account_id": account,
                "business_date": "2026-03-14",
                "max_dpd": 4,
                "overdue_principal": "1000.00",
                "penalty_interest": "2.00",
                "late_fees": "10.00",
                "total_overdue": "1012.00",
                "bills": [
                    {
                        "bill_id": f"b-{i}",
                        "due_date": "2026-03-10",
                        "dpd": 4,
                        "unpaid_principal": "1000.00",
                        "penalty_interest": "2.00",
                        "late_fee": "10.00",
                    }
                ],
            }
            events.append(PendingEvent("account.delinquency.updated", account, payload, at))
        else:
            payload = {
                "payment_id": str(uuid.uuid4()),
                "account_id": account,
                "amount": "120.00",
                "applied": [{"bill_id": f"b-{i}", "penalty": "0.00", "late_fee": "0.00", "principal": "120.00"}],
                "paid_at": at.isoformat(),
            }
            events.append(PendingEvent("repayment.applied", account, payload, at))
    return events


def _baseline_once(engine: Any, outbox: Any, producer: Producer) -> int:
    """Plain kombu: every envelope parsed and serialized by kombu, every message routed."""
    with transaction(engine) as session:
        rows = session.execute(
            select(outbox)
            .where(outbox.c.published_at.is_(None))
            .order_by(outbox.c.id)
            .limit(BATCH)
            .with_for_update(skip_locked=True)
        ).all()
        if not rows:
            return 0
        with producer.batch(max_size=len(rows) * 4):
            for row in rows:
                producer.publish(
                    envelope_from_row(row, "accounts"), routing_key=row.type, serializer="json", delivery_mode=2
                )
        session.execute(
            update(outbox).where(outbox.c.id.in_([r.id for r in rows])).values(published_at=datetime.now(timezone.utc))
        )
    return len(rows)


class _UnsignedRelay(OutboxRelay):
    """The relay as it was before signatures: the stored payload spliced in, nothing signed."""

    def publish(self, producer: Producer, rows: Any) -> None:
        def text(row: Any) -> str:
            head = json.dumps(_unsigned_head(row))
            return f'{head[:-1]}, "payload": {row.payload}}}'

        publish_envelopes(producer, ((row.type, text(row)) for row in rows))


def _unsigned_head(row: Any) -> dict[str, Any]:
    envelope = envelope_from_row(row, "accounts")
    del envelope["payload"]
    return envelope


def run_relay_benchmark(url: str, db_url: str, n: int, rounds: int = 3) -> dict[str, Any]:
    ensure_database(db_url)
    engine = create_engine(db_url)
    metadata = MetaData()
    table = add_bus_tables(metadata)["outbox"]
    metadata.drop_all(engine)
    metadata.create_all(engine)
    client = broker_client(url)
    queues = [events_queue_name(s) for s in ("collections", "restructuring")]
    timings: dict[str, list[float]] = {"baseline": [], "ours": [], "ours_unsigned": []}
    with broker_connection(url) as connection:
        declare_topology(connection)
        producer = Producer(connection.channel(), exchange=EVENTS_EXCHANGE)
        key = SigningKey.generate("accounts")
        relay = OutboxRelay(engine, table, broker_connection(url), "accounts", signer=key)
        unsigned = _UnsignedRelay(engine, table, broker_connection(url), "accounts", signer=key)
        for _ in range(rounds):
            for name, once in (
                ("baseline", lambda: _baseline_once(engine, table, producer)),
                ("ours", lambda: relay.relay_once(BATCH)),
                ("ours_unsigned", lambda: unsigned.relay_once(BATCH)),
            ):
                with transaction(engine) as session:
                    Outbox(table).emit_many(session, _events(n))
                client.delete(*queues)
                started, sent = time.perf_counter(), 0
                while (batch := once()) > 0:
                    sent += batch
                elapsed = time.perf_counter() - started
                delivered = sum(client.llen(q) for q in queues)
                if sent != n or delivered != 2 * n:
                    raise RuntimeError(f"{name}: {sent} published, {delivered} delivered, expected {n} and {2 * n}")
                timings[name].append(elapsed / n * 1e6)
        client.delete(*queues)
    engine.dispose()
    baseline, ours, bare = min(timings["baseline"]), min(timings["ours"]), min(timings["ours_unsigned"])
    return {
        "events": n,
        "rounds": rounds,
        "baseline_us_per_event": round(baseline, 1),
        "ours_us_per_event": round(ours, 1),
        "ratio": round(ours / baseline, 2),
        "unsigned_us_per_event": round(bare, 1),
        "signing_us_per_event": round(ours - bare, 1),
        "events_per_s": {k: round(1e6 / min(vs)) for k, vs in timings.items()},
        "all_us_per_event": {k: [round(v, 1) for v in vs] for k, vs in timings.items()},
    }
