"""Registry schema migrations (core/registry/migrations), on a fresh SQLite and a fresh PostgreSQL database.

If test_migrations_build_what_the_metadata_describes fails after you changed a table: that is this test doing
its job. Add a migration (README, "Registry schema migrations").
"""

from __future__ import annotations

import subprocess
import sys
import threading
from datetime import datetime, timezone
from pathlib import Path

import pytest
from sqlalchemy import (JSON, BigInteger, Boolean, Column, DateTime, Float, ForeignKey, Index, Integer, LargeBinary,
                        MetaData, String, Table, Text, inspect, text)

from core.domain import Station
from core.registry import migrations, open_registry, tables
from core.registry.migrations import BASELINE, RegistrySchemaError, VERSION_TABLE

REPO = Path(__file__).resolve().parents[1]


def _fresh_like(url: str, request: pytest.FixtureRequest, tmp_path: Path, name: str) -> str:
    """Another empty database of the same kind as ``url``."""
    if url.startswith("sqlite"):
        return f"sqlite:///{tmp_path / name}.sqlite3"
    server = request.getfixturevalue("postgres")
    other = server.create_database()
    request.addfinalizer(lambda: server.drop_database(other))
    return other


def _user_tables(conn) -> set[str]:
    return set(inspect(conn).get_table_names()) - {VERSION_TABLE}


# -- the migrations and the metadata agree ------------------------------------------------------------------------
def test_migrations_build_what_the_metadata_describes(empty_db_url):
    metadata = migrations.registry_metadata()  # every table module imported: none is missed
    reg = open_registry(empty_db_url)
    try:
        assert migrations.upgrade(reg.engine) == migrations.head_revision()
        with reg.engine.connect() as conn:
            diffs = migrations.schema_diff(conn)
            dialect = conn.dialect.name
    finally:
        reg.close()
    if diffs:
        pytest.fail(
            f"The registry tables in the code (core.registry.tables.metadata: {len(metadata.tables)} tables) differ "
            f"from what the migrations build on {dialect}:\n{migrations.describe_diff(diffs)}\n\n"
            f"Changed or added a table? {migrations.HOW_TO_ADD_A_MIGRATION}.", pytrace=False)


def _reflect(url: str) -> dict:
    """Everything about the schema that can differ, normalised (names PostgreSQL makes up are kept)."""
    reg = open_registry(url)
    try:
        with reg.engine.connect() as conn:
            insp = inspect(conn)
            out = {}
            for name in sorted(_user_tables(conn)):
                out[name] = {
                    "columns": [(c["name"], str(c["type"]), c["nullable"], c.get("default"), c.get("autoincrement"))
                                for c in insp.get_columns(name)],
                    "pk": insp.get_pk_constraint(name)["constrained_columns"],
                    "fks": sorted((tuple(f["constrained_columns"]), f["referred_table"],
                                   tuple(f["referred_columns"]), tuple(sorted(f["options"].items())))
                                  for f in insp.get_foreign_keys(name)),
                    "indexes": sorted((i["name"], tuple(i["column_names"]), bool(i["unique"]))
                                      for i in insp.get_indexes(name)),
                    "unique": sorted((u["name"], tuple(u["column_names"])) for u in insp.get_unique_constraints(name)),
                }
            return out
    finally:
        reg.close()


def test_migrations_build_the_same_database_as_create_all(empty_db_url, request, tmp_path):
    """Stricter than the comparison above: column defaults, foreign-key options, unique constraints' names."""
    metadata = migrations.registry_metadata()
    reg = open_registry(empty_db_url)
    migrations.upgrade(reg.engine)
    with reg.engine.connect() as conn:
        missing = set(metadata.tables) - _user_tables(conn)
    reg.close()
    if missing:
        pytest.skip(f"{sorted(missing)} have no migration yet: test_migrations_build_what_the_metadata_describes "
                    "says what to do")
    other = _fresh_like(empty_db_url, request, tmp_path, "create_all")
    reg = open_registry(other)
    metadata.create_all(reg.engine)
    reg.close()
    assert _reflect(empty_db_url) == _reflect(other)


def test_one_line_of_revisions_numbered_like_their_files():
    from alembic.script import ScriptDirectory

    script = ScriptDirectory.from_config(migrations.alembic_config())
    heads = script.get_heads()
    assert len(heads) == 1, (f"several heads {heads}: two migrations have the same parent. Set the newer one's "
                             "down_revision to the other and renumber it (revision id and file name).")
    revs = list(script.walk_revisions())  # head to base
    for rev in revs:
        assert rev.revision.isdigit() and len(rev.revision) == 4, (
            f"revision id {rev.revision!r}: ids are 0001, 0002, ... (`python -m core.registry.migrations new` "
            "numbers them)")
    assert revs[-1].revision == BASELINE and revs[-1].down_revision is None
    for newer, older in zip(revs, revs[1:]):
        assert newer.down_revision == older.revision
        assert int(newer.revision) == int(older.revision) + 1, f"{newer.revision} follows {older.revision}"
    for rev in revs:
        assert Path(rev.path).name.startswith(f"{rev.revision}_"), rev.path
    files = sorted(p.name for p in (migrations.SCRIPT_LOCATION / "versions").glob("*.py"))
    assert len(files) == len(revs), f"a file in versions/ is not a revision: {files}"


def test_downgrade_to_nothing_and_back(empty_db_url):
    reg = open_registry(empty_db_url)
    try:
        head = migrations.upgrade(reg.engine)
        assert migrations.downgrade(reg.engine, "base") is None
        with reg.engine.connect() as conn:
            assert _user_tables(conn) == set()
        assert migrations.upgrade(reg.engine) == head
        with reg.engine.connect() as conn:
            assert _user_tables(conn) >= set(migrations.BASELINE_TABLES)
    finally:
        reg.close()


# -- databases made before migrations -----------------------------------------------------------------------------
def _legacy_metadata(upto_rules: bool = True) -> MetaData:
    """A frozen copy of core/registry/tables.py before migrations: what old create_all() calls made. Never edit.

    ``upto_rules=False``: as it was before rules and the duty roster were added (commit e980140).
    """
    md = MetaData()
    big = BigInteger().with_variant(Integer, "sqlite")
    Table("stations", md, Column("id", String(64), primary_key=True),
          Column("kind", String(32), nullable=False, index=True), Column("name", String(200), nullable=False),
          Column("town", String(100), nullable=False, index=True), Column("lat", Float, nullable=False),
          Column("lon", Float, nullable=False), Column("interval_s", Integer, nullable=False),
          Column("river", String(200)), Column("village", String(200)), Column("dead_level_m", Float),
          Column("normal_level_m", Float), Column("flood_limit_level_m", Float), Column("design_flood_level_m", Float),
          Column("check_flood_level_m", Float), Column("crest_level_m", Float), Column("warning_level_m", Float),
          Column("guaranteed_level_m", Float), Column("level_storage", JSON), Column("flood_limit_periods", JSON))
    Table("dead_letters", md, Column("id", big, primary_key=True, autoincrement=True),
          Column("received_at", DateTime(timezone=True), nullable=False, index=True),
          Column("topic", Text, nullable=False), Column("payload", LargeBinary, nullable=False),
          Column("reason", String(64), nullable=False, index=True), Column("detail", Text, nullable=False))
    Table("alerts", md, Column("id", big, primary_key=True, autoincrement=True),
          Column("station_id", String(64), nullable=False, index=True), Column("kind", String(32), nullable=False),
          Column("rule", String(64), nullable=False), Column("metric", String(64), nullable=False),
          Column("severity", String(16), nullable=False, index=True),
          Column("state", String(16), nullable=False, index=True),
          Column("started_at", DateTime(timezone=True), nullable=False),
          Column("updated_at", DateTime(timezone=True), nullable=False), Column("value", Float, nullable=False),
          Column("threshold", Float), Column("message", Text, nullable=False),
          Column("acknowledged_at", DateTime(timezone=True)), Column("acknowledged_by", String(100)),
          Column("cleared_at", DateTime(timezone=True)), Index("alerts_station_rule", "station_id", "rule"))
    Table("alert_events", md, Column("id", big, primary_key=True, autoincrement=True),
          Column("alert_id", ForeignKey("alerts.id", ondelete="CASCADE"), nullable=False, index=True),
          Column("event", String(32), nullable=False), Column("severity", String(16)),
          Column("data_time", DateTime(timezone=True)), Column("wall_time", DateTime(timezone=True), nullable=False),
          Column("detail", Text))
    if upto_rules:
        Table("rules", md, Column("id", Integer, primary_key=True, autoincrement=True),
              Column("name", String(64), nullable=False, unique=True), Column("type", String(32), nullable=False),
              Column("station_kind", String(32), nullable=False), Column("enabled", Boolean, nullable=False),
              Column("body", JSON, nullable=False), Column("updated_at", DateTime(timezone=True), nullable=False))
        Table("duty_roster", md, Column("id", Integer, primary_key=True, autoincrement=True),
              Column("person", String(100), nullable=False), Column("email", String(200)),
              Column("phone", String(40)), Column("town", String(100)), Column("station_kind", String(32)),
              Column("starts_at", DateTime(timezone=True), nullable=False),
              Column("ends_at", DateTime(timezone=True), nullable=False),
              Column("rank", Integer, nullable=False, default=0),
              Column("fallback", Boolean, nullable=False, default=False))
    return md


T0 = datetime(2026, 6, 28, 6, 5, tzinfo=timezone.utc)


@pytest.mark.parametrize("upto_rules", [True, False], ids=["today", "before-rules"])
def test_a_database_made_by_create_all_is_adopted_and_keeps_its_rows(empty_db_url, upto_rules, request, tmp_path):
    legacy = _legacy_metadata(upto_rules)
    reg = open_registry(empty_db_url)
    try:
        legacy.create_all(reg.engine)
        with reg.engine.begin() as conn:
            conn.execute(legacy.tables["stations"].insert().values(
                id="R1", kind="river", name="Old river", town="通济街道", lat=36.4, lon=120.5, interval_s=600,
                level_storage=[[1.0, 2.0]]))
            alert_id = conn.execute(legacy.tables["alerts"].insert().values(
                station_id="R1", kind="river", rule="river_level", metric="water_level_m", severity="red",
                state="active", started_at=T0, updated_at=T0, value=12.0, threshold=11.5, message="old alert"
            )).inserted_primary_key[0]
            conn.execute(legacy.tables["alert_events"].insert().values(alert_id=alert_id, event="raised",
                                                                       wall_time=T0))
        assert migrations.current_revision(reg.engine) is None

        assert reg.create_schema() == migrations.head_revision()
        assert migrations.current_revision(reg.engine) == migrations.head_revision()
        with reg.engine.connect() as conn:
            assert _user_tables(conn) >= set(migrations.BASELINE_TABLES)
            assert conn.scalar(text(f"SELECT count(*) FROM {VERSION_TABLE}")) == 1
        # The old rows, through the Registry, and the tables added since work.
        assert reg.get_station("R1").level_storage == [(1.0, 2.0)]
        assert [e["event"] for e in reg.alert_events(alert_id)] == ["raised"]
        reg.acknowledge_alert(alert_id, "duty")
        assert [e["event"] for e in reg.alert_events(alert_id)] == ["raised", "acknowledged"]
        from core.rules import default_rules

        assert reg.upsert_rules(default_rules()) == len(default_rules())
        assert reg.create_schema() == migrations.head_revision()  # and again: nothing to do
    finally:
        reg.close()
    # The adopted database is the same as one migrated from nothing.
    fresh = _fresh_like(empty_db_url, request, tmp_path, "fresh")
    migrated = open_registry(fresh)
    migrated.create_schema()
    migrated.close()
    assert _reflect(empty_db_url) == _reflect(fresh)


def test_a_database_from_a_newer_version_is_refused_clearly(empty_db_url):
    reg = open_registry(empty_db_url)
    try:
        reg.create_schema()
        with reg.engine.begin() as conn:
            conn.execute(text(f"UPDATE {VERSION_TABLE} SET version_num = '9999'"))
        with pytest.raises(RegistrySchemaError, match="9999.*newer version"):
            reg.create_schema()
    finally:
        reg.close()


# -- one transaction, one migrator at a time ----------------------------------------------------------------------
FAILING_REVISION = '''
import sqlalchemy as sa
from alembic import op

revision = "{rev}"
down_revision = "{down}"
branch_labels = None
depends_on = None


def upgrade():
    op.create_table("half_done", sa.Column("id", sa.Integer, primary_key=True))
    with op.batch_alter_table("stations") as batch:
        batch.add_column(sa.Column("half_done", sa.Integer))
    op.execute("UPDATE stations SET name = 'changed'")
    raise RuntimeError("migration fails halfway")


def downgrade():
    pass
'''


def test_a_failing_migration_leaves_the_database_as_it_was(empty_db_url, tmp_path):
    import shutil

    scripts = tmp_path / "scripts"
    shutil.copytree(migrations.SCRIPT_LOCATION, scripts, ignore=shutil.ignore_patterns("__pycache__"))
    head = migrations.head_revision()
    bad = f"{int(head) + 1:04d}"
    (scripts / "versions" / f"{bad}_fails.py").write_text(FAILING_REVISION.format(rev=bad, down=head))

    reg = open_registry(empty_db_url)
    try:
        reg.create_schema()
        reg.upsert_stations([Station(id="R1", kind="river", name="Kept", town="通济街道", lat=36.4, lon=120.5,
                                     interval_s=600)])
        with pytest.raises(RuntimeError, match="halfway"):
            migrations.upgrade(reg.engine, script_location=scripts)
        with reg.engine.connect() as conn:
            assert "half_done" not in _user_tables(conn)
            assert "half_done" not in {c["name"] for c in inspect(conn).get_columns("stations")}
        assert migrations.current_revision(reg.engine) == head
        assert reg.get_station("R1").name == "Kept"
        if reg.engine.dialect.name == "sqlite":  # the migration turned them off; they are back on
            with reg.engine.connect() as conn:
                assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
    finally:
        reg.close()


def test_processes_starting_together_migrate_once(empty_db_url):
    """Ingest, alerts and the API start at once against a fresh database: they take turns, nobody fails."""
    n = 4
    barrier, results, errors = threading.Barrier(n), [], []

    def start() -> None:
        reg = open_registry(empty_db_url)  # own engine: as separate processes would
        try:
            barrier.wait()
            results.append(reg.create_schema())
        except Exception as exc:  # noqa: BLE001 - collected and asserted below
            errors.append(exc)
        finally:
            reg.close()

    threads = [threading.Thread(target=start) for _ in range(n)]
    for th in threads:
        th.start()
    for th in threads:
        th.join(60)
    assert not errors, errors
    assert results == [migrations.head_revision()] * n
    reg = open_registry(empty_db_url)
    try:
        with reg.engine.connect() as conn:
            assert conn.scalar(text(f"SELECT count(*) FROM {VERSION_TABLE}")) == 1
    finally:
        reg.close()


def test_a_table_without_a_migration_is_named_with_what_to_do(tmp_path, caplog):
    extra = Table("zz_unmigrated", tables.metadata, Column("id", Integer, primary_key=True))
    try:
        reg = open_registry(f"sqlite:///{tmp_path / 'r.sqlite3'}")
        try:
            with pytest.raises(RegistrySchemaError, match="zz_unmigrated.*add a migration"):
                migrations.upgrade(reg.engine, strict=True)
            with caplog.at_level("ERROR", logger="core.registry.migrations"):
                reg.create_schema()  # what services do: they start, and say why a table is missing
            assert "zz_unmigrated" in caplog.text and "add a migration" in caplog.text
            with reg.engine.connect() as conn:
                assert "add_table zz_unmigrated" in migrations.describe_diff(migrations.schema_diff(conn))
        finally:
            reg.close()
    finally:
        tables.metadata.remove(extra)


def test_in_memory_sqlite_migrates_on_the_registry_connection():
    reg = open_registry("sqlite://")
    try:
        assert reg.create_schema() == migrations.head_revision()
        reg.upsert_stations([Station(id="G1", kind="rain", name="Gauge", town="通济街道", lat=36.4, lon=120.5,
                                     interval_s=300)])
        assert [s.id for s in reg.list_stations()] == ["G1"]
    finally:
        reg.close()


def test_the_command_line_checks_and_reports(tmp_path):
    url = f"sqlite:///{tmp_path / 'cli.sqlite3'}"

    def cli(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "core.registry.migrations", *args], cwd=REPO,
                              capture_output=True, text=True, timeout=120)

    current = cli("current", "--db-url", url)
    assert current.returncode == 0 and current.stdout.startswith("none"), current.stderr
    up = cli("upgrade", "--db-url", url)
    assert up.returncode == 0 and migrations.head_revision() in up.stdout, up.stderr
    history = cli("history")
    assert history.returncode == 0 and f"{BASELINE}  baseline" in history.stdout
    check = cli("check", "--db-url", url)
    # 0: the migrations build the metadata; 1 lists the differences and says to add a migration.
    assert check.returncode in (0, 1) and "Traceback" not in check.stderr, check.stderr
    assert check.returncode == 0 or "add a migration" in check.stderr
