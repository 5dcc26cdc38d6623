"""Fault injection for the crash tests: die like SIGKILL at a named point of the consumer.

``BAITIAO_FAULT=before_commit:<event type>:<aggregate id>`` (or
``after_commit:…``) kills the worker process (SIGKILL to itself) when a batch
holding such an event reaches the point. Unset in every real deployment; the tests use it to
prove that a kill before commit loses nothing and a kill after commit and
before ack applies nothing twice.

``BAITIAO_FAULT=hold_after_slice:<job>`` makes each slice of that job wait, once
committed and before its task returns (and its message is acked), until the worker is
killed: the job crash tests kill a worker holding a slice.
"""
from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterable

_SPEC = os.environ.get("BAITIAO_FAULT", "")


def maybe_crash(point: str, events: Iterable[tuple[str, str]]) -> None:
    """``events``: (type, aggregate_id) of the batch at this point."""
    if not _SPEC:
        return
    wanted_point, wanted_type, wanted_aggregate = (_SPEC.split(":") + ["", ""])[:3]
    if wanted_point != point:
        return
    if any(t == wanted_type and (not wanted_aggregate or a == wanted_aggregate) for t, a in events):
        os.kill(os.getpid(), signal.SIGKILL)


def maybe_hold(point: str, name: str, seconds: float = 600.0) -> None:
    """Wait here (for a kill) if ``BAITIAO_FAULT`` names this point and this job."""
    if not _SPEC:
        return
    wanted_point, wanted_name = (_SPEC.split(":") + [""])[:2]
    if wanted_point == point and wanted_name == name:
        time.sleep(seconds)
