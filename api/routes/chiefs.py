"""River chiefs: the list and one record (scoped: a chief sees their own, a town supervisor their town's)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query

from api.auth import ANY_ROLE, Principal, require
from api.errors import not_found
from api.patrol_schemas import ChiefOut
from api.routes.patrol_scope import PatrolsDep, is_chief, scoped_chief, town_of
from api.schemas import ErrorOut
from core.auth import Role
from core.patrols.models import Level

router = APIRouter(prefix="/chiefs", tags=["river chiefs"])

CHIEF = require(Role.chief)


@router.get("", response_model=list[ChiefOut], summary="List river chiefs",
            description="A chief gets their own record only; a town supervisor their town's chiefs.")
def list_chiefs(repo: PatrolsDep, user: Annotated[Principal, Depends(ANY_ROLE)],
                level: Annotated[Level | None, Query()] = None,
                town: Annotated[str | None, Query(max_length=100)] = None) -> list[ChiefOut]:
    if is_chief(user):
        if not user.chief_id:
            return []
        mine = scoped_chief(repo, user, user.chief_id)
        ok = (level is None or mine.level == level) and (town is None or mine.town == town)
        return [ChiefOut.from_domain(mine)] if ok else []
    limit = town_of(user)
    if limit is not None and town is not None and town != limit:
        return []
    chiefs = repo.list_chiefs(level=level.value if level else None, town=limit or town)
    return [ChiefOut.from_domain(c) for c in chiefs]


@router.get("/me", response_model=ChiefOut, summary="The signed-in chief's own record (segments to patrol)",
            responses={404: {"model": ErrorOut, "description": "the account is not linked to a chief record"}})
def my_chief(repo: PatrolsDep, user: Annotated[Principal, Depends(CHIEF)]) -> ChiefOut:
    if not user.chief_id:
        not_found("chief record of user", user.username)
    return ChiefOut.from_domain(scoped_chief(repo, user, user.chief_id))


@router.get("/{chief_id}", response_model=ChiefOut, summary="One river chief", responses={404: {"model": ErrorOut}})
def get_chief(chief_id: str, repo: PatrolsDep, user: Annotated[Principal, Depends(ANY_ROLE)]) -> ChiefOut:
    return ChiefOut.from_domain(scoped_chief(repo, user, chief_id[:80]))
