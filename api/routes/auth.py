"""Logging in (the one public write) and who am I."""

from __future__ import annotations

import logging
import math
from typing import Annotated

from fastapi import APIRouter, Body, Depends, HTTPException, Request

from api.auth import ANY_ROLE, Auth, Principal, client_of, get_auth
from api.errors import invalid
from api.schemas import ErrorOut, LoginIn, MeOut, PasswordChangeIn, TokenOut
from core.auth import (WeakPassword, burn_password_check, check_password, hash_password, needs_rehash,
                       normalise_username, valid_username, verify_password)
from core.logs import kv

log = logging.getLogger("api.auth")

public = APIRouter(prefix="/auth", tags=["auth"])
router = APIRouter(prefix="/auth", tags=["auth"])

_BAD_LOGIN = "invalid username or password"




@public.post("/login", response_model=TokenOut, summary="Log in: a bearer token for the API",
             description="Exchanges a user name and password for a bearer token (`expires_at`, default 12 h). "
                         "Wrong credentials, unknown and disabled users all get the same 401. After "
                         "`SMARTWATER_LOGIN_MAX_FAILURES` (5) failures for one user name from one address within "
                         "`SMARTWATER_LOGIN_FAILURE_WINDOW_S` (300 s), further attempts get 429 with `Retry-After` "
                         "until the oldest failure ages out (ten times as many per address across all names).",
             responses={401: {"model": ErrorOut, "description": "wrong user name or password"},
                        429: {"model": ErrorOut, "description": "too many failed logins; see Retry-After"}})
def login(request: Request, body: Annotated[LoginIn, Body()], auth: Annotated[Auth, Depends(get_auth)]) -> TokenOut:
    username = normalise_username(body.username)
    # Behind a reverse proxy every client shares the proxy's address unless it is in SMARTWATER_API_TRUSTED_PROXIES.
    client, peer = client_of(request)
    shown = username if valid_username(username) else repr(username)  # no raw input in the logs
    keys = auth.limiter.keys(username, client)
    wait, stamp = auth.limiter.attempt(keys)  # counted as a failure until it proves otherwise
    if wait > 0:
        log.warning("login refused: too many failures", extra=kv(user=shown, client=client, peer=peer))
        retry = max(1, math.ceil(wait))
        raise HTTPException(status_code=429, detail=f"too many failed logins: try again in {retry} s",
                            headers={"Retry-After": str(retry)})
    try:
        user = auth.users.get(username)
        if user is None:
            burn_password_check(body.password)  # as slow as a real check: timing must not reveal valid names
            ok = False
        else:
            ok = verify_password(body.password, user.password_hash) and user.active
    except Exception:  # the registry is down: no verdict, so no failure either
        auth.limiter.undo(keys, stamp)
        raise
    if not ok or user is None:
        log.warning("login failed", extra=kv(user=shown, client=client, peer=peer))
        raise HTTPException(status_code=401, detail=_BAD_LOGIN, headers={"WWW-Authenticate": "Bearer"})
    auth.limiter.success(keys, stamp)
    if needs_rehash(user.password_hash):  # hashed with older parameters: upgrade while we know the password
        user = auth.users.set_password_hash(user.username, hash_password(body.password))
    token, claims = auth.issue(user)
    log.info("login", extra=kv(user=user.username, role=user.role.value, client=client, peer=peer))
    return TokenOut(access_token=token, token_type="bearer", expires_at=claims.expires_at, role=user.role)


@router.get("/me", response_model=MeOut, summary="The signed-in user")
def me(user: Annotated[Principal, Depends(ANY_ROLE)]) -> MeOut:
    return MeOut(username=user.username, display_name=user.display_name, role=user.role, town=user.town,
                 chief_id=user.chief_id, token_expires_at=user.token.expires_at)


@router.post("/password", response_model=TokenOut, summary="Change my password",
             description="Needs the current password. Every token issued before (on every device) is refused from "
                         "then on; the answer carries a new token for this session. 422 for a weak password, 403 "
                         "for a wrong current password.",
             responses={403: {"model": ErrorOut, "description": "the current password is wrong"}})
def change_password(request: Request, body: Annotated[PasswordChangeIn, Body()],
                    user: Annotated[Principal, Depends(ANY_ROLE)],
                    auth: Annotated[Auth, Depends(get_auth)]) -> TokenOut:
    client, peer = client_of(request)
    keys = auth.limiter.keys(user.username, client)  # guessing the current password counts like a login
    wait, stamp = auth.limiter.attempt(keys)
    if wait > 0:
        retry = max(1, math.ceil(wait))
        raise HTTPException(status_code=429, detail=f"too many failed attempts: try again in {retry} s",
                            headers={"Retry-After": str(retry)})
    stored = auth.users.get(user.username)
    if stored is None or not verify_password(body.current_password, stored.password_hash):
        log.warning("password change refused: wrong current password", extra=kv(user=user.username, client=client,
                                                                                 peer=peer))
        raise HTTPException(status_code=403, detail="the current password is wrong")
    auth.limiter.success(keys, stamp)
    try:
        check_password(body.new_password, user.username)
    except WeakPassword as exc:
        invalid("body", "new_password", f"password refused: {exc}")
    updated = auth.users.set_password_hash(user.username, hash_password(body.new_password), revoke_tokens=True)
    auth.forget(user.username)
    token, claims = auth.issue(updated)
    log.info("password changed", extra=kv(user=user.username, client=client, peer=peer))
    return TokenOut(access_token=token, token_type="bearer", expires_at=claims.expires_at, role=updated.role)
