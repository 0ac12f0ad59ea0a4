"""One router per resource, gathered under /api/v1 (the health check sits at the root)."""

from fastapi import APIRouter

from api.routes import alerts, dead_letters, health, readings, roster, rules, stations, stream

api_router = APIRouter(prefix="/api/v1")
api_router.include_router(stations.router)
api_router.include_router(readings.router)
api_router.include_router(stream.router)  # before alerts: /alerts/stream is not an /alerts/{alert_id}
api_router.include_router(alerts.router)
api_router.include_router(dead_letters.router)
api_router.include_router(rules.router)
api_router.include_router(roster.router)

__all__ = ["api_router", "health"]
