"""Field devices in the registry and on the command line: add, list, remove, CSV import; mapping tables."""

from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from pydantic import ValidationError
from typer.testing import CliRunner

from core.registry.devices import DeviceExists, DeviceIn, DeviceNotFound, DeviceRepo
from gateway.mapping import CumulativeState, MappingError, load_mapping, route
from gateway.protocol import Message, Observation
from smartwater.cli import app

NOW = datetime(2026, 1, 1, 0, 30, tzinfo=timezone.utc)  # 08:30 on New Year's Day in Beijing
SHANGHAI = ZoneInfo("Asia/Shanghai")


@pytest.fixture
def cli_env(settings, registry, stations, monkeypatch):
    monkeypatch.setenv("SMARTWATER_DB_URL", settings.db_url)
    monkeypatch.setenv("SMARTWATER_DATA_DIR", str(settings.data_dir))
    from core.settings import get_settings
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


def _cli(*args: str):
    return CliRunner().invoke(app, list(args))


def test_repo_add_get_remove_and_password(db_registry):
    repo = DeviceRepo(db_registry.engine)
    dev = repo.add(DeviceIn(protocol="sl651", address="0012345678", password="12ab", station_ids=["RG1", "RV1"]), NOW)
    assert dev.station_ids == ["RG1", "RV1"] and dev.has_password and dev.unmapped == {}
    assert dev.password_ok("12AB") and not dev.password_ok("1234") and not dev.password_ok(None)
    assert "12AB" not in dev.model_dump_json() and "password_hash" not in dev.model_dump()
    with pytest.raises(DeviceExists):
        repo.add(DeviceIn(protocol="sl651", address="0012345678", station_ids=["RG1"]), NOW)
    repo.add(DeviceIn(protocol="sl651", address="0012345678", station_ids=["RG1"]), NOW, replace=True)
    assert not repo.get("sl651", "0012345678").has_password
    repo.record_activity([("sl651", "0012345678", {"4C": 2}, NOW, {"battery_v": 12.1}),
                          ("sl651", "0012345678", {"4C": 1, "03": 1}, None, {"clock_drift_s": -3.0})])
    got = repo.get("sl651", "0012345678")
    assert got.unmapped == {"4C": 3, "03": 1} and got.last_seen_at == NOW
    assert got.health == {"battery_v": 12.1, "clock_drift_s": -3.0}
    repo.remove("sl651", "0012345678")
    with pytest.raises(DeviceNotFound):
        repo.remove("sl651", "0012345678")


@pytest.mark.parametrize("fields,why", [
    ({"protocol": "sl651", "address": "12345", "station_ids": ["A"]}, "10 digits"),
    ({"protocol": "sl651", "address": "0012345678", "password": "12345", "station_ids": ["A"]}, "4 hex digits"),
    ({"protocol": "hj212", "address": "MN with space", "station_ids": ["A"]}, "MN"),
    ({"protocol": "hj212", "address": "MN1", "station_ids": []}, "at least 1"),
    ({"protocol": "hj212", "address": "MN1", "station_ids": ["A", "A"]}, "twice"),
    ({"protocol": "szy206", "address": "1", "station_ids": ["A"]}, "sl651"),
])
def test_device_validation_says_why(fields, why):
    with pytest.raises(ValidationError, match=why):
        DeviceIn(**fields)


def test_cli_add_list_remove(cli_env):
    ok = _cli("devices", "add", "--protocol", "sl651", "--address", "0012345678", "--password", "9C4F",
              "--station", "RG9001", "--station", "RV9001")
    assert ok.exit_code == 0, ok.output
    assert "RG9001, RV9001" in ok.output and "9C4F" not in ok.output
    again = _cli("devices", "add", "--protocol", "sl651", "--address", "0012345678", "--station", "RG9001")
    assert again.exit_code == 2 and "--replace" in again.output
    unknown = _cli("devices", "add", "--protocol", "hj212", "--mn", "QA1", "--station", "NOPE")
    assert unknown.exit_code == 2 and "NOPE" in unknown.output
    wrong = _cli("devices", "add", "--protocol", "hj212", "--address", "0012345678", "--station", "VW9001")
    assert wrong.exit_code == 2 and "--mn" in wrong.output
    assert _cli("devices", "add", "--protocol", "hj212", "--mn", "QA1", "--station", "VW9001").exit_code == 0
    listed = json.loads(_cli("devices", "list", "--json").output)
    assert [(d["protocol"], d["address"], d["has_password"]) for d in listed] == [
        ("hj212", "QA1", False), ("sl651", "0012345678", True)]
    table = _cli("devices", "list")
    assert "0012345678" in table.output and "QA1" in table.output
    assert _cli("devices", "remove", "--protocol", "hj212", "--mn", "QA1").exit_code == 0
    gone = _cli("devices", "remove", "--protocol", "hj212", "--mn", "QA1")
    assert gone.exit_code == 2 and "no hj212 device QA1" in gone.output
    assert _cli("devices", "credentials", "--help").exit_code == 0  # the broker-account command is still there


def test_cli_csv_import_is_all_or_nothing(cli_env, tmp_path: Path, registry):
    bad = tmp_path / "bad.csv"
    bad.write_text("protocol,address,password,stations\nsl651,0012345678,1234,RG9001;RV9001\n"
                   "sl651,123,,RG9001\nhj212,QA1,,VW9001\nhj212,QA1,,VW9001\n")
    out = _cli("devices", "import", str(bad))
    assert out.exit_code == 2 and "line 3" in out.output and "line 5" in out.output and "twice" in out.output
    assert DeviceRepo(registry.engine).list() == []
    good = tmp_path / "good.csv"
    good.write_text("protocol,address,password,stations\nsl651,0012345678,1234,RG9001;RV9001\nhj212,QA1,,VW9001\n")
    out = _cli("devices", "import", str(good))
    assert out.exit_code == 0 and "2 field devices" in out.output
    assert [d.address for d in DeviceRepo(registry.engine).list()] == ["QA1", "0012345678"]


def test_mapping_file_is_validated_whole(tmp_path: Path):
    extra = tmp_path / "map.yaml"
    extra.write_text("sl651:\n  '48': {metric: conductivity}\n  '4C': {metric: ph, colour: red}\n"
                     "sl651_station_kinds: {X: lake}\n")
    with pytest.raises(MappingError) as err:
        load_mapping(extra)
    text = str(err.value)
    assert "3 problem(s)" in text and "conductivity" in text and "colour" in text and "lake" in text
    extra.write_text("hj212:\n  w01014: {metric: free_chlorine_mgl}\n")
    assert load_mapping(extra).target("hj212", "w01014").metric == "free_chlorine_mgl"


def _msg(protocol: str, obs: list[Observation], station_type: str | None = None) -> Message:
    return Message(protocol=protocol, device="D1", password=None, function="32", raw=b"", observations=obs,
                   station_type=station_type)


def test_route_splits_one_rtu_across_its_stations_and_counts_the_rest():
    mapping = load_mapping()
    t = datetime(2026, 1, 1, 0, 0)  # midnight on New Year's Day, Beijing: 16:00 UTC on 31 December
    msg = _msg("sl651", [Observation("20", t, 1.5), Observation("39", t, 12.3), Observation("38", t, 12.1),
                         Observation("4C", t, 0.3), Observation("99", t, 1.0), Observation("3B", t, 7000.0)], "H")
    routed = route(msg, mapping, {"RG1": "rain", "RV1": "river", "RS1": "reservoir"}, SHANGHAI)
    utc = datetime(2025, 12, 31, 16, 0, tzinfo=timezone.utc)
    assert routed.readings == {("rain", "RG1"): [(utc, "rain_mm", 1.5)],
                               ("river", "RV1"): [(utc, "water_level_m", 12.3)]}
    assert routed.unmapped == {"4C": 1, "99": 1} and routed.health == {"battery_v": 12.1}
    assert routed.out_of_range and "3B=7000" in routed.out_of_range[0]
    # station type K prefers the reservoir for a level both kinds have
    k = route(_msg("sl651", [Observation("39", t, 50.0)], "K"), mapping, {"RV1": "river", "RS1": "reservoir"},
              SHANGHAI)
    assert list(k.readings) == [("reservoir", "RS1")]
    # no station of the device has the metric: counted, not lost silently
    none = route(_msg("sl651", [Observation("20", t, 1.0)]), mapping, {"RV1": "river"}, SHANGHAI)
    assert none.readings == {} and none.unmapped == {"20": 1}


def test_route_keeps_flagged_values_out_and_derives_cumulative_rain():
    mapping = load_mapping()
    t = datetime(2024, 2, 29, 7, 59)
    hj = route(_msg("hj212", [Observation("w01001", t, 7.1), Observation("w01003", t, 9.0, "C")]), mapping,
               {"VW1": "village_water"}, SHANGHAI)
    assert [m for _, m, _ in hj.readings[("village_water", "VW1")]] == ["ph"] and hj.withheld == [("w01003", 9.0, "C")]
    state = CumulativeState()
    totals = [(datetime(2024, 2, 29, 7, 55), 10.0), (datetime(2024, 2, 29, 8, 0), 12.5),
              (datetime(2024, 2, 29, 8, 0), 12.5), (datetime(2024, 2, 29, 8, 5), 0.5)]
    got = []
    for when, total in totals:
        r = route(_msg("sl651", [Observation("26", when, total)]), mapping, {"RG1": "rain"}, SHANGHAI, state)
        got.append([v for _, _, v in r.readings.get(("rain", "RG1"), [])])
    assert got == [[], [2.5], [], []]  # first total is a baseline, a repeat adds nothing, a reset re-baselines
    # a report that carries the increment itself (20) is not doubled by its running total (26)
    both = route(_msg("sl651", [Observation("26", datetime(2024, 2, 29, 8, 10), 1.5),
                                Observation("20", datetime(2024, 2, 29, 8, 10), 1.0)]),
                 mapping, {"RG1": "rain"}, SHANGHAI, state)
    assert [v for _, _, v in both.readings[("rain", "RG1")]] == [1.0]


# -- the API ---------------------------------------------------------------------------------------------------------
@pytest.fixture
def api(settings, registry, stations):
    from fastapi.testclient import TestClient

    from api.app import create_app
    from core.tsdb import open_store
    from tests.auth_util import auth_headers

    store = open_store(settings.tsdb_url)
    with TestClient(create_app(settings, registry=registry, store=store, stream=False),
                    headers=auth_headers(settings, registry)) as c:  # an admin
        yield c
    store.close()


def test_api_registers_lists_and_removes_devices(api):
    body = {"protocol": "sl651", "address": "0012345678", "password": "1234", "station_ids": ["RG9001", "RV9001"]}
    created = api.post("/api/v1/devices", json=body)
    assert created.status_code == 201, created.text
    assert created.json()["has_password"] and "password" not in created.json()
    assert api.post("/api/v1/devices", json=body).status_code == 409
    bad = api.post("/api/v1/devices", json={**body, "address": "12"})
    assert bad.status_code == 422 and "10 digits" in bad.text
    unknown = api.post("/api/v1/devices", json={"protocol": "hj212", "address": "QA1", "station_ids": ["NOPE"]})
    assert unknown.status_code == 422 and "NOPE" in unknown.text
    listed = api.get("/api/v1/devices").json()
    assert [(d["address"], d["station_ids"]) for d in listed] == [("0012345678", ["RG9001", "RV9001"])]
    assert api.delete("/api/v1/devices/sl651/0012345678").status_code == 204
    assert api.delete("/api/v1/devices/sl651/0012345678").status_code == 404
    assert api.get("/api/v1/devices").json() == []
