from datetime import datetime, timedelta, timezone

from core.domain import Reading

T0 = datetime(2026, 6, 28, 0, 0, tzinfo=timezone.utc)


def _r(sid, metric, minutes, value, kind="rain"):
    return Reading(sid, kind, metric, T0 + timedelta(minutes=minutes), value)


def test_same_station_metric_and_time_keeps_one_point(store):
    store.write([_r("G1", "rain_mm", 0, 1.0)])
    store.write([_r("G1", "rain_mm", 0, 1.0), _r("G1", "rain_mm", 0, 2.0)])
    got = store.query("G1", "rain_mm", T0, T0 + timedelta(hours=1))
    assert [(r.ts, r.value) for r in got] == [(T0, 2.0)]
    assert store.counts_by_kind() == {"rain": 1}


def test_latest_never_moves_backwards_on_late_arrivals(store):
    store.write([_r("G1", "rain_mm", 10, 3.0)])
    store.write([_r("G1", "rain_mm", 5, 9.0), _r("R1", "water_level_m", 1, 50.0, kind="reservoir")])
    latest = {(r.station_id, r.metric): (r.ts, r.value) for r in store.latest()}
    assert latest[("G1", "rain_mm")] == (T0 + timedelta(minutes=10), 3.0)
    assert [r.station_id for r in store.latest(kind="reservoir")] == ["R1"]
    assert [r.station_id for r in store.latest(station_ids=["G1"])] == ["G1"]


def test_aggregate_buckets(store):
    store.write([_r("G1", "rain_mm", m, v) for m, v in [(0, 1.0), (5, 2.0), (30, 4.0), (35, 6.0), (65, 10.0)]])
    end = T0 + timedelta(hours=2)
    assert store.aggregate("G1", "rain_mm", T0, end, 1800, "sum") == [
        (T0, 3.0), (T0 + timedelta(minutes=30), 10.0), (T0 + timedelta(minutes=60), 10.0)]
    assert store.aggregate("G1", "rain_mm", T0, end, 3600, "mean") == [(T0, 3.25), (T0 + timedelta(hours=1), 10.0)]
    assert store.aggregate("G1", "rain_mm", T0, end, 3600, "max")[0] == (T0, 6.0)
    assert store.aggregate("G1", "rain_mm", T0, end, 3600, "min")[0] == (T0, 1.0)
    # the end is exclusive
    assert store.query("G1", "rain_mm", T0, T0 + timedelta(minutes=30))[-1].value == 2.0
