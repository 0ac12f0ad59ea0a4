"""Report tables on the registry's MetaData (core.registry.tables.metadata): the towns' boundaries."""

from __future__ import annotations

from sqlalchemy import JSON, Column, Float, String, Table

from core.registry.tables import metadata

# One row per town (the stations' ``town``): its boundary as a GeoJSON Polygon or MultiPolygon ([lon, lat],
# WGS 84) and its area, so areal rainfall can weigh the gauges over it.
towns = Table(
    "towns", metadata,
    Column("name", String(100), primary_key=True),
    Column("geometry", JSON, nullable=False),
    Column("area_km2", Float, nullable=False),
)
