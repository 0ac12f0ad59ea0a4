"""Request bodies: bounded in size, and not read at all before the caller is authenticated.

An ASGI middleware in front of the routes, because FastAPI reads (and parses, and spools multipart files to disk)
a body before it runs the route's dependencies, the bearer-token check among them:

* A body larger than the route's limit is refused with 413: by its ``Content-Length`` before a byte is read, and
  by counting when it comes chunked or lies about its length. Limits: ``LOGIN_MAX_BYTES`` for logging in,
  ``photo_max_bytes`` (plus the form's own overhead) for photo uploads, ``api_max_json_bytes`` for the rest.
* A JSON body with a non-finite number (``NaN``, ``Infinity``, ``-Infinity``, or one too large for a float such
  as ``1e999``) is refused with 422: Python's JSON parser accepts them, a rule with ``"value": NaN`` would never
  fire, and no measured quantity is infinite.
* A write to a route that needs a token (everything but ``api.routes.public_router``) is refused with 401 before
  its body is read unless it carries a genuine, unexpired token; the route then checks the account and role as
  usual (``api.auth``).
"""

from __future__ import annotations

import json
import re
from typing import Any

from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.auth import check_token

# A user name (≤ 64) and a password (≤ 1024 characters, up to 4 bytes each) in JSON.
LOGIN_MAX_BYTES = 8 * 1024
# Multipart boundaries, part headers and a file name around the photo itself.
FORM_OVERHEAD_BYTES = 64 * 1024
_UPLOAD = re.compile(r"^/api/v1/(patrols|issues)/[^/]+/photos$")
_PUBLIC_WRITES = {"/api/v1/auth/login"}
_WRITE_METHODS = {"POST", "PUT", "PATCH", "DELETE"}


def body_limit(path: str, settings: Any) -> int:
    """The largest body the route at ``path`` accepts, in bytes."""
    if path in _PUBLIC_WRITES:
        return LOGIN_MAX_BYTES
    if _UPLOAD.match(path):
        return int(settings.photo_max_bytes) + FORM_OVERHEAD_BYTES
    return int(settings.api_max_json_bytes)


def _too_large(limit: int) -> HTTPException:
    return HTTPException(status_code=413, detail=f"request body too large: this endpoint accepts at most "
                                                 f"{limit} bytes")


class BodyLimitMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path: str = scope.get("path", "")
        method: str = scope.get("method", "GET")
        app = scope.get("app")
        settings = app.state.settings
        headers = {k.lower(): v for k, v in scope.get("headers", [])}
        if (method in _WRITE_METHODS and path.startswith("/api/") and path not in _PUBLIC_WRITES):
            auth = getattr(app.state, "auth", None)
            raw = headers.get(b"authorization", b"").decode("latin-1")
            scheme, _, token = raw.partition(" ")
            try:
                check_token(auth, token.strip() if scheme.lower() == "bearer" else "")
            except HTTPException as exc:
                await _reply(send, exc.status_code, exc.detail, exc.headers)
                return
        limit = body_limit(path, settings)
        declared = headers.get(b"content-length")
        if declared is not None:
            try:
                length = int(declared)
            except ValueError:
                await _reply(send, 400, "Content-Length is not a number")
                return
            if length > limit:
                await _reply(send, 413, _too_large(limit).detail, {"Connection": "close"})
                return
        seen = 0
        if _is_json(headers.get(b"content-type", b"")) and method in _WRITE_METHODS:
            body, more = await _read_all(receive, limit)
            if body is None:
                await _reply(send, 413, _too_large(limit).detail, {"Connection": "close"})
                return
            problem = non_finite(body)
            if problem is not None:
                await _reply_422(send, problem)
                return
            await self.app(scope, _replay(body, more, receive), send)
            return

        async def counted() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > limit:
                    # FastAPI re-raises an HTTPException from the body read as it is: a 413, not a parse error.
                    raise _too_large(limit)
            return message

        await self.app(scope, counted, send)


def _is_json(content_type: bytes) -> bool:
    media = content_type.split(b";", 1)[0].strip().lower()
    # No content type at all: FastAPI reads such a body as JSON too.
    return not media or media == b"application/json" or media.endswith(b"+json")


async def _read_all(receive: Receive, limit: int) -> tuple[bytes | None, list[Message]]:
    """The whole body (None when it exceeds ``limit``) and any non-body messages received meanwhile."""
    parts: list[bytes] = []
    size = 0
    others: list[Message] = []
    while True:
        message = await receive()
        if message["type"] != "http.request":
            others.append(message)  # a disconnect: passed on to the app as it comes
            break
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            return None, others
        parts.append(chunk)
        if not message.get("more_body", False):
            break
    return b"".join(parts), others


def _replay(body: bytes, others: list[Message], receive: Receive) -> Receive:
    pending: list[Message] = [{"type": "http.request", "body": body, "more_body": False}, *others]

    async def replayed() -> Message:
        if pending:
            return pending.pop(0)
        return await receive()

    return replayed


class _NonFinite(ValueError):
    pass


def _refuse_constant(name: str) -> Any:
    raise _NonFinite(f"{name} is not a number: send a finite number (JSON has no NaN or Infinity)")


def _finite_float(text: str) -> float:
    value = float(text)
    if value in (float("inf"), float("-inf")):
        raise _NonFinite(f"{text[:40]} is too large for a number: send a finite number")
    return value


def non_finite(body: bytes) -> str | None:
    """Why the JSON ``body`` holds a number that is not finite; None when it holds none (or is no valid JSON:
    the route's own parser reports that)."""
    try:
        json.loads(body, parse_constant=_refuse_constant, parse_float=_finite_float)
    except _NonFinite as exc:
        return str(exc)
    except (ValueError, RecursionError):
        return None
    return None


async def _reply_422(send: Send, msg: str) -> None:
    body = json.dumps({"detail": f"request body: {msg}",
                       "errors": [{"loc": ["body"], "msg": msg, "type": "finite_number"}]}).encode()
    await send({"type": "http.response.start", "status": 422,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})


async def _reply(send: Send, status: int, detail: str, headers: dict[str, str] | None = None) -> None:
    body = json.dumps({"detail": detail}).encode()
    raw = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    raw += [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in (headers or {}).items()]
    await send({"type": "http.response.start", "status": status, "headers": raw})
    await send({"type": "http.response.body", "body": body})
