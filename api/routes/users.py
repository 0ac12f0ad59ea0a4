"""Accounts, for admins: reset a password, disable or enable a user, revoke all of a user's tokens.

Each takes effect at once in this API process and within ``auth_user_cache_s`` in others. Creating users stays a
CLI task (``smartwater user add``): the first admin has to come from there anyway.
"""

from __future__ import annotations

import logging
from typing import Annotated

from fastapi import APIRouter, Body, Depends, Path

from api.auth import ADMINS, Auth, Principal, get_auth
from api.errors import invalid, not_found
from api.schemas import ErrorOut, PasswordResetIn, UserOut
from core.auth import USERNAME_RE, User, WeakPassword, check_password, hash_password
from core.logs import kv
from core.registry import UserNotFound

log = logging.getLogger("api.auth")

router = APIRouter(prefix="/users", tags=["users"])

Username = Annotated[str, Path(pattern=USERNAME_RE, description="the user's login name")]
Admin = Annotated[Principal, Depends(ADMINS)]
AuthDep = Annotated[Auth, Depends(get_auth)]
_NOT_FOUND = {404: {"model": ErrorOut, "description": "no user with this name"}}


def _out(u: User) -> UserOut:
    return UserOut(username=u.username, display_name=u.display_name, role=u.role, town=u.town, chief_id=u.chief_id,
                   active=u.active)


def _change(auth: Auth, username: str, admin: Principal, what: str, **change: object) -> UserOut:
    try:
        if "password" in change:
            user = auth.users.set_password_hash(username, hash_password(str(change["password"])), revoke_tokens=True)
        elif "active" in change:
            user = auth.users.set_active(username, bool(change["active"]))
        else:
            user = auth.users.revoke_tokens(username)
    except UserNotFound:
        not_found("user", username)
    auth.forget(user.username)
    log.info(what, extra=kv(user=user.username, by=admin.username))
    return _out(user)


@router.put("/{username}/password", response_model=UserOut, responses=_NOT_FOUND,
            summary="Reset a user's password (revokes their tokens)")
def reset_password(username: Username, body: Annotated[PasswordResetIn, Body()], admin: Admin,
                   auth: AuthDep) -> UserOut:
    try:
        check_password(body.new_password, username)
    except WeakPassword as exc:
        invalid("body", "new_password", f"password refused: {exc}")
    return _change(auth, username, admin, "password reset", password=body.new_password)


@router.post("/{username}/disable", response_model=UserOut, responses=_NOT_FOUND, summary="Disable a user")
def disable_user(username: Username, admin: Admin, auth: AuthDep) -> UserOut:
    return _change(auth, username, admin, "user disabled", active=False)


@router.post("/{username}/enable", response_model=UserOut, responses=_NOT_FOUND, summary="Enable a user again")
def enable_user(username: Username, admin: Admin, auth: AuthDep) -> UserOut:
    return _change(auth, username, admin, "user enabled", active=True)


@router.post("/{username}/revoke-tokens", response_model=UserOut, responses=_NOT_FOUND,
             summary="Refuse every token issued to a user so far")
def revoke_tokens(username: Username, admin: Admin, auth: AuthDep) -> UserOut:
    return _change(auth, username, admin, "tokens revoked")
