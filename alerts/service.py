"""The alert service: consumes readings from MQTT as they arrive (one broker hop, not via the store)."""

from __future__ import annotations

import logging

import paho.mqtt.client as mqtt

from alerts.engine import AlertEngine
from alerts.notify import AlertNotifier
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
        self.readings_seen = 0

    def start(self) -> None:
        self.engine.load()
        n = self.engine.refill(self.store, utcnow())
        log.info("alert engine ready", extra=kv(stations=len(self.engine.stations), open_alerts=len(self.engine.open),
                                                 refilled_rain_readings=n))
        self.notifier.start()
        super().start()

    def stop(self) -> None:
        super().stop()
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
        self.engine.process(readings)
