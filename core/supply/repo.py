"""``SupplyRepo``: intake users and meters, groundwater wells, water sources and village supplies in the registry."""

from __future__ import annotations

from typing import Any, Iterable, Sequence

from pydantic import BaseModel
from sqlalchemy import Table, func, insert, select, update
from sqlalchemy.engine import Connection, Engine

from core.supply.models import GroundwaterWell, IntakeMeter, IntakeUser, VillageSupply, WaterSource
from core.supply.tables import groundwater_wells, intake_meters, intake_users, village_supplies, water_sources


def _upsert(conn: Connection, table: Table, key: str, rows: Sequence[dict[str, Any]]) -> int:
    """Insert the rows whose key is new, update the others (portable: SQLite and PostgreSQL)."""
    if not rows:
        return 0
    column = table.c[key]
    existing = set(conn.scalars(select(column).where(column.in_([r[key] for r in rows]))))
    new = [r for r in rows if r[key] not in existing]
    if new:
        conn.execute(insert(table), new)
    for r in rows:
        if r[key] in existing:
            conn.execute(update(table).where(column == r[key]).values(**r))
    return len(rows)


def _dump(items: Iterable[BaseModel]) -> list[dict[str, Any]]:
    out = []
    for item in items:
        row = item.model_dump()
        for k, v in row.items():
            if isinstance(v, tuple):
                row[k] = list(v)  # JSON columns
        out.append(row)
    return out


class SupplyRepo:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    # -- writes: upserts by id, in one transaction each ----------------------------------------------------------
    def upsert_intake_users(self, users: Iterable[IntakeUser]) -> int:
        with self.engine.begin() as conn:
            return _upsert(conn, intake_users, "id", _dump(users))

    def upsert_meters(self, meters: Iterable[IntakeMeter]) -> int:
        with self.engine.begin() as conn:
            return _upsert(conn, intake_meters, "id", _dump(meters))

    def upsert_wells(self, wells: Iterable[GroundwaterWell]) -> int:
        with self.engine.begin() as conn:
            return _upsert(conn, groundwater_wells, "station_id", _dump(wells))

    def upsert_sources(self, sources: Iterable[WaterSource]) -> int:
        with self.engine.begin() as conn:
            return _upsert(conn, water_sources, "id", _dump(sources))

    def upsert_supplies(self, supplies: Iterable[VillageSupply]) -> int:
        with self.engine.begin() as conn:
            return _upsert(conn, village_supplies, "station_id", _dump(supplies))

    # -- reads -----------------------------------------------------------------------------------------------------
    def _rows(self, table: Table, order: str | tuple[str, ...], **where: Any) -> list[dict[str, Any]]:
        q = select(table).order_by(*(table.c[o] for o in ((order,) if isinstance(order, str) else order)))
        for k, v in where.items():
            if v is not None:
                q = q.where(table.c[k] == v)
        with self.engine.connect() as conn:
            return [dict(r._mapping) for r in conn.execute(q)]

    def list_intake_users(self, town: str | None = None) -> list[IntakeUser]:
        return [IntakeUser.model_validate(r) for r in self._rows(intake_users, "id", town=town)]

    def list_meters(self, user_id: str | None = None, station_id: str | None = None) -> list[IntakeMeter]:
        """Meters by station, each station's in the order they were installed (its history)."""
        return [IntakeMeter.model_validate(r) for r in self._rows(
            intake_meters, ("station_id", "installed_at", "id"), user_id=user_id, station_id=station_id)]

    def list_wells(self) -> list[GroundwaterWell]:
        return [GroundwaterWell.model_validate(r) for r in self._rows(groundwater_wells, "station_id")]

    def list_sources(self) -> list[WaterSource]:
        return [WaterSource.model_validate(r) for r in self._rows(water_sources, "id")]

    def list_supplies(self) -> list[VillageSupply]:
        return [VillageSupply.model_validate(r) for r in self._rows(village_supplies, "station_id")]

    def get_supply(self, station_id: str) -> VillageSupply | None:
        rows = self._rows(village_supplies, "station_id", station_id=station_id)
        return VillageSupply.model_validate(rows[0]) if rows else None

    def intake_user_ids(self) -> set[str]:
        with self.engine.connect() as conn:
            return set(conn.scalars(select(intake_users.c.id)))

    def counts(self) -> dict[str, int]:
        with self.engine.connect() as conn:
            return {t.name: conn.scalar(select(func.count()).select_from(t)) or 0
                    for t in (intake_users, intake_meters, groundwater_wells, water_sources, village_supplies)}
