"""Water-resources and village-supply tables on the registry's MetaData (core.registry.tables.metadata):
intake users and their meters, groundwater wells, water sources, village supplies (core/supply/models.py)."""

from __future__ import annotations

from sqlalchemy import JSON, Column, Float, ForeignKey, Integer, String, Table

from core.registry.tables import metadata
from core.registry.types import UTCDateTime

intake_users = Table(
    "intake_users", metadata,
    Column("id", String(64), primary_key=True),
    Column("name", String(200), nullable=False),
    Column("town", String(100), nullable=False, index=True),
    Column("source", String(16), nullable=False),  # surface | ground
    Column("licence_no", String(100), nullable=False),
    Column("permitted_m3_per_year", Float, nullable=False),
)

# A meter belongs to one user and reads at one `intake` station; a replaced meter keeps its row (removed_at), so
# volumes before the replacement stay attributable.
intake_meters = Table(
    "intake_meters", metadata,
    Column("id", String(64), primary_key=True),
    Column("user_id", ForeignKey("intake_users.id", ondelete="CASCADE"), nullable=False, index=True),
    Column("station_id", String(64), nullable=False, index=True),
    Column("installed_at", UTCDateTime(), nullable=False),
    Column("removed_at", UTCDateTime()),
    Column("rollover_m3", Float, nullable=False),
)

groundwater_wells = Table(
    "groundwater_wells", metadata,
    Column("station_id", String(64), primary_key=True),
    Column("town", String(100), nullable=False),
    Column("ground_elevation_m", Float, nullable=False),
    Column("aquifer", String(100), nullable=False),
    Column("well_depth_m", Float, nullable=False),
)

water_sources = Table(
    "water_sources", metadata,
    Column("id", String(64), primary_key=True),
    Column("name", String(200), nullable=False),
    Column("kind", String(16), nullable=False),  # reservoir | well_field | river
    Column("reservoir_station_id", String(64)),
    Column("village_station_ids", JSON, nullable=False),  # ["VW0001", ...]
    Column("plant_ids", JSON, nullable=False),  # ["PL01", ...]
)

village_supplies = Table(
    "village_supplies", metadata,
    Column("station_id", String(64), primary_key=True),
    Column("supply_type", String(24), nullable=False),
    Column("population", Integer, nullable=False),
    Column("design_m3_per_day", Float, nullable=False),
    Column("plant_id", String(64), index=True),
    Column("disinfectant", String(24), nullable=False),
    Column("service_head_m", Float, nullable=False),
)
