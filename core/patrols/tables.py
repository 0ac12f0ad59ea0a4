"""River-chief tables on the registry's MetaData (core.registry.tables.metadata), SQLAlchemy Core.

Layout choices:
- Track points live in their own table keyed by (patrol_id, ts_ms): an upload retried by a phone is
  idempotent by the key, and compliance never reads points — it aggregates the figures that finishing a
  patrol stores on ``patrols`` (distance, duration, coverage, valid), one row per patrol, indexed by time.
- Geometry is JSON ([lon, lat] lists, GeoJSON order): no PostGIS needed; geometry maths is in numpy.
- The login of a chief is ``users.chief_id`` (core.registry.users): one link, kept on the accounts' side.
"""

from __future__ import annotations

from sqlalchemy import (JSON, BigInteger, Boolean, Column, DateTime, Float, ForeignKey, Index, Integer, String, Table,
                        Text, UniqueConstraint)

from core.registry.tables import metadata

_BigId = BigInteger().with_variant(Integer, "sqlite")  # SQLite autoincrements INTEGER PRIMARY KEY only

rivers = Table(
    "rivers", metadata,
    Column("id", String(64), primary_key=True),
    Column("name", String(200), nullable=False, index=True),
    Column("geometry", JSON, nullable=False),  # [[[lon, lat], ...], ...]: one or more polylines
    Column("length_m", Float, nullable=False),
)

river_segments = Table(
    "river_segments", metadata,
    Column("id", String(64), primary_key=True),
    Column("river_id", ForeignKey("rivers.id", ondelete="CASCADE"), nullable=False, index=True),
    Column("town", String(100), nullable=False, index=True),
    Column("village", String(200)),
    Column("level", String(16), nullable=False),
    Column("geometry", JSON, nullable=False),  # [[lon, lat], ...]
    Column("length_m", Float, nullable=False),
)

river_chiefs = Table(
    "river_chiefs", metadata,
    Column("id", String(64), primary_key=True),
    Column("name", String(100), nullable=False),
    Column("level", String(16), nullable=False, index=True),
    Column("town", String(100), index=True),  # None for county chiefs
    Column("village", String(200)),
)

chief_segments = Table(
    "chief_segments", metadata,
    Column("chief_id", ForeignKey("river_chiefs.id", ondelete="CASCADE"), primary_key=True),
    Column("segment_id", ForeignKey("river_segments.id", ondelete="CASCADE"), primary_key=True, index=True),
    Column("position", Integer, nullable=False, default=0),  # keeps the chief's list order
)

patrols = Table(
    "patrols", metadata,
    Column("id", _BigId, primary_key=True, autoincrement=True),
    Column("chief_id", ForeignKey("river_chiefs.id"), nullable=False),
    Column("segment_id", ForeignKey("river_segments.id"), nullable=False, index=True),
    Column("self_started", Boolean, nullable=False, default=True),
    Column("started_at", DateTime(timezone=True), nullable=False),
    Column("finished_at", DateTime(timezone=True)),
    Column("status", String(16), nullable=False),
    Column("point_count", Integer, nullable=False, default=0),  # stored fixes (raw, deduplicated by ts)
    Column("distance_m", Float),
    Column("duration_s", Float),
    Column("coverage", Float),
    Column("valid", Boolean),  # None while open
    Column("invalid_reason", Text),
    # Audit of how the row came in: "app" (live, start within the back-dating grace) or "import" (by whom, why).
    Column("recorded_at", DateTime(timezone=True)),
    Column("source", String(16), nullable=False, server_default="app"),
    Column("recorded_by", String(64)),
    Column("import_reason", Text),
    # A chief's patrols by time (list, minimum gap); the whole table by time (compliance aggregates).
    Index("patrols_chief_started", "chief_id", "started_at"),
    Index("patrols_started_status", "started_at", "status", "valid", "chief_id"),
)

patrol_points = Table(
    "patrol_points", metadata,
    Column("patrol_id", ForeignKey("patrols.id", ondelete="CASCADE"), primary_key=True),
    Column("ts_ms", BigInteger, primary_key=True),  # device time, epoch milliseconds UTC
    Column("lat", Float, nullable=False),
    Column("lon", Float, nullable=False),
    Column("accuracy_m", Float),
)

photos = Table(
    "photos", metadata,
    Column("id", _BigId, primary_key=True, autoincrement=True),
    Column("owner_kind", String(16), nullable=False),  # patrol | issue
    Column("owner_id", BigInteger, nullable=False),
    Column("path", String(300), nullable=False),  # relative to data_dir
    Column("content_type", String(32), nullable=False),
    Column("size", Integer, nullable=False),
    Column("sha256", String(64), nullable=False, index=True),
    Column("uploaded_at", DateTime(timezone=True), nullable=False),
    Column("uploaded_by", String(100)),
    # The same picture uploaded twice for the same patrol or issue is one photo.
    UniqueConstraint("owner_kind", "owner_id", "sha256", name="photos_owner_sha256"),
)

issues = Table(
    "issues", metadata,
    Column("id", _BigId, primary_key=True, autoincrement=True),
    Column("category", String(32), nullable=False, index=True),
    Column("description", Text, nullable=False, default=""),
    Column("lat", Float, nullable=False),
    Column("lon", Float, nullable=False),
    Column("segment_id", ForeignKey("river_segments.id"), index=True),
    Column("town", String(100), index=True),
    Column("patrol_id", ForeignKey("patrols.id")),
    Column("found_by", ForeignKey("river_chiefs.id"), nullable=False, index=True),
    Column("found_at", DateTime(timezone=True), nullable=False, index=True),
    Column("state", String(16), nullable=False),
    Column("reopened", Integer, nullable=False, default=0),
    Column("assignee_kind", String(16)),
    Column("assignee", String(200)),
    Column("first_assigned_at", DateTime(timezone=True)),
    Column("assigned_at", DateTime(timezone=True)),
    Column("first_deadline", DateTime(timezone=True)),
    Column("deadline", DateTime(timezone=True)),
    Column("rectified_at", DateTime(timezone=True)),
    Column("rectify_photo_id", ForeignKey("photos.id")),
    Column("reviewed_at", DateTime(timezone=True)),
    Column("review_passed", Boolean),
    Column("closed_at", DateTime(timezone=True)),
    Index("issues_state_deadline", "state", "deadline"),
)

issue_events = Table(
    "issue_events", metadata,
    Column("id", _BigId, primary_key=True, autoincrement=True),
    Column("issue_id", ForeignKey("issues.id", ondelete="CASCADE"), nullable=False, index=True),
    Column("event", String(32), nullable=False),
    Column("at", DateTime(timezone=True), nullable=False),
    Column("by", String(100)),
    Column("from_state", String(16)),
    Column("to_state", String(16), nullable=False),
    Column("detail", Text, nullable=False, default=""),
    Column("data", JSON),
)
