"""Field devices the gateway hears (SL 651 RTUs, HJ 212 analysers): list, register, remove (docs/gateway.md)."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Body, Depends, Path, Response
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from api.auth import STAFF, require
from api.deps import RegistryDep
from api.errors import conflict, domain_invalid, invalid, not_found
from api.schemas import ErrorOut, UtcDateTime
from core.auth import Role
from core.registry.devices import DeviceExists, DeviceIn, DeviceNotFound, DeviceRepo, FieldDevice
from core.timeutil import utcnow

router = APIRouter(prefix="/devices", tags=["field devices"])

Protocol = Literal["sl651", "hj212"]
Address = Annotated[str, Path(pattern=r"^[A-Za-z0-9_-]{1,64}$", description="SL 651 remote station address "
                                                                          "(10 digits) or HJ 212 MN")]


class FieldDeviceIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    protocol: Protocol
    address: str = Field(max_length=64, description="SL 651 remote station address (10 digits) or HJ 212 MN",
                         examples=["0012345678"])
    password: str | None = Field(default=None, max_length=64, description="stored hashed; unset: not checked")
    station_ids: list[Annotated[str, Field(max_length=64)]] = Field(max_length=16, examples=[["RG0001", "RV0001"]])


class FieldDeviceOut(BaseModel):
    model_config = ConfigDict(extra="forbid")

    protocol: Protocol
    address: str
    station_ids: list[str]
    has_password: bool
    unmapped: dict[str, int] = Field(description="values heard without a metric or a station, by code")
    health: dict[str, float] = Field(description="latest device health: battery_v, clock_drift_s (device ahead > 0)")
    created_at: UtcDateTime
    last_seen_at: UtcDateTime | None = None

    @classmethod
    def from_domain(cls, d: FieldDevice) -> "FieldDeviceOut":
        return cls(protocol=d.protocol, address=d.address, station_ids=d.station_ids, has_password=d.has_password,
                   unmapped=d.unmapped, health=d.health, created_at=d.created_at, last_seen_at=d.last_seen_at)


# Field devices feed stations anywhere in the district, and a device's password is its key: admins only.
DEVICE_ADMINS = require(Role.admin)


@router.get("", response_model=list[FieldDeviceOut], summary="List field devices", dependencies=[Depends(STAFF)])
def list_devices(registry: RegistryDep) -> list[FieldDeviceOut]:
    return [FieldDeviceOut.from_domain(d) for d in DeviceRepo(registry.engine).list()]


@router.post("", response_model=FieldDeviceOut, status_code=201, summary="Register a field device",
             description="Each value the device sends goes to the listed station whose kind has its metric.",
             responses={409: {"model": ErrorOut, "description": "this device is registered already"}},
             dependencies=[Depends(DEVICE_ADMINS)])
def add_device(body: Annotated[FieldDeviceIn, Body()], registry: RegistryDep) -> FieldDeviceOut:
    try:
        device = DeviceIn.model_validate(body.model_dump())
    except ValidationError as exc:
        domain_invalid(exc, "body", FieldDeviceIn.model_fields)
    known = {s.id for s in registry.list_stations()}
    missing = [s for s in device.station_ids if s not in known]
    if missing:
        invalid("body", "station_ids", f"unknown station(s): {', '.join(missing)[:200]}", device.station_ids)
    try:
        return FieldDeviceOut.from_domain(DeviceRepo(registry.engine).add(device, utcnow()))
    except DeviceExists as exc:
        conflict(str(exc))


@router.delete("/{protocol}/{address}", status_code=204, response_class=Response, summary="Remove a field device",
               responses={404: {"model": ErrorOut, "description": "no such device"}},
               dependencies=[Depends(DEVICE_ADMINS)])
def remove_device(protocol: Annotated[Protocol, Path()], address: Address, registry: RegistryDep) -> Response:
    try:
        DeviceRepo(registry.engine).remove(protocol, address)
    except DeviceNotFound:
        not_found(f"{protocol} device", address)
    return Response(status_code=204)


