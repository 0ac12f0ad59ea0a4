"""Who may see and touch which river-chief objects, and the domain's errors as HTTP answers.

Object-level scope (README "River chiefs"), on top of the role checks of ``api.auth.require``:

* a chief: their own chief record and patrols, the issues they found or that are assigned to them (``assignee`` is
  their chief id) and the photos of those; a chief account not linked to a chief record sees none;
* a supervisor with a town: that town's chiefs, the patrols on its segments and its issues;
* admins, duty officers, viewers and supervisors without a town: the whole district.

A single object out of scope answers 404, exactly like a missing one, so ids do not leak what exists; lists are
filtered in the query.
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Annotated, Callable, Iterator, NoReturn, TypeVar

from fastapi import Depends, HTTPException, Request
from fastapi.exceptions import RequestValidationError

from api.auth import Principal
from api.errors import conflict, invalid, not_found
from core.auth import Role
from core.patrols.models import Chief, Issue, Patrol
from core.patrols.photos import PhotoRejected
from core.patrols.repo import InvalidTransition, NotFound, PatrolClosed, PatrolError, PatrolRepo

T = TypeVar("T")


def get_patrols(request: Request) -> PatrolRepo:
    repo = getattr(request.app.state, "patrols", None)
    if repo is None:  # one per app; two threads racing here build two equivalent repos, harmlessly
        repo = PatrolRepo(request.app.state.registry.engine, request.app.state.settings,
                          clock=request.app.state.clock)
        request.app.state.patrols = repo
    return repo


PatrolsDep = Annotated[PatrolRepo, Depends(get_patrols)]


def is_chief(user: Principal) -> bool:
    return user.role is Role.chief


def own_chief_id(user: Principal) -> str:
    """The chief id of a chief's account; 403 when the account is not linked to a chief record."""
    if not user.chief_id:
        raise HTTPException(status_code=403, detail="forbidden: this chief account is not linked to a river-chief "
                                                    "record (ask an admin: smartwater user add --chief-id)")
    return user.chief_id


def town_of(user: Principal) -> str | None:
    """The town a supervisor is limited to (None: not limited by town)."""
    return user.town if user.role is Role.supervisor else None


def sees_chief(user: Principal, chief: Chief) -> bool:
    if is_chief(user):
        return chief.id == user.chief_id
    town = town_of(user)
    return town is None or chief.town == town


def sees_patrol(repo: PatrolRepo, user: Principal, patrol: Patrol) -> bool:
    if is_chief(user):
        return patrol.chief_id == user.chief_id
    town = town_of(user)
    return town is None or repo.get_segment(patrol.segment_id).town == town


def sees_issue(user: Principal, issue: Issue) -> bool:
    if is_chief(user):
        return user.chief_id is not None and user.chief_id in (issue.found_by, issue.assignee)
    town = town_of(user)
    return town is None or issue.town == town


def _scoped(kind: str, ident: object, load: Callable[[], T], sees: Callable[[T], bool]) -> T:
    """The object if it exists and the user may see it; 404 alike otherwise (ids must not reveal what exists)."""
    try:
        obj = load()
    except NotFound:
        not_found(kind, ident)
    if not sees(obj):
        not_found(kind, ident)
    return obj


def scoped_chief(repo: PatrolRepo, user: Principal, chief_id: str) -> Chief:
    return _scoped("chief", chief_id, lambda: repo.get_chief(chief_id), lambda c: sees_chief(user, c))


def scoped_patrol(repo: PatrolRepo, user: Principal, patrol_id: int, with_points: bool = False) -> Patrol:
    return _scoped("patrol", patrol_id, lambda: repo.get_patrol(patrol_id, with_points=with_points),
                   lambda p: sees_patrol(repo, user, p))


def scoped_issue(repo: PatrolRepo, user: Principal, issue_id: int, with_history: bool = False) -> Issue:
    return _scoped("issue", issue_id, lambda: repo.get_issue(issue_id, with_history=with_history),
                   lambda i: sees_issue(user, i))


def acting_chief(repo: PatrolRepo, user: Principal, named: str | None, field: str, forbidden: str,
                 required: str) -> str:
    """The chief a write is done for: a chief always themselves (naming another chief is 403 ``forbidden``);
    anyone else must name one (422 ``required``) within their scope (404)."""
    if is_chief(user):
        me = own_chief_id(user)
        if named is not None and named != me:
            raise HTTPException(status_code=403, detail=f"forbidden: {forbidden}; omit {field}")
        return me
    if named is None:
        invalid("body", field, f"{field} is required: {required}")
    scoped_chief(repo, user, named)
    return named


def _unprocessable(exc: PatrolError) -> NoReturn:
    """A domain rejection as the API's usual 422 body (``detail`` and ``errors``), naming the field when known."""
    raise RequestValidationError([{"type": "value_error", "loc": ("body", exc.field) if exc.field else ("body",),
                                   "msg": str(exc), "input": None}])


@contextmanager
def domain_errors() -> Iterator[None]:
    """The river-chief domain's rejections as clear 4xx: 404 unknown ids, 409 wrong state, 413/415 photos, 422."""
    try:
        yield
    except NotFound as exc:
        not_found(exc.kind, exc.ident)
    except (InvalidTransition, PatrolClosed) as exc:
        conflict(str(exc))
    except PhotoRejected as exc:
        msg = str(exc)
        raise HTTPException(status_code=413 if "more than" in msg else 415, detail=f"photo rejected: {msg}") from None
    except PatrolError as exc:
        _unprocessable(exc)
