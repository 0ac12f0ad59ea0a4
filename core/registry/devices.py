"""Field devices the gateway hears (SL 651 remote stations, HJ 212 analysers): the ``field_devices`` table and
``DeviceRepo``.

A device is known by protocol + address (the SL 651 remote station address, the HJ 212 MN) and feeds one or more
stations: one RTU often measures several things, and each value goes to the station whose kind has its metric.
The device's password is kept as a hash (core.auth). Codes the gateway could not map are counted per device here,
so ``smartwater devices list`` shows them whatever process heard them.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any, Iterable, Literal

from pydantic import BaseModel, Field, field_validator, model_validator
from sqlalchemy import JSON, Column, Integer, String, Table, UniqueConstraint, delete, insert, select, update
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError

from core.auth import hash_password, verify_password
from core.registry.tables import metadata
from core.registry.types import UTCDateTime

PROTOCOLS = ("sl651", "hj212")
Protocol = Literal["sl651", "hj212"]

field_devices = Table(
    "field_devices", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("protocol", String(16), nullable=False),
    Column("address", String(64), nullable=False),
    Column("password_hash", String(255)),  # None: the device's password is not checked
    Column("station_ids", JSON, nullable=False),  # ["RG0001", "RV0001"], in the order given
    Column("unmapped", JSON, nullable=False),  # {"w01014": 12, ...}: values heard that had no metric or station
    Column("health", JSON),  # the latest device-health values: {"battery_v": 12.3, "clock_drift_s": -4.0}
    Column("created_at", UTCDateTime, nullable=False),
    Column("last_seen_at", UTCDateTime),
    UniqueConstraint("protocol", "address", name="uq_field_devices_protocol_address"),
    sqlite_autoincrement=True,
)

_SL651_ADDRESS = re.compile(r"^[0-9]{10}$")
_MN = re.compile(r"^[A-Za-z0-9_-]{1,24}$")
# SL 651 passwords are two BCD/hex bytes; HJ 212 passwords six characters by convention, longer ones exist.
_SL651_PASSWORD = re.compile(r"^[0-9A-Fa-f]{4}$")


class DeviceExists(ValueError):
    pass


class DeviceNotFound(LookupError):
    pass


class DeviceIn(BaseModel):
    """A device as registered (CLI, CSV import, API); ``password`` in clear, hashed on the way in."""

    model_config = {"extra": "forbid"}

    protocol: Protocol
    address: str = Field(min_length=1, max_length=64)
    password: str | None = Field(default=None, max_length=64)
    station_ids: list[str] = Field(min_length=1, max_length=16)

    @model_validator(mode="after")
    def _check(self) -> "DeviceIn":
        self.address = self.address.strip()
        if self.protocol == "sl651":
            if not _SL651_ADDRESS.match(self.address):
                raise ValueError(f"an SL 651 remote station address is 10 digits (5 BCD bytes), got {self.address!r}")
            if self.password is not None and not _SL651_PASSWORD.match(self.password):
                raise ValueError("an SL 651 password is 4 hex digits (2 bytes)")
            if self.password is not None:
                self.password = self.password.upper()
        elif not _MN.match(self.address):
            raise ValueError(f"an HJ 212 MN is 1-24 letters, digits, '-' or '_', got {self.address!r}")
        if len(set(self.station_ids)) != len(self.station_ids):
            raise ValueError("a station is given twice")
        return self

    @field_validator("station_ids")
    @classmethod
    def _ids(cls, v: list[str]) -> list[str]:
        for sid in v:
            if not re.match(r"^[A-Za-z0-9_-]{1,64}$", sid):
                raise ValueError(f"station id {sid!r}: 1-64 letters, digits, '-' or '_'")
        return v


class FieldDevice(BaseModel):
    id: int
    protocol: Protocol
    address: str
    station_ids: list[str]
    has_password: bool
    unmapped: dict[str, int]
    health: dict[str, float] = {}
    created_at: datetime
    last_seen_at: datetime | None = None
    password_hash: str | None = Field(default=None, exclude=True, repr=False)

    def password_ok(self, password: str | None) -> bool:
        if self.password_hash is None:
            return True
        return password is not None and verify_password(password.upper() if self.protocol == "sl651" else password,
                                                        self.password_hash)


def _device(row: Any) -> FieldDevice:
    return FieldDevice(id=row.id, protocol=row.protocol, address=row.address, station_ids=list(row.station_ids),
                       has_password=row.password_hash is not None, unmapped=dict(row.unmapped or {}),
                       health=dict(row.health or {}),
                       created_at=row.created_at, last_seen_at=row.last_seen_at, password_hash=row.password_hash)


class DeviceRepo:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def add(self, device: DeviceIn, now: datetime, *, replace: bool = False) -> FieldDevice:
        values = dict(protocol=device.protocol, address=device.address,
                      password_hash=hash_password(device.password) if device.password is not None else None,
                      station_ids=list(device.station_ids))
        with self.engine.begin() as conn:
            existing = conn.execute(select(field_devices.c.id).where(
                field_devices.c.protocol == device.protocol, field_devices.c.address == device.address)).first()
            if existing is not None:
                if not replace:
                    raise DeviceExists(f"{device.protocol} device {device.address} is already registered")
                conn.execute(update(field_devices).where(field_devices.c.id == existing.id).values(**values))
            else:
                try:
                    conn.execute(insert(field_devices).values(**values, unmapped={}, created_at=now))
                except IntegrityError:
                    raise DeviceExists(f"{device.protocol} device {device.address} is already registered") from None
        return self.get(device.protocol, device.address)

    def get(self, protocol: str, address: str) -> FieldDevice:
        with self.engine.connect() as conn:
            row = conn.execute(select(field_devices).where(field_devices.c.protocol == protocol,
                                                           field_devices.c.address == address)).first()
        if row is None:
            raise DeviceNotFound(f"no {protocol} device {address}")
        return _device(row)

    def list(self, protocol: str | None = None) -> list[FieldDevice]:
        q = select(field_devices).order_by(field_devices.c.protocol, field_devices.c.address)
        if protocol is not None:
            q = q.where(field_devices.c.protocol == protocol)
        with self.engine.connect() as conn:
            return [_device(r) for r in conn.execute(q)]

    def remove(self, protocol: str, address: str) -> None:
        with self.engine.begin() as conn:
            n = conn.execute(delete(field_devices).where(field_devices.c.protocol == protocol,
                                                         field_devices.c.address == address)).rowcount
        if not n:
            raise DeviceNotFound(f"no {protocol} device {address}")

    def record_activity(self, counts: Iterable[tuple[str, str, dict[str, int], datetime | None, dict[str, float]]]
                        ) -> None:
        """Add unmapped-code counts, set last-seen times and health values: (protocol, address, {code: n},
        last seen, {name: value})."""
        with self.engine.begin() as conn:
            for protocol, address, unmapped, seen, health in counts:
                row = conn.execute(select(field_devices.c.id, field_devices.c.unmapped, field_devices.c.health).where(
                    field_devices.c.protocol == protocol, field_devices.c.address == address)).first()
                if row is None:
                    continue
                merged = dict(row.unmapped or {})
                for code, n in unmapped.items():
                    merged[code] = merged.get(code, 0) + n
                values: dict[str, Any] = {"unmapped": merged}
                if seen is not None:
                    values["last_seen_at"] = seen
                if health:
                    values["health"] = {**(row.health or {}), **health}
                conn.execute(update(field_devices).where(field_devices.c.id == row.id).values(**values))
