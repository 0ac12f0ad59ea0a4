"""Error responses: readable 422s, 404s, 503 when a backend is down, and a JSON 500 only for genuine bugs."""

from __future__ import annotations

import logging
import re
import sqlite3
from typing import Any, Iterable, Mapping, NoReturn

from fastapi import FastAPI, HTTPException, Request
from fastapi.exception_handlers import http_exception_handler
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import ValidationError
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.formparsers import MultiPartException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from core.logs import kv
from core.tsdb import StoreUnavailable

log = logging.getLogger("api")

_SOURCES = {"query": "query parameter", "path": "path parameter", "header": "header", "cookie": "cookie"}
_MAX_ECHO = 80


def echo(value: object) -> str:
    """A user-supplied value, quoted and shortened, fit to appear in an error message."""
    text = str(value)
    return repr(text if len(text) <= _MAX_ECHO else text[:_MAX_ECHO] + "…")


def invalid(source: str, name: str, msg: str, value: Any = None) -> NoReturn:
    """Raise a 422 shaped exactly like FastAPI's own parameter validation errors."""
    raise RequestValidationError([{"type": "value_error", "loc": (source, name), "msg": msg, "input": value}])


def not_found(what: str, ident: object) -> NoReturn:
    raise HTTPException(status_code=404, detail=f"{what} {ident} not found")


def conflict(detail: str) -> NoReturn:
    raise HTTPException(status_code=409, detail=detail)


def _guess_loc(msg: str, fields: Iterable[str], aliases: Mapping[str, str]) -> tuple[str, ...]:
    """The field a whole-model error is about: the first field name (or alias) the message mentions.

    Cross-field checks (pydantic model validators) report no location; their messages name the field instead
    ("levels must get stricter with severity (above)", "params.window_h must be in (0, 24]").
    """
    names = {f: f for f in fields} | dict(aliases)
    if not names:
        return ()
    pattern = r"(?<![\w.])(" + "|".join(sorted(map(re.escape, names), key=len, reverse=True)) + r")((?:\.\w+)*)(?![\w])"
    m = re.search(pattern, msg)
    if m is None:
        return ()
    return (names[m.group(1)], *[p for p in m.group(2).split(".") if p])


def domain_invalid(exc: ValidationError, source: str = "body", fields: Iterable[str] = (),
                   aliases: Mapping[str, str] | None = None) -> NoReturn:
    """Turn a domain model's ValidationError into the API's readable 422, located under ``source``."""
    fields = tuple(fields)
    errors = []
    for e in exc.errors(include_url=False, include_context=False):
        loc = tuple(e.get("loc", ()))
        msg = str(e.get("msg", "invalid value"))
        if not loc:
            loc = _guess_loc(msg.removeprefix("Value error, "), fields, aliases or {})
        errors.append({"type": e.get("type", "value_error"), "loc": (source, *loc), "msg": msg})
    raise RequestValidationError(errors)


def _describe(err: dict[str, Any]) -> str:
    loc = [str(p) for p in err.get("loc", ())]
    msg = str(err.get("msg", "invalid value"))
    msg = msg.removeprefix("Value error, ")
    if loc and loc[0] == "body":
        where = f"body field '{'.'.join(loc[1:])}'" if len(loc) > 1 else "request body"
    elif loc and loc[0] in _SOURCES:
        where = f"{_SOURCES[loc[0]]} '{'.'.join(loc[1:])}'"
    else:
        where = ".".join(loc)
    return f"{where}: {msg}" if where else msg


# Regular expressions of the domain models, said in words (the domain keeps the patterns, the API the wording).
_PATTERN_HELP = {
    r"^[a-z][a-z0-9_]{0,63}$": "lowercase letters, digits and _, starting with a letter, at most 64 characters",
    r"^[^@\s]+@[^@\s]+$": "an e-mail address (name@example.org)",
    r"^\+?[0-9 -]{5,40}$": "a phone number: 5 to 40 digits, spaces or dashes, optionally starting with +",
}


def _readable(err: dict[str, Any]) -> dict[str, Any]:
    ctx = err.get("ctx") or {}
    if err.get("type") == "string_pattern_mismatch" and ctx.get("pattern") in _PATTERN_HELP:
        err = {**err, "msg": f"must be {_PATTERN_HELP[ctx['pattern']]}; got {echo(err.get('input'))}"}
    return err


async def _validation_error(_: Request, exc: RequestValidationError) -> JSONResponse:
    errors = [_readable(e) for e in exc.errors()]
    items = [{"loc": [p if isinstance(p, int) else str(p) for p in e.get("loc", ())],
              "msg": str(e.get("msg", "")).removeprefix("Value error, "),
              "type": str(e.get("type", "value_error"))} for e in errors]
    detail = "; ".join(_describe(e) for e in errors) or "invalid request"
    return JSONResponse(status_code=422, content={"detail": detail, "errors": items})


# What FastAPI answers, as a bare 400, when it cannot even decode a body it reads as JSON (bytes that are not UTF-8);
# a JSON syntax error, by contrast, is its 422 json_invalid. Starlette answers a broken multipart form with a bare
# 400 too (the MultiPartException's message, raised while handling it).
_UNPARSABLE_BODY = "There was an error parsing the body"


def _unparsable_body(exc: StarletteHTTPException) -> tuple[str, str] | None:
    """What is wrong with a body the framework could not parse, and the error type; None: not such an error."""
    if exc.status_code != 400:
        return None
    cause = exc.__cause__ or exc.__context__
    if isinstance(cause, MultiPartException):
        return f"not a valid multipart form: {cause.message}", "multipart_invalid"
    if exc.detail != _UNPARSABLE_BODY:
        return None
    if isinstance(cause, UnicodeDecodeError):
        return "not valid UTF-8: a JSON body must be UTF-8 encoded", "json_invalid"
    return f"could not be parsed ({type(cause).__name__ if cause else 'malformed'})", "body_invalid"


async def _http_error(request: Request, exc: StarletteHTTPException) -> Any:
    """FastAPI's own handling, except that an unparsable body becomes the API's readable 422 like any bad input."""
    problem = _unparsable_body(exc)
    if problem is not None:
        msg, kind = problem
        return JSONResponse(status_code=422, content={"detail": f"request body: {msg}",
                                                      "errors": [{"loc": ["body"], "msg": msg, "type": kind}]})
    return await http_exception_handler(request, exc)


async def _store_unavailable(request: Request, exc: Exception) -> JSONResponse:
    log.warning("time-series store unavailable", extra=kv(path=request.url.path, error=str(exc)))
    return JSONResponse(status_code=503, content={"detail": "time-series store unavailable, try again later"})


async def _registry_unavailable(request: Request, exc: DBAPIError) -> JSONResponse:
    # Connection failures, locks, timeouts, a schema not created yet: not a bug in the API.
    log.warning("registry database unavailable", extra=kv(path=request.url.path, error=str(exc.orig)))
    return JSONResponse(status_code=503, content={"detail": "registry database unavailable, try again later"})


class CatchAllMiddleware:
    """Turn an unhandled exception into a logged, JSON 500 without leaking the traceback to the client.

    A plain ASGI middleware rather than ``add_exception_handler(Exception, ...)``: Starlette's
    ServerErrorMiddleware re-raises after calling that handler, so the server would log every bug twice.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def _send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, receive, _send)
        except Exception:
            log.exception("unhandled error", extra=kv(method=scope.get("method"), path=scope.get("path")))
            if started:  # too late for a clean 500: let the server drop the connection
                raise
            response = JSONResponse(status_code=500, content={"detail": "internal server error"})
            await response(scope, receive, send)


def install(app: FastAPI) -> None:
    app.add_exception_handler(RequestValidationError, _validation_error)  # type: ignore[arg-type]
    app.add_exception_handler(StarletteHTTPException, _http_error)  # type: ignore[arg-type]
    app.add_exception_handler(StoreUnavailable, _store_unavailable)
    # The SQLite store's read paths raise sqlite3 errors as they are ("database is locked").
    app.add_exception_handler(sqlite3.OperationalError, _store_unavailable)
    app.add_exception_handler(OperationalError, _registry_unavailable)  # type: ignore[arg-type]
    app.add_exception_handler(InterfaceError, _registry_unavailable)  # type: ignore[arg-type]
    app.add_middleware(CatchAllMiddleware)
