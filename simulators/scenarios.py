"""Reading values for any station at any simulated time, without MQTT: the part of the simulator worth unit-testing.

A scenario is a pure function of (seed, simulation start, station, time): the runner, the tests and a replay
of the same seed all see the same numbers, whatever order they ask in. Two scenarios:

* ``normal``: dry weather. Daily cycles (village demand peaks morning and evening, pressure and chlorine
  dip with it), reservoirs a little below the flood-limit level in force, rivers well below warning.
* ``storm``: a rainstorm starts ``STORM_START_S`` after the simulation start and lasts ``STORM_HOURS``.
  The gauges nearest its centre get a red-signal burst (≥ 100 mm in 3 h, design.md §4) within the first
  ~1.5 h; gauges further out get less, the farthest none. Rivers and reservoirs respond through a linear-
  reservoir cascade of the rain over their nearest gauges, so levels lag the rain and recede after it.
  The stations nearest the storm are scaled so that, by ``TARGET_S``, one river is above its guaranteed
  level, others above warning, and reservoirs above the flood-limit level in force on that date.
"""

from __future__ import annotations

import math
import random
import zlib
from dataclasses import dataclass, field
from datetime import datetime, tzinfo
from typing import Iterable, Sequence
from zoneinfo import ZoneInfo

import numpy as np

from core.domain import Kind, Station
from simulators.district import RIVERS

_WARNING_FLOW = {r[0]: r[4] for r in RIVERS}  # m3/s at the warning level, by river name

SCENARIOS: dict[str, str] = {
    "normal": "dry weather with daily cycles; every level below its warning or flood-limit level",
    "storm": "a 6 h rainstorm from 10 min after the start: red rainstorm signal, rivers over warning and "
             "guaranteed levels, reservoirs over their flood-limit level within 2.5 h",
}

DEFAULT_TZ = "Asia/Shanghai"  # Jimo's local time: daily cycles and the flood-season date use it
STORM_START_S = 600.0
STORM_HOURS = 6.0
# The designated stations cross their thresholds by this time after the simulation start (the brief
# for demos and tests is "within 2.5 h"); 30 min of slack absorbs report phase and interval.
TARGET_S = 2.0 * 3600
# Routing is tabulated on this step from the simulation start until the storm has long drained away.
GRID_S = 60.0
GRID_SPAN_S = STORM_START_S + (STORM_HOURS + 30.0) * 3600

# Relative rain intensity (hours since storm start, intensity): a sharp front, a burst of ~1 h,
# then a long tail; the same shape at every gauge, scaled by its depth and shifted by its distance.
HYETOGRAPH: tuple[tuple[float, float], ...] = (
    (0.0, 0.3), (0.2, 0.9), (0.4, 1.0), (1.3, 1.0), (1.8, 0.5), (3.0, 0.2), (4.5, 0.08), (STORM_HOURS, 0.0))

# Storm depth (mm) by a gauge's rank of distance from the storm centre: (ranks, low, high, max shift h).
_DEPTH_BY_RANK: tuple[tuple[range, float, float, float], ...] = (
    (range(0, 4), 215.0, 245.0, 0.0),      # the red-signal core: ≥ 100 mm within the first 75 min
    (range(4, 10), 120.0, 190.0, 0.15),
    (range(10, 20), 30.0, 100.0, 0.35),
    (range(20, 22), 5.0, 20.0, 0.5),
)                                           # further out: dry

T_REF = datetime(2020, 1, 1).timestamp()  # origin of cumulative intake meters


# --------------------------------------------------------------------------- deterministic noise

def _key(*parts: object) -> int:
    return zlib.crc32(":".join(str(p) for p in parts).encode())


def _u(key: int, i: int) -> float:
    """Uniform in [-1, 1) from (key, i): splitmix64, so noise needs no state and no hash seed."""
    z = (key * 0x9E3779B97F4A7C15 + i * 0xBF58476D1CE4E5B9 + 0x94D049BB133111EB) & 0xFFFFFFFFFFFFFFFF
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & 0xFFFFFFFFFFFFFFFF
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & 0xFFFFFFFFFFFFFFFF
    z ^= z >> 31
    return z / 2**63 - 1.0


def _smooth(key: int, t: float, period: float) -> float:
    """Value noise in [-1, 1]: random knots every ``period`` seconds joined by smoothstep curves."""
    x = t / period
    i = math.floor(x)
    f = x - i
    f = f * f * (3 - 2 * f)
    return _u(key, i) * (1 - f) + _u(key, i + 1) * f


# --------------------------------------------------------------------------- rain shape

class Hyetograph:
    """Piecewise-linear intensity, normalised to a total of 1; exact cumulative (piecewise quadratic)."""

    def __init__(self, knots: Sequence[tuple[float, float]] = HYETOGRAPH) -> None:
        self.t = [k[0] for k in knots]
        self.i = [k[1] for k in knots]
        area = [0.0]
        for j in range(1, len(knots)):
            area.append(area[-1] + (self.t[j] - self.t[j - 1]) * (self.i[j] + self.i[j - 1]) / 2)
        self.total = area[-1]
        self.cum = [a / self.total for a in area]

    def _seg(self, tau: float) -> int:
        j = 1
        while j < len(self.t) - 1 and tau > self.t[j]:
            j += 1
        return j

    def intensity(self, tau_h: float) -> float:
        """Fraction of the storm's depth per hour at ``tau_h`` hours after it starts."""
        if tau_h < self.t[0] or tau_h >= self.t[-1]:
            return 0.0
        j = self._seg(tau_h)
        t0, t1, i0, i1 = self.t[j - 1], self.t[j], self.i[j - 1], self.i[j]
        return (i0 + (i1 - i0) * (tau_h - t0) / (t1 - t0)) / self.total

    def cumulative(self, tau_h: float) -> float:
        """Fraction of the storm's depth fallen by ``tau_h`` hours after it starts (trapezoid, so exact)."""
        if tau_h <= self.t[0]:
            return 0.0
        if tau_h >= self.t[-1]:
            return 1.0
        j = self._seg(tau_h)
        t0 = self.t[j - 1]
        return self.cum[j - 1] + (tau_h - t0) * (self.i[j - 1] / self.total + self.intensity(tau_h)) / 2


# --------------------------------------------------------------------------- per-station parameters

@dataclass(slots=True)
class _Gauge:
    depth_mm: float = 0.0
    shift_h: float = 0.0


@dataclass(slots=True)
class _Level:
    """A river or reservoir: base offset, response to the storm (tabulated), scale of that response."""
    base_m: float                     # river: resting level; reservoir: margin below the flood limit in force
    noise_m: float
    response: list[float] = field(default_factory=list)  # routed rain on the grid, arbitrary units
    runoff: list[float] = field(default_factory=list)    # catchment runoff (mm/h) on the grid
    scale: float = 0.0                # metres of rise per unit of response
    q_warning: float = 100.0          # river flow at the warning level, m3/s
    area_km2: float = 10.0            # reservoir catchment
    base_inflow: float = 0.1
    base_outflow: float = 0.05
    spill_width_m: float = 10.0


@dataclass(slots=True)
class _Village:
    mean_flow_m3h: float
    pressure_mpa: float
    turbidity_ntu: float
    ph: float
    chlorine_mgl: float


def _km(a: Station, b: Station) -> float:
    return math.hypot((a.lat - b.lat) * 111.0, (a.lon - b.lon) * 89.3)  # cos(36.4°) * 111 km per degree


def _demand(hour: float) -> float:
    """Relative village demand over the local day: peaks at 07:00 and 19:00, a smaller one at noon."""
    def bump(h0: float, w: float) -> float:
        d = min(abs(hour - h0), 24 - abs(hour - h0))
        return math.exp(-((d / w) ** 2))
    return 0.35 + 1.1 * bump(7.0, 1.3) + 0.9 * bump(19.0, 1.6) + 0.35 * bump(12.0, 1.5)


_DEMAND_MAX = max(_demand(h / 10) for h in range(240))
_DEMAND_MEAN = sum(_demand(h / 10) for h in range(240)) / 240


class Scenario:
    """Values of every metric of every station at any simulated time (design.md §3 metric names)."""

    def __init__(self, stations: Iterable[Station], name: str = "normal", seed: int = 20260628,
                 start: datetime | None = None, tz: str | tzinfo = DEFAULT_TZ) -> None:
        if name not in SCENARIOS:
            raise ValueError(f"unknown scenario {name!r}; choose one of {', '.join(SCENARIOS)}")
        if start is None or start.tzinfo is None:
            raise ValueError("start must be a timezone-aware datetime")
        self.name = name
        self.seed = seed
        self.start = start
        self.t0 = start.timestamp()
        self.tz = ZoneInfo(tz) if isinstance(tz, str) else tz
        self.stations = {s.id: s for s in stations}
        self.hyetograph = Hyetograph()
        self._gauges: dict[str, _Gauge] = {}
        self._levels: dict[str, _Level] = {}
        self._villages: dict[str, _Village] = {}
        for s in self.stations.values():
            self._init_station(s, random.Random(f"{seed}:{s.id}"))
        if name == "storm":
            self._init_storm(random.Random(f"{seed}:storm"))

    # ----------------------------------------------------------------- set-up

    def _init_station(self, s: Station, rng: random.Random) -> None:
        if s.kind == Kind.river:
            # Rest 1.8–3.2 m below warning: dry-season rivers in Jimo run shallow.
            warning = s.warning_level_m if s.warning_level_m is not None else rng.uniform(5, 30)
            q_warning = _WARNING_FLOW.get(s.river or "", rng.uniform(60.0, 600.0)) * rng.uniform(0.7, 1.1)
            self._levels[s.id] = _Level(base_m=warning - rng.uniform(1.8, 3.2), noise_m=rng.uniform(0.01, 0.04),
                                        q_warning=q_warning)
        elif s.kind == Kind.reservoir:
            normal_storage = s.storage_at(s.normal_level_m) if s.normal_level_m is not None else None
            size = normal_storage or 1.0
            self._levels[s.id] = _Level(
                base_m=rng.uniform(0.4, 1.5), noise_m=rng.uniform(0.005, 0.02),
                area_km2=3.0 + 4.0 * size, base_inflow=0.02 + 0.03 * size * rng.uniform(0.5, 1.5),
                base_outflow=0.01 + 0.02 * size * rng.uniform(0.5, 1.5), spill_width_m=rng.uniform(8.0, 30.0))
        elif s.kind == Kind.village_water:
            self._villages[s.id] = _Village(
                mean_flow_m3h=rng.uniform(300, 3000) * 0.1 / 24,  # population × 100 L/person/day
                pressure_mpa=rng.uniform(0.30, 0.335), turbidity_ntu=rng.uniform(0.25, 0.42),
                ph=rng.uniform(7.25, 7.55), chlorine_mgl=rng.uniform(0.33, 0.47))
        elif s.kind == Kind.groundwater:
            self._levels[s.id] = _Level(base_m=rng.uniform(3.0, 12.0), noise_m=0.02)
        elif s.kind == Kind.intake:
            self._levels[s.id] = _Level(base_m=rng.uniform(1e4, 1e6), noise_m=rng.uniform(5.0, 60.0))  # m3, m3/h

    def _init_storm(self, rng: random.Random) -> None:
        gauges = [s for s in self.stations.values() if s.kind == Kind.rain]
        centre = Station(id="centre", kind=Kind.rain, name="", town="",
                         lat=rng.uniform(36.40, 36.56), lon=rng.uniform(120.38, 120.66))
        gauges.sort(key=lambda g: _km(g, centre))
        for rank, g in enumerate(gauges):
            self._gauges[g.id] = _Gauge()
            for ranks, lo, hi, max_shift in _DEPTH_BY_RANK:
                if rank in ranks:
                    self._gauges[g.id] = _Gauge(rng.uniform(lo, hi), rng.uniform(0.0, max_shift))
        n = round(GRID_SPAN_S / GRID_S) + 1
        # Tabulate every gauge's intensity (mm/h) once; each catchment mixes its nearest three.
        rates = {g.id: np.array(self._gauge_rates(g.id, n)) for g in gauges}
        rivers: list[tuple[float, str]] = []
        reservoirs: list[tuple[float, str]] = []
        for s in self.stations.values():
            lv = self._levels.get(s.id)
            if lv is None or s.kind == Kind.intake:
                continue
            near = sorted(gauges, key=lambda g: _km(g, s))[:3]
            weights = [1.0 / (1.0 + _km(g, s)) ** 2 for g in near]
            total = sum(weights) or 1.0
            x = (sum(w * rates[g.id] for g, w in zip(near, weights)) / total).tolist() if near else [0.0] * n
            if s.kind == Kind.river:
                lv.response = _route(_route(x, rng.uniform(0.35, 0.55)), rng.uniform(0.35, 0.55))
                rivers.append((max(lv.response), s.id))
            else:
                lv.runoff = _route(x, 0.5)
                lv.response = _store(lv.runoff, rng.uniform(1.2, 1.8))
                if s.kind == Kind.reservoir:
                    reservoirs.append((max(lv.response), s.id))
                else:  # groundwater: recharge lifts the table by up to half a metre
                    peak = max(lv.response) or 1.0
                    lv.scale = 0.5 / peak
        self._scale_rivers(sorted(rivers, reverse=True), rng)
        self._scale_reservoirs(sorted(reservoirs, reverse=True), rng)

    def _gauge_rates(self, gauge_id: str, n: int) -> list[float]:
        g = self._gauges[gauge_id]
        h = self.hyetograph
        return [g.depth_mm * h.intensity((i * GRID_S - STORM_START_S) / 3600 - g.shift_h) for i in range(n)]

    def _at(self, series: list[float], t_rel: float) -> float:
        if not series or t_rel <= 0:
            return 0.0
        x = t_rel / GRID_S
        i = int(x)
        if i >= len(series) - 1:
            return series[-1]
        return series[i] + (series[i + 1] - series[i]) * (x - i)

    def _scale_rivers(self, ranked: list[tuple[float, str]], rng: random.Random) -> None:
        top = [peak for peak, _ in ranked[4:5]] or [1.0]
        for rank, (peak, sid) in enumerate(ranked):
            s, lv = self.stations[sid], self._levels[sid]
            if peak <= 0:
                continue
            warning = s.warning_level_m if s.warning_level_m is not None else lv.base_m + 2.5
            guaranteed = s.guaranteed_level_m if s.guaranteed_level_m is not None else warning + 1.0
            if rank == 0:
                # Over the guaranteed level by TARGET_S (so over warning on the way up).
                lv.scale = (guaranteed + rng.uniform(0.2, 0.4) - lv.base_m) / _reached(lv.response, peak)
            elif rank <= 3:
                crest = warning + rng.uniform(0.3, 0.7) * (guaranteed - warning)
                lv.scale = (crest - lv.base_m) / peak
            else:
                # Everyone else stays under warning, rising in proportion to the rain on it.
                frac = 0.25 + 0.6 * min(1.0, peak / top[0])
                lv.scale = frac * (warning - lv.base_m) / peak

    def _scale_reservoirs(self, ranked: list[tuple[float, str]], rng: random.Random) -> None:
        top = [peak for peak, _ in ranked[2:3]] or [1.0]
        for rank, (peak, sid) in enumerate(ranked):
            lv = self._levels[sid]
            if peak <= 0:
                continue
            if rank <= 1:
                # Over the flood limit in force by TARGET_S; the base is its margin below that limit.
                lv.scale = (lv.base_m + rng.uniform(0.15, 0.3)) / _reached(lv.response, peak)
            else:
                lv.scale = (0.3 + 0.55 * min(1.0, peak / top[0])) * lv.base_m / peak

    # ----------------------------------------------------------------- values

    def values(self, station: Station | str, ts: datetime, prev: datetime | None = None) -> dict[str, float]:
        """The ``values`` of one report of ``station`` at ``ts``; ``prev`` is its previous report time
        (default one interval earlier), which only rain increments depend on."""
        s = self.stations[station] if isinstance(station, str) else station
        t = ts.timestamp()
        t_rel = t - self.t0
        kind = s.kind
        if kind == Kind.rain:
            p = prev.timestamp() if prev is not None else t - s.interval_s
            return {"rain_mm": max(0.0, round(round(self.cumulative_rain(s.id, t), 1)
                                             - round(self.cumulative_rain(s.id, p), 1), 1))}
        local = ts.astimezone(self.tz)
        local_hour = local.hour + local.minute / 60 + local.second / 3600
        if kind == Kind.village_water:
            return self._village(s, t, local_hour)
        lv = self._levels[s.id]
        k = _key(self.seed, s.id)
        if kind == Kind.river:
            level = lv.base_m + lv.scale * self._at(lv.response, t_rel) + lv.noise_m * _smooth(k, t, 1800)
            # Power-law rating curve through (zero-flow stage, 0) and (warning level, q_warning).
            zero = lv.base_m - 0.5
            warning = s.warning_level_m if s.warning_level_m is not None else lv.base_m + 2.5
            flow = lv.q_warning * (max(0.0, level - zero) / max(0.1, warning - zero)) ** 1.6
            return {"water_level_m": round(level, 2), "flow_m3s": round(flow, 3)}
        if kind == Kind.reservoir:
            return self._reservoir(s, lv, ts, t, t_rel, k)
        if kind == Kind.groundwater:
            depth = lv.base_m - lv.scale * self._at(lv.response, t_rel) + lv.noise_m * _smooth(k, t, 6 * 3600)
            return {"depth_m": round(max(0.1, depth), 2)}
        if kind == Kind.intake:
            return {"volume_m3": round(lv.base_m + lv.noise_m * (t - T_REF) / 3600, 1)}
        raise ValueError(f"no generator for station kind {kind!r}")

    def cumulative_rain(self, gauge_id: str, t: float) -> float:
        """Rain (mm) at a gauge from the simulation start to epoch time ``t``."""
        g = self._gauges.get(gauge_id)
        if g is None or g.depth_mm <= 0:
            return 0.0
        tau_h = (t - self.t0 - STORM_START_S) / 3600 - g.shift_h
        return g.depth_mm * self.hyetograph.cumulative(tau_h)

    def _reservoir(self, s: Station, lv: _Level, ts: datetime, t: float, t_rel: float, k: int) -> dict[str, float]:
        # The level tracks the limit in force, so on 1 June it steps down with it (operators draw
        # reservoirs down before the flood season; a step is the simplest shape of that).
        limit = s.flood_limit_at(ts, self.tz)
        if limit is None:  # a registry entry without levels: pretend a 50 m flood limit
            limit = 50.0
        # Rounded first, as the gauge reports it, so storage agrees with what the curve gives for the report.
        level = round(limit - lv.base_m + lv.scale * self._at(lv.response, t_rel) + lv.noise_m * _smooth(k, t, 3600), 2)
        inflow = lv.base_inflow * (1 + 0.1 * _smooth(k + 1, t, 7200)) + lv.area_km2 * self._at(lv.runoff, t_rel) / 3.6
        spill = 1.7 * lv.spill_width_m * max(0.0, level - limit) ** 1.5  # broad-crested weir over the limit
        floor = s.dead_level_m if s.dead_level_m is not None else limit - 10
        out = {"water_level_m": level, "inflow_m3s": round(inflow, 3),
               "outflow_m3s": round(lv.base_outflow + spill, 3),
               # Pore pressure under the dam follows the head over the foundation, about 3 m below dead level.
               "seepage_pressure_kpa": round(0.35 * 9.81 * (level - floor + 3.0) + 0.3 * _smooth(k + 2, t, 1800), 1)}
        storage = s.storage_at(level)
        if storage is not None:
            out["storage_mcm"] = round(storage, 4)
        return out

    def _village(self, s: Station, t: float, hour: float) -> dict[str, float]:
        v = self._villages[s.id]
        k = _key(self.seed, s.id)
        d = _demand(hour) / _DEMAND_MAX
        day = math.sin(2 * math.pi * (hour - 9) / 24)
        flow = v.mean_flow_m3h * _demand(hour) / _DEMAND_MEAN * (1 + 0.06 * _smooth(k, t, 900))
        return {
            "turbidity_ntu": round(min(0.6, max(0.2, v.turbidity_ntu + 0.05 * day
                                                + 0.06 * _smooth(k + 1, t, 2700))), 2),
            "ph": round(min(7.8, max(7.0, v.ph + 0.08 * day + 0.06 * _smooth(k + 2, t, 5400))), 2),
            # Chlorine decays faster in the warm afternoon and is drawn down by demand.
            "free_chlorine_mgl": round(min(0.6, max(0.2, v.chlorine_mgl - 0.04 * day - 0.05 * d
                                                   + 0.03 * _smooth(k + 3, t, 3600))), 2),
            # Head losses grow with demand, so pressure dips at the peaks.
            "pressure_mpa": round(min(0.35, max(0.2, v.pressure_mpa - 0.07 * d + 0.005 * _smooth(k + 4, t, 600))), 3),
            "flow_m3h": round(max(0.0, flow), 2),
        }


def _reached(response: list[float], peak: float) -> float:
    """The response at TARGET_S, the anchor for "over the threshold by then"; never a sliver of the peak,
    which would scale a late-peaking station to an absurd crest."""
    i = min(len(response) - 1, round(TARGET_S / GRID_S))
    return max(response[i], 0.5 * peak)


def _route(x: list[float], k_h: float) -> list[float]:
    """Outflow of a linear reservoir (time constant ``k_h`` hours) fed by ``x``: lags and spreads it."""
    a = math.exp(-GRID_S / (k_h * 3600))
    out, y = [], 0.0
    for v in x:
        y = y * a + v * (1 - a)
        out.append(y)
    return out


def _store(x: list[float], k_h: float) -> list[float]:
    """Storage of a linear reservoir fed by ``x`` (units of x × hours): keeps rising while inflow exceeds outflow."""
    return [v * k_h for v in _route(x, k_h)]
