"""What every request of the desk needs: settings, the desk's database, the bus, "today"."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime

from sqlalchemy import Engine

from baitiao.desk.bus import DeskBus
from baitiao.desk.settings import DeskSettings
from shared.rules import ProductRules
from shared.settings import Settings


@dataclass
class Desk:
    settings: Settings
    desk: DeskSettings
    engine: Engine
    secret: bytes
    rules: ProductRules
    bus: DeskBus | None  # None: a desk that only reads (commands answer 503)

    def today(self) -> date:
        from shared.clock import business_date, default_clock

        return self.desk.business_date or business_date(default_clock.now())

    def now(self) -> datetime:
        """When a command happens: now, or the desk's business date at the current local time."""
        from shared.clock import SHANGHAI, default_clock

        now = default_clock.now()
        if self.desk.business_date is None:
            return now
        local = now.astimezone(SHANGHAI)
        return datetime.combine(self.desk.business_date, local.time().replace(microsecond=0), tzinfo=SHANGHAI)
