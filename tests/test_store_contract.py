"""One contract for every time-series adapter: SQLite, InfluxDB 1.x (a private influxd) and, when configured,
InfluxDB 2 (SMARTWATER_TEST_INFLUX2_URL). Each test gets an empty store from the ``contract_store`` fixture."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from core.broker import free_port
from core.domain import Reading
from core.timeutil import from_ms, to_ms
from core.tsdb import AGGS, StoreUnavailable, open_store
from support.servers import InfluxServer

T0 = datetime(2026, 6, 28, 0, 0, tzinfo=timezone.utc)
HOUR = timedelta(hours=1)


def at(minutes: float) -> datetime:
    return T0 + timedelta(minutes=minutes)


def r(sid: str, metric: str, minutes: float, value: float, kind: str = "rain") -> Reading:
    return Reading(sid, kind, metric, at(minutes), value)


def key(readings):
    return [(x.station_id, x.kind, x.metric, x.ts, x.value) for x in readings]


# --- writes -------------------------------------------------------------------------------------------------

def test_same_station_metric_and_time_keeps_one_point_last_value_wins(contract_store):
    st = contract_store
    st.write([r("G1", "rain_mm", 0, 1.0)])
    st.write([r("G1", "rain_mm", 0, 1.0), r("G1", "rain_mm", 0, 2.0)])  # redelivery, then a correction
    assert key(st.query("G1", "rain_mm", T0, T0 + HOUR)) == [("G1", "rain", "rain_mm", T0, 2.0)]
    assert st.counts_by_kind() == {"rain": 1}
    st.write([r("G1", "rain_mm", 0, 3.5)])
    assert key(st.latest()) == [("G1", "rain", "rain_mm", T0, 3.5)]
    assert st.counts_by_kind() == {"rain": 1}


def test_batch_of_several_metrics_and_kinds(contract_store):
    st = contract_store
    st.write([
        r("R1", "water_level_m", 0, 50.25, "reservoir"), r("R1", "storage_mcm", 0, 4.5, "reservoir"),
        r("R1", "water_level_m", 10, 50.5, "reservoir"), r("R1", "inflow_m3s", 10, 12.0, "reservoir"),
        r("RV1", "water_level_m", 0, 9.75, "river"), r("RV1", "flow_m3s", 0, 120.0, "river"),
        r("G1", "rain_mm", 5, 0.5),
        r("VW1", "ph", 0, 7.2, "village_water"), r("GW1", "depth_m", 0, 12.0, "groundwater"),
        r("IN1", "volume_m3", 0, 1e9 + 0.5, "intake"),
    ])
    # A metric of an existing point arriving in a later batch joins that point.
    st.write([r("R1", "seepage_pressure_kpa", 0, -3.0, "reservoir")])
    assert st.counts_by_kind() == {"reservoir": 5, "river": 2, "rain": 1, "village_water": 1, "groundwater": 1,
                                   "intake": 1}
    assert key(st.query("R1", None, T0, T0 + HOUR)) == [
        ("R1", "reservoir", "seepage_pressure_kpa", at(0), -3.0),
        ("R1", "reservoir", "storage_mcm", at(0), 4.5),
        ("R1", "reservoir", "water_level_m", at(0), 50.25),
        ("R1", "reservoir", "inflow_m3s", at(10), 12.0),
        ("R1", "reservoir", "water_level_m", at(10), 50.5),
    ]
    assert key(st.query("IN1", "volume_m3", T0, T0 + HOUR)) == [("IN1", "intake", "volume_m3", T0, 1e9 + 0.5)]
    assert key(st.query("RV1", "flow_m3s", T0, T0 + HOUR)) == [("RV1", "river", "flow_m3s", T0, 120.0)]


def test_large_batch(contract_store):
    """More than one request's worth of lines (InfluxDB: chunked, gzip-compressed)."""
    st = contract_store
    st.write([Reading(f"S{i % 40:02d}", "river", "flow_m3s", T0 + timedelta(seconds=i), float(i))
              for i in range(12_000)])
    assert st.counts_by_kind() == {"river": 12_000}
    got = st.query("S07", "flow_m3s", T0, T0 + HOUR, limit=3)
    assert [(x.ts, x.value) for x in got] == [(T0 + timedelta(seconds=s), float(s)) for s in (7, 47, 87)]
    assert st.aggregate("S07", "flow_m3s", T0, T0 + 4 * HOUR, 3600, "count") == [
        (T0 + timedelta(hours=h), 90.0) for h in range(3)] + [(T0 + 3 * HOUR, 30.0)]
    assert len(st.latest(kind="river")) == 40


def test_empty_write_is_a_no_op(contract_store):
    contract_store.write([])
    assert contract_store.counts_by_kind() == {}


def test_millisecond_timestamps_and_odd_station_ids_round_trip(contract_store):
    st = contract_store
    odd = "odd id,=x'y\"z\\w"  # space, comma, equals, quotes, backslash: escaped in line protocol and InfluxQL
    ts = T0 + timedelta(milliseconds=123)
    st.write([Reading(odd, "rain", "rain_mm", ts, 0.1), Reading("G2", "rain", "rain_mm", ts, 0.2)])
    assert key(st.query(odd, "rain_mm", T0, T0 + HOUR)) == [(odd, "rain", "rain_mm", ts, 0.1)]
    assert key(st.latest(station_ids=[odd])) == [(odd, "rain", "rain_mm", ts, 0.1)]
    assert st.aggregate(odd, "rain_mm", T0, T0 + HOUR, 60, "sum") == [(T0, 0.1)]
    assert st.query("odd id", "rain_mm", T0, T0 + HOUR) == []
    assert st.query("' OR ''='", None, T0, T0 + HOUR) == []


# --- latest -------------------------------------------------------------------------------------------------

def test_latest_never_moves_backwards_and_filters(contract_store):
    st = contract_store
    st.write([r("G1", "rain_mm", 10, 3.0)])
    st.write([r("G1", "rain_mm", 5, 9.0), r("R1", "water_level_m", 1, 50.0, "reservoir"),
              r("R1", "storage_mcm", 2, 4.0, "reservoir"), r("A1", "rain_mm", 0, 1.0)])
    st.write([r("R1", "water_level_m", 0, 49.0, "reservoir")])  # late, older
    assert key(st.latest()) == [
        ("A1", "rain", "rain_mm", at(0), 1.0),
        ("G1", "rain", "rain_mm", at(10), 3.0),
        ("R1", "reservoir", "storage_mcm", at(2), 4.0),
        ("R1", "reservoir", "water_level_m", at(1), 50.0),
    ]
    assert [(x.station_id, x.metric) for x in st.latest(kind="reservoir")] == [
        ("R1", "storage_mcm"), ("R1", "water_level_m")]
    assert [x.station_id for x in st.latest(station_ids=["G1"])] == ["G1"]
    assert [x.station_id for x in st.latest(kind="rain", station_ids=["G1", "R1", "A1"])] == ["A1", "G1"]
    assert st.latest(kind="rain", station_ids=["R1"]) == []
    assert st.latest(station_ids=[]) == []
    assert st.latest(kind="groundwater") == []
    # A newer reading moves it forward; the same time with a new value replaces it.
    st.write([r("G1", "rain_mm", 20, 4.0)])
    st.write([r("G1", "rain_mm", 20, 4.5)])
    assert key(st.latest(station_ids=["G1"])) == [("G1", "rain", "rain_mm", at(20), 4.5)]


# --- query --------------------------------------------------------------------------------------------------

def test_query_range_is_start_inclusive_end_exclusive_and_oldest_first(contract_store):
    st = contract_store
    # written newest first: the store orders
    st.write([r("G1", "rain_mm", m, float(m)) for m in (40, 30, 20, 10, 0)])
    st.write([r("G2", "rain_mm", 20, 99.0)])
    got = st.query("G1", "rain_mm", at(10), at(30))
    assert [(x.ts, x.value) for x in got] == [(at(10), 10.0), (at(20), 20.0)]
    assert [x.value for x in st.query("G1", "rain_mm", at(0), at(40))] == [0.0, 10.0, 20.0, 30.0]
    assert [x.value for x in st.query("G1", "rain_mm", at(0) - HOUR, at(0) + HOUR)] == [0.0, 10.0, 20.0, 30.0, 40.0]
    # one millisecond before the end is in, the end itself is out
    end = at(40)
    assert [x.value for x in st.query("G1", "rain_mm", end - timedelta(milliseconds=1), end + timedelta(
        milliseconds=1))] == [40.0]
    assert st.query("G1", "rain_mm", end + timedelta(milliseconds=1), end + HOUR) == []


def test_query_all_metrics_and_limit(contract_store):
    st = contract_store
    kind = "village_water"
    rows = []
    for m in (0, 10, 20):
        rows += [r("V1", "turbidity_ntu", m, 1.0 + m, kind), r("V1", "ph", m, 7.0, kind),
                 r("V1", "free_chlorine_mgl", m, 0.5, kind)]
    st.write(rows)
    everything = st.query("V1", None, T0, T0 + HOUR)
    assert [(x.ts, x.metric) for x in everything] == [
        (at(m), metric) for m in (0, 10, 20) for metric in ("free_chlorine_mgl", "ph", "turbidity_ntu")]
    assert all(x.kind == kind and x.station_id == "V1" for x in everything)
    assert key(st.query("V1", None, T0, T0 + HOUR, limit=4)) == key(everything[:4])
    assert key(st.query("V1", None, T0, T0 + HOUR, limit=1)) == key(everything[:1])
    assert key(st.query("V1", "turbidity_ntu", T0, T0 + HOUR, limit=2)) == [
        ("V1", kind, "turbidity_ntu", at(0), 1.0), ("V1", kind, "turbidity_ntu", at(10), 11.0)]
    assert key(st.query("V1", "ph", T0, T0 + HOUR, limit=100)) == [("V1", kind, "ph", at(m), 7.0) for m in (0, 10, 20)]
    assert st.query("V1", "flow_m3h", T0, T0 + HOUR) == []


# --- aggregate ----------------------------------------------------------------------------------------------

RAIN = [(0, 1.0), (5, 2.0), (30, 4.0), (35, 6.0), (65, 10.0), (119, 0.25)]


@pytest.mark.parametrize("agg, half_hour, hour", [
    ("sum", [(0, 3.0), (30, 10.0), (60, 10.0), (90, 0.25)], [(0, 13.0), (60, 10.25)]),
    ("mean", [(0, 1.5), (30, 5.0), (60, 10.0), (90, 0.25)], [(0, 3.25), (60, 5.125)]),
    ("min", [(0, 1.0), (30, 4.0), (60, 10.0), (90, 0.25)], [(0, 1.0), (60, 0.25)]),
    ("max", [(0, 2.0), (30, 6.0), (60, 10.0), (90, 0.25)], [(0, 6.0), (60, 10.0)]),
    ("count", [(0, 2.0), (30, 2.0), (60, 1.0), (90, 1.0)], [(0, 4.0), (60, 2.0)]),
])
def test_aggregate_every_agg(contract_store, agg, half_hour, hour):
    st = contract_store
    st.write([r("G1", "rain_mm", m, v) for m, v in RAIN])
    st.write([r("G2", "rain_mm", m, 100.0) for m, _ in RAIN])  # another station: must not leak in
    end = T0 + 2 * HOUR
    got = st.aggregate("G1", "rain_mm", T0, end, 1800, agg)
    assert got == [(at(m), v) for m, v in half_hour]
    assert all(isinstance(v, float) for _, v in got)
    assert st.aggregate("G1", "rain_mm", T0, end, 3600, agg) == [(at(m), v) for m, v in hour]


def test_aggregate_buckets_align_to_the_epoch_and_skip_empty_ones(contract_store):
    st = contract_store
    st.write([r("G1", "rain_mm", m, v) for m, v in RAIN])
    # start inside a bucket: the bucket keeps its epoch-aligned start, readings before `start` stay out
    assert st.aggregate("G1", "rain_mm", at(3), at(65), 1800, "sum") == [(at(0), 2.0), (at(30), 10.0)]
    # 7-minute buckets are not aligned to T0 but to 1970-01-01
    every_ms = 7 * 60 * 1000
    expected: dict[int, float] = {}
    for m, v in RAIN:
        b = to_ms(at(m)) // every_ms * every_ms
        expected[b] = expected.get(b, 0.0) + v
    assert st.aggregate("G1", "rain_mm", T0, T0 + 2 * HOUR, 420, "sum") == [
        (from_ms(b), v) for b, v in sorted(expected.items())]
    # nothing between 66 and 119 minutes: no zero-filled buckets
    assert st.aggregate("G1", "rain_mm", at(60), at(119), 600, "count") == [(at(60), 1.0)]


def test_aggregate_rejects_an_unknown_agg(contract_store):
    with pytest.raises(ValueError):
        contract_store.aggregate("G1", "rain_mm", T0, T0 + HOUR, 60, "median")  # type: ignore[arg-type]


# --- empty stores, counts, ping ----------------------------------------------------------------------------

def test_empty_store(contract_store):
    st = contract_store
    assert st.latest() == []
    assert st.latest(kind="rain", station_ids=["G1"]) == []
    assert st.query("G1", None, T0, T0 + HOUR) == []
    assert st.query("G1", "rain_mm", T0, T0 + HOUR) == []
    for agg in AGGS:
        assert st.aggregate("G1", "rain_mm", T0, T0 + HOUR, 60, agg) == []
    assert st.counts_by_kind() == {}
    assert st.ping() is True


def test_counts_by_kind_counts_values(contract_store):
    st = contract_store
    st.write([r("G1", "rain_mm", m, 1.0) for m in range(0, 60, 5)])
    st.write([r("R1", "water_level_m", m, 50.0, "reservoir") for m in range(3)]
             + [r("R1", "storage_mcm", m, 4.0, "reservoir") for m in range(2)])
    st.write([r("G1", "rain_mm", 0, 2.0)])  # overwrite: no new point
    assert st.counts_by_kind() == {"rain": 12, "reservoir": 5}
    assert st.ping() is True


# --- the server is away --------------------------------------------------------------------------------------

def _unreachable(kind: str):
    port = free_port()  # nothing listens there
    if kind == "influxdb":
        return open_store(f"influxdb://127.0.0.1:{port}/smartwater?timeout=2")
    return open_store(f"influxdb2://127.0.0.1:{port}/smartwater?org=district&timeout=2", token="test-token")


@pytest.mark.parametrize("kind", ["influxdb", "influxdb2"])
def test_unreachable_server_raises_store_unavailable(kind):
    st = _unreachable(kind)
    try:
        assert st.ping() is False
        with pytest.raises(StoreUnavailable):
            st.write([r("G1", "rain_mm", 0, 1.0)])
        with pytest.raises(StoreUnavailable):
            st.latest()
        with pytest.raises(StoreUnavailable):
            st.query("G1", None, T0, T0 + HOUR)
        with pytest.raises(StoreUnavailable):
            st.aggregate("G1", "rain_mm", T0, T0 + HOUR, 60, "sum")
        with pytest.raises(StoreUnavailable):
            st.counts_by_kind()
    finally:
        st.close()


def test_influx_store_recovers_after_an_outage(tmp_path):
    server = InfluxServer(tmp_path / "influx").start()
    st = open_store(server.url)
    try:
        st.write([r("G1", "rain_mm", 0, 1.0)])
        server.stop()
        with pytest.raises(StoreUnavailable):
            st.write([r("G1", "rain_mm", 5, 2.0)])
        with pytest.raises(StoreUnavailable):
            st.latest()
        assert st.ping() is False
        server.start()
        st.write([r("G1", "rain_mm", 5, 2.0)])  # the same store object, no reopen
        assert [x.value for x in st.query("G1", "rain_mm", T0, T0 + HOUR)] == [1.0, 2.0]
    finally:
        st.close()
        server.stop()


def test_influx_bad_requests_raise_value_error(influxdb):
    st = open_store(influxdb.url_for("never_created") + "?create=false")
    try:
        assert st.latest() == []  # "database not found" reads as empty, like a fresh store
        with pytest.raises(ValueError, match="database not found"):
            st.write([r("G1", "rain_mm", 0, 1.0)])
        with pytest.raises(ValueError):
            st.write([r("G1", "rain_mm", 0, float("nan"))])
        with pytest.raises(ValueError):
            st._ql(["SELEC nothing"])  # InfluxDB's parse error (400) comes through as ValueError
    finally:
        st.close()


def test_influx_one_statement_per_request_reads_the_same(influxdb):
    """Servers without multi-statement /query (InfluxDB 3) get one request per statement: same answers."""
    name = "t_single_statement"
    multi = open_store(influxdb.url_for(name))
    single = open_store(influxdb.url_for(name))
    single._multi_statement = False
    try:
        multi.write([r("G1", "rain_mm", 0, 1.0), r("R1", "water_level_m", 5, 50.0, "reservoir"),
                     r("R1", "storage_mcm", 5, 4.0, "reservoir")])
        for method, args in [("latest", ()), ("counts_by_kind", ()), ("query", ("R1", None, T0, T0 + HOUR)),
                             ("aggregate", ("R1", "water_level_m", T0, T0 + HOUR, 600, "mean"))]:
            assert getattr(single, method)(*args) == getattr(multi, method)(*args)
        assert single._multi_statement is False
    finally:
        multi.close()
        single.close()
        influxdb.query(f'DROP DATABASE "{name}"')
