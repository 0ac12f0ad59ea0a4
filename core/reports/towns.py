"""Towns' boundaries: a GeoJSON FeatureCollection in and out, validated whole, and their registry table.

Import format: a FeatureCollection of Polygon or MultiPolygon features ([lon, lat], WGS 84) whose property
``name`` is the town's name as the stations carry it (``Station.town``), e.g. ``{"name": "通济街道"}``. Every
feature is checked before anything is stored; the error lists each bad feature by its number (from 1) and name.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Mapping

from sqlalchemy import delete, insert, select
from sqlalchemy.engine import Engine

from core.reports.tables import towns as towns_table
from core.reports.thiessen import Area, area_from_geojson, area_km2


@dataclass(frozen=True, slots=True)
class Town:
    name: str
    geometry: dict[str, Any]
    area_km2: float

    @property
    def area(self) -> Area:
        return area_from_geojson(self.geometry)


def parse_towns(doc: Mapping[str, Any] | str | Path) -> list[Town]:
    """Towns from a GeoJSON FeatureCollection (a dict, JSON text or a file path). ValueError naming every bad one."""
    if isinstance(doc, Path):
        doc = doc.read_text(encoding="utf-8")
    if isinstance(doc, str):
        try:
            doc = json.loads(doc)
        except ValueError as exc:
            raise ValueError(f"the towns file is not JSON: {exc}") from None
    if not isinstance(doc, Mapping) or doc.get("type") != "FeatureCollection":
        raise ValueError("the towns file must be a GeoJSON FeatureCollection")
    features = doc.get("features")
    if not isinstance(features, list) or not features:
        raise ValueError("the towns FeatureCollection has no features")
    out: list[Town] = []
    errors: list[str] = []
    seen: dict[str, int] = {}
    for n, feat in enumerate(features, 1):
        props = (feat or {}).get("properties") or {} if isinstance(feat, Mapping) else {}
        name = props.get("name")
        label = f"feature {n}" + (f" ({name})" if isinstance(name, str) else "")
        if not isinstance(name, str) or not name.strip() or len(name) > 100:
            errors.append(f"{label}: properties.name must be the town's name (1–100 characters)")
            continue
        if name in seen:
            errors.append(f"{label}: town {name!r} appears twice (first as feature {seen[name]})")
            continue
        seen[name] = n
        try:
            geometry = dict(feat.get("geometry") or {})
            km2 = area_km2(area_from_geojson(geometry))
            if km2 <= 0:
                raise ValueError("the polygon has no area")
        except (ValueError, TypeError, IndexError) as exc:
            errors.append(f"{label}: {exc}")
            continue
        out.append(Town(name, {"type": geometry["type"], "coordinates": geometry["coordinates"]}, round(km2, 4)))
    if errors:
        raise ValueError("; ".join(errors))
    return out


def towns_geojson(towns: Iterable[Town]) -> dict[str, Any]:
    """The towns as a FeatureCollection (properties name and area_km2)."""
    return {"type": "FeatureCollection", "features": [
        {"type": "Feature", "properties": {"name": t.name, "area_km2": t.area_km2}, "geometry": t.geometry}
        for t in towns]}


class TownRepo:
    """The registry's towns table."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def replace_all(self, towns: Iterable[Town]) -> int:
        """Store exactly these towns (an import replaces the previous boundaries); returns how many."""
        rows = [{"name": t.name, "geometry": t.geometry, "area_km2": t.area_km2} for t in towns]
        with self.engine.begin() as conn:
            conn.execute(delete(towns_table))
            if rows:
                conn.execute(insert(towns_table), rows)
        return len(rows)

    def list(self) -> list[Town]:
        with self.engine.connect() as conn:
            rows = conn.execute(select(towns_table).order_by(towns_table.c.name)).all()
        return [Town(r.name, r.geometry, r.area_km2) for r in rows]

    def count(self) -> int:
        with self.engine.connect() as conn:
            return len(conn.execute(select(towns_table.c.name)).all())
