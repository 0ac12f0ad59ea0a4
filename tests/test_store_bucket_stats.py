"""The store aggregates several stations and metrics per request (reports): the same buckets on SQLite and InfluxDB."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from core.domain import Reading

T0 = datetime(2026, 6, 28, 0, 0, tzinfo=timezone.utc)  # 08:00 in Shanghai
H = timedelta(hours=1)


def sums(stats: dict) -> dict:
    return {sid: [(t, x.sum) for t, x in rows] for (sid, _), rows in stats.items()}


def rain(sid: str, minutes: float, mm: float) -> Reading:
    return Reading(sid, "rain", "rain_mm", T0 + timedelta(minutes=minutes), mm)


def test_hourly_sums_of_several_gauges_in_one_query(contract_store) -> None:
    st = contract_store
    st.write([rain("G1", 0, 1.0), rain("G1", 5, 2.0), rain("G1", 65, 0.5), rain("G2", 59.9, 3.0),
              rain("G2", 60, 4.0), rain("G3", 0, 9.0),
              Reading("R1", "reservoir", "water_level_m", T0, 40.0)])
    out = sums(st.bucket_stats(["G1", "G2", "Nobody"], ["rain_mm"], T0, T0 + 3 * H, 3600, stats=("sum",)))
    assert out == {"G1": [(T0, 3.0), (T0 + H, 0.5)], "G2": [(T0, 3.0), (T0 + H, 4.0)]}
    assert st.bucket_stats([], ["rain_mm"], T0, T0 + H, 3600) == {}


@pytest.mark.parametrize("agg, expected", [("mean", 41.0), ("max", 42.0), ("min", 40.0), ("count", 3.0)])
def test_every_aggregate(contract_store, agg: str, expected: float) -> None:
    contract_store.write([Reading("R1", "reservoir", "water_level_m", T0 + timedelta(minutes=m), v)
                          for m, v in ((0, 40.0), (10, 41.0), (20, 42.0))])
    out = contract_store.bucket_stats(["R1"], ["water_level_m"], T0, T0 + H, 3600, stats=(agg,))
    assert [(t, getattr(x, agg)) for t, x in out[("R1", "water_level_m")]] == [(T0, pytest.approx(expected))]


def test_day_buckets_with_an_offset_and_the_range_end_exclusive(contract_store) -> None:
    # Buckets start at 08:00 local in a UTC+0 bookkeeping: offset 8 h. 07:59 and 08:00 fall in different days.
    st = contract_store
    st.write([rain("G1", 7 * 60 + 59, 1.0), rain("G1", 8 * 60, 2.0), rain("G1", 32 * 60 - 1, 4.0),
              rain("G1", 32 * 60, 8.0)])
    out = sums(st.bucket_stats(["G1"], ["rain_mm"], T0, T0 + 32 * H, 86400, offset_s=8 * 3600, stats=("sum",)))
    assert out == {"G1": [(T0 - 16 * H, 1.0), (T0 + 8 * H, 6.0)]}


def test_bucket_stats_of_several_metrics_in_one_pass(contract_store) -> None:
    st = contract_store
    st.write([Reading("R1", "reservoir", "water_level_m", T0 + timedelta(minutes=m), v)
              for m, v in ((0, 40.0), (10, 41.0), (70, 43.0))]
             + [Reading("R1", "reservoir", "outflow_m3s", T0 + timedelta(minutes=5), 2.5),
                Reading("R1", "reservoir", "storage_mcm", T0, 9.0), rain("G1", 0, 1.5), rain("G1", 30, 0.5)])
    out = st.bucket_stats(["R1", "G1"], ["water_level_m", "outflow_m3s", "rain_mm"], T0, T0 + 2 * H, 3600)
    assert set(out) == {("R1", "water_level_m"), ("R1", "outflow_m3s"), ("G1", "rain_mm")}
    assert out[("R1", "water_level_m")] == [(T0, (2, 81.0, 40.0, 41.0, 40.5)), (T0 + H, (1, 43.0, 43.0, 43.0, 43.0))]
    assert out[("R1", "outflow_m3s")] == [(T0, (1, 2.5, 2.5, 2.5, 2.5))]
    assert out[("G1", "rain_mm")] == [(T0, (2, 2.0, 0.5, 1.5, 1.0))]
    assert st.bucket_stats([], ["rain_mm"], T0, T0 + H, 3600) == {}
    # Only what is asked for must be there (a store may leave the rest out).
    some = st.bucket_stats(["R1"], ["water_level_m"], T0, T0 + 2 * H, 3600, stats=("mean", "max"))
    assert [(t, x.mean, x.max) for t, x in some[("R1", "water_level_m")]] == [(T0, 40.5, 41.0), (T0 + H, 43.0, 43.0)]


def test_bucket_stats_agree_with_the_raw_readings_after_overwrites_and_at_odd_edges(tmp_path) -> None:
    """SQLite answers whole hours from its hourly rollup: overwrites (redeliveries) and ranges that start and end
    inside an hour must give what the raw readings give."""
    import random

    from core.tsdb.sqlite import SQLiteStore

    rng = random.Random(5)
    st = SQLiteStore(tmp_path / "ts.sqlite3")
    pts = [rain(f"G{rng.randint(1, 3)}", rng.randint(0, 6 * 60 - 1) + rng.random(), round(rng.random() * 5, 1))
           for _ in range(400)]
    st.write(pts)
    st.write([r._replace(value=r.value + 1.0) for r in pts[:50]])  # redelivered with new values
    st.write([r._replace(value=0.0) for r in pts[50:60]])  # lowers min
    latest = {}
    for r in pts:
        latest[(r.station_id, r.ts)] = r.value
    for r in pts[:50]:
        latest[(r.station_id, r.ts)] = r.value + 1.0
    for r in pts[50:60]:
        latest[(r.station_id, r.ts)] = 0.0
    a, b = T0 + timedelta(minutes=17), T0 + timedelta(hours=5, minutes=41)
    for every, off in ((3600, 0), (7200, 3600), (86400, 8 * 3600)):
        got = st.bucket_stats(["G1", "G2", "G3"], ["rain_mm"], a, b, every, offset_s=off)
        want: dict = {}
        for (sid, ts), v in latest.items():
            if a <= ts < b:
                t_ms = int(ts.timestamp() * 1000)
                bucket = ((t_ms - off * 1000) // (every * 1000)) * every * 1000 + off * 1000
                want.setdefault((sid, bucket), []).append(v)
        flat = {(sid, int(t.timestamp() * 1000)): x for (sid, _), rows in got.items() for t, x in rows}
        assert set(flat) == set(want)
        for k, vs in want.items():
            x = flat[k]
            assert (x.count, x.min, x.max) == (len(vs), min(vs), max(vs)) and x.sum == pytest.approx(sum(vs))
    st.close()
    # A store made before the rollup existed is filled when opened.
    import sqlite3

    con = sqlite3.connect(tmp_path / "ts.sqlite3")
    con.executescript("DROP TRIGGER readings_hourly_insert; DROP TRIGGER readings_hourly_update; "
                      "DROP TABLE readings_hourly;")
    con.close()
    st = SQLiteStore(tmp_path / "ts.sqlite3")
    again = st.bucket_stats(["G1", "G2", "G3"], ["rain_mm"], T0, T0 + 6 * H, 3600)
    assert sum(x.count for rows in again.values() for _, x in rows) == len(latest)
    st.close()
