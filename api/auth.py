"""Authentication and role checks as FastAPI dependencies.

Every route outside ``api.routes.public_router`` (and ``/healthz`` and the docs) declares who may call it with
``require(...)``: ``dependencies=[Depends(STAFF)]`` on the route, or a ``Principal`` parameter
``user: Annotated[Principal, Depends(STAFF)]`` when it needs to know who calls. ``tests/test_auth.py`` walks the
app's routes and fails for a route that answers without a token or declares no roles.

* 401 (``WWW-Authenticate: Bearer``): no token, a malformed, forged or expired one, or the user is disabled.
* 403: the user's role may not do this. Authorization uses the user's role as stored now, not the role in the
  token, so changing a role takes effect at once (within ``auth_user_cache_s``).

Object-level checks (a town supervisor or a river chief touching only their own town's or river's objects) belong
in the routes that load the objects: ``Principal.town`` and ``Principal.chief_id`` are there for them.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Annotated, Any, Callable, Iterable

from fastapi import Depends, HTTPException, Request, Security
from fastapi.routing import APIRoute
from fastapi.security import APIKeyQuery, HTTPAuthorizationCredentials, HTTPBearer

from api.clientaddr import client_address, parse_proxies
from core.auth import InvalidToken, LoginLimiter, Role, TokenClaims, TokenSigner, User, load_secret
from core.registry import Registry, UserRepo
from core.settings import Settings

bearer_scheme = HTTPBearer(
    scheme_name="bearer", auto_error=False, bearerFormat="JWT (HS256)",
    description="`POST /api/v1/auth/login` with `{\"username\", \"password\"}` returns `access_token`; send it as "
                "`Authorization: Bearer <access_token>`. Operators can also mint one with `smartwater token NAME`.")
query_token_scheme = APIKeyQuery(
    name="access_token", scheme_name="access_token_query", auto_error=False,
    description="The same bearer token as a query parameter, for `GET /api/v1/alerts/stream` only (browsers' "
                "EventSource cannot set headers). Prefer the header everywhere else: URLs end up in logs.")


@dataclass(frozen=True, slots=True)
class Principal:
    """The caller: who they are now (from the users table) and the token they came with."""

    user_id: int
    username: str
    display_name: str
    role: Role
    town: str | None
    chief_id: str | None
    token: TokenClaims

    @property
    def district_wide(self) -> bool:
        """Not limited to one town (admins, duty officers, viewers, and supervisors without a town)."""
        return self.town is None


class Auth:
    """The app's token signer, user lookups (cached briefly) and login limiter; on ``app.state.auth``."""

    def __init__(self, settings: Settings, registry: Registry) -> None:
        self.signer = TokenSigner(load_secret(settings))
        self.users = UserRepo(registry.engine)
        self.ttl_s = settings.token_ttl_s
        self.cache_s = settings.auth_user_cache_s
        self.limiter = LoginLimiter(settings.login_max_failures, settings.login_failure_window_s)
        self.proxies = parse_proxies(settings.api_trusted_proxies)
        self._cache: dict[str, tuple[float, User | None]] = {}
        self._lock = threading.Lock()

    def user(self, username: str) -> User | None:
        """The user as stored, looked up at most once per ``auth_user_cache_s`` (0: every request)."""
        now = time.monotonic()
        if self.cache_s > 0:
            with self._lock:
                hit = self._cache.get(username)
            if hit is not None and now - hit[0] < self.cache_s:
                return hit[1]
        user = self.users.get(username)
        if self.cache_s > 0:
            with self._lock:
                if len(self._cache) > 10_000:
                    self._cache.clear()
                self._cache[username] = (now, user)
        return user

    def forget(self, username: str | None = None) -> None:
        """Drop cached lookups (one user, or all): after changing a user in this process."""
        with self._lock:
            if username is None:
                self._cache.clear()
            else:
                self._cache.pop(username, None)

    def issue(self, user: User) -> tuple[str, TokenClaims]:
        return self.signer.issue(user.username, user.role, self.ttl_s, gen=user.token_generation)


def get_auth(request: Request) -> Auth:
    return request.app.state.auth


def client_of(request: Request) -> tuple[str, str]:
    """(client address, TCP peer) of a request, X-Forwarded-For taken from trusted proxies only."""
    return client_address(request, get_auth(request).proxies)


def unauthorized(detail: str, error: str | None = None) -> HTTPException:
    challenge = "Bearer" if error is None else f'Bearer error="invalid_token", error_description="{error}"'
    return HTTPException(status_code=401, detail=detail, headers={"WWW-Authenticate": challenge})


_NO_TOKEN = ("not authenticated: send `Authorization: Bearer <token>` "
             "(get a token from POST /api/v1/auth/login)")


def check_token(auth: Auth, token: str | None) -> TokenClaims:
    """The claims of a genuine, unexpired token; the API's 401 otherwise (the account is not looked at)."""
    if not token:
        raise unauthorized(_NO_TOKEN)
    try:
        return auth.signer.verify(token)
    except InvalidToken as exc:
        if exc.reason == "token expired":
            raise unauthorized("token expired: log in again", "token expired") from None
        raise unauthorized("invalid token", exc.reason) from None


def _authenticate(request: Request, token: str | None) -> Principal:
    auth = get_auth(request)
    claims = check_token(auth, token)
    user = auth.user(claims.sub)
    if user is None or not user.active or user.id is None:
        raise unauthorized("token no longer valid: the account is disabled or gone", "account disabled")
    if claims.gen != user.token_generation:  # the password was changed or the tokens revoked since
        raise unauthorized("token revoked: log in again", "token revoked")
    principal = Principal(user_id=user.id, username=user.username, display_name=user.display_name, role=user.role,
                          town=user.town, chief_id=user.chief_id, token=claims)
    request.state.principal = principal  # for logs and for routes that do not take it as a parameter
    return principal


def authenticated(request: Request,
                  credentials: Annotated[HTTPAuthorizationCredentials | None, Security(bearer_scheme)]) -> Principal:
    """The caller, from ``Authorization: Bearer``; 401 without a valid token."""
    return _authenticate(request, credentials.credentials if credentials else None)


def authenticated_or_query(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Security(bearer_scheme)],
    access_token: Annotated[str | None, Security(query_token_scheme)],
) -> Principal:
    """Like ``authenticated``, also accepting ``?access_token=`` (the header wins when both are sent)."""
    return _authenticate(request, credentials.credentials if credentials else access_token)


def _role_list(roles: Iterable[Role]) -> str:
    return ", ".join(r.value for r in Role if r in set(roles))


def require(*roles: Role, query_token: bool = False) -> Callable[..., Principal]:
    """A dependency: the caller, if their role is one of ``roles``; 401 without a valid token, 403 otherwise.

    Create each one once (module level) and reuse it: FastAPI caches a dependency per request by identity.
    ``query_token``: also take the token from ``?access_token=`` (the SSE stream only).
    """
    allowed = frozenset(roles)
    if not allowed:
        raise ValueError("require() needs at least one role")
    source = authenticated_or_query if query_token else authenticated

    # A default, not Annotated[...]: with postponed annotations FastAPI could not resolve the local `source`.
    def check(principal: Principal = Depends(source)) -> Principal:  # noqa: B008
        if principal.role not in allowed:
            raise HTTPException(status_code=403, detail=f"forbidden: the {principal.role.value} role may not do "
                                f"this; it needs one of: {_role_list(allowed)}")
        return principal

    check.roles = allowed  # type: ignore[attr-defined]  # read by required_roles() for the docs and the tests
    check.__name__ = f"require_{'_'.join(r.value for r in Role if r in allowed)}"
    return check


# The role sets of the API (see the table in DESCRIPTION, api/app.py).
ANY_ROLE = require(*Role)
STAFF = require(Role.admin, Role.supervisor, Role.duty)
MANAGERS = require(Role.admin, Role.supervisor)
# District-wide settings (alert rules): a town supervisor must not change what every town is alerted about.
ADMINS = require(Role.admin)
ANY_ROLE_STREAM = require(*Role, query_token=True)


@dataclass(frozen=True, slots=True)
class RouteInfo:
    path: str
    methods: frozenset[str]
    roles: frozenset[Role] | None  # None: no role check (public, or someone forgot one)


def _roles_of(dependant: Any) -> frozenset[Role] | None:
    """The roles a dependency tree admits (the intersection of every ``require`` in it); None: no check."""
    found: list[frozenset[Role]] = []

    def walk(d: Any) -> None:
        roles = getattr(d.call, "roles", None)
        if roles is not None:
            found.append(roles)
        for sub in d.dependencies:
            walk(sub)

    walk(dependant)
    if not found:
        return None
    out = found[0]
    for roles in found[1:]:
        out &= roles
    return out


def route_table(routes: Iterable[Any]) -> list[RouteInfo]:
    """Every HTTP API route of an app (``app.routes``) with its full path, methods and roles.

    Works with FastAPI's copied routes (before 0.16x) and with its included-router contexts (after).
    """
    try:
        from fastapi.routing import iter_route_contexts  # type: ignore[attr-defined]
    except ImportError:  # older FastAPI: included routes are copied into app.routes
        contexts: Iterable[Any] = list(routes)
    else:
        contexts = iter_route_contexts(list(routes))
    out = []
    for ctx in contexts:
        original = getattr(ctx, "original_route", ctx)
        if not isinstance(original, APIRoute):
            continue
        dependant = getattr(ctx, "dependant", None) or original.dependant
        out.append(RouteInfo(path=ctx.path, methods=frozenset(ctx.methods or ()), roles=_roles_of(dependant)))
    return out


def install_role_docs(app: Any) -> None:
    """Say in each operation of the app's OpenAPI (description and ``x-roles``) which roles may call it."""
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        spec = generate()
        for info in route_table(app.routes):
            if info.roles is None:
                continue
            names = [r.value for r in Role if r in info.roles]
            note = f"**Roles:** {', '.join(names)}" if len(names) < len(Role) else "**Roles:** any signed-in user"
            for method in info.methods:
                op = spec.get("paths", {}).get(info.path, {}).get(method.lower())
                if op is None or "x-roles" in op:
                    continue
                op["x-roles"] = names
                op["description"] = f"{op['description']}\n\n{note}" if op.get("description") else note
        return spec

    app.openapi = openapi
