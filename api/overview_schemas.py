"""Response models of the dashboard's overview endpoints (``api.routes.overview``).

Built field by field like ``api.schemas`` (no mass assignment); times are UTC with an explicit offset. Every
response carries ``as_of``: the data clock the figures are measured against (the newest reading stored, never
later than now), so a replay or the demo's simulated clock reads the same as live data.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from api.schemas import UtcDateTime
from core.domain import Kind

StationState = Literal["normal", "blue", "yellow", "orange", "red", "stale"]
STATE_HELP = ("the most severe open alert's colour (blue < yellow < orange < red); else `stale` when the station "
              "has not reported for 3 of its intervals (or never), else `normal`")


class _Out(BaseModel):
    model_config = ConfigDict(extra="forbid")


# -- map (GeoJSON, RFC 7946: positions are [lon, lat]) -----------------------------------------------------
class PointGeometry(_Out):
    type: Literal["Point"] = "Point"
    coordinates: tuple[float, float] = Field(description="[lon, lat]")


class LineStringGeometry(_Out):
    type: Literal["LineString"] = "LineString"
    coordinates: list[tuple[float, float]]


class MultiLineStringGeometry(_Out):
    type: Literal["MultiLineString"] = "MultiLineString"
    coordinates: list[list[tuple[float, float]]]


class StationProperties(_Out):
    layer: Literal["station"] = "station"
    id: str
    name: str
    kind: Kind
    town: str
    state: StationState = Field(description=STATE_HELP)
    last_ts: UtcDateTime | None = Field(description="data time of the station's newest reading")


class RiverProperties(_Out):
    layer: Literal["river"] = "river"
    id: str
    name: str


class StationFeature(_Out):
    type: Literal["Feature"] = "Feature"
    id: str
    geometry: PointGeometry
    properties: StationProperties


class RiverFeature(_Out):
    type: Literal["Feature"] = "Feature"
    id: str
    geometry: LineStringGeometry | MultiLineStringGeometry
    properties: RiverProperties


class MapOut(_Out):
    type: Literal["FeatureCollection"] = "FeatureCollection"
    as_of: UtcDateTime
    bbox: tuple[float, float, float, float] | None = Field(description="[west, south, east, north] of all features")
    counts: dict[str, int] = Field(description="stations per state")
    features: list[RiverFeature | StationFeature] = Field(description="rivers first, then stations")


# -- rain ---------------------------------------------------------------------------------------------------
class RainGauge(_Out):
    station_id: str
    name: str
    town: str
    rain_1h_mm: float | None = Field(description="sum over (as_of − 1 h, as_of]; null: no report in 24 h")
    rain_3h_mm: float | None
    rain_6h_mm: float | None
    rain_24h_mm: float | None
    last_ts: UtcDateTime | None
    state: StationState


class RainOut(_Out):
    as_of: UtcDateTime
    windows_h: list[int]
    gauges: list[RainGauge] = Field(description="wettest 24 h first")


# -- reservoirs ---------------------------------------------------------------------------------------------
class ReservoirRow(_Out):
    station_id: str
    name: str
    town: str
    water_level_m: float | None
    ts: UtcDateTime | None = Field(description="data time of the level")
    flood_limit_level_m: float | None = Field(description="the flood-limit level in force on as_of's local date "
                                                          "(seasonal, SL 323 ST_RSVRFSR_B)")
    above_flood_limit_m: float | None = Field(description="water level minus the flood-limit level (positive: over)")
    normal_level_m: float | None
    design_flood_level_m: float | None
    check_flood_level_m: float | None
    storage_mcm: float | None = Field(description="stored storage_mcm reading, else from the level–storage curve")
    storage_pct: float | None = Field(description="storage as % of the storage at the normal pool level")
    inflow_m3s: float | None
    outflow_m3s: float | None
    state: StationState


class ReservoirsOut(_Out):
    as_of: UtcDateTime
    reservoirs: list[ReservoirRow] = Field(description="highest above its flood-limit level first")


# -- village water quality ----------------------------------------------------------------------------------
class QualityLimit(_Out):
    metric: str
    unit: str
    min: float | None
    max: float | None
    source: str


class VillageQuality(_Out):
    station_id: str
    name: str
    village: str | None
    town: str
    turbidity_ntu: float | None
    ph: float | None
    free_chlorine_mgl: float | None
    pressure_mpa: float | None
    ts: UtcDateTime | None = Field(description="data time of the newest of these values")
    compliant: bool | None = Field(description="every limited value within its limits; null: no values")
    failing: list[str] = Field(description="metrics outside their limits")
    state: StationState


class TownQuality(_Out):
    town: str
    villages: int
    reporting: int = Field(description="villages with values")
    compliant: int
    rate_pct: float | None = Field(description="compliant ÷ reporting × 100")


class WaterQualityOut(_Out):
    as_of: UtcDateTime
    limits: list[QualityLimit]
    towns: list[TownQuality] = Field(description="lowest compliance first")
    villages: list[VillageQuality] = Field(description="non-compliant first, then by town and id")
