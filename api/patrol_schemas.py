"""Request and response schemas of the river-chief API (rivers, segments, chiefs, patrols, photos, issues,
compliance, the public bulletin), built field by field from core.patrols' domain objects.

Times in requests need an offset (``2026-06-28T14:05:00+08:00``); times in responses are UTC with ``+00:00``.
"""

from __future__ import annotations

from datetime import datetime, time, timedelta, timezone
from zoneinfo import ZoneInfo
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, AwareDatetime, BaseModel, ConfigDict, Field

from api.schemas import UtcDateTime
from core.patrols.compliance import ChiefCompliance, ComplianceReport, IssueStats, Rollup
from core.patrols.models import (AssigneeKind, Chief, Issue, IssueCategory, IssueEvent, IssueState, Level, Patrol,
                                 PatrolStatus, Photo, River, Segment)

Id = Annotated[str, Field(pattern=r"^[A-Za-z0-9_.:-]{1,64}$", examples=["R0001-003"])]
_EARLIEST = datetime(2000, 1, 1, tzinfo=timezone.utc)
_LATEST = datetime(2100, 1, 1, tzinfo=timezone.utc)


def _client_time(ts: datetime) -> datetime:
    try:
        utc = ts.astimezone(timezone.utc)
    except OverflowError:  # year 1 or 9999 pushed past the calendar by its offset
        raise ValueError("time out of range: it must lie between 2000 and 2100") from None
    if not _EARLIEST <= utc < _LATEST:
        raise ValueError("time out of range: it must lie between 2000 and 2100")
    return utc


# A time from a client: an offset is required, and it must be a plausible date (a phone's clock may be wrong).
ClientTime = Annotated[AwareDatetime, AfterValidator(_client_time)]
MAX_POINTS_PER_BATCH = 5000


class _Out(BaseModel):
    model_config = ConfigDict(extra="forbid")


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid")


# -- GeoJSON -----------------------------------------------------------------------------------------------
class GeometryOut(_Out):
    type: Literal["Point", "LineString", "MultiLineString"]
    coordinates: list[Any] = Field(description="[lon, lat] positions (WGS 84), GeoJSON order")


class FeatureOut(_Out):
    type: Literal["Feature"]
    id: str | int | None = None
    geometry: GeometryOut
    properties: dict[str, Any]


class FeatureCollectionOut(_Out):
    type: Literal["FeatureCollection"]
    features: list[FeatureOut]


# -- rivers, segments, chiefs ------------------------------------------------------------------------------
class RiverOut(_Out):
    id: str
    name: str
    length_m: float

    @classmethod
    def from_domain(cls, r: River) -> "RiverOut":
        return cls(id=r.id, name=r.name, length_m=round(r.length_m, 1))


class RiverDetail(RiverOut):
    geometry: list[list[list[float]]] = Field(description="one or more [lon, lat] polylines")
    segment_ids: list[str]

    @classmethod
    def from_domain_with_segments(cls, r: River, segments: list[Segment]) -> "RiverDetail":
        return cls(id=r.id, name=r.name, length_m=round(r.length_m, 1), geometry=r.geometry,
                   segment_ids=[s.id for s in segments])


class SegmentOut(_Out):
    id: str
    river_id: str
    town: str
    village: str | None
    level: Level
    length_m: float

    @classmethod
    def from_domain(cls, s: Segment) -> "SegmentOut":
        return cls(id=s.id, river_id=s.river_id, town=s.town, village=s.village, level=s.level, length_m=s.length_m)


class SegmentDetail(SegmentOut):
    geometry: list[list[float]] = Field(description="[lon, lat] polyline")

    @classmethod
    def from_domain(cls, s: Segment) -> "SegmentDetail":
        return cls(id=s.id, river_id=s.river_id, town=s.town, village=s.village, level=s.level, length_m=s.length_m,
                   geometry=s.geometry)


class ChiefOut(_Out):
    id: str
    name: str
    level: Level
    town: str | None
    village: str | None
    segment_ids: list[str]

    @classmethod
    def from_domain(cls, c: Chief) -> "ChiefOut":
        return cls(id=c.id, name=c.name, level=c.level, town=c.town, village=c.village, segment_ids=c.segment_ids)


# -- photos ------------------------------------------------------------------------------------------------
class PhotoOut(_Out):
    id: int
    owner_kind: Literal["patrol", "issue"]
    owner_id: int
    content_type: str
    size: int
    sha256: str
    uploaded_at: UtcDateTime
    uploaded_by: str | None
    url: str = Field(description="GET it with the same bearer token")

    @classmethod
    def from_domain(cls, p: Photo) -> "PhotoOut":
        assert p.id is not None
        return cls(id=p.id, owner_kind=p.owner_kind.value, owner_id=p.owner_id, content_type=p.content_type,
                   size=p.size, sha256=p.sha256, uploaded_at=p.uploaded_at, uploaded_by=p.uploaded_by,
                   url=f"/api/v1/photos/{p.id}")


# -- patrols -----------------------------------------------------------------------------------------------
class PatrolStartIn(_In):
    segment_id: Id
    chief_id: Id | None = Field(default=None, description="chiefs: omit (their own); others: the chief patrolling")
    started_at: ClientTime | None = Field(default=None, description="default: now")
    self_started: bool | None = Field(
        default=None, description="a chief's own patrols are self-started; others start dispatched ones (false) "
                                  "unless they say otherwise")


class PatrolImportIn(_In):
    chief_id: Id = Field(description="the chief who patrolled")
    segment_id: Id
    started_at: ClientTime = Field(description="when the patrol began (any time since 2000)")
    self_started: bool = False
    reason: str = Field(min_length=4, max_length=500, description="why it is recorded after the fact, e.g. "
                                                                 "'paper patrol log of March, entered by the office'")


class PointIn(_In):
    ts: ClientTime = Field(description="device time of the fix, with an offset")
    lat: float = Field(ge=-90, le=90)
    lon: float = Field(ge=-180, le=180)
    accuracy_m: float | None = Field(default=None, ge=0, le=100_000)


class PointsIn(_In):
    points: list[PointIn] = Field(min_length=1, max_length=MAX_POINTS_PER_BATCH,
                                  description="any order; fixes already stored (same ts) are ignored")


class PointsOut(_Out):
    patrol_id: int
    received: int
    stored: int = Field(description="new fixes (a retried batch stores none)")
    point_count: int
    status: PatrolStatus
    valid: bool | None


class PatrolFinishIn(_In):
    finished_at: ClientTime | None = Field(default=None, description="default: now")


class PatrolOut(_Out):
    id: int
    chief_id: str
    segment_id: str
    self_started: bool
    started_at: UtcDateTime
    finished_at: UtcDateTime | None
    status: PatrolStatus
    point_count: int
    distance_m: float | None
    duration_s: float | None
    coverage: float | None = Field(description="share of the segment within the buffer of the track, 0..1")
    valid: bool | None = Field(description="None while open")
    invalid_reason: str | None
    invalid_codes: list[str] = Field(description="no_track, short_duration, short_distance, off_segment, "
                                                 "too_fast, too_frequent")
    recorded_at: UtcDateTime | None = Field(default=None, description="when the patrol reached the registry")
    source: str = Field(default="app", description="app (live) or import (recorded afterwards by an admin)")
    recorded_by: str | None = Field(default=None, description="who imported it")
    import_reason: str | None = None

    @classmethod
    def from_domain(cls, p: Patrol) -> "PatrolOut":
        assert p.id is not None
        codes = [part.split(":", 1)[0].strip() for part in (p.invalid_reason or "").split(";") if part.strip()]
        return cls(id=p.id, chief_id=p.chief_id, segment_id=p.segment_id, self_started=p.self_started,
                   started_at=p.started_at, finished_at=p.finished_at, status=p.status, point_count=p.point_count,
                   distance_m=p.distance_m, duration_s=p.duration_s, coverage=p.coverage, valid=p.valid,
                   invalid_reason=p.invalid_reason, invalid_codes=codes, recorded_at=p.recorded_at,
                   source=p.source, recorded_by=p.recorded_by, import_reason=p.import_reason)


class PatrolDetail(PatrolOut):
    photos: list[PhotoOut]

    @classmethod
    def from_domain_with_photos(cls, p: Patrol, photos: list[Photo]) -> "PatrolDetail":
        base = PatrolOut.from_domain(p).model_dump()
        return cls(**base, photos=[PhotoOut.from_domain(x) for x in photos])


# -- issues ------------------------------------------------------------------------------------------------
class IssueReportIn(_In):
    category: IssueCategory
    description: str = Field(default="", max_length=4000)
    lat: float = Field(ge=-90, le=90)
    lon: float = Field(ge=-180, le=180)
    segment_id: Id | None = None
    patrol_id: int | None = Field(default=None, ge=1, le=2**63 - 1)
    found_at: ClientTime | None = Field(default=None, description="default: now")
    found_by: Id | None = Field(default=None, description="chiefs: omit (themselves); others: the chief who found it")


class IssueAssignIn(_In):
    assignee_kind: AssigneeKind
    assignee: str = Field(min_length=1, max_length=200,
                          description="a village, town or department; a chief's id lets that chief rectify it")
    deadline: ClientTime | None = Field(default=None, description="default: issue_deadline_days_<kind> later")
    at: ClientTime | None = Field(default=None, description="default: now")


class IssueRectifyIn(_In):
    photo_id: int = Field(ge=1, le=2**63 - 1, description="a photo uploaded to this issue (POST .../photos)")
    note: str = Field(default="", max_length=2000)
    at: ClientTime | None = Field(default=None, description="default: now")


class IssueReviewIn(_In):
    passed: bool = Field(description="true closes the issue; false sends it back to the assignee")
    note: str = Field(default="", max_length=2000)
    at: ClientTime | None = Field(default=None, description="default: now")


class IssueOut(_Out):
    id: int
    category: IssueCategory
    description: str
    lat: float
    lon: float
    segment_id: str | None
    town: str | None
    patrol_id: int | None
    found_by: str
    found_at: UtcDateTime
    state: IssueState
    overdue: bool = Field(description="assigned and past its deadline now")
    reopened: int
    assignee_kind: AssigneeKind | None
    assignee: str | None
    assigned_at: UtcDateTime | None
    deadline: UtcDateTime | None
    first_deadline: UtcDateTime | None
    rectified_at: UtcDateTime | None
    rectify_photo_id: int | None
    reviewed_at: UtcDateTime | None
    review_passed: bool | None
    closed_at: UtcDateTime | None

    @classmethod
    def from_domain(cls, i: Issue, now: datetime) -> "IssueOut":
        assert i.id is not None
        overdue = i.state == IssueState.assigned and i.deadline is not None and i.deadline < now
        return cls(id=i.id, category=i.category, description=i.description, lat=i.lat, lon=i.lon,
                   segment_id=i.segment_id, town=i.town, patrol_id=i.patrol_id, found_by=i.found_by,
                   found_at=i.found_at, state=i.state, overdue=overdue, reopened=i.reopened,
                   assignee_kind=i.assignee_kind, assignee=i.assignee, assigned_at=i.assigned_at, deadline=i.deadline,
                   first_deadline=i.first_deadline, rectified_at=i.rectified_at,
                   rectify_photo_id=i.rectify_photo_id, reviewed_at=i.reviewed_at, review_passed=i.review_passed,
                   closed_at=i.closed_at)


class IssueEventOut(_Out):
    event: str = Field(description="found, assigned, rectified, review_passed, review_failed, overdue_notified")
    at: UtcDateTime
    by: str | None
    from_state: IssueState | None
    to_state: IssueState
    detail: str
    data: dict[str, Any]

    @classmethod
    def from_domain(cls, e: IssueEvent) -> "IssueEventOut":
        return cls(event=e.event, at=e.at, by=e.by, from_state=e.from_state, to_state=e.to_state, detail=e.detail,
                   data=e.data)


class IssueDetail(IssueOut):
    history: list[IssueEventOut]
    photos: list[PhotoOut]

    @classmethod
    def from_domain_full(cls, i: Issue, photos: list[Photo], now: datetime) -> "IssueDetail":
        base = IssueOut.from_domain(i, now).model_dump()
        return cls(**base, history=[IssueEventOut.from_domain(e) for e in i.history],
                   photos=[PhotoOut.from_domain(p) for p in photos])


# -- compliance --------------------------------------------------------------------------------------------
class PeriodOut(_Out):
    start: UtcDateTime
    end: UtcDateTime
    valid: int = Field(description="valid patrols started in this period")
    met: bool = Field(description="valid >= the level's N")


class ChiefComplianceOut(_Out):
    chief_id: str
    name: str
    level: str
    town: str | None
    village: str | None
    frequency: str = Field(description="minimum, N/unit (local calendar periods)")
    periods_due: int = Field(description="calendar periods of the chief's level that end in the report period "
                                         "and are over")
    periods_met: int = Field(description="due periods holding at least N valid patrols")
    required: int = Field(description="N x periods due")
    counted: int = Field(description="sum over due periods of min(valid patrols in it, N)")
    patrols: int = Field(description="finished patrols started in the report period")
    valid: int = Field(description="valid patrols started in the report period")
    rate: float | None = Field(description="counted / required; null when nothing was due")
    periods: list[PeriodOut] = Field(description="each due period and whether it was met")

    @classmethod
    def from_domain(cls, c: ChiefCompliance) -> "ChiefComplianceOut":
        return cls(chief_id=c.chief_id, name=c.name, level=c.level, town=c.town, village=c.village,
                   frequency=c.frequency, periods_due=c.periods_due, periods_met=c.periods_met, required=c.required,
                   counted=c.counted, patrols=c.patrols, valid=c.valid, rate=c.rate,
                   periods=[PeriodOut(start=p.start, end=p.end, valid=p.valid, met=p.met) for p in c.periods])


class RollupOut(_Out):
    key: str | None = Field(description="the town or level; null: county chiefs (no town) or the total")
    chiefs: int
    required: int
    counted: int
    patrols: int
    valid: int
    rate: float | None = Field(description="sum counted / sum required")
    compliant: int = Field(description="chiefs at rate 1")
    mean_rate: float | None
    rank: int | None = Field(default=None, description="towns: 1 = highest rate; equal rates share a rank")

    @classmethod
    def from_domain(cls, r: Rollup) -> "RollupOut":
        return cls(key=r.key, chiefs=r.chiefs, required=r.required, counted=r.counted, patrols=r.patrols,
                   valid=r.valid, rate=r.rate, compliant=r.compliant, mean_rate=r.mean_rate, rank=r.rank)


class IssueStatsOut(_Out):
    key: str | None
    found: int
    responded: int = Field(description="assigned within issue_response_h of being found")
    closed: int
    closed_on_time: int = Field(description="closed by the first deadline")
    open: int
    response_rate: float | None
    on_time_rate: float | None
    resolution_rate: float | None

    @classmethod
    def from_domain(cls, s: IssueStats) -> "IssueStatsOut":
        return cls(key=s.key, found=s.found, responded=s.responded, closed=s.closed, closed_on_time=s.closed_on_time,
                   open=s.open, response_rate=s.response_rate, on_time_rate=s.on_time_rate,
                   resolution_rate=s.resolution_rate)


class IssueStatsBlock(_Out):
    total: IssueStatsOut
    by_town: list[IssueStatsOut]


class PeriodInfo(_Out):
    """The report period, said the way people read it."""
    start: UtcDateTime
    end: UtcDateTime = Field(description="exclusive")
    timezone: str = Field(description="the zone the calendar periods are counted in")
    month: str | None = Field(description="YYYY-MM when the period is exactly one calendar month")
    label: str = Field(description="the period in local dates, e.g. 2026-11-01 – 2026-11-30")
    as_of: UtcDateTime | None = Field(description="periods not over by then were not yet due")

    @classmethod
    def of(cls, start: datetime, end: datetime, tz: ZoneInfo, as_of: datetime | None) -> "PeriodInfo":
        a, b = start.astimezone(tz), end.astimezone(tz)
        last = (end - timedelta(microseconds=1)).astimezone(tz)
        whole_month = (a.day == 1 and a.time() == b.time() == time() and b.day == 1
                       and (b.year * 12 + b.month) - (a.year * 12 + a.month) == 1)
        return cls(start=start, end=end, timezone=str(tz), month=f"{a:%Y-%m}" if whole_month else None,
                   label=f"{a:%Y-%m-%d} – {last:%Y-%m-%d}", as_of=as_of)


class ComplianceOut(_Out):
    start: UtcDateTime
    end: UtcDateTime
    period: PeriodInfo
    town: str | None = Field(description="the town the figures are limited to (a town supervisor's); null: district")
    frequencies: dict[str, str]
    required_by_level: dict[str, int]
    chiefs: list[ChiefComplianceOut]
    by_town: list[RollupOut]
    by_level: list[RollupOut]
    total: RollupOut
    issues: IssueStatsBlock

    @classmethod
    def from_domain(cls, rep: ComplianceReport, town: str | None, total: IssueStats,
                    per_town: list[IssueStats], tz: ZoneInfo) -> "ComplianceOut":
        return cls(start=rep.start, end=rep.end, period=PeriodInfo.of(rep.start, rep.end, tz, rep.as_of), town=town,
                   frequencies=rep.frequencies, required_by_level=rep.required_by_level,
                   chiefs=[ChiefComplianceOut.from_domain(c) for c in rep.chiefs],
                   by_town=[RollupOut.from_domain(r) for r in rep.by_town],
                   by_level=[RollupOut.from_domain(r) for r in rep.by_level], total=RollupOut.from_domain(rep.total),
                   issues=IssueStatsBlock(total=IssueStatsOut.from_domain(total),
                                          by_town=[IssueStatsOut.from_domain(s) for s in per_town]))


# -- the public bulletin -----------------------------------------------------------------------------------
BULLETIN_FIELDS = ("chief_id", "name", "level", "town", "frequency", "periods_due", "periods_met", "required",
                   "valid", "total", "rate")
BULLETIN_TOWN_FIELDS = ("rank", "town", "chiefs", "required", "counted", "rate", "compliant")


class BulletinRow(_Out):
    chief_id: str
    name: str
    level: str
    town: str | None
    frequency: str = Field(description="minimum patrols, N/unit")
    periods_due: int
    periods_met: int
    required: int = Field(description="N x due calendar periods (weeks, dekads, months) ending in the period")
    valid: int = Field(description="valid patrols started in the period")
    total: int = Field(description="finished patrols started in the period, valid or not")
    rate: float | None = Field(description="compliance rate: valid patrols counted up to N per due period, divided "
                                           "by required; null when nothing was due")


class BulletinTown(_Out):
    rank: int | None = Field(description="1 = highest rate; equal rates share a rank; null when nothing was due")
    town: str
    chiefs: int
    required: int
    counted: int
    rate: float | None
    compliant: int = Field(description="chiefs at rate 1")


class BulletinOut(_Out):
    start: UtcDateTime
    end: UtcDateTime
    timezone: str = Field(description="the zone the calendar periods are counted in")
    period: PeriodInfo
    generated_at: UtcDateTime
    district_rate: float | None
    towns: list[BulletinTown] = Field(description="towns by rank")
    rows: list[BulletinRow]
