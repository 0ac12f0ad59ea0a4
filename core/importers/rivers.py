"""Rivers from GeoJSON (and back): the river network the river-chief system cuts into segments."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Iterable

from pydantic import ValidationError

from core.importers.problems import InvalidFile, Problems, validation_detail
from core.patrols.geometry import river_feature
from core.patrols.models import River


def rivers_to_geojson(rivers: Iterable[River]) -> dict[str, Any]:
    return {"type": "FeatureCollection", "features": [river_feature(r) for r in rivers]}


def load_rivers_geojson(source: str | Path | dict[str, Any]) -> list[River]:
    """Rivers from a GeoJSON FeatureCollection of LineStrings or MultiLineStrings ([lon, lat], WGS 84) with
    ``id`` (property or feature id) and ``name`` properties. Validated whole: ``InvalidFile`` names every bad
    feature, ``features[3] (id 'x')``."""
    where = "GeoJSON"
    if isinstance(source, (str, Path)):
        where = str(source)
        try:
            data = json.loads(Path(source).read_text(encoding="utf-8-sig"))
        except OSError as exc:
            raise InvalidFile([f"{where}: cannot read: {exc.strerror or exc}"]) from None
        except UnicodeDecodeError:
            raise InvalidFile([f"{where}: not UTF-8 text"]) from None
        except json.JSONDecodeError as exc:
            raise InvalidFile([f"{where}: not JSON: {exc}"]) from None
    else:
        data = source
    if not isinstance(data, dict) or data.get("type") != "FeatureCollection" or not isinstance(
            data.get("features"), list):
        raise InvalidFile([f"{where}: not a GeoJSON FeatureCollection"])
    problems = Problems()
    rivers: list[River] = []
    seen: dict[str, int] = {}
    for i, feat in enumerate(data["features"]):
        props = (feat.get("properties") or {}) if isinstance(feat, dict) else {}
        fid = props.get("id", feat.get("id") if isinstance(feat, dict) else None)
        label = f"{where}: features[{i}]" + (f" (id {fid!r})" if fid is not None else "")
        if not isinstance(feat, dict) or feat.get("type") != "Feature":
            problems.add(f"{label}: not a Feature")
            continue
        if fid is None or str(fid).strip() == "":
            problems.add(f"{label}: no id (property 'id' or the feature's id)")
            continue
        if not props.get("name"):
            problems.add(f"{label}: no 'name' property")
            continue
        geom = feat.get("geometry") or {}
        gtype, coords = geom.get("type"), geom.get("coordinates")
        if gtype == "LineString":
            lines = [coords]
        elif gtype == "MultiLineString":
            lines = coords
        else:
            problems.add(f"{label}: geometry {gtype!r} is not a LineString or MultiLineString")
            continue
        try:
            river = River(id=str(fid), name=str(props["name"]), geometry=lines)
        except ValidationError as exc:
            problems.add(f"{label}: {validation_detail(exc)}")
            continue
        if river.id in seen:
            problems.add(f"{label}: duplicate id (first in features[{seen[river.id]}])")
            continue
        seen[river.id] = i
        rivers.append(river)
    problems.check()
    return rivers
