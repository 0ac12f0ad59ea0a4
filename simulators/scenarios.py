"""Reading values for any station at any simulated time, without MQTT: the part of the simulator worth unit-testing.

A scenario is a pure function of (spec, seed, simulation start, station, time): the runner, the tests and a
replay of the same seed all see the same numbers, whatever order they ask in. The spec comes from a YAML file
(simulators/spec.py, simulators/scenario_files); the physics is in simulators/hydrology.py and
simulators/quality.py. Everything that depends on the past (routing, reservoir storage) is integrated once,
at construction, on a one-minute grid from the simulation start; values are read off that grid.

With a storm: each gauge gets a depth by its distance from the storm centre and the file's hyetograph
shape. Rivers and reservoirs mix the rain of their nearest three gauges, lose some to the ground, route the
rest through linear reservoirs, and see it as flow (rivers: stage from the rating curve) or inflow
(reservoirs: a water balance with outlet and spillway). Catchment areas are the synthetic district's free
parameter: they are chosen so that the stations nearest the storm tell the scenario's story (one river over
its guaranteed level, others over warning, reservoirs over their flood-limit level by ``target_h``) and the
others rise less.
"""

from __future__ import annotations

import math
import random
import zlib
from dataclasses import dataclass
from datetime import datetime, tzinfo
from pathlib import Path
from typing import Iterable
from zoneinfo import ZoneInfo

import numpy as np

from core.domain import Kind, Station
from simulators import quality
from simulators.district import DEFAULT_SEED, RIVERS
from simulators.hydrology import Balance, Hyetograph, Rating, ReservoirModel, route, runoff, to_m3s
from simulators.spec import ScenarioSpec, builtin_names, load_scenario

_WARNING_FLOW = {r[0]: r[4] for r in RIVERS}  # m3/s at the warning level, by river name

DEFAULT_TZ = "Asia/Shanghai"  # Jimo's local time: daily cycles and the flood-season date use it
GRID_S = 60.0
# Without a storm the grid still covers a day and a half; after it everything holds its last state.
QUIET_SPAN_S = 36 * 3600.0
AFTER_STORM_S = 30 * 3600.0
T_REF = datetime(2020, 1, 1).timestamp()  # origin of cumulative intake meters


def _describe() -> dict[str, str]:
    out = {}
    for name in builtin_names():
        try:
            out[name] = load_scenario(name).description
        except ValueError as exc:  # a broken shipped file must not break the import; it fails when used
            out[name] = f"(invalid: {exc})"
    return out


SCENARIOS: dict[str, str] = _describe()  # shipped scenario name → description


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


def _smooth_grid(key: int, t0: float, n: int, period: float) -> np.ndarray:
    """_smooth at t0, t0 + GRID_S, … (n points), computing each random knot once."""
    x = (t0 + np.arange(n) * GRID_S) / period
    i = np.floor(x).astype(np.int64)
    f = x - i
    f = f * f * (3 - 2 * f)
    knots = {j: _u(key, j) for j in range(int(i[0]), int(i[-1]) + 2)}
    lo = np.array([knots[j] for j in i.tolist()])
    hi = np.array([knots[j + 1] for j in i.tolist()])
    return lo * (1 - f) + hi * f


# --------------------------------------------------------------------------- per-station state

@dataclass(slots=True)
class _Gauge:
    depth_mm: float = 0.0
    shift_h: float = 0.0


@dataclass(slots=True)
class _River:
    rating: Rating
    base_flow_m3s: float
    noise: float                       # relative flow noise
    routed_mm_h: np.ndarray | None = None
    area_km2: float = 0.0


@dataclass(slots=True)
class _Reservoir:
    model: ReservoirModel
    noise_m: float                     # gauge noise (wind set-up, waves) on top of the modelled level
    base_inflow: np.ndarray
    routed_mm_h: np.ndarray | None = None
    area_km2: float = 0.0
    balance: Balance | None = None


@dataclass(slots=True)
class _Plain:
    """Groundwater and intake meters: a base value, a rate or noise, and for groundwater a recharge response."""
    base: float
    noise: float
    response: np.ndarray | None = None
    scale: float = 0.0


def _km(a: Station, b: Station) -> float:
    return math.hypot((a.lat - b.lat) * 111.0, (a.lon - b.lon) * 89.3)  # cos(36.4°) * 111 km per degree


def _synthetic_curve(limit: float) -> list[tuple[float, float]]:
    """A registry entry without a curve: a prismatic 0.2 km² pond, so the balance still has a shape."""
    return [(limit - 10.0, 0.05), (limit + 10.0, 0.05 + 20.0 * 0.2)]


class Scenario:
    """Values of every metric of every station at any simulated time (metric names: docs/data-model.md).

    ``name`` is a shipped scenario's name, a path to a YAML file, or a ScenarioSpec. ``seed`` defaults to the
    file's seed, else the district's default seed.
    """

    def __init__(self, stations: Iterable[Station], name: str | Path | ScenarioSpec = "normal",
                 seed: int | None = None, start: datetime | None = None, tz: str | tzinfo = DEFAULT_TZ) -> None:
        self.spec = load_scenario(name)
        if start is None or start.tzinfo is None:
            raise ValueError("start must be a timezone-aware datetime")
        self.name = self.spec.name
        self.seed = seed if seed is not None else self.spec.seed if self.spec.seed is not None else DEFAULT_SEED
        self.start = start
        self.t0 = start.timestamp()
        self.tz = ZoneInfo(tz) if isinstance(tz, str) else tz
        self.stations = {s.id: s for s in stations}
        storm = self.spec.storm
        self.hyetograph = Hyetograph(storm.hyetograph) if storm else None
        self.storm_start_s = storm.start_min * 60 if storm else 0.0
        span = self.storm_start_s + storm.hours * 3600 + AFTER_STORM_S if storm else QUIET_SPAN_S
        self.n = round(span / GRID_S) + 1
        self._gauges: dict[str, _Gauge] = {}
        self._rates: dict[str, np.ndarray] = {}    # gauge id → rain intensity mm/h on the grid
        self._rivers: dict[str, _River] = {}
        self._reservoirs: dict[str, _Reservoir] = {}
        self._villages: dict[str, quality.Village] = {}
        self._plain: dict[str, _Plain] = {}
        if storm:
            self._init_storm_rain(random.Random(f"{self.seed}:storm"))
        for s in self.stations.values():
            self._init_station(s, random.Random(f"{self.seed}:{s.id}"))
        if storm:
            self._route_catchments()
            self._attach_gauges()
        for res in self._reservoirs.values():
            inflow = res.base_inflow + (to_m3s(res.routed_mm_h, res.area_km2) if res.routed_mm_h is not None else 0.0)
            res.balance = res.model.simulate(inflow, GRID_S)
        self._init_dosing_failures()
        self._turbidity_rain: dict[str, np.ndarray] = {}

    # ----------------------------------------------------------------- set-up

    def _init_storm_rain(self, rng: random.Random) -> None:
        storm = self.spec.storm
        assert storm is not None and self.hyetograph is not None
        gauges = [s for s in self.stations.values() if s.kind == Kind.rain]
        lat = storm.centre.lat if storm.centre else rng.uniform(36.40, 36.56)
        lon = storm.centre.lon if storm.centre else rng.uniform(120.38, 120.66)
        centre = Station(id="centre", kind=Kind.rain, name="", town="", lat=lat, lon=lon)
        gauges.sort(key=lambda g: _km(g, centre))
        times_h = (np.arange(self.n) * GRID_S - self.storm_start_s) / 3600
        for rank, g in enumerate(gauges):
            gauge = _Gauge()
            for band in storm.depth_by_rank:
                if band.ranks[0] <= rank < band.ranks[1]:
                    gauge = _Gauge(rng.uniform(*band.depth_mm), rng.uniform(0.0, band.max_shift_h))
            self._gauges[g.id] = gauge
            h = self.hyetograph
            self._rates[g.id] = np.array([gauge.depth_mm * h.intensity(x - gauge.shift_h) for x in times_h.tolist()])

    def _init_station(self, s: Station, rng: random.Random) -> None:
        if s.kind == Kind.river:
            # Rest 1.8–3.2 m below warning: dry-season rivers in Jimo run shallow.
            warning = s.warning_level_m if s.warning_level_m is not None else rng.uniform(5, 30)
            q_warning = _WARNING_FLOW.get(s.river or "", rng.uniform(60.0, 600.0)) * rng.uniform(0.7, 1.1)
            rest = warning - rng.uniform(1.8, 3.2)
            rating = Rating(h0=rest - 0.5, h_ref=warning, q_ref=q_warning)
            self._rivers[s.id] = _River(rating, rating.flow(rest), noise=rng.uniform(0.02, 0.08))
        elif s.kind == Kind.reservoir:
            limit = s.flood_limit_at(self.start, self.tz)
            limit = 50.0 if limit is None else limit  # a registry entry without levels
            curve = s.level_storage if s.level_storage and len(s.level_storage) >= 2 else _synthetic_curve(limit)
            size = s.storage_at(s.normal_level_m) if s.normal_level_m is not None and s.level_storage else 1.0
            start_m = limit - rng.uniform(0.4, 1.5)
            supply = 0.02 + 0.03 * size * rng.uniform(0.5, 1.5)
            probe = ReservoirModel(curve, limit, start_m, 1.0, supply, 0.0)
            # The outlet can draw the pre-flood band back down in 4–8 h at full opening.
            outlet = (probe.storage_m3(limit) - probe.storage_m3(start_m)) / (rng.uniform(4, 8) * 3600)
            width = rng.uniform(8.0, 30.0) * max(1.0, math.sqrt(size / 5.0))
            model = ReservoirModel(curve, limit, start_m, width, supply, outlet)
            k = _key(self.seed, s.id, "inflow")
            base = supply * (1 + 0.1 * _smooth_grid(k, self.t0, self.n, 7200))
            self._reservoirs[s.id] = _Reservoir(model, noise_m=rng.uniform(0.005, 0.02), base_inflow=base)
        elif s.kind == Kind.village_water:
            self._villages[s.id] = quality.Village(
                mean_flow_m3h=rng.uniform(300, 3000) * 0.1 / 24,  # population × 100 L/person/day
                pressure_mpa=rng.uniform(0.30, 0.335), turbidity_ntu=rng.uniform(0.25, 0.42),
                ph=rng.uniform(7.25, 7.55), dose_mgl=rng.uniform(0.55, 0.7), age_h=rng.uniform(2.0, 5.0),
                decay_per_h=rng.uniform(0.03, 0.06), flush_h=rng.uniform(0.3, 0.6))
        elif s.kind == Kind.groundwater:
            self._plain[s.id] = _Plain(base=rng.uniform(3.0, 12.0), noise=0.02)
        elif s.kind == Kind.intake:
            self._plain[s.id] = _Plain(base=rng.uniform(1e4, 1e6), noise=rng.uniform(5.0, 60.0))  # m3, m3/h

    def _catchment_rain(self, s: Station, gauges: list[Station]) -> np.ndarray:
        """Rain over a catchment: its nearest three gauges, weighted by inverse square distance."""
        near = sorted(gauges, key=lambda g: _km(g, s))[:3]
        if not near:
            return np.zeros(self.n)
        weights = [1.0 / (1.0 + _km(g, s)) ** 2 for g in near]
        return sum(w * self._rates[g.id] for g, w in zip(near, weights)) / sum(weights)

    def _route_catchments(self) -> None:
        storm = self.spec.storm
        assert storm is not None
        gauges = [s for s in self.stations.values() if s.kind == Kind.rain]
        rivers, reservoirs = [], []
        for sid in [*self._rivers, *self._reservoirs, *self._plain]:
            s = self.stations[sid]
            if s.kind == Kind.intake:
                continue
            rng = random.Random(f"{self.seed}:{sid}:catchment")
            effective = runoff(self._catchment_rain(s, gauges), GRID_S, rng.uniform(*storm.runoff_coefficient),
                               rng.uniform(*storm.initial_loss_mm))
            if s.kind == Kind.river:
                river = self._rivers[sid]
                river.routed_mm_h = route(route(effective, rng.uniform(0.35, 0.55), GRID_S),
                                          rng.uniform(0.35, 0.55), GRID_S)
                rivers.append((float(river.routed_mm_h.max()), sid))
            elif s.kind == Kind.reservoir:
                res = self._reservoirs[sid]
                res.routed_mm_h = route(route(effective, 0.5, GRID_S), rng.uniform(1.2, 1.8), GRID_S)
                reservoirs.append((float(res.routed_mm_h.sum()), sid))
            else:  # groundwater: recharge lifts the table by up to half a metre
                plain = self._plain[sid]
                recharge = route(effective, 0.5, GRID_S)
                plain.response = np.cumsum(recharge - route(recharge, rng.uniform(1.2, 1.8), GRID_S))
                peak = float(plain.response.max())
                plain.scale = 0.5 / peak if peak > 0 else 0.0
        self._size_rivers(sorted(rivers, reverse=True))
        self._size_reservoirs(sorted(reservoirs, reverse=True))

    @property
    def _target_index(self) -> int:
        """Grid index of the time by which the designated stations cross their thresholds."""
        return min(self.n - 1, round(self.spec.storm.target_h * 3600 / GRID_S))

    def _size_rivers(self, ranked: list[tuple[float, str]]) -> None:
        storm = self.spec.storm
        n_g, n_w = storm.rivers_over_guaranteed, storm.rivers_over_warning
        top = [peak for peak, _ in ranked[n_g + n_w:n_g + n_w + 1]] or [1.0]
        for rank, (peak, sid) in enumerate(ranked):
            s, river = self.stations[sid], self._rivers[sid]
            if peak <= 0:
                continue
            rng = random.Random(f"{self.seed}:{sid}:size")
            rating, rest = river.rating, river.rating.stage(river.base_flow_m3s)
            warning = rating.h_ref
            guaranteed = s.guaranteed_level_m if s.guaranteed_level_m is not None else warning + 1.0
            if rank < n_g:
                # Over the guaranteed level by the target time (so over warning on the way up).
                stage, per_km2 = guaranteed + rng.uniform(0.2, 0.4), _reached(river.routed_mm_h, self._target_index)
            elif rank < n_g + n_w:
                stage, per_km2 = warning + rng.uniform(0.3, 0.7) * (guaranteed - warning), peak
            else:
                # Everyone else stays under warning, rising in proportion to the rain on it.
                stage, per_km2 = rest + (0.25 + 0.6 * min(1.0, peak / top[0])) * (warning - rest), peak
            river.area_km2 = (rating.flow(stage) - river.base_flow_m3s) / to_m3s(per_km2, 1.0)

    def _size_reservoirs(self, ranked: list[tuple[float, str]]) -> None:
        storm = self.spec.storm
        n_over = storm.reservoirs_over_flood_limit
        top = [total for total, _ in ranked[n_over:n_over + 1]] or [1.0]
        target = self._target_index
        for rank, (total, sid) in enumerate(ranked):
            res = self._reservoirs[sid]
            if total <= 0:
                continue
            m = res.model
            band_m3 = m.storage_m3(m.crest_m) - m.storage_m3(m.start_m)
            if rank < n_over:
                # Over the crest (the flood-limit level) by the target time: the smallest area that does it.
                over = m.crest_m + random.Random(f"{self.seed}:{sid}:size").uniform(0.15, 0.3)

                def level_at_target(area: float) -> float:
                    inflow = res.base_inflow + to_m3s(res.routed_mm_h, area)
                    return float(m.simulate(inflow, GRID_S, steps=target + 1).level_m[-1])

                lo, hi = 0.0, 1.0
                while level_at_target(hi) < over and hi < 5000:
                    lo, hi = hi, hi * 2
                for _ in range(30):
                    mid = (lo + hi) / 2
                    lo, hi = (mid, hi) if level_at_target(mid) < over else (lo, mid)
                res.area_km2 = hi
            else:
                # Fill part of the band below the crest (before release, so it stays below it).
                frac = 0.3 + 0.55 * min(1.0, total / top[0])
                res.area_km2 = frac * band_m3 / (float(res.routed_mm_h.sum()) * GRID_S / 3600 * 1000)

    def _attach_gauges(self) -> None:
        """Each village's nearest gauge and how strongly its source clouds after rain there."""
        gauges = [g for g in self.stations.values() if g.kind == Kind.rain]
        lo, hi = self.spec.water_quality.turbidity_after_rain.ntu_per_mm_h
        for sid, v in self._villages.items():
            if gauges:
                v.gauge_id = min(gauges, key=lambda g: _km(g, self.stations[sid])).id
                v.ntu_per_mm_h = random.Random(f"{self.seed}:{sid}:turbidity").uniform(lo, hi)

    def _init_dosing_failures(self) -> None:
        villages_by_town: dict[str, list[str]] = {}
        for sid in self._villages:
            villages_by_town.setdefault(self.stations[sid].town, []).append(sid)
        for j, failure in enumerate(self.spec.water_quality.dosing_failures):
            ids = [v for v in failure.villages if v in self._villages]
            if failure.town:
                town = sorted(villages_by_town.get(failure.town, []))
                if failure.count is not None and failure.count < len(town):
                    town = sorted(random.Random(f"{self.seed}:dosing:{j}").sample(town, failure.count))
                ids += town
            end = math.inf if failure.duration_h is None else (failure.start_h + failure.duration_h) * 3600
            for sid in ids:
                self._villages[sid].dosing_off.append((failure.start_h * 3600, end))
        for v in self._villages.values():
            v.dosing_off.sort()

    def _village_rain(self, v: quality.Village) -> np.ndarray | None:
        """Rain at the village's nearest gauge, routed through its source: what turbidity follows."""
        if v.gauge_id is None:
            return None
        series = self._turbidity_rain.get(v.gauge_id)
        if series is None:
            lag = self.spec.water_quality.turbidity_after_rain.lag_h
            series = self._turbidity_rain[v.gauge_id] = route(self._rates[v.gauge_id], lag, GRID_S)
        return series

    # ----------------------------------------------------------------- reading the grid

    def _at(self, series: np.ndarray | None, t_rel: float) -> float:
        if series is None or t_rel <= 0:
            return 0.0 if series is None else float(series[0])
        x = t_rel / GRID_S
        i = int(x)
        if i >= len(series) - 1:
            return float(series[-1])
        return float(series[i] + (series[i + 1] - series[i]) * (x - i))

    def balance(self, reservoir_id: str) -> Balance:
        """The reservoir's water balance on the grid (every GRID_S seconds from the start), for tests and tools."""
        b = self._reservoirs[reservoir_id].balance
        assert b is not None
        return b

    def river_flow(self, river_id: str, t_rel: float) -> float:
        """Modelled flow (m³/s) without gauge noise, ``t_rel`` seconds after the start."""
        river = self._rivers[river_id]
        return river.base_flow_m3s + to_m3s(self._at(river.routed_mm_h, t_rel), river.area_km2) \
            if river.routed_mm_h is not None else river.base_flow_m3s

    def rain_rate(self, gauge_id: str, t_rel: float) -> float:
        """Rain intensity (mm/h) at a gauge ``t_rel`` seconds after the start."""
        return self._at(self._rates.get(gauge_id), t_rel)

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
        k = _key(self.seed, s.id)
        if kind == Kind.village_water:
            local = ts.astimezone(self.tz)
            return self._village(s, t, t_rel, local.hour + local.minute / 60 + local.second / 3600, k)
        if kind == Kind.river:
            river = self._rivers[s.id]
            flow = self.river_flow(s.id, t_rel) * (1 + river.noise * _smooth(k, t, 1800))
            return {"water_level_m": round(float(river.rating.stage(flow)), 2), "flow_m3s": round(flow, 3)}
        if kind == Kind.reservoir:
            return self._reservoir(s, ts, t, t_rel, k)
        plain = self._plain[s.id]
        if kind == Kind.groundwater:
            depth = plain.base - plain.scale * self._at(plain.response, t_rel) + plain.noise * _smooth(k, t, 6 * 3600)
            return {"depth_m": round(max(0.1, depth), 2)}
        if kind == Kind.intake:
            return {"volume_m3": round(plain.base + plain.noise * (t - T_REF) / 3600, 1)}
        raise ValueError(f"no generator for station kind {kind!r}")

    def cumulative_rain(self, gauge_id: str, t: float) -> float:
        """Rain (mm) at a gauge from the simulation start to epoch time ``t``."""
        g = self._gauges.get(gauge_id)
        if g is None or g.depth_mm <= 0 or self.hyetograph is None:
            return 0.0
        tau_h = (t - self.t0 - self.storm_start_s) / 3600 - g.shift_h
        return g.depth_mm * self.hyetograph.cumulative(tau_h)

    def _reservoir(self, s: Station, ts: datetime, t: float, t_rel: float, k: int) -> dict[str, float]:
        res = self._reservoirs[s.id]
        b, m = res.balance, res.model
        assert b is not None
        # The balance runs against the flood limit in force at the start; when a new season's limit comes
        # into force the level steps with it (operators draw reservoirs down before the flood season).
        limit = s.flood_limit_at(ts, self.tz)
        shift = 0.0 if limit is None else limit - m.crest_m
        # Rounded first, as the gauge reports it, so storage agrees with what the curve gives for the report.
        level = round(self._at(b.level_m, t_rel) + shift + res.noise_m * _smooth(k, t, 3600), 2)
        floor = s.dead_level_m if s.dead_level_m is not None else m.crest_m - 10
        out = {"water_level_m": level, "inflow_m3s": round(self._at(b.inflow_m3s, t_rel), 3),
               "outflow_m3s": round(self._at(b.release_m3s, t_rel) + self._at(b.spill_m3s, t_rel), 3),
               # Pore pressure under the dam follows the head over the foundation, about 3 m below dead level.
               "seepage_pressure_kpa": round(0.35 * 9.81 * (level - floor + 3.0) + 0.3 * _smooth(k + 2, t, 1800), 1)}
        storage = s.storage_at(level)
        if storage is not None:
            out["storage_mcm"] = round(storage, 4)
        return out

    def _village(self, s: Station, t: float, t_rel: float, hour: float, k: int) -> dict[str, float]:
        v = self._villages[s.id]
        d = quality.demand(hour) / quality.DEMAND_MAX
        day = math.sin(2 * math.pi * (hour - 9) / 24)
        flow = v.mean_flow_m3h * quality.demand(hour) / quality.DEMAND_MEAN * (1 + 0.06 * _smooth(k, t, 900))
        rain = self._at(self._village_rain(v), t_rel)
        turbidity = min(0.6, max(0.2, v.turbidity_ntu + 0.05 * day + 0.06 * _smooth(k + 1, t, 2700)))
        chlorine = min(0.6, max(0.2, quality.chlorine_mgl(v, hour) + 0.02 * _smooth(k + 3, t, 3600)))
        return {
            "turbidity_ntu": round(turbidity + v.ntu_per_mm_h * rain, 2),
            # Rain dilutes the source's buffering a little: pH dips after heavy rain.
            "ph": round(min(7.8, max(7.0, v.ph + 0.08 * day + 0.06 * _smooth(k + 2, t, 5400)))
                        - min(0.3, 0.004 * rain), 2),
            "free_chlorine_mgl": round(chlorine * quality.dosing_factor(v, t_rel), 2),
            # Head losses grow with demand, so pressure dips at the peaks.
            "pressure_mpa": round(min(0.35, max(0.2, v.pressure_mpa - 0.07 * d + 0.005 * _smooth(k + 4, t, 600))), 3),
            "flow_m3h": round(max(0.0, flow), 2),
        }



def _reached(series: np.ndarray, i: int) -> float:
    """The routed flow at the target time, the anchor for "over the threshold by then"; never a sliver of the
    peak, which would size a late-peaking catchment absurdly large."""
    return max(float(series[min(i, len(series) - 1)]), 0.5 * float(series.max()))
