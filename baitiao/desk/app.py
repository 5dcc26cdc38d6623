"""The desk's ASGI application: ``create_app(settings)`` builds it, ``baitiao api`` serves it.

The app reads the services' databases of ``settings`` and its own database (upgraded at
start), and, given a broker, starts its bus link (the reply listener) with the app's
lifespan. Denied access is 401/403 JSON under ``/api`` and a redirect to the login page
(or a 403 page) elsewhere. Every response carries the server's time for it
(``Server-Timing``, :mod:`baitiao.desk.timing`).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles

from baitiao.desk import api, pages, state
from baitiao.desk.access import AccessDenied
from baitiao.desk.bus import DeskBus
from baitiao.desk.context import Desk
from baitiao.desk.settings import DeskSettings
from baitiao.desk.timing import ServerTiming
from shared.db import engine_for
from shared.key_ring import key_ring
from shared.settings import Settings

HERE = Path(__file__).parent


def create_app(settings: Settings, desk_settings: DeskSettings | None = None, *, with_bus: bool = True) -> FastAPI:
    """The desk over ``settings``' databases; ``with_bus`` False: read-only (no broker)."""
    desk_settings = desk_settings or DeskSettings()
    engine = engine_for(desk_settings.database_url(settings.data_dir))
    state.upgrade(engine)
    bus = DeskBus(settings.resolved_broker_url(), engine, key_ring(settings), settings) if with_bus else None
    desk = Desk(
        settings=settings,
        desk=desk_settings,
        engine=engine,
        secret=desk_settings.signing_secret(settings.data_dir),
        rules=settings.rules(),
        bus=bus,
    )

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        if bus is not None:
            bus.start()
        try:
            yield
        finally:
            if bus is not None:
                bus.stop()

    app = FastAPI(
        title="baitiao desk",
        version="1",
        description="The collectors' and operators' desk: reads over accounts, collections and "
        "restructuring; commands sent as the contract's events (docs/events.md).",
        openapi_url="/api/openapi.json",
        docs_url="/api/docs",
        redoc_url=None,
        lifespan=lifespan,
    )
    app.state.desk = desk
    app.add_middleware(ServerTiming)
    app.include_router(api.router)
    app.include_router(pages.router)
    app.mount("/static", StaticFiles(directory=HERE / "static"), name="static")

    @app.exception_handler(AccessDenied)
    async def denied(request: Request, exc: AccessDenied) -> Response:
        if request.url.path.startswith("/api"):
            return JSONResponse({"detail": exc.reason}, status_code=exc.status)
        if exc.status == 401:
            return RedirectResponse("/login", status_code=303)
        return pages.render(request, "denied.html", {"reason": exc.reason}, status=403)

    return app
