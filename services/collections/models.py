"""The collections service's tables (its database only). Money is integer fen."""
from __future__ import annotations

from shared.bus.handling import BusTables
from shared.bus.tables import add_bus_tables
from shared.db import service_base

Base = service_base()
_bus = add_bus_tables(Base.metadata)
BUS = BusTables(_bus["outbox"], _bus["inbox"], _bus["dead_letters"])
