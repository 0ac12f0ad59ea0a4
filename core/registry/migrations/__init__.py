"""Versioned schema migrations of the registry (Alembic), kept inside the package and run from code.

``Registry.create_schema()`` calls :func:`upgrade`: a fresh database gets every revision, an up-to-date one
nothing, and one made by ``metadata.create_all()`` before migrations existed is adopted (its missing baseline
tables created, stamped at the baseline ``0001``) and then upgraded. No ``alembic.ini`` is needed: the Alembic
``Config`` is built here, ``script_location`` is this directory and ``env.py`` uses the connection passed in
``config.attributes["connection"]``.

All pending revisions run in one transaction holding a per-database lock (PostgreSQL: an advisory lock;
SQLite: ``BEGIN IMMEDIATE``), so processes that start together wait for each other instead of racing, and a
failed migration leaves the database as it was. Developers: ``python -m core.registry.migrations --help``.
"""

from __future__ import annotations

import importlib
import logging
import pkgutil
import zlib
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator

from sqlalchemy import MetaData, inspect, text
from sqlalchemy.engine import Connection, Engine

if TYPE_CHECKING:
    from alembic.config import Config

log = logging.getLogger("core.registry.migrations")

SCRIPT_LOCATION = Path(__file__).resolve().parent
BASELINE = "0001"
# What metadata.create_all() made before migrations existed (databases with some of these and no version table
# are adopted). Never change: new tables come with new revisions.
BASELINE_TABLES = frozenset({"stations", "dead_letters", "alerts", "alert_events", "rules", "duty_roster"})
VERSION_TABLE = "alembic_version"
_PG_LOCK_KEY = zlib.crc32(b"smartwater.registry.migrations")  # pg_advisory_xact_lock key, per database

HOW_TO_ADD_A_MIGRATION = (
    "add a migration: `python -m core.registry.migrations new \"what changed\"`, review the file it writes in "
    "core/registry/migrations/versions/, then run tests/test_migrations.py (core/registry/migrations/README.md)")


class RegistrySchemaError(RuntimeError):
    """The registry database cannot be brought to, or does not match, the schema this code expects."""


def registry_metadata() -> MetaData:
    """``core.registry.tables.metadata`` after importing every module that may put tables on it.

    Tables defined outside tables.py register on that same MetaData when their module is imported: every module
    of ``core.registry`` and every ``core/<package>/tables.py`` is imported here, so a table is never missed
    (by the comparison with the migrations, or by autogenerate) just because nothing imported it yet.
    """
    import core
    from core.registry import tables

    registry_dir = str(Path(__file__).resolve().parent.parent)  # core/registry, without importing it from here
    names = [m.name for m in pkgutil.iter_modules([registry_dir], "core.registry.") if m.name != __name__]
    for root in core.__path__:
        names += [f"core.{p.parent.name}.tables" for p in sorted(Path(root).glob("*/tables.py"))
                  if p.parent.name != "registry"]
    for name in names:
        importlib.import_module(name)
    return tables.metadata


def alembic_config(connection: Connection | None = None, url: str | None = None,
                   script_location: str | Path | None = None) -> "Config":
    """An Alembic Config without an ini file; ``env.py`` migrates ``connection`` (else it connects to ``url``)."""
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(script_location or SCRIPT_LOCATION))
    cfg.set_main_option("file_template", "%%(rev)s_%%(slug)s")
    cfg.set_main_option("path_separator", "os")
    if url is not None:
        cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    if connection is not None:
        cfg.attributes["connection"] = connection
    return cfg


def head_revision(script_location: str | Path | None = None) -> str:
    from alembic.script import ScriptDirectory

    heads = ScriptDirectory.from_config(alembic_config(script_location=script_location)).get_heads()
    if len(heads) != 1:
        raise RegistrySchemaError(f"the registry migrations have {len(heads)} heads {sorted(heads)}, not one: "
                                  "two revisions claim the same parent; set one's down_revision to the other")
    return heads[0]


def current_revision(engine_or_conn: Engine | Connection) -> str | None:
    from alembic.runtime.migration import MigrationContext

    if isinstance(engine_or_conn, Engine):
        with engine_or_conn.connect() as conn:
            return MigrationContext.configure(conn).get_current_revision()
    return MigrationContext.configure(engine_or_conn).get_current_revision()


@contextmanager
def migration_transaction(engine: Engine) -> Iterator[Connection]:
    """One connection in one transaction that holds the database's migration lock; commits on success."""
    with engine.connect() as conn:
        sqlite = conn.dialect.name == "sqlite"
        if sqlite:
            # A batch ALTER copies a table and drops the original; with foreign keys on, that drop would
            # cascade-delete the rows referring to it. The pragma is a no-op inside a transaction: set it first.
            conn.exec_driver_sql("PRAGMA foreign_keys=OFF")
            conn.commit()
        try:
            with conn.begin():
                if sqlite:
                    # pysqlite runs DDL outside any transaction unless one was begun explicitly; IMMEDIATE also
                    # takes the write lock now, so a second process waits (busy_timeout) rather than races.
                    conn.exec_driver_sql("BEGIN IMMEDIATE")
                elif conn.dialect.name == "postgresql":
                    conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _PG_LOCK_KEY})
                yield conn
                if sqlite:
                    broken = conn.exec_driver_sql("PRAGMA foreign_key_check").fetchall()
                    if broken:
                        raise RegistrySchemaError(f"the migration left rows breaking foreign keys: {broken[:5]}")
        finally:
            if sqlite:
                conn.exec_driver_sql("PRAGMA foreign_keys=ON")
                conn.commit()


def upgrade(engine: Engine, revision: str = "head", *, strict: bool = False,
            script_location: str | Path | None = None) -> str | None:
    """Bring the registry to ``revision`` (adopting a pre-migration database first); returns the new revision.

    At head, a table on the metadata (as far as this process imported it) that no migration created means
    someone added a table without a migration: logged as an error, or raised with ``strict``.
    """
    from alembic import command

    from core.registry import tables

    with migration_transaction(engine) as conn:
        cfg = alembic_config(conn, script_location=script_location)
        _refuse_unknown_revision(conn, cfg)
        _adopt_pre_migration_schema(conn, cfg)
        command.upgrade(cfg, revision)
        if revision == "head":
            missing = set(tables.metadata.tables) - set(inspect(conn).get_table_names())
            if missing:
                msg = (f"table(s) {', '.join(sorted(missing))} are in the registry metadata but no migration "
                       f"creates them: {HOW_TO_ADD_A_MIGRATION}")
                if strict:
                    raise RegistrySchemaError(msg)
                log.error(msg)
        return current_revision(conn)


def downgrade(engine: Engine, revision: str, *, script_location: str | Path | None = None) -> str | None:
    from alembic import command

    with migration_transaction(engine) as conn:
        cfg = alembic_config(conn, script_location=script_location)
        _refuse_unknown_revision(conn, cfg)
        command.downgrade(cfg, revision)
        return current_revision(conn)


def _refuse_unknown_revision(conn: Connection, cfg: "Config") -> None:
    from alembic.script import ScriptDirectory
    from alembic.util import CommandError

    if not inspect(conn).has_table(VERSION_TABLE):
        return
    script = ScriptDirectory.from_config(cfg)
    for (rev,) in conn.execute(text(f"SELECT version_num FROM {VERSION_TABLE}")):
        try:
            known = script.get_revision(rev) is not None
        except CommandError:
            known = False
        if not known:
            raise RegistrySchemaError(
                f"the registry database is at schema revision {rev!r}, which this version of smartwater does not "
                f"know (its newest is {head_revision(cfg.get_main_option('script_location'))!r}): it was migrated "
                "by a newer version. Run that version, or restore a backup; older code must not write to it.")


def _adopt_pre_migration_schema(conn: Connection, cfg: "Config") -> None:
    """A registry made by ``metadata.create_all()`` (no version table): complete the baseline, stamp it 0001."""
    from alembic import command
    from alembic.operations import Operations
    from alembic.runtime.migration import MigrationContext
    from alembic.script import ScriptDirectory

    names = set(inspect(conn).get_table_names())
    found = names & BASELINE_TABLES
    if VERSION_TABLE in names or not found:
        return  # migrated already, or fresh: the revisions create everything
    missing = BASELINE_TABLES - found
    log.warning("registry created before schema migrations: adopting it at revision %s%s", BASELINE,
                f" (creating the missing {', '.join(sorted(missing))})" if missing else "")
    if missing:  # made by an older create_all(), before those tables existed
        baseline = ScriptDirectory.from_config(cfg).get_revision(BASELINE).module
        baseline.create_tables(Operations(MigrationContext.configure(conn)), only=missing)
    command.stamp(cfg, BASELINE)


# -- comparing the migrated schema with the metadata ------------------------------------------------------------
def schema_diff(conn: Connection) -> list[Any]:
    """Alembic's autogenerate comparison of the database behind ``conn`` with the registry metadata ([] = same)."""
    from alembic.autogenerate import compare_metadata
    from alembic.runtime.migration import MigrationContext

    ctx = MigrationContext.configure(conn, opts={"compare_type": True, "compare_server_default": True})
    return compare_metadata(ctx, registry_metadata())


def describe_diff(diffs: list[Any]) -> str:
    """One line per difference, in words a reviewer can act on."""
    lines = []
    new_tables = {d[1].name for d in diffs if isinstance(d, tuple) and d[0] == "add_table"}
    for d in diffs:
        if isinstance(d, tuple) and d[0] in ("add_index", "add_constraint", "add_fk") \
                and getattr(d[1].table, "name", None) in new_tables:
            continue  # comes with its table
        if isinstance(d, list):  # modify_* come grouped per column
            for m in d:
                op, _schema, table, column, _kw, old, new = m
                lines.append(f"{op} {table}.{column}: database {old!r}, metadata {new!r}")
            continue
        op, rest = d[0], d[1:]
        if op in ("add_table", "remove_table"):
            what = rest[0].name
        elif op in ("add_column", "remove_column"):
            what = f"{rest[1]}.{rest[2].name}"
        elif op in ("add_index", "remove_index", "add_constraint", "remove_constraint", "add_fk", "remove_fk"):
            obj = rest[0]
            what = f"{getattr(obj.table, 'name', '?')}: {obj.name or obj}"
        else:
            what = repr(rest)
        meaning = {"add": "in the metadata, not made by the migrations",
                   "remove": "made by the migrations, not in the metadata"}.get(op.split("_")[0], "")
        lines.append(f"{op} {what}" + (f" ({meaning})" if meaning else ""))
    return "\n".join(lines)
