"""``baitiao health worker|beat``: the liveness checks of :mod:`baitiao.liveness`."""

from __future__ import annotations

from baitiao.liveness import health

__all__ = ["health"]
