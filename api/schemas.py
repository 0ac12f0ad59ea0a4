"""Response and request schemas, separate from the domain model.

Every model is built field by field from the domain objects (``from_domain``), so nothing the domain grows later
leaks out by accident (no mass assignment). Every time is serialized as ISO 8601 in UTC with an explicit
``+00:00`` offset.
"""

from __future__ import annotations

import base64
import copy
from datetime import datetime, timezone
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, PlainSerializer, WithJsonSchema, create_model

from core.auth import MAX_PASSWORD_LEN, Role
from core.domain import METRICS, Alert, DeadLetter, DutyShift, Kind, Reading, Severity, Station
from core.rules import Rule, RuleType

UTC = timezone.utc


def _to_utc(ts: datetime) -> datetime:
    # Everything stored is UTC; a naive value coming back from a driver is UTC too.
    return ts.replace(tzinfo=UTC) if ts.tzinfo is None else ts.astimezone(UTC)


UtcDateTime = Annotated[
    datetime,
    AfterValidator(_to_utc),
    PlainSerializer(lambda ts: ts.isoformat(), return_type=str, when_used="json"),
    WithJsonSchema({"type": "string", "format": "date-time", "examples": ["2026-06-28T06:05:00+00:00"]}),
]


class _Out(BaseModel):
    model_config = ConfigDict(extra="forbid")


# -- health ------------------------------------------------------------------
class HealthChecks(_Out):
    registry: bool
    store: bool


class Health(_Out):
    status: Literal["ok", "degraded"]
    checks: HealthChecks


# -- stations ----------------------------------------------------------------
class MetricOut(_Out):
    name: str
    unit: str


class FloodLimitPeriodOut(_Out):
    start: str = Field(description="first day, MMDD")
    end: str = Field(description="last day, MMDD (inclusive; may wrap the new year)")
    level_m: float
    type: str


class StationOut(_Out):
    id: str
    kind: Kind
    name: str
    town: str
    lat: float
    lon: float
    interval_s: int
    river: str | None
    village: str | None
    dead_level_m: float | None
    normal_level_m: float | None
    flood_limit_level_m: float | None
    flood_control_high_level_m: float | None = None
    design_flood_level_m: float | None
    check_flood_level_m: float | None
    crest_level_m: float | None
    warning_level_m: float | None
    guaranteed_level_m: float | None

    @classmethod
    def _fields(cls, s: Station) -> dict[str, Any]:
        return dict(
            id=s.id, kind=s.kind, name=s.name, town=s.town, lat=s.lat, lon=s.lon, interval_s=s.interval_s,
            river=s.river, village=s.village,
            dead_level_m=s.dead_level_m, normal_level_m=s.normal_level_m,
            flood_limit_level_m=s.flood_limit_level_m, flood_control_high_level_m=s.flood_control_high_level_m,
            design_flood_level_m=s.design_flood_level_m,
            check_flood_level_m=s.check_flood_level_m, crest_level_m=s.crest_level_m,
            warning_level_m=s.warning_level_m, guaranteed_level_m=s.guaranteed_level_m,
        )

    @classmethod
    def from_domain(cls, s: Station) -> "StationOut":
        return cls(**cls._fields(s))


class StationDetail(StationOut):
    level_storage: list[tuple[float, float]] | None = Field(
        description="level–storage curve as [[level_m, storage_mcm], ...], ascending by level")
    flood_limit_periods: list[FloodLimitPeriodOut] | None = Field(
        description="seasonal flood-limit levels (SL 323 ST_RSVRFSR_B); null when the level is not seasonal")
    metrics: list[MetricOut] = Field(description="the metrics a station of this kind reports, with units")

    @classmethod
    def from_domain(cls, s: Station) -> "StationDetail":
        periods = None
        if s.flood_limit_periods is not None:
            periods = [FloodLimitPeriodOut(start=p.start, end=p.end, level_m=p.level_m, type=p.type)
                       for p in s.flood_limit_periods]
        curve = [(float(lv), float(st)) for lv, st in s.level_storage] if s.level_storage is not None else None
        metrics = [MetricOut(name=m.name, unit=m.unit) for m in METRICS[s.kind.value].values()]
        return cls(**cls._fields(s), level_storage=curve, flood_limit_periods=periods, metrics=metrics)


# -- readings ----------------------------------------------------------------
class RawPoint(_Out):
    ts: UtcDateTime
    metric: str
    value: float


class BucketPoint(_Out):
    ts: UtcDateTime = Field(description="start of the bucket (buckets are aligned to the Unix epoch)")
    value: float


class ReadingsOut(_Out):
    station_id: str
    metric: str | None = Field(description="the metric asked for; null for raw readings of every metric")
    unit: str | None = Field(description="unit of the metric; null when metric is null")
    start: UtcDateTime
    end: UtcDateTime = Field(description="exclusive end of the window")
    every: int | None = Field(description="bucket length in seconds; null for raw readings")
    agg: str | None = Field(description="aggregate of each bucket; null for raw readings")
    truncated: bool = Field(description="raw readings only: more readings matched than `limit`")
    points: list[RawPoint] | list[BucketPoint] = Field(
        description="raw: [{ts, metric, value}] oldest first; aggregated: [{ts, value}] per non-empty bucket")


class LatestReading(_Out):
    station_id: str
    kind: str
    metric: str
    ts: UtcDateTime
    value: float

    @classmethod
    def from_domain(cls, r: Reading) -> "LatestReading":
        return cls(station_id=r.station_id, kind=r.kind, metric=r.metric, ts=r.ts, value=r.value)


# -- alerts ------------------------------------------------------------------
class AlertOut(_Out):
    id: int
    station_id: str
    kind: str
    rule: str
    metric: str
    severity: str
    state: str
    started_at: UtcDateTime = Field(description="data time of the reading that raised the alert")
    updated_at: UtcDateTime = Field(description="data time of the latest change")
    value: float
    threshold: float | None
    message: str
    acknowledged_at: UtcDateTime | None
    acknowledged_by: str | None
    cleared_at: UtcDateTime | None

    @classmethod
    def _fields(cls, a: Alert) -> dict[str, Any]:
        return dict(
            id=a.id, station_id=a.station_id, kind=a.kind, rule=a.rule, metric=a.metric, severity=a.severity,
            state=a.state, started_at=a.started_at, updated_at=a.updated_at, value=a.value, threshold=a.threshold,
            message=a.message, acknowledged_at=a.acknowledged_at, acknowledged_by=a.acknowledged_by,
            cleared_at=a.cleared_at,
        )

    @classmethod
    def from_domain(cls, a: Alert) -> "AlertOut":
        return cls(**cls._fields(a))


class AlertEventOut(_Out):
    id: int
    event: str
    severity: str | None
    data_time: UtcDateTime | None = Field(description="data time the event refers to, when there is one")
    wall_time: UtcDateTime = Field(description="when the event was recorded")
    detail: str | None

    @classmethod
    def from_row(cls, e: dict[str, Any]) -> "AlertEventOut":
        return cls(id=e["id"], event=e["event"], severity=e.get("severity"), data_time=e.get("data_time"),
                   wall_time=e["wall_time"], detail=e.get("detail"))


class AlertDetail(AlertOut):
    events: list[AlertEventOut] = Field(description="the alert's history, oldest first")

    @classmethod
    def from_domain_with_events(cls, a: Alert, events: list[dict[str, Any]]) -> "AlertDetail":
        return cls(**cls._fields(a), events=[AlertEventOut.from_row(e) for e in events])


class AckIn(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    by: str | None = Field(default=None, min_length=1, max_length=100,
                           description="who acknowledges, e.g. the person at a shared duty desk; default: the "
                                       "signed-in user's name (the account is logged either way)")


# -- dead letters ------------------------------------------------------------
class DeadLetterOut(_Out):
    id: int
    received_at: UtcDateTime
    topic: str
    reason: str
    detail: str
    payload: str = Field(description="the raw payload (at most its first SMARTWATER_DEAD_LETTER_KEEP_BYTES "
                                     "bytes): UTF-8 text when it decodes, else base64")
    payload_encoding: Literal["utf-8", "base64"]
    payload_bytes: int | None = Field(description="the size of the whole payload as received; null for letters "
                                                  "kept before sizes were recorded")
    payload_sha256: str | None = Field(description="SHA-256 of the whole payload (hex)")
    payload_truncated: bool = Field(description="`payload` is only the start of what arrived")

    @classmethod
    def from_domain(cls, d: DeadLetter) -> "DeadLetterOut":
        raw = bytes(d.payload or b"")
        truncated = d.payload_size is not None and d.payload_size > len(raw)
        try:
            payload, encoding = raw.decode("utf-8"), "utf-8"
        except UnicodeDecodeError as exc:
            if truncated and exc.start >= len(raw) - 3:  # the cut fell inside a character: show the text before
                payload, encoding = raw[:exc.start].decode("utf-8", "replace"), "utf-8"
            else:
                payload, encoding = base64.b64encode(raw).decode("ascii"), "base64"
        return cls(id=d.id, received_at=d.received_at, topic=d.topic, reason=d.reason, detail=d.detail,
                   payload=payload, payload_encoding=encoding, payload_bytes=d.payload_size,
                   payload_sha256=d.payload_sha256, payload_truncated=truncated)


# -- auth --------------------------------------------------------------------
class LoginIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    username: str = Field(min_length=1, max_length=64)
    password: str = Field(min_length=1, max_length=MAX_PASSWORD_LEN)


class TokenOut(_Out):
    access_token: str = Field(description="send as `Authorization: Bearer <access_token>`")
    token_type: Literal["bearer"] = "bearer"
    expires_at: UtcDateTime
    role: Role


class MeOut(_Out):
    username: str
    display_name: str
    role: Role
    town: str | None = Field(description="supervisors and chiefs: their town; null: the whole district")
    chief_id: str | None = Field(description="chiefs: their river-chief record")
    token_expires_at: UtcDateTime


class PasswordChangeIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    current_password: str = Field(min_length=1, max_length=MAX_PASSWORD_LEN)
    new_password: str = Field(min_length=1, max_length=MAX_PASSWORD_LEN)


class PasswordResetIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    new_password: str = Field(min_length=1, max_length=MAX_PASSWORD_LEN)


class UserOut(_Out):
    username: str
    display_name: str
    role: Role
    town: str | None
    chief_id: str | None
    active: bool


# -- errors ------------------------------------------------------------------
class ErrorOut(BaseModel):
    detail: str


class ValidationErrorItem(BaseModel):
    loc: list[str | int]
    msg: str
    type: str


class ValidationErrorOut(BaseModel):
    detail: str = Field(description="every problem in one readable sentence")
    errors: list[ValidationErrorItem]


# -- rules -------------------------------------------------------------------
def _copy_fields(model: type[BaseModel], drop: tuple[str, ...] = ("id",)) -> dict[str, Any]:
    """The fields of a domain model (types and constraints), for a request schema without its validators."""
    return {name: (f.annotation, copy.copy(f)) for name, f in model.model_fields.items() if name not in drop}


def _optional_fields(model: type[BaseModel], drop: tuple[str, ...] = ("id",)) -> dict[str, Any]:
    """Every field of a domain model, optional and unconstrained: a partial update, validated after merging."""
    return {name: (f.annotation | None, Field(default=None, description=f.description))  # type: ignore[operator]
            for name, f in model.model_fields.items() if name not in drop}


_RULE_DOC = ("An alert rule (see core.rules): `threshold`, `reference_level`, `rain_sum`, `rate_of_rise`, `stale`, "
             "`stuck` or `spike`. The id is assigned by the server.")

# The request bodies mirror core.rules.Rule field for field (minus id); the cross-field checks run when the route
# builds the Rule, so every rule is validated by the one model the alerts engine also uses.
RuleIn = create_model("RuleIn", __config__=ConfigDict(extra="forbid", json_schema_extra={"description": _RULE_DOC}),
                      **_copy_fields(Rule))
RulePatch = create_model(
    "RulePatch",
    __config__=ConfigDict(extra="forbid", json_schema_extra={
        "description": "Any subset of a rule's fields; each one given replaces the stored value (levels and params "
                       "as a whole), then the merged rule is validated again."}),
    **_optional_fields(Rule))


class RuleLevelOut(_Out):
    severity: Severity
    value: float | None = Field(description="threshold of this severity (threshold, rate_of_rise, spike rules)")
    windows_h: dict[int, float] | None = Field(description="rain_sum rules: {window hours: mm}")


class RuleOut(_Out):
    id: int
    name: str
    type: RuleType
    station_kind: Kind
    station_ids: list[str] | None = Field(description="null: every station of station_kind")
    metric: str | None
    direction: Literal["above", "below"]
    levels: list[RuleLevelOut] = Field(description="ordered by severity, blue < yellow < orange < red")
    min_duration_s: float
    hysteresis: float
    params: dict[str, Any]
    enabled: bool
    description: str

    @classmethod
    def from_domain(cls, r: Rule) -> "RuleOut":
        assert r.id is not None
        return cls(id=r.id, name=r.name, type=r.type, station_kind=r.station_kind,
                   station_ids=list(r.station_ids) if r.station_ids is not None else None, metric=r.metric,
                   direction=r.direction,
                   levels=[RuleLevelOut(severity=lv.severity, value=lv.value,
                                        windows_h=dict(lv.windows_h) if lv.windows_h is not None else None)
                           for lv in r.levels],
                   min_duration_s=r.min_duration_s, hysteresis=r.hysteresis, params=dict(r.params), enabled=r.enabled,
                   description=r.description)


# -- duty roster -------------------------------------------------------------
DutyShiftIn = create_model(
    "DutyShiftIn",
    __config__=ConfigDict(extra="forbid", json_schema_extra={
        "description": "One person on duty from starts_at to ends_at (both with a UTC offset), for a town and/or a "
                       "station kind (null: any). rank orders escalation (0 first); fallback shifts answer when "
                       "no other shift matches."}),
    **_copy_fields(DutyShift))


class DutyShiftOut(_Out):
    id: int
    person: str
    email: str | None
    phone: str | None
    town: str | None = Field(description="null: any town")
    station_kind: Kind | None = Field(description="null: any kind")
    starts_at: UtcDateTime
    ends_at: UtcDateTime = Field(description="exclusive")
    rank: int = Field(description="escalation order: 0 is called first")
    fallback: bool

    @classmethod
    def from_domain(cls, s: DutyShift) -> "DutyShiftOut":
        assert s.id is not None
        return cls(id=s.id, person=s.person, email=s.email, phone=s.phone, town=s.town, station_kind=s.station_kind,
                   starts_at=s.starts_at, ends_at=s.ends_at, rank=s.rank, fallback=s.fallback)
