"""Registry DB schema (SQLAlchemy Core): stations, dead letters, alerts and their events."""

from __future__ import annotations

from sqlalchemy import (JSON, BigInteger, Boolean, Column, Float, ForeignKey, Index, Integer, LargeBinary,
                        MetaData, String, Table, Text)

from core.registry.types import UTCDateTime

metadata = MetaData()

stations = Table(
    "stations", metadata,
    Column("id", String(64), primary_key=True),
    Column("kind", String(32), nullable=False, index=True),
    Column("name", String(200), nullable=False),
    Column("town", String(100), nullable=False, index=True),
    Column("lat", Float, nullable=False),
    Column("lon", Float, nullable=False),
    Column("interval_s", Integer, nullable=False),
    Column("river", String(200)),
    Column("village", String(200)),
    Column("dead_level_m", Float),
    Column("normal_level_m", Float),
    Column("flood_limit_level_m", Float),
    Column("design_flood_level_m", Float),
    Column("check_flood_level_m", Float),
    Column("crest_level_m", Float),
    Column("warning_level_m", Float),
    Column("guaranteed_level_m", Float),
    Column("level_storage", JSON),
    Column("flood_limit_periods", JSON),
    Column("flood_control_high_level_m", Float),  # added by a later revision: last, as the migration adds it
)

dead_letters = Table(
    "dead_letters", metadata,
    Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True),
    Column("received_at", UTCDateTime(), nullable=False, index=True),
    Column("topic", Text, nullable=False),
    Column("payload", LargeBinary, nullable=False),  # a bounded prefix (core/dead_letters.py)
    Column("reason", String(64), nullable=False, index=True),
    Column("detail", Text, nullable=False),
    Column("payload_size", BigInteger, nullable=True),
    Column("payload_sha256", String(64), nullable=True),
)

alerts = Table(
    "alerts", metadata,
    Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True),
    Column("station_id", String(64), nullable=False, index=True),
    Column("kind", String(32), nullable=False),
    Column("rule", String(64), nullable=False),
    Column("metric", String(64), nullable=False),
    Column("severity", String(16), nullable=False, index=True),
    Column("state", String(16), nullable=False, index=True),
    Column("started_at", UTCDateTime(), nullable=False),
    Column("updated_at", UTCDateTime(), nullable=False),
    Column("value", Float, nullable=False),
    Column("threshold", Float),
    Column("message", Text, nullable=False),
    Column("acknowledged_at", UTCDateTime()),
    Column("acknowledged_by", String(100)),
    Column("cleared_at", UTCDateTime()),
    Index("alerts_station_rule", "station_id", "rule"),
)

alert_events = Table(
    "alert_events", metadata,
    Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True),
    Column("alert_id", ForeignKey("alerts.id", ondelete="CASCADE"), nullable=False, index=True),
    Column("event", String(32), nullable=False),
    Column("severity", String(16)),
    Column("data_time", UTCDateTime()),
    Column("wall_time", UTCDateTime(), nullable=False),
    Column("detail", Text),
)

rules = Table(
    "rules", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("name", String(64), nullable=False, unique=True),
    Column("type", String(32), nullable=False),
    Column("station_kind", String(32), nullable=False),
    Column("enabled", Boolean, nullable=False),
    Column("body", JSON, nullable=False),  # the whole validated core.rules.Rule
    Column("updated_at", UTCDateTime(), nullable=False),
)

duty_roster = Table(
    "duty_roster", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("person", String(100), nullable=False),
    Column("email", String(200)),
    Column("phone", String(40)),
    Column("town", String(100)),  # None: any town
    Column("station_kind", String(32)),  # None: any kind
    Column("starts_at", UTCDateTime(), nullable=False),
    Column("ends_at", UTCDateTime(), nullable=False),
    # Order of escalation within a shift: 0 is called first, then 1, ...; fallback rows answer when
    # nobody matches the alert's town or kind.
    Column("rank", Integer, nullable=False, default=0),
    Column("fallback", Boolean, nullable=False, default=False),
)
