"""Alembic environment of the registry. Run through core.registry.migrations, not the alembic command.

The connection to migrate comes in ``config.attributes["connection"]`` (the Registry's engine: SQLite file,
in-memory SQLite or PostgreSQL), already in the caller's transaction; without one, ``sqlalchemy.url`` is used.
"""

from __future__ import annotations

from alembic import context
from sqlalchemy.engine import Connection

from core.registry import tables
from core.registry.migrations import VERSION_TABLE

config = context.config
# What autogenerate compares with: callers pass registry_metadata() (every table module imported); upgrades
# don't need it.
target_metadata = config.attributes.get("target_metadata", tables.metadata)


def _configure(**kw: object) -> None:
    context.configure(target_metadata=target_metadata, version_table=VERSION_TABLE, compare_type=True, **kw)


def run_with(connection: Connection) -> None:
    # SQLite can't ALTER most things: batch mode copies the table instead (a plain ALTER on PostgreSQL).
    _configure(connection=connection, render_as_batch=connection.dialect.name == "sqlite")
    with context.begin_transaction():  # a no-op when the caller's transaction is open, as with Registry
        context.run_migrations()


def run_offline() -> None:
    url = config.get_main_option("sqlalchemy.url")
    _configure(url=url, literal_binds=True, dialect_opts={"paramstyle": "named"},
               render_as_batch=str(url).startswith("sqlite"))
    with context.begin_transaction():
        context.run_migrations()


def run_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        run_with(connection)
        return
    from core.registry import open_registry

    url = config.get_main_option("sqlalchemy.url")
    if not url:
        raise RuntimeError("no connection: pass config.attributes['connection'] or set sqlalchemy.url")
    registry = open_registry(url)
    try:
        with registry.engine.connect() as conn:
            run_with(conn)
            conn.commit()
    finally:
        registry.close()


if context.is_offline_mode():
    run_offline()
else:
    run_online()
