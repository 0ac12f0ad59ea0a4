"""The reports API on the storm scenario: JSON, CSV and Excel, readable 422s, roles."""

from __future__ import annotations

import io
import warnings
from datetime import timedelta

import pytest

with warnings.catch_warnings():
    warnings.filterwarnings("ignore", message=r"Using `httpx` with `starlette.testclient` is deprecated")
    from fastapi.testclient import TestClient

from api import create_app
from core.registry import open_registry
from core.reports.towns import TownRepo
from core.settings import Settings
from core.tsdb.sqlite import SQLiteStore
from simulators.town_polygons import generate_towns
from tests.auth_util import auth_headers
from tests.reports_support import STORM_END, STORM_START, report_stations, storm_readings

Q = {"from": STORM_START.isoformat(), "to": STORM_END.isoformat()}


@pytest.fixture(scope="module")
def client(tmp_path_factory, district):
    tmp = tmp_path_factory.mktemp("reports-api")
    settings = Settings(data_dir=tmp, _env_file=None)
    registry = open_registry(settings.db_url)
    registry.create_schema()
    registry.upsert_stations(report_stations(district))
    TownRepo(registry.engine).replace_all(generate_towns())
    store = SQLiteStore(tmp / "ts.sqlite3")
    store.write(storm_readings(district))
    with TestClient(create_app(settings, registry=registry, store=store, stream=False),
                    headers=auth_headers(settings, registry, "viewer", "viewer")) as c:
        yield c
    store.close()
    registry.close()


def test_events_list_and_detail(client) -> None:
    r = client.get("/api/v1/reports/rain-events", params=Q)
    assert r.status_code == 200, r.text
    (ev,) = r.json()["events"]
    assert ev["id"] == "2026072010" and ev["start"] == "2026-07-20T10:00:00+08:00"
    d = client.get(f"/api/v1/reports/rain-events/{ev['id']}").json()
    assert len(d["gauges"]) == 24 and len(d["towns"]) == 17 and d["hyetographs"]
    assert client.get("/api/v1/reports/rain-events/2026072009").status_code == 404
    bad = client.get("/api/v1/reports/rain-events/2026-07-20")
    assert bad.status_code == 422 and "YYYYMMDDHH" in bad.json()["detail"]
    for odd in ("0001010100", "9999123123", "2026023010"):
        assert client.get(f"/api/v1/reports/rain-events/{odd}").status_code == 422, odd


@pytest.mark.parametrize("params, message", [
    ({"from": "2026-07-21T00:00:00+08:00", "to": "2026-07-20T00:00:00+08:00"}, "to must be after from"),
    ({"from": "2024-01-01T00:00:00+08:00", "to": "2026-01-01T00:00:00+08:00"}, "at most 366 days"),
    ({"from": "2026-07-20T00:00:00"}, "no UTC offset"),
    ({"format": "pdf"}, "format"),
])
def test_bad_periods_are_readable_422s(client, params, message) -> None:
    for path in ("rain-events", "areal-rainfall", "reservoir-inflow"):
        r = client.get(f"/api/v1/reports/{path}", params=params)
        assert r.status_code == 422 and message in r.text, (path, r.text)


def test_areal_rainfall_csv_has_chinese_headers_with_units(client) -> None:
    r = client.get("/api/v1/reports/areal-rainfall", params={**Q, "format": "csv"})
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/csv")
    assert 'filename="areal-rainfall-20260720-20260721-1.csv"' in r.headers["content-disposition"]
    text = r.content.decode("utf-8-sig").splitlines()
    assert text[0].startswith("时段,开始时间,结束时间,全区面雨量(mm),刘家庄镇面雨量(mm)")  # towns by name
    assert text[1].startswith("2026-07-20,2026-07-20T08:00:00+08:00")
    en = client.get("/api/v1/reports/areal-rainfall", params={**Q, "format": "csv", "lang": "en", "table": 3})
    assert en.content.decode("utf-8-sig").startswith("period,start,end,district areal rain (mm)")
    assert client.get("/api/v1/reports/areal-rainfall", params={**Q, "format": "csv", "table": 5}).status_code == 422


def test_reservoir_inflow_excel_one_sheet_per_table_numbers_as_numbers(client) -> None:
    from openpyxl import load_workbook

    r = client.get("/api/v1/reports/reservoir-inflow", params={**Q, "format": "xlsx"})
    assert r.status_code == 200 and r.headers["content-type"].startswith("application/vnd.openxmlformats")
    wb = load_workbook(io.BytesIO(r.content))
    assert wb.sheetnames == ["水库来水", "逐日来水"]
    ws = wb["水库来水"]
    header = [c.value for c in ws[1]]
    assert header[:5] == ["排序", "测站编码", "水库", "乡镇(街道)", "来水量(万m³)"]
    first = [c.value for c in ws[2]]
    assert first[0] == 1 and isinstance(first[4], float) and first[4] > 0
    js = client.get("/api/v1/reports/reservoir-inflow", params={**Q, "hydrograph": "true"}).json()
    assert first[1] == js["reservoirs"][0]["station_id"] and first[4] == js["reservoirs"][0]["inflow_volume_10k_m3"]
    assert js["reservoirs"][0]["hydrograph"]
    assert ws.max_row == 41


def test_towns_geojson_and_history(client) -> None:
    towns = client.get("/api/v1/reports/towns")
    assert towns.status_code == 200 and len(towns.json()["features"]) == 17
    h = client.get("/api/v1/reports/rainfall-history", params={"year": 2026})
    assert h.status_code == 200, h.text
    rows = h.json()["rows"]
    july = next(r for r in rows if r["scope"] == "district" and r["period"] == "07月")
    # Two days of July on record: too few for a monthly figure, and no past years stored.
    assert july["rain_mm"] is None and july["mean_mm"] is None and july["years"] == 0
    assert {r["scope"] for r in rows} == {"district", "town", "gauge"}
    assert client.get("/api/v1/reports/rainfall-history", params={"year": 2999}).status_code == 422


def test_reports_need_a_login(client) -> None:
    r = client.get("/api/v1/reports/rain-events", params=Q, headers={"Authorization": ""})
    assert r.status_code == 401
