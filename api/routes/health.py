"""Liveness and readiness: can the registry and the store be reached."""

from __future__ import annotations

import logging

from fastapi import APIRouter, Response
from sqlalchemy import text

from api.deps import RegistryDep, StoreDep
from api.schemas import Health, HealthChecks
from core.logs import kv
from core.registry import Registry
from core.tsdb import TimeSeriesStore

log = logging.getLogger("api")
router = APIRouter(tags=["health"])


def _registry_ok(registry: Registry) -> bool:
    try:
        ping = getattr(registry, "ping", None)
        if callable(ping):
            return bool(ping())
        with registry.engine.connect() as conn:
            conn.execute(text("SELECT 1"))
        return True
    except Exception as exc:  # any failure means "not reachable"; say why in the log
        log.warning("registry health check failed", extra=kv(error=str(exc)))
        return False


def _store_ok(store: TimeSeriesStore) -> bool:
    try:
        return bool(store.ping())
    except Exception as exc:
        log.warning("store health check failed", extra=kv(error=str(exc)))
        return False


@router.get("/healthz", response_model=Health, summary="Health check",
            responses={503: {"model": Health, "description": "a backend cannot be reached"}})
def healthz(registry: RegistryDep, store: StoreDep, response: Response) -> Health:
    checks = HealthChecks(registry=_registry_ok(registry), store=_store_ok(store))
    ok = checks.registry and checks.store
    if not ok:
        response.status_code = 503
    return Health(status="ok" if ok else "degraded", checks=checks)
