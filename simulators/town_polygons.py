"""Plausible town boundaries for the generated district: the Voronoi tiling of the town seats over the district's
bounding box, so the towns cover the district without gaps or overlaps and each holds its own seat.

Real boundaries follow rivers and ridges; a bureau imports those (``smartwater towns import``). These only need
to be the right size and in the right place for the areal-rainfall reports of the demo.
"""

from __future__ import annotations

from typing import Any

from core.reports.thiessen import clip_halfplane
from core.reports.towns import Town, parse_towns
from simulators.district import LAT_MAX, LAT_MIN, LON_MAX, LON_MIN, TOWNS

# A little outside the stations' box, so that no station sits on the district's edge.
_PAD = 0.01
# Longitude degrees shrink with latitude (cos 36.45° ≈ 0.80): bisectors are drawn in kilometres, not degrees.
_KX = 0.80


def generate_town_geojson() -> dict[str, Any]:
    """A FeatureCollection with one Polygon per town of the generated district."""
    box = [(LON_MIN - _PAD, LAT_MIN - _PAD), (LON_MAX + _PAD, LAT_MIN - _PAD),
           (LON_MAX + _PAD, LAT_MAX + _PAD), (LON_MIN - _PAD, LAT_MAX + _PAD)]
    seats = {name: (lon * _KX, lat) for name, lat, lon, _ in TOWNS}
    features = []
    for name, (gx, gy) in seats.items():
        ring = [(lon * _KX, lat) for lon, lat in box]
        for other, (hx, hy) in seats.items():
            if other != name:
                ring = clip_halfplane(ring, 2 * (hx - gx), 2 * (hy - gy), hx * hx + hy * hy - gx * gx - gy * gy)
        coords = [[round(x / _KX, 6), round(y, 6)] for x, y in ring]
        features.append({"type": "Feature", "properties": {"name": name},
                         "geometry": {"type": "Polygon", "coordinates": [coords + [coords[0]]]}})
    return {"type": "FeatureCollection", "features": features}


def generate_towns() -> list[Town]:
    return parse_towns(generate_town_geojson())
