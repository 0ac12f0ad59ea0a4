"""The domain model shared by every stage: station kinds, metrics with units, stations, readings, alerts."""

from __future__ import annotations

import bisect
import enum
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, NamedTuple

from pydantic import BaseModel, Field, model_validator


class Kind(str, enum.Enum):
    reservoir = "reservoir"
    rain = "rain"
    river = "river"
    village_water = "village_water"
    groundwater = "groundwater"
    intake = "intake"


KINDS: tuple[str, ...] = tuple(k.value for k in Kind)


@dataclass(frozen=True, slots=True)
class MetricSpec:
    name: str
    unit: str
    # Hard physical plausibility limits: outside them a reading is rejected as a dead letter.
    min: float
    max: float


def _m(name: str, unit: str, lo: float, hi: float) -> tuple[str, MetricSpec]:
    return name, MetricSpec(name, unit, lo, hi)


# docs/data-model.md, "Kinds and metrics". Elevations are metres above the national datum; Chinese reservoirs
# sit between sea level and ~5,000 m, so levels outside -50..6000 m are instrument or encoding faults.
METRICS: dict[str, dict[str, MetricSpec]] = {
    Kind.reservoir.value: dict([
        _m("water_level_m", "m", -50, 6000),
        _m("storage_mcm", "10^6 m3", 0, 50000),
        _m("inflow_m3s", "m3/s", 0, 100000),
        _m("outflow_m3s", "m3/s", 0, 100000),
        _m("seepage_pressure_kpa", "kPa", -100, 10000),
    ]),
    # rain_mm is the increment since the previous report; 500 mm in one report exceeds any record.
    Kind.rain.value: dict([_m("rain_mm", "mm", 0, 500)]),
    Kind.river.value: dict([
        _m("water_level_m", "m", -50, 6000),
        _m("flow_m3s", "m3/s", 0, 100000),
    ]),
    Kind.village_water.value: dict([
        _m("turbidity_ntu", "NTU", 0, 4000),
        _m("ph", "pH", 0, 14),
        _m("free_chlorine_mgl", "mg/L", 0, 20),
        _m("pressure_mpa", "MPa", -0.1, 10),
        _m("flow_m3h", "m3/h", 0, 100000),
    ]),
    Kind.groundwater.value: dict([_m("depth_m", "m", -10, 3000)]),
    Kind.intake.value: dict([_m("volume_m3", "m3", 0, 1e12)]),
}


class Severity(str, enum.Enum):
    blue = "blue"
    yellow = "yellow"
    orange = "orange"
    red = "red"

    @property
    def rank(self) -> int:
        return SEVERITY_ORDER.index(self.value)


SEVERITY_ORDER: tuple[str, ...] = ("blue", "yellow", "orange", "red")


class AlertState(str, enum.Enum):
    active = "active"
    acknowledged = "acknowledged"
    cleared = "cleared"
    closed = "closed"


OPEN_ALERT_STATES = (AlertState.active.value, AlertState.acknowledged.value)


class FloodLimitPeriod(BaseModel):
    """One row of SL 323 ST_RSVRFSR_B: the flood-limit level that applies from start to end (MMDD, inclusive)."""

    start: str = Field(pattern=r"^\d{4}$")
    end: str = Field(pattern=r"^\d{4}$")
    level_m: float
    type: str = "main"

    def contains(self, mmdd: str) -> bool:
        if self.start <= self.end:
            return self.start <= mmdd <= self.end
        return mmdd >= self.start or mmdd <= self.end  # wraps the new year


class Station(BaseModel):
    id: str = Field(pattern=r"^[A-Za-z0-9_-]{1,64}$")
    kind: Kind
    name: str
    town: str
    lat: float = Field(ge=-90, le=90)
    lon: float = Field(ge=-180, le=180)
    interval_s: int = Field(default=300, gt=0)
    river: str | None = None
    village: str | None = None
    # Reservoir characteristic levels (SL 323 ST_RSVRFCCH_B), metres.
    dead_level_m: float | None = None
    normal_level_m: float | None = None
    flood_limit_level_m: float | None = None
    # Flood-control high level (防洪高水位): the top of the storage the plan uses to protect downstream;
    # above it the reservoir's emergency plan goes to orange (docs/domain.md, "Reservoirs").
    flood_control_high_level_m: float | None = None
    design_flood_level_m: float | None = None
    check_flood_level_m: float | None = None
    crest_level_m: float | None = None
    # River flood indicators (SL 323 ST_RVFCCH_B), metres.
    warning_level_m: float | None = None
    guaranteed_level_m: float | None = None
    # Level–storage curve as [[level_m, storage_mcm], ...] ascending by level.
    level_storage: list[tuple[float, float]] | None = None
    flood_limit_periods: list[FloodLimitPeriod] | None = None

    def flood_limit_at(self, ts: datetime, tz: Any = None) -> float | None:
        """The flood-limit level in force on the reading's (local) date; seasonal when periods are given."""
        if self.flood_limit_periods:
            local = ts.astimezone(tz) if tz is not None else ts
            mmdd = local.strftime("%m%d")
            for period in self.flood_limit_periods:
                if period.contains(mmdd):
                    return period.level_m
        return self.flood_limit_level_m

    def storage_at(self, level_m: float) -> float | None:
        """Storage (10^6 m3) from the level–storage curve, linear between points, clamped at its ends."""
        curve = self.level_storage
        if not curve:
            return None
        levels = [p[0] for p in curve]
        i = bisect.bisect_left(levels, level_m)
        if i <= 0:
            return curve[0][1]
        if i >= len(curve):
            return curve[-1][1]
        (l0, s0), (l1, s1) = curve[i - 1], curve[i]
        return s0 + (s1 - s0) * (level_m - l0) / (l1 - l0) if l1 != l0 else s1

    def reference_levels(self) -> dict[str, float]:
        names = ("dead_level_m", "normal_level_m", "flood_limit_level_m", "flood_control_high_level_m",
                 "design_flood_level_m", "check_flood_level_m", "crest_level_m", "warning_level_m",
                 "guaranteed_level_m")
        return {n: getattr(self, n) for n in names if getattr(self, n) is not None}


class Reading(NamedTuple):
    """One value of one metric of one station at one (device) time. ``ts`` is timezone-aware UTC.

    A NamedTuple rather than a frozen dataclass: ingest makes one per value, and a tuple is
    several times cheaper to build.
    """

    station_id: str
    kind: str
    metric: str
    ts: datetime
    value: float


@dataclass(slots=True)
class DeadLetter:
    topic: str
    payload: bytes  # at most a bounded prefix of what arrived (core/dead_letters.py)
    reason: str
    detail: str
    received_at: datetime
    id: int | None = None
    payload_size: int | None = None  # bytes that arrived; None in rows from before sizes were kept
    payload_sha256: str | None = None  # of the whole payload, hex


@dataclass(slots=True)
class Alert:
    station_id: str
    rule: str
    severity: str
    state: str
    started_at: datetime  # data time of the reading that raised it
    updated_at: datetime  # data time of the latest change
    value: float
    threshold: float | None
    message: str
    kind: str = ""
    metric: str = ""
    acknowledged_at: datetime | None = None
    acknowledged_by: str | None = None
    cleared_at: datetime | None = None
    id: int | None = None
    extra: dict[str, Any] = field(default_factory=dict)


class DutyShift(BaseModel):
    """One person on duty for a time span, for a town and/or station kind (None: any), in escalation order."""

    model_config = {"extra": "forbid"}

    id: int | None = None
    person: str = Field(min_length=1, max_length=100)
    email: str | None = Field(default=None, pattern=r"^[^@\s]+@[^@\s]+$", max_length=200)
    phone: str | None = Field(default=None, pattern=r"^\+?[0-9 -]{5,40}$")
    town: str | None = Field(default=None, max_length=100)
    station_kind: Kind | None = None
    starts_at: datetime
    ends_at: datetime
    rank: int = Field(default=0, ge=0, le=100)
    fallback: bool = False

    @model_validator(mode="after")
    def _span(self) -> "DutyShift":
        if self.starts_at.tzinfo is None or self.ends_at.tzinfo is None:
            raise ValueError("starts_at and ends_at need a UTC offset")
        if self.ends_at <= self.starts_at:
            raise ValueError("ends_at must be after starts_at")
        # UTC inside: SQLite keeps no offset, so a +08:00 time stored as is would read back 8 h off.
        self.starts_at = self.starts_at.astimezone(timezone.utc)
        self.ends_at = self.ends_at.astimezone(timezone.utc)
        return self
