"""``bench transport`` on real Redis: both transports carry every message and leave nothing behind."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
import redis

from baitiao.bench_transport import ListsTransport, StreamsTransport, backlog, envelopes, run_transport_benchmark
from tests.support.system import fresh_redis_db


@pytest.fixture()
def broker(quiet_redis_db: int) -> Iterator[str]:
    yield fresh_redis_db(quiet_redis_db)


def test_each_transport_delivers_every_envelope_once_and_acks_it(broker: str) -> None:
    texts = envelopes(1200, "t")
    for make in (ListsTransport, StreamsTransport):
        transport = make(broker, f"t.{make.__name__}")
        try:
            for start in range(0, len(texts), 500):
                transport.publish(texts[start : start + 500])
            seen: list[str] = []
            while len(seen) < len(texts):
                got = transport.consume(500, 0)
                assert got, f"{make.__name__} ran dry after {len(seen)}"
                seen += [body["event_id"] for body in got]
            assert sorted(seen) == sorted(json.loads(text)["event_id"] for text in texts)
            assert transport.consume(500, 0) == []
            if isinstance(transport, StreamsTransport):
                pending = redis.Redis.from_url(broker).xpending(transport.stream, transport.group)
                assert pending["pending"] == 0
            else:
                qos = transport.consumer_conn.default_channel.qos
                client = redis.Redis.from_url(broker)
                assert client.hlen(qos.unacked_key) == 0 and client.zcard(qos.unacked_index_key) == 0
        finally:
            transport.close()


def test_the_benchmark_runs_to_its_end_with_ratios_and_cleans_up(broker: str) -> None:
    result = run_transport_benchmark(broker, n=1000, batch=250, rate=500, paced_n=200)
    for name in ("lists", "streams"):
        figures = result[name]
        assert figures["publish_us"] > 0 and figures["take_ack_us"] > 0 and figures["p99_ms"] >= figures["p50_ms"] > 0
    assert set(result["streams_vs_lists"]) == {"publish_us", "take_ack_us", "p50_ms", "p99_ms"}
    assert not [key for key in redis.Redis.from_url(broker).scan_iter("bench.transport.*")]


def test_a_backlog_that_runs_dry_is_an_error_not_a_figure(broker: str) -> None:
    transport = StreamsTransport(broker, "dry")
    try:
        transport.publish = lambda texts: None  # type: ignore[method-assign]  # nothing arrives
        with pytest.raises(RuntimeError, match="ran dry"):
            backlog(transport, envelopes(10, "d"), 5)
    finally:
        transport.close()
