"""``baitiao bench bus``: our batched consumer beside raw kombu, same Redis, same run.

1. Raw kombu: publish N messages to a queue, then time a plain consumer that
   acks each one (the transport's own cost: the baseline).
2. Ours: publish N ``account.delinquency.updated`` envelopes as an outside
   producer would, then time the real ``EventConsumer`` + ``EventApplier``
   (inbox, savepoint per event, a projection upsert with a sequence guard,
   commit per batch, acks after commit) on PostgreSQL.
3. Latency: a paced stream at about half the measured rate; time from publish
   to the committed effect, p50 and p99.

Ours runs twice: with every envelope signed (as accounts) and verified by the consumer,
as in production, and once more unsigned and unverified (a benchmark's comparison only:
no worker runs so), so the cost of the signatures is read off one run.
Figures are printed with their ratio to the baseline; absolute numbers on a
shared machine are noise.
"""

from __future__ import annotations

import json
import statistics
import threading
import time
import uuid
from collections.abc import Sequence
from typing import Any

from kombu import Consumer, Exchange, Producer, Queue
from sqlalchemy import Column, Integer, MetaData, String, Table, create_engine, select, text
from sqlalchemy.dialects.postgresql import insert as pg_insert

from shared.broker import broker_connection
from shared.bus.consumer import ConsumerConfig, EventConsumer
from shared.bus.handling import BatchHandler, BatchOutcome, BusTables, Delivery, EventApplier, HandlerContext
from shared.bus.tables import add_bus_tables
from shared.bus.topology import EVENTS_EXCHANGE
from shared.clock import SystemClock
from shared.events.signing import KeyRing, SigningKey, sign_envelope
from shared.migrations import ensure_database
from shared.rules import ProductRules

metadata = MetaData()
_bus = add_bus_tables(metadata)
BENCH_BUS = BusTables(_bus["outbox"], _bus["inbox"], _bus["dead_letters"])
projection = Table(
    "bench_projection",
    metadata,
    Column("account_id", String(64), primary_key=True),
    Column("max_dpd", Integer, nullable=False),
    Column("total_overdue_fen", Integer, nullable=False),
    Column("published_ns", String(24), nullable=False),
)


def _delinquency(i: int, run: str, key: SigningKey | None = None) -> dict[str, Any]:
    """One update as accounts sends it; signed by ``key`` when given."""
    account = f"bench-{run}-{i}"
    body = {
        "event_id": str(uuid.uuid4()),
        "type": "account.delinquency.updated",
        "version": 1,
        "occurred_at": SystemClock().now().isoformat(),
        "producer": "accounts",
        "correlation_id": None,
        "causation_id": None,
        "aggregate_id": account,
        "sequence": i,
        "payload": {
            "account_id": account,
            "business_date": "2026-03-14",
            "max_dpd": 4,
            "overdue_principal": "1000.00",
            "penalty_interest": "2.00",
            "late_fees": "10.00",
            "total_overdue": "1012.00",
            "published_ns": str(time.perf_counter_ns()),
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
        },
    }
    return sign_envelope(body, key) if key else body


def _raw_baseline(url: str, n: int) -> float:
    exchange = Exchange("bench.raw", type="direct", durable=False)
    queue = Queue(f"bench.raw.{uuid.uuid4().hex[:6]}", exchange=exchange, routing_key="raw", durable=False)
    with broker_connection(url) as conn:
        queue(conn.default_channel).declare()
        producer = Producer(conn.default_channel)
        for i in range(n):
            producer.publish(_delinquency(i, "raw"), exchange=exchange, routing_key="raw", serializer="json")
        received = 0

        def on_message(message: Any) -> None:
            nonlocal received
            json.loads(message.body)
            message.ack()
            received += 1

        started = time.perf_counter()
        with Consumer(conn, [queue], on_message=on_message, prefetch_count=400, accept=None):
            while received < n:
                conn.drain_events(timeout=10)
        elapsed = time.perf_counter() - started
        queue(conn.default_channel).delete()
    return n / elapsed


class _Probe:
    """Counts committed events and remembers when each was committed (for latency)."""

    def __init__(self) -> None:
        self.applied = 0
        self.latencies_ms: list[float] = []
        self.lock = threading.Lock()


class _CountingApplier(EventApplier):
    """The real applier, also counting what it committed and each event's latency."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.probe = _Probe()

    def apply_batch(self, deliveries: Sequence[Delivery]) -> BatchOutcome:
        outcome = super().apply_batch(deliveries)
        now = time.perf_counter_ns()
        with self.probe.lock:
            self.probe.applied += outcome.applied
            for d in deliveries:
                published = json.loads(d.body)["payload"].get("published_ns")
                if published:
                    self.probe.latencies_ms.append((now - int(published)) / 1e6)
        return outcome


def _project(items: list[tuple[HandlerContext, Any]]) -> None:
    """What a real consumer does with delinquency updates: one upsert for the run,
    never overwriting newer state (the sequence guard)."""
    latest: dict[str, dict[str, Any]] = {}
    for ctx, event in items:
        seq = ctx.envelope.sequence or 0
        if event.account_id in latest and latest[event.account_id]["max_dpd"] >= seq:
            continue
        latest[event.account_id] = {
            "account_id": event.account_id,
            "max_dpd": seq,
            "total_overdue_fen": int(event.total_overdue * 100),
            "published_ns": ctx.envelope.payload.get("published_ns", "0"),
        }
    stmt = pg_insert(projection).values(list(latest.values()))
    items[0][0].session.execute(
        stmt.on_conflict_do_update(
            index_elements=[projection.c.account_id],
            set_={c: stmt.excluded[c] for c in ("max_dpd", "total_overdue_fen", "published_ns")},
            where=projection.c.max_dpd < stmt.excluded.max_dpd,
        )
    )


def _ours(
    url: str, db_url: str, n: int, batch_size: int, paced: int, paced_rate: float | None, signed: bool = True
) -> dict[str, float]:
    key = SigningKey.generate("accounts") if signed else None
    ensure_database(db_url)
    engine = create_engine(db_url, pool_size=4)
    metadata.drop_all(engine)
    metadata.create_all(engine)
    applier = _CountingApplier(
        "bench",
        engine,
        BENCH_BUS,
        {"account.delinquency.updated": BatchHandler(_project)},
        ProductRules(),
        SystemClock(),
        trust=KeyRing([key]) if key else None,
    )
    queue = Queue(
        f"bench.events.{uuid.uuid4().hex[:6]}",
        exchange=EVENTS_EXCHANGE,
        routing_key="account.delinquency.updated",
        durable=False,
    )
    probe = applier.probe
    run = uuid.uuid4().hex[:6]
    with broker_connection(url) as conn:
        queue(conn.default_channel).declare()
        producer = Producer(conn.default_channel)
        for i in range(n):
            producer.publish(
                _delinquency(i, run, key),
                exchange=EVENTS_EXCHANGE,
                routing_key="account.delinquency.updated",
                serializer="json",
            )
        consumer = EventConsumer("bench", url, applier, ConsumerConfig(batch_size=batch_size), queue=queue)
        thread = threading.Thread(target=consumer.run, daemon=True)
        started = time.perf_counter()
        thread.start()
        while probe.applied < n:
            time.sleep(0.01)
        elapsed = time.perf_counter() - started
        throughput = n / elapsed
        probe.latencies_ms.clear()
        rate = paced_rate or throughput / 2
        for i in range(paced):
            producer.publish(
                _delinquency(n + i, run, key),
                exchange=EVENTS_EXCHANGE,
                routing_key="account.delinquency.updated",
                serializer="json",
            )
            time.sleep(1 / rate)
        while probe.applied < n + paced:
            time.sleep(0.01)
        consumer.stop()
        thread.join(10)
        queue(conn.default_channel).delete()
    with engine.connect() as c:
        rows = c.scalar(select(text("count(*)")).select_from(projection))
    engine.dispose()
    lat = sorted(probe.latencies_ms)
    return {
        "events_per_s": throughput,
        "rows": float(rows or 0),
        "paced_rate": rate,
        "p50_ms": statistics.median(lat) if lat else float("nan"),
        "p99_ms": lat[int(len(lat) * 0.99) - 1] if lat else float("nan"),
    }


def run_bus_benchmark(url: str, db_url: str, n: int, batch_size: int, paced: int) -> dict[str, Any]:
    raw = _raw_baseline(url, n)
    ours = _ours(url, db_url, n, batch_size, paced, None)
    unsigned = _ours(url, db_url, n, batch_size, paced, ours["paced_rate"], signed=False)
    return {
        "n": n,
        "batch_size": batch_size,
        "raw_kombu_per_s": round(raw, 1),
        "ours_per_s": round(ours["events_per_s"], 1),
        "ratio": round(ours["events_per_s"] / raw, 3),
        "rows_committed": int(ours["rows"]),
        "latency_paced_rate_per_s": round(ours["paced_rate"], 1),
        "latency_p50_ms": round(ours["p50_ms"], 1),
        "latency_p99_ms": round(ours["p99_ms"], 1),
        "unsigned_per_s": round(unsigned["events_per_s"], 1),
        "unsigned_ratio": round(unsigned["events_per_s"] / raw, 3),
        "signed_vs_unsigned": round(ours["events_per_s"] / unsigned["events_per_s"], 3),
        "unsigned_latency_p50_ms": round(unsigned["p50_ms"], 1),
        "unsigned_latency_p99_ms": round(unsigned["p99_ms"], 1),
    }
