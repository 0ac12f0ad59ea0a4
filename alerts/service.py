"""The alert service: consumes readings from MQTT as they arrive (one broker hop, not via the store)."""

from __future__ import annotations

import logging
import threading

import paho.mqtt.client as mqtt

from alerts.engine import AlertEngine
from alerts.notify import AlertNotifier
from alerts.scheduler import AlertScheduler
from core.logs import kv
from core.mqtt import MqttConsumer
from core.payload import Rejected, decode, is_reading_topic
from core.registry import Registry
from core.settings import Settings
from core.timeutil import utcnow
from core.tsdb import TimeSeriesStore

log = logging.getLogger("alerts")


class AlertService(MqttConsumer):
    def __init__(self, settings: Settings, registry: Registry, store: TimeSeriesStore,
                 client_id: str | None = None) -> None:
        super().__init__(settings, client_id or f"{settings.mqtt_client_prefix}-alerts", [("water/+/+", 1)],
                         persistent=True, name="alerts")
        self.registry = registry
        self.store = store
        self.notifier = AlertNotifier(settings, registry)
        self.engine = AlertEngine(settings, registry, self.notifier)
        self.scheduler = AlertScheduler(settings, registry, self.notifier, store)
        # The engine's state is touched by paho's thread (readings) and the scheduler's (time checks).
        self._lock = threading.Lock()
        self.scheduler.every(30, self._check_stale, "stale", "stale-station check")
        self.scheduler.every(60, self._close_expired, "close", "close cleared alerts after the reopen window")
        self.readings_seen = 0

    def _check_stale(self) -> None:
        # Against the data clock (the newest data time from any station), not the wall clock: a station
        # is stale when the others have moved on without it. That holds for live data, replays and the
        # accelerated demo alike; a silence of the whole district shows in ingest's health and data lag.
        with self._lock:
            clock = self.engine.data_clock
            if clock is not None:
                self.engine.check_stale(clock)

    def _close_expired(self) -> None:
        with self._lock:
            clock = self.engine.data_clock
            if clock is not None:
                self.engine.close_expired(clock)

    def start(self) -> None:
        self.engine.load()
        n = self.engine.refill(self.store, utcnow())
        log.info("alert engine ready", extra=kv(stations=len(self.engine.stations), open_alerts=len(self.engine.open),
                                                 refilled_rain_readings=n))
        self.notifier.start()
        self.scheduler.start()
        super().start()

    def stop(self) -> None:
        super().stop()
        self.scheduler.stop()  # first, so no job sends into a notifier that is closing
        self.notifier.drain()
        self.notifier.stop()

    def handle(self, msg: mqtt.MQTTMessage) -> None:
        if not is_reading_topic(msg.topic):
            return
        try:
            readings = decode(msg.topic, msg.payload, self.engine.stations, utcnow(),
                              max_bytes=self.settings.ingest_max_payload_bytes,
                              max_future_s=self.settings.ingest_max_future_s)
        except Rejected:
            return  # ingest records it as a dead letter
        self.readings_seen += len(readings)
        with self._lock:
            self.engine.process(readings)
