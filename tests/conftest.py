"""Shared fixtures: real servers on free ports, temporary registries and stores."""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import pytest

from core.domain import Station
from core.registry import open_registry
from core.settings import Settings
from core.tsdb import open_store
from tests.servers import InfluxServer, MosquittoServer


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


@pytest.fixture
def settings(tmp_path: Path, mosquitto: MosquittoServer, request: pytest.FixtureRequest) -> Settings:
    # A unique client prefix per test: persistent sessions of one test must not leak into the next.
    prefix = "t" + str(abs(hash(request.node.nodeid)))[:10]
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


@pytest.fixture
def stations(registry):
    registry.upsert_stations(TEST_STATIONS)
    return {s.id: s for s in TEST_STATIONS}
