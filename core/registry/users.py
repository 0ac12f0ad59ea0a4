"""API users in the registry DB: the ``users`` table (on the registry's MetaData) and ``UserRepo``.

Kept apart from ``repo.py`` so the access-control code and the rest of the registry can change independently; the
table joins ``tables.metadata`` when this module is imported (``core.registry`` imports it), so
``Registry.create_schema()`` creates it with the others.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import (Boolean, Column, Integer, String, Table, UniqueConstraint, func, insert, select,
                        update)
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError

from core.auth import Role, User, normalise_username
from core.registry.tables import metadata
from core.registry.types import UTCDateTime

users = Table(
    "users", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("username", String(64), nullable=False),  # stored lowercase
    Column("display_name", String(100), nullable=False),
    Column("role", String(16), nullable=False),
    Column("town", String(100)),  # supervisors and chiefs: their town; None: the whole district
    Column("chief_id", String(64)),  # a chief user's river_chiefs.id (no foreign key: that module is separate)
    Column("password_hash", String(255), nullable=False),
    Column("active", Boolean, nullable=False, default=True),
    Column("created_at", UTCDateTime, nullable=False),
    # Tokens carry the generation they were issued in; raising it (a password change, "revoke") refuses them all.
    Column("token_generation", Integer, nullable=False, default=0, server_default="0"),
    UniqueConstraint("username", name="uq_users_username"),
    UniqueConstraint("chief_id", name="uq_users_chief_id"),  # one login per river chief
    sqlite_autoincrement=True,  # ids are never reused, even after a row is removed by hand
)


class DuplicateUser(ValueError):
    pass


class UserNotFound(LookupError):
    pass


def _user(row: Any) -> User:
    return User.model_validate(dict(row._mapping))


class UserRepo:
    """Users of the API. Takes the registry's engine: ``UserRepo(registry.engine)``."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def add(self, user: User) -> User:
        """Insert a new user; DuplicateUser when the name is taken or the river chief has a login already."""
        values = user.model_dump(exclude={"id"})
        values["role"] = user.role.value
        try:
            with self.engine.begin() as conn:
                self._check_free(conn, user)
                uid = conn.execute(insert(users).values(values)).inserted_primary_key[0]
        except IntegrityError:  # taken by a concurrent insert between the check and ours
            with self.engine.connect() as conn:
                self._check_free(conn, user)
            raise DuplicateUser(f"a user named {user.username!r} exists") from None
        return user.model_copy(update={"id": uid})

    @staticmethod
    def _check_free(conn: Any, user: User) -> None:
        if conn.execute(select(users.c.id).where(users.c.username == user.username)).first():
            raise DuplicateUser(f"a user named {user.username!r} exists")
        if user.chief_id is not None:
            other = conn.execute(select(users.c.username).where(users.c.chief_id == user.chief_id)).scalar()
            if other is not None:
                raise DuplicateUser(f"river chief {user.chief_id!r} already has a login: user {other!r} (one login "
                                    "per chief; disable that one or use it)")

    def get(self, username: str) -> User | None:
        with self.engine.connect() as conn:
            row = conn.execute(select(users).where(users.c.username == normalise_username(username))).first()
        return _user(row) if row else None

    def list(self, role: Role | None = None, active: bool | None = None) -> list[User]:
        q = select(users).order_by(users.c.id)
        if role is not None:
            q = q.where(users.c.role == role.value)
        if active is not None:
            q = q.where(users.c.active == active)
        with self.engine.connect() as conn:
            return [_user(r) for r in conn.execute(q)]

    def count(self) -> int:
        with self.engine.connect() as conn:
            return conn.scalar(select(func.count()).select_from(users)) or 0

    def set_active(self, username: str, active: bool) -> User:
        return self._update(username, active=active)

    def set_password_hash(self, username: str, password_hash: str, revoke_tokens: bool = False) -> User:
        """A new password hash (a rehash keeps the tokens; a changed password revokes them with ``revoke_tokens``)."""
        if revoke_tokens:
            return self._update(username, password_hash=password_hash,
                                token_generation=users.c.token_generation + 1)
        return self._update(username, password_hash=password_hash)

    def revoke_tokens(self, username: str) -> User:
        """Every token issued to the user so far is refused from now on (by a running API within
        ``auth_user_cache_s``)."""
        return self._update(username, token_generation=users.c.token_generation + 1)

    def _update(self, username: str, **values: Any) -> User:
        name = normalise_username(username)
        with self.engine.begin() as conn:
            if conn.execute(update(users).where(users.c.username == name).values(**values)).rowcount == 0:
                raise UserNotFound(name)
        user = self.get(name)
        assert user is not None
        return user

