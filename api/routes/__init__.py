"""One router per resource, gathered under /api/v1 (the health check sits at the root).

``api_router``: every route needs a bearer token and declares the roles it admits (``api.auth.require``).
``public_router``: the few routes anyone may call (logging in, the river-chief bulletin). Keep it short.
"""

from fastapi import APIRouter

from api.routes import alerts, auth, dashboard, dead_letters, health, overview, readings, roster, rules, stations, stream
from api.routes import bulletin, chiefs, compliance, devices, issues, patrols, photos, reports, rivers, users
from api.schemas import ErrorOut

api_router = APIRouter(prefix="/api/v1", responses={
    401: {"model": ErrorOut, "description": "no token, or an invalid or expired one (`WWW-Authenticate: Bearer`)"},
    403: {"model": ErrorOut, "description": "the user's role may not do this"},
})
api_router.include_router(auth.router)
api_router.include_router(users.router)
api_router.include_router(stations.router)
api_router.include_router(readings.router)
api_router.include_router(stream.router)  # before alerts: /alerts/stream is not an /alerts/{alert_id}
api_router.include_router(alerts.router)
api_router.include_router(dead_letters.router)
api_router.include_router(rules.router)
api_router.include_router(roster.router)
api_router.include_router(devices.router)  # field devices of the gateway (SL 651, HJ 212)
# River chiefs: object-level scope in api.routes.patrol_scope.
api_router.include_router(rivers.router)
api_router.include_router(chiefs.router)
api_router.include_router(photos.router)  # before patrols and issues: /patrols/{id}/photos is not a patrol route
api_router.include_router(patrols.router)
api_router.include_router(issues.router)
api_router.include_router(compliance.router)
api_router.include_router(overview.router)
api_router.include_router(reports.router)  # rain events, areal rainfall, inflow, history (core.reports)

public_router = APIRouter(prefix="/api/v1")
public_router.include_router(auth.public)
public_router.include_router(bulletin.router)

__all__ = ["api_router", "dashboard", "health", "public_router"]
