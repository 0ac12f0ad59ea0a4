"""The app factory: wires settings, the registry and the time-series store into the routers."""

from __future__ import annotations

import asyncio
import logging
from contextlib import asynccontextmanager
from typing import AsyncIterator

from fastapi import FastAPI

from api import errors
from api.auth import Auth, install_role_docs
from api.limits import BodyLimitMiddleware
from api.routes import api_router, dashboard, health, public_router
from api.schemas import ErrorOut, ValidationErrorOut
from api.stream import AlertStream
from core.registry import Registry, open_registry
from core.clock import SYSTEM_CLOCK, Clock
from core.settings import Settings
from core.tsdb import TimeSeriesStore, store_from_settings

log = logging.getLogger("api")

DESCRIPTION = """
Read access to the district's stations, readings (raw and aggregated), alerts and dead letters; alert
acknowledgement; alert rules and the duty roster; live alert notifications as server-sent events
(`GET /api/v1/alerts/stream`).

* Every time in a response is ISO 8601 in UTC with an explicit offset (`2026-06-28T06:05:00+00:00`); every time in a
  query needs an offset (`+08:00` — URL-encode the `+` as `%2B` — or `Z`).
* Errors: 401 without a valid token; 403 when the user's role may not do it; 404 `{"detail": "..."}` for unknown
  ids; 409 for a rule name already taken; 422 `{"detail": "<readable sentence>", "errors": [...]}` for bad input;
  429 for too many failed logins; 503 when the registry or the store cannot be reached.
* `GET /api/v1/readings/latest` returns a flat list with one entry per (station, metric), not grouped per station.

**Access.** Every endpoint but `/healthz`, the docs, `POST /api/v1/auth/login` and the public river-chief bulletin
(`GET /api/v1/bulletin`) needs a bearer token:
`POST /api/v1/auth/login` with `{"username": "...", "password": "..."}`, then send
`Authorization: Bearer <access_token>` (the alert stream also takes `?access_token=`). Tokens last 12 h by default.
Accounts are made with `smartwater user add NAME --role ROLE`. Each endpoint's description lists its roles:

| | admin | supervisor | duty | chief | viewer |
|---|---|---|---|---|---|
| stations, readings, alerts, alert stream, `auth/me` | ✓ | ✓ | ✓ | ✓ | ✓ |
| acknowledge an alert | ✓ | ✓ | ✓ | | |
| dead letters; read rules and the duty roster | ✓ | ✓ | ✓ | | |
| change rules (they apply to the whole district) | ✓ | | | | |
| change the duty roster (a supervisor with a town: that town's shifts only) | ✓ | ✓ | | | |
| rivers, segments (JSON and GeoJSON); chiefs, patrols, tracks, issues, photos — *scoped* | ✓ | ✓ | ✓ | ✓ | ✓ |
| `chiefs/me` (the signed-in chief's record) | | | | ✓ | |
| start a patrol, upload points and photos, finish; report and rectify an issue — *scoped* | ✓ | ✓ | | ✓ | |
| assign an issue, review a rectification — *scoped* | ✓ | ✓ | | | |
| compliance and issue statistics (a town supervisor: their town) | ✓ | ✓ | ✓ | | ✓ |
| `GET /api/v1/bulletin` (JSON, `?format=csv`) | anyone, no login | | | | |

*Scoped*: a chief sees and writes only their own patrols and the issues they found or that are assigned to them
(`assignee` = their chief id); a supervisor with a town only that town's chiefs, patrols and issues; the others the
whole district. An object out of scope answers 404, like a missing one. A step an issue's state does not allow is
a 409; photos: 413 when too large, 415 when not a JPEG, PNG or WebP.
"""


DOCS_ASSETS = "/docs/static"


def install_docs(app: FastAPI) -> None:
    """Swagger UI at /docs from the swagger-ui-bundle package's files: nothing is loaded from outside."""
    import swagger_ui_bundle
    from fastapi.openapi.docs import get_swagger_ui_html, get_swagger_ui_oauth2_redirect_html
    from fastapi.responses import HTMLResponse
    from fastapi.staticfiles import StaticFiles

    app.mount(DOCS_ASSETS, StaticFiles(directory=swagger_ui_bundle.swagger_ui_path), name="docs-static")

    @app.get("/docs", include_in_schema=False)
    def docs() -> HTMLResponse:
        return get_swagger_ui_html(openapi_url="/openapi.json", title=f"{app.title} - Swagger UI",
                                   oauth2_redirect_url="/docs/oauth2-redirect",
                                   swagger_js_url=f"{DOCS_ASSETS}/swagger-ui-bundle.js",
                                   swagger_css_url=f"{DOCS_ASSETS}/swagger-ui.css",
                                   swagger_favicon_url=f"{DOCS_ASSETS}/favicon-32x32.png")

    @app.get("/docs/oauth2-redirect", include_in_schema=False)
    def oauth2_redirect() -> HTMLResponse:
        return get_swagger_ui_oauth2_redirect_html()


def create_app(settings: Settings, registry: Registry | None = None,
               store: TimeSeriesStore | None = None, stream: bool = True, clock: Clock = SYSTEM_CLOCK) -> FastAPI:
    """Build the API. Opens the registry and the store from ``settings`` when they are not given and then closes
    them on shutdown; ones passed in belong to the caller. Creating the registry schema is the caller's job.
    The users live in the registry (``core.registry.users``); the token secret is SMARTWATER_AUTH_SECRET or
    ``data_dir/auth_secret``, created on first use (``core.auth.load_secret``).

    ``stream``: run the alert stream (``api.stream.AlertStream``, MQTT ``water/alerts/#`` → SSE) while the app
    runs. It starts with the app whether or not the broker can be reached, and keeps reconnecting; pass False
    where nothing needs it (``/api/v1/alerts/stream`` then answers 503).

    ``clock``: where "now" comes from for every date-dependent answer (default periods, due periods, back-dating
    checks, overdue issues); tests pass a ``core.clock.FixedClock``."""
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

    # docs_url=None: FastAPI's /docs loads Swagger UI from a CDN; install_docs serves it from the package.
    app = FastAPI(title="Smart-water monitoring API", version="1", description=DESCRIPTION,
                  docs_url=None, openapi_url="/openapi.json", redoc_url=None, lifespan=lifespan)
    install_docs(app)
    app.state.settings = settings
    app.state.registry = registry
    app.state.store = store
    app.state.clock = clock
    app.state.alert_stream = None  # set while the app runs with stream=True
    try:
        app.state.auth = Auth(settings, registry)  # the token secret; data_dir/auth_secret when not configured
    except BaseException:
        _close(owned)
        raise
    errors.install(app)
    app.add_middleware(BodyLimitMiddleware)  # outermost but for the catch-all 500: before any body is read
    app.include_router(health.router)
    app.include_router(dashboard.router)  # the dashboard's pages and files (public: they hold no data)
    common = {
        422: {"model": ValidationErrorOut, "description": "invalid input; `detail` says what and why"},
        503: {"model": ErrorOut, "description": "the registry or the time-series store cannot be reached"},
    }
    app.include_router(public_router, responses=common)
    app.include_router(api_router, responses=common)
    install_role_docs(app)
    return app
