"""Issues found on patrol: report → assign (to a village, town, department or chief, with a deadline) → rectify
with a photo → review (pass closes, fail sends it back with a new deadline). Scoped per api.routes.patrol_scope;
a step from the wrong state is a 409."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Path, Query

from api.auth import ANY_ROLE, MANAGERS, Principal, require
from api.errors import echo, invalid, not_found
from api.params import TIME_HELP, parse_time
from api.patrol_schemas import (FeatureCollectionOut, IssueAssignIn, IssueDetail, IssueOut, IssueRectifyIn,
                                IssueReportIn, IssueReviewIn)
from api.routes.patrol_scope import (PatrolsDep, acting_chief, domain_errors, is_chief, scoped_issue,
                                     scoped_patrol, sees_chief, town_of)
from api.routes.patrols import check_time
from api.routes.rivers import GeoJSONResponse, geojson_200
from api.schemas import ErrorOut
from core.auth import Role
from core.patrols.geometry import feature_collection, issue_feature
from core.patrols.models import Issue, IssueCategory, IssueReport, IssueState
from core.patrols.repo import NotFound, PatrolRepo

router = APIRouter(prefix="/issues", tags=["issues"])

ISSUE_WRITERS = require(Role.admin, Role.supervisor, Role.chief)
MAX_PAGE = 1000
IssueId = Annotated[int, Path(ge=1, le=2**63 - 1, description="issue id")]
_404 = {404: {"model": ErrorOut, "description": "no such issue, or not one the caller may see"}}
_409 = {409: {"model": ErrorOut, "description": "the issue is not in a state that allows this step"}}


@router.post("", response_model=IssueDetail, status_code=201, summary="Report an issue",
             description="A chief reports as themselves; admins and supervisors name the chief who found it "
                         "(`found_by`). The issue's town is its segment's, else the finder's.",
             responses={**_404, 403: {"model": ErrorOut, "description": "a chief reporting as someone else"}})
def report_issue(body: IssueReportIn, repo: PatrolsDep, user: Annotated[Principal, Depends(ISSUE_WRITERS)]
                 ) -> IssueDetail:
    found_at = check_time("found_at", body.found_at, repo.clock.now())
    found_by = acting_chief(repo, user, body.found_by, "found_by", "a chief reports issues as themselves",
                            "the chief who found the issue")
    if body.patrol_id is not None:
        scoped_patrol(repo, user, body.patrol_id)
    town = town_of(user)
    if town is not None and body.segment_id is not None:
        try:
            seg_town = repo.get_segment(body.segment_id).town
        except NotFound:
            seg_town = None
        if seg_town != town:
            not_found("segment", body.segment_id)
    if body.segment_id is not None:
        _check_finder_town(repo, found_by, body.segment_id)
    report = IssueReport(category=body.category, description=body.description, lat=body.lat, lon=body.lon,
                         segment_id=body.segment_id, patrol_id=body.patrol_id, found_at=found_at)
    with domain_errors():
        issue = repo.report_issue(report, found_by=found_by, by=user.username)
    return IssueDetail.from_domain_full(issue, [], repo.clock.now())


def _check_finder_town(repo: PatrolRepo, found_by: str, segment_id: str) -> None:
    """A chief of a town reports issues on that town's segments only (a county chief: anywhere). Otherwise the
    issue would land in another town's list, and its chief could not see it either."""
    try:
        chief_town = repo.get_chief(found_by).town
        seg_town = repo.get_segment(segment_id).town
    except NotFound:
        return  # reported as a 404 by the domain
    if chief_town is not None and seg_town != chief_town:
        raise HTTPException(status_code=403, detail=f"forbidden: chief {found_by} of {chief_town} reports issues on "
                                                    f"{chief_town}'s segments only; segment {segment_id} is in "
                                                    f"{seg_town}")


def _check_assignee(repo: PatrolRepo, user: Principal, assignee: str) -> None:
    """An assignee that is a chief's id lets that chief see the issue: only a chief the assigner can see."""
    try:
        chief = repo.get_chief(assignee)
    except NotFound:
        return  # a village, town or department by name
    if not sees_chief(user, chief):
        invalid("body", "assignee", f"assignee {echo(assignee)} is a river chief outside your town "
                                    f"({user.town}): assign within your town, or to a village, town or department")


def _detail(repo: PatrolRepo, issue: Issue) -> IssueDetail:
    assert issue.id is not None
    return IssueDetail.from_domain_full(issue, repo.list_photos("issue", issue.id), repo.clock.now())


@router.post("/{issue_id}/assign", response_model=IssueDetail, summary="Assign an issue with a deadline",
             description="found → assigned. The deadline defaults to `issue_deadline_days_<assignee_kind>` after the "
                         "assignment. Assigning to a chief's id lets that chief see and rectify the issue.",
             responses={**_404, **_409})
def assign_issue(issue_id: IssueId, body: IssueAssignIn, repo: PatrolsDep,
                 user: Annotated[Principal, Depends(MANAGERS)]) -> IssueDetail:
    scoped_issue(repo, user, issue_id)
    _check_assignee(repo, user, body.assignee)
    at = check_time("at", body.at, repo.clock.now())
    with domain_errors():
        issue = repo.assign_issue(issue_id, body.assignee_kind, body.assignee, at=at, by=user.username,
                                  deadline=body.deadline)
    return _detail(repo, issue)


@router.post("/{issue_id}/rectify", response_model=IssueDetail, summary="Report an issue rectified, with a photo",
             description="assigned → rectified. Upload the photo first (`POST /issues/{id}/photos`) and send its id.",
             responses={**_404, **_409})
def rectify_issue(issue_id: IssueId, body: IssueRectifyIn, repo: PatrolsDep,
                  user: Annotated[Principal, Depends(ISSUE_WRITERS)]) -> IssueDetail:
    scoped_issue(repo, user, issue_id)
    at = check_time("at", body.at, repo.clock.now())
    with domain_errors():
        issue = repo.rectify_issue(issue_id, body.photo_id, at=at, by=user.username, note=body.note)
    return _detail(repo, issue)


@router.post("/{issue_id}/review", response_model=IssueDetail, summary="Review a rectification",
             description="rectified → closed when `passed`; otherwise back to assigned (reopened + 1) with a new "
                         "deadline.", responses={**_404, **_409})
def review_issue(issue_id: IssueId, body: IssueReviewIn, repo: PatrolsDep,
                 user: Annotated[Principal, Depends(MANAGERS)]) -> IssueDetail:
    scoped_issue(repo, user, issue_id)
    at = check_time("at", body.at, repo.clock.now())
    with domain_errors():
        issue = repo.review_issue(issue_id, body.passed, at=at, by=user.username, note=body.note)
    return _detail(repo, issue)


def _query(repo: PatrolRepo, user: Principal, state: IssueState | None, town: str | None,
           category: IssueCategory | None, overdue: bool | None, found_by: str | None, assignee: str | None,
           start: str | None, end: str | None, limit: int, offset: int) -> list[Issue]:
    t0, t1 = parse_time("from", start), parse_time("to", end)
    involving = None
    if is_chief(user):
        if not user.chief_id:
            return []
        involving = user.chief_id
    limit_town = town_of(user)
    if limit_town is not None:
        if town is not None and town != limit_town:
            return []
        town = limit_town
    return repo.list_issues(state=state.value if state else None, town=town,
                            category=category.value if category else None, found_by=found_by, assignee=assignee,
                            start=t0, end=t1, limit=limit, offset=offset, involving=involving, overdue=overdue)


_State = Annotated[IssueState | None, Query()]
_Town = Annotated[str | None, Query(max_length=100)]
_Category = Annotated[IssueCategory | None, Query()]
_Overdue = Annotated[bool | None, Query(description="only issues past their deadline (true) or not (false)")]
_FoundBy = Annotated[str | None, Query(max_length=64, description="chief id")]
_Assignee = Annotated[str | None, Query(max_length=200)]
_From = Annotated[str | None, Query(alias="from", description=f"found at or after; {TIME_HELP}")]
_To = Annotated[str | None, Query(alias="to", description=f"found before; {TIME_HELP}")]
_Limit = Annotated[int, Query(ge=1, le=MAX_PAGE)]
_Offset = Annotated[int, Query(ge=0, le=2**31 - 1)]


@router.get("", response_model=list[IssueOut], summary="List issues, newest first",
            description="A chief sees the issues they found or that are assigned to them, a town supervisor their "
                        "town's. `overdue` is true for an assigned issue past its deadline.")
def list_issues(repo: PatrolsDep, user: Annotated[Principal, Depends(ANY_ROLE)], state: _State = None,
                town: _Town = None, category: _Category = None, overdue: _Overdue = None, found_by: _FoundBy = None,
                assignee: _Assignee = None, start: _From = None, end: _To = None, limit: _Limit = 100,
                offset: _Offset = 0) -> list[IssueOut]:
    now = repo.clock.now()
    issues = _query(repo, user, state, town, category, overdue, found_by, assignee, start, end, limit, offset)
    return [IssueOut.from_domain(i, now) for i in issues]


@router.get("/geojson", response_model=FeatureCollectionOut, responses=geojson_200("FeatureCollectionOut"),
            summary="Issues as a GeoJSON FeatureCollection of Points", description="Same filters and scope as the list.")
def issues_geojson(repo: PatrolsDep, user: Annotated[Principal, Depends(ANY_ROLE)], state: _State = None,
                   town: _Town = None, category: _Category = None, overdue: _Overdue = None,
                   found_by: _FoundBy = None, assignee: _Assignee = None, start: _From = None, end: _To = None,
                   limit: _Limit = MAX_PAGE, offset: _Offset = 0) -> GeoJSONResponse:
    now = repo.clock.now()
    features: list[dict[str, Any]] = []
    for i in _query(repo, user, state, town, category, overdue, found_by, assignee, start, end, limit, offset):
        f = issue_feature(i)
        f["properties"]["overdue"] = IssueOut.from_domain(i, now).overdue
        features.append(f)
    return GeoJSONResponse(feature_collection(features))


@router.get("/{issue_id}", response_model=IssueDetail, summary="One issue with its history and photos",
            responses=_404)
def get_issue(issue_id: IssueId, repo: PatrolsDep, user: Annotated[Principal, Depends(ANY_ROLE)]) -> IssueDetail:
    return _detail(repo, scoped_issue(repo, user, issue_id, with_history=True))
