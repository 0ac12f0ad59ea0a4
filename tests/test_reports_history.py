"""This year against past years, on a seeded multi-year daily history with fixed moments."""

from __future__ import annotations

from datetime import date, datetime, timedelta

import pytest

from core.domain import Kind, Reading
from core.reports.history import compare_text, rainfall_history
from core.reports.service import ReportContext
from core.timeutil import UTC, zone
from core.tsdb.sqlite import SQLiteStore
from simulators.rain_history import MONTHLY_MM, daily_history, history_span, seed_history
from simulators.town_polygons import generate_towns

SH = zone("Asia/Shanghai")


def local(*a: int) -> datetime:
    return datetime(*a, tzinfo=SH).astimezone(UTC)


@pytest.fixture(scope="module")
def gauges(district):
    return [s for s in district if s.kind == Kind.rain]


def test_the_seeded_climate_is_seasonal_with_a_wet_july_and_august(gauges) -> None:
    rows = list(daily_history(gauges[:3], date(2000, 1, 1), date(2020, 1, 1), SH))
    by_month = [0.0] * 12
    for r in rows:
        by_month[r.ts.astimezone(SH).month - 1] += r.value / 3 / 20
    assert sum(by_month) == pytest.approx(sum(MONTHLY_MM), rel=0.25)
    assert by_month[6] + by_month[7] > 0.4 * sum(by_month)
    assert max(by_month[:3] + by_month[10:]) < min(by_month[6], by_month[7]) / 4
    # One reading per gauge and day, each inside its hydrological day.
    assert len(rows) == 3 * (date(2020, 1, 1) - date(2000, 1, 1)).days
    assert {r.ts.astimezone(SH).hour for r in rows} == {12}


def test_history_span_ends_the_day_before_now_in_the_bureaus_zone() -> None:
    # 07:59 on 1 January is still 31 December's hydrological day: history stops at 30 December.
    assert history_span(local(2027, 1, 1, 7, 59), 3, SH) == (date(2023, 1, 1), date(2026, 12, 30))
    assert history_span(local(2027, 1, 1, 8, 0), 3, SH) == (date(2024, 1, 1), date(2026, 12, 31))


def test_compare_text() -> None:
    assert compare_text(120.0, 100.0) == (20.0, "偏多20.0%")
    assert compare_text(75.0, 100.0) == (-25.0, "偏少25.0%")
    assert compare_text(100.0, 100.0) == (0.0, "持平")
    assert compare_text(5.0, None) == (None, None)


def test_this_year_against_the_multi_year_mean_and_last_year(tmp_path, gauges) -> None:
    store = SQLiteStore(tmp_path / "ts.sqlite3")
    now = local(2028, 3, 1, 7, 59)  # leap year; still 29 February's hydrological day
    seed_history(store, gauges, now, years=4, tz=SH)
    # Today's readings, as live 5-minute data: 2 mm at every gauge.
    store.write([Reading(g.id, "rain", "rain_mm", local(2028, 2, 29, 9) + timedelta(minutes=5 * i), 0.1)
                 for g in gauges for i in range(20)])
    ctx = ReportContext(gauges, generate_towns(), SH)
    rep = rainfall_history(store, ctx, 2028, now, years_back=4)
    assert rep["years_compared"] == [2024, 2025, 2026, 2027]
    periods = [r["period"] for r in rep["rows"] if r["scope"] == "district"]
    assert periods == ["01月", "02月", "年初至今"]  # March has begun in calendar time, not yet in hydrology
    feb = next(r for r in rep["rows"] if r["scope"] == "district" and r["period"] == "02月")
    assert feb["years"] == 4 and feb["mean_mm"] is not None and feb["last_year_mm"] is not None
    assert feb["vs_mean_pct"] == pytest.approx((feb["rain_mm"] - feb["mean_mm"]) / feb["mean_mm"] * 100, abs=1.0)
    assert feb["vs_mean_text"].startswith(("偏多", "偏少", "持平"))
    ytd = next(r for r in rep["rows"] if r["scope"] == "district" and r["period"] == "年初至今")
    jan = next(r for r in rep["rows"] if r["scope"] == "district" and r["period"] == "01月")
    assert ytd["rain_mm"] == pytest.approx(jan["rain_mm"] + feb["rain_mm"], abs=0.3)
    # A gauge's own figures: its January equals the sum of its daily readings.
    g0 = gauges[0]
    jan_sum = sum(r.value for r in daily_history([g0], date(2028, 1, 1), date(2028, 2, 1), SH))
    row = next(r for r in rep["rows"] if r["scope"] == "gauge" and r["id"] == g0.id and r["period"] == "01月")
    assert row["rain_mm"] == pytest.approx(jan_sum, abs=0.05)
    towns = [r for r in rep["rows"] if r["scope"] == "town" and r["period"] == "01月"]
    assert len(towns) == 17 and all(t["rain_mm"] is not None and t["years"] == 4 for t in towns)
    store.close()


def test_daily_totals_from_an_archive_are_not_storm_events(tmp_path, gauges) -> None:
    from core.reports.service import rain_events

    store = SQLiteStore(tmp_path / "ts.sqlite3")
    now = local(2026, 7, 1, 8)
    seed_history(store, gauges, now, years=1, tz=SH)
    ctx = ReportContext(gauges, generate_towns(), SH)
    assert rain_events(store, ctx, local(2026, 6, 1, 8), now, now)["events"] == []
    store.close()
