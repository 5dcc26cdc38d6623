"""restructuring: one function per consumed event type."""
from __future__ import annotations

from shared.bus.handling import Handler

HANDLERS: dict[str, Handler] = {}
