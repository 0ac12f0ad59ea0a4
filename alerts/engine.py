"""The alert engine: readings in, alert transitions out, over rules-as-data.

A thin orchestrator of its parts (docs/architecture.md, "Alert engine"):

* ``core.catalog.StationCatalog`` — the stations, refreshed while the engine runs;
* ``alerts.index`` — a row per station: last seen, watermarks, windows;
* ``alerts.plan`` — the rules sorted by what they watch, and the per-(station, metric) slots built from them;
* ``alerts.evaluate`` — what a rule says about a reading (a Verdict);
* ``alerts.lifecycle`` — what a verdict does to the (station, rule)'s alert, as a pure decision;
* ``alerts.persist`` — the decision written through to the registry (rolled back if refused), then notified;
* ``alerts.batch`` — the same evaluation for many readings at once, with numpy.

Alert times are data times (the reading's timestamp), so replayed history alerts at the moments it would have.
"""

from __future__ import annotations

import logging
import time
from datetime import datetime, timedelta
from typing import Iterable

import numpy as np

from alerts import lifecycle
from alerts.batch import BatchPass
from alerts.book import AlertBook
from alerts.evaluate import Verdict, evaluate_point, evaluate_rain
from alerts.index import NO_TIME, Family, StationIndex, StationMap, to_us
from alerts.persist import AlertWriter, Notifier
from alerts.plan import Key, RulePlan, Slot, SlotTable, reference_limits
from alerts.window_matrix import RowWindow
from alerts.windows import SeriesWindow
from core.catalog import StationCatalog, overdue_at
from core.domain import Alert, AlertState, Reading, Station
from core.registry import Registry
from core.rules import Rule
from core.settings import Settings
from core.timeutil import from_ms, to_ms, zone
from core.tsdb import TimeSeriesStore

log = logging.getLogger("alerts")

RULES_RELOAD_S = 30.0

__all__ = ["AlertEngine", "NO_TIME", "Notifier", "reference_limits", "to_us"]


class AlertEngine:
    # Calls with at least this many readings are evaluated a batch at a time (alerts.batch); smaller ones,
    # like the service's one message at a time, reading by reading. Both give the same results.
    batch_min = 64

    def __init__(self, settings: Settings, registry: Registry, notifier: Notifier,
                 catalog: StationCatalog | None = None) -> None:
        self.settings = settings
        self.registry = registry
        self.notifier = notifier
        self.tz = zone(settings.display_timezone)
        self.reopen = timedelta(seconds=settings.alerts_reopen_s)
        self.margin_m = settings.alerts_reservoir_design_margin_m
        self.season = settings.flood_season  # a reservoir without seasonal periods: its ceiling in and out of it
        # The stations, refreshed when due: a station added or edited while we run is evaluated as it stands.
        self.catalog = catalog or StationCatalog.of(registry, settings.station_refresh_s)
        self._catalog_version = -1
        self.index = StationIndex()
        self.plan = RulePlan()
        self.slots = SlotTable(self.index, self.margin_m, self._window)
        self.book = AlertBook()
        self.writer = AlertWriter(registry, notifier, self.book)
        self._rules_loaded_at = 0.0
        self._batch = BatchPass(self)

    # -- what the engine holds (read by the service, the API's health, tests and benchmarks) -------------------------
    @property
    def stations(self) -> StationMap:
        return self.index.stations

    @property
    def rules(self) -> list[Rule]:
        return self.plan.rules

    @property
    def open(self) -> dict[Key, Alert]:
        return self.book.open

    @property
    def cleared(self) -> dict[Key, Alert]:
        return self.book.cleared

    @property
    def pending(self) -> dict[Key, datetime]:
        return self.book.pending

    @property
    def last_seen(self) -> dict[str, datetime]:
        return self.index.last_seen

    @property
    def station_ids(self) -> list[str]:
        return self.index.ids

    @property
    def families(self) -> dict[tuple[str, str], Family]:
        return self.index.families

    @property
    def write_failures(self) -> int:
        return self.writer.write_failures

    @property
    def watermarks_set(self) -> int:
        return self.index.watermarks_set

    @property
    def data_clock(self) -> datetime | None:
        """The newest data time seen from any station."""
        return max(self.index.last_seen.values(), default=None)

    def active_keys(self) -> Iterable[Key]:
        """(station, rule) pairs with state beyond a watermark: open, pending or cleared alerts."""
        return self.book.active_keys()

    # -- loading ----------------------------------------------------------------------------------------------------
    def load(self) -> None:
        self.catalog.refresh()
        self._take_catalog()
        self.load_rules()
        for a in self.registry.open_alerts():
            self.book.open[(a.station_id, a.rule)] = a
        for a in self.registry.list_alerts(state=AlertState.cleared.value, limit=10_000):
            self.book.cleared[(a.station_id, a.rule)] = a

    def refresh_stations(self) -> None:
        """Take the catalogue's stations when it has newer ones (refreshing it first when due)."""
        try:
            self.catalog.refresh_if_due()
        except Exception:  # noqa: BLE001 - the registry is down: keep evaluating with the stations we have
            log.warning("station refresh failed; keeping the previous stations", exc_info=True)
        if self.catalog.version != self._catalog_version:
            self._take_catalog()

    def _take_catalog(self) -> None:
        self.index.replace_stations(dict(self.catalog.stations))
        self._catalog_version = self.catalog.version

    def load_rules(self) -> None:
        rules = self.registry.list_rules(enabled=True)
        if not rules and not self.registry.list_rules():
            from core.rules import default_rules

            rules = [r for r in default_rules() if r.enabled]  # a registry nobody configured yet
        for r in rules:
            self.index.col(r.name)
        # Unchanged rules keep the plans (and slots) built for them.
        version = self.plan.version + (rules != self.plan.rules)
        self.plan = RulePlan.build(rules, version)
        self._rules_loaded_at = time.monotonic()

    def refill(self, store: TimeSeriesStore, now: datetime) -> int:
        """Reload windows from the store so a restart mid-storm keeps its sums and rates."""
        index, plan = self.index, self.plan
        index.sync()
        n = 0
        start = now - timedelta(hours=max(plan.rain_hours))
        for st in self.stations.values():
            kind = st.kind.value
            for k, metric in plan.history:
                if k != kind:
                    continue
                since = start if metric == "rain_mm" else now - timedelta(hours=6)
                w = self._window(index.row[st.id], kind, metric)
                for r in store.query(st.id, metric, since, now + timedelta(minutes=10), limit=100_000):
                    w.add(r.ts, r.value)
                    n += 1
        for r in store.latest():
            if r.station_id in self.stations:
                index.seen(index.row[r.station_id], r.station_id, r.ts, to_us(r.ts))
        return n

    # -- windows ----------------------------------------------------------------------------------------------------
    def family(self, kind: str, metric: str) -> Family:
        return self.index.family(kind, metric, self.plan.keep_h(metric), metric == "rain_mm")

    def window(self, station_id: str, metric: str) -> RowWindow | SeriesWindow | None:
        """The window of one station's metric, None when none is kept."""
        return self.index.window(station_id, metric)

    def _window(self, gi: int, kind: str, metric: str) -> RowWindow | SeriesWindow:
        fam = self.family(kind, metric)
        return fam.m.window(fam.row(gi))

    # -- readings ---------------------------------------------------------------------------------------------------
    def process(self, readings: Iterable[Reading]) -> None:
        if time.monotonic() - self._rules_loaded_at > RULES_RELOAD_S:
            self.load_rules()
        if self.catalog.age_s() >= self.catalog.refresh_s or self.catalog.version != self._catalog_version:
            self.refresh_stations()
        self.index.sync()
        self.slots.renew(self.plan)
        if not isinstance(readings, (list, tuple)):
            readings = list(readings)
        rain: dict[int, None] = {}  # station rows of the gauges that reported, in order
        if len(readings) == 1:  # the live service: one message, one reading
            self.process_one(readings[0], rain)
        elif len(readings) >= self.batch_min:
            self._batch.process(readings, rain)
        else:
            # Same stretches as the batch path: a (station, metric) seen again in this call first flushes the
            # rain sums, which are due at the earlier readings' times, not at the end of the call.
            seen: set[tuple[str, str]] = set()
            stations = self.stations
            for r in readings:
                if r.station_id in stations:
                    key = (r.station_id, r.metric)
                    if key in seen:
                        self.flush_rain(rain)
                        seen.clear()
                    seen.add(key)
                self.process_one(r, rain)
        if rain:
            self.flush_rain(rain)

    def slot(self, station_id: str, metric: str) -> Slot | None:
        """What a reading of this (station, metric) is evaluated with; None for a station not in the registry."""
        return self.slots.get(station_id, metric)

    def flush_rain(self, rain: dict[int, None]) -> None:
        """Evaluate the rain sums of the gauges that reported since the last flush, at their newest reading."""
        if len(rain) >= self.batch_min:
            self._batch.rain(np.fromiter(rain, dtype=np.int64, count=len(rain)))
        else:
            ids = self.index.ids
            for gi in rain:
                self.evaluate_rain(self.slots.get(ids[gi], "rain_mm"))
        rain.clear()

    def process_one(self, r: Reading, rain: dict[int, None]) -> None:
        """One reading: its window, last seen, and its rules (rain: its gauge is due in ``rain``)."""
        slot = self.slots.slots.get((r.station_id, r.metric)) or self.slots.get(r.station_id, r.metric)
        if slot is None:
            return
        gi, ts = slot.gi, r.ts
        us = to_us(ts)
        self.index.seen(gi, slot.sid, ts, us)
        ms = to_ms(ts)
        if slot.window is not None:
            slot.window.add_ms(ms, r.value)
        if slot.rain:
            self.clear_stale(slot, ts)
            rain[gi] = None
            return
        self.evaluate(slot, ts, us, ms, r.value)

    def evaluate(self, slot: Slot, ts: datetime, us: int, ms: int, value: float) -> None:
        """Every rule on one reading whose window (if any) already holds it."""
        self.clear_stale(slot, ts)
        st, book, index = slot.st, self.book, self.index
        open_, pending, cleared, gi = book.open, book.pending, book.cleared, slot.gi
        for c in slot.checks:
            bound, key = c.bound, c.key
            if bound is not None and (-value if c.flip else value) <= bound \
                    and key not in open_ and key not in pending and key not in cleared:
                wm = index.wm
                if us > wm.item(gi, c.col):
                    wm[gi, c.col] = us
                continue  # nothing to raise, hold, clear or close
            verdict = evaluate_point(c.rule, st, ts, value, slot.window, self.tz, self.margin_m, t_ms=ms,
                                     levels=c.levels, season=self.season)
            if verdict is not None:
                self.apply(st, gi, c.col, key, c.rule, slot.metric, ts, us, verdict)

    def clear_stale(self, slot: Slot, ts: datetime) -> None:
        """Any reading ends a stale-station alert."""
        for c in slot.stale:
            if c.key in self.book.open:
                self.apply(slot.st, self.index.row_of(slot.sid), self.index.col(c.rule.name), c.key, c.rule, "", ts,
                           to_us(ts), Verdict(None, None, 0.0))

    def evaluate_rain(self, slot: Slot) -> None:
        """A gauge's rain sums at its newest reading: its own rain rules, and its villages'."""
        window = slot.window
        if window is None or not len(window):
            return  # a rain_mm reading from a station whose kind keeps no rain window
        at_ms = window.latest
        at = from_ms(at_ms)
        at_us = to_us(at)
        sums = window.sums(at_ms, self.plan.rain_hours)
        gauge, gi = slot.st, slot.gi
        for c in slot.storm:
            self.apply(gauge, gi, c.col, c.key, c.rule, "rain_mm", at, at_us,
                       evaluate_rain(c.rule, gauge, sums, levels=c.levels))
        for c in slot.torrent:
            self.apply(c.village, c.village_row, c.col, c.key, c.rule, "rain_mm", at, at_us,
                       evaluate_rain(c.rule, c.village, sums, c.own, levels=c.levels))

    # -- time-driven checks (the scheduler calls these) -------------------------------------------------------------
    def check_stale(self, now: datetime) -> int:
        """Raise stale-station alerts; the data time is when the station became overdue."""
        raised = 0
        index = self.index
        for rule in self.plan.stale:
            limit = float(rule.params["intervals"])
            for st in self.stations.values():
                if not rule.applies_to(st.id, st.kind.value) or (st.id, rule.name) in self.book.open:
                    continue
                last = index.last_seen.get(st.id)
                if last is None:
                    continue  # never reported since we started: nothing to compare with yet
                overdue = overdue_at(last, st, limit)
                if now > overdue:
                    silent = (now - last).total_seconds()
                    sev = rule.levels[0].severity.value
                    self.apply(st, index.row_of(st.id), index.col(rule.name), (st.id, rule.name), rule, "", overdue,
                               to_us(overdue), Verdict(sev, sev, silent, limit * st.interval_s,
                                                       f"{st.name}: no data for {silent / 60:.0f} min "
                                                       f"({limit:g} reporting intervals)"))
                    raised += 1
        return raised

    def close_expired(self, now: datetime) -> int:
        """Close cleared alerts whose reopen window has passed (data time ``now``)."""
        return self.writer.close_expired(now, self.reopen)

    # -- lifecycle --------------------------------------------------------------------------------------------------
    def apply(self, st: Station, gi: int, col: int, key: Key, rule: Rule, metric: str, ts: datetime, us: int,
              v: Verdict) -> None:
        """A verdict on ``key`` at data time ``ts`` (µs ``us``; station row ``gi``, rule column ``col``)."""
        if not self.index.advance(gi, col, us):
            return  # an older reading arriving late must not undo a newer state
        book = self.book
        if v.raw is None and key not in book.open and key not in book.cleared:
            book.pending.pop(key, None)  # nothing else can happen (lifecycle.decide): the quiet path, kept quick
            return
        d = lifecycle.decide(book.state(key), rule.min_duration_s, ts, v, self.reopen)
        if d.close_expired:
            self.close_expired(ts)
        self.writer.apply(d, key, st, rule.name, metric, ts)
