"""The storm scenario through the reports: one event, areal rain everywhere, inflow volumes that add up."""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest

from core.reports.service import ReportContext, areal_rainfall, rain_event, rain_events, reservoir_inflow
from core.tsdb import open_store
from core.tsdb.sqlite import SQLiteStore
from simulators.town_polygons import generate_towns
from tests.reports_support import (SH, STORM_END, STORM_START, balance_reservoirs, report_stations,
                                   storm_readings)

NOW = STORM_END + timedelta(hours=2)


@pytest.fixture(scope="module", params=["sqlite", "influxdb"])
def storm_store(request, tmp_path_factory, district):
    """The storm in each store: the reports must come out the same from SQL and from InfluxQL aggregates."""
    if request.param == "sqlite":
        store = SQLiteStore(tmp_path_factory.mktemp("storm") / "ts.sqlite3")
    else:
        server = request.getfixturevalue("influxdb")
        store = open_store(server.url_for("storm_" + uuid.uuid4().hex[:8]))
    store.write(storm_readings(district))
    yield store
    store.close()


@pytest.fixture(scope="module")
def ctx(district) -> ReportContext:
    return ReportContext(report_stations(district), generate_towns(), SH)


def test_the_storm_is_one_event_with_areal_rain_in_the_district_and_every_town(storm_store, ctx) -> None:
    listed = rain_events(storm_store, ctx, STORM_START - timedelta(days=1), STORM_END, NOW)
    assert len(listed["events"]) == 1
    ev = listed["events"][0]
    assert ev["closed"] and ev["id"] == "2026072010"
    assert ev["district_areal_rain_mm"] > 20 and ev["wettest_rain_mm"] >= 200
    assert ev["gauges_used"] == 24

    detail = rain_event(storm_store, ctx, ev["id"], NOW)
    assert detail is not None and len(detail["towns"]) == 17
    for town in detail["towns"]:
        assert town["areal_rain_mm"] is not None and town["gauges"], town["town"]
        assert sum(g["weight"] for g in town["gauges"]) == pytest.approx(1.0, abs=1e-3)
    # Areal rain lies between the driest and the wettest gauge, and is not their plain mean.
    totals = [g["rain_mm"] for g in detail["gauges"]]
    plain_mean = sum(totals) / len(totals)
    assert min(totals) <= detail["district_areal_rain_mm"] <= max(totals)
    assert detail["district_areal_rain_mm"] != pytest.approx(plain_mean, abs=0.05)
    wettest = max(detail["gauges"], key=lambda g: g["rain_mm"])
    assert wettest["max_3h_rain_mm"] >= 100  # the red-signal core
    assert rain_event(storm_store, ctx, "2026072011", NOW) is None


def test_a_silent_gauge_drops_out_and_the_report_says_so(tmp_path, district, ctx) -> None:
    store = SQLiteStore(tmp_path / "ts.sqlite3")
    store.write([r for r in storm_readings(district) if r.station_id != "RG0001"])
    detail = rain_event(store, ctx, "2026072010", NOW)
    assert detail["gauges_dropped"] == ["RG0001"]
    town = next(t for t in detail["towns"] if t["town"] == "环秀街道")  # RG0001 is this town's seat gauge
    assert "RG0001" not in [g["station_id"] for g in town["gauges"]] and town["areal_rain_mm"] is not None
    store.close()


def test_areal_rainfall_by_day_month_and_event(storm_store, ctx) -> None:
    rep = areal_rainfall(storm_store, ctx, STORM_START, STORM_END, STORM_END)
    assert [d["period"] for d in rep["days"]] == ["2026-07-20", "2026-07-21"]
    assert rep["days"][0]["start"] == "2026-07-20T08:00:00+08:00"
    assert rep["months"][0]["period"] == "2026-07"
    # The storm falls within 20 July's hydrological day; a month sums its days.
    assert rep["days"][0]["district_areal_rain_mm"] == pytest.approx(rep["events"][0]["district_areal_rain_mm"],
                                                                     abs=0.2)
    assert rep["days"][1]["gauges_used"] and not rep["days"][1]["gauges_dropped"]  # a day cut short by "now"
    month = rep["months"][0]["district_areal_rain_mm"]
    assert month == pytest.approx(sum(d["district_areal_rain_mm"] for d in rep["days"]), abs=0.3)


def test_reservoir_inflow_volumes_are_positive_and_match_storage_change(storm_store, ctx, district) -> None:
    rep = reservoir_inflow(storm_store, ctx, STORM_START, STORM_END, NOW, hydrograph=True)
    rows = rep["reservoirs"]
    assert len(rows) == 40
    methods = {r["station_id"]: r["method"] for r in rows}
    stations = {s.id: s for s in district}
    assert {s for s, m in methods.items() if m == "balance"} == balance_reservoirs(district)
    for r in rows:
        assert r["inflow_volume_10k_m3"] > 0, r
        assert r["inflow_volume_mcm"] == pytest.approx(r["inflow_volume_10k_m3"] / 100, abs=1e-3)
        # Inflow − outflow = storage change, up to 2 % and what the level gauge's noise (± 2 cm of wind and waves,
        # plus rounding to the centimetre) does to the storage at each end of the window.
        st, top = stations[r["station_id"]], r["max_level_m"]
        noise_10k_m3 = (st.storage_at(top + 0.03) - st.storage_at(top - 0.03)) * 100
        balance = r["storage_change_10k_m3"] + r["outflow_volume_10k_m3"]
        assert balance == pytest.approx(r["inflow_volume_10k_m3"], rel=0.02, abs=noise_10k_m3 + 0.05), r
        assert r["max_level_m"] is not None and r["margin_to_flood_limit_m"] is not None
        assert r["hydrograph"] and r["peak_inflow_m3s"] == pytest.approx(max(v for _, v in r["hydrograph"]),
                                                                          abs=0.01)
    assert [r["rank"] for r in rows] == list(range(1, 41))
    assert rep["district_inflow_volume_10k_m3"] == pytest.approx(sum(r["inflow_volume_10k_m3"] for r in rows),
                                                                 abs=0.1)
    # Two reservoirs rise over their flood-limit level in the storm (storm.yaml): negative margins.
    assert sum(r["margin_to_flood_limit_m"] < 0 for r in rows) >= 2


def test_late_readings_change_the_events_the_next_time_they_are_asked_for(tmp_path, ctx) -> None:
    from core.domain import Reading

    store = SQLiteStore(tmp_path / "ts.sqlite3")
    t0 = STORM_START
    gauges = [g.id for g in ctx.gauges]

    def rain(hour: float, mm: float, sid: str = "RG0005") -> Reading:
        return Reading(sid, "rain", "rain_mm", t0 + timedelta(hours=hour), mm)

    # Every gauge reports every 5 minutes (zeros when dry); RG0005 rains at hours 0 and 8: a 7 h gap, two events.
    store.write([Reading(g, "rain", "rain_mm", t0 + timedelta(minutes=5 * i), 0.0) for g in gauges for i in range(240)])
    store.write([rain(0.5, 4.0), rain(8.5, 6.0)])
    now = t0 + timedelta(hours=20)
    first = rain_events(store, ctx, t0, t0 + timedelta(hours=20), now)["events"]
    assert [e["id"] for e in first] == ["2026072010", "2026072018"]
    # A reading of hour 4 arrives late (an RTU's buffer after a link outage): the gap is gone, one event.
    store.write([rain(4.25, 1.5, "RG0006")])
    again = rain_events(store, ctx, t0, t0 + timedelta(hours=20), now)["events"]
    assert [e["id"] for e in again] == ["2026072010"] and again[0]["duration_h"] == 9
    store.close()


def test_an_event_running_when_the_period_starts_keeps_its_start_and_id(storm_store, ctx) -> None:
    later = STORM_START + timedelta(hours=3)  # in the middle of the storm
    (ev,) = rain_events(storm_store, ctx, later, STORM_END, NOW)["events"]
    assert ev["id"] == "2026072010" and ev["start"] == "2026-07-20T10:00:00+08:00"
    assert rain_event(storm_store, ctx, ev["id"], NOW) is not None


def test_without_town_boundaries_the_report_says_why_there_is_no_areal_rain(storm_store, district) -> None:
    bare = ReportContext(report_stations(district), [], SH)
    (ev,) = rain_events(storm_store, bare, STORM_START, STORM_END, NOW)["events"]
    assert ev["district_areal_rain_mm"] is None
    detail = rain_event(storm_store, bare, ev["id"], NOW)
    assert "import-towns" in detail["note"] and detail["towns"] == []
