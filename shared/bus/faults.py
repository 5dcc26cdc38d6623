"""Fault injection for the crash and liveness tests: die like SIGKILL, or stall a loop.

``BAITIAO_FAULT=before_commit:<event type>:<aggregate id>`` (or
``after_commit:…``) kills the worker process (SIGKILL to itself) when a batch
holding such an event reaches the point. The tests use it to prove that a kill before
commit loses nothing and a kill after commit and before ack applies nothing twice.

``BAITIAO_FAULT=consumer_stall_after:<N>`` (or ``relay_stall_after:<N>``) makes the
events consumer's loop (or the outbox relay's) stop going round after ``N`` passes: it
blocks until the worker stops, the process and its other threads alive, as a loop stuck
in a call that never returns would. The liveness test uses it to prove that the health
check sees a loop that stopped polling.

``BAITIAO_FAULT=hold_after_slice:<job>`` makes each slice of that job wait, once
committed and before its task returns (and its message is acked), until the worker is
killed: the job crash tests kill a worker holding a slice.

Unset in every real deployment.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Iterable

_SPEC = os.environ.get("BAITIAO_FAULT", "")
_STALL_SUFFIX = "_stall_after"


def maybe_crash(point: str, events: Iterable[tuple[str, str]]) -> None:
    """``events``: (type, aggregate_id) of the batch at this point."""
    if not _SPEC:
        return
    wanted_point, wanted_type, wanted_aggregate = (_SPEC.split(":") + ["", ""])[:3]
    if wanted_point != point:
        return
    if any(t == wanted_type and (not wanted_aggregate or a == wanted_aggregate) for t, a in events):
        os.kill(os.getpid(), signal.SIGKILL)


def _stall_limits(spec: str) -> dict[str, int]:
    point, _, count = spec.partition(":")
    if not point.endswith(_STALL_SUFFIX) or not count.isdigit():
        return {}
    return {point[: -len(_STALL_SUFFIX)]: int(count)}


_STALLS = _stall_limits(_SPEC)
_passes: dict[str, int] = {}


def maybe_stall(loop: str, stopping: threading.Event) -> None:
    """One pass of ``loop`` ("consumer" or "relay"); past the configured count, block until
    ``stopping`` is set. Without a stall fault configured it returns at once."""
    if not _STALLS or loop not in _STALLS:
        return
    _passes[loop] = _passes.get(loop, 0) + 1
    if _passes[loop] > _STALLS[loop]:
        stopping.wait()


def maybe_hold(point: str, name: str, seconds: float = 600.0) -> None:
    """Wait here (for a kill) if ``BAITIAO_FAULT`` names this point and this job."""
    if not _SPEC:
        return
    wanted_point, wanted_name = (_SPEC.split(":") + [""])[:2]
    if wanted_point == point and wanted_name == name:
        time.sleep(seconds)
