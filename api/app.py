"""The app factory: wires settings, the registry and the time-series store into the routers."""

from __future__ import annotations

import logging
from contextlib import asynccontextmanager
from typing import AsyncIterator

from fastapi import FastAPI

from api import errors
from api.routes import api_router, health
from api.schemas import ErrorOut, ValidationErrorOut
from core.registry import Registry, open_registry
from core.settings import Settings
from core.tsdb import TimeSeriesStore, store_from_settings

log = logging.getLogger("api")

DESCRIPTION = """
Read-only access to the district's stations, readings (raw and aggregated), alerts and dead letters, plus alert
acknowledgement.

* Every time in a response is ISO 8601 in UTC with an explicit offset (`2026-06-28T06:05:00+00:00`); every time in a
  query needs an offset (`+08:00` — URL-encode the `+` as `%2B` — or `Z`).
* Errors: 404 `{"detail": "..."}` for unknown ids; 422 `{"detail": "<readable sentence>", "errors": [...]}` for bad
  input; 503 when the registry or the store cannot be reached.
* `GET /api/v1/readings/latest` returns a flat list with one entry per (station, metric), not grouped per station.
"""


def create_app(settings: Settings, registry: Registry | None = None,
               store: TimeSeriesStore | None = None) -> FastAPI:
    """Build the API. Opens the registry and the store from ``settings`` when they are not given and then closes
    them on shutdown; ones passed in belong to the caller. Creating the registry schema is the caller's job."""
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
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        yield
        for resource in reversed(owned):
            try:
                resource.close()
            except Exception:
                log.exception("closing %s failed", type(resource).__name__)

    app = FastAPI(title="Smart-water monitoring API", version="1", description=DESCRIPTION,
                  docs_url="/docs", openapi_url="/openapi.json", redoc_url=None, lifespan=lifespan)
    app.state.settings = settings
    app.state.registry = registry
    app.state.store = store
    errors.install(app)
    app.include_router(health.router)
    app.include_router(api_router, responses={
        422: {"model": ValidationErrorOut, "description": "invalid input; `detail` says what and why"},
        503: {"model": ErrorOut, "description": "the registry or the time-series store cannot be reached"},
    })
    return app
