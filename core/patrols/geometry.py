"""Track and segment geometry with numpy only: distances, durations, coverage, GeoJSON.

Coordinates follow GeoJSON: a position is ``[lon, lat]`` in degrees (WGS 84 as phones report it; GCJ-02
tracks from Chinese map SDKs must be converted before they get here, their offset is several hundred metres).

Planar work uses an equirectangular projection around a local origin (the segment's own centre for
coverage). Over a district 45 km × 55 km the scale error stays below 0.3 %, and around a segment's
centre it is far smaller, which is plenty for a 100 m buffer. Path lengths use the haversine formula.
"""

from __future__ import annotations

import math
from datetime import datetime, timezone
from typing import Any, Iterable, Mapping, Sequence

import numpy as np

EARTH_RADIUS_M = 6_371_008.8  # IUGG mean radius
# Centre of the Jimo bounding box (36.25–36.65 N, 120.25–120.85 E).
DISTRICT_ORIGIN = (36.45, 120.55)  # lat, lon

# Coverage work is chunked so that samples × track legs stays below this many float64 cells per array.
_CHUNK_CELLS = 2_000_000


# --------------------------------------------------------------------------- projection and distances

class Projection:
    """Equirectangular projection around (lat0, lon0): x east, y north, metres."""

    __slots__ = ("lat0", "lon0", "kx", "ky")

    def __init__(self, lat0: float = DISTRICT_ORIGIN[0], lon0: float = DISTRICT_ORIGIN[1]) -> None:
        self.lat0, self.lon0 = float(lat0), float(lon0)
        self.ky = EARTH_RADIUS_M * math.pi / 180.0
        self.kx = self.ky * math.cos(math.radians(self.lat0))

    @classmethod
    def around(cls, lonlat: np.ndarray) -> "Projection":
        """A projection centred on the middle of the points' bounding box."""
        lonlat = np.asarray(lonlat, dtype=float)
        lo, hi = lonlat.min(axis=0), lonlat.max(axis=0)
        return cls(lat0=(lo[1] + hi[1]) / 2, lon0=(lo[0] + hi[0]) / 2)

    def to_xy(self, lonlat: Any) -> np.ndarray:
        """(N, 2) [lon, lat] → (N, 2) [x, y] metres."""
        a = np.asarray(lonlat, dtype=float).reshape(-1, 2)
        return np.column_stack(((a[:, 0] - self.lon0) * self.kx, (a[:, 1] - self.lat0) * self.ky))

    def to_lonlat(self, xy: Any) -> np.ndarray:
        a = np.asarray(xy, dtype=float).reshape(-1, 2)
        return np.column_stack((a[:, 0] / self.kx + self.lon0, a[:, 1] / self.ky + self.lat0))


def haversine_m(lat1: Any, lon1: Any, lat2: Any, lon2: Any) -> np.ndarray:
    """Great-circle distance in metres, element-wise over arrays."""
    p1, p2 = np.radians(lat1), np.radians(lat2)
    dp = p2 - p1
    dl = np.radians(np.asarray(lon2, dtype=float) - np.asarray(lon1, dtype=float))
    h = np.sin(dp / 2) ** 2 + np.cos(p1) * np.cos(p2) * np.sin(dl / 2) ** 2
    return 2 * EARTH_RADIUS_M * np.arcsin(np.sqrt(np.clip(h, 0.0, 1.0)))


def polyline_length_m(lonlat: Any) -> float:
    """Haversine length of a [lon, lat] polyline."""
    a = np.asarray(lonlat, dtype=float).reshape(-1, 2)
    if len(a) < 2:
        return 0.0
    return float(haversine_m(a[:-1, 1], a[:-1, 0], a[1:, 1], a[1:, 0]).sum())


# --------------------------------------------------------------------------- GPS tracks

class Track:
    """A cleaned GPS track as columns: ``t`` epoch seconds (float), ``lat``, ``lon``, ``acc`` (NaN = unknown).

    Cleaning (``Track.from_points``): sorted by time, one point per timestamp (phones upload batches late
    and twice; the first copy wins, they are identical in practice), points whose reported accuracy is worse
    than ``max_accuracy_m`` dropped, and points outside ``[not_before, not_after]`` dropped.
    """

    __slots__ = ("t", "lat", "lon", "acc")

    def __init__(self, t: np.ndarray, lat: np.ndarray, lon: np.ndarray, acc: np.ndarray) -> None:
        self.t, self.lat, self.lon, self.acc = t, lat, lon, acc

    def __len__(self) -> int:
        return len(self.t)

    @classmethod
    def from_points(cls, points: Iterable[Any], max_accuracy_m: float | None = None,
                    not_before: datetime | None = None, not_after: datetime | None = None) -> "Track":
        """``points``: objects or mappings with ``ts`` (aware datetime or epoch seconds), ``lat``, ``lon``,
        optional ``accuracy_m``."""
        rows = []
        for p in points:
            get = p.get if isinstance(p, Mapping) else (lambda k, d=None, _p=p: getattr(_p, k, d))
            ts = get("ts")
            t = ts.timestamp() if isinstance(ts, datetime) else float(ts)
            acc = get("accuracy_m")
            rows.append((t, float(get("lat")), float(get("lon")), np.nan if acc is None else float(acc)))
        a = np.array(rows, dtype=float).reshape(-1, 4)
        return cls.from_arrays(a[:, 0], a[:, 1], a[:, 2], a[:, 3], max_accuracy_m, not_before, not_after)

    @classmethod
    def from_arrays(cls, t: Any, lat: Any, lon: Any, acc: Any = None, max_accuracy_m: float | None = None,
                    not_before: datetime | None = None, not_after: datetime | None = None) -> "Track":
        t = np.asarray(t, dtype=float)
        lat, lon = np.asarray(lat, dtype=float), np.asarray(lon, dtype=float)
        acc = np.full(len(t), np.nan) if acc is None else np.asarray(acc, dtype=float)
        keep = np.isfinite(t) & np.isfinite(lat) & np.isfinite(lon)
        if max_accuracy_m is not None:
            keep &= ~(acc > max_accuracy_m)  # NaN (unknown accuracy) is kept
        if not_before is not None:
            keep &= t >= not_before.timestamp()
        if not_after is not None:
            keep &= t <= not_after.timestamp()
        t, lat, lon, acc = t[keep], lat[keep], lon[keep], acc[keep]
        order = np.argsort(t, kind="stable")  # stable: the first upload of a timestamp stays first
        t, lat, lon, acc = t[order], lat[order], lon[order], acc[order]
        if len(t) > 1:
            first = np.concatenate(([True], np.diff(t) > 0))
            t, lat, lon, acc = t[first], lat[first], lon[first], acc[first]
        return cls(t, lat, lon, acc)

    @property
    def lonlat(self) -> np.ndarray:
        return np.column_stack((self.lon, self.lat))

    def leg_lengths_m(self) -> np.ndarray:
        if len(self) < 2:
            return np.zeros(0)
        return haversine_m(self.lat[:-1], self.lon[:-1], self.lat[1:], self.lon[1:])

    def distance_m(self) -> float:
        """Path length: the sum of the haversine legs between consecutive points."""
        return float(self.leg_lengths_m().sum())

    def duration_s(self) -> float:
        """Last timestamp − first timestamp."""
        return float(self.t[-1] - self.t[0]) if len(self) > 1 else 0.0

    def fast_share(self, max_speed_ms: float, window_s: float = 60.0) -> float:
        """Share of the track's ground covered faster than ``max_speed_ms``.

        The track is cut into consecutive windows of at least ``window_s``; a window's speed is its
        straight-line displacement over its duration, so GPS jitter (a few tens of metres back and forth)
        does not look like speed, while a stretch in a car does. Returns fast displacement ÷ all displacement.
        """
        n = len(self)
        if n < 2:
            return 0.0
        starts = [0]
        while True:
            j = int(np.searchsorted(self.t, self.t[starts[-1]] + window_s, side="left"))
            if j >= n - 1:
                break
            starts.append(j)
        idx_a = np.array(starts)
        idx_b = np.append(idx_a[1:], n - 1)
        disp = haversine_m(self.lat[idx_a], self.lon[idx_a], self.lat[idx_b], self.lon[idx_b])
        dt = self.t[idx_b] - self.t[idx_a]
        total = disp.sum()
        if total <= 0:
            return 0.0
        fast = dt > 0
        fast[fast] = disp[fast] / dt[fast] > max_speed_ms
        return float(disp[fast].sum() / total)


# --------------------------------------------------------------------------- coverage

def sample_polyline(xy: np.ndarray, step_m: float) -> tuple[np.ndarray, float]:
    """Cut a planar polyline into ``n = ceil(length / step_m)`` equal pieces; return their midpoints (n, 2)
    and the piece length. Each midpoint stands for one piece, so shares of midpoints are shares of length."""
    xy = np.asarray(xy, dtype=float).reshape(-1, 2)
    if len(xy) < 2:
        return xy.copy(), 0.0
    seg = np.hypot(*np.diff(xy, axis=0).T)
    cum = np.concatenate(([0.0], np.cumsum(seg)))
    length = cum[-1]
    if length <= 0:
        return xy[:1].copy(), 0.0
    n = max(1, math.ceil(length / step_m))
    piece = length / n
    s = (np.arange(n) + 0.5) * piece
    x = np.interp(s, cum, xy[:, 0])
    y = np.interp(s, cum, xy[:, 1])
    return np.column_stack((x, y)), piece


def distance_to_polyline(points_xy: np.ndarray, line_xy: np.ndarray) -> np.ndarray:
    """Planar distance from each point (N, 2) to the nearest point of a polyline (M, 2), vectorised."""
    p = np.asarray(points_xy, dtype=float).reshape(-1, 2)
    line = np.asarray(line_xy, dtype=float).reshape(-1, 2)
    if len(line) == 0:
        return np.full(len(p), np.inf)
    if len(line) == 1:
        return np.hypot(p[:, 0] - line[0, 0], p[:, 1] - line[0, 1])
    a, b = line[:-1], line[1:]
    ab = b - a
    ab2 = (ab ** 2).sum(axis=1)
    ab2_safe = np.where(ab2 > 0, ab2, 1.0)
    out = np.empty(len(p))
    rows = max(1, _CHUNK_CELLS // len(a))
    for i in range(0, len(p), rows):
        q = p[i:i + rows, None, :]  # (k, 1, 2)
        ap = q - a[None, :, :]  # (k, m, 2)
        u = np.clip((ap * ab[None]).sum(axis=2) / ab2_safe, 0.0, 1.0)
        u = np.where(ab2 > 0, u, 0.0)
        d = ap - u[..., None] * ab[None]
        out[i:i + rows] = np.sqrt((d ** 2).sum(axis=2).min(axis=1))
    return out


def coverage(segment_lonlat: Any, track_lonlat: Any, buffer_m: float = 100.0, step_m: float = 10.0) -> float:
    """Share of the segment's length within ``buffer_m`` of the track.

    The segment is sampled every ~``step_m`` (midpoints of equal pieces); each sample's distance to the
    track *polyline* (so sparse fixes are joined by straight legs) decides whether that piece is covered.
    """
    seg = np.asarray(segment_lonlat, dtype=float).reshape(-1, 2)
    trk = np.asarray(track_lonlat, dtype=float).reshape(-1, 2)
    if len(seg) == 0 or len(trk) == 0:
        return 0.0
    proj = Projection.around(seg)
    samples, _piece = sample_polyline(proj.to_xy(seg), step_m)
    if len(samples) == 0:
        return 0.0
    d = distance_to_polyline(samples, proj.to_xy(trk))
    return float(np.count_nonzero(d <= buffer_m) / len(samples))


# --------------------------------------------------------------------------- GeoJSON

def _iso(ts: datetime | None) -> str | None:
    if ts is None:
        return None
    return (ts if ts.tzinfo else ts.replace(tzinfo=timezone.utc)).isoformat()


def _props(obj: Any, names: Sequence[str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for n in names:
        v = getattr(obj, n, None)
        if isinstance(v, datetime):
            v = _iso(v)
        elif hasattr(v, "value"):  # enums
            v = v.value
        out[n] = v
    return out


def line_feature(coords: Any, properties: Mapping[str, Any] | None = None, fid: Any = None) -> dict[str, Any]:
    coordinates = [[float(x), float(y)] for x, y in coords]
    feat: dict[str, Any] = {"type": "Feature", "geometry": {"type": "LineString", "coordinates": coordinates},
                            "properties": dict(properties or {})}
    if fid is not None:
        feat["id"] = fid
    return feat


def segment_feature(segment: Any) -> dict[str, Any]:
    """A Segment as a LineString Feature (properties: id, river_id, town, village, level, length_m)."""
    return line_feature(segment.geometry, _props(segment, ("id", "river_id", "town", "village", "level", "length_m")),
                        segment.id)


def river_feature(river: Any) -> dict[str, Any]:
    """A River as a MultiLineString Feature."""
    return {"type": "Feature", "id": river.id,
            "geometry": {"type": "MultiLineString",
                         "coordinates": [[[float(x), float(y)] for x, y in line] for line in river.geometry]},
            "properties": {"id": river.id, "name": river.name}}


def track_feature(patrol: Any) -> dict[str, Any]:
    """A Patrol's cleaned track as a LineString Feature, with the patrol's figures and per-point times."""
    track = Track.from_points(patrol.points)
    props = _props(patrol, ("id", "chief_id", "segment_id", "started_at", "finished_at", "status", "distance_m",
                            "duration_s", "coverage", "valid", "invalid_reason"))
    props["times"] = [_iso(datetime.fromtimestamp(t, timezone.utc)) for t in track.t]
    return line_feature(track.lonlat, props, patrol.id)


def issue_feature(issue: Any) -> dict[str, Any]:
    """An Issue as a Point Feature."""
    props = _props(issue, ("id", "category", "state", "segment_id", "town", "found_by", "found_at", "assignee_kind",
                           "assignee", "deadline", "reopened", "closed_at"))
    return {"type": "Feature", "id": issue.id,
            "geometry": {"type": "Point", "coordinates": [float(issue.lon), float(issue.lat)]},
            "properties": props}


def feature_collection(features: Iterable[dict[str, Any]]) -> dict[str, Any]:
    return {"type": "FeatureCollection", "features": list(features)}
