"""Access control: password hashing, tokens, login and its rate limit, roles on every route, the user commands."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import re
import stat
import subprocess
import sys
import time
import warnings
from pathlib import Path

import pytest
from pydantic import ValidationError

with warnings.catch_warnings():
    warnings.filterwarnings("ignore", message=r"Using `httpx` with `starlette.testclient` is deprecated")
    from fastapi.testclient import TestClient

from api import create_app
from api.auth import route_table
from core.auth import (InvalidToken, LoginLimiter, Role, TokenSigner, User, WeakPassword, check_password,
                       hash_password, load_secret, needs_rehash, new_user, verify_password)
from core.domain import Alert
from core.registry import DuplicateUser, UserRepo, open_registry
from core.settings import Settings
from core.timeutil import utcnow
from core.tsdb import open_store
from tests.auth_util import PASSWORD, ensure_user, token_for

SMARTWATER = str(Path(sys.executable).with_name("smartwater"))
LOGIN, ME = "/api/v1/auth/login", "/api/v1/auth/me"
# The only routes anyone may call. Adding one here is a decision, not a side effect: it is reviewed with this test.
PUBLIC = {"/healthz", "/docs", "/docs/oauth2-redirect", "/openapi.json", "/redoc", LOGIN, "/api/v1/bulletin"}
PUBLIC |= {"/", "/bulletin", "/reports", "/static/{name:path}"}  # the dashboard's pages and files: they hold no data
STAFF = {Role.admin, Role.supervisor, Role.duty}
MANAGERS = {Role.admin, Role.supervisor}
PATROL_WRITERS = {Role.admin, Role.supervisor, Role.chief}
# Who may call what (the roles: README "Access"). A new route fails test_every_route_has_an_expected_role_set until it is added here.
EXPECTED_ROLES = {
    ("GET", ME): set(Role),
    ("POST", "/api/v1/auth/password"): set(Role),
    ("PUT", "/api/v1/users/{username}/password"): {Role.admin},
    ("POST", "/api/v1/users/{username}/disable"): {Role.admin},
    ("POST", "/api/v1/users/{username}/enable"): {Role.admin},
    ("POST", "/api/v1/users/{username}/revoke-tokens"): {Role.admin},
    ("GET", "/api/v1/stations"): set(Role),
    ("GET", "/api/v1/stations/{station_id}"): set(Role),
    ("GET", "/api/v1/stations/{station_id}/readings"): set(Role),
    ("GET", "/api/v1/readings/latest"): set(Role),
    ("GET", "/api/v1/alerts"): set(Role),
    ("GET", "/api/v1/alerts/{alert_id}"): set(Role),
    ("GET", "/api/v1/alerts/stream"): set(Role),
    ("POST", "/api/v1/alerts/{alert_id}/ack"): STAFF,
    ("GET", "/api/v1/dead-letters"): STAFF,
    ("GET", "/api/v1/rules"): STAFF,
    ("GET", "/api/v1/rules/{rule_id}"): STAFF,
    ("POST", "/api/v1/rules"): {Role.admin},
    ("PUT", "/api/v1/rules/{rule_id}"): {Role.admin},
    ("PATCH", "/api/v1/rules/{rule_id}"): {Role.admin},
    ("DELETE", "/api/v1/rules/{rule_id}"): {Role.admin},
    ("GET", "/api/v1/duty-roster"): STAFF,
    ("GET", "/api/v1/duty-roster/on-duty"): STAFF,
    ("POST", "/api/v1/duty-roster"): MANAGERS,
    ("DELETE", "/api/v1/duty-roster/{shift_id}"): MANAGERS,
    ("GET", "/api/v1/devices"): STAFF,
    ("POST", "/api/v1/devices"): {Role.admin},
    ("DELETE", "/api/v1/devices/{protocol}/{address}"): {Role.admin},
    ("GET", "/api/v1/overview/map"): set(Role),
    ("GET", "/api/v1/overview/rain"): set(Role),
    ("GET", "/api/v1/overview/reservoirs"): set(Role),
    ("GET", "/api/v1/overview/water-quality"): set(Role),
    ("GET", "/api/v1/reports/rain-events"): set(Role),
    ("GET", "/api/v1/reports/rain-events/{event_id}"): set(Role),
    ("GET", "/api/v1/reports/areal-rainfall"): set(Role),
    ("GET", "/api/v1/reports/reservoir-inflow"): set(Role),
    ("GET", "/api/v1/reports/rainfall-history"): set(Role),
    ("GET", "/api/v1/reports/towns"): set(Role),
    # River chiefs: map layers and lists for everyone signed in (objects scoped per api/routes/patrol_scope.py);
    # patrol and issue writes by chiefs and managers; assigning and reviewing by managers.
    ("GET", "/api/v1/rivers"): set(Role),
    ("GET", "/api/v1/rivers/geojson"): set(Role),
    ("GET", "/api/v1/rivers/{river_id}"): set(Role),
    ("GET", "/api/v1/segments"): set(Role),
    ("GET", "/api/v1/segments/geojson"): set(Role),
    ("GET", "/api/v1/segments/{segment_id}"): set(Role),
    ("GET", "/api/v1/chiefs"): set(Role),
    ("GET", "/api/v1/chiefs/me"): {Role.chief},
    ("GET", "/api/v1/chiefs/{chief_id}"): set(Role),
    ("POST", "/api/v1/patrols"): PATROL_WRITERS,
    ("POST", "/api/v1/patrols/import"): {Role.admin},
    ("POST", "/api/v1/patrols/{patrol_id}/points"): PATROL_WRITERS,
    ("POST", "/api/v1/patrols/{patrol_id}/finish"): PATROL_WRITERS,
    ("POST", "/api/v1/patrols/{patrol_id}/photos"): PATROL_WRITERS,
    ("GET", "/api/v1/patrols"): set(Role),
    ("GET", "/api/v1/patrols/{patrol_id}"): set(Role),
    ("GET", "/api/v1/patrols/{patrol_id}/track"): set(Role),
    ("POST", "/api/v1/issues"): PATROL_WRITERS,
    ("POST", "/api/v1/issues/{issue_id}/photos"): PATROL_WRITERS,
    ("POST", "/api/v1/issues/{issue_id}/assign"): MANAGERS,
    ("POST", "/api/v1/issues/{issue_id}/rectify"): PATROL_WRITERS,
    ("POST", "/api/v1/issues/{issue_id}/review"): MANAGERS,
    ("GET", "/api/v1/issues"): set(Role),
    ("GET", "/api/v1/issues/geojson"): set(Role),
    ("GET", "/api/v1/issues/{issue_id}"): set(Role),
    ("GET", "/api/v1/photos/{photo_id}"): set(Role),
    ("GET", "/api/v1/compliance"): {Role.admin, Role.supervisor, Role.duty, Role.viewer},
}

# The scope decision of every write: whose objects a caller with a town (or a chief id) may change. "district":
# only roles without a town may call it at all; "town": a supervisor with a town only their town's objects;
# "own": a chief only their own patrols and issues, a supervisor their town's (api/routes/patrol_scope.py);
# "any": no object belongs to a town (acknowledging a visible alert). A new write route fails
# test_every_write_route_has_a_scope_decision until its decision is made here and tested.
WRITE_SCOPES = {
    ("POST", "/api/v1/auth/password"): "own",  # the caller's own password only
    ("PUT", "/api/v1/users/{username}/password"): "district",
    ("POST", "/api/v1/users/{username}/disable"): "district",
    ("POST", "/api/v1/users/{username}/enable"): "district",
    ("POST", "/api/v1/users/{username}/revoke-tokens"): "district",
    ("POST", "/api/v1/alerts/{alert_id}/ack"): "any",
    ("POST", "/api/v1/rules"): "district",
    ("PUT", "/api/v1/rules/{rule_id}"): "district",
    ("PATCH", "/api/v1/rules/{rule_id}"): "district",
    ("DELETE", "/api/v1/rules/{rule_id}"): "district",
    ("POST", "/api/v1/duty-roster"): "town",
    ("DELETE", "/api/v1/duty-roster/{shift_id}"): "town",
    ("POST", "/api/v1/patrols"): "own",
    ("POST", "/api/v1/patrols/import"): "district",  # admins only: paper records of any chief
    ("POST", "/api/v1/devices"): "district",  # field devices are the district's
    ("DELETE", "/api/v1/devices/{protocol}/{address}"): "district",
    ("POST", "/api/v1/patrols/{patrol_id}/points"): "own",
    ("POST", "/api/v1/patrols/{patrol_id}/finish"): "own",
    ("POST", "/api/v1/patrols/{patrol_id}/photos"): "own",
    ("POST", "/api/v1/issues"): "own",
    ("POST", "/api/v1/issues/{issue_id}/photos"): "own",
    ("POST", "/api/v1/issues/{issue_id}/assign"): "own",
    ("POST", "/api/v1/issues/{issue_id}/rectify"): "own",
    ("POST", "/api/v1/issues/{issue_id}/review"): "own",
}


# -- password hashing ----------------------------------------------------------
def test_hash_is_self_describing_salted_scrypt():
    encoded = hash_password("correct horse battery")
    algo, n, r, p, salt, digest = encoded.split("$")
    assert (algo, n, r, p) == ("scrypt", str(2**14), "8", "1")
    assert len(bytes.fromhex(salt)) == 16 and len(bytes.fromhex(digest)) == 32
    assert hash_password("correct horse battery") != encoded  # a new salt every time
    assert verify_password("correct horse battery", encoded)
    assert not verify_password("correct horse batterY", encoded)
    assert not verify_password("", encoded)
    assert not needs_rehash(encoded)


def test_verify_follows_the_stored_parameters_and_refuses_bad_hashes():
    cheap = hash_password("correct horse battery", n=2**10, r=4, p=1)
    assert verify_password("correct horse battery", cheap) and needs_rehash(cheap)
    good = hash_password("x" * 12)
    salt, digest = good.split("$")[4:]
    for bad in ["", "plain", "bcrypt$2b$12$abc", good.replace("scrypt", "SCRYPT"), good[:-1],  # odd hex
                good[:-40],  # a 12-byte digest
                f"scrypt$16385$8$1${salt}${digest}",  # n not a power of two
                f"scrypt${2**24}$8$1${salt}${digest}",  # a planted hash must not cost 16 GiB
                f"scrypt$16384$8$1$zz${digest}"]:
        assert not verify_password("x" * 12, bad), bad
    assert not verify_password("x" * 5000, good)


@pytest.mark.parametrize(("password", "why"), [
    ("short", "at least 10"), ("mosquito-42", None), ("          ", "only spaces"), ("abababababab", "different"),
    ("wang.lihua", "user name"), ("x" * 1025, "at most"),
])
def test_weak_passwords_are_refused(password, why):
    if why is None:  # long enough, three different characters: accepted
        check_password(password, "wang.lihua")
        return
    with pytest.raises(WeakPassword, match=why):
        check_password(password, "wang.lihua")


def test_user_model_rules():
    u = new_user("Wang.Li", PASSWORD, "supervisor", town="通济街道")
    assert u.username == "wang.li" and u.display_name == "wang.li" and u.active
    assert "password_hash" not in repr(u)
    with pytest.raises(ValidationError, match="town applies to supervisors and chiefs only"):
        new_user("duty1", PASSWORD, "duty", town="通济街道")
    with pytest.raises(ValidationError, match="chief_id applies to the chief role only"):
        new_user("viewer1", PASSWORD, "viewer", chief_id="C1")
    with pytest.raises(ValidationError):
        new_user("has space", PASSWORD, "viewer")
    with pytest.raises(ValueError):
        new_user("someone", PASSWORD, "root")
    chief = new_user("chief1", PASSWORD, Role.chief, town="通济街道", chief_id="RC-0001")
    assert chief.chief_id == "RC-0001"


# -- tokens ------------------------------------------------------------------
class Clock:
    def __init__(self, t: float = 1_800_000_000.0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


def _segments(token: str) -> list[str]:
    return token.split(".")


def _b64(obj: dict) -> str:
    return base64.urlsafe_b64encode(json.dumps(obj).encode()).rstrip(b"=").decode()


def test_token_round_trip_and_expiry():
    clock = Clock()
    signer = TokenSigner(b"s" * 32, clock=clock)
    token, claims = signer.issue("wang", Role.duty, ttl_s=600)
    assert claims.exp - claims.iat == 600 and len(claims.jti) == 32
    header = json.loads(base64.urlsafe_b64decode(_segments(token)[0] + "=="))
    assert header == {"alg": "HS256", "typ": "JWT"}
    got = signer.verify(token)
    assert (got.sub, got.role, got.exp) == ("wang", "duty", claims.exp)
    clock.t += 599
    signer.verify(token)
    clock.t += 1
    with pytest.raises(InvalidToken, match="expired"):
        signer.verify(token)
    assert signer.issue("wang", "duty", 600)[1].jti != claims.jti


def test_forged_tokens_are_refused():
    clock = Clock()
    signer = TokenSigner(b"s" * 32, clock=clock)
    token, claims = signer.issue("viewer1", Role.viewer, ttl_s=600)
    header, payload, sig = _segments(token)
    promoted = _b64({"sub": "viewer1", "role": "admin", "iat": claims.iat, "exp": claims.exp, "jti": claims.jti})
    cases = {
        "bad signature": [f"{header}.{promoted}.{sig}",  # role changed, old signature
                          TokenSigner(b"t" * 32, clock=clock).issue("viewer1", "admin", 600)[0],  # another secret
                          f"{header}.{payload}.{sig[:-1]}{'A' if sig[-1] != 'A' else 'B'}",
                          f"{header}.{payload}.", f"{header}.é.{sig}"],
        "unsupported token type": [f"{_b64({'alg': 'none', 'typ': 'JWT'})}.{payload}.",
                                   f"{_b64({'alg': 'HS512', 'typ': 'JWT'})}.{payload}.{sig}"],
        "malformed": ["", "abc", f"{header}.{payload}", f"{token}.x", "x" * 5000],
    }
    for reason, tokens in cases.items():
        for bad in tokens:
            with pytest.raises(InvalidToken, match=reason):
                signer.verify(bad)
    future = TokenSigner(b"s" * 32, clock=Clock(clock.t + 3600)).issue("viewer1", "viewer", 7200)[0]
    with pytest.raises(InvalidToken, match="future"):
        signer.verify(future)


def test_secret_file_is_created_once_private_and_reused(tmp_path):
    settings = Settings(_env_file=None, data_dir=tmp_path / "fresh")
    first = load_secret(settings)
    path = tmp_path / "fresh" / "auth_secret"
    assert path.exists() and len(first) >= 32
    if os.name == "posix":
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert load_secret(settings) == first  # a restart keeps the tokens valid
    assert [p.name for p in path.parent.iterdir()] == ["auth_secret"]  # no temporary files left
    key = "3f9a1c7e5b20d4866e1f0a9b7c3d52e4a1b6c8d0f2e4a6b8"
    configured = Settings(_env_file=None, data_dir=tmp_path / "fresh", auth_secret=key)
    assert load_secret(configured) == key.encode()
    with pytest.raises(ValidationError, match="at least 32 characters"):
        Settings(_env_file=None, auth_secret="short")


def _example_env() -> dict[str, str]:
    text = (Path(__file__).resolve().parents[1] / ".env.example").read_text()
    return dict(line.split("=", 1) for line in text.splitlines() if line and not line.startswith("#"))


@pytest.mark.parametrize("secret", [
    "change-me-to-32-or-more-random-characters",  # what .env.example shipped: anyone could sign admin tokens
    "CHANGE_ME_please_with_32_random_characters!!",
    "k" * 40, "ab" * 20, "fuzz-secret-" + "x" * 32,  # long but guessable
])
def test_placeholder_or_guessable_secret_refuses_to_start(secret, tmp_path):
    with pytest.raises(ValidationError) as info:
        Settings(_env_file=None, data_dir=tmp_path, auth_secret=secret)
    message = str(info.value)
    assert "SMARTWATER_AUTH_SECRET" in message and "openssl rand -hex 32" in message
    env = {k: v for k, v in os.environ.items() if not k.startswith("SMARTWATER_")}
    res = subprocess.run([SMARTWATER, "token", "admin"], capture_output=True, text=True, timeout=60,
                         env={**env, "SMARTWATER_DATA_DIR": str(tmp_path), "SMARTWATER_AUTH_SECRET": secret})
    assert res.returncode == 2 and "SMARTWATER_AUTH_SECRET" in res.stderr and not res.stdout
    assert secret not in res.stderr  # the refused value is not echoed either


def test_a_placeholder_in_the_secret_file_is_refused_too(tmp_path):
    (tmp_path / "auth_secret").write_text("change-me-to-32-or-more-random-characters\n")
    with pytest.raises(ValueError, match="placeholder"):
        load_secret(Settings(_env_file=None, data_dir=tmp_path))


def test_example_env_holds_no_usable_secret(tmp_path):
    example = _example_env()
    with pytest.raises(ValidationError, match="SMARTWATER_AUTH_SECRET"):
        Settings(_env_file=None, data_dir=tmp_path, auth_secret=example["SMARTWATER_AUTH_SECRET"])
    with pytest.raises(ValidationError, match="SMARTWATER_INFLUX_TOKEN is a placeholder"):
        Settings(_env_file=None, data_dir=tmp_path, influx_token=example["SMARTWATER_INFLUX_TOKEN"])
    with pytest.raises(ValidationError, match="the password in SMARTWATER_DB_URL is a placeholder"):
        Settings(_env_file=None, db_url=f"postgresql://smartwater:{example['POSTGRES_PASSWORD']}@postgres/sw")
    with pytest.raises(ValidationError, match="SMARTWATER_MQTT_PASSWORD is a placeholder"):
        Settings(_env_file=None, mqtt_password=example["MQTT_INGEST_PASSWORD"])


# -- login rate limiter --------------------------------------------------------
def test_limiter_counts_failures_per_user_and_address():
    clock = Clock(0.0)
    lim = LoginLimiter(max_failures=3, window_s=300, ip_factor=2, clock=clock)
    keys = lim.keys("wang", "10.0.0.1")
    for _ in range(3):
        wait, _stamp = lim.attempt(keys)
        assert wait == 0
        clock.t += 10
    wait, _ = lim.attempt(keys)
    assert wait == pytest.approx(300 - 30)  # until the oldest failure leaves the window
    assert lim.attempt(lim.keys("li", "10.0.0.1"))[0] == 0  # another name from the same address
    assert lim.attempt(lim.keys("li", "10.0.0.1"))[0] == 0
    assert lim.attempt(lim.keys("li", "10.0.0.1"))[0] == 0
    assert lim.attempt(lim.keys("zhao", "10.0.0.1"))[0] > 0  # the address used up 2 x 3 attempts
    assert lim.attempt(lim.keys("wang", "10.0.0.2"))[0] == 0  # the same name from elsewhere
    clock.t += 300
    assert lim.attempt(keys)[0] == 0


def test_limiter_success_clears_and_undo_takes_back():
    lim = LoginLimiter(max_failures=2, window_s=300, clock=Clock(0.0))
    keys = lim.keys("wang", "10.0.0.1")
    lim.attempt(keys)
    _, stamp = lim.attempt(keys)
    lim.success(keys, stamp)  # the right password: the earlier failure is forgotten too
    _, stamp = lim.attempt(keys)
    lim.undo(keys, stamp)  # a database error: no verdict
    assert lim.attempt(keys)[0] == 0 and lim.attempt(keys)[0] == 0
    assert lim.attempt(keys)[0] > 0


def test_limiter_memory_is_bounded():
    clock = Clock(0.0)
    lim = LoginLimiter(max_failures=5, window_s=300, max_keys=50, clock=clock)
    for i in range(500):
        clock.t += 0.01
        lim.attempt(lim.keys(f"u{i}", f"10.0.{i // 250}.{i % 250}"))
    assert len(lim._failures) <= 50


# -- the API ------------------------------------------------------------------
@pytest.fixture()
def auth_settings(tmp_path) -> Settings:
    return Settings(_env_file=None, data_dir=tmp_path, auth_user_cache_s=0)


@pytest.fixture()
def reg(auth_settings):
    registry = open_registry(auth_settings.db_url)
    registry.create_schema()
    yield registry
    registry.close()


@pytest.fixture()
def app(auth_settings, reg):
    store = open_store(auth_settings.tsdb_url)
    application = create_app(auth_settings, registry=reg, store=store, stream=False)
    yield application
    store.close()


@pytest.fixture()
def client(app):
    with TestClient(app) as c:
        yield c


@pytest.fixture()
def tokens(auth_settings, reg) -> dict[Role, str]:
    """A user of every role, named after it, and a token for each."""
    out = {}
    for role in Role:
        kw = {"town": "通济街道"} if role is Role.chief else {}
        out[role] = token_for(auth_settings, reg, role.value, role, **kw)
    return out


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def _call(client: TestClient, method: str, path: str, **kw):
    # Any value fits every path parameter's type: the checks under test come before the parameters'.
    return client.request(method, re.sub(r"\{[^}]+\}", "1", path), **kw)


def _login(client, username, password=PASSWORD):
    return client.post(LOGIN, json={"username": username, "password": password})


def test_login_and_me(client, reg):
    ensure_user(reg, "li.na", Role.supervisor, town="通济街道", display_name="Li Na")
    t0 = utcnow()
    resp = _login(client, "Li.Na")  # user names are case-insensitive
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert set(body) == {"access_token", "token_type", "expires_at", "role"}
    assert body["token_type"] == "bearer" and body["role"] == "supervisor"
    expires = body["expires_at"]
    assert expires.endswith("+00:00")
    from datetime import datetime, timedelta

    assert abs(datetime.fromisoformat(expires) - (t0 + timedelta(hours=12))) < timedelta(seconds=10)
    me = client.get(ME, headers=bearer(body["access_token"]))
    assert me.status_code == 200
    assert me.json() == {"username": "li.na", "display_name": "Li Na", "role": "supervisor", "town": "通济街道",
                         "chief_id": None, "token_expires_at": expires}


def test_wrong_credentials_get_one_generic_401(client, reg):
    ensure_user(reg, "wang", Role.duty)
    wrong = _login(client, "wang", "not the password")
    unknown = _login(client, "nobody", PASSWORD)
    for resp in (wrong, unknown):
        assert resp.status_code == 401
        assert resp.json() == {"detail": "invalid username or password"}
        assert resp.headers["www-authenticate"] == "Bearer"
    assert _login(client, "", PASSWORD).status_code == 422
    assert client.post(LOGIN, json={"username": "wang", "password": PASSWORD, "role": "admin"}).status_code == 422


def test_login_rate_limit(client, reg, app):
    ensure_user(reg, "wang", Role.duty)
    ensure_user(reg, "li", Role.duty)
    clock = Clock(1000.0)
    app.state.auth.limiter._clock = clock
    for _ in range(5):
        assert _login(client, "wang", "guess guess guess").status_code == 401
    blocked = _login(client, "wang", PASSWORD)  # even the right password: no checking while blocked
    assert blocked.status_code == 429
    assert blocked.headers["retry-after"] == "300"
    assert "too many failed logins" in blocked.json()["detail"]
    assert _login(client, "WANG", PASSWORD).status_code == 429  # the same name, however spelled
    assert _login(client, "li", PASSWORD).status_code == 200  # other users are not locked out
    clock.t += 120
    assert _login(client, "wang", PASSWORD).headers["retry-after"] == "180"
    clock.t += 180
    assert _login(client, "wang", PASSWORD).status_code == 200


def test_successful_login_resets_the_count(client, reg, app):
    ensure_user(reg, "wang", Role.duty)
    app.state.auth.limiter._clock = Clock(1000.0)
    for _ in range(4):
        assert _login(client, "wang", "guess guess guess").status_code == 401
    assert _login(client, "wang", PASSWORD).status_code == 200
    for _ in range(4):
        assert _login(client, "wang", "guess guess guess").status_code == 401
    assert _login(client, "wang", PASSWORD).status_code == 200


def test_disabled_user_cannot_log_in_and_their_tokens_are_refused(client, reg):
    ensure_user(reg, "wang", Role.duty)
    token = _login(client, "wang").json()["access_token"]
    assert client.get(ME, headers=bearer(token)).status_code == 200
    UserRepo(reg.engine).set_active("wang", False)
    resp = client.get(ME, headers=bearer(token))
    assert resp.status_code == 401 and "disabled" in resp.json()["detail"]
    assert resp.headers["www-authenticate"].startswith("Bearer error=\"invalid_token\"")
    assert _login(client, "wang").status_code == 401
    assert _login(client, "wang").json() == {"detail": "invalid username or password"}


def test_user_lookups_are_cached_briefly(auth_settings, reg):
    settings = auth_settings.model_copy(update={"auth_user_cache_s": 60})
    token = token_for(settings, reg, "wang", Role.duty)
    app = create_app(settings, registry=reg, store=open_store(settings.tsdb_url), stream=False)
    with TestClient(app, headers=bearer(token)) as c:
        assert c.get(ME).status_code == 200
        UserRepo(reg.engine).set_active("wang", False)
        assert c.get(ME).status_code == 200  # within auth_user_cache_s of the last lookup
        app.state.auth.forget("wang")
        assert c.get(ME).status_code == 401


def test_expired_and_forged_tokens_are_401(client, auth_settings, reg):
    ensure_user(reg, "wang", Role.duty)
    secret = load_secret(auth_settings)
    expired, _ = TokenSigner(secret, clock=lambda: time.time() - 7200).issue("wang", "duty", 3600)
    resp = client.get(ME, headers=bearer(expired))
    assert resp.status_code == 401 and resp.json() == {"detail": "token expired: log in again"}
    assert resp.headers["www-authenticate"] == 'Bearer error="invalid_token", error_description="token expired"'
    forged, _ = TokenSigner(b"not the server's secret at all!!").issue("wang", "admin", 3600)
    ghost, _ = TokenSigner(secret).issue("ghost", "admin", 3600)  # genuine signature, no such user
    for bad, detail in [(forged, "invalid token"), ("garbage", "invalid token"),
                        (ghost, "token no longer valid: the account is disabled or gone")]:
        resp = client.get(ME, headers=bearer(bad))
        assert resp.status_code == 401 and resp.json() == {"detail": detail}
        assert resp.headers["www-authenticate"].startswith("Bearer ")
    assert client.get(ME, headers={"Authorization": f"Basic {forged}"}).status_code == 401


def test_every_route_but_the_public_ones_needs_a_token(client, auth_settings, reg):
    """Walks the app's routes, so an endpoint added later is covered without touching this test."""
    routes = route_table(client.app.routes)
    assert len(routes) >= len(EXPECTED_ROLES) + 2
    forged, _ = TokenSigner(b"not the server's secret at all!!").issue("admin", "admin", 3600)
    checked = 0
    for info in routes:
        if info.path in PUBLIC:
            continue
        assert info.roles is not None, f"{info.path} declares no roles: add Depends(api.auth.require(...))"
        for method in info.methods - {"HEAD", "OPTIONS"}:
            for headers in ({}, bearer(forged), {"Authorization": "Bearer"}):
                resp = _call(client, method, info.path, headers=headers)
                assert resp.status_code == 401, (method, info.path, headers, resp.text)
                assert resp.headers["www-authenticate"].startswith("Bearer"), (method, info.path)
            checked += 1
    assert checked >= len(EXPECTED_ROLES)
    public = {info.path for info in routes if info.roles is None}
    assert public <= PUBLIC, f"routes without a role check: {public - PUBLIC}"
    assert client.get("/healthz").status_code == 200 and client.get("/openapi.json").status_code == 200
    assert client.get("/docs").status_code == 200


def test_every_route_has_an_expected_role_set(client):
    declared = {(m, info.path): info.roles for info in route_table(client.app.routes) if info.path not in PUBLIC
                for m in info.methods - {"HEAD", "OPTIONS"}}
    assert set(declared) == set(EXPECTED_ROLES), "a route was added or removed: put its roles in EXPECTED_ROLES"
    for key, roles in declared.items():
        assert roles == EXPECTED_ROLES[key], key


def test_every_write_route_has_a_scope_decision(client):
    writes = {(m, info.path) for info in route_table(client.app.routes) if info.path not in PUBLIC
              for m in info.methods - {"GET", "HEAD", "OPTIONS"}}
    assert writes == set(WRITE_SCOPES), ("a write route was added or removed: decide whose objects a town "
                                         f"supervisor or chief may change and put it in WRITE_SCOPES: "
                                         f"{sorted(writes ^ set(WRITE_SCOPES))}")
    town_roles = {Role.supervisor, Role.chief}
    for key, scope in WRITE_SCOPES.items():
        if scope == "district":  # no role that can carry a town may call it
            assert not EXPECTED_ROLES[key] & town_roles, key


def test_supervisor_cannot_change_rules_or_another_towns_roster(client, reg, auth_settings):
    from core.rules import default_rules

    reg.upsert_rules(default_rules())
    rule = reg.list_rules()[0]
    sup = bearer(token_for(auth_settings, reg, "sup.a", Role.supervisor, town="通济街道"))
    district_sup = bearer(token_for(auth_settings, reg, "sup.all", Role.supervisor))
    admin = bearer(token_for(auth_settings, reg, "admin", Role.admin))
    for headers in (sup, district_sup):
        resp = client.patch(f"/api/v1/rules/{rule.id}", json={"enabled": False}, headers=headers)
        assert resp.status_code == 403, resp.text
    assert reg.get_rule(rule.id).enabled == rule.enabled
    assert client.patch(f"/api/v1/rules/{rule.id}", json={"enabled": not rule.enabled},
                        headers=admin).status_code == 200

    def shift(town):
        return {"person": "值班员", "town": town, "starts_at": "2026-07-01T08:00:00+08:00",
                "ends_at": "2026-07-02T08:00:00+08:00"}

    other = client.post("/api/v1/duty-roster", json=shift("蓝村街道"), headers=admin).json()["id"]
    whole = client.post("/api/v1/duty-roster", json=shift(None), headers=admin).json()["id"]
    before = [s.id for s in reg.list_shifts()]
    for body in (shift("蓝村街道"), shift(None), {**shift("通济街道"), "fallback": True}):
        resp = client.post("/api/v1/duty-roster", json=body, headers=sup)
        assert resp.status_code == 403 and "通济街道" in resp.json()["detail"], resp.text
    for sid in (other, whole):
        assert client.delete(f"/api/v1/duty-roster/{sid}", headers=sup).status_code == 403
    assert [s.id for s in reg.list_shifts()] == before  # nothing changed
    own = client.post("/api/v1/duty-roster", json=shift("通济街道"), headers=sup)
    assert own.status_code == 201, own.text
    assert client.delete(f"/api/v1/duty-roster/{own.json()['id']}", headers=sup).status_code == 204
    assert client.delete(f"/api/v1/duty-roster/{other}", headers=district_sup).status_code == 204


def test_roles_are_enforced_on_every_route(client, tokens):
    for (method, path), allowed in EXPECTED_ROLES.items():
        for role, token in tokens.items():
            resp = _call(client, method, path, headers=bearer(token))
            if role in allowed:  # past the role check: whatever the route makes of the dummy request
                assert resp.status_code not in (401, 403), (role, method, path, resp.text)
            else:
                assert resp.status_code == 403, (role, method, path, resp.text)
                needed = ", ".join(r.value for r in Role if r in allowed)
                assert resp.json() == {"detail": f"forbidden: the {role.value} role may not do this; it needs "
                                                 f"one of: {needed}"}


def test_viewer_gets_403_on_every_write(client, tokens):
    writes = [(m, info.path) for info in route_table(client.app.routes) if info.path not in PUBLIC
              for m in info.methods if m not in ("GET", "HEAD", "OPTIONS")
              and Role.viewer not in EXPECTED_ROLES[(m, info.path)]]  # changing one's own password is for all
    assert len(writes) >= 7
    for method, path in writes:
        resp = _call(client, method, path, headers=bearer(tokens[Role.viewer]), json={})
        assert resp.status_code == 403, (method, path, resp.text)


def test_ack_records_the_user(client, reg, tokens):
    alert = reg.insert_alert(Alert(station_id="RS9001", kind="reservoir", rule="reservoir_level",
                                   metric="water_level_m", severity="red", state="active", started_at=utcnow(),
                                   updated_at=utcnow(), value=56.0, threshold=55.5, message="high"))
    url = f"/api/v1/alerts/{alert.id}/ack"
    assert client.post(url, headers=bearer(tokens[Role.chief])).status_code == 403
    assert client.post(url, headers=bearer(tokens[Role.viewer])).status_code == 403
    assert reg.get_alert(alert.id).acknowledged_at is None
    resp = client.post(url, headers=bearer(tokens[Role.duty]))
    assert resp.status_code == 200 and resp.json()["acknowledged_by"] == "duty"
    assert resp.json()["state"] == "acknowledged"


def test_stream_takes_the_token_from_the_query_too(client, tokens):
    stream = "/api/v1/alerts/stream"
    assert client.get(stream).status_code == 401
    assert client.get(stream, params={"access_token": "forged"}).status_code == 401
    # Past authentication: the stream is disabled in this app, so 503.
    assert client.get(stream, params={"access_token": tokens[Role.viewer]}).status_code == 503
    assert client.get(stream, headers=bearer(tokens[Role.chief])).status_code == 503
    # Only the stream: elsewhere a token in the URL is not accepted.
    assert client.get("/api/v1/stations", params={"access_token": tokens[Role.admin]}).status_code == 401


def test_stream_ends_when_the_token_expires_or_the_account_is_disabled(auth_settings, monkeypatch):
    from api.routes import stream as stream_route
    from api.stream import AlertStream

    stream = AlertStream(auth_settings)

    async def scenario() -> None:
        stream._loop = asyncio.get_running_loop()
        gen = stream_route._events(stream, None, expires_at=time.time() + 0.3)
        assert await gen.__anext__() == ": connected\n\n"
        assert await asyncio.wait_for(gen.__anext__(), 5) == 'event: expired\ndata: {"reason": "token expired"}\n\n'
        with pytest.raises(StopAsyncIteration):
            await gen.__anext__()
        assert stream.client_count == 0

        monkeypatch.setattr(stream_route, "ACCOUNT_CHECK_S", 0.0)
        gen = stream_route._events(stream, None, expires_at=time.time() + 3600, still_allowed=lambda: False)
        assert await gen.__anext__() == ": connected\n\n"
        assert await asyncio.wait_for(gen.__anext__(), 5) == \
            'event: expired\ndata: {"reason": "account disabled"}\n\n'
        await gen.aclose()
        assert stream.client_count == 0

    asyncio.run(scenario())


def test_openapi_shows_the_bearer_scheme_and_roles(client):
    spec = client.get("/openapi.json").json()
    schemes = spec["components"]["securitySchemes"]
    assert schemes["bearer"] == {**schemes["bearer"], "type": "http", "scheme": "bearer"}
    assert schemes["access_token_query"]["in"] == "query"
    paths = spec["paths"]
    assert "security" not in paths[LOGIN]["post"] and "security" not in paths["/healthz"]["get"]
    ack = paths["/api/v1/alerts/{alert_id}/ack"]["post"]
    assert ack["security"] == [{"bearer": []}]
    assert ack["x-roles"] == ["admin", "supervisor", "duty"]
    assert "**Roles:** admin, supervisor, duty" in ack["description"]
    assert {"401", "403"} <= set(ack["responses"])
    assert paths["/api/v1/alerts/stream"]["get"]["security"] == [{"bearer": []}, {"access_token_query": []}]
    assert "429" in paths[LOGIN]["post"]["responses"]
    for path, ops in paths.items():
        for method, op in ops.items():
            if path not in PUBLIC:
                assert op.get("security") and op.get("x-roles"), (method, path)


def test_password_hash_never_leaves_the_api(client, tokens):
    me = client.get(ME, headers=bearer(tokens[Role.admin]))
    assert "password" not in me.text and "scrypt$" not in me.text
    schemas = client.get("/openapi.json").json()["components"]["schemas"]
    assert not any("password_hash" in s.get("properties", {}) for s in schemas.values())


def test_user_repo(reg):
    users = UserRepo(reg.engine)
    added = users.add(new_user("wang", PASSWORD, Role.duty, display_name="Wang Li"))
    assert added.id is not None and users.get("WANG") == added
    with pytest.raises(DuplicateUser):
        users.add(new_user("wang", PASSWORD, Role.viewer))
    users.add(new_user("chief1", PASSWORD, Role.chief, chief_id="RC1"))
    with pytest.raises(DuplicateUser):  # one login per river chief
        users.add(new_user("chief2", PASSWORD, Role.chief, chief_id="RC1"))
    assert [u.username for u in users.list()] == ["wang", "chief1"]
    assert [u.username for u in users.list(role=Role.chief)] == ["chief1"]
    assert users.set_active("wang", False).active is False
    assert [u.username for u in users.list(active=True)] == ["chief1"]
    assert isinstance(users.get("wang"), User) and users.get("nobody") is None
    assert users.count() == 2


# -- the commands --------------------------------------------------------------
def sw(args, data_dir, stdin: str | None = None):
    env = {k: v for k, v in os.environ.items() if not k.startswith("SMARTWATER_")}
    env["SMARTWATER_DATA_DIR"] = str(data_dir)
    return subprocess.run([SMARTWATER, *args], capture_output=True, text=True, env=env, input=stdin, timeout=120)


def test_cli_users_and_tokens(tmp_path):
    res = sw(["user", "add", "admin", "--role", "admin", "--password-stdin"], tmp_path, "too short\n")
    assert res.returncode == 2 and "at least 10 characters" in res.stderr
    res = sw(["user", "add", "admin", "--role", "admin", "--password-stdin"], tmp_path, PASSWORD + "\n")
    assert res.returncode == 0, res.stderr
    assert "user 'admin' added: admin" in res.stdout
    res = sw(["user", "add", "Admin", "--role", "viewer", "--password-stdin"], tmp_path, PASSWORD + "\n")
    assert res.returncode == 2 and "a user named 'admin' exists" in res.stderr
    res = sw(["user", "add", "li", "--role", "supervisor", "--town", "通济街道", "--display-name", "Li Na",
              "--password-stdin"], tmp_path, PASSWORD + "\n")
    assert res.returncode == 0, res.stderr
    res = sw(["user", "add", "zhao", "--role", "duty", "--town", "通济街道", "--password-stdin"], tmp_path,
             PASSWORD + "\n")
    assert res.returncode == 2 and "town applies to supervisors and chiefs only" in res.stderr
    res = sw(["user", "add", "zhao", "--role", "root", "--password-stdin"], tmp_path, PASSWORD + "\n")
    assert res.returncode == 2
    res = sw(["user", "add", "zhao", "--role", "duty"], tmp_path, "")  # no terminal to ask on
    assert res.returncode == 2 and "--password-stdin" in res.stderr

    listed = json.loads(sw(["user", "list", "--json"], tmp_path).stdout)
    assert [(u["username"], u["role"], u["town"], u["active"]) for u in listed] == [
        ("admin", "admin", None, True), ("li", "supervisor", "通济街道", True)]
    assert "password" not in json.dumps(listed) and "scrypt" not in json.dumps(listed)
    table = sw(["user", "list"], tmp_path)
    assert table.returncode == 0 and "Li Na" in table.stdout

    res = sw(["token", "li", "--ttl", "600"], tmp_path)
    assert res.returncode == 0, res.stderr
    token = res.stdout.strip()
    assert re.fullmatch(r"[\w-]+\.[\w-]+\.[\w-]+", token) and "expires" in res.stderr
    settings = Settings(_env_file=None, data_dir=tmp_path, auth_user_cache_s=0)
    registry = open_registry(settings.db_url)
    store = open_store(settings.tsdb_url)
    try:
        with TestClient(create_app(settings, registry=registry, store=store, stream=False)) as c:
            me = c.get(ME, headers=bearer(token))
            assert me.status_code == 200 and me.json()["role"] == "supervisor"
            assert c.post(LOGIN, json={"username": "li", "password": PASSWORD}).status_code == 200
            res = sw(["user", "disable", "li"], tmp_path)
            assert res.returncode == 0 and "disabled" in res.stdout
            assert c.get(ME, headers=bearer(token)).status_code == 401
            assert c.post(LOGIN, json={"username": "li", "password": PASSWORD}).status_code == 401
    finally:
        store.close()
        registry.close()
    res = sw(["token", "li"], tmp_path)
    assert res.returncode == 2 and "disabled" in res.stderr and not res.stdout
    assert sw(["token", "nobody"], tmp_path).returncode == 2
    assert sw(["user", "disable", "nobody"], tmp_path).returncode == 2
    assert sw(["token", "admin", "--ttl", "5"], tmp_path).returncode == 2  # at least 60 s
    assert all("Traceback" not in sw(a, tmp_path).stderr for a in (["token", "nobody"], ["user", "list"]))


# -- the login limiter against spoofed addresses and lock-outs ----------------------------------------------
def test_limiter_strangers_cannot_lock_a_user_out_of_a_known_address():
    clock = Clock(0.0)
    lim = LoginLimiter(max_failures=5, window_s=300, ip_factor=10, clock=clock)
    _, stamp = lim.attempt(lim.keys("admin", "10.0.0.9"))
    lim.success(lim.keys("admin", "10.0.0.9"), stamp)  # the admin works from 10.0.0.9
    for i in range(60):  # a stranger at the same address (one NAT) tries random names
        lim.attempt(lim.keys(f"random{i}", "10.0.0.9"))
    assert lim.attempt(lim.keys("someone.new", "10.0.0.9"))[0] > 0  # the address is throttled for strangers
    assert lim.attempt(lim.keys("admin", "10.0.0.9"))[0] == 0  # but not for the admin there
    # Many addresses guessing one account back it off everywhere, except where its user is known.
    for i in range(60):
        lim.attempt(lim.keys("admin", f"192.0.2.{i}"))
    assert lim.attempt(lim.keys("admin", "198.51.100.1"))[0] > 0
    wait, stamp = lim.attempt(lim.keys("admin", "10.0.0.9"))
    assert wait == 0
    lim.success(lim.keys("admin", "10.0.0.9"), stamp)  # the right password from a known address clears it
    assert lim.attempt(lim.keys("admin", "198.51.100.1"))[0] == 0


def _served(auth_settings, reg, **update):
    from api import ApiServer

    settings = auth_settings.model_copy(update=update)
    return ApiServer(settings, registry=reg, store=open_store(settings.tsdb_url), host="127.0.0.1", port=0,
                     stream=False)


def test_spoofed_forwarded_for_does_not_escape_the_limiter(auth_settings, reg, caplog):
    import httpx

    ensure_user(reg, "wang", Role.duty)
    with _served(auth_settings, reg) as server, httpx.Client(base_url=server.url, timeout=10) as http:
        codes = [http.post(LOGIN, json={"username": "wang", "password": "guess guess guess"},
                           headers={"X-Forwarded-For": f"203.0.113.{i}"}).status_code for i in range(7)]
    assert codes[:5] == [401] * 5 and codes[5:] == [429, 429], codes


def test_forwarded_for_is_taken_from_a_configured_proxy_and_the_peer_logged(auth_settings, reg, caplog):
    import logging

    import httpx

    ensure_user(reg, "wang", Role.duty)
    with _served(auth_settings, reg, api_trusted_proxies=["127.0.0.1"]) as server, \
            httpx.Client(base_url=server.url, timeout=10) as http, caplog.at_level(logging.INFO, "api.auth"):
        codes = [http.post(LOGIN, json={"username": "wang", "password": "guess guess guess"},
                           headers={"X-Forwarded-For": f"spoofed, 203.0.113.{i}"}).status_code for i in range(7)]
        assert codes == [401] * 7  # seven clients behind the proxy, one failure each
        assert http.post(LOGIN, json={"username": "wang", "password": PASSWORD},
                         headers={"X-Forwarded-For": "203.0.113.50"}).status_code == 200
    failed = [r for r in caplog.records if r.getMessage() == "login failed"]
    assert failed and failed[0].fields["client"] == "203.0.113.0" and failed[0].fields["peer"] == "127.0.0.1"


# -- account life cycle: password change and reset, enable, revoke ---------------------------------------------
NEW_PASSWORD = "a brand new passphrase 42"


def test_self_service_password_change_revokes_old_tokens(client, reg):
    ensure_user(reg, "wang", Role.duty)
    phone = _login(client, "wang").json()["access_token"]
    laptop = _login(client, "wang").json()["access_token"]
    url = "/api/v1/auth/password"
    wrong = client.post(url, json={"current_password": "not it at all", "new_password": NEW_PASSWORD},
                        headers=bearer(laptop))
    assert wrong.status_code == 403
    weak = client.post(url, json={"current_password": PASSWORD, "new_password": "short"}, headers=bearer(laptop))
    assert weak.status_code == 422 and "at least 10" in weak.json()["detail"]
    assert client.get(ME, headers=bearer(phone)).status_code == 200  # nothing changed yet
    ok = client.post(url, json={"current_password": PASSWORD, "new_password": NEW_PASSWORD}, headers=bearer(laptop))
    assert ok.status_code == 200, ok.text
    for old in (phone, laptop):
        resp = client.get(ME, headers=bearer(old))
        assert resp.status_code == 401 and resp.json() == {"detail": "token revoked: log in again"}
    assert client.get(ME, headers=bearer(ok.json()["access_token"])).status_code == 200
    assert _login(client, "wang").status_code == 401
    assert _login(client, "wang", NEW_PASSWORD).status_code == 200


def test_admin_resets_disables_enables_and_revokes(client, reg, tokens):
    admin = bearer(tokens[Role.admin])
    viewer_token = tokens[Role.viewer]
    assert client.post("/api/v1/users/viewer/revoke-tokens", headers=bearer(tokens[Role.supervisor])).status_code \
        == 403
    assert client.post("/api/v1/users/viewer/revoke-tokens", headers=admin).status_code == 200
    assert client.get(ME, headers=bearer(viewer_token)).status_code == 401
    assert _login(client, "viewer").status_code == 200  # revoking tokens does not lock the account
    reset = client.put("/api/v1/users/viewer/password", json={"new_password": NEW_PASSWORD}, headers=admin)
    assert reset.status_code == 200 and reset.json()["username"] == "viewer"
    assert _login(client, "viewer").status_code == 401 and _login(client, "viewer", NEW_PASSWORD).status_code == 200
    assert client.post("/api/v1/users/viewer/disable", headers=admin).json()["active"] is False
    assert _login(client, "viewer", NEW_PASSWORD).status_code == 401
    assert client.post("/api/v1/users/viewer/enable", headers=admin).json()["active"] is True
    assert _login(client, "viewer", NEW_PASSWORD).status_code == 200
    assert client.post("/api/v1/users/nobody/enable", headers=admin).status_code == 404
    assert client.put("/api/v1/users/viewer/password", json={"new_password": "viewer"}, headers=admin).status_code \
        == 422


def test_old_token_refused_after_a_cli_password_change_within_the_cache_time(tmp_path):
    """The docs: another process refuses a revoked token at the latest SMARTWATER_AUTH_USER_CACHE_S later."""
    from core.mqtt import wait_for

    cache_s = 1.0
    settings = Settings(_env_file=None, data_dir=tmp_path, auth_user_cache_s=cache_s)
    assert sw(["user", "add", "li", "--role", "duty", "--password-stdin"], tmp_path, PASSWORD + "\n").returncode == 0
    registry = open_registry(settings.db_url)
    store = open_store(settings.tsdb_url)
    try:
        with TestClient(create_app(settings, registry=registry, store=store, stream=False)) as c:
            token = c.post(LOGIN, json={"username": "li", "password": PASSWORD}).json()["access_token"]
            assert c.get(ME, headers=bearer(token)).status_code == 200  # cached now
            res = sw(["user", "password", "li", "--password-stdin"], tmp_path, NEW_PASSWORD + "\n")
            assert res.returncode == 0 and "revoked" in res.stdout, res.stderr
            changed = time.monotonic()
            assert wait_for(lambda: c.get(ME, headers=bearer(token)).status_code == 401, cache_s + 2, 0.05)
            assert time.monotonic() - changed <= cache_s + 1
            assert c.post(LOGIN, json={"username": "li", "password": NEW_PASSWORD}).status_code == 200
            fresh = c.post(LOGIN, json={"username": "li", "password": NEW_PASSWORD}).json()["access_token"]
            assert sw(["user", "revoke", "li"], tmp_path).returncode == 0
            assert wait_for(lambda: c.get(ME, headers=bearer(fresh)).status_code == 401, cache_s + 2, 0.05)
            assert sw(["user", "disable", "li"], tmp_path).returncode == 0
            res = sw(["user", "enable", "li"], tmp_path)
            assert res.returncode == 0 and "enabled" in res.stdout
            assert c.post(LOGIN, json={"username": "li", "password": NEW_PASSWORD}).status_code == 200
    finally:
        store.close()
        registry.close()
    assert sw(["user", "password", "nobody", "--password-stdin"], tmp_path, NEW_PASSWORD + "\n").returncode == 2
    assert sw(["user", "enable", "nobody"], tmp_path).returncode == 2
