"""Alert lifecycle over rules-as-data.

One alert per (station, rule) at a time: raised when a rule's condition has held for its minimum
duration, escalated in place when the severity rises (and notified again), cleared when the value is
back past the threshold by the hysteresis band, reopened — not duplicated — if the condition returns
within the reopen window, and closed after that window. Alert times are data times (the reading's
timestamp), so replayed history alerts at the moments it would have.
"""

from __future__ import annotations

import logging
import time
from collections import defaultdict
from datetime import datetime, timedelta
from typing import Iterable, Protocol

from alerts.evaluate import Verdict, evaluate_point, evaluate_rain, haversine_km, rain_windows
from alerts.windows import SeriesWindow
from core.domain import SEVERITY_ORDER, Alert, AlertState, Reading, Station
from core.logs import kv
from core.registry import Registry
from core.rules import Rule, RuleType
from core.settings import Settings
from core.timeutil import from_ms, zone
from core.tsdb import TimeSeriesStore

log = logging.getLogger("alerts")

HISTORY_TYPES = (RuleType.rate_of_rise, RuleType.spike, RuleType.stuck)
RULES_RELOAD_S = 30.0


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
        self.reopen = timedelta(seconds=settings.alerts_reopen_s)
        self.stations: dict[str, Station] = {}
        self.rules: list[Rule] = []
        self._by_metric: dict[tuple[str, str], list[Rule]] = {}
        self._torrent: list[Rule] = []
        self._stale: list[Rule] = []
        self._history: set[tuple[str, str]] = set()  # (kind, metric) whose series must be kept
        self._rain_hours: tuple[int, ...] = (1, 3, 6, 12, 24)
        self._gauge_villages: dict[str, list[Station]] = {}
        self.series: dict[tuple[str, str], SeriesWindow] = {}
        self.open: dict[tuple[str, str], Alert] = {}
        self.cleared: dict[tuple[str, str], Alert] = {}  # within the reopen window
        self.last_seen: dict[str, datetime] = {}
        self._last_ts: dict[tuple[str, str], datetime] = {}
        self._pending: dict[tuple[str, str], datetime] = {}  # condition true since (for min_duration)
        self._rules_loaded_at = 0.0
        self._safe: dict[tuple[str, str], float | None] = {}  # (station, rule) → value below which it cannot fire

    # -- state ------------------------------------------------------------
    def load(self) -> None:
        self.stations = {s.id: s for s in self.registry.list_stations()}
        self.load_rules()
        for a in self.registry.open_alerts():
            self.open[(a.station_id, a.rule)] = a
        for a in self.registry.list_alerts(state=AlertState.cleared.value, limit=10_000):
            self.cleared[(a.station_id, a.rule)] = a
        gauges = [s for s in self.stations.values() if s.kind.value == "rain"]
        self._gauge_villages = defaultdict(list)
        if gauges:
            for v in self.stations.values():
                if v.kind.value == "village_water":
                    near = min(gauges, key=lambda g: haversine_km(v.lat, v.lon, g.lat, g.lon))
                    self._gauge_villages[near.id].append(v)

    def load_rules(self) -> None:
        rules = self.registry.list_rules(enabled=True)
        if not rules and not self.registry.list_rules():
            from core.rules import default_rules

            rules = [r for r in default_rules() if r.enabled]  # a registry nobody configured yet
        by_metric: dict[tuple[str, str], list[Rule]] = defaultdict(list)
        torrent, stale, history = [], [], {("rain", "rain_mm")}
        for r in rules:
            if r.type == RuleType.stale:
                stale.append(r)
            elif r.type == RuleType.rain_sum and r.station_kind.value == "village_water":
                torrent.append(r)
            else:
                by_metric[(r.station_kind.value, r.metric)].append(r)
            if r.type in HISTORY_TYPES:
                history.add((r.station_kind.value, r.metric))
        self.rules, self._by_metric, self._torrent, self._stale = rules, dict(by_metric), torrent, stale
        self._history = history
        self._rain_hours = rain_windows([r for r in rules if r.type == RuleType.rain_sum])
        self._safe = {}
        self._rules_loaded_at = time.monotonic()

    def _safe_bound(self, st: Station, rule: Rule) -> float | None:
        """For threshold and reference-level rules: a value on the safe side of this (by more than the
        hysteresis band) cannot raise or hold anything, so evaluation can be skipped. None: always evaluate."""
        key = (st.id, rule.name)
        if key in self._safe:
            return self._safe[key]
        bound = None
        if rule.type == RuleType.threshold:
            lowest = rule.levels[0].value
            bound = lowest - rule.hysteresis if rule.direction == "above" else -(lowest + rule.hysteresis)
        elif rule.type == RuleType.reference_level:
            if st.kind.value == "reservoir":
                limits = [st.flood_limit_level_m, st.check_flood_level_m]
                limits += [p.level_m for p in st.flood_limit_periods or ()]
                if st.design_flood_level_m is not None:
                    limits.append(st.design_flood_level_m - float(rule.params.get(
                        "design_margin_m", self.settings.alerts_reservoir_design_margin_m)))
            else:
                limits = [st.warning_level_m, st.guaranteed_level_m]
            known = [x for x in limits if x is not None]
            bound = min(known) - rule.hysteresis if known else None
        self._safe[key] = bound
        return bound

    def _window(self, station_id: str, metric: str) -> SeriesWindow:
        key = (station_id, metric)
        w = self.series.get(key)
        if w is None:
            w = self.series[key] = SeriesWindow(keep_h=max(self._rain_hours) if metric == "rain_mm" else 24)
        return w

    def refill(self, store: TimeSeriesStore, now: datetime) -> int:
        """Reload windows from the store so a restart mid-storm keeps its sums and rates."""
        n = 0
        start = now - timedelta(hours=max(self._rain_hours))
        for st in self.stations.values():
            kind = st.kind.value
            for k, metric in self._history:
                if k != kind:
                    continue
                since = start if metric == "rain_mm" else now - timedelta(hours=6)
                for r in store.query(st.id, metric, since, now + timedelta(minutes=10), limit=100_000):
                    self._window(st.id, metric).add(r.ts, r.value)
                    n += 1
        for r in store.latest():
            if r.station_id in self.stations and r.ts > self.last_seen.get(r.station_id, r.ts - timedelta(1)):
                self.last_seen[r.station_id] = r.ts
        return n

    # -- readings ---------------------------------------------------------
    def process(self, readings: Iterable[Reading]) -> None:
        if time.monotonic() - self._rules_loaded_at > RULES_RELOAD_S:
            self.load_rules()
        rain_touched: set[str] = set()
        for r in readings:
            st = self.stations.get(r.station_id)
            if st is None:
                continue
            seen = self.last_seen.get(st.id)
            if seen is None or r.ts > seen:
                self.last_seen[st.id] = r.ts
            if self._stale:
                self._clear_stale(st, r.ts)
            kind = st.kind.value
            series = self._window(st.id, r.metric) if (kind, r.metric) in self._history else None
            if series is not None:
                series.add(r.ts, r.value)
            if r.metric == "rain_mm":
                rain_touched.add(st.id)
                continue
            for rule in self._by_metric.get((kind, r.metric), ()):
                if rule.station_ids is not None and st.id not in rule.station_ids:
                    continue
                bound = self._safe_bound(st, rule)
                if bound is not None:
                    key = (st.id, rule.name)
                    signed = r.value if rule.direction == "above" or rule.type != RuleType.threshold else -r.value
                    if signed <= bound and key not in self.open and key not in self._pending \
                            and key not in self.cleared:
                        last = self._last_ts.get(key)
                        if last is None or r.ts > last:
                            self._last_ts[key] = r.ts
                        continue  # nothing to raise, hold, clear or close
                verdict = evaluate_point(rule, st, r.ts, r.value, series, self.tz,
                                         self.settings.alerts_reservoir_design_margin_m)
                if verdict is not None:
                    self._apply(st, rule, r.metric, r.ts, verdict)
        for sid in rain_touched:
            self._rain(self.stations[sid])

    def _rain(self, gauge: Station) -> None:
        window = self.series[(gauge.id, "rain_mm")]
        at_ms = window.latest
        at = from_ms(at_ms)
        sums = window.sums(at_ms, self._rain_hours)
        for rule in self._by_metric.get(("rain", "rain_mm"), ()):
            if rule.applies_to(gauge.id, "rain"):
                self._apply(gauge, rule, "rain_mm", at, evaluate_rain(rule, gauge, sums))
        for rule in self._torrent:
            per = rule.params.get("per_station") or {}
            for village in self._gauge_villages.get(gauge.id, ()):
                if rule.applies_to(village.id, "village_water"):
                    self._apply(village, rule, "rain_mm", at, evaluate_rain(rule, village, sums, per.get(village.id)))

    # -- time-driven checks (the scheduler calls these) --------------------
    def check_stale(self, now: datetime) -> int:
        """Raise stale-station alerts; the data time is when the station became overdue."""
        raised = 0
        for rule in self._stale:
            limit = float(rule.params["intervals"])
            for st in self.stations.values():
                if not rule.applies_to(st.id, st.kind.value) or (st.id, rule.name) in self.open:
                    continue
                last = self.last_seen.get(st.id)
                if last is None:
                    continue  # never reported since we started: nothing to compare with yet
                overdue = last + timedelta(seconds=limit * st.interval_s)
                if now > overdue:
                    silent = (now - last).total_seconds()
                    sev = rule.levels[0].severity.value
                    self._apply(st, rule, "", overdue, Verdict(sev, sev, silent, limit * st.interval_s,
                                f"{st.name}: no data for {silent / 60:.0f} min ({limit:g} reporting intervals)"))
                    raised += 1
        return raised

    def _clear_stale(self, st: Station, ts: datetime) -> None:
        for rule in self._stale:
            if (st.id, rule.name) in self.open:
                self._apply(st, rule, "", ts, Verdict(None, None, 0.0))

    @property
    def data_clock(self) -> datetime | None:
        """The newest data time seen from any station."""
        return max(self.last_seen.values(), default=None)

    def close_expired(self, now: datetime) -> int:
        """Close cleared alerts whose reopen window has passed (data time ``now``)."""
        done = [k for k, a in self.cleared.items() if a.cleared_at is None or now - a.cleared_at > self.reopen]
        for key in done:
            alert = self.cleared.pop(key)
            alert.state = AlertState.closed.value
            self.registry.save_alert(alert, "closed", now, "no recurrence within the reopen window")
        return len(done)

    # -- lifecycle --------------------------------------------------------
    def _apply(self, st: Station, rule: Rule, metric: str, ts: datetime, v: Verdict) -> None:
        key = (st.id, rule.name)
        last = self._last_ts.get(key)
        if last is not None and ts < last:
            return  # an older reading arriving late must not undo a newer state
        self._last_ts[key] = ts
        alert = self.open.get(key)
        if alert is not None:
            if v.hold is None:
                self._clear(key, alert, ts, v.value)
            elif v.raw is not None and _rank(v.raw) > _rank(alert.severity):
                self._escalate(alert, v, ts)
            else:
                alert.value = v.value  # a lower reading is not an all-clear: severity stays
            return
        if v.raw is None:
            self._pending.pop(key, None)
            recent = self.cleared.get(key)
            if recent is not None and recent.cleared_at is not None and ts - recent.cleared_at > self.reopen:
                self.close_expired(ts)
            return
        since = self._pending.setdefault(key, ts)
        if (ts - since).total_seconds() < rule.min_duration_s:
            return
        self._pending.pop(key, None)
        recent = self.cleared.pop(key, None)
        if recent is not None and recent.cleared_at is not None and ts - recent.cleared_at <= self.reopen:
            self._reopen(key, recent, v, ts)
            return
        if recent is not None:
            self.cleared[key] = recent
            self.close_expired(ts)
        alert = Alert(station_id=st.id, kind=st.kind.value, rule=rule.name, metric=metric, severity=v.raw,
                      state=AlertState.active.value, started_at=since, updated_at=ts, value=v.value,
                      threshold=v.threshold, message=v.message)
        self.registry.insert_alert(alert)
        self.open[key] = alert
        log.info("alert raised", extra=kv(id=alert.id, station=st.id, rule=rule.name, severity=alert.severity,
                                          value=v.value, data_time=since.isoformat()))
        self.notifier.notify(alert, "raised")

    def _escalate(self, alert: Alert, v: Verdict, ts: datetime) -> None:
        previous = alert.severity
        alert.severity, alert.threshold, alert.message = v.raw, v.threshold, v.message
        alert.value, alert.updated_at = v.value, ts
        # An escalation needs fresh eyes even if the milder alert was acknowledged.
        alert.state = AlertState.active.value
        self.registry.save_alert(alert, "escalated", ts, f"{previous} → {alert.severity}")
        log.info("alert escalated", extra=kv(id=alert.id, station=alert.station_id, rule=alert.rule,
                                             severity=alert.severity, data_time=ts.isoformat()))
        self.notifier.notify(alert, "escalated")

    def _clear(self, key: tuple[str, str], alert: Alert, ts: datetime, value: float) -> None:
        alert.state, alert.cleared_at, alert.updated_at, alert.value = AlertState.cleared.value, ts, ts, value
        self.registry.save_alert(alert, "cleared", ts, "condition ended")
        del self.open[key]
        self.cleared[key] = alert
        log.info("alert cleared", extra=kv(id=alert.id, station=alert.station_id, rule=alert.rule,
                                           data_time=ts.isoformat()))
        self.notifier.notify(alert, "cleared")

    def _reopen(self, key: tuple[str, str], alert: Alert, v: Verdict, ts: datetime) -> None:
        # Flapping around a threshold: the same alert comes back instead of a new one.
        alert.state, alert.cleared_at, alert.updated_at, alert.value = AlertState.active.value, None, ts, v.value
        if _rank(v.raw) > _rank(alert.severity):
            alert.severity, alert.threshold, alert.message = v.raw, v.threshold, v.message
        self.registry.save_alert(alert, "reopened", ts, "condition returned within the reopen window")
        self.open[key] = alert
        self.notifier.notify(alert, "reopened")
