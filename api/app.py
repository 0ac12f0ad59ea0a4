"""The app factory: wires settings, the registry and the time-series store into the routers."""

from __future__ import annotations

import asyncio
import logging
from contextlib import asynccontextmanager
from typing import AsyncIterator

from fastapi import FastAPI

from api import errors
from api.routes import api_router, health
from api.schemas import ErrorOut, ValidationErrorOut
from api.stream import AlertStream
from core.registry import Registry, open_registry
from core.settings import Settings
from core.tsdb import TimeSeriesStore, store_from_settings

log = logging.getLogger("api")

DESCRIPTION = """
Read access to the district's stations, readings (raw and aggregated), alerts and dead letters; alert
acknowledgement; alert rules and the duty roster; live alert notifications as server-sent events
(`GET /api/v1/alerts/stream`).

* Every time in a response is ISO 8601 in UTC with an explicit offset (`2026-06-28T06:05:00+00:00`); every time in a
  query needs an offset (`+08:00` — URL-encode the `+` as `%2B` — or `Z`).
* Errors: 404 `{"detail": "..."}` for unknown ids; 409 for a rule name already taken; 422
  `{"detail": "<readable sentence>", "errors": [...]}` for bad input; 503 when the registry or the store cannot be
  reached.
* `GET /api/v1/readings/latest` returns a flat list with one entry per (station, metric), not grouped per station.
"""


def create_app(settings: Settings, registry: Registry | None = None,
               store: TimeSeriesStore | None = None, stream: bool = True) -> FastAPI:
    """Build the API. Opens the registry and the store from ``settings`` when they are not given and then closes
    them on shutdown; ones passed in belong to the caller. Creating the registry schema is the caller's job.

    ``stream``: run the alert stream (``api.stream.AlertStream``, MQTT ``water/alerts/#`` → SSE) while the app
    runs. It starts with the app whether or not the broker can be reached, and keeps reconnecting; pass False
    where nothing needs it (``/api/v1/alerts/stream`` then answers 503)."""
    owned: list[Registry | TimeSeriesStore] = []
    if registry is None:
        assert settings.db_url is not None  # Settings fills it in
        registry = open_registry(settings.db_url)
        owned.append(registry)
    if store is None:
        assert settings.tsdb_url is not None
        try:
            store = store_from_settings(settings)
        except BaseException:
            for r in owned:
                r.close()
            raise
        owned.append(store)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        alert_stream: AlertStream | None = None
        if stream:
            try:
                alert_stream = AlertStream(settings)
                alert_stream.start(asyncio.get_running_loop())
            except Exception:  # the API serves without live notifications rather than not at all
                log.exception("alert stream disabled: it cannot start")
                alert_stream = None
        app.state.alert_stream = alert_stream
        try:
            yield
        finally:
            app.state.alert_stream = None
            if alert_stream is not None:
                await asyncio.to_thread(alert_stream.stop)
            _close(owned)

    def _close(resources: list[Registry | TimeSeriesStore]) -> None:
        for resource in reversed(resources):
            try:
                resource.close()
            except Exception:
                log.exception("closing %s failed", type(resource).__name__)

    app = FastAPI(title="Smart-water monitoring API", version="1", description=DESCRIPTION,
                  docs_url="/docs", openapi_url="/openapi.json", redoc_url=None, lifespan=lifespan)
    app.state.settings = settings
    app.state.registry = registry
    app.state.store = store
    app.state.alert_stream = None  # set while the app runs with stream=True
    errors.install(app)
    app.include_router(health.router)
    app.include_router(api_router, responses={
        422: {"model": ValidationErrorOut, "description": "invalid input; `detail` says what and why"},
        503: {"model": ErrorOut, "description": "the registry or the time-series store cannot be reached"},
    })
    return app
