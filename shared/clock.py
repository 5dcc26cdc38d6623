"""One Clock abstraction (ARCHITECTURE.md, Time).

Business dates are dates in Asia/Shanghai. No module calls ``datetime.now()``
directly: production code receives a Clock, tests and the simulator pass a
``FixedClock`` they move by hand.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta, timezone
from typing import Protocol
from zoneinfo import ZoneInfo

SHANGHAI = ZoneInfo("Asia/Shanghai")


class Clock(Protocol):
    """Anything that can tell the current instant (timezone-aware)."""

    def now(self) -> datetime: ...


class SystemClock:
    """The wall clock, in Asia/Shanghai."""

    def now(self) -> datetime:
        return datetime.now(timezone.utc).astimezone(SHANGHAI)


@dataclass
class FixedClock:
    """A clock that only moves when told to: the simulator's and the tests' time."""

    current: datetime = field(default_factory=lambda: datetime(2026, 1, 1, 0, 0, tzinfo=SHANGHAI))

    def now(self) -> datetime:
        return self.current

    def set(self, instant: datetime) -> None:
        if instant.tzinfo is None:
            raise ValueError("FixedClock needs a timezone-aware instant")
        self.current = instant.astimezone(SHANGHAI)

    def advance(self, delta: timedelta) -> None:
        self.current = self.current + delta


def business_date(instant: datetime) -> date:
    """The Asia/Shanghai calendar date of an instant (naive instants are refused)."""
    if instant.tzinfo is None:
        raise ValueError("timestamps must carry an offset")
    return instant.astimezone(SHANGHAI).date()


def at_local(day: date, hh_mm: str = "00:00") -> datetime:
    """The Asia/Shanghai instant of a business date at a local HH:MM."""
    hours, minutes = (int(part) for part in hh_mm.split(":"))
    return datetime.combine(day, time(hours, minutes), tzinfo=SHANGHAI)


def event_time_clock(instant: datetime) -> FixedClock:
    """Simulated time (``BAITIAO_CLOCK=event``): now is the instant of what is being done.

    A handler acts at its event's ``occurred_at`` and a job at its business date and
    ``--at``, so what a service emits carries the simulated day, never the wall clock,
    and two runs of the same simulation stamp the same instants.
    """
    return FixedClock(instant.astimezone(SHANGHAI))


default_clock: Clock = SystemClock()
