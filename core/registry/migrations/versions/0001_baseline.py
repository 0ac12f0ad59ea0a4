"""baseline: the registry as metadata.create_all() made it before migrations

Revision ID: 0001
Revises:
Create Date: 2026-11-23

stations, dead_letters, alerts, alert_events, rules, duty_roster and their indexes. ``create_tables`` is also
used to complete a pre-migration registry that an older create_all() made without some of these tables
(core.registry.migrations adopts such a database: completes it, then stamps it 0001). Never edit this revision:
change the schema with a new one.
"""
from __future__ import annotations

from typing import Any, Collection

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

# BIGINT on PostgreSQL; INTEGER on SQLite, where only INTEGER PRIMARY KEY is an autoincrementing rowid.
_BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def create_tables(ops: Any, only: Collection[str] | None = None) -> None:
    """Create the baseline tables (those named in ``only``, else all) and their indexes, parents first."""
    def want(name: str) -> bool:
        return only is None or name in only

    if want("stations"):
        ops.create_table(
            "stations",
            sa.Column("id", sa.String(length=64), nullable=False),
            sa.Column("kind", sa.String(length=32), nullable=False),
            sa.Column("name", sa.String(length=200), nullable=False),
            sa.Column("town", sa.String(length=100), nullable=False),
            sa.Column("lat", sa.Float(), nullable=False),
            sa.Column("lon", sa.Float(), nullable=False),
            sa.Column("interval_s", sa.Integer(), nullable=False),
            sa.Column("river", sa.String(length=200), nullable=True),
            sa.Column("village", sa.String(length=200), nullable=True),
            sa.Column("dead_level_m", sa.Float(), nullable=True),
            sa.Column("normal_level_m", sa.Float(), nullable=True),
            sa.Column("flood_limit_level_m", sa.Float(), nullable=True),
            sa.Column("design_flood_level_m", sa.Float(), nullable=True),
            sa.Column("check_flood_level_m", sa.Float(), nullable=True),
            sa.Column("crest_level_m", sa.Float(), nullable=True),
            sa.Column("warning_level_m", sa.Float(), nullable=True),
            sa.Column("guaranteed_level_m", sa.Float(), nullable=True),
            sa.Column("level_storage", sa.JSON(), nullable=True),
            sa.Column("flood_limit_periods", sa.JSON(), nullable=True),
            sa.PrimaryKeyConstraint("id"),
        )
        ops.create_index("ix_stations_kind", "stations", ["kind"])
        ops.create_index("ix_stations_town", "stations", ["town"])

    if want("dead_letters"):
        ops.create_table(
            "dead_letters",
            sa.Column("id", _BigId, autoincrement=True, nullable=False),
            sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
            sa.Column("topic", sa.Text(), nullable=False),
            sa.Column("payload", sa.LargeBinary(), nullable=False),
            sa.Column("reason", sa.String(length=64), nullable=False),
            sa.Column("detail", sa.Text(), nullable=False),
            sa.PrimaryKeyConstraint("id"),
        )
        ops.create_index("ix_dead_letters_received_at", "dead_letters", ["received_at"])
        ops.create_index("ix_dead_letters_reason", "dead_letters", ["reason"])

    if want("alerts"):
        ops.create_table(
            "alerts",
            sa.Column("id", _BigId, autoincrement=True, nullable=False),
            sa.Column("station_id", sa.String(length=64), nullable=False),
            sa.Column("kind", sa.String(length=32), nullable=False),
            sa.Column("rule", sa.String(length=64), nullable=False),
            sa.Column("metric", sa.String(length=64), nullable=False),
            sa.Column("severity", sa.String(length=16), nullable=False),
            sa.Column("state", sa.String(length=16), nullable=False),
            sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
            sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
            sa.Column("value", sa.Float(), nullable=False),
            sa.Column("threshold", sa.Float(), nullable=True),
            sa.Column("message", sa.Text(), nullable=False),
            sa.Column("acknowledged_at", sa.DateTime(timezone=True), nullable=True),
            sa.Column("acknowledged_by", sa.String(length=100), nullable=True),
            sa.Column("cleared_at", sa.DateTime(timezone=True), nullable=True),
            sa.PrimaryKeyConstraint("id"),
        )
        ops.create_index("ix_alerts_station_id", "alerts", ["station_id"])
        ops.create_index("ix_alerts_severity", "alerts", ["severity"])
        ops.create_index("ix_alerts_state", "alerts", ["state"])
        ops.create_index("alerts_station_rule", "alerts", ["station_id", "rule"])

    if want("alert_events"):
        ops.create_table(
            "alert_events",
            sa.Column("id", _BigId, autoincrement=True, nullable=False),
            sa.Column("alert_id", _BigId, nullable=False),
            sa.Column("event", sa.String(length=32), nullable=False),
            sa.Column("severity", sa.String(length=16), nullable=True),
            sa.Column("data_time", sa.DateTime(timezone=True), nullable=True),
            sa.Column("wall_time", sa.DateTime(timezone=True), nullable=False),
            sa.Column("detail", sa.Text(), nullable=True),
            sa.ForeignKeyConstraint(["alert_id"], ["alerts.id"], ondelete="CASCADE"),
            sa.PrimaryKeyConstraint("id"),
        )
        ops.create_index("ix_alert_events_alert_id", "alert_events", ["alert_id"])

    if want("rules"):
        ops.create_table(
            "rules",
            sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
            sa.Column("name", sa.String(length=64), nullable=False),
            sa.Column("type", sa.String(length=32), nullable=False),
            sa.Column("station_kind", sa.String(length=32), nullable=False),
            sa.Column("enabled", sa.Boolean(), nullable=False),
            sa.Column("body", sa.JSON(), nullable=False),
            sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
            sa.PrimaryKeyConstraint("id"),
            # Unnamed, as create_all() made it (PostgreSQL calls it rules_name_key).
            sa.UniqueConstraint("name"),
        )

    if want("duty_roster"):
        ops.create_table(
            "duty_roster",
            sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
            sa.Column("person", sa.String(length=100), nullable=False),
            sa.Column("email", sa.String(length=200), nullable=True),
            sa.Column("phone", sa.String(length=40), nullable=True),
            sa.Column("town", sa.String(length=100), nullable=True),
            sa.Column("station_kind", sa.String(length=32), nullable=True),
            sa.Column("starts_at", sa.DateTime(timezone=True), nullable=False),
            sa.Column("ends_at", sa.DateTime(timezone=True), nullable=False),
            sa.Column("rank", sa.Integer(), nullable=False),
            sa.Column("fallback", sa.Boolean(), nullable=False),
            sa.PrimaryKeyConstraint("id"),
        )


def upgrade() -> None:
    create_tables(op)


def downgrade() -> None:
    # Dropping a table drops its indexes; children first.
    for name in ("duty_roster", "rules", "alert_events", "alerts", "dead_letters", "stations"):
        op.drop_table(name)
