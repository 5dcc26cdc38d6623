"""``Server-Timing: app;dur=<ms>`` on every response: the desk's own time for a request.

Measured from the request reaching the application to its response's headers being sent.
The desk builds every body (JSON, a rendered page) before its headers go out, so this is
the whole of the server's work for the request, without the network or the client's
side; a browser's developer tools and ``baitiao bench desk`` read it from the header.
"""

from __future__ import annotations

import time
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send


class ServerTiming:
    """A pure ASGI middleware (no buffering of the body): adds the header at the response's start."""

    def __init__(self, app: ASGIApp):
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()

        async def timed(message: Message) -> None:
            if message["type"] == "http.response.start":
                took_ms = (time.perf_counter() - started) * 1000
                message = {**message, "headers": _with_app_time(message.get("headers", []), took_ms)}
            await send(message)

        await self.app(scope, receive, timed)


def _with_app_time(headers: list[Any], took_ms: float) -> list[Any]:
    """The headers with ``app`` added to the ``Server-Timing`` the endpoint set (its own
    parts of the time), or as a header of its own."""
    app = f"app;dur={took_ms:.3f}".encode()
    own = [value for name, value in headers if name.lower() == b"server-timing"]
    others = [(name, value) for name, value in headers if name.lower() != b"server-timing"]
    return [*others, (b"server-timing", b", ".join([app, *own]))]


def server_ms(header: str | None, part: str = "app") -> float | None:
    """One part's duration in a ``Server-Timing`` header (the whole ``app`` by default), in ms."""
    for entry in (header or "").split(","):
        name, _, rest = entry.strip().partition(";")
        if name == part and rest.startswith("dur="):
            return float(rest[4:])
    return None
