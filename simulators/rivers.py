"""A synthetic river-chief network the size of Jimo (design.md §4): 150 rivers, their segments, the chiefs.

Deterministic from a seed. The 20 monitored rivers of simulators.district keep their names and courses
(so their stations lie on them); 130 smaller ones get generated names and courses that drain to the sea in
the east and south or to 大沽河 in the west. Each river is cut into segments by the nearest village (from the
district's 1,033 villages, same seed): a stretch within 1.5 km of a village is that village's (a village
segment), a stretch farther from all villages is its town's (a town segment).

Chiefs: a few county chiefs (the longest rivers), one town chief per town (two when the network has ≥ 1,000
chiefs), then village chiefs for the villages with the most river length, then grid chiefs on single village
segments until the requested total is reached (≈ 400 for the demo, 2,000 for the benchmark). With fewer
chiefs than villages, the remaining villages' segments are left to their town chief.

Also: tracks that walk a segment (for demos and tests), and importers: rivers from GeoJSON, chiefs from CSV.
"""

from __future__ import annotations

import csv
import hashlib
import json
import math
import random
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np
from pydantic import ValidationError

from core.csvcell import safe_row
from core.domain import Kind
from core.patrols.geometry import Projection, haversine_m, river_feature
from core.patrols.models import Chief, Level, River, Segment
from simulators.csvfile import csv_records, validation_detail
from simulators.district import DEFAULT_SEED, RIVERS, TOWNS, _FEATURES, _SURNAMES, generate_district

# The district's bounding box (design brief: 36.25–36.65 N, 120.25–120.85 E), kept a little inside.
LAT_MIN, LAT_MAX = 36.255, 36.645
LON_MIN, LON_MAX = 120.255, 120.845
N_RIVERS = 150
DEMO_CHIEFS = 400
BENCHMARK_CHIEFS = 2000
N_COUNTY_CHIEFS = 5
COUNTY_RIVERS_EACH = 4
VILLAGE_RADIUS_M = 1500.0
SAMPLE_M = 100.0  # resolution of segment boundaries
MIN_SEGMENT_M = 300.0

_PROJ = Projection()


@dataclass(slots=True)
class Village:
    town: str
    name: str
    lat: float
    lon: float


@dataclass(slots=True)
class RiverNetwork:
    rivers: list[River]
    segments: list[Segment]
    chiefs: list[Chief]

    def counts(self) -> dict[str, Any]:
        levels: dict[str, int] = {}
        for c in self.chiefs:
            levels[c.level.value] = levels.get(c.level.value, 0) + 1
        return {"rivers": len(self.rivers), "segments": len(self.segments), "chiefs": len(self.chiefs),
                "chiefs_by_level": levels, "length_km": round(sum(s.length_m for s in self.segments) / 1000, 1)}


def district_villages(seed: int = DEFAULT_SEED) -> list[Village]:
    """The villages of simulators.district (its village water-supply points) for the same seed."""
    return [Village(s.town, s.village or s.name, s.lat, s.lon) for s in generate_district(seed)
            if s.kind == Kind.village_water]


# --------------------------------------------------------------------------- courses

def _clamp_lonlat(a: np.ndarray) -> np.ndarray:
    return np.column_stack((np.clip(a[:, 0], LON_MIN, LON_MAX), np.clip(a[:, 1], LAT_MIN, LAT_MAX)))


def _meander(rng: random.Random, up: tuple[float, float], down: tuple[float, float],
             wiggle: float) -> list[list[float]]:
    """A course from ``up`` to ``down`` (lat, lon): the chord bent by a few sine modes that vanish at both ends."""
    a = _PROJ.to_xy([[up[1], up[0]]])[0]
    b = _PROJ.to_xy([[down[1], down[0]]])[0]
    chord = b - a
    length = float(np.hypot(*chord))
    n = max(8, math.ceil(length / 200.0)) + 1
    f = np.linspace(0.0, 1.0, n)
    amps = [rng.gauss(0.0, wiggle / k) for k in range(1, 5)]
    phase_free = sum(amp * np.sin(k * math.pi * f) for k, amp in enumerate(amps, start=1))
    jitter = np.array([0.0] + [rng.gauss(0.0, 0.004) for _ in range(n - 2)] + [0.0])
    offset = (phase_free + jitter) * length
    normal = np.array([-chord[1], chord[0]]) / length
    xy = a + np.outer(f, chord) + np.outer(offset, normal)
    lonlat = _clamp_lonlat(_PROJ.to_lonlat(xy))
    return [[round(float(x), 6), round(float(y), 6)] for x, y in lonlat]


def _river_names(rng: random.Random, n: int, taken: set[str]) -> list[str]:
    cores = list(_SURNAMES) + list(_FEATURES)
    names: list[str] = []
    while len(names) < n:
        name = rng.choice("东西南北前后大小") * (rng.random() < 0.25) + rng.choice(cores) + rng.choice("河河河河沟")
        if name not in taken:
            taken.add(name)
            names.append(name)
    return names


def generate_rivers(seed: int = DEFAULT_SEED, n_rivers: int = N_RIVERS) -> list[River]:
    """``n_rivers`` rivers: the district's 20 named ones first (ids R0001…), then generated ones."""
    rng = random.Random(f"rivers:{seed}")
    rivers: list[River] = []
    for i, (name, _n, up, down, _q) in enumerate(RIVERS[:n_rivers], start=1):
        rivers.append(River(id=f"R{i:04d}", name=name, geometry=[_meander(rng, up, down, 0.02)]))
    extra = n_rivers - len(rivers)
    names = _river_names(rng, max(0, extra), {r.name for r in rivers})
    for k in range(max(0, extra)):
        for _ in range(50):
            lat = rng.uniform(LAT_MIN + 0.01, LAT_MAX - 0.01)
            lon = rng.uniform(LON_MIN + 0.01, LON_MAX - 0.01)
            # East of 墨水河 the land drains to the sea (south-east); west of it to 大沽河 (west, south-west).
            heading = rng.uniform(100, 170) if lon > 120.45 else rng.uniform(190, 260)  # degrees from north
            length = min(20_000.0, max(2_000.0, rng.lognormvariate(math.log(6_000), 0.5)))
            dx, dy = length * math.sin(math.radians(heading)), length * math.cos(math.radians(heading))
            down_lon = lon + dx / _PROJ.kx
            down_lat = lat + dy / _PROJ.ky
            if LON_MIN <= down_lon <= LON_MAX and LAT_MIN <= down_lat <= LAT_MAX:
                break
            down_lon, down_lat = min(LON_MAX, max(LON_MIN, down_lon)), min(LAT_MAX, max(LAT_MIN, down_lat))
            if haversine_m(lat, lon, down_lat, down_lon) >= 1_500:
                break
        idx = len(rivers) + 1
        rivers.append(River(id=f"R{idx:04d}", name=names[k],
                            geometry=[_meander(rng, (lat, lon), (down_lat, down_lon), 0.035)]))
    return rivers


# --------------------------------------------------------------------------- segments

def _resample(lonlat: Sequence[Sequence[float]], step_m: float) -> np.ndarray:
    """Points every ``step_m`` along a polyline (both ends included), planar in the district projection."""
    xy = _PROJ.to_xy(lonlat)
    seg = np.hypot(*np.diff(xy, axis=0).T)
    cum = np.concatenate(([0.0], np.cumsum(seg)))
    n = max(1, math.ceil(cum[-1] / step_m))
    s = np.linspace(0.0, cum[-1], n + 1)
    return np.column_stack((np.interp(s, cum, xy[:, 0]), np.interp(s, cum, xy[:, 1])))


def split_river(river: River, villages: Sequence[Village], radius_m: float = VILLAGE_RADIUS_M,
                step_m: float = SAMPLE_M, min_segment_m: float = MIN_SEGMENT_M) -> list[Segment]:
    """Cut a river into segments by the nearest village (town segment where none is within ``radius_m``)."""
    vxy = _PROJ.to_xy([[v.lon, v.lat] for v in villages])
    out: list[Segment] = []
    for line in river.geometry:
        pts = _resample(line, step_m)
        # Label each piece between samples by its midpoint's nearest village.
        mids = (pts[:-1] + pts[1:]) / 2
        d2 = (mids[:, 0, None] - vxy[None, :, 0]) ** 2 + (mids[:, 1, None] - vxy[None, :, 1]) ** 2
        nearest = d2.argmin(axis=1)
        near_d = np.sqrt(d2[np.arange(len(mids)), nearest])
        labels = [(villages[j].town, villages[j].name if d <= radius_m else None)
                  for j, d in zip(nearest.tolist(), near_d.tolist())]
        piece = np.hypot(*np.diff(pts, axis=0).T)
        at = np.concatenate(([0.0], np.cumsum(piece)))  # distance along the line at each sample
        # Runs of equal labels: [start, end) piece indices.
        runs: list[list[Any]] = []
        for k, lab in enumerate(labels):
            if runs and runs[-1][2] == lab:
                runs[-1][1] = k + 1
            else:
                runs.append([k, k + 1, lab])
        # Merge runs shorter than the minimum into a neighbour (the previous one, else the next).
        while len(runs) > 1:
            lengths = [at[b] - at[a] for a, b, _ in runs]
            k = int(np.argmin(lengths))
            if lengths[k] >= min_segment_m:
                break
            if k > 0:
                runs[k - 1][1] = runs[k][1]
            else:
                runs[1][0] = runs[0][0]
            del runs[k]
            merged: list[list[Any]] = []  # neighbours may now share a label
            for r in runs:
                if merged and merged[-1][2] == r[2]:
                    merged[-1][1] = r[1]
                else:
                    merged.append(r)
            runs = merged
        lonlat = _PROJ.to_lonlat(pts)
        for a, b, (town, village) in runs:
            geom = [[round(float(x), 6), round(float(y), 6)] for x, y in lonlat[a:b + 1]]
            out.append(Segment(id=f"{river.id}-{len(out) + 1:03d}", river_id=river.id, town=town, village=village,
                               level=Level.village if village else Level.town, geometry=geom))
    return out


# --------------------------------------------------------------------------- chiefs

_PEOPLE_SURNAMES = "王李张刘孙杨赵周吴黄于姜孔兰宋郭胡高林徐袁马韩董曲汪邱崔吕鲍修隋臧宫栾江"
_GIVEN = "建国明华志强军伟平勇杰涛斌超磊鹏飞宁海波洪涛秀英玉兰桂芳丽敏静红霞春梅立新永刚德胜文学成"


def _person_names(rng: random.Random, n: int) -> list[str]:
    used: set[str] = set()
    out: list[str] = []
    while len(out) < n:
        name = rng.choice(_PEOPLE_SURNAMES) + "".join(rng.choice(_GIVEN) for _ in range(rng.choice((1, 2, 2))))
        if name not in used or len(used) > 20_000:
            used.add(name)
            out.append(name)
    return out


def assign_chiefs(rivers: Sequence[River], segments: Sequence[Segment], n_chiefs: int = DEMO_CHIEFS,
                  seed: int = DEFAULT_SEED) -> list[Chief]:
    """County, town, village and grid chiefs for the segments; exactly ``n_chiefs`` of them."""
    rng = random.Random(f"chiefs:{seed}")
    towns = [t[0] for t in TOWNS]
    per_town = 2 if n_chiefs >= 1000 else 1
    if n_chiefs < N_COUNTY_CHIEFS + per_town * len(towns):
        raise ValueError(f"n_chiefs must be at least {N_COUNTY_CHIEFS + per_town * len(towns)}")
    names = iter(_person_names(rng, n_chiefs))
    by_river: dict[str, list[str]] = {}
    for s in segments:
        by_river.setdefault(s.river_id, []).append(s.id)
    specs: list[tuple[Level, str | None, str | None, list[str]]] = []

    longest = sorted(rivers, key=lambda r: (-r.length_m, r.id))[: N_COUNTY_CHIEFS * COUNTY_RIVERS_EACH]
    for k in range(N_COUNTY_CHIEFS):
        specs.append((Level.county, None, None, [sid for r in longest[k::N_COUNTY_CHIEFS]
                                                 for sid in by_river.get(r.id, [])]))
    for town in towns:
        town_rivers = sorted({s.river_id for s in segments if s.town == town})
        for k in range(per_town):
            mine = set(town_rivers[k::per_town])
            specs.append((Level.town, town, None, [s.id for s in segments if s.town == town and s.river_id in mine]))

    rest = n_chiefs - len(specs)
    groups: dict[tuple[str, str], list[Segment]] = {}
    for s in segments:
        if s.village:
            groups.setdefault((s.town, s.village), []).append(s)
    ranked = sorted(groups.items(), key=lambda kv: (-sum(s.length_m for s in kv[1]), kv[0]))
    for (town, village), segs in ranked[:rest]:
        specs.append((Level.village, town, village, [s.id for s in segs]))
    grid = rest - min(rest, len(ranked))
    village_segments = sorted((s for s in segments if s.village), key=lambda s: (-s.length_m, s.id))
    for k in range(grid):
        s = village_segments[k % len(village_segments)]
        specs.append((Level.grid, s.town, s.village, [s.id]))

    return [Chief(id=f"CH{i:04d}", name=next(names), level=level, town=town, village=village, segment_ids=segs)
            for i, (level, town, village, segs) in enumerate(specs, start=1)]


def generate_river_network(seed: int = DEFAULT_SEED, n_rivers: int = N_RIVERS, n_chiefs: int = DEMO_CHIEFS,
                           villages: Sequence[Village] | None = None) -> RiverNetwork:
    """Rivers, segments and chiefs, identical for the same arguments."""
    villages = list(villages) if villages is not None else district_villages(seed)
    rivers = generate_rivers(seed, n_rivers)
    segments = [s for r in rivers for s in split_river(r, villages)]
    return RiverNetwork(rivers, segments, assign_chiefs(rivers, segments, n_chiefs, seed))


def store_network(repo: Any, network: RiverNetwork) -> dict[str, int]:
    """Write a network through a PatrolRepo (rivers, then segments, then chiefs)."""
    return {"rivers": repo.upsert_rivers(network.rivers), "segments": repo.upsert_segments(network.segments),
            "chiefs": repo.upsert_chiefs(network.chiefs)}


# --------------------------------------------------------------------------- tracks

def walk_segment(segment: Segment | Sequence[Sequence[float]], start: datetime, speed_kmh: float = 4.0,
                 interval_s: float = 10.0, fraction: float = 1.0, offset_m: float = 0.0, jitter_m: float = 0.0,
                 rng: random.Random | None = None, accuracy_m: float | None = 8.0) -> list[dict[str, Any]]:
    """GPS fixes of someone walking the first ``fraction`` of a segment at ``speed_kmh``, ``offset_m`` to the
    left of it, with Gaussian ``jitter_m``; one fix every ``interval_s`` from ``start``."""
    geometry = segment.geometry if isinstance(segment, Segment) else segment
    rng = rng or random.Random(0)
    proj = Projection.around(np.asarray(geometry, dtype=float))
    xy = proj.to_xy(geometry)
    seg = np.hypot(*np.diff(xy, axis=0).T)
    cum = np.concatenate(([0.0], np.cumsum(seg)))
    total = cum[-1] * fraction
    speed = speed_kmh / 3.6
    times = np.arange(0.0, total / speed, interval_s)
    times = np.append(times, total / speed)  # the last fix at the end of the walk
    n = len(times)
    s = np.minimum(times * speed, total)
    x, y = np.interp(s, cum, xy[:, 0]), np.interp(s, cum, xy[:, 1])
    if offset_m:
        k = np.clip(np.searchsorted(cum, s, side="right") - 1, 0, len(seg) - 1)
        d = (xy[k + 1] - xy[k]) / np.maximum(seg[k], 1e-9)[:, None]
        x, y = x - d[:, 1] * offset_m, y + d[:, 0] * offset_m
    if jitter_m:
        x = x + np.array([rng.gauss(0, jitter_m) for _ in range(n)])
        y = y + np.array([rng.gauss(0, jitter_m) for _ in range(n)])
    lonlat = proj.to_lonlat(np.column_stack((x, y)))
    return [{"ts": start + timedelta(seconds=round(float(ts), 3)), "lat": round(float(lat), 7),
             "lon": round(float(lon), 7), "accuracy_m": accuracy_m} for ts, (lon, lat) in zip(times, lonlat)]


# --------------------------------------------------------------------------- GeoJSON and CSV

def rivers_to_geojson(rivers: Iterable[River]) -> dict[str, Any]:
    return {"type": "FeatureCollection", "features": [river_feature(r) for r in rivers]}


def load_rivers_geojson(source: str | Path | dict[str, Any]) -> list[River]:
    """Rivers from a GeoJSON FeatureCollection of LineStrings or MultiLineStrings ([lon, lat], WGS 84) with
    ``id`` (property or feature id) and ``name`` properties. Errors name the feature: ``features[3] (id 'x')``."""
    where = "GeoJSON"
    if isinstance(source, (str, Path)):
        where = str(source)
        try:
            data = json.loads(Path(source).read_text(encoding="utf-8-sig"))
        except json.JSONDecodeError as exc:
            raise ValueError(f"{where}: not JSON: {exc}") from None
    else:
        data = source
    if not isinstance(data, dict) or data.get("type") != "FeatureCollection" or not isinstance(
            data.get("features"), list):
        raise ValueError(f"{where}: not a GeoJSON FeatureCollection")
    rivers: list[River] = []
    seen: dict[str, int] = {}
    for i, feat in enumerate(data["features"]):
        props = (feat.get("properties") or {}) if isinstance(feat, dict) else {}
        fid = props.get("id", feat.get("id") if isinstance(feat, dict) else None)
        label = f"{where}: features[{i}]" + (f" (id {fid!r})" if fid is not None else "")
        if not isinstance(feat, dict) or feat.get("type") != "Feature":
            raise ValueError(f"{label}: not a Feature")
        if fid is None or str(fid).strip() == "":
            raise ValueError(f"{label}: no id (property 'id' or the feature's id)")
        if not props.get("name"):
            raise ValueError(f"{label}: no 'name' property")
        geom = feat.get("geometry") or {}
        gtype, coords = geom.get("type"), geom.get("coordinates")
        if gtype == "LineString":
            lines = [coords]
        elif gtype == "MultiLineString":
            lines = coords
        else:
            raise ValueError(f"{label}: geometry {gtype!r} is not a LineString or MultiLineString")
        try:
            river = River(id=str(fid), name=str(props["name"]), geometry=lines)
        except ValidationError as exc:
            raise ValueError(f"{label}: {validation_detail(exc)}") from None
        if river.id in seen:
            raise ValueError(f"{label}: duplicate id (first in features[{seen[river.id]}])")
        seen[river.id] = i
        rivers.append(river)
    return rivers


CHIEF_FIELDS = ("id", "name", "level", "town", "village", "segment_ids")
_CHIEF_REQUIRED = ("name", "level", "town", "village", "segment_ids")


def chief_id_for(level: str, town: str | None, village: str | None, name: str) -> str:
    """A stable id for a chief imported without one (same person, same place → same id on re-import)."""
    key = "|".join((level, town or "", village or "", name))
    return "CH-" + hashlib.sha1(key.encode("utf-8")).hexdigest()[:12]


def write_chiefs_csv(chiefs: Iterable[Chief], path: str | Path) -> None:
    with open(path, "w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(CHIEF_FIELDS)
        for c in chiefs:
            w.writerow(safe_row([c.id, c.name, c.level.value, c.town or "", c.village or "", ";".join(c.segment_ids)]))


def load_chiefs_csv(path: str | Path, segment_ids: Iterable[str] | None = None) -> list[Chief]:
    """Chiefs from CSV: name, level (county|town|village|grid), town, village, segment_ids (separated by ';'),
    optional id (a login links to its chief from the account: ``smartwater user add --chief-id``). Row numbers
    in errors count the header as row 1. With ``segment_ids`` given,
    unknown segments are errors too."""
    path = Path(path)
    known = set(segment_ids) if segment_ids is not None else None
    chiefs: list[Chief] = []
    seen: dict[str, int] = {}
    for n, header, cells in csv_records(path, CHIEF_FIELDS, _CHIEF_REQUIRED, lower=True):
        row = {k: (v or "").strip() for k, v in zip(header, cells)}
        label = f"{path}: row {n} (chief {row.get('name')!r})"
        segs = [s.strip() for s in row.get("segment_ids", "").split(";") if s.strip()]
        if known is not None:
            bad = [s for s in segs if s not in known]
            if bad:
                raise ValueError(f"{label}: unknown segment(s) {bad}")
        data: dict[str, Any] = {"name": row.get("name", ""), "level": row.get("level", "").lower(),
                                "town": row.get("town") or None, "village": row.get("village") or None,
                                "segment_ids": segs}
        if data["level"] not in {lv.value for lv in Level}:
            raise ValueError(f"{label}: level {row.get('level')!r} is not one of county, town, village, grid")
        data["id"] = row.get("id") or chief_id_for(data["level"], data["town"], data["village"], data["name"])
        try:
            chief = Chief.model_validate(data)
        except ValidationError as exc:
            raise ValueError(f"{label}: {validation_detail(exc, top='row')}") from None
        if chief.id in seen:
            raise ValueError(f"{label}: duplicate chief {chief.id!r} (first in row {seen[chief.id]})")
        seen[chief.id] = n
        chiefs.append(chief)
    return chiefs
