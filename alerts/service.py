"""The alert service: consumes readings from MQTT as they arrive (one broker hop, not via the store)."""

from __future__ import annotations

import logging
import threading
from collections import Counter
from math import nan
from datetime import datetime
from typing import Callable

import paho.mqtt.client as mqtt

from alerts import metrics
from alerts.engine import AlertEngine
from alerts.notify import AlertNotifier
from alerts.scheduler import AlertScheduler
from core import topics
from core.catalog import StationCatalog
from core.domain import SEVERITY_ORDER
from core.logs import kv
from core.mqtt import MqttConsumer
from core.patrols.overdue import notify_overdue
from core.patrols.repo import PatrolRepo
from core.payload import Rejected, decode, is_reading_topic
from core.registry import Registry
from core.settings import Settings
from core.timeutil import utcnow
from core.tsdb import TimeSeriesStore

log = logging.getLogger("alerts")


class AlertService(MqttConsumer):
    def __init__(self, settings: Settings, registry: Registry, store: TimeSeriesStore,
                 client_id: str | None = None, catalog: StationCatalog | None = None) -> None:
        super().__init__(settings, client_id or f"{settings.mqtt_client_prefix}-alerts", [(topics.READINGS, 1)],
                         persistent=True, name="alerts")
        self.registry = registry
        self.store = store
        self.notifier = AlertNotifier(settings, registry)
        self.engine = AlertEngine(settings, registry, self.notifier, catalog)
        self.scheduler = AlertScheduler(settings, registry, self.notifier, store)
        # The engine's state is touched by paho's thread (readings) and the scheduler's (time checks).
        self._lock = threading.Lock()
        self.scheduler.every(30, lambda: self._at_data_clock(self.engine.check_stale), "stale", "stale-station check")
        self.scheduler.every(60, lambda: self._at_data_clock(self.engine.close_expired), "close",
                             "close cleared alerts after the reopen window")
        # Also without readings to trigger it: a reading of a station added since must find it known.
        self.scheduler.every(settings.station_refresh_s, self._refresh_stations, "stations",
                             "refresh the station catalogue")
        patrols = PatrolRepo(registry.engine, settings)
        self.scheduler.every(settings.issue_overdue_check_s, lambda: notify_overdue(patrols, self.notifier),
                             "overdue_issues", "notify river-chief issues past their deadline")
        self.readings_seen = 0

    def _at_data_clock(self, check: Callable[[datetime], int]) -> None:
        # Against the data clock (the newest data time from any station), not the wall clock: a station
        # is stale when the others have moved on without it. That holds for live data, replays and the
        # accelerated demo alike; a silence of the whole district shows in ingest's health and data lag.
        with self._lock:
            clock = self.engine.data_clock
            if clock is not None:
                check(clock)

    def _refresh_stations(self) -> None:
        try:
            self.engine.catalog.refresh_if_due()  # the registry query outside the lock: readings keep flowing
        except Exception:  # noqa: BLE001 - keep the stations we have; the next run tries again
            log.warning("station refresh failed; keeping the previous stations", exc_info=True)
        with self._lock:
            self.engine.refresh_stations()

    def _open_by_severity(self) -> dict[str, int]:
        with self._lock:
            return dict(Counter(alert.severity for alert in self.engine.open.values()))

    def _data_clock(self) -> datetime | None:
        with self._lock:  # paho's thread updates what it is computed from
            return self.engine.data_clock

    @staticmethod
    def _lag_s(clock: datetime | None) -> float | None:
        return None if clock is None else round((utcnow() - clock).total_seconds(), 1)

    def health(self) -> dict:
        """For /healthz: ok while subscribed; what the engine holds and how far behind the data is."""
        clock = self._data_clock()
        return {
            "status": "failed" if self.subscribe_refused else "ok" if self.connected.is_set() else "connecting",
            "connected": self.connected.is_set(),
            "client_id": self.client_id,
            "stations": len(self.engine.stations),
            "readings_evaluated": self.readings_seen,
            "registry_write_failures": self.engine.write_failures,
            "open_alerts": self._open_by_severity(),
            "data_clock": None if clock is None else clock.isoformat(),
            "data_lag_s": self._lag_s(clock),
        }

    def start(self) -> None:
        self.engine.load()
        n = self.engine.refill(self.store, utcnow())
        log.info("alert engine ready", extra=kv(stations=len(self.engine.stations), open_alerts=len(self.engine.open),
                                                 refilled_rain_readings=n))
        self.notifier.start()
        self.scheduler.start()
        # Read when Prometheus scrapes, so the gauges are current without a job to keep them so.
        for severity in SEVERITY_ORDER:
            metrics.OPEN_ALERTS.labels(severity).set_function(lambda s=severity: self._open_by_severity().get(s, 0))
        metrics.LAG.set_function(lambda: nan if (lag := self._lag_s(self._data_clock())) is None else lag)
        metrics.WRITE_FAILURES.set_function(lambda: self.engine.write_failures)
        super().start()

    def stop(self) -> None:
        super().stop()
        self.scheduler.stop()  # first, so no job sends into a notifier that is closing
        self.notifier.drain()
        self.notifier.stop()

    def _decode(self, msg: mqtt.MQTTMessage, stations) -> list:  # noqa: ANN001
        return decode(msg.topic, msg.payload, stations, utcnow(), max_bytes=self.settings.ingest_max_payload_bytes,
                      max_future_s=self.settings.ingest_max_future_s)

    def handle(self, msg: mqtt.MQTTMessage) -> None:
        if not is_reading_topic(msg.topic):
            return
        catalog = self.engine.catalog
        try:
            try:
                readings = self._decode(msg, catalog.stations)
            except Rejected as rej:
                # A station registered since the catalogue's last load: look again (at most every few seconds).
                if rej.reason != "unknown_station" or not catalog.refresh_for_unknown(msg.topic.rsplit("/", 1)[-1]):
                    raise
                readings = self._decode(msg, catalog.stations)
        except Rejected:
            return  # ingest records it as a dead letter
        with self._lock:
            self.engine.process(readings)
        self.readings_seen += len(readings)  # after: "seen" means evaluated, which is what waiting callers need
        if readings:
            metrics.READINGS.labels(readings[0].kind).inc(len(readings))
