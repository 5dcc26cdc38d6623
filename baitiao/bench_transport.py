"""``baitiao bench transport``: the bus's Redis lists beside a Redis Streams consumer group.

The transport alone, on the same Redis in the same run, with the same signed envelopes
(accounts' ``account.delinquency.updated``, as the relay sends them) published in
pipelines of ``batch`` and taken and acked in batches of ``batch``:

- **lists**, as the bus does it: :func:`shared.bus.relay.publish_envelopes` (kombu's
  topic routing, one pipeline a batch) onto a queue; :class:`BulkTake` (one Lua call
  that pops and records each message in kombu's ``unacked`` hash and index, so a dead
  consumer's messages come back) and :func:`ack_many`;
- **streams**: ``XADD`` in one pipeline a batch onto one stream; a consumer group read
  with ``XREADGROUP COUNT batch`` (the pending entries list keeps what a consumer holds,
  ``XAUTOCLAIM`` would hand a dead one's to another) and one ``XACK`` a batch.

Each is timed for a backlog (publish all, then take all) and for a paced stream (one
message at a time at ``rate`` per second, a blocking consumer: ``BLMOVE`` through
:meth:`BulkTake.wait`, ``XREADGROUP BLOCK``), where each message's latency is its
arrival at the consumer less its publish. Every figure is per message and the streams
are given as a ratio to the lists of the same run.
"""

from __future__ import annotations

import json
import statistics
import threading
import time
import uuid
from collections.abc import Callable
from typing import Any

from kombu import Exchange, Producer, Queue

from shared.broker import broker_client, broker_connection
from shared.bus.kombu_redis import BulkTake, ack_many
from shared.bus.relay import publish_envelopes
from shared.events.signing import SigningKey, sign_envelope

ROUTING_KEY = "account.delinquency.updated"


def envelopes(n: int, run: str) -> list[str]:
    """``n`` signed envelopes as JSON text, each of its own account."""
    key = SigningKey.generate("accounts")
    texts = []
    for i in range(n):
        body = {
            "event_id": str(uuid.uuid4()),
            "type": ROUTING_KEY,
            "version": 1,
            "occurred_at": "2026-03-20T00:30:00+08:00",
            "producer": "accounts",
            "correlation_id": None,
            "causation_id": None,
            "aggregate_id": f"acc-{run}-{i}",
            "sequence": 1,
            "payload": {
                "account_id": f"acc-{run}-{i}",
                "max_dpd": 12,
                "total_overdue": "1234.56",
                "overdue_bills": 1,
                "as_of": "2026-03-20",
            },
        }
        texts.append(json.dumps(sign_envelope(body, key), separators=(",", ":")))
    return texts


class ListsTransport:
    """The bus's own lists: kombu's topic routing in, the bulk take and batched ack out."""

    def __init__(self, url: str, run: str):
        self.exchange = Exchange(f"bench.transport.{run}", type="topic", durable=False)
        self.queue = Queue(f"bench.transport.{run}", exchange=self.exchange, routing_key=ROUTING_KEY, durable=False)
        self.producer_conn = broker_connection(url)
        self.consumer_conn = broker_connection(url, transport_options={"visibility_timeout": 3600})
        self.queue(self.producer_conn.default_channel).declare()
        self.producer = Producer(self.producer_conn.default_channel, exchange=self.exchange)
        self.take = BulkTake(self.consumer_conn.default_channel, self.queue.name)

    def publish(self, texts: list[str]) -> None:
        publish_envelopes(self.producer, ((ROUTING_KEY, text) for text in texts))

    def consume(self, batch: int, wait_s: float) -> list[dict[str, Any]]:
        messages = self.take.wait(batch, wait_s) if wait_s > 0 else self.take.take(batch)
        bodies = [json.loads(message.body) for message in messages]
        ack_many(messages)
        return bodies

    def close(self) -> None:
        self.queue(self.producer_conn.default_channel).delete()
        self.consumer_conn.release()
        self.producer_conn.release()


class StreamsTransport:
    """One stream and one consumer group: XADD in, XREADGROUP and XACK out."""

    def __init__(self, url: str, run: str):
        self.stream = f"bench.transport.{run}.stream"
        self.group = "bench"
        self.producer = broker_client(url)
        self.consumer = broker_client(url)
        self.producer.xgroup_create(self.stream, self.group, id="0", mkstream=True)

    def publish(self, texts: list[str]) -> None:
        with self.producer.pipeline(transaction=False) as pipe:
            for text in texts:
                pipe.xadd(self.stream, {"body": text})
            pipe.execute()

    def consume(self, batch: int, wait_s: float) -> list[dict[str, Any]]:
        block = max(1, int(wait_s * 1000)) if wait_s > 0 else None
        answer = self.consumer.xreadgroup(self.group, "c1", {self.stream: ">"}, count=batch, block=block)
        if not answer:
            return []
        entries = answer[0][1]
        bodies = [json.loads(fields[b"body"]) for _, fields in entries]
        self.consumer.xack(self.stream, self.group, *[entry_id for entry_id, _ in entries])
        return bodies

    def close(self) -> None:
        self.producer.delete(self.stream)
        self.producer.close()
        self.consumer.close()


Transport = ListsTransport | StreamsTransport


def backlog(transport: Transport, texts: list[str], batch: int) -> dict[str, float]:
    """Publish every text in pipelines of ``batch``, then take and ack them all."""
    started = time.perf_counter()
    for start in range(0, len(texts), batch):
        transport.publish(texts[start : start + batch])
    published = time.perf_counter()
    taken = 0
    while taken < len(texts):
        got = transport.consume(batch, 0)
        if not got:
            raise RuntimeError(f"the backlog ran dry after {taken} of {len(texts)} messages")
        taken += len(got)
    done = time.perf_counter()
    return {
        "publish_us": (published - started) / len(texts) * 1e6,
        "take_ack_us": (done - published) / len(texts) * 1e6,
    }


def paced(transport: Transport, texts: list[str], rate: float, batch: int) -> dict[str, float]:
    """One message at a time at ``rate``/s to a blocking consumer; latency publish → arrival."""
    sent: dict[str, float] = {}
    arrived: dict[str, float] = {}

    def consume() -> None:
        deadline = time.monotonic() + len(texts) / rate + 30
        while len(arrived) < len(texts) and time.monotonic() < deadline:
            for body in transport.consume(batch, 0.2):
                arrived[body["event_id"]] = time.perf_counter()

    consumer = threading.Thread(target=consume, name="bench-transport-consumer")
    consumer.start()
    ids = [json.loads(text)["event_id"] for text in texts]
    start = time.perf_counter()
    for i, (event_id, text) in enumerate(zip(ids, texts, strict=True)):
        due = start + i / rate
        pause = due - time.perf_counter()
        if pause > 0:
            time.sleep(pause)
        sent[event_id] = time.perf_counter()
        transport.publish([text])
    consumer.join()
    latencies = sorted((arrived[i] - sent[i]) * 1000 for i in ids if i in arrived)
    if len(latencies) < len(ids):
        raise RuntimeError(f"{len(ids) - len(latencies)} of {len(ids)} paced messages never arrived")
    return {
        "p50_ms": statistics.median(latencies),
        "p99_ms": latencies[int(0.99 * (len(latencies) - 1))],
        "sent_per_s": len(ids) / (max(sent.values()) - start),
    }


def run_transport_benchmark(url: str, n: int, batch: int, rate: float, paced_n: int) -> dict[str, Any]:
    """Both transports, lists first, on the same Redis; the streams' figures as ratios."""
    run = uuid.uuid4().hex[:8]
    texts = envelopes(n, run)
    paced_texts = envelopes(paced_n, run + "p")
    results: dict[str, Any] = {
        "n": n,
        "batch": batch,
        "envelope_bytes": round(statistics.mean(len(t) for t in texts)),
        "paced_rate_per_s": rate,
        "paced_n": paced_n,
    }
    makers: dict[str, Callable[[str, str], Transport]] = {"lists": ListsTransport, "streams": StreamsTransport}
    for name, make in makers.items():
        transport = make(url, f"{run}.{name}")
        try:
            results[name] = {**backlog(transport, texts, batch), **paced(transport, paced_texts, rate, batch)}
        finally:
            transport.close()
    lists, streams = results["lists"], results["streams"]
    results["streams_vs_lists"] = {
        key: round(streams[key] / lists[key], 3) for key in ("publish_us", "take_ack_us", "p50_ms", "p99_ms")
    }
    for name in makers:
        results[name] = {key: round(value, 2) for key, value in results[name].items()}
    return results
