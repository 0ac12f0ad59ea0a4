"""The whole pipeline against a private Mosquitto: publish → stored → alert raised → visible on the API."""

from __future__ import annotations

import json
import threading
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, HTTPServer

import httpx
import pytest

from alerts import AlertService
from api.server import ApiServer
from core.broker import free_port
from core.mqtt import MqttConsumer, Publisher, wait_for
from core.payload import encode
from core.timeutil import utcnow
from ingest import Ingestor
from tests.auth_util import auth_headers


class WebhookReceiver:
    def __init__(self):
        self.bodies: list[dict] = []
        received = self.bodies

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                received.append(json.loads(self.rfile.read(int(self.headers["content-length"]))))
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = HTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()


class AlertListener(MqttConsumer):
    def __init__(self, settings):
        super().__init__(settings, settings.mqtt_client_prefix + "-listener", [("water/alerts/#", 1)], persistent=False)
        self.got: list[tuple[str, dict]] = []

    def handle(self, msg):
        self.got.append((msg.topic, json.loads(msg.payload)))


@pytest.fixture
def pipeline(settings, registry, store, stations):
    hook = WebhookReceiver()
    settings = settings.model_copy(update={"webhook_urls": [hook.url]})
    listener = AlertListener(settings)
    listener.start()
    assert listener.wait_connected(10)
    parts = [Ingestor(settings, registry, store), AlertService(settings, registry, store),
             ApiServer(settings, registry, store, host="127.0.0.1", port=free_port())]
    for p in parts:
        p.start()
    assert parts[0].wait_connected(10) and parts[1].wait_connected(10)
    yield {"api": parts[2].url, "hook": hook, "listener": listener, "settings": settings,
           "auth": auth_headers(settings, registry, "wang", "duty", display_name="duty officer Wang")}
    for p in reversed(parts):
        p.stop()
    listener.stop()
    hook.close()


def test_reading_to_alert_on_the_api(pipeline, store):
    api, auth = pipeline["api"], pipeline["auth"]
    pub = Publisher(pipeline["settings"], pipeline["settings"].mqtt_client_prefix + "-rtu").start()
    ts = utcnow().replace(microsecond=0) - timedelta(minutes=1)
    # 11.7 m is above the test river's guaranteed level (11.5 m): a red alert.
    assert pub.wait_all_published([pub.publish("water/river/RV9001", encode(ts, {"water_level_m": 11.7,
                                                                                 "flow_m3s": 85.0}))])
    pub.stop()

    def alerts():
        return httpx.get(f"{api}/api/v1/alerts", params={"station_id": "RV9001"}, headers=auth).json()

    assert wait_for(lambda: len(alerts()) == 1, 15)
    alert = alerts()[0]
    assert (alert["severity"], alert["state"], alert["rule"], alert["value"]) == ("red", "active", "river_level", 11.7)
    assert alert["started_at"] == ts.isoformat()  # data time, not arrival time

    assert wait_for(lambda: len(store.latest(station_ids=["RV9001"])) == 2, 10)
    r = httpx.get(f"{api}/api/v1/stations/RV9001/readings", headers=auth,
                  params={"metric": "water_level_m", "start": (ts - timedelta(hours=1)).isoformat()})
    assert r.status_code == 200
    assert [p["value"] for p in r.json()["points"]] == [11.7]
    latest = httpx.get(f"{api}/api/v1/readings/latest", params={"kind": "river"}, headers=auth).json()
    assert "11.7" in json.dumps(latest)

    # Duty staff are told on both channels, once.
    assert wait_for(lambda: pipeline["hook"].bodies and pipeline["listener"].got, 10)
    assert [b["severity"] for b in pipeline["hook"].bodies] == ["red"]
    assert [(t, b["station_id"]) for t, b in pipeline["listener"].got] == [("water/alerts/red", "RV9001")]

    ack = httpx.post(f"{api}/api/v1/alerts/{alert['id']}/ack", json={"by": "duty officer Wang"}, headers=auth)
    assert ack.status_code == 200 and ack.json()["state"] == "acknowledged"
    assert alerts()[0]["acknowledged_by"] == "duty officer Wang"
    assert httpx.post(f"{api}/api/v1/alerts/999999/ack", headers=auth).status_code == 404
    assert httpx.post(f"{api}/api/v1/alerts/{alert['id']}/ack").status_code == 401  # no token, no ack
