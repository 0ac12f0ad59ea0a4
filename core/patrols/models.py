"""The river-chief domain (docs/domain.md, "River chiefs"): rivers, segments, chiefs, patrols, photos, issues.

All times are timezone-aware UTC: an offset is required on input and converted, a naive time is refused
(SQLite keeps no offset, so a +08:00 time stored as is would read back 8 h off).
"""

from __future__ import annotations

import enum
import math
from datetime import datetime, timezone
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, Field, field_validator, model_validator

from core.patrols.geometry import polyline_length_m

UTC = timezone.utc


def _utc(ts: datetime) -> datetime:
    if ts.tzinfo is None:
        raise ValueError("time needs a UTC offset")
    return ts.astimezone(UTC)


UtcTime = Annotated[datetime, AfterValidator(_utc)]


def _position(p: list[float]) -> list[float]:
    if len(p) < 2:
        raise ValueError(f"position {p!r} is not [lon, lat]")
    lon, lat = float(p[0]), float(p[1])
    if not (math.isfinite(lon) and math.isfinite(lat) and -180 <= lon <= 180 and -90 <= lat <= 90):
        raise ValueError(f"position {p!r} is not [lon, lat] in degrees")
    return [lon, lat]


def _polyline(line: list[list[float]]) -> list[list[float]]:
    line = [_position(p) for p in line]
    if len(line) < 2:
        raise ValueError("a polyline needs at least two positions")
    return line


Polyline = Annotated[list[list[float]], AfterValidator(_polyline)]
Id = Annotated[str, Field(pattern=r"^[A-Za-z0-9_.:-]{1,64}$")]


class Level(str, enum.Enum):
    """River-chief levels a district manages (province and city chiefs sit above it)."""

    county = "county"
    town = "town"
    village = "village"
    grid = "grid"


LEVELS: tuple[str, ...] = tuple(x.value for x in Level)


class River(BaseModel):
    id: Id
    name: str = Field(min_length=1, max_length=200)
    # One or more [lon, lat] polylines (GeoJSON order): a river with branches or gaps has several.
    geometry: list[Polyline] = Field(min_length=1)

    @property
    def length_m(self) -> float:
        return sum(polyline_length_m(line) for line in self.geometry)


class Segment(BaseModel):
    """The stretch of a river one village (or town) is responsible for: the unit a patrol covers."""

    id: Id
    river_id: Id
    town: str = Field(min_length=1, max_length=100)
    village: str | None = Field(default=None, max_length=200)
    # The lowest level that owns the stretch: village where a village borders it, town otherwise.
    level: Level = Level.village
    geometry: Polyline
    length_m: float = Field(default=0.0, ge=0)

    @model_validator(mode="after")
    def _length(self) -> "Segment":
        if not self.length_m:
            self.length_m = round(polyline_length_m(self.geometry), 1)
        return self


class Chief(BaseModel):
    id: Id
    name: str = Field(min_length=1, max_length=100)
    level: Level
    town: str | None = Field(default=None, max_length=100)  # None only for county chiefs
    village: str | None = Field(default=None, max_length=200)
    segment_ids: list[Id] = Field(default_factory=list)

    @model_validator(mode="after")
    def _place(self) -> "Chief":
        if self.level != Level.county and not self.town:
            raise ValueError(f"a {self.level.value} chief needs a town")
        if self.level == Level.village and not self.village:
            raise ValueError("a village chief needs a village")
        self.segment_ids = list(dict.fromkeys(self.segment_ids))  # unique, order kept
        return self


class TrackPoint(BaseModel):
    ts: UtcTime
    lat: float = Field(ge=-90, le=90)
    lon: float = Field(ge=-180, le=180)
    accuracy_m: float | None = Field(default=None, ge=0)


class PatrolStatus(str, enum.Enum):
    open = "open"
    finished = "finished"


class Patrol(BaseModel):
    id: int | None = None
    chief_id: Id
    segment_id: Id
    # Started by the chief on their own (the usual case) rather than dispatched; only self-started
    # patrols are subject to the minimum gap (patrol_min_gap_h).
    self_started: bool = True
    started_at: UtcTime
    finished_at: UtcTime | None = None
    status: PatrolStatus = PatrolStatus.open
    points: list[TrackPoint] = Field(default_factory=list)
    point_count: int = 0
    distance_m: float | None = None
    duration_s: float | None = None
    coverage: float | None = None
    valid: bool | None = None  # None while open
    invalid_reason: str | None = None
    # When and how the patrol reached the registry: "app" (started live, within the back-dating grace) or
    # "import" (an admin recording it after the fact, with who and why).
    recorded_at: UtcTime | None = None
    source: str = "app"
    recorded_by: str | None = None
    import_reason: str | None = None


class OwnerKind(str, enum.Enum):
    patrol = "patrol"
    issue = "issue"


class Photo(BaseModel):
    id: int | None = None
    owner_kind: OwnerKind
    owner_id: int
    path: str  # relative to data_dir: photos/<sha256[:2]>/<sha256>.<ext>
    content_type: str
    size: int = Field(ge=0)
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    uploaded_at: UtcTime
    uploaded_by: str | None = None


class IssueCategory(str, enum.Enum):
    # The "four disorders" (四乱) first, then the other common findings.
    illegal_occupation = "illegal_occupation"  # 乱占
    sand_mining = "sand_mining"  # 乱采
    dumping = "dumping"  # 乱堆
    illegal_building = "illegal_building"  # 乱建
    sewage = "sewage"
    floating_waste = "floating_waste"
    other = "other"


FOUR_DISORDERS = (IssueCategory.illegal_occupation, IssueCategory.sand_mining, IssueCategory.dumping,
                  IssueCategory.illegal_building)


class IssueState(str, enum.Enum):
    found = "found"
    assigned = "assigned"
    rectified = "rectified"
    closed = "closed"


class AssigneeKind(str, enum.Enum):
    village = "village"
    town = "town"
    department = "department"


class IssueEvent(BaseModel):
    id: int | None = None
    event: str  # found | assigned | rectified | review_passed | review_failed | overdue_notified
    at: UtcTime
    by: str | None = None
    from_state: IssueState | None = None
    to_state: IssueState
    detail: str = ""
    data: dict[str, Any] = Field(default_factory=dict)


class IssueReport(BaseModel):
    """What a chief sends to report an issue (the API's request body)."""

    model_config = {"extra": "forbid"}

    category: IssueCategory
    description: str = Field(default="", max_length=4000)
    lat: float = Field(ge=-90, le=90)
    lon: float = Field(ge=-180, le=180)
    segment_id: Id | None = None
    patrol_id: int | None = None
    found_at: UtcTime | None = None  # default: now


class Issue(BaseModel):
    id: int | None = None
    category: IssueCategory
    description: str = ""
    lat: float = Field(ge=-90, le=90)
    lon: float = Field(ge=-180, le=180)
    segment_id: Id | None = None
    town: str | None = None  # the segment's town, else the finder's
    patrol_id: int | None = None
    found_by: Id  # chief id
    found_at: UtcTime
    state: IssueState = IssueState.found
    reopened: int = Field(default=0, ge=0)
    assignee_kind: AssigneeKind | None = None
    assignee: str | None = None
    first_assigned_at: UtcTime | None = None  # for the response rate
    assigned_at: UtcTime | None = None
    first_deadline: UtcTime | None = None  # for the on-time rate: a failed review buys no time
    deadline: UtcTime | None = None  # in force now: renewed when a review fails
    rectified_at: UtcTime | None = None
    rectify_photo_id: int | None = None
    reviewed_at: UtcTime | None = None
    review_passed: bool | None = None
    closed_at: UtcTime | None = None
    history: list[IssueEvent] = Field(default_factory=list)

    @field_validator("description")
    @classmethod
    def _strip(cls, v: str) -> str:
        return v.strip()
