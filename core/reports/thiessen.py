"""Thiessen (Voronoi) polygon weights of rain gauges over an area, and areal rainfall (面雨量).

Each point of an area takes the rain of its nearest gauge, so a gauge's weight is the share of the area nearer to
it than to any other gauge *in use*. The weights are computed exactly: the area (a GeoJSON Polygon or
MultiPolygon, holes allowed) is clipped by the half-planes "nearer to gauge i than to gauge j" for every other
gauge j (Sutherland–Hodgman clipping, which gives the right area for any polygon clipped by a half-plane), and
the clipped areas are measured with the shoelace formula. Coordinates are projected to kilometres on a plane
tangent at the area's mean latitude, which is exact enough across a district (tens of kilometres).

When a gauge drops out (silent or unreliable over the period), the weights are recomputed without it: its area
goes to its neighbours. A plain mean of the gauges is not areal rainfall.
"""

from __future__ import annotations

import math
from typing import Any, Mapping, Sequence

EARTH_RADIUS_KM = 6371.0088

Point = tuple[float, float]
Ring = list[Point]
# A polygon as an outer ring and its holes; an area as a list of polygons (a MultiPolygon).
PolygonRings = tuple[Ring, list[Ring]]
Area = list[PolygonRings]


def area_from_geojson(geometry: Mapping[str, Any]) -> Area:
    """An Area from a GeoJSON Polygon or MultiPolygon geometry ([lon, lat] positions). ValueError otherwise."""
    kind = geometry.get("type")
    coords = geometry.get("coordinates")
    if kind == "Polygon":
        polys = [coords]
    elif kind == "MultiPolygon":
        polys = coords
    else:
        raise ValueError(f"a town's geometry must be a Polygon or MultiPolygon, not {kind!r}")
    out: Area = []
    for poly in polys or []:
        if not poly:
            raise ValueError("a polygon needs an outer ring")
        rings = []
        for ring in poly:
            pts = [(float(p[0]), float(p[1])) for p in ring]
            if len(pts) >= 2 and pts[0] == pts[-1]:
                pts = pts[:-1]
            if len(pts) < 3:
                raise ValueError("a polygon ring needs at least 3 distinct positions")
            for lon, lat in pts:
                if not (-180 <= lon <= 180 and -90 <= lat <= 90):
                    raise ValueError(f"position [{lon}, {lat}] is not [lon, lat] in degrees")
            rings.append(pts)
        out.append((rings[0], rings[1:]))
    if not out:
        raise ValueError("the geometry has no polygon")
    return out


class Projection:
    """Degrees → kilometres on a plane tangent at ``lat0`` (equirectangular)."""

    def __init__(self, lat0: float) -> None:
        self.kx = math.radians(1) * EARTH_RADIUS_KM * math.cos(math.radians(lat0))
        self.ky = math.radians(1) * EARTH_RADIUS_KM

    def __call__(self, p: Point) -> Point:
        return (p[0] * self.kx, p[1] * self.ky)


def ring_area(ring: Sequence[Point]) -> float:
    """Unsigned shoelace area of a ring (no closing repeat needed)."""
    s = 0.0
    n = len(ring)
    for i in range(n):
        x0, y0 = ring[i]
        x1, y1 = ring[(i + 1) % n]
        s += x0 * y1 - x1 * y0
    return abs(s) / 2


def _signed(ring: Sequence[Point]) -> float:
    s = 0.0
    n = len(ring)
    for i in range(n):
        x0, y0 = ring[i]
        x1, y1 = ring[(i + 1) % n]
        s += x0 * y1 - x1 * y0
    return s / 2


def clip_halfplane(ring: Sequence[Point], a: float, b: float, c: float) -> Ring:
    """The part of ``ring`` where a·x + b·y ≤ c (Sutherland–Hodgman against one edge)."""
    out: Ring = []
    n = len(ring)
    for i in range(n):
        p, q = ring[i], ring[(i + 1) % n]
        fp, fq = a * p[0] + b * p[1] - c, a * q[0] + b * q[1] - c
        if fp <= 0:
            out.append(p)
        if (fp < 0 < fq) or (fq < 0 < fp):
            t = fp / (fp - fq)
            out.append((p[0] + t * (q[0] - p[0]), p[1] + t * (q[1] - p[1])))
    return out


def _area_km2(area: Area, proj: Projection) -> float:
    total = 0.0
    for outer, holes in area:
        total += ring_area([proj(p) for p in outer]) - sum(ring_area([proj(p) for p in h]) for h in holes)
    return total


def area_km2(area: Area) -> float:
    """The area in km² (projected at its own mean latitude)."""
    return _area_km2(area, Projection(_mean_lat(area)))


def _mean_lat(area: Area) -> float:
    lats = [p[1] for outer, _ in area for p in outer]
    return sum(lats) / len(lats)


def cell_areas_km2(gauges: Mapping[str, Point], area: Area) -> dict[str, float]:
    """Area (km²) of each gauge's Thiessen cell within ``area``; gauges are (lon, lat)."""
    if not gauges:
        return {}
    proj = Projection(_mean_lat(area))
    ids = sorted(gauges)
    xy = {g: proj(gauges[g]) for g in ids}
    rings = [(outer, False) for outer, _ in area] + [(h, True) for _, holes in area for h in holes]
    rings_xy = [([proj(p) for p in r], hole) for r, hole in rings]
    out: dict[str, float] = {}
    for g in ids:
        gx, gy = xy[g]
        total = 0.0
        for ring, hole in rings_xy:
            clipped: Ring = ring
            for h in ids:
                if h == g or not clipped:
                    continue
                hx, hy = xy[h]
                if (hx, hy) == (gx, gy):
                    # Two gauges at one spot share nothing out: the one sorted first keeps the cell.
                    if h < g:
                        clipped = []
                    continue
                # Nearer to g than to h: 2(h − g)·p ≤ |h|² − |g|².
                clipped = clip_halfplane(clipped, 2 * (hx - gx), 2 * (hy - gy),
                                         hx * hx + hy * hy - gx * gx - gy * gy)
            a = abs(_signed(clipped)) if len(clipped) >= 3 else 0.0
            total += -a if hole else a
        out[g] = total
    return out


def thiessen_weights(gauges: Mapping[str, Point], area: Area) -> dict[str, float]:
    """Share of ``area`` nearest to each gauge (sums to 1; gauges outside the area may still get a share).

    Gauges whose cell misses the area get weight 0 and are left in the result, so callers can show them."""
    cells = cell_areas_km2(gauges, area)
    total = sum(cells.values())
    if total <= 0:
        raise ValueError("the area is empty")
    return {g: a / total for g, a in cells.items()}


def areal_rain(weights: Mapping[str, float], rain_mm: Mapping[str, float]) -> float:
    """Σ weight × rain over the gauges in ``weights`` (all must have a value)."""
    return sum(w * rain_mm[g] for g, w in weights.items())
