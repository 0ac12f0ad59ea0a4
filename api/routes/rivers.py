"""Rivers and their segments: JSON, and GeoJSON at ``/geojson`` (a map layer; the district is public knowledge to
everyone signed in, so these are not scoped by town)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query
from fastapi.responses import JSONResponse

from api.auth import ANY_ROLE
from api.errors import not_found
from api.patrol_schemas import FeatureCollectionOut, RiverDetail, RiverOut, SegmentDetail, SegmentOut
from api.routes.patrol_scope import PatrolsDep
from api.schemas import ErrorOut
from core.patrols.geometry import feature_collection, river_feature, segment_feature
from core.patrols.models import Level
from core.patrols.repo import NotFound

router = APIRouter(tags=["rivers"], dependencies=[Depends(ANY_ROLE)])

_Town = Annotated[str | None, Query(max_length=100, description="only segments in this town")]
_River = Annotated[str | None, Query(max_length=64, description="only segments of this river")]
_Chief = Annotated[str | None, Query(max_length=64, description="only the segments this chief is responsible for")]


class GeoJSONResponse(JSONResponse):
    media_type = "application/geo+json"


def geojson_200(model: str) -> dict[int | str, dict[str, Any]]:
    """The 200 of a GeoJSON route, documented as ``application/geo+json`` (errors stay ``application/json``)."""
    return {200: {"content": {"application/geo+json": {"schema": {"$ref": f"#/components/schemas/{model}"}}},
                  "description": "GeoJSON"}}


@router.get("/rivers", response_model=list[RiverOut], summary="List rivers")
def list_rivers(repo: PatrolsDep) -> list[RiverOut]:
    return [RiverOut.from_domain(r) for r in repo.list_rivers()]


@router.get("/rivers/geojson", response_model=FeatureCollectionOut, responses=geojson_200("FeatureCollectionOut"),
            summary="Rivers as a GeoJSON FeatureCollection (MultiLineStrings, properties id and name)")
def rivers_geojson(repo: PatrolsDep) -> GeoJSONResponse:
    return GeoJSONResponse(feature_collection(river_feature(r) for r in repo.list_rivers()))


@router.get("/rivers/{river_id}", response_model=RiverDetail, summary="One river with its course and segments",
            responses={404: {"model": ErrorOut}})
def get_river(river_id: str, repo: PatrolsDep) -> RiverDetail:
    try:
        river = repo.get_river(river_id)
    except NotFound:
        not_found("river", river_id[:80])
    return RiverDetail.from_domain_with_segments(river, repo.list_segments(river_id=river.id))


@router.get("/segments", response_model=list[SegmentOut], summary="List river segments")
def list_segments(repo: PatrolsDep, town: _Town = None, river_id: _River = None, chief_id: _Chief = None,
                  level: Annotated[Level | None, Query()] = None) -> list[SegmentOut]:
    segs = repo.list_segments(river_id=river_id, town=town, chief_id=chief_id)
    return [SegmentOut.from_domain(s) for s in segs if level is None or s.level == level]


@router.get("/segments/geojson", response_model=FeatureCollectionOut, responses=geojson_200("FeatureCollectionOut"),
            summary="Segments as a GeoJSON FeatureCollection (LineStrings; properties id, river_id, town, village, "
                    "level, length_m)")
def segments_geojson(repo: PatrolsDep, town: _Town = None, river_id: _River = None,
                     chief_id: _Chief = None) -> GeoJSONResponse:
    segs = repo.list_segments(river_id=river_id, town=town, chief_id=chief_id)
    return GeoJSONResponse(feature_collection(segment_feature(s) for s in segs))


@router.get("/segments/{segment_id}", response_model=SegmentDetail, summary="One segment with its course",
            responses={404: {"model": ErrorOut}})
def get_segment(segment_id: str, repo: PatrolsDep) -> SegmentDetail:
    try:
        return SegmentDetail.from_domain(repo.get_segment(segment_id))
    except NotFound:
        not_found("segment", segment_id[:80])
