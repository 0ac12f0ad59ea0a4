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
from datetime import datetime, timedelta, timezone
from itertools import chain
from typing import Any, Callable, Iterable, Protocol

import numpy as np

from alerts.evaluate import (Verdict, evaluate_point, evaluate_rain, haversine_km, rain_levels, rain_windows,
                             rule_levels)
from alerts.window_matrix import RowWindow, SeriesMatrix
from alerts.windows import SeriesWindow
from core.catalog import StationCatalog, overdue_at
from core.domain import SEVERITY_ORDER, Alert, AlertState, Reading, Station
from core.logs import kv
from core.registry import Registry
from core.rules import Rule, RuleType
from core.settings import Settings
from core.timeutil import from_ms, to_ms, zone
from core.tsdb import TimeSeriesStore

log = logging.getLogger("alerts")

HISTORY_TYPES = (RuleType.rate_of_rise, RuleType.spike, RuleType.stuck)
RULES_RELOAD_S = 30.0
NO_TIME = np.iinfo(np.int64).min  # "never evaluated" in the watermark and last-seen arrays
_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
_US = timedelta(microseconds=1)


def to_us(ts: datetime) -> int:
    """Exact microseconds since the epoch: the engine compares data times as datetimes do."""
    return (ts - _EPOCH) // _US


class Notifier(Protocol):
    def notify(self, alert: Alert, event: str) -> None: ...


def _rank(severity: str) -> int:
    return SEVERITY_ORDER.index(severity)


class StationMap(dict):
    """Stations by id that count their changes, so per-station plans know when to rebuild."""

    version = 0

    def _changed(self) -> None:
        self.version += 1

    def __setitem__(self, key: str, value: Station) -> None:
        super().__setitem__(key, value)
        self._changed()

    def __delitem__(self, key: str) -> None:
        super().__delitem__(key)
        self._changed()

    def pop(self, *args: Any) -> Any:
        self._changed()
        return super().pop(*args)

    def popitem(self) -> Any:
        self._changed()
        return super().popitem()

    def clear(self) -> None:
        super().clear()
        self._changed()

    def update(self, *args: Any, **kw: Any) -> None:
        super().update(*args, **kw)
        self._changed()

    def setdefault(self, key: str, default: Any = None) -> Any:
        self._changed()
        return super().setdefault(key, default)


class Family:
    """The windows of one (station kind, metric): a SeriesMatrix and the row of each station index."""

    __slots__ = ("m", "row_of")

    def __init__(self, m: SeriesMatrix, stations: int) -> None:
        self.m = m
        self.row_of = np.full(stations, -1, dtype=np.int64)

    def rows(self, gis: np.ndarray) -> np.ndarray:
        """Rows of these station indexes (distinct), created for those that have none yet."""
        rows = self.row_of[gis]
        new = rows < 0
        if new.any():
            first = self.m.add_rows(int(new.sum()))
            rows[new] = np.arange(first, first + int(new.sum()))
            self.row_of[gis[new]] = rows[new]
        return rows

    def row(self, gi: int) -> int:
        r = int(self.row_of[gi])
        if r < 0:
            r = self.row_of[gi] = self.m.add_rows(1)
        return r


class Slot:
    """What a reading of one (station, metric) needs, looked up once and kept while the stations and rules stay
    the same: one dict lookup per live reading instead of a dozen (enum values, rule filters, bounds, columns)."""

    __slots__ = ("st", "sid", "gi", "metric", "window", "rain", "checks", "stale", "storm", "torrent")

    def __init__(self, st: Station, gi: int, metric: str, window: RowWindow | SeriesWindow | None) -> None:
        self.st, self.sid, self.gi, self.metric, self.window = st, st.id, gi, metric, window
        self.rain = metric == "rain_mm"
        # (rule, watermark column, (station, rule) key, safe bound or None, compare the negated value, levels)
        self.checks: list[tuple[Rule, int, tuple[str, str], float | None, bool, list]] = []
        self.stale: list[tuple[tuple[str, str], Rule]] = []  # stale rules: an open one clears on any reading
        # rain_mm of a gauge: its own rain rules (rule, column, key, levels) and its villages' (…, village, index,
        # own limits, levels)
        self.storm: list[tuple[Rule, int, tuple[str, str], list]] = []
        self.torrent: list[tuple[Rule, int, tuple[str, str], Station, int, dict | None, list]] = []


class AlertEngine:
    # Calls with at least this many readings are evaluated a batch at a time (alerts.batch); smaller ones,
    # like the service's one message at a time, reading by reading. Both give the same results.
    batch_min = 64

    def __init__(self, settings: Settings, registry: Registry, notifier: Notifier,
                 catalog: StationCatalog | None = None) -> None:
        from alerts.batch import BatchPass

        self.settings = settings
        self.registry = registry
        self.notifier = notifier
        # The stations, refreshed when due: a station added or edited while we run is evaluated as it stands.
        self.catalog = catalog or StationCatalog.of(registry, settings.station_refresh_s)
        self._catalog_version = -1
        self.tz = zone(settings.display_timezone)
        self.reopen = timedelta(seconds=settings.alerts_reopen_s)
        self._stations = StationMap()
        self.rules: list[Rule] = []
        self.rules_version = 0  # bumped when a reload brings different rules
        self._by_metric: dict[tuple[str, str], list[Rule]] = {}
        self._torrent: list[Rule] = []
        self._stale: list[Rule] = []
        self._history: set[tuple[str, str]] = set()  # (kind, metric) whose series must be kept
        self._rain_hours: tuple[int, ...] = (1, 3, 6, 12, 24)
        self._gauge_villages: dict[str, list[Station]] = {}
        self.families: dict[tuple[str, str], Family] = {}
        self.open: dict[tuple[str, str], Alert] = {}
        self.cleared: dict[tuple[str, str], Alert] = {}  # within the reopen window
        self.last_seen: dict[str, datetime] = {}
        self._pending: dict[tuple[str, str], datetime] = {}  # condition true since (for min_duration)
        self.write_failures = 0  # transitions the registry refused; each is tried again with the next reading
        self._rules_loaded_at = 0.0
        self._slots: dict[tuple[str, str], Slot] = {}  # by (station, metric)
        self._levels: dict[str, list] = {}  # rule name → its levels, shared by the slots built with them
        self._slots_for = (-1, -1)  # the (stations, rules) versions they were built for
        # Station indexes: rows of the arrays below and of every family's row_of.
        self._gidx: dict[str, int] = {}
        self.station_ids: list[str] = []
        self._present = np.zeros(0, dtype=bool)
        self._indexed_version = -1
        self._last_seen_us = np.zeros(0, dtype=np.int64)
        # Watermarks: the newest data time (µs) each (station, rule) was evaluated at; an older reading
        # arriving late must not undo a newer state. Columns by rule name, kept across reloads.
        self._rule_col: dict[str, int] = {}
        self._wm = np.full((0, 0), NO_TIME, dtype=np.int64)
        self._batch = BatchPass(self)

    # -- state ------------------------------------------------------------
    @property
    def stations(self) -> StationMap:
        return self._stations

    @stations.setter
    def stations(self, value: dict[str, Station]) -> None:
        m = StationMap(value)
        m.version = self._stations.version + 1
        self._stations = m

    def _sync_index(self) -> None:
        """Give every station an index (kept for good: watermarks and windows hang on it)."""
        st = self._stations
        if st.version == self._indexed_version:
            return
        for sid in st:
            if sid not in self._gidx:
                self._gidx[sid] = len(self.station_ids)
                self.station_ids.append(sid)
        n = len(self.station_ids)
        if n > len(self._last_seen_us):
            grow = n - len(self._last_seen_us)
            self._last_seen_us = np.concatenate([self._last_seen_us, np.full(grow, NO_TIME, dtype=np.int64)])
            self._wm = np.vstack([self._wm, np.full((grow, self._wm.shape[1]), NO_TIME, dtype=np.int64)])
            for fam in self.families.values():
                fam.row_of = np.concatenate([fam.row_of, np.full(grow, -1, dtype=np.int64)])
        self._present = np.array([sid in st for sid in self.station_ids], dtype=bool)
        self._indexed_version = st.version

    def _col(self, rule_name: str) -> int:
        c = self._rule_col.get(rule_name)
        if c is None:
            c = self._rule_col[rule_name] = len(self._rule_col)
            if c >= self._wm.shape[1]:
                extra = np.full((self._wm.shape[0], max(8, self._wm.shape[1])), NO_TIME, dtype=np.int64)
                self._wm = np.hstack([self._wm, extra])
        return c

    @property
    def watermarks_set(self) -> int:
        return int((self._wm != NO_TIME).sum())

    def load(self) -> None:
        self.catalog.refresh()
        self._take_catalog()
        self.load_rules()
        for a in self.registry.open_alerts():
            self.open[(a.station_id, a.rule)] = a
        for a in self.registry.list_alerts(state=AlertState.cleared.value, limit=10_000):
            self.cleared[(a.station_id, a.rule)] = a

    def refresh_stations(self) -> None:
        """Take the catalogue's stations when it has newer ones (refreshing it first when due)."""
        try:
            self.catalog.refresh_if_due()
        except Exception:  # noqa: BLE001 - the registry is down: keep evaluating with the stations we have
            log.warning("station refresh failed; keeping the previous stations", exc_info=True)
        if self.catalog.version != self._catalog_version:
            self._take_catalog()

    def _take_catalog(self) -> None:
        self.stations = dict(self.catalog.stations)
        self._catalog_version = self.catalog.version
        self._sync_index()
        gauges = [s for s in self.stations.values() if s.kind.value == "rain"]
        self._gauge_villages = defaultdict(list)
        if gauges:
            for v in self.stations.values():
                if v.kind.value == "village_water":
                    near = min(gauges, key=lambda g: haversine_km(v.lat, v.lon, g.lat, g.lon))
                    self._gauge_villages[near.id].append(v)
        self.rules_version += 1  # the gauge → villages map is part of the rain plan

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
            self._col(r.name)
        if rules != self.rules:
            self.rules_version += 1  # unchanged rules keep the batch plans built for them
        self.rules, self._by_metric, self._torrent, self._stale = rules, dict(by_metric), torrent, stale
        self._history = history
        self._rain_hours = rain_windows([r for r in rules if r.type == RuleType.rain_sum])
        self._rules_loaded_at = time.monotonic()

    def _safe_bound(self, st: Station, rule: Rule) -> float | None:
        """For threshold and reference-level rules: a value on the safe side of this (by more than the
        hysteresis band) cannot raise or hold anything, so evaluation can be skipped. None: always evaluate."""
        if rule.type == RuleType.threshold:
            lowest = rule.levels[0].value
            return lowest - rule.hysteresis if rule.direction == "above" else -(lowest + rule.hysteresis)
        if rule.type == RuleType.reference_level:
            known = reference_limits(st, rule, self.settings.alerts_reservoir_design_margin_m)
            return min(known) - rule.hysteresis if known else None
        return None

    def _slot(self, sid: str, metric: str) -> Slot | None:
        """The slot of a (station, metric); None for a station not in the registry."""
        slot = self._slots.get((sid, metric))
        if slot is None:
            st = self._stations.get(sid)
            if st is None:
                return None
            slot = self._slots[(sid, metric)] = self._make_slot(st, metric)
        return slot

    def _rule_levels(self, rule: Rule) -> list:
        levels = self._levels.get(rule.name)
        if levels is None:
            levels = self._levels[rule.name] = rain_levels(rule) if rule.type == RuleType.rain_sum else rule_levels(rule)
        return levels

    def _make_slot(self, st: Station, metric: str) -> Slot:
        gi, kind = self._gidx[st.id], st.kind.value
        window = self._window(gi, kind, metric) if (kind, metric) in self._history else None
        slot = Slot(st, gi, metric, window)
        col = self._col
        slot.stale = [((st.id, rule.name), rule) for rule in self._stale]
        if slot.rain:
            slot.storm = [(rule, col(rule.name), (st.id, rule.name), self._rule_levels(rule))
                          for rule in self._by_metric.get(("rain", "rain_mm"), ()) if rule.applies_to(st.id, "rain")]
            for rule in self._torrent:
                per = rule.params.get("per_station") or {}
                for village in self._gauge_villages.get(st.id, ()):
                    if rule.applies_to(village.id, "village_water"):
                        own = per.get(village.id)
                        slot.torrent.append((rule, col(rule.name), (village.id, rule.name), village,
                                             self._gidx[village.id], own, rain_levels(rule, own)))
            return slot
        for rule in self._by_metric.get((kind, metric), ()):
            if rule.station_ids is not None and st.id not in rule.station_ids:
                continue
            flip = rule.type == RuleType.threshold and rule.direction != "above"
            slot.checks.append((rule, col(rule.name), (st.id, rule.name), self._safe_bound(st, rule), flip,
                                self._rule_levels(rule)))
        return slot

    def family(self, kind: str, metric: str) -> Family:
        fam = self.families.get((kind, metric))
        if fam is None:
            rain = metric == "rain_mm"
            m = SeriesMatrix(keep_h=max(self._rain_hours) if rain else 24, running_sums=rain)
            fam = self.families[(kind, metric)] = Family(m, len(self.station_ids))
        return fam

    def window(self, station_id: str, metric: str) -> RowWindow | SeriesWindow | None:
        """The window of one station's metric, None when none is kept."""
        st = self._stations.get(station_id)
        fam = self.families.get((st.kind.value, metric)) if st is not None else None
        gi = self._gidx.get(station_id)
        if fam is None or gi is None or fam.row_of[gi] < 0:
            return None
        return fam.m.window(int(fam.row_of[gi]))

    def _window(self, gi: int, kind: str, metric: str) -> RowWindow | SeriesWindow:
        fam = self.family(kind, metric)
        return fam.m.window(fam.row(gi))

    def refill(self, store: TimeSeriesStore, now: datetime) -> int:
        """Reload windows from the store so a restart mid-storm keeps its sums and rates."""
        self._sync_index()
        n = 0
        start = now - timedelta(hours=max(self._rain_hours))
        for st in self.stations.values():
            kind = st.kind.value
            for k, metric in self._history:
                if k != kind:
                    continue
                since = start if metric == "rain_mm" else now - timedelta(hours=6)
                w = self._window(self._gidx[st.id], kind, metric)
                for r in store.query(st.id, metric, since, now + timedelta(minutes=10), limit=100_000):
                    w.add(r.ts, r.value)
                    n += 1
        for r in store.latest():
            if r.station_id in self.stations and r.ts > self.last_seen.get(r.station_id, r.ts - timedelta(1)):
                self._seen(self._gidx[r.station_id], r.station_id, r.ts, to_us(r.ts))
        return n

    def _seen(self, gi: int, sid: str, ts: datetime, us: int) -> None:
        self.last_seen[sid] = ts
        self._last_seen_us[gi] = us

    # -- readings ---------------------------------------------------------
    def process(self, readings: Iterable[Reading]) -> None:
        if time.monotonic() - self._rules_loaded_at > RULES_RELOAD_S:
            self.load_rules()
        if self.catalog.age_s() >= self.catalog.refresh_s or self.catalog.version != self._catalog_version:
            self.refresh_stations()
        version = self._stations.version
        if version != self._indexed_version:
            self._sync_index()
        if self._slots_for != (version, self.rules_version):
            self._slots, self._levels, self._slots_for = {}, {}, (version, self.rules_version)
        if not isinstance(readings, (list, tuple)):
            readings = list(readings)
        rain: dict[int, None] = {}  # station indexes of the gauges that reported, in order
        if len(readings) == 1:  # the live service: one message, one reading
            self._process_one(readings[0], rain)
        elif len(readings) >= self.batch_min:
            self._batch.process(readings, rain)
        else:
            # Same stretches as the batch path: a (station, metric) seen again in this call first flushes the
            # rain sums, which are due at the earlier readings' times, not at the end of the call.
            seen: set[tuple[str, str]] = set()
            for r in readings:
                if r.station_id in self._stations:
                    key = (r.station_id, r.metric)
                    if key in seen:
                        self._flush_rain(rain)
                        seen.clear()
                    seen.add(key)
                self._process_one(r, rain)
        if rain:
            self._flush_rain(rain)

    def _flush_rain(self, rain: dict[int, None]) -> None:
        """Evaluate the rain sums of the gauges that reported since the last flush, at their newest reading."""
        if len(rain) >= self.batch_min:
            self._batch.rain(np.fromiter(rain, dtype=np.int64, count=len(rain)))
        else:
            ids = self.station_ids
            for gi in rain:
                self._rain(self._slot(ids[gi], "rain_mm"))
        rain.clear()

    def _process_one(self, r: Reading, rain: dict[int, None]) -> None:
        slot = self._slots.get((r.station_id, r.metric)) or self._slot(r.station_id, r.metric)
        if slot is None:
            return
        gi, ts = slot.gi, r.ts
        us = to_us(ts)
        if us > self._last_seen_us.item(gi):
            self.last_seen[slot.sid] = ts
            self._last_seen_us[gi] = us
        ms = to_ms(ts)
        if slot.window is not None:
            slot.window.add_ms(ms, r.value)
        if slot.rain:
            self._clear_stale(slot, ts)
            rain[gi] = None
            return
        self._evaluate(slot, ts, us, ms, r.value)

    def _evaluate(self, slot: Slot, ts: datetime, us: int, ms: int, value: float) -> None:
        """Every rule on one reading whose window (if any) already holds it."""
        self._clear_stale(slot, ts)
        st, open_ = slot.st, self.open
        pending, cleared, gi = self._pending, self.cleared, slot.gi
        for rule, col, key, bound, flip, levels in slot.checks:
            if bound is not None and (-value if flip else value) <= bound \
                    and key not in open_ and key not in pending and key not in cleared:
                wm = self._wm
                if us > wm.item(gi, col):
                    wm[gi, col] = us
                continue  # nothing to raise, hold, clear or close
            verdict = evaluate_point(rule, st, ts, value, slot.window, self.tz,
                                     self.settings.alerts_reservoir_design_margin_m, t_ms=ms, levels=levels)
            if verdict is not None:
                self._apply_at(st, gi, col, key, rule, slot.metric, ts, us, verdict)

    def _clear_stale(self, slot: Slot, ts: datetime) -> None:
        """Any reading ends a stale-station alert."""
        for key, rule in slot.stale:
            if key in self.open:
                self._apply(slot.st, rule, "", ts, Verdict(None, None, 0.0))

    def _rain(self, slot: Slot) -> None:
        window = slot.window
        if window is None or not len(window):
            return  # a rain_mm reading from a station whose kind keeps no rain window
        at_ms = window.latest
        at = from_ms(at_ms)
        at_us = to_us(at)
        sums = window.sums(at_ms, self._rain_hours)
        gauge, gi = slot.st, slot.gi
        for rule, col, key, levels in slot.storm:
            self._apply_at(gauge, gi, col, key, rule, "rain_mm", at, at_us,
                           evaluate_rain(rule, gauge, sums, levels=levels))
        for rule, col, key, village, vgi, own, levels in slot.torrent:
            self._apply_at(village, vgi, col, key, rule, "rain_mm", at, at_us,
                           evaluate_rain(rule, village, sums, own, levels=levels))

    def active_keys(self) -> Iterable[tuple[str, str]]:
        """(station, rule) pairs with state beyond a watermark: open, pending or cleared alerts."""
        return chain(self.open, self._pending, self.cleared)

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
                overdue = overdue_at(last, st, limit)
                if now > overdue:
                    silent = (now - last).total_seconds()
                    sev = rule.levels[0].severity.value
                    self._apply(st, rule, "", overdue, Verdict(sev, sev, silent, limit * st.interval_s,
                                f"{st.name}: no data for {silent / 60:.0f} min ({limit:g} reporting intervals)"))
                    raised += 1
        return raised

    @property
    def data_clock(self) -> datetime | None:
        """The newest data time seen from any station."""
        return max(self.last_seen.values(), default=None)

    def close_expired(self, now: datetime) -> int:
        """Close cleared alerts whose reopen window has passed (data time ``now``)."""
        done = [k for k, a in self.cleared.items() if a.cleared_at is None or now - a.cleared_at > self.reopen]
        closed = 0
        for key in done:
            alert = self.cleared[key]
            before = _snapshot(alert)
            alert.state = AlertState.closed.value
            if self._written(lambda a=alert: self.registry.save_alert(a, "closed", now,
                                                                      "no recurrence within the reopen window"),
                             alert, "closed", now, before):
                del self.cleared[key]
                closed += 1
        return closed

    # -- lifecycle --------------------------------------------------------
    def _apply(self, st: Station, rule: Rule, metric: str, ts: datetime, v: Verdict) -> None:
        gi = self._gidx.get(st.id)
        if gi is None:
            self._sync_index()
            gi = self._gidx[st.id]
        self._apply_at(st, gi, self._col(rule.name), (st.id, rule.name), rule, metric, ts, to_us(ts), v)

    def _apply_at(self, st: Station, gi: int, col: int, key: tuple[str, str], rule: Rule, metric: str,
                  ts: datetime, us: int, v: Verdict) -> None:
        """_apply with the station index, rule column, key and time in µs already at hand."""
        wm = self._wm
        if us < wm.item(gi, col):
            return  # an older reading arriving late must not undo a newer state
        wm[gi, col] = us
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
            if not self._reopen(key, recent, v, ts):
                self.cleared[key], self._pending[key] = recent, since
            return
        if recent is not None:
            self.cleared[key] = recent
            self.close_expired(ts)
        alert = Alert(station_id=st.id, kind=st.kind.value, rule=rule.name, metric=metric, severity=v.raw,
                      state=AlertState.active.value, started_at=since, updated_at=ts, value=v.value,
                      threshold=v.threshold, message=v.message)
        if not self._written(lambda: self.registry.insert_alert(alert), alert, "raised", ts):
            self._pending[key] = since  # the next reading raises it, still from when the condition began
            return
        self.open[key] = alert
        log.info("alert raised", extra=kv(id=alert.id, station=st.id, rule=rule.name, severity=alert.severity,
                                          value=v.value, data_time=since.isoformat()))
        self.notifier.notify(alert, "raised")

    def _escalate(self, alert: Alert, v: Verdict, ts: datetime) -> None:
        previous = alert.severity
        before = _snapshot(alert)
        alert.severity, alert.threshold, alert.message = v.raw, v.threshold, v.message
        alert.value, alert.updated_at = v.value, ts
        # An escalation needs fresh eyes even if the milder alert was acknowledged.
        alert.state = AlertState.active.value
        if not self._written(lambda: self.registry.save_alert(alert, "escalated", ts, f"{previous} → {alert.severity}"),
                             alert, "escalated", ts, before):
            return
        log.info("alert escalated", extra=kv(id=alert.id, station=alert.station_id, rule=alert.rule,
                                             severity=alert.severity, data_time=ts.isoformat()))
        self.notifier.notify(alert, "escalated")

    def _clear(self, key: tuple[str, str], alert: Alert, ts: datetime, value: float) -> None:
        before = _snapshot(alert)
        alert.state, alert.cleared_at, alert.updated_at, alert.value = AlertState.cleared.value, ts, ts, value
        if not self._written(lambda: self.registry.save_alert(alert, "cleared", ts, "condition ended"),
                             alert, "cleared", ts, before):
            return  # still open: the next reading clears it
        del self.open[key]
        self.cleared[key] = alert
        log.info("alert cleared", extra=kv(id=alert.id, station=alert.station_id, rule=alert.rule,
                                           data_time=ts.isoformat()))
        self.notifier.notify(alert, "cleared")

    def _reopen(self, key: tuple[str, str], alert: Alert, v: Verdict, ts: datetime) -> bool:
        # Flapping around a threshold: the same alert comes back instead of a new one.
        before = _snapshot(alert)
        alert.state, alert.cleared_at, alert.updated_at, alert.value = AlertState.active.value, None, ts, v.value
        if _rank(v.raw) > _rank(alert.severity):
            alert.severity, alert.threshold, alert.message = v.raw, v.threshold, v.message
        if not self._written(lambda: self.registry.save_alert(alert, "reopened", ts,
                                                              "condition returned within the reopen window"),
                             alert, "reopened", ts, before):
            return False
        self.open[key] = alert
        self.notifier.notify(alert, "reopened")
        return True

    def _written(self, write: Callable[[], object], alert: Alert, event: str, ts: datetime,
                 before: dict[str, Any] | None = None) -> bool:
        """Run a registry write of a transition; if it fails, put the alert back as it was and say so.

        The engine's state must never run ahead of the registry: an escalation held only in memory would never be
        written or notified, as the next reading finds nothing left to escalate. Left as it was, the transition is
        simply made again by the next reading (5–15 min later), when the registry is back.
        """
        try:
            write()
            return True
        except Exception:  # noqa: BLE001 - any failure of the registry: locked, restarting, unreachable
            if before is not None:
                for field, value in before.items():
                    setattr(alert, field, value)
            self.write_failures += 1
            log.error("registry write failed; the alert is left as it was and the next reading tries again",
                      exc_info=True, extra=kv(station=alert.station_id, rule=alert.rule, event=event,
                                              data_time=ts.isoformat()))
            return False


_MUTABLE = ("severity", "state", "threshold", "message", "value", "updated_at", "cleared_at")


def _snapshot(alert: Alert) -> dict[str, Any]:
    """What a transition changes on an alert, to put back if the registry refuses it."""
    return {f: getattr(alert, f) for f in _MUTABLE}


def reference_limits(st: Station, rule: Rule, design_margin_m: float) -> list[float]:
    """Every level a reference-level rule may compare this station's water level with (any season)."""
    if st.kind.value == "reservoir":
        limits = [st.flood_limit_level_m, st.check_flood_level_m]
        limits += [p.level_m for p in st.flood_limit_periods or ()]
        if st.design_flood_level_m is not None:
            limits.append(st.design_flood_level_m - float(rule.params.get("design_margin_m", design_margin_m)))
    else:
        limits = [st.warning_level_m, st.guaranteed_level_m]
    return [x for x in limits if x is not None]
