"""``baitiao bench desk``: the desk's reads over a large portfolio and its checkout door under
load, each beside a baseline measured in the same run.

In one run, on PostgreSQL and Redis:

1. fresh databases for the three services and the desk, the portfolio written straight into
   them (:mod:`baitiao.bench_desk_portfolio`: 100,000 open cases by default with their
   accounts, bills, ledger, contacts, tasks and promises; a supervisor and the collectors
   with every case's account assigned);
2. the three real workers, credit lines opened through the bus for the checkout's
   accounts, and the desk served as ``baitiao api`` in a process of its own;
3. the reads, one request at a time in a shuffled order: a collector's and a supervisor's
   worklist (several pages, by priority), the account's 360° view (``/api/accounts/..``)
   and its HTML page for random accounts, each timed by the server itself (its
   ``Server-Timing`` header: from the request reaching the app to the response's headers,
   :mod:`baitiao.desk.timing`); the baseline is ``/api/me``, the least an authenticated
   request costs (the token, the user's row);
4. the checkout door: ``POST /api/purchases`` at a steady rate from open-loop httpx
   generators (several processes), the latency from the moment the schedule said to send to
   the decision's arrival; the baseline is the plain bus round trip at the same rate in the
   same run (``bench checkout``'s generators publishing ``purchase.requested`` and its
   listener stamping ``purchase.approved``), so the difference is what the door adds.
"""

from __future__ import annotations

import asyncio
import json
import multiprocessing
import os
import random
import secrets
import socket
import statistics
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import redis
from kombu import Connection
from sqlalchemy import create_engine
from sqlalchemy.engine import make_url

from baitiao.bench_checkout import CheckoutBench, Phase, _Start, migrated_databases, open_lines, outside_ring
from baitiao.bench_close import BUSINESS_DATE
from baitiao.bench_desk_portfolio import SUPERVISOR, collector_name, seed_desk_portfolio
from baitiao.bench_night import SERVICES, refuse_busy_broker, wait_for_workers

PAGES = 5  # worklist pages read per request kind
START_TIMEOUT_S = 60.0


def quantiles(values: Sequence[float]) -> dict[str, float | None]:
    """p50, p99 and p99.9 of ``values`` (milliseconds), and how many."""
    ordered = sorted(values)

    def at(q: float) -> float | None:
        return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))], 2) if ordered else None

    return {
        "count": len(ordered),
        "p50_ms": round(statistics.median(ordered), 2) if ordered else None,
        "p99_ms": at(0.99),
        "p999_ms": at(0.999),
    }


# -- the desk as a process ---------------------------------------------------------------------


@dataclass
class DeskServer:
    """``baitiao api`` on a free port, with the run's databases, broker and key ring."""

    env: dict[str, str]
    log: Path
    port: int = 0
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        from baitiao.processes import die_with_parent
        from baitiao.simulation.environment import _WHERE_KEYS, ROOT

        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        env = {k: v for k, v in os.environ.items() if k not in _WHERE_KEYS and not k.startswith("BAITIAO_DESK_")}
        env.update(self.env)
        with open(self.log, "ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "baitiao.cli", "api", "--port", str(self.port)],
                env=env,
                cwd=ROOT,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                preexec_fn=die_with_parent,
            )
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"baitiao api exited with {self.process.returncode}: see {self.log}")
            try:
                if httpx.get(f"{self.url}/login", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        raise TimeoutError(f"baitiao api did not answer within {START_TIMEOUT_S:g} s: see {self.log}")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)


# -- the reads ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Read:
    """One request of the reads' phase: its kind (what is reported), path and whose token."""

    kind: str
    path: str
    token: str


def read_plan(tokens: dict[str, str], accounts: int, collectors: int, samples: int, rng: random.Random) -> list[Read]:
    """The reads in a shuffled order: ``samples`` of each kind (the worklists over their
    first pages in turn), so that whatever else the machine does falls on every kind alike."""
    from baitiao.bench_desk_portfolio import SPREAD

    def case_account() -> tuple[str, str]:
        g = rng.randrange(1, accounts + 1)
        while g % SPREAD == 0:
            g = rng.randrange(1, accounts + 1)
        return f"acc-{g}", collector_name(1 + g % collectors)

    plan: list[Read] = []
    for n in range(samples):
        page = 1 + n % PAGES
        collector = collector_name(1 + rng.randrange(collectors))
        account, owner = case_account()
        plan += [
            Read("baseline /api/me", "/api/me", tokens[SUPERVISOR]),
            Read("worklist: a collector's own", f"/api/worklist?page={page}", tokens[collector]),
            Read("worklist: supervisor, every case", f"/api/worklist?page={page}", tokens[SUPERVISOR]),
            Read(
                "worklist: supervisor, one collector's",
                f"/api/worklist?collector={collector}&page={page}",
                tokens[SUPERVISOR],
            ),
            Read("worklist page (HTML), a collector's", f"/worklist?page={page}", tokens[collector]),
            Read("account 360 (/api), its collector", f"/api/accounts/{account}", tokens[owner]),
            Read("account 360 (/api), supervisor", f"/api/accounts/{account}", tokens[SUPERVISOR]),
            Read("account page (HTML), its collector", f"/accounts/{account}", tokens[owner]),
        ]
    rng.shuffle(plan)
    return plan


def run_reads(url: str, plan: Sequence[Read], warm_up: int = 50) -> dict[str, dict[str, Any]]:
    """Each read once, one at a time; per kind the server's times (and the client's, beside)."""
    from baitiao.desk.timing import server_ms

    server: dict[str, list[float]] = {}
    client: dict[str, list[float]] = {}
    failures: dict[str, int] = {}
    with httpx.Client(base_url=url, timeout=30) as http:
        for n, read in enumerate([*plan[:warm_up], *plan]):
            started = time.perf_counter()
            response = http.get(read.path, headers={"authorization": f"Bearer {read.token}"})
            took = (time.perf_counter() - started) * 1000
            if n < warm_up:
                continue
            if response.status_code != 200:
                failures[read.kind] = failures.get(read.kind, 0) + 1
                continue
            server.setdefault(read.kind, []).append(server_ms(response.headers.get("server-timing")) or 0.0)
            client.setdefault(read.kind, []).append(took)
    kinds = sorted({r.kind for r in plan})
    return {
        kind: {
            "server": quantiles(server.get(kind, [])),
            "client": quantiles(client.get(kind, [])),
            "failed": failures.get(kind, 0),
        }
        for kind in kinds
    }


# -- the checkout door -------------------------------------------------------------------------


@dataclass(frozen=True)
class DoorOutcome:
    """One request to the door: scheduled to answered (ms), its status (0: no answer), and
    the server's own times from ``Server-Timing``: the whole, the send, the wait for the
    decision."""

    took_ms: float
    status: int
    server_ms: float | None = None
    send_ms: float | None = None
    decision_ms: float | None = None


class KeptAlive:
    """The door's load generator's HTTP/1.1 client: kept-alive connections, a request
    written in one piece, the response read by its ``content-length``.

    httpx's async client was the limit here: 100 requests at once to an endpoint that
    sleeps 50 ms took it 0.8 to 1.4 s against 0.1 to 0.16 s for this (the servers' own
    times the same), so at 100/s it reported seconds of latency the desk never spent."""

    def __init__(self, host: str, port: int):
        self.host, self.port = host, port
        self._free: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = []

    async def post(self, path: str, body: bytes, headers: dict[str, str]) -> tuple[int, dict[str, str]]:
        """The status and headers of the answer to a POST of ``body`` (its body read and dropped).

        A kept-alive connection the server closed while it was idle (uvicorn closes them
        after 5 s) is dropped, and a request it took unanswered is sent again once on a new
        connection, as an HTTP client's pool does."""
        lines = [f"POST {path} HTTP/1.1", f"host: {self.host}", "content-type: application/json"]
        lines += [f"content-length: {len(body)}", *(f"{k}: {v}" for k, v in headers.items())]
        request = ("\r\n".join(lines) + "\r\n\r\n").encode() + body
        while self._free and self._free[-1][0].at_eof():
            self._free.pop()[1].close()
        if self._free:
            answered = await self._exchange(*self._free.pop(), request)
            if answered is not None:
                return answered
        answered = await self._exchange(*await asyncio.open_connection(self.host, self.port), request)
        if answered is None:
            raise ConnectionError("the desk closed a new connection without answering")
        return answered

    async def _exchange(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, request: bytes
    ) -> tuple[int, dict[str, str]] | None:
        """One request on one connection; None if the connection was closed before an answer."""
        try:
            writer.write(request)
            status_line = await reader.readline()
        except ConnectionError:
            status_line = b""
        if not status_line:
            writer.close()
            return None
        answer: dict[str, str] = {}
        while (line := await reader.readline()) not in (b"\r\n", b""):
            name, _, value = line.decode("latin-1").partition(":")
            answer[name.strip().lower()] = value.strip()
        await reader.readexactly(int(answer.get("content-length", "0")))
        self._free.append((reader, writer))
        return int(status_line.split()[1]), answer

    async def open(self, count: int) -> None:
        """``count`` connections opened before the clock starts, as a checkout's pool holds them."""
        self._free += await asyncio.gather(*(asyncio.open_connection(self.host, self.port) for _ in range(count)))

    def close(self) -> None:
        for _reader, writer in self._free:
            writer.close()


def post_purchases(
    url: str, token: str, rate: float, count: int, start: Any, accounts: int, run: str, results: Any
) -> None:
    """Open loop: POST ``count`` purchases at ``rate`` a second from the shared start, each
    in a task of its own (a late answer never delays the next request); report (scheduled
    to answered ms, the server's ms, the status) of each."""
    from baitiao.desk.timing import server_ms
    from shared.clock import default_clock

    bodies = [
        json.dumps(
            {
                "purchase_id": f"d-{run}-{n}",
                "account_id": f"bench-{(n * 7919) % accounts}",
                "amount": "1.00",
                "merchant": "bench",
                "requested_at": default_clock.now().isoformat(),
            }
        ).encode()
        for n in range(count)
    ]
    outcomes: list[DoorOutcome] = []
    address = httpx.URL(url)

    async def drive() -> None:
        http = KeptAlive(address.host, address.port or 80)
        headers = {"authorization": f"Bearer {token}"}

        async def one(body: bytes, due_ns: int) -> None:
            try:
                status, answer = await http.post("/api/purchases", body, headers)
            except (OSError, ValueError, asyncio.IncompleteReadError):
                outcomes.append(DoorOutcome((time.monotonic_ns() - due_ns) / 1e6, 0))
                return
            took = (time.monotonic_ns() - due_ns) / 1e6
            timing = answer.get("server-timing")
            parts = (server_ms(timing), server_ms(timing, "send"), server_ms(timing, "decision"))
            outcomes.append(DoorOutcome(took, status, *parts))

        await http.open(min(50, count))
        start.barrier.wait()
        while not (start_ns := start.at.value):
            await asyncio.sleep(0.001)
        interval_ns = int(1e9 / rate)
        tasks = []
        for n, body in enumerate(bodies):
            due_ns = start_ns + n * interval_ns
            delay = (due_ns - time.monotonic_ns()) / 1e9
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(one(body, due_ns)))
        await asyncio.gather(*tasks)
        http.close()

    asyncio.run(drive())
    results.put(outcomes)


def run_door(url: str, token: str, phase: Phase, accounts: int, generators: int, run: str) -> list[DoorOutcome]:
    """The door at ``phase.rate`` from ``generators`` processes: (scheduled to answered ms,
    the server's ms, the status) of each request."""
    ctx = multiprocessing.get_context("spawn")
    results = ctx.Queue()
    start = _Start(ctx.Barrier(generators + 1), ctx.Value("q", 0))
    procs = [
        ctx.Process(
            target=post_purchases,
            args=(
                url,
                token,
                phase.rate / generators,
                phase.requests // generators,
                start,
                accounts,
                f"{run}-{g}",
                results,
            ),
        )
        for g in range(generators)
    ]
    for p in procs:
        p.start()
    start.barrier.wait(timeout=300)
    start.at.value = time.monotonic_ns() + 50_000_000
    outcomes: list[DoorOutcome] = []
    for _ in procs:
        outcomes += results.get(timeout=phase.seconds + 600)
    for p in procs:
        p.join(30)
    return outcomes


def door_against_bus(
    bench: CheckoutBench, server: DeskServer, token: str, rate: int, seconds: float, pairs: int
) -> dict[str, Any]:
    """The plain bus round trip and the door at the same rate on the same workers, in turns
    (``pairs`` of each, ``seconds`` a turn), so that whatever else loads the machine falls
    on both alike; the latencies of all turns together."""
    target = bench.targets()["ours"]
    bus: list[float] = []
    outcomes: list[DoorOutcome] = []
    lags: list[float] = []
    for n in range(pairs):
        phase = Phase(f"steady-{rate}-{n}", rate, seconds, 0)
        row = bench.run_phase(target, phase)
        lags.append(row["generator_lag_p99_ms"] or 0.0)
        sent, arrived = bench.last_phase
        bus += [(arrived[i][0] - due) / 1e6 for i, due, _ in sent if i in arrived]
        bus += [float("inf")] * sum(1 for i, _, _ in sent if i not in arrived)
        with Connection(bench.broker_url) as conn:  # no copies of the door's answers for a listener gone
            target.listen(conn.default_channel).delete()
        outcomes += run_door(server.url, token, phase, bench.accounts, bench.generators, f"{bench.run}-{n}")
    decided = [o for o in outcomes if o.status == 200]
    door = {
        "requests": len(outcomes),
        "decided": len(decided),
        "undecided_202": sum(1 for o in outcomes if o.status == 202),
        "failed": sum(1 for o in outcomes if o.status not in (200, 202)),
        **quantiles([o.took_ms for o in decided]),
        "server": quantiles([o.server_ms for o in decided if o.server_ms is not None]),
        "server_send": quantiles([o.send_ms for o in decided if o.send_ms is not None]),
        "server_decision": quantiles([o.decision_ms for o in decided if o.decision_ms is not None]),
    }
    plain = {**quantiles([b for b in bus if b != float("inf")]), "unanswered": bus.count(float("inf"))}
    plain["generator_lag_p99_ms"] = max(lags, default=None)
    added = {
        f"added_{q}_ms": round(door[f"{q}_ms"] - plain[f"{q}_ms"], 2)
        for q in ("p50", "p99")
        if door[f"{q}_ms"] is not None and plain[f"{q}_ms"] is not None
    }
    return {
        "offered_per_s": rate,
        "turns": pairs,
        "seconds_a_turn": seconds,
        "bus": plain,
        "door": door,
        **added,
        "p99_ratio_to_bus": round(door["p99_ms"] / plain["p99_ms"], 2) if door["p99_ms"] and plain["p99_ms"] else None,
    }


# -- the run -----------------------------------------------------------------------------------


def _tokens(secret: bytes, collectors: int) -> dict[str, str]:
    from baitiao.desk.access import User, issue_token

    users = [User(SUPERVISOR, "supervisor")] + [User(collector_name(n), "collector") for n in range(1, collectors + 1)]
    return {u.username: issue_token(u, secret, 24) for u in users}


def summarize_reads(reads: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """Each kind's server p99 against the baseline's, as a ratio and a difference."""
    base = reads["baseline /api/me"]["server"]
    rows = {}
    for kind, figures in reads.items():
        p99, p50 = figures["server"]["p99_ms"], figures["server"]["p50_ms"]
        rows[kind] = {
            **figures,
            "p99_ratio_to_baseline": round(p99 / base["p99_ms"], 1) if p99 and base["p99_ms"] else None,
            "p50_over_baseline_ms": round(p50 - base["p50_ms"], 2) if p50 is not None else None,
        }
    return rows


def run_desk_benchmark(
    broker_url: str,
    pg_url: str,
    cases: int = 100_000,
    collectors: int = 50,
    samples: int = 300,
    door_rate: int = 500,
    door_seconds: float = 5.0,
    door_pairs: int = 3,
    door_accounts: int = 2000,
    generators: int = 2,
    out_dir: Path = Path(".baitiao/bench-desk"),
    keep: bool = False,
    progress: Callable[[str], None] = lambda line: None,
) -> dict[str, Any]:
    """The whole benchmark (see the module's docstring); returns its figures."""
    from baitiao.bench_checkout import start_workers
    from baitiao.desk import state
    from baitiao.simulation.environment import drop_databases
    from shared.celery_app import job_celery_app
    from shared.migrations import ensure_database

    refuse_busy_broker(redis.Redis.from_url(broker_url))
    run = uuid.uuid4().hex[:8]
    prefix = f"bench_desk_{run}"
    db_urls = migrated_databases(pg_url, prefix)
    desk_url = make_url(pg_url).set(database=f"{prefix}_desk").render_as_string(hide_password=False)
    ensure_database(desk_url)
    engines = {s: create_engine(u) for s, u in db_urls.items()}
    desk_engine = create_engine(desk_url)
    environment = workers = server = bench = None
    try:
        state.upgrade(desk_engine)
        progress(f"writing the portfolio: {cases:,} cases")
        started = time.monotonic()
        accounts = seed_desk_portfolio(engines, desk_engine, cases, collectors, secrets.token_hex(8))
        portfolio_s = time.monotonic() - started
        for engine in (*engines.values(), desk_engine):
            engine.dispose()
        progress("starting the workers and the desk")
        environment, workers = start_workers(db_urls, broker_url, out_dir, prefix)
        wait_for_workers(job_celery_app("baitiao.bench.desk", broker_url), len(SERVICES))
        data_dir = environment.data_dir.resolve()
        lines_s = open_lines(broker_url, door_accounts, run, outside_ring(data_dir))
        secret, checkout_token = secrets.token_hex(32), secrets.token_hex(16)
        server = DeskServer(
            {
                **environment.env,
                "BAITIAO_DESK_DB_URL": desk_url,
                "BAITIAO_DESK_SECRET": secret,
                "BAITIAO_DESK_CHECKOUT_TOKEN": checkout_token,
                "BAITIAO_DESK_BUSINESS_DATE": BUSINESS_DATE.isoformat(),
            },
            data_dir / "logs" / "desk.log",
        )
        server.start()
        progress("the reads")
        tokens = _tokens(secret.encode(), collectors)
        plan = read_plan(tokens, accounts, collectors, samples, random.Random(1))
        reads = summarize_reads(run_reads(server.url, plan))
        every_case = httpx.get(
            f"{server.url}/api/worklist", headers={"authorization": f"Bearer {tokens[SUPERVISOR]}"}, timeout=30
        )
        worklist_total = int(every_case.json()["total"])
        progress(f"the checkout door at {door_rate}/s beside the bus")
        bench = CheckoutBench(
            broker_url,
            pg_url,
            accounts=door_accounts,
            generators=generators,
            repayment_every=0,
            out_dir=out_dir,
            run=run,
        )
        door = door_against_bus(bench, server, checkout_token, door_rate, door_seconds, door_pairs)
        workers.check_alive()
    finally:
        if server is not None:
            server.stop()
        if workers is not None:
            workers.stop()
        if bench is not None:
            with Connection(broker_url) as conn:
                bench.targets()["ours"].listen(conn.default_channel).delete()
        if not keep:
            if environment is not None:
                drop_databases(environment)
            _drop(desk_url)
    return {
        "cases": cases,
        "accounts": accounts,
        "collectors": collectors,
        "worklist_total": worklist_total,
        "portfolio_build_s": round(portfolio_s, 1),
        "credit_lines_s": round(lines_s, 1),
        "server_time": "the desk's Server-Timing header: request reaching the app to the response's headers",
        "reads": reads,
        "door": door,
    }


def _drop(url: str) -> None:
    from sqlalchemy import text

    parsed = make_url(url)
    admin = create_engine(parsed.set(database="postgres"), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{parsed.database}" WITH (FORCE)'))
    admin.dispose()
