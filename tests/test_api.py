"""The HTTP API over a real (temporary) SQLite registry and SQLite store."""

from __future__ import annotations

import base64
import hashlib
import logging
import socket
import warnings
from datetime import datetime, timedelta, timezone

import httpx
import pytest

with warnings.catch_warnings():
    # Starlette's TestClient announces a move from httpx to httpx2; nothing for these tests to act on.
    warnings.filterwarnings("ignore", message=r"Using `httpx` with `starlette.testclient` is deprecated")
    from fastapi.testclient import TestClient

from api import ApiServer, create_app
from core.domain import Alert, DeadLetter, FloodLimitPeriod, Reading, Station
from core.registry import open_registry
from core.settings import Settings
from core.timeutil import utcnow
from core.tsdb import StoreUnavailable, open_store
from tests.auth_util import auth_headers

UTC = timezone.utc
T0 = datetime(2026, 6, 28, 0, 0, tzinfo=UTC)
WINDOW = {"start": "2026-06-28T00:00:00+00:00", "end": "2026-06-28T01:00:00+00:00"}
LEVELS = [50.0, 51.0, 52.0, 54.0, 58.0, 60.0]  # R1 water level every 5 min from T0


def _stations() -> list[Station]:
    return [
        Station(id="R1", kind="reservoir", name="Shimen Reservoir", town="Lingshan", lat=36.4, lon=120.5,
                interval_s=300, river="Moshui", dead_level_m=40.0, normal_level_m=55.0, flood_limit_level_m=53.0,
                design_flood_level_m=58.5, check_flood_level_m=59.8, crest_level_m=61.0,
                level_storage=[(40.0, 1.0), (50.0, 5.0), (60.0, 12.0)],
                flood_limit_periods=[FloodLimitPeriod(start="0601", end="0731", level_m=52.5, type="main")]),
        Station(id="V1", kind="river", name="Moshui at Lingshan", town="Lingshan", lat=36.41, lon=120.51,
                river="Moshui", warning_level_m=12.0, guaranteed_level_m=14.5),
        Station(id="P1", kind="rain", name="Duancun rain gauge", town="Duancun", lat=36.5, lon=120.3,
                village="Duancun"),
    ]


@pytest.fixture()
def backends(tmp_path):
    registry = open_registry(f"sqlite:///{tmp_path}/reg.sqlite3")
    registry.create_schema()
    store = open_store(f"sqlite:///{tmp_path}/ts.sqlite3")
    registry.upsert_stations(_stations())
    readings = [Reading("R1", "reservoir", "water_level_m", T0 + timedelta(minutes=5 * i), v)
                for i, v in enumerate(LEVELS)]
    readings += [Reading("R1", "reservoir", "inflow_m3s", T0, 3.5),
                 Reading("V1", "river", "water_level_m", T0 + timedelta(minutes=10), 11.25),
                 Reading("P1", "rain", "rain_mm", T0, 0.5),
                 Reading("P1", "rain", "rain_mm", T0 + timedelta(minutes=5), 1.5)]
    store.write(readings)
    red = registry.insert_alert(Alert(
        station_id="R1", kind="reservoir", rule="reservoir_flood_limit", metric="water_level_m", severity="yellow",
        state="active", started_at=T0 + timedelta(minutes=15), updated_at=T0 + timedelta(minutes=20), value=58.0,
        threshold=52.5, message="R1 above the flood-limit level"))
    cleared = registry.insert_alert(Alert(
        station_id="P1", kind="rain", rule="rainstorm_3h", metric="rain_mm", severity="blue", state="cleared",
        started_at=T0, updated_at=T0 + timedelta(hours=1), value=55.0, threshold=50.0, message="rain 55 mm in 12 h",
        cleared_at=T0 + timedelta(hours=1)))
    registry.add_dead_letters([
        DeadLetter(topic="water/river/V9", payload=b'{"ts": "bad"}', reason="bad_timestamp",
                   detail="not an ISO 8601 timestamp", received_at=T0 + timedelta(minutes=1)),
        DeadLetter(topic="water/rain/P1", payload=b"\xff\x00\xfe", reason="not_json", detail="not UTF-8",
                   received_at=T0 + timedelta(minutes=2)),
    ])
    yield registry, store, {"yellow": red.id, "blue": cleared.id}
    store.close()
    registry.close()


@pytest.fixture()
def settings(tmp_path) -> Settings:
    return Settings(_env_file=None, data_dir=tmp_path, db_url=f"sqlite:///{tmp_path}/reg.sqlite3",
                    tsdb_url=f"sqlite:///{tmp_path}/ts.sqlite3")


@pytest.fixture()
def client(backends, settings):
    registry, store, _ = backends
    with TestClient(create_app(settings, registry=registry, store=store)) as c:
        c.headers.update(auth_headers(settings, registry))  # an admin: the API needs a token (tests/test_auth.py)
        yield c


@pytest.fixture()
def alert_ids(backends) -> dict[str, int]:
    return backends[2]


def _422(resp: httpx.Response, *needles: str) -> str:
    assert resp.status_code == 422, resp.text
    body = resp.json()
    assert isinstance(body["detail"], str) and body["errors"]
    for needle in needles:
        assert needle in body["detail"], body["detail"]
    return body["detail"]


# -- app, docs, health -------------------------------------------------------
def test_openapi_and_docs(client):
    spec = client.get("/openapi.json").json()
    assert spec["info"]["title"] == "Smart-water monitoring API"
    assert {"/healthz", "/api/v1/stations", "/api/v1/stations/{station_id}", "/api/v1/stations/{station_id}/readings",
            "/api/v1/readings/latest", "/api/v1/alerts", "/api/v1/alerts/{alert_id}", "/api/v1/alerts/{alert_id}/ack",
            "/api/v1/dead-letters"} <= set(spec["paths"])
    assert "flat list" in spec["paths"]["/api/v1/readings/latest"]["get"]["description"]
    assert client.get("/docs").status_code == 200


def test_healthz_ok(client):
    resp = client.get("/healthz")
    assert resp.status_code == 200
    assert resp.json() == {"status": "ok", "checks": {"registry": True, "store": True}}


def test_healthz_degraded_when_store_down(backends, settings):
    registry, store, _ = backends

    class DownStore:
        def ping(self) -> bool:
            raise StoreUnavailable("connection refused")

    with TestClient(create_app(settings, registry=registry, store=DownStore())) as c:  # type: ignore[arg-type]
        resp = c.get("/healthz")
    assert resp.status_code == 503
    assert resp.json() == {"status": "degraded", "checks": {"registry": True, "store": False}}


def test_create_app_opens_and_closes_backends_from_settings(backends, settings):
    with TestClient(create_app(settings), headers=auth_headers(settings, backends[0])) as c:
        # the fixture's files, opened a second time by the app
        assert c.get("/healthz").json()["status"] == "ok"
        assert [s["id"] for s in c.get("/api/v1/stations").json()] == ["P1", "R1", "V1"]


# -- stations ----------------------------------------------------------------
def test_list_stations(client):
    resp = client.get("/api/v1/stations")
    assert resp.status_code == 200
    stations = resp.json()
    assert [s["id"] for s in stations] == ["P1", "R1", "V1"]
    r1 = stations[1]
    assert r1 == {
        "id": "R1", "kind": "reservoir", "name": "Shimen Reservoir", "town": "Lingshan", "lat": 36.4, "lon": 120.5,
        "interval_s": 300, "river": "Moshui", "village": None, "dead_level_m": 40.0, "normal_level_m": 55.0,
        "flood_limit_level_m": 53.0, "flood_control_high_level_m": None, "design_flood_level_m": 58.5,
        "check_flood_level_m": 59.8, "crest_level_m": 61.0, "warning_level_m": None, "guaranteed_level_m": None,
    }
    assert stations[2]["warning_level_m"] == 12.0 and stations[2]["guaranteed_level_m"] == 14.5
    assert stations[2]["dead_level_m"] is None
    assert stations[0]["village"] == "Duancun"


def test_list_stations_filters(client):
    assert [s["id"] for s in client.get("/api/v1/stations", params={"kind": "river"}).json()] == ["V1"]
    assert [s["id"] for s in client.get("/api/v1/stations", params={"town": "Lingshan"}).json()] == ["R1", "V1"]
    assert client.get("/api/v1/stations", params={"kind": "rain", "town": "Lingshan"}).json() == []
    assert client.get("/api/v1/stations", params={"kind": "groundwater"}).json() == []


def test_list_stations_bad_kind(client):
    _422(client.get("/api/v1/stations", params={"kind": "lake"}), "kind", "reservoir", "village_water")


def test_get_station_detail(client):
    resp = client.get("/api/v1/stations/R1")
    assert resp.status_code == 200
    s = resp.json()
    assert s["id"] == "R1" and s["flood_limit_level_m"] == 53.0
    assert s["level_storage"] == [[40.0, 1.0], [50.0, 5.0], [60.0, 12.0]]
    assert s["flood_limit_periods"] == [{"start": "0601", "end": "0731", "level_m": 52.5, "type": "main"}]
    assert {"name": "water_level_m", "unit": "m"} in s["metrics"]
    v1 = client.get("/api/v1/stations/V1").json()
    assert v1["level_storage"] is None and v1["flood_limit_periods"] is None


@pytest.mark.parametrize("sid", ["NOPE", "bad.id", "x" * 200, "%E6%B0%B4"])
def test_get_station_404(client, sid):
    resp = client.get(f"/api/v1/stations/{sid}")
    assert resp.status_code == 404
    assert resp.json()["detail"].startswith("station ") and resp.json()["detail"].endswith(" not found")
    if sid == "NOPE":
        assert resp.json() == {"detail": "station NOPE not found"}


# -- readings ----------------------------------------------------------------
def test_raw_readings_one_metric(client):
    resp = client.get("/api/v1/stations/R1/readings", params={**WINDOW, "metric": "water_level_m"})
    assert resp.status_code == 200
    body = resp.json()
    assert body["station_id"] == "R1" and body["metric"] == "water_level_m" and body["unit"] == "m"
    assert body["start"] == "2026-06-28T00:00:00+00:00" and body["end"] == "2026-06-28T01:00:00+00:00"
    assert body["every"] is None and body["agg"] is None and body["truncated"] is False
    assert body["points"] == [
        {"ts": f"2026-06-28T00:{5 * i:02d}:00+00:00", "metric": "water_level_m", "value": v}
        for i, v in enumerate(LEVELS)]


def test_raw_readings_all_metrics_window_and_offsets(client):
    # 08:05+08:00 is 00:05 UTC; the window is [start, end).
    resp = client.get("/api/v1/stations/R1/readings",
                      params={"start": "2026-06-28T08:00:00+08:00", "end": "2026-06-28T00:10:00Z"})
    body = resp.json()
    assert body["start"] == "2026-06-28T00:00:00+00:00" and body["metric"] is None and body["unit"] is None
    assert body["points"] == [
        {"ts": "2026-06-28T00:00:00+00:00", "metric": "inflow_m3s", "value": 3.5},
        {"ts": "2026-06-28T00:00:00+00:00", "metric": "water_level_m", "value": 50.0},
        {"ts": "2026-06-28T00:05:00+00:00", "metric": "water_level_m", "value": 51.0},
    ]


def test_raw_readings_unencoded_plus_in_offset(client):
    # A literal '+' in a query string decodes to a space; the API reads it as the offset sign.
    resp = client.get("/api/v1/stations/V1/readings?start=2026-06-28T08:00:00+08:00&end=2026-06-28T09:00:00+08:00")
    assert resp.status_code == 200, resp.text
    assert resp.json()["points"] == [{"ts": "2026-06-28T00:10:00+00:00", "metric": "water_level_m", "value": 11.25}]


def test_raw_readings_limit_and_truncated(client):
    body = client.get("/api/v1/stations/R1/readings",
                      params={**WINDOW, "metric": "water_level_m", "limit": 2}).json()
    assert [p["value"] for p in body["points"]] == [50.0, 51.0] and body["truncated"] is True
    body = client.get("/api/v1/stations/R1/readings",
                      params={**WINDOW, "metric": "water_level_m", "limit": 6}).json()
    assert len(body["points"]) == 6 and body["truncated"] is False


def test_raw_readings_default_window(client, backends):
    _, store, _ = backends
    now = utcnow()
    store.write([Reading("V1", "river", "flow_m3s", now - timedelta(hours=1), 7.0),
                 Reading("V1", "river", "flow_m3s", now - timedelta(hours=30), 9.0)])
    body = client.get("/api/v1/stations/V1/readings", params={"metric": "flow_m3s"}).json()
    assert [p["value"] for p in body["points"]] == [7.0]
    start, end = datetime.fromisoformat(body["start"]), datetime.fromisoformat(body["end"])
    assert end - start == timedelta(hours=24) and abs(end - now) < timedelta(minutes=1)
    assert body["end"].endswith("+00:00")
    # Only start given: end is now.
    body = client.get("/api/v1/stations/V1/readings",
                      params={"metric": "flow_m3s", "start": (now - timedelta(hours=48)).isoformat()}).json()
    assert [p["value"] for p in body["points"]] == [9.0, 7.0]


@pytest.mark.parametrize(("agg", "expected"), [
    (None, [50.5, 53.0, 59.0]),
    ("mean", [50.5, 53.0, 59.0]),
    ("sum", [101.0, 106.0, 118.0]),
    ("min", [50.0, 52.0, 58.0]),
    ("max", [51.0, 54.0, 60.0]),
    ("count", [2.0, 2.0, 2.0]),
])
def test_aggregated_buckets(client, agg, expected):
    params = {**WINDOW, "metric": "water_level_m", "every": "10m"}
    if agg:
        params["agg"] = agg
    resp = client.get("/api/v1/stations/R1/readings", params=params)
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert body["every"] == 600 and body["agg"] == (agg or "mean") and body["metric"] == "water_level_m"
    assert body["points"] == [{"ts": f"2026-06-28T00:{m:02d}:00+00:00", "value": v}
                              for m, v in zip((0, 10, 20), expected)]


@pytest.mark.parametrize(("every", "seconds", "expected"), [
    ("1h", 3600, [{"ts": "2026-06-28T00:00:00+00:00", "value": 325.0}]),
    ("900", 900, [{"ts": "2026-06-28T00:00:00+00:00", "value": 153.0},
                  {"ts": "2026-06-28T00:15:00+00:00", "value": 172.0}]),
    ("1d", 86400, [{"ts": "2026-06-28T00:00:00+00:00", "value": 325.0}]),
])
def test_aggregation_every_forms(client, every, seconds, expected):
    body = client.get("/api/v1/stations/R1/readings",
                      params={**WINDOW, "metric": "water_level_m", "every": every, "agg": "sum"}).json()
    assert body["every"] == seconds and body["points"] == expected


def test_rain_sum_per_bucket(client):
    body = client.get("/api/v1/stations/P1/readings",
                      params={**WINDOW, "metric": "rain_mm", "every": "5m", "agg": "sum"}).json()
    assert body["points"] == [{"ts": "2026-06-28T00:00:00+00:00", "value": 0.5},
                              {"ts": "2026-06-28T00:05:00+00:00", "value": 1.5}]


def test_readings_unknown_station_404(client):
    resp = client.get("/api/v1/stations/NOPE/readings", params=WINDOW)
    assert resp.status_code == 404 and resp.json() == {"detail": "station NOPE not found"}


@pytest.mark.parametrize(("params", "needles"), [
    ({"start": "2026-06-28T01:00:00+00:00", "end": "2026-06-28T00:00:00+00:00"}, ["start", "before end"]),
    ({"start": "2026-06-28T00:00:00+00:00", "end": "2026-06-28T00:00:00+00:00"}, ["before end"]),
    ({"start": "2025-01-01T00:00:00+00:00", "end": "2026-06-28T00:00:00+00:00"}, ["366 days"]),
    ({**WINDOW, "metric": "flow_m3s"}, ["unknown metric 'flow_m3s'", "water_level_m", "storage_mcm",
                                        "seepage_pressure_kpa"]),
    ({**WINDOW, "metric": "water_level_m", "every": "0"}, ["every", "at least 1 second"]),
    ({**WINDOW, "metric": "water_level_m", "every": "0.5s"}, ["at least 1 second"]),
    ({**WINDOW, "metric": "water_level_m", "every": "1.5"}, ["whole number of seconds"]),
    ({**WINDOW, "metric": "water_level_m", "every": "fortnight"}, ["every", "5m"]),
    ({**WINDOW, "metric": "water_level_m", "every": "400d"}, ["at most 366 days"]),
    ({"start": "2026-01-01T00:00:00+00:00", "end": "2026-06-28T00:00:00+00:00", "metric": "water_level_m",
      "every": "1m"}, ["buckets requested", "10,000"]),
    ({**WINDOW, "metric": "water_level_m", "agg": "mean"}, ["agg", "needs every"]),
    ({**WINDOW, "every": "5m"}, ["metric is required", "water_level_m"]),
    ({**WINDOW, "metric": "water_level_m", "every": "5m", "agg": "median"}, ["agg", "mean"]),
    ({"start": "2026-06-28T00:00:00", "end": "2026-06-28T01:00:00+00:00"}, ["start", "no UTC offset"]),
    ({"start": "yesterday"}, ["start", "ISO 8601"]),
    ({"end": "1719532800"}, ["end", "ISO 8601"]),
    ({"end": "0001-01-01T00:00:00Z"}, ["end", "between 1678 and 2261"]),
    ({"start": "9999-12-31T23:00:00-05:00"}, ["start", "between 1678 and 2261"]),
    ({**WINDOW, "limit": 0}, ["limit"]),
    ({**WINDOW, "limit": 50_001}, ["limit", "50000"]),
])
def test_readings_422(client, params, needles):
    _422(client.get("/api/v1/stations/R1/readings", params=params), *needles)


def test_bucket_count_at_the_cap_is_fine(client):
    # 10,000 one-minute buckets in a window of exactly 10,000 minutes.
    end = T0 + timedelta(minutes=10_000)
    resp = client.get("/api/v1/stations/R1/readings", params={
        "start": T0.isoformat(), "end": end.isoformat(), "metric": "water_level_m", "every": "1m", "agg": "count"})
    assert resp.status_code == 200 and len(resp.json()["points"]) == 6


def test_latest_readings(client):
    resp = client.get("/api/v1/readings/latest")
    assert resp.status_code == 200
    assert resp.json() == [
        {"station_id": "P1", "kind": "rain", "metric": "rain_mm", "ts": "2026-06-28T00:05:00+00:00", "value": 1.5},
        {"station_id": "R1", "kind": "reservoir", "metric": "inflow_m3s", "ts": "2026-06-28T00:00:00+00:00",
         "value": 3.5},
        {"station_id": "R1", "kind": "reservoir", "metric": "water_level_m", "ts": "2026-06-28T00:25:00+00:00",
         "value": 60.0},
        {"station_id": "V1", "kind": "river", "metric": "water_level_m", "ts": "2026-06-28T00:10:00+00:00",
         "value": 11.25},
    ]


def test_latest_readings_by_kind(client):
    body = client.get("/api/v1/readings/latest", params={"kind": "rain"}).json()
    assert [(r["station_id"], r["metric"], r["value"]) for r in body] == [("P1", "rain_mm", 1.5)]
    assert client.get("/api/v1/readings/latest", params={"kind": "intake"}).json() == []
    _422(client.get("/api/v1/readings/latest", params={"kind": "ocean"}), "kind", "groundwater")


# -- alerts ------------------------------------------------------------------
ALERT_KEYS = {"id", "station_id", "kind", "rule", "metric", "severity", "state", "started_at", "updated_at", "value",
              "threshold", "message", "acknowledged_at", "acknowledged_by", "cleared_at"}


def test_list_alerts(client, alert_ids):
    resp = client.get("/api/v1/alerts")
    assert resp.status_code == 200
    alerts = resp.json()
    assert [a["id"] for a in alerts] == [alert_ids["blue"], alert_ids["yellow"]]  # newest first
    assert set(alerts[1]) == ALERT_KEYS
    assert alerts[1] == {
        "id": alert_ids["yellow"], "station_id": "R1", "kind": "reservoir", "rule": "reservoir_flood_limit",
        "metric": "water_level_m", "severity": "yellow", "state": "active",
        "started_at": "2026-06-28T00:15:00+00:00", "updated_at": "2026-06-28T00:20:00+00:00", "value": 58.0,
        "threshold": 52.5, "message": "R1 above the flood-limit level", "acknowledged_at": None,
        "acknowledged_by": None, "cleared_at": None,
    }
    assert alerts[0]["cleared_at"] == "2026-06-28T01:00:00+00:00"


def test_list_alerts_filters_and_paging(client, alert_ids):
    def ids(**params):
        resp = client.get("/api/v1/alerts", params=params)
        assert resp.status_code == 200, resp.text
        return [a["id"] for a in resp.json()]

    assert ids(state="active") == [alert_ids["yellow"]]
    assert ids(state="cleared") == [alert_ids["blue"]]
    assert ids(state="closed") == []
    assert ids(severity="blue") == [alert_ids["blue"]]
    assert ids(severity="red") == []
    assert ids(station_id="R1") == [alert_ids["yellow"]]
    assert ids(station_id="R1", state="cleared") == []
    assert ids(limit=1) == [alert_ids["blue"]]
    assert ids(limit=1, offset=1) == [alert_ids["yellow"]]
    assert ids(offset=2) == []


@pytest.mark.parametrize(("params", "needles"), [
    ({"state": "open"}, ["state", "active", "acknowledged"]),
    ({"severity": "purple"}, ["severity", "blue", "red"]),
    ({"limit": 0}, ["limit"]),
    ({"limit": 1001}, ["limit"]),
    ({"offset": -1}, ["offset"]),
])
def test_list_alerts_422(client, params, needles):
    _422(client.get("/api/v1/alerts", params=params), *needles)


def test_get_alert_with_events(client, alert_ids):
    resp = client.get(f"/api/v1/alerts/{alert_ids['yellow']}")
    assert resp.status_code == 200
    body = resp.json()
    assert set(body) == ALERT_KEYS | {"events"}
    assert body["severity"] == "yellow" and body["state"] == "active"
    [raised] = body["events"]
    assert raised["event"] == "raised" and raised["severity"] == "yellow"
    assert raised["data_time"] == "2026-06-28T00:15:00+00:00"
    assert raised["detail"] == "R1 above the flood-limit level"
    assert raised["wall_time"].endswith("+00:00")


@pytest.mark.parametrize(("path", "status"), [
    ("/api/v1/alerts/999999", 404),
    ("/api/v1/alerts/abc", 422),
    ("/api/v1/alerts/0", 422),
    ("/api/v1/alerts/-5", 422),
    ("/api/v1/alerts/99999999999999999999999999", 422),
    ("/api/v1/alerts/1.5", 422),
])
def test_get_alert_bad_ids(client, path, status):
    resp = client.get(path)
    assert resp.status_code == status, resp.text
    if status == 404:
        assert resp.json() == {"detail": "alert 999999 not found"}
    else:
        _422(resp, "alert_id")


def test_ack_alert_twice(client, alert_ids):
    aid = alert_ids["yellow"]
    first = client.post(f"/api/v1/alerts/{aid}/ack", json={"by": "duty officer Wang"})
    assert first.status_code == 200
    a = first.json()
    assert set(a) == ALERT_KEYS
    assert a["state"] == "acknowledged" and a["acknowledged_by"] == "duty officer Wang"
    assert a["acknowledged_at"].endswith("+00:00")
    second = client.post(f"/api/v1/alerts/{aid}/ack", json={"by": "someone else"})
    assert second.status_code == 200 and second.json() == a  # idempotent: first acknowledgement stands
    events = client.get(f"/api/v1/alerts/{aid}").json()["events"]
    assert [e["event"] for e in events] == ["raised", "acknowledged"]
    assert events[1]["detail"] == "by duty officer Wang"
    assert [x["id"] for x in client.get("/api/v1/alerts", params={"state": "acknowledged"}).json()] == [aid]


def test_ack_without_body_defaults_to_the_user(client, alert_ids):
    resp = client.post(f"/api/v1/alerts/{alert_ids['yellow']}/ack")
    assert resp.status_code == 200 and resp.json()["acknowledged_by"] == "admin"  # the signed-in user


def test_ack_empty_object_defaults_to_the_user(client, alert_ids):
    resp = client.post(f"/api/v1/alerts/{alert_ids['yellow']}/ack", json={})
    assert resp.status_code == 200 and resp.json()["acknowledged_by"] == "admin"


def test_ack_cleared_alert_stays_cleared(client, alert_ids):
    resp = client.post(f"/api/v1/alerts/{alert_ids['blue']}/ack", json={"by": "ops"})
    assert resp.status_code == 200
    assert resp.json()["state"] == "cleared" and resp.json()["acknowledged_by"] == "ops"


def test_ack_404_and_422(client, alert_ids):
    resp = client.post("/api/v1/alerts/424242/ack", json={"by": "x"})
    assert resp.status_code == 404 and resp.json() == {"detail": "alert 424242 not found"}
    _422(client.post("/api/v1/alerts/abc/ack"), "alert_id")
    aid = alert_ids["yellow"]
    _422(client.post(f"/api/v1/alerts/{aid}/ack", json={"by": ""}), "by")
    _422(client.post(f"/api/v1/alerts/{aid}/ack", json={"by": "x" * 101}), "by")
    _422(client.post(f"/api/v1/alerts/{aid}/ack", json={"by": "x", "state": "closed"}), "state")
    _422(client.post(f"/api/v1/alerts/{aid}/ack", content=b"{not json", headers={"content-type": "application/json"}))
    # Nothing above acknowledged it.
    assert client.get(f"/api/v1/alerts/{aid}").json()["acknowledged_at"] is None


def test_body_that_cannot_be_parsed_is_a_readable_422(client, alert_ids):
    # Found by tests/test_api_fuzz.py: FastAPI answered these with an undocumented bare 400.
    aid = alert_ids["yellow"]
    for body in (b'{"by": "\xe9"}', b"M\xc3\x28"):
        resp = client.post(f"/api/v1/alerts/{aid}/ack", content=body, headers={"content-type": "application/json"})
        detail = _422(resp, "request body", "UTF-8")
        assert resp.json()["errors"] == [{"loc": ["body"], "msg": detail.removeprefix("request body: "),
                                          "type": "json_invalid"}]
    resp = client.post("/api/v1/auth/login", content=b"\x80", headers={"content-type": "application/json"})
    _422(resp, "UTF-8")
    # A broken multipart form (the photo uploads): Starlette's bare 400 becomes the same readable 422.
    boundary = "a222103b9b30b1f9e8be6882ecedb1d2"
    resp = client.post("/api/v1/patrols/1/photos", content=f"--{boundary}\r\n[]--{boundary}--\r\n".encode(),
                       headers={"content-type": f"multipart/form-data; boundary={boundary}"})
    assert _422(resp, "request body", "multipart").startswith("request body: not a valid multipart form")
    assert client.get(f"/api/v1/alerts/{aid}").json()["acknowledged_at"] is None
    # Other HTTP errors keep FastAPI's handling (and headers).
    resp = client.get("/api/v1/nowhere")
    assert resp.status_code == 404 and resp.json() == {"detail": "Not Found"}
    resp = client.get("/api/v1/stations", headers={"Authorization": "Bearer nope"})
    assert resp.status_code == 401 and resp.headers["www-authenticate"].startswith("Bearer")


# -- dead letters ------------------------------------------------------------
def test_dead_letters(client):
    resp = client.get("/api/v1/dead-letters")
    assert resp.status_code == 200
    binary, text = resp.json()  # newest first
    assert text == {"id": text["id"], "received_at": "2026-06-28T00:01:00+00:00", "topic": "water/river/V9",
                    "reason": "bad_timestamp", "detail": "not an ISO 8601 timestamp", "payload": '{"ts": "bad"}',
                    "payload_encoding": "utf-8", "payload_bytes": 13, "payload_truncated": False,
                    "payload_sha256": hashlib.sha256(b'{"ts": "bad"}').hexdigest()}
    assert binary["payload_encoding"] == "base64" and binary["reason"] == "not_json"
    assert base64.b64decode(binary["payload"]) == b"\xff\x00\xfe"
    assert binary["received_at"] == "2026-06-28T00:02:00+00:00"


def test_dead_letters_filters_and_paging(client):
    def topics(**params):
        resp = client.get("/api/v1/dead-letters", params=params)
        assert resp.status_code == 200, resp.text
        return [d["topic"] for d in resp.json()]

    assert topics(reason="not_json") == ["water/rain/P1"]
    assert topics(reason="nope") == []
    assert topics(start="2026-06-28T00:01:30+00:00") == ["water/rain/P1"]
    assert topics(end="2026-06-28T08:01:30+08:00") == ["water/river/V9"]
    assert topics(start="2026-06-28T00:00:00Z", end="2026-06-28T00:03:00Z") == ["water/rain/P1", "water/river/V9"]
    assert topics(limit=1) == ["water/rain/P1"]
    assert topics(limit=1, offset=1) == ["water/river/V9"]


@pytest.mark.parametrize(("params", "needles"), [
    ({"start": "2026-06-28T01:00:00Z", "end": "2026-06-28T00:00:00Z"}, ["before end"]),
    ({"start": "2026-06-28"}, ["start", "no UTC offset"]),
    ({"end": "soon"}, ["end", "ISO 8601"]),
    ({"limit": 0}, ["limit"]),
    ({"offset": -1}, ["offset"]),
])
def test_dead_letters_422(client, params, needles):
    _422(client.get("/api/v1/dead-letters", params=params), *needles)


# -- errors ------------------------------------------------------------------
def test_unknown_route_is_404(client):
    assert client.get("/api/v1/nothing").status_code == 404


def test_genuine_bug_is_a_logged_json_500(backends, settings, caplog):
    registry, store, _ = backends
    app = create_app(settings, registry=registry, store=store)

    @app.get("/boom")
    def boom() -> None:
        raise RuntimeError("secret internals")

    with TestClient(app) as c, caplog.at_level(logging.ERROR, logger="api"):
        resp = c.get("/boom")
    assert resp.status_code == 500 and resp.json() == {"detail": "internal server error"}
    assert "secret" not in resp.text
    assert any(r.exc_info and "secret internals" in str(r.exc_info[1]) for r in caplog.records)


def test_store_outage_is_503_not_500(backends, settings):
    registry, _, _ = backends

    class DownStore:
        def latest(self, *a, **k):
            raise StoreUnavailable("connection refused")

    with TestClient(create_app(settings, registry=registry, store=DownStore()),  # type: ignore[arg-type]
                    headers=auth_headers(settings, registry)) as c:
        resp = c.get("/api/v1/readings/latest")
    assert resp.status_code == 503 and "unavailable" in resp.json()["detail"]


def test_registry_without_schema_is_503_not_500(backends, settings, tmp_path):
    registry, store, _ = backends
    bare = open_registry(f"sqlite:///{tmp_path}/bare.sqlite3")  # create_schema() never called
    try:
        with TestClient(create_app(settings, registry=bare, store=store),
                        headers=auth_headers(settings, registry)) as c:
            resp = c.get("/api/v1/stations")
        assert resp.status_code == 503 and "registry" in resp.json()["detail"]
    finally:
        bare.close()


# -- server ------------------------------------------------------------------
def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_api_server_serves_over_http_and_frees_port(backends, settings):
    registry, store, _ = backends
    port = _free_port()
    server = ApiServer(settings, registry=registry, store=store, host="127.0.0.1", port=port)
    server.start()
    try:
        assert server.url == f"http://127.0.0.1:{port}"
        resp = httpx.get(f"{server.url}/healthz", timeout=5)
        assert resp.status_code == 200 and resp.json()["status"] == "ok"
        assert httpx.get(f"{server.url}/api/v1/stations/R1", headers=auth_headers(settings, registry),
                         timeout=5).json()["name"] == "Shimen Reservoir"
    finally:
        server.stop()
    with pytest.raises(httpx.TransportError):
        httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2)
    with socket.socket() as s:  # the port is free again
        s.bind(("127.0.0.1", port))
    # Backends passed in belong to the caller: still open.
    assert store.ping() and registry.get_station("R1") is not None


def test_api_server_port_taken(backends, settings):
    registry, store, _ = backends
    with socket.socket() as blocker:
        blocker.bind(("127.0.0.1", 0))
        blocker.listen(1)
        port = blocker.getsockname()[1]
        server = ApiServer(settings, registry=registry, store=store, host="127.0.0.1", port=port)
        with pytest.raises(RuntimeError, match="already in use"):
            server.start()


def test_api_server_port_zero_picks_one(backends, settings):
    registry, store, _ = backends
    with ApiServer(settings, registry=registry, store=store, host="127.0.0.1", port=0) as server:
        assert server.port != 0
        assert httpx.get(f"{server.url}/healthz", timeout=5).status_code == 200
