"""The store aggregates several stations per query (reports): the same buckets on SQLite and InfluxDB."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from core.domain import Reading

T0 = datetime(2026, 6, 28, 0, 0, tzinfo=timezone.utc)  # 08:00 in Shanghai
H = timedelta(hours=1)


def rain(sid: str, minutes: float, mm: float) -> Reading:
    return Reading(sid, "rain", "rain_mm", T0 + timedelta(minutes=minutes), mm)


def test_hourly_sums_of_several_gauges_in_one_query(contract_store) -> None:
    st = contract_store
    st.write([rain("G1", 0, 1.0), rain("G1", 5, 2.0), rain("G1", 65, 0.5), rain("G2", 59.9, 3.0),
              rain("G2", 60, 4.0), rain("G3", 0, 9.0),
              Reading("R1", "reservoir", "water_level_m", T0, 40.0)])
    out = st.aggregate_many(["G1", "G2", "Nobody"], "rain_mm", T0, T0 + 3 * H, 3600, "sum")
    assert out == {"G1": [(T0, 3.0), (T0 + H, 0.5)], "G2": [(T0, 3.0), (T0 + H, 4.0)]}
    assert st.aggregate_many([], "rain_mm", T0, T0 + H, 3600, "sum") == {}


@pytest.mark.parametrize("agg, expected", [("mean", 41.0), ("max", 42.0), ("min", 40.0), ("count", 3.0)])
def test_every_aggregate(contract_store, agg: str, expected: float) -> None:
    contract_store.write([Reading("R1", "reservoir", "water_level_m", T0 + timedelta(minutes=m), v)
                          for m, v in ((0, 40.0), (10, 41.0), (20, 42.0))])
    out = contract_store.aggregate_many(["R1"], "water_level_m", T0, T0 + H, 3600, agg)
    assert out == {"R1": [(T0, pytest.approx(expected))]}


def test_day_buckets_with_an_offset_and_the_range_end_exclusive(contract_store) -> None:
    # Buckets start at 08:00 local in a UTC+0 bookkeeping: offset 8 h. 07:59 and 08:00 fall in different days.
    st = contract_store
    st.write([rain("G1", 7 * 60 + 59, 1.0), rain("G1", 8 * 60, 2.0), rain("G1", 32 * 60 - 1, 4.0),
              rain("G1", 32 * 60, 8.0)])
    out = st.aggregate_many(["G1"], "rain_mm", T0, T0 + 32 * H, 86400, "sum", offset_s=8 * 3600)
    assert out == {"G1": [(T0 - 16 * H, 1.0), (T0 + 8 * H, 6.0)]}
