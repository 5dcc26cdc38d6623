"""The fault drill's choice of victims: never a worker whose service has no other worker up.

Real child processes (``sleep``) stand in for the workers: the drill's rules are about
which process it may kill and that it starts another in its place, not about Celery.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

from baitiao.simulation.environment import RunEnvironment, WorkerProcesses
from baitiao.simulation.faults import KillDrill, KillPlan


class SleepingWorkers(WorkerProcesses):
    def _spawn(self, service: str, index: int) -> subprocess.Popen[bytes]:
        proc = subprocess.Popen(["sleep", "60"], start_new_session=True)
        self.started_at[(service, index)] = 0.0  # long up
        return proc


def _workers(tmp_path: Path, per_service: int) -> SleepingWorkers:
    run = RunEnvironment(tmp_path, {}, "redis://unused", {}, embedded=False)
    workers = SleepingWorkers(run, per_service=per_service)
    workers.start()
    return workers


def test_a_single_worker_per_service_is_never_killed(tmp_path: Path) -> None:
    workers = _workers(tmp_path, 1)
    try:
        drill = KillDrill(workers, KillPlan(every_s=1, seed=1), warm_up_s=0)
        assert drill.kill_one() is None and drill.deferred == 1 and not drill.kills
    finally:
        workers.stop()


def test_a_killed_worker_is_replaced_and_the_kill_recorded(tmp_path: Path) -> None:
    workers = _workers(tmp_path, 2)
    try:
        before = {p.pid for procs in workers.procs.values() for p in procs}
        drill = KillDrill(workers, KillPlan(every_s=1, seed=1), warm_up_s=0)
        kill = drill.kill_one()
        assert kill is not None and kill.pid in before
        after = {p.pid for procs in workers.procs.values() for p in procs}
        assert kill.pid not in after and len(after) == len(before)
        workers.check_alive()  # the replacement runs: no WorkerDied
        assert drill.describe()["count"] == 1 and drill.describe()["by_service"] == {kill.service: 1}
    finally:
        workers.stop()


def test_a_worker_whose_only_sibling_is_still_starting_is_spared(tmp_path: Path) -> None:
    workers = _workers(tmp_path, 2)
    try:
        drill = KillDrill(workers, KillPlan(every_s=1, seed=1), warm_up_s=0)
        kill = drill.kill_one()
        assert kill is not None
        # the replacement has just started: with a warm-up, its sibling may not be killed
        workers.started_at[(kill.service, kill.worker)] = float("inf")
        candidates = workers.killable(warm_up_s=5)
        assert (kill.service, 1 - kill.worker) not in candidates
        assert (kill.service, kill.worker) in candidates  # the starting one is covered by its warm sibling
    finally:
        workers.stop()
