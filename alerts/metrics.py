"""Prometheus metrics of the alert process (served with /healthz by ``core.health.HealthServer``)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge

READINGS = Counter("smartwater_alerts_readings_evaluated", "Readings evaluated by the alert engine", ["kind"])
OPEN_ALERTS = Gauge("smartwater_alerts_open", "Alerts active or acknowledged, by severity", ["severity"])
# How far behind the wall clock the newest reading the engine has seen is; grows if the stage falls behind.
LAG = Gauge("smartwater_alerts_data_lag_seconds", "Wall time minus the newest data time the engine has seen")
# Alert transitions the registry refused (each is made again by the station's next reading): anything above 0
# means the registry was locked or unreachable and alerts may have come late.
WRITE_FAILURES = Gauge("smartwater_alerts_registry_write_failures",
                       "Alert transitions the registry refused since the process started")
