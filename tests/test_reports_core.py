"""Report computations on hand-computed fixtures: storm events, Thiessen weights, water balance, hydrological days."""

from __future__ import annotations

import math
from datetime import date, datetime, timedelta

import pytest

from core.domain import Station
from core.reports import hydrological_day, hydrological_day_of
from core.reports.events import detect_events, window_max
from core.reports.inflow import balance_intervals, sensor_intervals, storage_series, window_inflow
from core.reports.periods import day_bucket_offset_s, hydro_days, months
from core.reports.thiessen import area_from_geojson, area_km2, areal_rain, thiessen_weights
from core.timeutil import UTC, zone

SH = zone("Asia/Shanghai")
H = timedelta(hours=1)


def local(*args: int) -> datetime:
    return datetime(*args, tzinfo=SH).astimezone(UTC)


# ------------------------------------------------------------------------------------------------ storm events

T0 = local(2026, 7, 20, 10)


def _hours(values: list[float], start: datetime = T0) -> list[tuple[datetime, float]]:
    return [(start + i * H, v) for i, v in enumerate(values)]


@pytest.mark.parametrize("gap_h, expected", [(5, 1), (6, 2), (7, 2)])
def test_a_dry_gap_of_n_hours_or_more_splits_an_event(gap_h: int, expected: int) -> None:
    rain = [2.0, 4.0] + [0.0] * gap_h + [3.0]
    events = detect_events({"G1": _hours(rain)}, dry_gap_h=6, trace_mm=0.1, data_end=T0 + 48 * H)
    assert len(events) == expected
    assert events[0].start == T0
    if expected == 1:
        assert events[0].end == T0 + (3 + gap_h) * H
        assert events[0].gauges[0].total_mm == 9.0
    else:
        assert events[0].end == T0 + 2 * H and events[1].start == T0 + (2 + gap_h) * H


def test_trace_rain_is_ignored_and_an_event_is_open_until_n_dry_hours_follow() -> None:
    # 0.05 mm hours at G2 are a trace: they neither start an event nor bridge the gap.
    g1 = _hours([1.0, 0, 0, 0, 0, 0, 0, 0, 2.0])
    g2 = _hours([0, 0.05, 0.05, 0.05, 0.05, 0.05, 0.05, 0.05, 0])
    events = detect_events({"G1": g1, "G2": g2}, dry_gap_h=6, trace_mm=0.1, data_end=T0 + 14 * H)
    assert [(e.start, e.end) for e in events] == [(T0, T0 + H), (T0 + 8 * H, T0 + 9 * H)]
    assert events[0].closed and not events[1].closed  # 5 h after the second: not yet 6
    assert events[0].gauges[1].total_mm == pytest.approx(0.0)  # G2 inside event 1: nothing but dry hours
    later = detect_events({"G1": g1, "G2": g2}, dry_gap_h=6, trace_mm=0.1, data_end=T0 + 15 * H)
    assert later[1].closed


def test_per_gauge_intensities_and_the_wettest_gauge() -> None:
    g1 = _hours([1, 5, 10, 2, 0, 8, 8, 0])
    g2 = _hours([0, 1, 1, 1, 0, 0, 0, 0])
    (ev,) = detect_events({"G1": g1, "G2": g2}, dry_gap_h=6, trace_mm=0.1, data_end=T0 + 30 * H)
    a = ev.gauges[0]
    assert a.total_mm == 34
    assert (a.max_mm(1).rain_mm, a.max_mm(1).start) == (10, T0 + 2 * H)
    assert (a.max_mm(3).rain_mm, a.max_mm(3).start) == (17, T0 + 1 * H)  # 5 + 10 + 2 (16 for 8+8+0)
    assert (a.max_mm(6).rain_mm, a.max_mm(6).start, a.max_mm(6).end) == (33, T0 + 1 * H, T0 + 7 * H)
    assert ev.wettest.station_id == "G1"
    assert ev.duration_h == 7 and ev.event_id(SH) == "2026072010"


def test_window_max_counts_missing_hours_as_dry() -> None:
    rows = [(T0, 3.0), (T0 + 2 * H, 4.0)]
    assert window_max(rows, 3).rain_mm == 7.0
    assert window_max(rows, 1).rain_mm == 4.0
    assert window_max([], 3).start is None


# ------------------------------------------------------------------------------------------------ Thiessen

def _square(lon0: float, lat0: float, lon1: float, lat1: float) -> dict:
    return {"type": "Polygon", "coordinates": [[[lon0, lat0], [lon1, lat0], [lon1, lat1], [lon0, lat1], [lon0, lat0]]]}


# On the equator a degree of longitude and of latitude are the same length, so bisectors stay where drawn.
SQUARE = area_from_geojson(_square(120.0, -0.5, 121.0, 0.5))
QUADRANT_GAUGES = {"SW": (120.25, -0.25), "SE": (120.75, -0.25), "NW": (120.25, 0.25), "NE": (120.75, 0.25)}


def test_four_gauges_at_the_quadrant_centres_share_the_square_equally() -> None:
    w = thiessen_weights(QUADRANT_GAUGES, SQUARE)
    assert w == pytest.approx({"SW": 0.25, "SE": 0.25, "NW": 0.25, "NE": 0.25})


def test_a_gauge_dropping_out_hands_its_cell_to_its_neighbours() -> None:
    # Without NE, the NE quadrant is split by the NW–SE bisector (the diagonal y = x through the centre).
    gauges = {k: v for k, v in QUADRANT_GAUGES.items() if k != "NE"}
    w = thiessen_weights(gauges, SQUARE)
    assert w == pytest.approx({"SW": 0.25, "SE": 0.375, "NW": 0.375})
    rain = {"SW": 10.0, "SE": 20.0, "NW": 40.0}
    assert areal_rain(w, rain) == pytest.approx(2.5 + 7.5 + 15.0)  # not the plain mean, 23.33


def test_a_non_convex_town_and_a_gauge_outside_it() -> None:
    # An L: [0,2]×[0,1] plus [0,1]×[1,2] (degrees off 120 E, 0 N); area 3 cells of one square degree.
    ell = area_from_geojson({"type": "Polygon", "coordinates": [[
        [120, 0], [122, 0], [122, 1], [121, 1], [121, 2], [120, 2], [120, 0]]]})
    w = thiessen_weights({"A": (120.5, 0.5), "B": (121.5, 0.5), "C": (125.0, 5.0)}, ell)
    assert w == pytest.approx({"A": 2 / 3, "B": 1 / 3, "C": 0.0}, abs=1e-9)


def test_holes_and_multipolygons() -> None:
    ring = [[120, -1], [122, -1], [122, 1], [120, 1], [120, -1]]
    hole = [[120.5, -0.5], [121, -0.5], [121, 0.5], [120.5, 0.5], [120.5, -0.5]]
    holed = area_from_geojson({"type": "Polygon", "coordinates": [ring, hole]})
    w = thiessen_weights({"L": (120.5, 0.0), "R": (121.5, 0.0)}, holed)
    assert w == pytest.approx({"L": 1.5 / 3.5, "R": 2 / 3.5})
    multi = area_from_geojson({"type": "MultiPolygon", "coordinates": [
        _square(120, 0, 121, 1)["coordinates"], _square(123, 0, 124, 1)["coordinates"]]})
    assert thiessen_weights({"W": (120.5, 0.5), "E": (123.5, 0.5)}, multi) == pytest.approx({"W": 0.5, "E": 0.5})
    assert area_km2(area_from_geojson(_square(120, 0, 121, 1))) == pytest.approx(111.2 ** 2, rel=0.01)


def test_bad_geometries_are_refused_with_a_reason() -> None:
    with pytest.raises(ValueError, match="Polygon or MultiPolygon"):
        area_from_geojson({"type": "Point", "coordinates": [120, 36]})
    with pytest.raises(ValueError, match="at least 3"):
        area_from_geojson({"type": "Polygon", "coordinates": [[[120, 36], [121, 36], [120, 36]]]})
    with pytest.raises(ValueError, match="lon, lat"):
        area_from_geojson(_square(36, 120, 37, 121))


# ------------------------------------------------------------------------------------------------ water balance

def _synthetic_reservoir() -> Station:
    # Storage grows as 0.02 (h − 30)^2.3 10⁶ m³; the curve every 0.25 m, as bureaus tabulate it.
    curve = [(30 + 0.25 * i, round(0.02 * (0.25 * i) ** 2.3, 6)) for i in range(81)]
    curve[0] = (30.0, 0.0)
    return Station(id="RS9901", kind="reservoir", name="合成水库", town="通济街道", lat=36.4, lon=120.5,
                   flood_limit_level_m=45.0, level_storage=curve)


def _true_inflow(t_h: float) -> float:
    """A storm hydrograph: 1 m³/s base, a triangle up to 60 m³/s at 12 h, back to base at 36 h."""
    if 6 <= t_h < 12:
        return 1 + 59 * (t_h - 6) / 6
    if 12 <= t_h < 36:
        return 1 + 59 * (36 - t_h) / 24
    return 1.0


def _level_of(st: Station, s: float) -> float:
    curve = st.level_storage
    for (l0, s0), (l1, s1) in zip(curve, curve[1:]):
        if s <= s1:
            return l0 + (l1 - l0) * (s - s0) / (s1 - s0)
    return curve[-1][0]


def test_water_balance_recovers_a_known_inflow_within_two_percent() -> None:
    st = _synthetic_reservoir()
    start = local(2026, 7, 20, 8)
    s = st.storage_at(40.0)
    levels, outflows = [], []  # 5-minute readings, as the store holds them
    step = 60.0
    for k in range(int(72 * 3600 / step)):
        t_h = k * step / 3600
        h = _level_of(st, s)
        out = 0.5 + (8.0 * (h - 41.0) ** 1.5 if h > 41.0 else 0.0)  # outlet + spillway weir
        if k % 5 == 0:
            ts = start + timedelta(seconds=k * step)
            levels.append((ts, round(h, 2)))  # gauges report centimetres
            outflows.append((ts, round(out, 2)))
        s += (_true_inflow(t_h + step / 7200) - out) * step / 1e6
    # Hourly means, as the store's GROUP BY time(1h) returns them.
    def hourly(rows):
        buckets: dict[datetime, list[float]] = {}
        for ts, v in rows:
            buckets.setdefault(ts.replace(minute=0, second=0), []).append(v)
        return [(t, sum(v) / len(v)) for t, v in sorted(buckets.items())]

    storage, flags = storage_series(st, hourly(levels))
    assert not flags
    result = balance_intervals(storage, hourly(outflows), H)
    win = window_inflow(result, start + 2 * H, start + 50 * H)
    true = sum(_true_inflow(2 + (i + 0.5) / 60) for i in range(48 * 60)) * 60
    assert win.volume_m3 == pytest.approx(true, rel=0.02)
    assert win.peak_inflow_m3s == pytest.approx(60, rel=0.1)
    assert abs((win.peak_at - (start + 12 * H)).total_seconds()) <= 2 * 3600
    assert win.volume_10k_m3 == pytest.approx(win.volume_m3 / 1e4)
    assert win.negative_intervals == 0


def test_a_falling_level_without_outflow_record_is_flagged_not_hidden() -> None:
    st = _synthetic_reservoir()
    start = local(2026, 7, 20, 8)
    levels = [(start + i * H, 40.0 - 0.05 * i) for i in range(6)]
    storage, _ = storage_series(st, levels)
    result = balance_intervals(storage, [], H)
    win = window_inflow(result, start, start + 6 * H)
    assert result.flags[0].code == "no_outflow" and "无出库流量记录" in result.flags[0].zh
    assert win.negative_intervals == 5 and win.min_inflow_m3s < 0
    assert win.storage_change_m3 < 0 and win.volume_m3 < 0


def test_sensor_inflow_is_used_as_measured() -> None:
    start = local(2026, 7, 20, 8)
    result = sensor_intervals([(start + i * H, 10.0 * i) for i in range(4)], H)
    win = window_inflow(result, start, start + 4 * H)
    assert win.volume_m3 == pytest.approx((0 + 10 + 20 + 30) * 3600)
    assert win.peak_inflow_m3s == 30 and win.peak_at == start + 3.5 * H


# ------------------------------------------------------------------------------------------------ periods

@pytest.mark.parametrize("moment, day", [
    (local(2026, 6, 28, 7, 59), date(2026, 6, 27)),
    (local(2026, 6, 28, 8, 0), date(2026, 6, 28)),
    (local(2027, 1, 1, 7, 59), date(2026, 12, 31)),
    (local(2027, 1, 1, 8, 0), date(2027, 1, 1)),
    (local(2028, 3, 1, 7, 59), date(2028, 2, 29)),
    (local(2028, 2, 29, 0, 30), date(2028, 2, 28)),
])
def test_hydrological_day_boundaries(moment: datetime, day: date) -> None:
    assert hydrological_day_of(moment, SH) == day
    start, end = hydrological_day(day, SH)
    assert start <= moment < end


def test_day_buckets_of_the_store_start_at_0800_local() -> None:
    # 08:00 in Shanghai is 00:00 UTC: epoch-aligned days are hydrological days there.
    assert day_bucket_offset_s(SH) == 0
    assert day_bucket_offset_s(zone("UTC")) == 8 * 3600
    days = hydro_days(local(2028, 2, 28, 8), local(2028, 3, 1, 8), SH)
    assert [d for d, _, _ in days] == [date(2028, 2, 28), date(2028, 2, 29)]


def test_months_are_made_of_hydrological_days() -> None:
    ms = months(local(2027, 1, 1, 8), local(2027, 3, 1, 8), SH)
    assert [(m, s, e) for m, s, e in ms] == [
        ("2027-01", local(2027, 1, 1, 8), local(2027, 2, 1, 8)),
        ("2027-02", local(2027, 2, 1, 8), local(2027, 3, 1, 8))]
    assert math.isclose((ms[1][2] - ms[1][1]).days, 28)
