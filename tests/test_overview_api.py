"""The dashboard's overview endpoints and its static files, over a real (temporary) SQLite registry and store."""

from __future__ import annotations

import re
import warnings
from datetime import datetime, timedelta, timezone

import pytest

with warnings.catch_warnings():
    warnings.filterwarnings("ignore", message=r"Using `httpx` with `starlette.testclient` is deprecated")
    from fastapi.testclient import TestClient

from api import create_app
from api.dashboard import DASHBOARD_DIR, STATIC_DIR
from core.auth import Role
from core.domain import Alert, FloodLimitPeriod, Reading, Station
from core.patrols.models import River
from core.patrols.repo import PatrolRepo
from core.registry import open_registry
from core.settings import Settings
from core.tsdb import open_store
from tests.auth_util import auth_headers

UTC = timezone.utc
# The data clock of these tests: the newest reading. June: the reservoir's main flood season applies.
T = datetime(2026, 6, 28, 6, 0, tzinfo=UTC)
TOWN_A, TOWN_B = "通济街道", "灵山镇"


def _stations() -> list[Station]:
    return [
        Station(id="R1", kind="reservoir", name="石门水库", town=TOWN_A, lat=36.40, lon=120.50, interval_s=300,
                dead_level_m=40.0, normal_level_m=55.0, flood_limit_level_m=53.0, design_flood_level_m=58.5,
                check_flood_level_m=59.8, level_storage=[(40.0, 1.0), (50.0, 5.0), (60.0, 12.0)],
                flood_limit_periods=[FloodLimitPeriod(start="0601", end="0731", level_m=52.5, type="main")]),
        Station(id="V1", kind="river", name="墨水河灵山站", town=TOWN_B, lat=36.45, lon=120.55, interval_s=300,
                warning_level_m=12.0, guaranteed_level_m=14.5),
        Station(id="P1", kind="rain", name="段村雨量站", town=TOWN_A, lat=36.50, lon=120.30, interval_s=300),
        Station(id="P2", kind="rain", name="北安雨量站", town=TOWN_B, lat=36.52, lon=120.32, interval_s=300),
        Station(id="W1", kind="village_water", name="东村供水", town=TOWN_A, village="东村", lat=36.41, lon=120.41),
        Station(id="W2", kind="village_water", name="西村供水", town=TOWN_A, village="西村", lat=36.42, lon=120.42),
        Station(id="W3", kind="village_water", name="南村供水", town=TOWN_B, village="南村", lat=36.43, lon=120.43),
    ]


def _readings() -> list[Reading]:
    rain = [(T, 2.0), (T - timedelta(minutes=30), 3.0), (T - timedelta(hours=1), 4.0),  # on the 1 h edge: out
            (T - timedelta(hours=2), 1.0), (T - timedelta(hours=5), 7.0), (T - timedelta(hours=23), 11.0),
            (T - timedelta(hours=25), 100.0)]  # older than 24 h: in no window
    out = [Reading("P1", "rain", "rain_mm", ts, v) for ts, v in rain]
    out += [Reading("R1", "reservoir", "water_level_m", T - timedelta(minutes=5), 52.0),
            Reading("R1", "reservoir", "water_level_m", T, 53.0),
            Reading("R1", "reservoir", "inflow_m3s", T, 12.5),
            Reading("V1", "river", "water_level_m", T - timedelta(hours=1), 11.0)]  # 12 intervals ago: stale
    for sid, turbidity in (("W1", 0.5), ("W2", 1.8)):
        out += [Reading(sid, "village_water", "turbidity_ntu", T, turbidity),
                Reading(sid, "village_water", "ph", T, 7.2),
                Reading(sid, "village_water", "free_chlorine_mgl", T, 0.3),
                Reading(sid, "village_water", "pressure_mpa", T, 0.25)]
    return out


def _alert(station_id: str, kind: str, rule: str, severity: str, state: str) -> Alert:
    return Alert(station_id=station_id, kind=kind, rule=rule, metric="", severity=severity, state=state,
                 started_at=T - timedelta(hours=1), updated_at=T, value=1.0, threshold=0.5, message=rule)


@pytest.fixture()
def client(tmp_path):
    settings = Settings(data_dir=tmp_path, _env_file=None)
    registry = open_registry(f"sqlite:///{tmp_path}/reg.sqlite3")
    registry.create_schema()
    store = open_store(f"sqlite:///{tmp_path}/ts.sqlite3")
    registry.upsert_stations(_stations())
    store.write(_readings())
    registry.insert_alert(_alert("P1", "rain", "rainstorm", "orange", "active"))
    registry.insert_alert(_alert("P1", "rain", "stale_station", "blue", "acknowledged"))
    registry.insert_alert(_alert("R1", "reservoir", "reservoir_level", "yellow", "acknowledged"))
    registry.insert_alert(_alert("W1", "village_water", "turbidity", "red", "cleared"))  # not open: no colour
    PatrolRepo(registry.engine, settings).upsert_rivers([
        River(id="RIV1", name="墨水河", geometry=[[[120.3, 36.3], [120.5, 36.4], [120.7, 36.45]]]),
        River(id="RIV2", name="大沽河", geometry=[[[120.2, 36.5], [120.25, 36.55]], [[120.22, 36.6], [120.25, 36.55]]]),
    ])
    app = create_app(settings, registry=registry, store=store, stream=False)
    with TestClient(app) as c:
        c.headers.update(auth_headers(settings, registry, "viewer1", Role.viewer))  # the least role reads them all
        yield c
    store.close()
    registry.close()


def test_overview_needs_a_token(client):
    for path in ("/api/v1/overview/map", "/api/v1/overview/rain", "/api/v1/overview/reservoirs",
                 "/api/v1/overview/water-quality"):
        assert client.get(path, headers={"Authorization": ""}).status_code == 401, path
        assert client.get(path).status_code == 200, path


def test_map_is_geojson_with_rivers_and_station_states(client):
    body = client.get("/api/v1/overview/map").json()
    assert body["type"] == "FeatureCollection"
    assert body["as_of"] == T.isoformat()
    rivers = [f for f in body["features"] if f["properties"]["layer"] == "river"]
    assert [(f["id"], f["geometry"]["type"]) for f in rivers] == [("RIV1", "LineString"), ("RIV2", "MultiLineString")]
    assert rivers[0]["geometry"]["coordinates"][0] == [120.3, 36.3]  # [lon, lat], GeoJSON order
    stations = {f["id"]: f for f in body["features"] if f["properties"]["layer"] == "station"}
    assert stations["R1"]["geometry"] == {"type": "Point", "coordinates": [120.5, 36.4]}
    states = {sid: f["properties"]["state"] for sid, f in stations.items()}
    # The most severe open alert wins; a cleared alert colours nothing; silent for 3 intervals is stale.
    assert states == {"R1": "yellow", "V1": "stale", "P1": "orange", "P2": "stale", "W1": "normal", "W2": "normal",
                      "W3": "stale"}
    assert stations["R1"]["properties"]["kind"] == "reservoir" and stations["R1"]["properties"]["town"] == TOWN_A
    assert stations["V1"]["properties"]["last_ts"] == (T - timedelta(hours=1)).isoformat()
    assert stations["P2"]["properties"]["last_ts"] is None
    assert body["counts"] == {"normal": 2, "blue": 0, "yellow": 1, "orange": 1, "red": 0, "stale": 3}
    west, south, east, north = body["bbox"]
    assert (west, south, east, north) == (120.2, 36.3, 120.7, 36.6)


def test_rain_sums_over_1_3_6_and_24_hours_of_the_data_clock(client):
    body = client.get("/api/v1/overview/rain").json()
    assert body["as_of"] == T.isoformat() and body["windows_h"] == [1, 3, 6, 24]
    p1, p2 = body["gauges"]  # wettest first; a gauge without reports last
    assert p1["station_id"] == "P1" and p1["state"] == "orange"
    assert (p1["rain_1h_mm"], p1["rain_3h_mm"], p1["rain_6h_mm"], p1["rain_24h_mm"]) == (5.0, 10.0, 17.0, 28.0)
    assert p2["station_id"] == "P2"
    assert (p2["rain_1h_mm"], p2["rain_24h_mm"], p2["last_ts"]) == (None, None, None)  # missing is not dry


def test_reservoirs_against_the_seasonal_flood_limit_with_storage(client):
    (r1,) = client.get("/api/v1/overview/reservoirs").json()["reservoirs"]
    assert r1["water_level_m"] == 53.0 and r1["ts"] == T.isoformat()
    assert r1["flood_limit_level_m"] == 52.5  # the June period, not the all-year 53.0
    assert r1["above_flood_limit_m"] == 0.5
    assert r1["storage_mcm"] == pytest.approx(7.1)  # from the curve: 5 + (12 − 5) × 0.3
    assert r1["storage_pct"] == pytest.approx(83.5)  # of 8.5 at the normal pool level (55 m)
    assert r1["inflow_m3s"] == 12.5 and r1["outflow_m3s"] is None
    assert r1["state"] == "yellow"


def test_water_quality_compliance_per_village_and_town(client):
    body = client.get("/api/v1/overview/water-quality").json()
    assert {lim["metric"]: (lim["min"], lim["max"]) for lim in body["limits"]} == {
        "turbidity_ntu": (None, 1.0), "ph": (6.5, 8.5), "free_chlorine_mgl": (0.05, 2.0)}
    villages = {v["station_id"]: v for v in body["villages"]}
    assert body["villages"][0]["station_id"] == "W2"  # non-compliant first
    assert villages["W2"]["compliant"] is False and villages["W2"]["failing"] == ["turbidity_ntu"]
    assert villages["W1"]["compliant"] is True and villages["W1"]["failing"] == []
    assert villages["W1"]["pressure_mpa"] == 0.25 and villages["W1"]["ts"] == T.isoformat()
    assert villages["W3"]["compliant"] is None  # no values: neither compliant nor not
    towns = {t["town"]: t for t in body["towns"]}
    assert towns[TOWN_A] == {"town": TOWN_A, "villages": 2, "reporting": 2, "compliant": 1, "rate_pct": 50.0}
    assert towns[TOWN_B] == {"town": TOWN_B, "villages": 1, "reporting": 0, "compliant": 0, "rate_pct": None}


def test_an_empty_district_answers_without_errors(tmp_path):
    settings = Settings(data_dir=tmp_path, _env_file=None)
    registry = open_registry(f"sqlite:///{tmp_path}/reg.sqlite3")
    registry.create_schema()
    store = open_store(f"sqlite:///{tmp_path}/ts.sqlite3")
    with TestClient(create_app(settings, registry=registry, store=store, stream=False)) as c:
        c.headers.update(auth_headers(settings, registry))
        body = c.get("/api/v1/overview/map").json()
        assert body["features"] == [] and body["bbox"] is None
        for path in ("rain", "reservoirs", "water-quality"):
            assert c.get(f"/api/v1/overview/{path}").status_code == 200, path
    store.close()
    registry.close()


# -- the static dashboard -------------------------------------------------------------------------------------
def test_pages_are_public_and_allow_nothing_from_other_origins(client):
    for path, script in (("/", "/static/app.js"), ("/bulletin", "/static/bulletin.js")):
        resp = client.get(path, headers={"Authorization": ""})
        assert resp.status_code == 200, path
        assert resp.headers["content-type"].startswith("text/html")
        assert f'src="{script}"' in resp.text
        csp = resp.headers["content-security-policy"]
        assert "default-src 'self'" in csp and "connect-src 'self'" in csp
    resp = client.get("/static/app.js", headers={"Authorization": ""})
    assert resp.status_code == 200 and resp.headers["content-type"].startswith("text/javascript")
    assert client.get("/static/style.css").headers["content-type"].startswith("text/css")
    for bad in ("/static/nope.js", "/static/%2e%2e/__init__.py", "/static/..%2f..%2fapp.py", "/static/"):
        assert client.get(bad).status_code == 404, bad
    paths = client.get("/openapi.json").json()["paths"]
    assert not {"/", "/bulletin"} & set(paths) and not any(p.startswith("/static") for p in paths)


def test_every_module_a_page_imports_is_served_and_nothing_comes_from_the_network(client):
    """No build step: the browser loads the files as they are, so every relative import must resolve."""
    sources = {p: p.read_text(encoding="utf-8") for p in [*DASHBOARD_DIR.glob("*.html"), *STATIC_DIR.rglob("*")]
               if p.is_file()}
    for path, text in sources.items():
        external = re.findall(r"(?:https?:)?//[\w.-]+\.[a-z]{2,}[^\s\"')]*", text)
        assert [u for u in external if "www.w3.org/2000/svg" not in u] == [], path  # only the SVG namespace
        if path.suffix != ".js":
            continue
        for spec in re.findall(r"^import\s.*?from\s+\"([^\"]+)\";", text, re.M):
            assert spec.startswith("./"), (path, spec)
            target = (path.parent / spec).resolve().relative_to(STATIC_DIR).as_posix()
            assert client.get(f"/static/{target}").status_code == 200, (path, spec)
    zh = (STATIC_DIR / "i18n" / "zh.js").read_text(encoding="utf-8")
    en = (STATIC_DIR / "i18n" / "en.js").read_text(encoding="utf-8")
    keys = re.compile(r'^\s*"([\w.]+)":', re.M)
    assert set(keys.findall(zh)) == set(keys.findall(en))  # both languages label everything
