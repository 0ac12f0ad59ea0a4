"""Notification channels: the MQTT topic water/alerts/{severity} and webhooks from settings.

Sending happens on a worker thread so a slow webhook never holds up evaluation; every attempt is
recorded in the alert's event history.
"""

from __future__ import annotations

import json
import logging
import queue
import threading
import time
from typing import Any

import httpx

from core.domain import Alert
from core.logs import kv
from core.mqtt import Publisher
from core.registry import Registry
from core.settings import Settings
from core.timeutil import iso

log = logging.getLogger("alerts.notify")

WEBHOOK_ATTEMPTS = 3


def alert_payload(alert: Alert, event: str) -> dict[str, Any]:
    return {
        "event": event, "id": alert.id, "station_id": alert.station_id, "kind": alert.kind, "rule": alert.rule,
        "metric": alert.metric, "severity": alert.severity, "state": alert.state,
        "started_at": iso(alert.started_at), "updated_at": iso(alert.updated_at), "value": alert.value,
        "threshold": alert.threshold, "message": alert.message,
    }


class AlertNotifier:
    def __init__(self, settings: Settings, registry: Registry) -> None:
        self.settings = settings
        self.registry = registry
        self._q: queue.Queue[tuple[dict[str, Any], str] | None] = queue.Queue()
        self._thread: threading.Thread | None = None
        self._publisher: Publisher | None = None
        self._http = httpx.Client(timeout=settings.webhook_timeout_s)
        self.sent = 0

    def start(self) -> None:
        self._publisher = Publisher(self.settings, f"{self.settings.mqtt_client_prefix}-alerts-notify")
        try:
            self._publisher.start()
        except ConnectionError:
            log.warning("MQTT notifications unavailable at start; will keep trying", exc_info=True)
        self._thread = threading.Thread(target=self._run, name="alerts-notify", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._q.put(None)
        if self._thread:
            self._thread.join(timeout=15)
        if self._publisher:
            self._publisher.stop()
        self._http.close()

    def notify(self, alert: Alert, event: str) -> None:
        # Snapshot now: the engine keeps mutating the alert.
        self._q.put((alert_payload(alert, event), alert.severity))

    def drain(self, timeout: float = 10.0) -> bool:
        deadline = time.monotonic() + timeout
        while self._q.unfinished_tasks and time.monotonic() < deadline:
            time.sleep(0.02)
        return not self._q.unfinished_tasks

    def _run(self) -> None:
        while True:
            item = self._q.get()
            try:
                if item is None:
                    return
                payload, severity = item
                body = json.dumps(payload, ensure_ascii=False).encode()
                self._send_mqtt(payload, severity, body)
                for url in self.settings.webhook_urls:
                    self._send_webhook(payload, url, body)
            except Exception:  # noqa: BLE001 - one bad notification must not stop the others
                log.exception("notification failed")
            finally:
                self._q.task_done()

    def _send_mqtt(self, payload: dict[str, Any], severity: str, body: bytes) -> None:
        topic = f"water/alerts/{severity}"
        ok = False
        if self._publisher is not None:
            info = self._publisher.publish(topic, body, qos=1)
            ok = info.rc == 0
        self._record(payload, f"mqtt {topic}", ok, "" if ok else "broker not connected")

    def _send_webhook(self, payload: dict[str, Any], url: str, body: bytes) -> None:
        delay = 0.5
        for attempt in range(1, WEBHOOK_ATTEMPTS + 1):
            try:
                resp = self._http.post(url, content=body, headers={"content-type": "application/json"})
                ok = resp.status_code < 300
                detail = f"HTTP {resp.status_code}"
            except httpx.HTTPError as exc:
                ok, detail = False, f"{type(exc).__name__}: {exc}"[:300]
            self._record(payload, f"webhook {url} attempt {attempt}", ok, detail)
            if ok:
                return
            time.sleep(delay)
            delay *= 2
        log.error("webhook gave up", extra=kv(url=url, alert=payload["id"]))

    def _record(self, payload: dict[str, Any], channel: str, ok: bool, detail: str) -> None:
        if ok:
            self.sent += 1
        self.registry.add_alert_event(payload["id"], "notified" if ok else "notify_failed", payload["severity"],
                                      None, f"{payload['event']} via {channel} {detail}".strip())
