"""Alert lifecycle: one open alert per (station, rule), escalated in place, cleared when the condition ends.

Alert times are data times (the reading's timestamp), so replayed history alerts at the right moments.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from datetime import datetime, timedelta
from typing import Iterable, Protocol

from alerts import rules
from alerts.windows import RainWindow
from core.domain import SEVERITY_ORDER, Alert, AlertState, Reading, Station
from core.logs import kv
from core.registry import Registry
from core.settings import Settings
from core.timeutil import from_ms, zone
from core.tsdb import TimeSeriesStore

log = logging.getLogger("alerts")


class Notifier(Protocol):
    def notify(self, alert: Alert, event: str) -> None: ...


def _rank(severity: str) -> int:
    return SEVERITY_ORDER.index(severity)


class AlertEngine:
    def __init__(self, settings: Settings, registry: Registry, notifier: Notifier) -> None:
        self.settings = settings
        self.registry = registry
        self.notifier = notifier
        self.tz = zone(settings.display_timezone)
        self.stations: dict[str, Station] = {}
        self.rain: dict[str, RainWindow] = defaultdict(RainWindow)
        self.open: dict[tuple[str, str], Alert] = {}
        self._last_ts: dict[tuple[str, str], datetime] = {}

    def load(self) -> None:
        self.stations = {s.id: s for s in self.registry.list_stations()}
        self.open = {(a.station_id, a.rule): a for a in self.registry.open_alerts()}

    def refill(self, store: TimeSeriesStore, now: datetime) -> int:
        """Reload rain windows from the store so a restart mid-storm keeps its accumulations."""
        n = 0
        start = now - timedelta(hours=max(rules.RAIN_WINDOWS_H))
        for st in self.stations.values():
            if st.kind.value != "rain":
                continue
            for r in store.query(st.id, "rain_mm", start, now + timedelta(minutes=10), limit=100_000):
                self.rain[st.id].add(r.ts, r.value)
                n += 1
        return n

    def process(self, readings: Iterable[Reading]) -> None:
        rain_touched: set[str] = set()
        for r in readings:
            st = self.stations.get(r.station_id)
            if st is None:
                continue
            if r.metric == "rain_mm":
                self.rain[r.station_id].add(r.ts, r.value)
                rain_touched.add(r.station_id)
                continue
            entry = rules.POINT_RULES.get((r.kind, r.metric))
            if entry is None:
                continue
            name, fn = entry
            if name == "reservoir_level":
                verdict = fn(st, r, self.tz, self.settings.alerts_reservoir_design_margin_m)
            else:
                verdict = fn(st, r)
            self._apply(st, name, r.metric, r.ts, r.value, verdict)
        for sid in rain_touched:
            window = self.rain[sid]
            at = from_ms(window.latest)
            sums = window.sums(at, rules.RAIN_WINDOWS_H)
            verdict = rules.rainstorm(self.stations[sid], sums)
            hours = next((h for sev, h, _ in rules.RAINSTORM_SIGNALS if sev == verdict.severity), 3)
            self._apply(self.stations[sid], rules.RAINSTORM_RULE, "rain_mm", at, round(sums[hours], 3), verdict)

    def _apply(self, st: Station, rule: str, metric: str, ts: datetime, value: float, verdict: rules.Verdict) -> None:
        key = (st.id, rule)
        last = self._last_ts.get(key)
        if last is not None and ts < last:
            return  # an older reading arriving late must not undo a newer state
        self._last_ts[key] = ts
        alert = self.open.get(key)
        if verdict.severity is None:
            if alert is not None:
                self._clear(alert, ts, value)
            return
        if alert is None:
            alert = Alert(station_id=st.id, kind=st.kind.value, rule=rule, metric=metric, severity=verdict.severity,
                          state=AlertState.active.value, started_at=ts, updated_at=ts, value=value,
                          threshold=verdict.threshold, message=verdict.message)
            self.registry.insert_alert(alert)
            self.open[key] = alert
            log.info("alert raised", extra=kv(id=alert.id, station=st.id, rule=rule, severity=alert.severity,
                                              value=value, data_time=ts.isoformat()))
            self.notifier.notify(alert, "raised")
        elif _rank(verdict.severity) > _rank(alert.severity):
            previous = alert.severity
            alert.severity, alert.threshold, alert.message = verdict.severity, verdict.threshold, verdict.message
            alert.value, alert.updated_at = value, ts
            # An escalation needs fresh eyes even if the milder alert was acknowledged.
            alert.state = AlertState.active.value
            self.registry.save_alert(alert, "escalated", ts, f"{previous} → {alert.severity}")
            log.info("alert escalated", extra=kv(id=alert.id, station=st.id, rule=rule, severity=alert.severity,
                                                 data_time=ts.isoformat()))
            self.notifier.notify(alert, "escalated")
        else:
            alert.value = value  # keep the severity: dropping a level is not an all-clear

    def _clear(self, alert: Alert, ts: datetime, value: float) -> None:
        alert.state, alert.cleared_at, alert.updated_at, alert.value = AlertState.cleared.value, ts, ts, value
        self.registry.save_alert(alert, "cleared", ts, "condition ended")
        del self.open[(alert.station_id, alert.rule)]
        log.info("alert cleared", extra=kv(id=alert.id, station=alert.station_id, rule=alert.rule,
                                           data_time=ts.isoformat()))
        self.notifier.notify(alert, "cleared")
