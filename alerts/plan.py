"""The rule plan: the enabled rules sorted by what they watch, rebuilt when the rules change, and the per-(station,
metric) slots built from it.

A reading of one (station, metric) needs the rules that apply to it, each with its watermark column, its key,
its levels and — for threshold and reference-level rules — a safe bound below which nothing can be raised, held,
cleared or closed. Looking that up for every reading would cost a dozen dict lookups; a ``Slot`` holds it, built
once and kept while the stations and the rules stay the same (``SlotTable``).
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from alerts.evaluate import orange_level, rain_levels, rain_windows, rule_levels
from alerts.index import StationIndex
from alerts.window_matrix import RowWindow
from alerts.windows import SeriesWindow
from core.domain import Station
from core.rules import Rule, RuleType

if TYPE_CHECKING:
    from collections.abc import Callable

# Rule types that read a station's recent values, so its (kind, metric) keeps a window.
HISTORY_TYPES = (RuleType.rate_of_rise, RuleType.spike, RuleType.stuck)
Key = tuple[str, str]  # (station id, rule name): one alert at a time per key


@dataclass(slots=True)
class RulePlan:
    """The enabled rules by what they watch. ``version`` changes whenever the rules do."""

    rules: list[Rule] = field(default_factory=list)
    by_metric: dict[tuple[str, str], list[Rule]] = field(default_factory=dict)  # (kind, metric) → rules
    torrent: list[Rule] = field(default_factory=list)  # village rain_sum rules, fed by the nearest gauge
    stale: list[Rule] = field(default_factory=list)  # checked by the scheduler, cleared by any reading
    history: set[tuple[str, str]] = field(default_factory=set)  # (kind, metric) whose windows must be kept
    rain_hours: tuple[int, ...] = (1, 3, 6, 12, 24)  # every rain-sum window any rule reads
    version: int = 0

    @classmethod
    def build(cls, rules: list[Rule], version: int) -> "RulePlan":
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
        return cls(rules, dict(by_metric), torrent, stale, history,
                   rain_windows([r for r in rules if r.type == RuleType.rain_sum]), version)

    def keep_h(self, metric: str) -> int:
        """How many hours of a metric's window to keep: the longest rain window, else a day."""
        return max(self.rain_hours) if metric == "rain_mm" else 24


def reference_limits(st: Station, rule: Rule, design_margin_m: float) -> list[float]:
    """Every level a reference-level rule may compare this station's water level with (any season)."""
    if st.kind.value == "reservoir":
        limits = [st.flood_limit_level_m, st.normal_level_m, orange_level(rule, st, design_margin_m)[0]]
        limits += [p.level_m for p in st.flood_limit_periods or ()]
        if st.design_flood_level_m is not None:  # reached at the level itself: the bound sits just below it
            limits.append(math.nextafter(st.design_flood_level_m, -math.inf))
    else:
        limits = [st.warning_level_m, st.guaranteed_level_m]
    return [x for x in limits if x is not None]


def safe_bound(st: Station, rule: Rule, design_margin_m: float) -> float | None:
    """For threshold and reference-level rules: a value on the safe side of this (by more than the hysteresis
    band) cannot raise or hold anything, so evaluation can be skipped. None: always evaluate. Below-rules are
    compared negated."""
    if rule.type == RuleType.threshold:
        lowest = rule.levels[0].value
        return lowest - rule.hysteresis if rule.direction == "above" else -(lowest + rule.hysteresis)
    if rule.type == RuleType.reference_level:
        known = reference_limits(st, rule, design_margin_m)
        return min(known) - rule.hysteresis if known else None
    return None


# -- slots ----------------------------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class MetricCheck:
    """One rule on one (station, metric)."""

    rule: Rule
    col: int  # watermark column
    key: Key
    bound: float | None  # safe bound (see safe_bound), None: always evaluate
    flip: bool  # compare the negated value with the bound (a below-rule)
    levels: list


@dataclass(frozen=True, slots=True)
class StormCheck:
    """A gauge's own rain-sum rule."""

    rule: Rule
    col: int
    key: Key
    levels: list


@dataclass(frozen=True, slots=True)
class TorrentCheck:
    """A village's rain-sum rule, evaluated on its nearest gauge's sums."""

    rule: Rule
    col: int
    key: Key  # (village, rule)
    village: Station
    village_row: int
    own: dict | None  # the village's own windows (params.per_station)
    levels: list


@dataclass(frozen=True, slots=True)
class StaleCheck:
    """A stale rule of the station: an open one clears on any reading."""

    key: Key
    rule: Rule


class Slot:
    """What a reading of one (station, metric) needs, looked up once."""

    __slots__ = ("st", "sid", "gi", "metric", "window", "rain", "checks", "stale", "storm", "torrent")

    def __init__(self, st: Station, gi: int, metric: str, window: RowWindow | SeriesWindow | None) -> None:
        self.st, self.sid, self.gi, self.metric, self.window = st, st.id, gi, metric, window
        self.rain = metric == "rain_mm"
        self.checks: list[MetricCheck] = []
        self.stale: list[StaleCheck] = []
        # rain_mm of a gauge: its own rain rules, and its villages'
        self.storm: list[StormCheck] = []
        self.torrent: list[TorrentCheck] = []


class SlotTable:
    """The slots of the current (stations, rules) versions, built on first use and dropped when either changes."""

    def __init__(self, index: StationIndex, design_margin_m: float,
                 window: "Callable[[int, str, str], RowWindow | SeriesWindow]") -> None:
        self.index = index
        self.design_margin_m = design_margin_m
        self._window = window  # (row, kind, metric) → the station's window of that metric
        self.plan = RulePlan()
        self.slots: dict[tuple[str, str], Slot] = {}  # by (station, metric)
        self._levels: dict[str, list] = {}  # rule name → its levels, shared by the slots built with them
        self._built_for = (-1, -1)  # the (stations, rules) versions they were built for

    def renew(self, plan: RulePlan) -> None:
        """Use this plan; drop every slot when it or the stations changed since they were built."""
        self.plan = plan
        versions = (self.index.stations.version, plan.version)
        if versions != self._built_for:
            self.slots, self._levels, self._built_for = {}, {}, versions

    def get(self, sid: str, metric: str) -> Slot | None:
        """The slot of a (station, metric); None for a station not in the registry."""
        slot = self.slots.get((sid, metric))
        if slot is None:
            st = self.index.stations.get(sid)
            if st is None:
                return None
            slot = self.slots[(sid, metric)] = self._make(st, metric)
        return slot

    def _rule_levels(self, rule: Rule) -> list:
        levels = self._levels.get(rule.name)
        if levels is None:
            rain = rule.type == RuleType.rain_sum
            levels = self._levels[rule.name] = rain_levels(rule) if rain else rule_levels(rule)
        return levels

    def _make(self, st: Station, metric: str) -> Slot:
        index, plan = self.index, self.plan
        gi, kind = index.row_of(st.id), st.kind.value
        window = self._window(gi, kind, metric) if (kind, metric) in plan.history else None
        slot = Slot(st, gi, metric, window)
        col = index.col
        slot.stale = [StaleCheck((st.id, rule.name), rule) for rule in plan.stale]
        if slot.rain:
            slot.storm = [StormCheck(rule, col(rule.name), (st.id, rule.name), self._rule_levels(rule))
                          for rule in plan.by_metric.get(("rain", "rain_mm"), ()) if rule.applies_to(st.id, "rain")]
            for rule in plan.torrent:
                per = rule.params.get("per_station") or {}
                for village in index.gauge_villages.get(st.id, ()):
                    if rule.applies_to(village.id, "village_water"):
                        own = per.get(village.id)
                        slot.torrent.append(TorrentCheck(rule, col(rule.name), (village.id, rule.name), village,
                                                         index.row[village.id], own, rain_levels(rule, own)))
            return slot
        for rule in plan.by_metric.get((kind, metric), ()):
            if rule.station_ids is not None and st.id not in rule.station_ids:
                continue
            flip = rule.type == RuleType.threshold and rule.direction != "above"
            slot.checks.append(MetricCheck(rule, col(rule.name), (st.id, rule.name),
                                           safe_bound(st, rule, self.design_margin_m), flip, self._rule_levels(rule)))
        return slot
