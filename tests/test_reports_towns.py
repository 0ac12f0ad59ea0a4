"""Town boundaries: GeoJSON import validated whole, the demo's tiling of the district, the registry table."""

from __future__ import annotations

import json

import pytest

from core.reports.thiessen import area_from_geojson, area_km2, clip_halfplane
from core.reports.towns import TownRepo, parse_towns, towns_geojson
from simulators.district import LAT_MAX, LAT_MIN, LON_MAX, LON_MIN, TOWNS
from simulators.town_polygons import generate_town_geojson, generate_towns


def _inside(lon: float, lat: float, ring: list) -> bool:
    """Ray casting."""
    inside = False
    for (x0, y0), (x1, y1) in zip(ring, ring[1:]):
        if (y0 > lat) != (y1 > lat) and lon < x0 + (lat - y0) * (x1 - x0) / (y1 - y0):
            inside = not inside
    return inside


def test_the_demo_towns_tile_the_district_and_hold_their_seats() -> None:
    towns = generate_towns()
    assert sorted(t.name for t in towns) == sorted(t[0] for t in TOWNS)
    box = area_km2(area_from_geojson({"type": "Polygon", "coordinates": [[
        [LON_MIN - 0.01, LAT_MIN - 0.01], [LON_MAX + 0.01, LAT_MIN - 0.01], [LON_MAX + 0.01, LAT_MAX + 0.01],
        [LON_MIN - 0.01, LAT_MAX + 0.01]]]}))
    assert sum(t.area_km2 for t in towns) == pytest.approx(box, rel=1e-3)  # no gaps, no overlaps
    geo = {f["properties"]["name"]: f["geometry"]["coordinates"][0] for f in generate_town_geojson()["features"]}
    for name, lat, lon, _ in TOWNS:
        assert _inside(lon, lat, geo[name]), name
    assert all(20 < t.area_km2 < 500 for t in towns)  # Jimo: 1,780 km² in 17 divisions


def test_an_import_names_every_bad_feature() -> None:
    good = {"type": "Feature", "properties": {"name": "通济街道"},
            "geometry": {"type": "Polygon", "coordinates": [[[120.4, 36.3], [120.5, 36.3], [120.5, 36.4],
                                                             [120.4, 36.3]]]}}
    doc = {"type": "FeatureCollection", "features": [
        good, dict(good), {"type": "Feature", "properties": {}, "geometry": good["geometry"]},
        {"type": "Feature", "properties": {"name": "田横镇"}, "geometry": {"type": "LineString", "coordinates": []}}]}
    with pytest.raises(ValueError) as err:
        parse_towns(doc)
    msg = str(err.value)
    assert "feature 2 (通济街道): town '通济街道' appears twice (first as feature 1)" in msg
    assert "feature 3: properties.name" in msg and "feature 4 (田横镇): a town's geometry must be a Polygon" in msg
    with pytest.raises(ValueError, match="not JSON"):
        parse_towns("{nope")
    with pytest.raises(ValueError, match="FeatureCollection"):
        parse_towns(json.dumps(good))


def test_towns_round_trip_through_geojson_and_the_registry(db_registry) -> None:
    towns = generate_towns()
    repo = TownRepo(db_registry.engine)
    assert repo.replace_all(towns) == 17
    back = repo.list()
    assert [t.name for t in back] == sorted(t.name for t in towns)
    assert parse_towns(towns_geojson(back)) == sorted(towns, key=lambda t: t.name)
    assert repo.replace_all(towns[:2]) == 2 and repo.count() == 2  # an import replaces the previous set


def test_clip_keeps_the_inner_side() -> None:
    square = [(0.0, 0.0), (2.0, 0.0), (2.0, 2.0), (0.0, 2.0)]
    assert sorted(clip_halfplane(square, 1, 0, 1)) == [(0.0, 0.0), (0.0, 2.0), (1.0, 0.0), (1.0, 2.0)]
