"""The duty dashboard's district-wide views: the map, rain sums, reservoirs, village water quality.

Each request reads the store once for the newest reading of every station (``store.latest``) and the registry
once each for the stations, the open alerts and the rules (the stale rule), whatever the number of stations; the rain table adds one
range query per rain gauge (24 in Jimo) because the store port has no multi-station range read.

Figures are measured against the data clock (``as_of``: the newest reading stored, never later than now), as the
alert rules are, so the demo's and a replay's simulated time read like live data.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Iterable

from fastapi import APIRouter, Depends

from api.auth import ANY_ROLE
from api.deps import ClockDep, RegistryDep, SettingsDep, StoreDep
from api.overview_schemas import (LineStringGeometry, MapOut, MultiLineStringGeometry, PointGeometry, QualityLimit,
                                  RainGauge, RainOut, ReservoirRow, ReservoirsOut, RiverFeature, RiverProperties,
                                  StationFeature, StationProperties, StationState, TownQuality, VillageQuality,
                                  WaterQualityOut)
from core.catalog import is_stale, stale_intervals
from core.domain import METRICS, SEVERITY_ORDER, Kind, Reading, Station
from core.patrols.repo import PatrolRepo
from core.registry import Registry
from core.rules import Rule
from core.timeutil import zone
from core.tsdb import TimeSeriesStore

router = APIRouter(prefix="/overview", tags=["overview"], dependencies=[Depends(ANY_ROLE)])

RAIN_WINDOWS_H = (1, 3, 6, 24)
# A gauge reports every 5 min and on each tip in rain: 24 h stays far below this.
MAX_RAIN_READINGS = 50_000
COORD_DIGITS = 5  # ≈ 1 m: enough for a district map, and a third of the bytes of full doubles

GB5749 = "GB 5749-2022"
# Drinking-water limits (docs/domain.md, "Drinking water"). A standard, not an alert setting: tuning an alert rule must not change
# what counts as compliant. Pressure is a service level (CJ/T 316), shown beside them but not part of compliance.
QUALITY_LIMITS: tuple[tuple[str, float | None, float | None, str], ...] = (
    ("turbidity_ntu", None, 1.0, GB5749),
    ("ph", 6.5, 8.5, GB5749),
    ("free_chlorine_mgl", 0.05, 2.0, f"{GB5749} (at the tap)"),
)
QUALITY_SHOWN = ("turbidity_ntu", "ph", "free_chlorine_mgl", "pressure_mpa")


@dataclass(slots=True)
class Snapshot:
    """The district now: stations, the newest value of each (station, metric), open alert severities."""

    stations: list[Station]
    latest: dict[str, dict[str, Reading]]
    severity: dict[str, str]
    as_of: datetime
    # The enabled rules: a station is stale by the same stale rule that raises its stale-station alert.
    rules: list[Rule] = field(default_factory=list)

    def last_ts(self, station_id: str) -> datetime | None:
        values = self.latest.get(station_id)
        return max(r.ts for r in values.values()) if values else None

    def state(self, station: Station) -> StationState:
        sev = self.severity.get(station.id)
        if sev is not None:
            return sev  # type: ignore[return-value]
        last = self.last_ts(station.id)
        if is_stale(last, station, stale_intervals(station, self.rules), self.as_of):
            return "stale"
        return "normal"

    def value(self, station_id: str, metric: str) -> float | None:
        r = self.latest.get(station_id, {}).get(metric)
        return r.value if r is not None else None


def snapshot(registry: Registry, store: TimeSeriesStore, now: datetime, kind: Kind | None = None) -> Snapshot:
    stations = registry.list_stations(kind=kind.value if kind else None)
    # Every kind's latest, also for one kind's table: the data clock is the district's, so a kind whose feed
    # stopped shows as stale instead of setting its own clock back.
    rows = store.latest()
    latest: dict[str, dict[str, Reading]] = defaultdict(dict)
    newest: datetime | None = None
    for r in rows:
        latest[r.station_id][r.metric] = r
        if newest is None or r.ts > newest:
            newest = r.ts
    as_of = min(newest, now) if newest is not None else now
    severity: dict[str, str] = {}
    for alert in registry.open_alerts():
        cur = severity.get(alert.station_id)
        if cur is None or SEVERITY_ORDER.index(alert.severity) > SEVERITY_ORDER.index(cur):
            severity[alert.station_id] = alert.severity
    return Snapshot(stations=stations, latest=dict(latest), severity=severity, as_of=as_of,
                    rules=registry.list_rules(enabled=True))


def _round(v: float | None, digits: int) -> float | None:
    return None if v is None else round(v + 0.0, digits)


def _pos(lon: float, lat: float) -> tuple[float, float]:
    return round(lon, COORD_DIGITS), round(lat, COORD_DIGITS)


# -- map ----------------------------------------------------------------------------------------------------
@router.get("/map", response_model=MapOut, summary="District map: rivers and stations with their state (GeoJSON)",
            description="A GeoJSON FeatureCollection: river courses (LineString or MultiLineString, from the "
                        "river-chief registry; none until rivers are loaded) and every station as a Point with its "
                        "`kind` and `state` (`normal`, an alert colour, or `stale`).")
def overview_map(registry: RegistryDep, store: StoreDep, clock: ClockDep, settings: SettingsDep) -> MapOut:
    snap = snapshot(registry, store, clock.now())
    features: list[RiverFeature | StationFeature] = []
    lons: list[float] = []
    lats: list[float] = []
    for river in PatrolRepo(registry.engine, settings).list_rivers():
        lines = [[_pos(p[0], p[1]) for p in line] for line in river.geometry]
        for line in lines:
            lons.extend(p[0] for p in line)
            lats.extend(p[1] for p in line)
        geometry = (LineStringGeometry(coordinates=lines[0]) if len(lines) == 1
                    else MultiLineStringGeometry(coordinates=lines))
        features.append(RiverFeature(id=river.id, geometry=geometry,
                                     properties=RiverProperties(id=river.id, name=river.name)))
    counts: dict[str, int] = {s: 0 for s in ("normal", *SEVERITY_ORDER, "stale")}
    for st in snap.stations:
        state = snap.state(st)
        counts[state] += 1
        lons.append(st.lon)
        lats.append(st.lat)
        features.append(StationFeature(
            id=st.id, geometry=PointGeometry(coordinates=_pos(st.lon, st.lat)),
            properties=StationProperties(id=st.id, name=st.name, kind=st.kind, town=st.town, state=state,
                                         last_ts=snap.last_ts(st.id))))
    bbox = (min(lons), min(lats), max(lons), max(lats)) if lons else None
    return MapOut(as_of=snap.as_of, bbox=bbox, counts=counts, features=features)


# -- rain ---------------------------------------------------------------------------------------------------
def window_sums(readings: Iterable[Reading], as_of: datetime, windows_h: Iterable[int]) -> dict[int, float]:
    """Sum of ``rain_mm`` increments over (as_of − h, as_of] for each window."""
    sums = {h: 0.0 for h in windows_h}
    for r in readings:
        if r.ts > as_of:
            continue
        age = as_of - r.ts
        for h in sums:
            if age < timedelta(hours=h):
                sums[h] += r.value
    return sums


@router.get("/rain", response_model=RainOut, summary="Rain per gauge over 1, 3, 6 and 24 h",
            description="Per rain gauge, the sum of `rain_mm` over the last 1, 3, 6 and 24 h of the data clock "
                        "(`as_of`); null sums for a gauge without a report in 24 h (missing is not dry).")
def overview_rain(registry: RegistryDep, store: StoreDep, clock: ClockDep) -> RainOut:
    snap = snapshot(registry, store, clock.now(), Kind.rain)
    start = snap.as_of - timedelta(hours=max(RAIN_WINDOWS_H))
    end = snap.as_of + timedelta(milliseconds=1)  # the window includes as_of itself
    gauges: list[RainGauge] = []
    for st in snap.stations:
        rows = store.query(st.id, "rain_mm", start, end, limit=MAX_RAIN_READINGS)
        sums: dict[int, float | None] = {h: None for h in RAIN_WINDOWS_H}
        if rows:
            sums.update({h: round(v + 0.0, 1) for h, v in window_sums(rows, snap.as_of, RAIN_WINDOWS_H).items()})
        gauges.append(RainGauge(station_id=st.id, name=st.name, town=st.town, rain_1h_mm=sums[1],
                                rain_3h_mm=sums[3], rain_6h_mm=sums[6], rain_24h_mm=sums[24],
                                last_ts=snap.last_ts(st.id), state=snap.state(st)))
    gauges.sort(key=lambda g: (g.rain_24h_mm is None, -(g.rain_24h_mm or 0.0), g.station_id))
    return RainOut(as_of=snap.as_of, windows_h=list(RAIN_WINDOWS_H), gauges=gauges)


# -- reservoirs -----------------------------------------------------------------------------------------------
@router.get("/reservoirs", response_model=ReservoirsOut, summary="Reservoirs: level against flood limit, storage",
            description="Per reservoir: the newest level, the flood-limit level in force on `as_of`'s local date "
                        "(Asia/Shanghai by default), the margin, and storage (the `storage_mcm` reading, else from "
                        "the level–storage curve) as a share of the storage at the normal pool level.")
def overview_reservoirs(registry: RegistryDep, store: StoreDep, clock: ClockDep,
                        settings: SettingsDep) -> ReservoirsOut:
    snap = snapshot(registry, store, clock.now(), Kind.reservoir)
    tz = zone(settings.display_timezone)
    rows: list[ReservoirRow] = []
    for st in snap.stations:
        level_r = snap.latest.get(st.id, {}).get("water_level_m")
        level = level_r.value if level_r is not None else None
        limit = st.flood_limit_at(snap.as_of, tz)
        storage = snap.value(st.id, "storage_mcm")
        if storage is None and level is not None:
            storage = st.storage_at(level)
        capacity = st.storage_at(st.normal_level_m) if st.normal_level_m is not None else None
        pct = storage / capacity * 100 if storage is not None and capacity else None
        rows.append(ReservoirRow(
            station_id=st.id, name=st.name, town=st.town, water_level_m=_round(level, 2),
            ts=level_r.ts if level_r is not None else None, flood_limit_level_m=limit,
            above_flood_limit_m=_round(level - limit, 2) if level is not None and limit is not None else None,
            normal_level_m=st.normal_level_m, design_flood_level_m=st.design_flood_level_m,
            check_flood_level_m=st.check_flood_level_m, storage_mcm=_round(storage, 3),
            storage_pct=_round(pct, 1), inflow_m3s=_round(snap.value(st.id, "inflow_m3s"), 2),
            outflow_m3s=_round(snap.value(st.id, "outflow_m3s"), 2), state=snap.state(st)))
    rows.sort(key=lambda r: (r.above_flood_limit_m is None, -(r.above_flood_limit_m or 0.0), r.station_id))
    return ReservoirsOut(as_of=snap.as_of, reservoirs=rows)


# -- village water quality ------------------------------------------------------------------------------------
def failing_metrics(values: dict[str, float | None]) -> list[str]:
    out = []
    for metric, lo, hi, _ in QUALITY_LIMITS:
        v = values.get(metric)
        if v is not None and ((lo is not None and v < lo) or (hi is not None and v > hi)):
            out.append(metric)
    return out


@router.get("/water-quality", response_model=WaterQualityOut, summary="Village water quality compliance",
            description="Per village supply: the newest turbidity, pH, free chlorine and pressure, and whether the "
                        "quality values meet GB 5749-2022 (turbidity ≤ 1 NTU, pH 6.5–8.5, free chlorine 0.05–2 mg/L "
                        "at the tap); per town: how many reporting villages comply.")
def overview_water_quality(registry: RegistryDep, store: StoreDep, clock: ClockDep) -> WaterQualityOut:
    snap = snapshot(registry, store, clock.now(), Kind.village_water)
    villages: list[VillageQuality] = []
    for st in snap.stations:
        values = {m: snap.value(st.id, m) for m in QUALITY_SHOWN}
        limited = [values[m] for m, *_ in QUALITY_LIMITS]
        failing = failing_metrics(values)
        compliant = None if all(v is None for v in limited) else not failing
        ts = [r.ts for m, r in snap.latest.get(st.id, {}).items() if m in QUALITY_SHOWN]
        villages.append(VillageQuality(
            station_id=st.id, name=st.name, village=st.village, town=st.town,
            turbidity_ntu=_round(values["turbidity_ntu"], 2), ph=_round(values["ph"], 2),
            free_chlorine_mgl=_round(values["free_chlorine_mgl"], 3), pressure_mpa=_round(values["pressure_mpa"], 3),
            ts=max(ts) if ts else None, compliant=compliant, failing=failing, state=snap.state(st)))
    by_town: dict[str, list[VillageQuality]] = defaultdict(list)
    for v in villages:
        by_town[v.town].append(v)
    towns = []
    for town, vs in by_town.items():
        reporting = [v for v in vs if v.compliant is not None]
        ok = sum(1 for v in reporting if v.compliant)
        towns.append(TownQuality(town=town, villages=len(vs), reporting=len(reporting), compliant=ok,
                                 rate_pct=round(ok / len(reporting) * 100, 1) if reporting else None))
    towns.sort(key=lambda t: (t.rate_pct is None, t.rate_pct if t.rate_pct is not None else 0.0, t.town))
    villages.sort(key=lambda v: (v.compliant is not False, v.town, v.station_id))
    limits = [QualityLimit(metric=m, unit=METRICS[Kind.village_water.value][m].unit, min=lo, max=hi, source=src)
              for m, lo, hi, src in QUALITY_LIMITS]
    return WaterQualityOut(as_of=snap.as_of, limits=limits, towns=towns, villages=villages)
