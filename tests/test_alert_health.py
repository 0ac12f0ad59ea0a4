"""The alert stage's /healthz and /metrics (compose's health check and Prometheus target for `alerts`)."""

from __future__ import annotations

import httpx

from alerts import AlertService
from core.broker import free_port
from core.health import HealthServer
from core.mqtt import Publisher, wait_for
from core.payload import encode
from core.timeutil import utcnow


def test_alert_health_and_metrics(settings, registry, store, stations):
    service = AlertService(settings, registry, store)
    server = HealthServer("127.0.0.1", free_port(), service.health, name="alerts-metrics")
    server.start()
    base = f"http://127.0.0.1:{server.port}"
    try:
        before = httpx.get(f"{base}/healthz", timeout=5)
        assert before.status_code == 503 and before.json()["status"] == "connecting"  # not subscribed yet
        service.start()
        assert service.wait_connected(10)
        pub = Publisher(settings, settings.mqtt_client_prefix + "-rtu").start()
        try:
            # a river 0.5 m over its guaranteed level: one reading evaluated, one red alert open
            level = stations["RV9001"].guaranteed_level_m + 0.5
            assert pub.wait_all_published([pub.publish("water/river/RV9001", encode(utcnow(), {"water_level_m": level}))], 10)
        finally:
            pub.stop()
        assert wait_for(lambda: service.readings_seen == 1, 10)
        # /metrics first: the gauges are read when scraped, not left over from a /healthz call
        metrics = httpx.get(f"{base}/metrics", timeout=5).text
        assert 'smartwater_alerts_readings_evaluated_total{kind="river"}' in metrics
        assert 'smartwater_alerts_open{severity="red"} 1.0' in metrics
        assert "smartwater_alerts_registry_write_failures 0.0" in metrics
        h = httpx.get(f"{base}/healthz", timeout=5)
        body = h.json()
        assert h.status_code == 200 and body["status"] == "ok" and body["stations"] == len(stations)
        assert body["readings_evaluated"] == 1 and body["registry_write_failures"] == 0
        assert body["open_alerts"] == {"red": 1} and 0 <= body["data_lag_s"] < 60
        assert httpx.get(f"{base}/nothing", timeout=5).status_code == 404
    finally:
        service.stop()
        server.stop()
