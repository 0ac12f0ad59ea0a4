"""Stations and their reference levels, from the registry."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query

from api.auth import ANY_ROLE
from api.deps import RegistryDep
from api.errors import not_found
from api.params import STATION_ID_RE
from api.schemas import ErrorOut, StationDetail, StationOut
from core.domain import Kind, Station
from core.registry import Registry

router = APIRouter(prefix="/stations", tags=["stations"], dependencies=[Depends(ANY_ROLE)])


def lookup_station(registry: Registry, station_id: str) -> Station:
    """The station, or 404 — also for ids that cannot be station ids (no query is made for those)."""
    station = registry.get_station(station_id) if STATION_ID_RE.match(station_id) else None
    if station is None:
        not_found("station", station_id if len(station_id) <= 80 else station_id[:80] + "…")
    return station


@router.get("", response_model=list[StationOut], summary="List stations")
def list_stations(
    registry: RegistryDep,
    kind: Annotated[Kind | None, Query(description="only stations of this kind")] = None,
    town: Annotated[str | None, Query(max_length=100, description="only stations in this town")] = None,
) -> list[StationOut]:
    stations = registry.list_stations(kind=kind.value if kind else None, town=town)
    return [StationOut.from_domain(s) for s in stations]


@router.get("/{station_id}", response_model=StationDetail, summary="One station",
            responses={404: {"model": ErrorOut}})
def get_station(station_id: str, registry: RegistryDep) -> StationDetail:
    return StationDetail.from_domain(lookup_station(registry, station_id))
