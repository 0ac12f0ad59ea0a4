"""One router per resource, gathered under /api/v1 (the health check sits at the root).

``api_router``: every route needs a bearer token and declares the roles it admits (``api.auth.require``).
``public_router``: the few routes anyone may call (logging in; later the public bulletin). Keep it short.
"""

from fastapi import APIRouter

from api.routes import alerts, auth, dead_letters, health, readings, roster, rules, stations, stream
from api.schemas import ErrorOut

api_router = APIRouter(prefix="/api/v1", responses={
    401: {"model": ErrorOut, "description": "no token, or an invalid or expired one (`WWW-Authenticate: Bearer`)"},
    403: {"model": ErrorOut, "description": "the user's role may not do this"},
})
api_router.include_router(auth.router)
api_router.include_router(stations.router)
api_router.include_router(readings.router)
api_router.include_router(stream.router)  # before alerts: /alerts/stream is not an /alerts/{alert_id}
api_router.include_router(alerts.router)
api_router.include_router(dead_letters.router)
api_router.include_router(rules.router)
api_router.include_router(roster.router)

public_router = APIRouter(prefix="/api/v1")
public_router.include_router(auth.public)

__all__ = ["api_router", "health", "public_router"]
