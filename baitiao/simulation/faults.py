"""A fault drill for a run: SIGKILL one of its worker processes every so often, as a
crashed container or an OOM kill would, and start it again at once (docker compose's
``restart: unless-stopped``).

The victim and the pauses come from a seeded RNG, so a drill is described by two
numbers (``--kill-every``, ``--kill-seed``); *what* a kill hits (a job slice, a batch of
events, an outbox row being relayed) depends on timing and is not repeatable, and the
report's figures must not depend on it: that is what the drill checks. A worker is only
killed while another worker of its service is up (alive and past its warm-up), so a
service is never left without a consumer and the drill measures recovery, not outage.
The kills go into the report's varying ``environment`` part, never into its figures.
"""

from __future__ import annotations

import random
import threading
import time
from dataclasses import asdict, dataclass, field
from typing import Any

from baitiao.simulation.environment import WorkerProcesses

# A restarted worker counts as up once it has lived this long: its consumer, relay and job
# pool are running by then on a loaded 2-core machine (a cold start takes 3-8 s there).
WARM_UP_S = 12.0
# Pauses between kills are drawn in [every * (1 - JITTER), every * (1 + JITTER)].
JITTER = 0.5
# When no worker may be killed (a service's other worker still warming up), look again soon.
RETRY_S = 2.0


@dataclass(frozen=True)
class KillPlan:
    """Kill a worker every ``every_s`` seconds on average, victims drawn from ``seed``."""

    every_s: float
    seed: int


@dataclass(frozen=True)
class Kill:
    at_s: float  # seconds since the drill started
    service: str
    worker: int  # its index among the service's workers
    pid: int


@dataclass
class KillDrill:
    """The thread that kills and restarts the run's workers."""

    workers: WorkerProcesses
    plan: KillPlan
    warm_up_s: float = WARM_UP_S
    kills: list[Kill] = field(default_factory=list)
    deferred: int = 0  # times a kill was due but no worker could be spared
    _rng: random.Random = field(init=False)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None
    _started: float = 0.0

    def __post_init__(self) -> None:
        self._rng = random.Random(f"kills:{self.plan.seed}")

    def start(self) -> None:
        self._started = time.monotonic()
        self._thread = threading.Thread(target=self._run, name="kill-drill", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=60)

    def _run(self) -> None:
        pause = self._pause()
        while not self._stop.wait(pause):
            pause = self._pause() if self.kill_one() else RETRY_S

    def _pause(self) -> float:
        return self.plan.every_s * self._rng.uniform(1 - JITTER, 1 + JITTER)

    def kill_one(self) -> Kill | None:
        """Kill (and restart) one worker that another of its service covers; None if none can be spared."""
        candidates = self.workers.killable(self.warm_up_s)
        if not candidates:
            self.deferred += 1
            return None
        service, index = self._rng.choice(candidates)
        pid = self.workers.kill_and_restart(service, index)
        kill = Kill(self.elapsed(), service, index, pid)
        self.kills.append(kill)
        return kill

    def elapsed(self) -> float:
        """Seconds since the drill started (the clock of its kills)."""
        return round(time.monotonic() - self._started, 2)

    def describe(self) -> dict[str, Any]:
        """For the report's environment: the plan and every kill."""
        by_service: dict[str, int] = {}
        for kill in self.kills:
            by_service[kill.service] = by_service.get(kill.service, 0) + 1
        return {
            "kill_every_s": self.plan.every_s,
            "kill_seed": self.plan.seed,
            "count": len(self.kills),
            "by_service": dict(sorted(by_service.items())),
            "deferred": self.deferred,
            "kills": [asdict(k) for k in self.kills],
        }
