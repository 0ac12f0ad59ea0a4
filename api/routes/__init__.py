"""One router per resource, gathered under /api/v1 (the health check sits at the root)."""

from fastapi import APIRouter

from api.routes import alerts, dead_letters, health, readings, stations

api_router = APIRouter(prefix="/api/v1")
api_router.include_router(stations.router)
api_router.include_router(readings.router)
api_router.include_router(alerts.router)
api_router.include_router(dead_letters.router)

__all__ = ["api_router", "health"]
