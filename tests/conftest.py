"""Shared fixtures: real servers on free ports, temporary registries and stores."""

from __future__ import annotations

from pathlib import Path

import pytest

from core.domain import Station
from core.registry import open_registry
from core.settings import Settings
from core.tsdb import open_store
from tests.servers import MosquittoServer


@pytest.fixture(scope="session")
def mosquitto(tmp_path_factory: pytest.TempPathFactory):
    server = MosquittoServer(tmp_path_factory.mktemp("mosquitto")).start()
    yield server
    server.stop()


@pytest.fixture
def settings(tmp_path: Path, mosquitto: MosquittoServer, request: pytest.FixtureRequest) -> Settings:
    # A unique client prefix per test: persistent sessions of one test must not leak into the next.
    prefix = "t" + str(abs(hash(request.node.nodeid)))[:10]
    return Settings(data_dir=tmp_path, mqtt_url=mosquitto.url, mqtt_client_prefix=prefix,
                    ingest_flush_interval_s=0.05, _env_file=None)


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
