"""API users and bearer tokens for the tests: the API refuses every request without one (api/auth.py)."""

from __future__ import annotations

from core.auth import Role, TokenSigner, load_secret, new_user
from core.registry import Registry, UserRepo
from core.settings import Settings

PASSWORD = "correct horse battery staple"


def ensure_user(registry: Registry, username: str = "admin", role: Role | str = Role.admin, **kw) -> None:
    """Create the user (password PASSWORD) unless it exists."""
    users = UserRepo(registry.engine)
    if users.get(username) is None:
        users.add(new_user(username, PASSWORD, role, **kw))


def token_for(settings: Settings, registry: Registry, username: str = "admin", role: Role | str = Role.admin,
              ttl_s: float = 3600, **kw) -> str:
    """A token the API built from ``settings`` accepts (same secret: SMARTWATER_AUTH_SECRET or data_dir)."""
    ensure_user(registry, username, role, **kw)
    token, _ = TokenSigner(load_secret(settings)).issue(username, role, ttl_s)
    return token


def auth_headers(settings: Settings, registry: Registry, username: str = "admin", role: Role | str = Role.admin,
                 **kw) -> dict[str, str]:
    return {"Authorization": f"Bearer {token_for(settings, registry, username, role, **kw)}"}
