"""Shared fixtures: real servers on free ports, temporary registries and stores."""

from __future__ import annotations

import os
import shutil
import uuid
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from core.domain import Station
from core.registry import open_registry
from core.settings import Settings
from core.tsdb import open_store
from support.servers import InfluxServer, MosquittoServer


@pytest.fixture(scope="session")
def mosquitto(tmp_path_factory: pytest.TempPathFactory):
    server = MosquittoServer(tmp_path_factory.mktemp("mosquitto")).start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def influxdb(tmp_path_factory: pytest.TempPathFactory):
    server = InfluxServer(tmp_path_factory.mktemp("influxdb")).start()
    yield server
    server.stop()


STORE_KINDS = ["sqlite", "influxdb", "influxdb2"]


@pytest.fixture(params=STORE_KINDS)
def contract_store(request: pytest.FixtureRequest, tmp_path: Path):
    """An empty store of every adapter in turn (influxdb2 only with SMARTWATER_TEST_INFLUX2_URL set).

    SMARTWATER_TEST_INFLUX2_URL looks like influxdb2://host:8086/?org=ORG (the bucket part is ignored: each
    test gets its own bucket), with SMARTWATER_TEST_INFLUX2_TOKEN an all-access token.
    """
    kind = request.param
    if kind == "sqlite":
        from core.tsdb.sqlite import SQLiteStore

        st = SQLiteStore(tmp_path / "timeseries.sqlite3")
        yield st
        st.close()
    elif kind == "influxdb":
        server: InfluxServer = request.getfixturevalue("influxdb")
        name = "t_" + uuid.uuid4().hex[:12]
        st = open_store(server.url_for(name))
        yield st
        st.close()
        server.query(f'DROP DATABASE "{name}"')
    else:
        yield from _influx2_store()


def _influx2_store():
    from urllib.parse import parse_qs, urlsplit

    url, token = os.environ.get("SMARTWATER_TEST_INFLUX2_URL"), os.environ.get("SMARTWATER_TEST_INFLUX2_TOKEN")
    if not url or not token:
        pytest.skip("set SMARTWATER_TEST_INFLUX2_URL and SMARTWATER_TEST_INFLUX2_TOKEN to test against InfluxDB 2")
    from influxdb_client import InfluxDBClient

    parts = urlsplit(url)
    org = parse_qs(parts.query).get("org", [""])[-1]
    http = f"{'https' if 'tls=true' in parts.query else 'http'}://{parts.hostname}:{parts.port or 8086}"
    name = "t_" + uuid.uuid4().hex[:12]
    with InfluxDBClient(url=http, token=token, org=org) as admin:
        bucket = admin.buckets_api().create_bucket(bucket_name=name, org=org)
        try:
            st = open_store(f"{parts.scheme}://{parts.netloc}/{name}?{parts.query}", token=token)
            yield st
            st.close()
        finally:
            admin.buckets_api().delete_bucket(bucket)


# -- layers -----------------------------------------------------------------------------------------------------
# A module or test marked ``unit`` needs no server: no broker, no InfluxDB, no PostgreSQL (SQLite files are fine).
# `pytest -m unit` runs that layer alone; the fixtures below refuse to start a server for it.
SERVER_FIXTURES = ("mosquitto", "own_broker", "own_settings", "influxdb", "postgres")


def _is_unit(request: pytest.FixtureRequest) -> bool:
    return request.node.get_closest_marker("unit") is not None


@pytest.fixture(autouse=True)
def _unit_tests_start_no_server(request: pytest.FixtureRequest) -> None:
    if _is_unit(request):
        wanted = [f for f in SERVER_FIXTURES if f in request.fixturenames]
        assert not wanted, f"a unit test must not need a server: {wanted} (drop the unit mark or the fixture)"


@pytest.fixture
def settings(tmp_path: Path, request: pytest.FixtureRequest) -> Settings:
    # A unique client prefix per test: persistent sessions of one test must not leak into the next.
    prefix = "t" + str(abs(hash(request.node.nodeid)))[:10]
    if _is_unit(request):  # the default broker URL, never connected to
        return Settings(data_dir=tmp_path, mqtt_client_prefix=prefix, ingest_flush_interval_s=0.05, _env_file=None)
    mosquitto: MosquittoServer = request.getfixturevalue("mosquitto")
    return Settings(data_dir=tmp_path, mqtt_url=mosquitto.url, mqtt_client_prefix=prefix,
                    ingest_flush_interval_s=0.05, _env_file=None)


@pytest.fixture
def own_broker(tmp_path: Path):
    """A Mosquitto for one test: for tests that flood the broker or stop it."""
    server = MosquittoServer(tmp_path / "own-mosquitto").start()
    yield server
    server.stop()


@pytest.fixture
def own_settings(settings: Settings, own_broker: MosquittoServer) -> Settings:
    return settings.model_copy(update={"mqtt_url": own_broker.url})


@pytest.fixture
def registry(settings: Settings):
    reg = open_registry(settings.db_url)
    reg.create_schema()
    yield reg
    reg.close()


@pytest.fixture
def store(settings: Settings):
    st = open_store(settings.tsdb_url)
    yield st
    st.close()


RESERVOIR = Station(id="RS9001", kind="reservoir", name="Test reservoir", town="通济街道", lat=36.4, lon=120.5,
                    interval_s=600, dead_level_m=40.0, flood_limit_level_m=50.0, normal_level_m=51.0,
                    design_flood_level_m=54.0, check_flood_level_m=55.5, crest_level_m=57.0,
                    level_storage=[(40.0, 0.5), (50.0, 5.0), (57.0, 12.0)])
RIVER = Station(id="RV9001", kind="river", name="Test river", town="通济街道", lat=36.4, lon=120.5, interval_s=600,
                river="墨水河", warning_level_m=10.0, guaranteed_level_m=11.5)
GAUGE = Station(id="RG9001", kind="rain", name="Test gauge", town="通济街道", lat=36.4, lon=120.5, interval_s=300)
VILLAGE = Station(id="VW9001", kind="village_water", name="Test village", town="通济街道", lat=36.4, lon=120.5,
                  interval_s=600, village="东村")
TEST_STATIONS = [RESERVOIR, RIVER, GAUGE, VILLAGE]


@pytest.fixture(scope="session")
def district() -> list[Station]:
    """The generated demo district (default seed), made once and shared: tests only read it."""
    from simulators import generate_district

    return generate_district()


@pytest.fixture
def stations(registry):
    registry.upsert_stations(TEST_STATIONS)
    return {s.id: s for s in TEST_STATIONS}


# -- registry on SQLite and PostgreSQL -------------------------------------------------------------------------
# Tests taking `registry_url` / `db_registry` run once per database. PostgreSQL is SMARTWATER_TEST_PG_URL (an
# account allowed to CREATE DATABASE; default: the local server, user postgres, trust auth). Each session works in
# throwaway databases of its own, dropped at the end; unreachable, those tests skip — or fail with
# SMARTWATER_REQUIRE_POSTGRES=1 (CI).
REGISTRY_DBS = ["sqlite", "postgresql"]
PG_ADMIN_URL = os.environ.get("SMARTWATER_TEST_PG_URL", "postgresql://postgres@127.0.0.1:5432/postgres")


class PostgresServer:
    """A reachable PostgreSQL on which this session creates throwaway databases (all dropped by drop_all)."""

    def __init__(self, admin_url: str) -> None:
        self.admin_url = admin_url
        self.created: list[str] = []

    def _admin(self):
        import psycopg

        return psycopg.connect(self.admin_url, autocommit=True, connect_timeout=5)

    def create_database(self, template_url: str | None = None) -> str:
        """A new database, empty or a copy of ``template_url``'s (which nobody may be connected to); its URL."""
        name = f"smartwater_test_{os.getpid()}_{uuid.uuid4().hex[:10]}"
        template = f' TEMPLATE "{urlsplit(template_url).path.lstrip("/")}"' if template_url else ""
        with self._admin() as conn:
            conn.execute(f'CREATE DATABASE "{name}"{template}')
        self.created.append(name)
        return urlsplit(self.admin_url)._replace(path=f"/{name}").geturl()

    def drop_database(self, url: str) -> None:
        name = urlsplit(url).path.lstrip("/")
        with self._admin() as conn:
            try:
                conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            except Exception:  # noqa: BLE001 - before PostgreSQL 13: end the sessions, then drop
                conn.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s", (name,))
                conn.execute(f'DROP DATABASE IF EXISTS "{name}"')
        if name in self.created:
            self.created.remove(name)

    def drop_all(self) -> None:
        base = urlsplit(self.admin_url)
        for name in list(self.created):
            self.drop_database(base._replace(path=f"/{name}").geturl())


@pytest.fixture(scope="session")
def postgres():
    """The test PostgreSQL server, or a skip (a failure with SMARTWATER_REQUIRE_POSTGRES=1) when unreachable."""
    parts = urlsplit(PG_ADMIN_URL)
    where = f"{parts.hostname}:{parts.port or 5432}"  # never the password
    server = PostgresServer(PG_ADMIN_URL)
    try:
        with server._admin() as conn:
            conn.execute("SELECT 1")
    except Exception as exc:  # noqa: BLE001 - any failure to connect means "no PostgreSQL here"
        reason = f"PostgreSQL not reachable at {where} ({type(exc).__name__}: {' '.join(str(exc).split())[:200]})"
        if os.environ.get("SMARTWATER_REQUIRE_POSTGRES") == "1":
            pytest.fail(f"{reason}, and SMARTWATER_REQUIRE_POSTGRES=1", pytrace=False)
        pytest.skip(f"{reason}; set SMARTWATER_TEST_PG_URL to test the registry on PostgreSQL")
    yield server
    server.drop_all()


@pytest.fixture(params=REGISTRY_DBS)
def empty_db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """URL of a new, empty database (no tables) on each database in turn."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'empty.sqlite3'}"
    server: PostgresServer = request.getfixturevalue("postgres")
    url = server.create_database()
    request.addfinalizer(lambda: server.drop_database(url))
    return url


@pytest.fixture(scope="session")
def _sqlite_registry_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("registry-template") / "registry.sqlite3"
    reg = open_registry(f"sqlite:///{path}")
    reg.create_schema()
    reg.close()  # the last connection closing checkpoints the WAL into the file
    return path


@pytest.fixture(scope="session")
def _pg_registry_url(postgres: PostgresServer) -> str:
    url = postgres.create_database()
    reg = open_registry(url)
    reg.create_schema()
    reg.close()
    return url


def _empty_pg_tables(url: str) -> None:
    from sqlalchemy import inspect

    from core.registry.migrations import VERSION_TABLE

    reg = open_registry(url)
    try:
        with reg.engine.begin() as conn:
            names = [n for n in inspect(conn).get_table_names() if n != VERSION_TABLE]
            conn.exec_driver_sql("SET LOCAL lock_timeout = '10s'")  # a leaked transaction fails, not hangs, the test
            quoted = ", ".join(f'"{n}"' for n in names)
            conn.exec_driver_sql(f"TRUNCATE {quoted} RESTART IDENTITY CASCADE")
    finally:
        reg.close()


@pytest.fixture(params=REGISTRY_DBS)
def registry_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """URL of a migrated registry with empty tables, on SQLite and on PostgreSQL in turn.

    SQLite: a copy of a session-wide migrated file. PostgreSQL: one database per session, every table emptied
    (identities restarted) before each test.
    """
    if request.param == "sqlite":
        path = tmp_path / "registry.sqlite3"
        shutil.copyfile(request.getfixturevalue("_sqlite_registry_template"), path)
        return f"sqlite:///{path}"
    url = request.getfixturevalue("_pg_registry_url")
    _empty_pg_tables(url)
    return url


@pytest.fixture
def db_registry(registry_url: str):
    """A Registry on each database in turn (see registry_url); `registry` is SQLite under `settings`."""
    reg = open_registry(registry_url)
    yield reg
    reg.close()
