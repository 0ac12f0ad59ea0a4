"""Who may use the API: users and roles, password hashing, signed bearer tokens, the login rate limit.

Nothing here knows about HTTP; ``api.auth`` turns it into FastAPI dependencies and the CLI uses it directly.

* Passwords: scrypt (stdlib ``hashlib.scrypt``, n=2**14, r=8, p=1, 16-byte random salt), stored as the
  self-describing ``scrypt$n$r$p$salt_hex$hash_hex``; verified in constant time.
* Tokens: stateless, JWT-compatible compact form (``header.payload.signature``, HS256) over
  ``{sub, role, iat, exp, jti}``. The header is fixed and compared byte for byte, so no ``alg`` trickery applies.
  The key comes from ``SMARTWATER_AUTH_SECRET`` or, when that is unset, from ``data_dir/auth_secret``, generated
  once with 0600 permissions. Rotating the secret logs everybody out.
"""

from __future__ import annotations

import base64
import enum
import hashlib
import hmac
import json
import logging
import os
import re
import secrets
import threading
import time
from collections import deque
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable, Hashable, Iterable

from pydantic import BaseModel, ConfigDict, Field, model_validator

from core.datafiles import private_dir
from core.secrets_check import key_problem
from core.settings import Settings

UTC = timezone.utc
log = logging.getLogger("core.auth")


# -- users and roles ---------------------------------------------------------
class Role(str, enum.Enum):
    """From most to least powerful. ``chief``: a river chief (patrols, issues); ``viewer``: read-only."""

    admin = "admin"
    supervisor = "supervisor"
    duty = "duty"
    chief = "chief"
    viewer = "viewer"


ROLES: tuple[Role, ...] = tuple(Role)
# The roles that may carry a town: a town's supervisor or river chief. None means the whole district.
TOWN_ROLES = frozenset({Role.supervisor, Role.chief})

USERNAME_RE = r"^[a-z][a-z0-9_.-]{1,63}$"
USERNAME_HELP = "2 to 64 lowercase letters, digits, '.', '_' or '-', starting with a letter"
MIN_PASSWORD_LEN = 10
MAX_PASSWORD_LEN = 1024  # scrypt's cost does not depend on it, but nobody needs more and it bounds the work


class User(BaseModel):
    """An API user. ``password_hash`` never leaves the server (the API's response models leave it out)."""

    model_config = ConfigDict(extra="forbid")

    id: int | None = None
    username: str = Field(pattern=USERNAME_RE)
    display_name: str = Field(min_length=1, max_length=100)
    role: Role
    town: str | None = Field(default=None, min_length=1, max_length=100,
                             description="supervisors and chiefs: their town; None: the whole district")
    chief_id: str | None = Field(default=None, min_length=1, max_length=64,
                                 description="the river-chief record (river_chiefs.id) a chief user stands for")
    password_hash: str = Field(repr=False, min_length=1, max_length=255)
    active: bool = True
    created_at: datetime
    token_generation: int = Field(default=0, ge=0, description="tokens of an older generation are refused")

    @model_validator(mode="after")
    def _town_only_where_it_means_something(self) -> "User":
        if self.town is not None and self.role not in TOWN_ROLES:
            raise ValueError(f"town applies to supervisors and chiefs only, not to the {self.role.value} role")
        if self.chief_id is not None and self.role is not Role.chief:
            raise ValueError("chief_id applies to the chief role only")
        return self


class WeakPassword(ValueError):
    pass


def normalise_username(name: str) -> str:
    return name.strip().lower()


def check_password(password: str, username: str | None = None) -> None:
    """Refuse passwords that are too short, too long, or the user name itself (WeakPassword says why)."""
    if len(password) < MIN_PASSWORD_LEN:
        raise WeakPassword(f"a password needs at least {MIN_PASSWORD_LEN} characters")
    if len(password) > MAX_PASSWORD_LEN:
        raise WeakPassword(f"a password may have at most {MAX_PASSWORD_LEN} characters")
    if not password.strip():
        raise WeakPassword("a password cannot be only spaces")
    if username is not None and password.strip().lower() == username.lower():
        raise WeakPassword("a password cannot be the user name")
    if len(set(password)) < 3:
        raise WeakPassword("a password needs more than two different characters")


# -- password hashing ----------------------------------------------------------
SCRYPT_N, SCRYPT_R, SCRYPT_P = 2**14, 8, 1
_SALT_BYTES, _HASH_BYTES = 16, 32
# Stored parameters are checked against these bounds before use: a damaged or planted hash must not make one login
# burn gigabytes or minutes (n=2**20, r=8 needs 1 GiB).
_MAX_N, _MAX_R, _MAX_P = 2**20, 32, 16


def _scrypt(password: str, salt: bytes, n: int, r: int, p: int) -> bytes:
    return hashlib.scrypt(password.encode("utf-8"), salt=salt, n=n, r=r, p=p, dklen=_HASH_BYTES,
                          maxmem=128 * r * n * p + 2 * 1024 * 1024 * p + 1024 * 1024)


def hash_password(password: str, *, n: int = SCRYPT_N, r: int = SCRYPT_R, p: int = SCRYPT_P) -> str:
    """``scrypt$n$r$p$salt$hash`` with a fresh 16-byte salt (hex)."""
    salt = os.urandom(_SALT_BYTES)
    return f"scrypt${n}${r}${p}${salt.hex()}${_scrypt(password, salt, n, r, p).hex()}"


def _parse_hash(encoded: str) -> tuple[int, int, int, bytes, bytes] | None:
    parts = encoded.split("$")
    if len(parts) != 6 or parts[0] != "scrypt":
        return None
    try:
        n, r, p = int(parts[1]), int(parts[2]), int(parts[3])
        salt, digest = bytes.fromhex(parts[4]), bytes.fromhex(parts[5])
    except ValueError:
        return None
    if not (1 < n <= _MAX_N and n & (n - 1) == 0 and 1 <= r <= _MAX_R and 1 <= p <= _MAX_P and len(salt) >= 8
            and 16 <= len(digest) <= 64):
        return None
    return n, r, p, salt, digest


def verify_password(password: str, encoded: str) -> bool:
    """True when ``password`` matches; False for a wrong password and for a malformed hash (never raises)."""
    parsed = _parse_hash(encoded)
    if parsed is None or len(password) > MAX_PASSWORD_LEN:
        return False
    n, r, p, salt, digest = parsed
    try:
        candidate = hashlib.scrypt(password.encode("utf-8"), salt=salt, n=n, r=r, p=p, dklen=len(digest),
                                   maxmem=128 * r * n * p + 2 * 1024 * 1024 * p + 1024 * 1024)
    except (ValueError, MemoryError):
        return False
    return hmac.compare_digest(candidate, digest)


def needs_rehash(encoded: str) -> bool:
    """The hash was made with other parameters than today's (rehash it at the next successful login)."""
    parsed = _parse_hash(encoded)
    return parsed is None or parsed[:3] != (SCRYPT_N, SCRYPT_R, SCRYPT_P) or len(parsed[4]) != _HASH_BYTES


_dummy_hash: str | None = None


def burn_password_check(password: str) -> None:
    """Spend the time a real check takes, for an unknown user: response times must not reveal valid names."""
    global _dummy_hash
    if _dummy_hash is None:
        _dummy_hash = hash_password(secrets.token_urlsafe(16))
    verify_password(password, _dummy_hash)


# -- the signing secret ------------------------------------------------------
SECRET_FILE = "auth_secret"


def load_secret(settings: Settings) -> bytes:
    """SMARTWATER_AUTH_SECRET, or the secret in ``data_dir/auth_secret`` (created once, mode 0600).

    Concurrent first starts (the API and ``smartwater token``) agree on one secret: the file is written under a
    temporary name and hard-linked into place, which fails when another process got there first.
    """
    if settings.auth_secret is not None:
        return settings.auth_secret.get_secret_value().strip().encode("utf-8")
    path = Path(settings.data_dir) / SECRET_FILE
    try:
        return _read_secret(path)
    except FileNotFoundError:
        pass
    private_dir(path.parent)
    tmp = path.with_name(f".{SECRET_FILE}.{os.getpid()}.{secrets.token_hex(4)}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "w", encoding="ascii") as f:
            f.write(secrets.token_urlsafe(48) + "\n")
            f.flush()
            os.fsync(f.fileno())
        try:
            os.link(tmp, path)
            log.info("generated the API token secret", extra={"fields": {"path": str(path)}})
        except FileExistsError:
            pass  # another process won the race: use its secret
    finally:
        tmp.unlink(missing_ok=True)
    return _read_secret(path)


def _read_secret(path: Path) -> bytes:
    secret = path.read_text(encoding="ascii").strip()
    problem = key_problem(str(path), secret)
    if problem is not None:  # someone wrote a placeholder or a weak key into it
        raise ValueError(f"{problem}; or delete the file to have a new one made")
    if os.name == "posix" and path.stat().st_mode & 0o077:
        log.warning("the API token secret is readable by other users; chmod 600 it",
                    extra={"fields": {"path": str(path)}})
    return secret.encode("ascii")


# -- tokens ------------------------------------------------------------------
class InvalidToken(Exception):
    """``reason`` is fit for a WWW-Authenticate error_description: "expired", "bad signature", ..."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True, slots=True)
class TokenClaims:
    sub: str  # the user name
    role: str  # the role when the token was issued; the API authorizes by the user's role now
    iat: int
    exp: int
    jti: str
    gen: int = 0  # the user's token generation when issued (tokens from before generations existed: 0)

    @property
    def expires_at(self) -> datetime:
        return datetime.fromtimestamp(self.exp, UTC)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    if not re.fullmatch(r"[A-Za-z0-9_-]*", text):
        raise ValueError("not base64url")
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


_HEADER = _b64(json.dumps({"alg": "HS256", "typ": "JWT"}, separators=(",", ":")).encode())
MAX_TOKEN_LEN = 2048
MAX_TIMESTAMP = 253_402_300_799  # 9999-12-31T23:59:59Z
CLOCK_SKEW_S = 60  # an iat this far in the future is still accepted (clocks of API hosts differ a little)


class TokenSigner:
    """Issues and checks the API's bearer tokens. The HMAC key is derived from the secret, so the same secret
    could key something else without the two ever being interchangeable."""

    def __init__(self, secret: bytes, clock: Callable[[], float] = time.time) -> None:
        if len(secret) < 16:
            raise ValueError("the token secret is too short")
        self._key = hmac.new(secret, b"smartwater api token v1", hashlib.sha256).digest()
        self._clock = clock

    def _sign(self, signing_input: str) -> str:
        return _b64(hmac.new(self._key, signing_input.encode("ascii"), hashlib.sha256).digest())

    def issue(self, username: str, role: Role | str, ttl_s: float, gen: int = 0) -> tuple[str, TokenClaims]:
        now = int(self._clock())
        claims = TokenClaims(sub=username, role=Role(role).value, iat=now, exp=now + max(1, int(ttl_s)),
                             jti=secrets.token_hex(16), gen=gen)
        fields = {"sub": claims.sub, "role": claims.role, "iat": claims.iat, "exp": claims.exp, "jti": claims.jti}
        if gen:
            fields["gen"] = gen
        payload = _b64(json.dumps(fields, separators=(",", ":")).encode())
        signing_input = f"{_HEADER}.{payload}"
        return f"{signing_input}.{self._sign(signing_input)}", claims

    def verify(self, token: str) -> TokenClaims:
        """The claims of a genuine, unexpired token; InvalidToken otherwise."""
        if not token or len(token) > MAX_TOKEN_LEN:
            raise InvalidToken("malformed token")
        parts = token.split(".")
        if len(parts) != 3:
            raise InvalidToken("malformed token")
        header, payload, signature = parts
        if not hmac.compare_digest(header.encode("ascii", "replace"), _HEADER.encode("ascii")):
            raise InvalidToken("unsupported token type")
        expected = self._sign(f"{header}.{payload}") if payload.isascii() else ""
        if not hmac.compare_digest(signature.encode("ascii", "replace"), expected.encode("ascii")):
            raise InvalidToken("bad signature")
        try:
            data = json.loads(_unb64(payload))
            claims = TokenClaims(sub=data["sub"], role=data["role"], iat=data["iat"], exp=data["exp"], jti=data["jti"],
                                 gen=data.get("gen", 0))
        except (ValueError, KeyError, TypeError) as exc:  # signed by us, so only a bug gets here
            raise InvalidToken("malformed token") from exc
        if not (isinstance(claims.sub, str) and isinstance(claims.iat, int) and isinstance(claims.exp, int)
                and not isinstance(claims.iat, bool) and not isinstance(claims.exp, bool)
                and isinstance(claims.gen, int) and not isinstance(claims.gen, bool)):
            raise InvalidToken("malformed token")
        # Times a datetime can hold: an absurd exp (a year beyond 9999) would otherwise fail later as a 500.
        if not (0 <= claims.iat <= MAX_TIMESTAMP and 0 <= claims.exp <= MAX_TIMESTAMP):
            raise InvalidToken("malformed token")
        now = self._clock()
        if claims.exp <= now:
            raise InvalidToken("token expired")
        if claims.iat > now + CLOCK_SKEW_S:
            raise InvalidToken("token issued in the future")
        return claims


# -- login rate limit --------------------------------------------------------
class LoginLimiter:
    """Failed logins per key in a sliding window, checked and counted atomically.

    Keys: (user name, client address) — ``max_failures`` per window; the client address alone (one address guessing
    many names) and the user name alone (many addresses guessing one account) — ``ip_factor`` times as many each.
    The last two do not apply to a user logging in from an address they logged in from successfully before
    (within ``known_s``): a stranger failing with random names, or guessing the admin's password from elsewhere,
    cannot lock the real user out of where they work. ``attempt`` refuses (returns a wait > 0) or counts the
    attempt as a failure in advance, so parallel guesses cannot slip past the limit between check and count;
    ``success`` (or ``undo``, when the check could not be made) takes it back and clears the account's back-off.
    Memory is bounded by ``max_keys``.
    """

    def __init__(self, max_failures: int, window_s: float, ip_factor: int = 10, max_keys: int = 10_000,
                 clock: Callable[[], float] = time.monotonic, known_s: float = 30 * 86400) -> None:
        self.max_failures, self.window_s, self.ip_factor, self.max_keys = max_failures, window_s, ip_factor, max_keys
        self.known_s = known_s
        self._clock = clock
        self._failures: dict[Hashable, deque[float]] = {}
        self._known: dict[tuple[str, str], float] = {}  # (user, address) → last successful login
        self._lock = threading.Lock()

    def known(self, username: str, client: str) -> bool:
        with self._lock:
            at = self._known.get((username, client))
        return at is not None and self._clock() - at < self.known_s

    def keys(self, username: str, client: str) -> list[tuple[Hashable, int]]:
        out: list[tuple[Hashable, int]] = [(("user", username, client), self.max_failures)]
        if not self.known(username, client):
            wide = self.max_failures * self.ip_factor
            out += [(("ip", client), wide), (("account", username), wide)]
        return out

    def attempt(self, keys: Iterable[tuple[Hashable, int]]) -> tuple[float, float]:
        """(seconds to wait, 0.0) when refused; else (0.0, stamp) with the attempt counted as a failure."""
        keys = list(keys)
        now = self._clock()
        with self._lock:
            wait = 0.0
            for key, limit in keys:
                q = self._trim(key, now)
                if q is not None and len(q) >= limit:
                    wait = max(wait, q[len(q) - limit] + self.window_s - now)
            if wait > 0:
                return wait, 0.0
            for key, limit in keys:
                q = self._failures.get(key)
                if q is None:
                    if len(self._failures) >= self.max_keys:
                        self._evict(now)
                    q = self._failures[key] = deque(maxlen=limit)
                q.append(now)
            return 0.0, now

    def success(self, keys: Iterable[tuple[Hashable, int]], stamp: float) -> None:
        """The password was right: forget the (user, address) failures and the account's back-off, take the
        attempt back from the address, and remember the address as one the user logs in from."""
        with self._lock:
            for key, _ in keys:
                kind = key[0]  # type: ignore[index]
                if kind == "user":
                    self._failures.pop(key, None)
                    _, username, client = key  # type: ignore[misc]
                    self._known.pop((username, client), None)
                    if len(self._known) >= self.max_keys:  # the oldest remembered address goes first
                        self._known.pop(next(iter(self._known)))
                    self._known[(username, client)] = self._clock()
                    self._failures.pop(("account", username), None)
                else:
                    self._take_back(key, stamp)

    def undo(self, keys: Iterable[tuple[Hashable, int]], stamp: float) -> None:
        """The attempt could not be judged (a database error): it does not count."""
        with self._lock:
            for key, _ in keys:
                self._take_back(key, stamp)

    def _take_back(self, key: Hashable, stamp: float) -> None:
        q = self._failures.get(key)
        if q is not None:
            try:
                q.remove(stamp)
            except ValueError:
                pass
            if not q:
                del self._failures[key]

    def _trim(self, key: Hashable, now: float) -> deque[float] | None:
        q = self._failures.get(key)
        if q is None:
            return None
        while q and q[0] <= now - self.window_s:
            q.popleft()
        if not q:
            del self._failures[key]
            return None
        return q

    def _evict(self, now: float) -> None:
        for key in list(self._failures):
            self._trim(key, now)
        while len(self._failures) >= self.max_keys:  # still full of live keys: forget the stalest
            oldest = min(self._failures, key=lambda k: self._failures[k][-1])
            del self._failures[oldest]


def new_user(username: str, password: str, role: Role | str, *, display_name: str | None = None,
             town: str | None = None, chief_id: str | None = None, now: datetime | None = None) -> User:
    """A validated new user with a hashed password (WeakPassword or pydantic's ValidationError otherwise)."""
    username = normalise_username(username)
    check_password(password, username)
    return User(username=username, display_name=display_name or username, role=Role(role), town=town,
                chief_id=chief_id, password_hash=hash_password(password), active=True,
                created_at=now or datetime.now(UTC))


def valid_username(name: str) -> bool:
    return re.fullmatch(USERNAME_RE, name) is not None
