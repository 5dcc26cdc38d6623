"""``baitiao bench checkout``: purchase decisions at steady rates and in a burst, beside a
raw kombu echo on the same Redis in the same run.

The system runs as it does in production: the three real workers as processes, on
PostgreSQL databases of the bench's own and the Redis of the settings. The load comes
from outside, as a checkout's would:

- ``generators`` processes publish ``purchase.requested`` on a fixed schedule (open loop:
  a late answer never slows the next request down), each process a share of the rate;
  every ``repayment_every``-th message is a ``repayment.received`` instead (the daytime
  repayments, which collections and restructuring then hear about as
  ``repayment.applied``), untimed;
- one listener process, its queue bound to ``purchase.approved`` and
  ``purchase.declined``, stamps each answer as it arrives.

A request's latency is the answer's arrival less the moment the schedule said to send it,
so a generator that falls behind shows up in the figures instead of hiding the delay
(the generators' own lag is reported beside, to show they are not the limit).

The baseline is the transport alone: an echo process that consumes each request from a
queue of its own, publishes a reply and acks (what a consumer that did no work would
cost), driven by the same generators and listener at the same rates.

Figures: p50, p99 and p99.9 of each steady rate for both, the ratio of the p99s, and the
sustained decisions per second of an open-loop burst (every request sent at once).
"""

from __future__ import annotations

import json
import multiprocessing
import statistics
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

from kombu import Consumer, Exchange, Producer, Queue
from kombu.entity import binding
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from shared.broker import broker_client, broker_connection
from shared.bus.kombu_redis import bindings_read_once, message_body
from shared.bus.topology import EVENTS_EXCHANGE, declare_topology
from shared.clock import default_clock
from shared.events.envelope import new_envelope
from shared.events.owners import CHECKOUT, CREDIT_APPROVAL, PAYMENT_GATEWAY
from shared.events.signing import KeyRing, sign_envelope


def outside_ring(data_dir: Path) -> KeyRing:
    """The outside systems' keys, the ones the bench's workers verify with: the configured
    ring, or the one generated in the run's data dir that they share."""
    from shared.key_ring import key_ring
    from shared.settings import Settings

    return key_ring(Settings(data_dir=data_dir))


ECHO_EXCHANGE = Exchange("bench.echo", type="direct", durable=False)
ANSWERS = ("purchase.approved", "purchase.declined")
OPENED = "credit.line.opened"
SERVICES = ("accounts", "collections", "restructuring")


@dataclass(frozen=True)
class Phase:
    """One stretch of load: ``rate`` requests a second for ``seconds``, or (rate 0) a burst
    of ``count`` requests sent as fast as the generators can."""

    name: str
    rate: int
    seconds: float
    count: int

    @property
    def requests(self) -> int:
        return self.count if self.rate == 0 else int(self.rate * self.seconds)


@dataclass
class _Start:
    """When a phase's schedule begins: set by the parent, read by the generators once
    every one of them has built its messages."""

    barrier: Any
    at: Any


@dataclass
class Target:
    """Where requests go and where their answers come back."""

    name: str  # "ours" (the bus's exchange) or "echo" (the echo's own)
    listen: Queue


# -- the processes ------------------------------------------------------------------------


def _purchase(account: str, n: int, run: str, ring: KeyRing) -> dict[str, Any]:
    now = default_clock.now()
    payload = {
        "purchase_id": f"p-{run}-{n}",
        "account_id": account,
        "amount": "1.00",
        "merchant": "bench",
        "requested_at": now.isoformat(),
    }
    body = new_envelope("purchase.requested", payload, aggregate_id=account, producer=CHECKOUT, occurred_at=now)
    return sign_envelope(body, ring.signer(CHECKOUT))


def _repayment(account: str, n: int, run: str, ring: KeyRing) -> dict[str, Any]:
    now = default_clock.now()
    payload = {
        "payment_id": f"r-{run}-{n}",
        "account_id": account,
        "amount": "1.00",
        "currency": "CNY",
        "paid_at": now.isoformat(),
        "channel": "app",
    }
    body = new_envelope("repayment.received", payload, aggregate_id=account, producer=PAYMENT_GATEWAY, occurred_at=now)
    return sign_envelope(body, ring.signer(PAYMENT_GATEWAY))


def _messages(
    count: int, accounts: int, run: str, repayment_every: int, ring: KeyRing
) -> list[tuple[dict[str, Any], bool]]:
    """Every message a generator will send, built before the clock starts (so building an
    envelope never delays a send): (body, timed)."""
    messages = []
    for n in range(count):
        account = f"bench-{(n * 7919) % accounts}"
        if repayment_every and n % repayment_every == repayment_every - 1:
            messages.append((_repayment(account, n, run, ring), False))
        else:
            messages.append((_purchase(account, n, run, ring), True))
    return messages


def generate(
    url: str,
    target: str,
    rate: float,
    count: int,
    start: Any,
    accounts: int,
    run: str,
    repayment_every: int,
    results: Any,
    data_dir: str,
) -> None:
    """Publish ``count`` requests at ``rate`` a second from the shared start (all at once when
    the rate is 0); report (event id, scheduled monotonic ns, wall-clock ns when sent) of
    each timed request, and the lag behind the schedule."""
    interval_ns = int(1e9 / rate) if rate else 0
    messages = _messages(count, accounts, run, repayment_every, outside_ring(Path(data_dir)))
    sent: list[tuple[str, int, int]] = []
    lags: list[float] = []
    with broker_connection(url) as conn:
        producer = Producer(conn.default_channel)
        exchange, key = (ECHO_EXCHANGE, "request") if target == "echo" else (EVENTS_EXCHANGE, None)
        start.barrier.wait()
        while not (start_ns := start.at.value):
            time.sleep(0.001)
        n = 0
        while n < len(messages):
            now = time.monotonic_ns()
            due_now = len(messages) if not interval_ns else min(len(messages), (now - start_ns) // interval_ns + 1)
            if due_now <= n:
                time.sleep(min((start_ns + n * interval_ns - now) / 1e9, 0.001))
                continue
            # What is due goes out in one pipeline: the generator keeps to its schedule at
            # rates where a publish per round trip would fall behind.
            with bindings_read_once(producer.channel), producer.batch(max_size=4 * (due_now - n)):
                for body, timed in messages[n:due_now]:
                    producer.publish(body, exchange=exchange, routing_key=key or body["type"], serializer="json")
            sent_ns, sent_wall_ns = time.monotonic_ns(), time.time_ns()
            for i in range(n, due_now):
                due = start_ns + i * interval_ns
                lags.append((sent_ns - due) / 1e6)
                if messages[i][1]:
                    sent.append((messages[i][0]["event_id"], due, sent_wall_ns))
            n = due_now
    results.put(("sent", sent, lags))


def listen(url: str, queue: Queue, stop: Any, ready: Any, count: Any, results: Any) -> None:
    """Stamp the arrival of every answer (by its correlation id) until told to stop;
    ``count`` tells the parent how many have arrived so far.

    The listener is the measuring instrument, not part of the system: it pops its queue's
    list straight from Redis, hundreds of answers a round trip, so that it is never what
    limits a rate (a kombu consumer takes one message a round trip).
    """

    arrived: dict[str, tuple[int, int]] = {}
    with broker_connection(url) as conn:
        queue(conn.default_channel).declare()
    client = broker_client(url)
    ready.set()
    while not stop.is_set():
        first = client.brpop([queue.name], timeout=0.2)
        if first is None:
            continue
        documents = [first[1], *(client.rpop(queue.name, 1000) or [])]
        now = (time.monotonic_ns(), time.time_ns())
        for document in documents:
            arrived[json.loads(message_body(document))["correlation_id"]] = now
        count.value = len(arrived)
    results.put(("arrived", arrived))


def echo(url: str, requests: Queue, stop: Any, ready: Any) -> None:
    """The baseline: consume a request, publish its reply, ack (no work in between)."""
    with broker_connection(url) as conn:
        channel = conn.channel()
        requests(channel).declare()
        producer = Producer(conn.channel())

        def on_message(body: Any, message: Any) -> None:
            data = json.loads(body) if isinstance(body, (bytes, str)) else body
            reply = {"correlation_id": data["event_id"], "type": "purchase.approved"}
            producer.publish(reply, exchange=ECHO_EXCHANGE, routing_key="reply", serializer="json")
            message.ack()

        with Consumer(channel, [requests], callbacks=[on_message], prefetch_count=200, accept=["json"]):
            ready.set()
            while not stop.is_set():
                try:
                    conn.drain_events(timeout=0.2)
                except TimeoutError:
                    continue


# -- the run ------------------------------------------------------------------------------


@dataclass
class CheckoutBench:
    broker_url: str
    pg_url: str
    accounts: int = 2000
    generators: int = 2
    repayment_every: int = 10
    out_dir: Path = field(default_factory=lambda: Path(".baitiao/bench-checkout"))
    run: str = field(default_factory=lambda: uuid.uuid4().hex[:6])

    def __post_init__(self) -> None:
        self._ctx = multiprocessing.get_context("spawn")
        self._results = self._ctx.Queue()
        # The last phase's timed requests (id, scheduled monotonic ns, wall-clock ns sent) and
        # its answers' arrival (monotonic ns for the latency, the same clock in every process
        # of the machine; wall-clock ns, to compare with the databases' stamps).
        self.last_phase: tuple[list[tuple[str, int, int]], dict[str, tuple[int, int]]] = ([], {})

    def targets(self) -> dict[str, Target]:
        answers = Queue(
            f"bench.checkout.answers.{self.run}",
            exchange=EVENTS_EXCHANGE,
            bindings=[binding(EVENTS_EXCHANGE, routing_key=k) for k in ANSWERS],
            durable=False,
            auto_delete=False,
        )
        echoed = Queue(f"bench.echo.replies.{self.run}", exchange=ECHO_EXCHANGE, routing_key="reply", durable=False)
        return {
            "ours": Target("ours", answers),
            "echo": Target("echo", echoed),
        }

    def start_echo(self) -> tuple[Any, Any, Queue]:
        """The baseline's echo process, consuming its requests queue: (process, stop, queue)."""
        stop, ready = self._ctx.Event(), self._ctx.Event()
        requests = Queue(
            f"bench.echo.requests.{self.run}", exchange=ECHO_EXCHANGE, routing_key="request", durable=False
        )
        process = self._ctx.Process(target=echo, args=(self.broker_url, requests, stop, ready))
        process.start()
        if not ready.wait(60):
            raise RuntimeError("the echo process did not start consuming within 60 s")
        return process, stop, requests

    def run_phase(self, target: Target, phase: Phase) -> dict[str, Any]:
        """Drive one phase against one target; latencies of every answered request."""
        stop, ready, count = self._ctx.Event(), self._ctx.Event(), self._ctx.Value("l", 0)
        listener = self._ctx.Process(
            target=listen, args=(self.broker_url, target.listen, stop, ready, count, self._results)
        )
        listener.start()
        if not ready.wait(60):
            raise RuntimeError("the listener process did not start within 60 s")
        per_generator = phase.requests // self.generators
        rate = phase.rate / self.generators
        start = _Start(self._ctx.Barrier(self.generators + 1), self._ctx.Value("q", 0))
        gens = [
            self._ctx.Process(
                target=generate,
                args=(
                    self.broker_url,
                    target.name,
                    rate,
                    per_generator,
                    start,
                    self.accounts,
                    f"{self.run}-{phase.name}-{target.name}-{g}",
                    self.repayment_every if target.name == "ours" else 0,
                    self._results,
                    str((self.out_dir / "run-data").resolve()),
                ),
            )
            for g in range(self.generators)
        ]
        for g in gens:
            g.start()
        start.barrier.wait(timeout=600)  # every generator has built its messages
        start.at.value = start_ns = time.monotonic_ns() + 50_000_000
        sent: list[tuple[str, int, int]] = []
        lags: list[float] = []
        for _ in gens:
            _, got, lag = self._results.get(timeout=phase.seconds + 600)
            sent += got
            lags += lag
        for g in gens:
            g.join()
        arrived = self._wait_answers(len(sent), count, stop)
        listener.join(60)
        latencies = sorted((arrived[i][0] - due) / 1e6 for i, due, _ in sent if i in arrived)
        last = max(arrived[i][0] for i, _, _ in sent if i in arrived) if arrived else start_ns
        self.last_phase = (sent, arrived)
        return {
            "phase": phase.name,
            "target": target.name,
            "offered_per_s": phase.rate or None,
            "requests": len(sent),
            "answered": len(latencies),
            "sustained_per_s": round(len(latencies) / max((last - start_ns) / 1e9, 1e-9), 1),
            **_percentiles(latencies),
            "generator_lag_p99_ms": _quantile(sorted(lags), 0.99),
        }

    def _wait_answers(self, expected: int, count: Any, stop: Any) -> dict[str, tuple[int, int]]:
        """Let the answers come in: stop the listener once all have, or none has for 5 s."""
        seen, quiet_since = -1, time.monotonic()
        while count.value < expected and time.monotonic() - quiet_since < 5:
            if count.value != seen:
                seen, quiet_since = count.value, time.monotonic()
            time.sleep(0.05)
        stop.set()
        _, arrived = self._results.get(timeout=120)
        return dict(arrived)


def _quantile(values: Sequence[float], q: float) -> float | None:
    if not values:
        return None
    return round(values[min(len(values) - 1, int(q * len(values)))], 2)


def _percentiles(latencies: Sequence[float]) -> dict[str, float | None]:
    return {
        "p50_ms": round(statistics.median(latencies), 2) if latencies else None,
        "p99_ms": _quantile(latencies, 0.99),
        "p999_ms": _quantile(latencies, 0.999),
    }


# -- the system under load ------------------------------------------------------------------


def start_system(
    pg_url: str, broker_url: str, out_dir: Path, run: str, prefix: str = "bench_checkout"
) -> tuple[Any, Any]:
    """Migrated databases ``<prefix>_<run>_<service>`` for the three services (created when
    missing) and their real workers, as processes."""
    database_prefix = f"{prefix}_{run}"
    return start_workers(migrated_databases(pg_url, database_prefix), broker_url, out_dir, database_prefix)


def migrated_databases(pg_url: str, database_prefix: str) -> dict[str, str]:
    """The URLs of ``<database_prefix>_<service>`` on the server of ``pg_url``, each
    created when missing and migrated to its head."""
    from baitiao import registry
    from shared.migrations import ensure_database, upgrade

    base = make_url(pg_url)
    db_urls = {s: base.set(database=f"{database_prefix}_{s}").render_as_string(hide_password=False) for s in SERVICES}
    for service, url in db_urls.items():
        ensure_database(url)
        upgrade(registry.definition(service), url)
    return db_urls


def start_workers(db_urls: dict[str, str], broker_url: str, out_dir: Path, database_prefix: str) -> tuple[Any, Any]:
    """The three services' real workers on ``db_urls``, as processes sharing a data dir
    under ``out_dir`` (and the key ring generated there)."""
    from baitiao.simulation.environment import RunEnvironment, WorkerProcesses

    data_dir = (out_dir / "run-data").resolve()
    data_dir.mkdir(parents=True, exist_ok=True)
    env = {
        "BAITIAO_BROKER_URL": broker_url,
        "BAITIAO_DATA_DIR": str(data_dir),
        "BAITIAO_LOG_LEVEL": "WARNING",
        **{f"BAITIAO_{s.upper()}_DB_URL": u for s, u in db_urls.items()},
    }
    environment = RunEnvironment(out_dir, env, broker_url, db_urls, embedded=False, database_prefix=database_prefix)
    workers = WorkerProcesses(environment)
    workers.start()
    return environment, workers


def open_lines(url: str, accounts: int, run: str, ring: KeyRing, timeout_s: float = 300) -> float:
    """Grant ``accounts`` credit lines through the bus and wait for every ``credit.line.opened``;
    returns the seconds it took (the warm-up also proves the workers are consuming)."""
    started = time.monotonic()
    opened: set[str] = set()
    queue = Queue(f"bench.checkout.opened.{run}", exchange=EVENTS_EXCHANGE, routing_key=OPENED, durable=False)
    with broker_connection(url) as conn:
        declare_topology(conn)
        channel = conn.channel()
        queue(channel).declare()
        producer = Producer(conn.default_channel)
        for n in range(accounts):
            account = f"bench-{n}"
            payload = {
                "account_id": account,
                "customer_id": f"cust-{n}",
                "identity_hash": uuid.uuid4().hex,
                "credit_limit": "50000.00",
                "name": "Bench",
                "phone": "13800000000",
                "opened_on": date(2026, 1, 1).isoformat(),
            }
            body = new_envelope(
                "credit.line.granted",
                payload,
                aggregate_id=account,
                producer=CREDIT_APPROVAL,
                occurred_at=default_clock.now(),
            )
            body = sign_envelope(body, ring.signer(CREDIT_APPROVAL))
            producer.publish(body, exchange=EVENTS_EXCHANGE, routing_key=body["type"], serializer="json")

        def on_message(body: Any, message: Any) -> None:
            data = json.loads(body) if isinstance(body, (bytes, str)) else body
            opened.add(data["aggregate_id"])

        with Consumer(channel, [queue], callbacks=[on_message], no_ack=True, accept=["json"]):
            while len(opened) < accounts:
                if time.monotonic() - started > timeout_s:
                    raise RuntimeError(f"only {len(opened)} of {accounts} credit lines opened in {timeout_s} s")
                try:
                    conn.drain_events(timeout=1)
                except TimeoutError:
                    continue
        queue(channel).delete()
    return time.monotonic() - started


def default_phases(rates: Sequence[int], seconds: float, burst: int) -> list[Phase]:
    phases = [Phase(f"steady-{r}", r, seconds, 0) for r in rates]
    if burst:
        phases.append(Phase("burst", 0, 0, burst))
    return phases


def run_checkout_benchmark(
    broker_url: str,
    pg_url: str,
    phases: Sequence[Phase],
    accounts: int = 2000,
    generators: int = 2,
    out_dir: Path = Path(".baitiao/bench-checkout"),
    keep: bool = False,
) -> dict[str, Any]:
    """The whole benchmark: the echo and the system up, credit lines opened, then each phase
    against the echo and then against the system."""
    from baitiao.simulation.environment import drop_databases

    bench = CheckoutBench(broker_url, pg_url, accounts=accounts, generators=generators, out_dir=out_dir)
    targets = bench.targets()
    echoer, echo_stop, echo_queue = bench.start_echo()
    environment, workers = start_system(pg_url, broker_url, out_dir, bench.run)
    rows: list[dict[str, Any]] = []
    try:
        warm_up_s = open_lines(broker_url, accounts, bench.run, outside_ring(environment.data_dir.resolve()))
        for phase in phases:
            for name in ("echo", "ours"):
                rows.append(bench.run_phase(targets[name], phase))
            rows[-1]["path_ms"] = path_breakdown(environment.db_urls["accounts"], *bench.last_phase)
    finally:
        echo_stop.set()
        echoer.join(10)
        workers.stop()
        with broker_connection(broker_url) as conn:
            for queue in (echo_queue, *(t.listen for t in targets.values())):
                queue(conn.default_channel).delete()
        if not keep:
            drop_databases(environment)
    return {"accounts": accounts, "generators": generators, "warm_up_s": round(warm_up_s, 1), "phases": _paired(rows)}


def path_breakdown(
    accounts_db_url: str, sent: Sequence[tuple[str, int, int]], arrived: dict[str, tuple[int, int]]
) -> dict[str, Any]:
    """Where a decision's time went, from the accounts database's own stamps: sent to
    handled (the consumer's pick-up, its batch and the handler: ``inbox.handled_at``),
    handled to published (the commit, the relay's wake, its read and publish:
    ``outbox.published_at``) and published to arrived (Redis and the listener).

    The database stamps are wall-clock, so these parts are read against the wall-clock
    moments the generators sent and the listener received (the monotonic clock, which the
    latencies use, stops while the machine is suspended; the wall clock does not)."""
    engine = create_engine(accounts_db_url)
    with engine.connect() as conn:
        stamps = {
            row.causation_id: (row.handled_at.timestamp(), row.published_at.timestamp())
            for row in conn.execute(
                text(
                    "SELECT o.causation_id, i.handled_at, o.published_at FROM outbox o "
                    "JOIN inbox i ON i.event_id = o.causation_id "
                    "WHERE o.type IN ('purchase.approved', 'purchase.declined') AND o.published_at IS NOT NULL"
                )
            )
        }
    engine.dispose()
    parts: dict[str, list[float]] = {"sent_to_handled": [], "handled_to_published": [], "published_to_arrived": []}
    for event_id, _, sent_wall_ns in sent:
        if event_id not in stamps or event_id not in arrived:
            continue
        handled, published = stamps[event_id]
        sent_s, arrived_s = sent_wall_ns / 1e9, arrived[event_id][1] / 1e9
        parts["sent_to_handled"].append((handled - sent_s) * 1000)
        parts["handled_to_published"].append((published - handled) * 1000)
        parts["published_to_arrived"].append((arrived_s - published) * 1000)
    return {name: _percentiles(sorted(values)) for name, values in parts.items()}


def _paired(rows: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per phase: ours, the echo, and the ratio of their p99s."""
    by_phase: dict[str, dict[str, Any]] = {}
    for row in rows:
        by_phase.setdefault(row["phase"], {"phase": row["phase"], "offered_per_s": row["offered_per_s"]})
        by_phase[row["phase"]][row["target"]] = {
            k: v for k, v in row.items() if k not in ("phase", "target", "offered_per_s")
        }
    for entry in by_phase.values():
        ours, echoed = entry.get("ours", {}).get("p99_ms"), entry.get("echo", {}).get("p99_ms")
        entry["p99_ratio_to_echo"] = round(ours / echoed, 2) if ours and echoed else None
    return list(by_phase.values())
