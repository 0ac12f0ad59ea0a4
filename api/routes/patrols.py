"""Patrols: start, GPS points in batches (late, out of order or twice: stored once per fix time), finish with the
figures and validity; lists, details and the track as GeoJSON. Scoped per api.routes.patrol_scope."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Annotated

from fastapi import APIRouter, Body, Depends, Path, Query

from api.auth import ANY_ROLE, Principal, require
from api.errors import invalid
from api.params import TIME_HELP, parse_time
from api.patrol_schemas import (FeatureOut, PatrolDetail, PatrolFinishIn, PatrolImportIn, PatrolOut, PatrolStartIn,
                                PointsIn, PointsOut)
from api.routes.patrol_scope import (PatrolsDep, acting_chief, domain_errors, is_chief, scoped_patrol,
                                     town_of)
from api.routes.rivers import GeoJSONResponse, geojson_200
from api.schemas import ErrorOut
from core.auth import Role
from core.patrols.geometry import track_feature
from core.patrols.models import PatrolStatus
from core.patrols.repo import PatrolImport

router = APIRouter(prefix="/patrols", tags=["patrols"])

PATROL_WRITERS = require(Role.admin, Role.supervisor, Role.chief)
PATROL_IMPORTERS = require(Role.admin)
MAX_PAGE = 1000
PatrolId = Annotated[int, Path(ge=1, le=2**63 - 1, description="patrol id")]
# A phone's clock may run a little ahead; a time further in the future is a mistake, not a patrol.
CLOCK_SKEW = timedelta(minutes=5)
EARLIEST = datetime.fromisoformat("2000-01-01T00:00:00+00:00")

_404 = {404: {"model": ErrorOut, "description": "no such patrol, or not one the caller may see"}}


def check_time(name: str, ts: datetime | None, now: datetime) -> datetime | None:
    """A client-supplied time: not before 2000 and not after ``now`` (beyond clock skew); 422 otherwise."""
    if ts is None:
        return None
    if ts < EARLIEST or ts > now + CLOCK_SKEW:
        invalid("body", name, f"{name} must lie between 2000 and now; got {ts.isoformat()}", ts.isoformat())
    return ts


@router.post("", response_model=PatrolOut, status_code=201, summary="Start a patrol",
             description="A chief starts their own patrol on one of their segments (self-started). Admins and "
                         "supervisors start one for a chief (dispatched unless `self_started` is true); a town "
                         "supervisor only for their town's chiefs. `started_at` may lie at most "
                         "`SMARTWATER_PATROL_BACKDATE_GRACE_H` (48 h) before now: older patrols are imported by an "
                         "admin (`POST /patrols/import`). GPS fixes must then lie between the start and the finish.",
             responses={**_404, 403: {"model": ErrorOut, "description": "a chief starting someone else's patrol"}})
def start_patrol(body: PatrolStartIn, repo: PatrolsDep, user: Annotated[Principal, Depends(PATROL_WRITERS)]
                 ) -> PatrolOut:
    started_at = check_time("started_at", body.started_at, repo.clock.now())
    chief_id = acting_chief(repo, user, body.chief_id, "chief_id", "a chief starts only their own patrols",
                            "the chief who patrols")
    self_started = is_chief(user) or bool(body.self_started)
    with domain_errors():
        patrol = repo.start_patrol(chief_id, body.segment_id, started_at, self_started=self_started)
    return PatrolOut.from_domain(patrol)


@router.post("/import", response_model=PatrolOut, status_code=201,
             summary="Record a past patrol (paper records): admins only, with a reason",
             description="Opens a patrol whose start lies beyond the back-dating grace, for a chief on one of their "
                         "segments; its fixes and finish then go through the usual calls. The patrol keeps who "
                         "imported it, when and why (`source` = import, `recorded_by`, `import_reason`).",
             responses=_404)
def import_patrol(body: PatrolImportIn, repo: PatrolsDep, user: Annotated[Principal, Depends(PATROL_IMPORTERS)]
                  ) -> PatrolOut:
    started_at = check_time("started_at", body.started_at, repo.clock.now())
    assert started_at is not None  # required by the schema
    with domain_errors():
        patrol = repo.start_patrol(body.chief_id, body.segment_id, started_at, self_started=body.self_started,
                                   imported=PatrolImport(by=user.username, reason=body.reason))
    return PatrolOut.from_domain(patrol)


@router.post("/{patrol_id}/points", response_model=PointsOut, summary="Upload a batch of GPS fixes",
             description="Fixes in any order; a fix whose time is already stored is ignored, so a phone can resend "
                         "a batch it is unsure about. Fixes arriving after the patrol was finished are stored and "
                         "its figures and validity computed again.",
             responses=_404)
def add_points(patrol_id: PatrolId, body: PointsIn, repo: PatrolsDep,
               user: Annotated[Principal, Depends(PATROL_WRITERS)]) -> PointsOut:
    scoped_patrol(repo, user, patrol_id)
    with domain_errors():
        stored = repo.add_points(patrol_id, [p.model_dump() for p in body.points])
        patrol = repo.get_patrol(patrol_id, with_points=False)
    return PointsOut(patrol_id=patrol_id, received=len(body.points), stored=stored, point_count=patrol.point_count,
                     status=patrol.status, valid=patrol.valid)


@router.post("/{patrol_id}/finish", response_model=PatrolOut, summary="Finish a patrol",
             description="Computes distance, duration, coverage of the segment and validity (with every reason it "
                         "does not count) from the stored track.",
             responses={**_404, 409: {"model": ErrorOut, "description": "already finished"}})
def finish_patrol(patrol_id: PatrolId, repo: PatrolsDep, user: Annotated[Principal, Depends(PATROL_WRITERS)],
                  body: Annotated[PatrolFinishIn | None, Body()] = None) -> PatrolOut:
    scoped_patrol(repo, user, patrol_id)
    finished_at = check_time("finished_at", body.finished_at if body else None, repo.clock.now())
    with domain_errors():
        return PatrolOut.from_domain(repo.finish_patrol(patrol_id, finished_at))


@router.get("", response_model=list[PatrolOut], summary="List patrols, newest first",
            description="Started in [from, to). A chief sees their own patrols, a town supervisor the patrols on "
                        "their town's segments.")
def list_patrols(
    repo: PatrolsDep,
    user: Annotated[Principal, Depends(ANY_ROLE)],
    chief_id: Annotated[str | None, Query(max_length=64)] = None,
    town: Annotated[str | None, Query(max_length=100, description="the segment's town")] = None,
    segment_id: Annotated[str | None, Query(max_length=64)] = None,
    start: Annotated[str | None, Query(alias="from", description=TIME_HELP)] = None,
    end: Annotated[str | None, Query(alias="to", description=TIME_HELP)] = None,
    valid: Annotated[bool | None, Query(description="only valid (true) or invalid (false) finished patrols")] = None,
    status: Annotated[PatrolStatus | None, Query()] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 100,
    offset: Annotated[int, Query(ge=0, le=2**31 - 1)] = 0,
) -> list[PatrolOut]:
    t0, t1 = parse_time("from", start), parse_time("to", end)
    if is_chief(user):
        if not user.chief_id or (chief_id is not None and chief_id != user.chief_id):
            return []
        chief_id = user.chief_id
    limit_town = town_of(user)
    if limit_town is not None:
        if town is not None and town != limit_town:
            return []
        town = limit_town
    patrols = repo.list_patrols(chief_id=chief_id, start=t0, end=t1, segment_id=segment_id,
                                status=status.value if status else None, valid=valid, town=town, limit=limit,
                                offset=offset)
    return [PatrolOut.from_domain(p) for p in patrols]


@router.get("/{patrol_id}", response_model=PatrolDetail, summary="One patrol with its photos", responses=_404)
def get_patrol(patrol_id: PatrolId, repo: PatrolsDep, user: Annotated[Principal, Depends(ANY_ROLE)]) -> PatrolDetail:
    patrol = scoped_patrol(repo, user, patrol_id)
    return PatrolDetail.from_domain_with_photos(patrol, repo.list_photos("patrol", patrol_id))


@router.get("/{patrol_id}/track", response_model=FeatureOut,
            summary="The patrol's cleaned track as a GeoJSON LineString Feature",
            description="Sorted by time, one fix per time; `properties.times` holds each "
                        "position's time.", responses={**_404, **geojson_200("FeatureOut")})
def get_track(patrol_id: PatrolId, repo: PatrolsDep, user: Annotated[Principal, Depends(ANY_ROLE)]
              ) -> GeoJSONResponse:
    patrol = scoped_patrol(repo, user, patrol_id, with_points=True)
    return GeoJSONResponse(track_feature(patrol))
