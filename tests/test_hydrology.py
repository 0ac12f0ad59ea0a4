"""The simulator's physics, water quality, sensor faults and scenario files; one test drives a real Mosquitto."""

from __future__ import annotations

import time
from collections import Counter
from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import pytest

from core.domain import Kind, Station
from core.mqtt import MqttConsumer, wait_for
from core.payload import decode
from simulators import Scenario, Simulator
from simulators.export import count_reports, write_csv
from simulators.faults import FaultPlan
from simulators.hydrology import Rating, ReservoirModel, route, runoff
from simulators.quality import CHLORINE_TAP_MIN_MGL, TURBIDITY_MAX_NTU
from simulators.scenarios import GRID_S
from simulators.spec import SensorFault, load_scenario, parse_duration, parse_scenario

CST = timezone(timedelta(hours=8))
START = datetime(2026, 6, 28, 8, 0, tzinfo=CST)  # main flood season
HOUR = 3600


@pytest.fixture(scope="module")
def storm(district) -> Scenario:
    return Scenario(district, "storm", start=START)


def of_kind(stations, kind):
    return [s for s in stations if s.kind == kind]


# --------------------------------------------------------------------------- routing and rating

def test_a_linear_reservoir_lags_and_flattens_a_pulse_and_keeps_its_volume():
    pulse = np.zeros(2000)
    pulse[100:160] = 60.0  # an hour of 60 mm/h on a one-minute grid
    out = route(route(pulse, 0.5, 60), 1.0, 60)
    assert out.argmax() > 159 and out.max() < 0.6 * pulse.max()
    assert out.sum() == pytest.approx(pulse.sum(), rel=1e-3)


def test_runoff_loses_the_initial_loss_then_a_constant_share():
    rain = np.full(120, 30.0)  # two hours of 30 mm/h: 60 mm
    eff = runoff(rain, 60, coefficient=0.6, initial_loss_mm=15)
    assert eff[:29].sum() == 0  # the first 15 mm (30 min) wet the ground
    assert eff.sum() * 60 / 3600 == pytest.approx(0.6 * 45, rel=1e-6)


def test_rating_curve_stage_and_flow_are_inverse():
    r = Rating(h0=10.0, h_ref=13.0, q_ref=300.0)
    assert r.flow(13.0) == pytest.approx(300.0)
    for q in (0.5, 30.0, 300.0, 900.0):
        assert r.flow(float(r.stage(q))) == pytest.approx(q)


# --------------------------------------------------------------------------- reservoirs

def test_reservoir_mass_balance_closes(storm, district):
    for r in of_kind(district, Kind.reservoir):
        b = storm.balance(r.id)
        net = np.sum((b.inflow_m3s[1:] + b.inflow_m3s[:-1]) / 2 - b.outflow_m3s[:-1]) * GRID_S
        change = (b.storage_mcm[-1] - b.storage_mcm[0]) * 1e6
        scale = np.sum(b.inflow_m3s) * GRID_S
        assert abs(change - net) <= 0.01 * scale + 1.0, r.id


def test_reservoir_is_over_flood_limit_only_while_spilling_and_drawn_back_after(storm, district):
    spilled = []
    for r in of_kind(district, Kind.reservoir):
        b = storm.balance(r.id)
        limit = r.flood_limit_at(START, CST)
        over = b.level_m > limit + 1e-9
        assert np.array_equal(over, b.spill_m3s > 0), r.id  # no spill below the crest, always some above it
        assert b.level_m[0] < limit
        if over.any():
            spilled.append(r.id)
            first = int(over.argmax())
            assert first * GRID_S <= 2.5 * HOUR or r.id not in spilled[:2]
            assert not over[-1], r.id  # drawn back below the flood-limit level after the storm
            # Outflow tops inflow only after the peak level: the spillway attenuates the flood.
            assert b.outflow_m3s.max() < b.inflow_m3s.max(), r.id
    assert 2 <= len(spilled) < len(of_kind(district, Kind.reservoir)) / 2


def test_reservoir_reports_follow_the_balance_and_its_curve(storm, district):
    r = next(s for s in of_kind(district, Kind.reservoir) if storm.balance(s.id).spill_m3s.max() > 0)
    b = storm.balance(r.id)
    i = int(b.level_m.argmax())
    v = storm.values(r, START + timedelta(seconds=i * GRID_S))
    assert v["water_level_m"] == pytest.approx(b.level_m[i], abs=0.03)
    assert v["outflow_m3s"] == pytest.approx(b.outflow_m3s[i], abs=0.001)
    assert v["storage_mcm"] == pytest.approx(r.storage_at(v["water_level_m"]), abs=1e-4)


def test_a_balance_without_rain_holds_its_level():
    model = ReservoirModel([(20.0, 0.1), (30.0, 2.0)], crest_m=28.0, start_m=27.0, spill_width_m=10.0,
                           supply_m3s=0.05, outlet_m3s=2.0)
    b = model.simulate(np.full(1440, 0.05), 60)
    assert np.allclose(b.level_m, 27.0) and not b.spill_m3s.any()


# --------------------------------------------------------------------------- rivers

def test_river_flow_lags_and_attenuates_the_rain(storm, district):
    gauges = of_kind(district, Kind.rain)
    times = np.arange(0, 14 * HOUR, GRID_S)
    checked = 0
    for s in of_kind(district, Kind.river):
        flow = np.array([storm.river_flow(s.id, t) for t in times])
        if flow.max() < 1.5 * flow[0]:
            continue
        nearest = min(gauges, key=lambda g: (g.lat - s.lat) ** 2 + (g.lon - s.lon) ** 2)
        rain = np.array([storm.rain_rate(nearest.id, t) for t in times])
        assert times[flow.argmax()] > times[rain.argmax()], s.id
        checked += 1
    assert checked >= 5
    # Attenuation: the routed runoff (mm/h over the catchment) peaks lower than the rain that made it.
    for s in of_kind(district, Kind.river)[:5]:
        routed = storm._rivers[s.id].routed_mm_h
        assert routed.max() < max(storm._rates[g.id].max() for g in gauges)


# --------------------------------------------------------------------------- village water quality

def test_dosing_failure_breaches_chlorine_only_in_its_window_and_villages(district):
    sc = Scenario(district, "dosing-failure", start=START)
    villages = of_kind(district, Kind.village_water)
    town = [v for v in villages if v.town == "龙山街道"]
    others = [v for v in villages if v.town not in ("龙山街道", "田横镇")][::20]
    tianheng = [v for v in villages if v.town == "田横镇"]
    breached_tianheng = set()
    for minutes in range(0, 20 * 60, 10):
        t = START + timedelta(minutes=minutes)
        for v in town:
            low = sc.values(v, t)["free_chlorine_mgl"] < CHLORINE_TAP_MIN_MGL
            if low:  # failure 1–5 h; the tap recovers within minutes of dosing restarting
                assert 1 * HOUR < minutes * 60 < 5.5 * HOUR, (v.id, minutes)
            if 2.5 * HOUR <= minutes * 60 <= 5 * HOUR:
                assert low, (v.id, minutes)
        for v in others:
            assert sc.values(v, t)["free_chlorine_mgl"] >= 0.2, (v.id, minutes)
        for v in tianheng:
            if sc.values(v, t)["free_chlorine_mgl"] < CHLORINE_TAP_MIN_MGL:
                assert 8 * HOUR < minutes * 60 < 14.5 * HOUR
                breached_tianheng.add(v.id)
    assert len(breached_tianheng) == 3  # count: 3 of the town's villages


def test_storm_turbidity_follows_the_rain_late_and_one_town_loses_chlorine(storm, district):
    villages = of_kind(district, Kind.village_water)
    times = [START + timedelta(minutes=10 * k) for k in range(0, 6 * 12)]
    turbid, low_chlorine = set(), set()
    for v in villages[::3]:
        series = [storm.values(v, t) for t in times]
        turbidity = [x["turbidity_ntu"] for x in series]
        if max(turbidity) > TURBIDITY_MAX_NTU:
            turbid.add(v.id)
            gauge = storm._villages[v.id].gauge_id
            rain = [storm.rain_rate(gauge, (t - START).total_seconds()) for t in times]
            assert times[int(np.argmax(turbidity))] > times[int(np.argmax(rain))], v.id
        if min(x["free_chlorine_mgl"] for x in series) < CHLORINE_TAP_MIN_MGL:
            low_chlorine.add(v.town)
    assert 5 <= len(turbid) < len(villages[::3]) / 2
    assert low_chlorine == {"温泉街道"}
    normal = Scenario(district, "normal", start=START)
    assert all(normal.values(v, t)["turbidity_ntu"] <= 0.6 for v in villages[::50] for t in times[::6])


# --------------------------------------------------------------------------- sensor faults (pure)

def _station(kind="reservoir", sid="RS0001", interval=600) -> Station:
    return Station(id=sid, kind=kind, name="测试", town="通济街道", lat=36.4, lon=120.5, interval_s=interval)


def _stream(fault: SensorFault, station: Station, n: int = 36):
    t0 = START.timestamp()
    plan = FaultPlan([fault], [station], seed=1, t0=t0)
    values = lambda t: {"water_level_m": round(50 + (t - t0) / 36000, 3)}  # noqa: E731 - rises 0.1 m/h
    out = []
    for k in range(n):
        out += plan.messages(station, t0 + k * station.interval_s, values)
    return t0, out


def test_stuck_fault_repeats_the_value_from_its_start():
    st = _station()
    t0, msgs = _stream(SensorFault(type="stuck", stations=[st.id], start_h=1, duration_h=2), st)
    levels = [v["water_level_m"] for _, v in msgs]
    stuck = [lv for ts, lv in zip([m[0] for m in msgs], levels) if t0 + HOUR <= ts < t0 + 3 * HOUR]
    assert len(stuck) == 12 and len(set(stuck)) == 1
    assert levels[-1] > stuck[0] and len(set(levels)) == 36 - 12 + 1


def test_spike_dropout_duplicate_out_of_order_and_clock_drift():
    st = _station()
    _, msgs = _stream(SensorFault(type="spike", stations=[st.id], magnitude=3.0, rate=0.2), st, 200)
    jumps = [b[1]["water_level_m"] - a[1]["water_level_m"] for a, b in zip(msgs, msgs[1:])]
    assert 20 <= sum(j > 2.5 for j in jumps) <= 60 and sum(j < -2.5 for j in jumps) >= 20

    t0, msgs = _stream(SensorFault(type="dropout", stations=[st.id], start_h=1, duration_h=1), st)
    assert len(msgs) == 30 and not any(t0 + HOUR <= ts < t0 + 2 * HOUR for ts, _ in msgs)

    _, msgs = _stream(SensorFault(type="duplicate", stations=[st.id], rate=0.5), st, 100)
    counts = Counter(ts for ts, _ in msgs)
    assert 25 <= sum(c == 2 for c in counts.values()) <= 75 and len(counts) == 100

    _, msgs = _stream(SensorFault(type="out_of_order", stations=[st.id], rate=0.3), st, 100)
    stamps = [ts for ts, _ in msgs]
    assert sorted(stamps) != stamps and sorted(stamps) == sorted(set(stamps))
    assert len(stamps) >= 99  # only a report held back at the very end is still in flight

    t0, msgs = _stream(SensorFault(type="clock_drift", stations=[st.id], drift_s_per_h=-120), st)
    assert msgs[6][0] == t0 + 6 * 600 - 120 and msgs[-1][0] < t0 + 35 * 600 - 600


def test_faults_pick_stations_by_kind_from_the_seed(district):
    spec = load_scenario("sensor-faults")
    a = FaultPlan(spec.sensor_faults, district, seed=5, t0=0)
    b = FaultPlan(spec.sensor_faults, district, seed=5, t0=0)
    assert a.stations() == b.stations() and len(a.stations("stuck")) == 2
    assert all(sid.startswith("RS") for sid in a.stations("stuck"))
    assert FaultPlan(spec.sensor_faults, district, seed=6, t0=0).stations() != a.stations()


# --------------------------------------------------------------------------- sensor faults on the wire

class Collector(MqttConsumer):
    def __init__(self, settings):
        super().__init__(settings, settings.mqtt_client_prefix + "-faults", [("water/#", 1)], persistent=False)
        self.got: list[tuple[str, bytes]] = []

    def handle(self, msg):
        self.got.append((msg.topic, msg.payload))


def test_sensor_faults_reach_the_broker(district, own_settings):
    spec = parse_scenario("""
name: wire
sensor_faults:
  - {type: duplicate, stations: [RG0001], rate: 1}
  - {type: dropout, stations: [RG0002], start_h: 0, duration_h: 1}
  - {type: out_of_order, stations: [RV0001], rate: 0.5}
  - {type: spike, stations: [VW0001], metric: turbidity_ntu, magnitude: 40, rate: 0.5}
  - {type: stuck, stations: [RS0001], start_h: 0}
""")
    ids = ("RG0001", "RG0002", "RG0003", "RV0001", "VW0001", "RS0001")
    stations = [s for s in district if s.id in ids]
    collector = Collector(own_settings)
    collector.start()
    assert collector.wait_connected(10)
    start = datetime.fromtimestamp(time.time() - 4 * HOUR, CST)
    sim = Simulator(own_settings, stations, scenario=spec, speed=4 * HOUR / 0.5, duration_s=0.5, sim_start=start)
    sim.start()
    try:
        assert sim.join(timeout=15) and sim.error is None
        assert wait_for(lambda: len(collector.got) == sim.published > 0, 10)
    finally:
        sim.stop()
        collector.stop()
    catalogue = {s.id: s for s in stations}
    by_station: dict[str, list] = {}
    for topic, payload in collector.got:
        r = decode(topic, payload, catalogue, now=datetime.now(timezone.utc))
        by_station.setdefault(topic.rsplit("/", 1)[1], []).append(r)
    rg1 = [r[0].ts for r in by_station["RG0001"]]
    assert all(c == 2 for c in Counter(rg1).values())
    rg2, rg3 = by_station.get("RG0002", []), by_station["RG0003"]
    assert len(rg2) < len(rg3) - 10  # silent for its first hour
    rv = [r[0].ts for r in by_station["RV0001"]]
    assert rv != sorted(rv)
    turbidity = [r[0].value for r in by_station["VW0001"] if r[0].metric == "turbidity_ntu"]
    assert max(turbidity) > 40
    level = {r.value for msg in by_station["RS0001"] for r in msg if r.metric == "water_level_m"}
    assert len(level) == 1


# --------------------------------------------------------------------------- reproducibility and files

def test_same_seed_same_csv_and_another_seed_differs(district, tmp_path: Path):
    stations = district[:3] + district[40:46] + district[64:68] + district[94:120]
    spec = load_scenario("storm")
    paths = [tmp_path / f"{k}.csv" for k in range(3)]
    seen = []
    for path, seed in zip(paths, (1, 1, 2)):
        write_csv(path, stations, spec, seed, START, 3 * HOUR, progress=seen.append)
    assert paths[0].read_bytes() == paths[1].read_bytes() != paths[2].read_bytes()
    assert sum(seen[:2]) == count_reports(stations, START, 3 * HOUR, 1)  # every report counted once


def test_shipped_scenarios_load_and_bad_files_name_the_field(tmp_path: Path):
    for name in ("normal", "storm", "dosing-failure", "sensor-faults"):
        assert load_scenario(name).name == name
    with pytest.raises(ValueError, match=r"storm\.hyetograph: .*strictly increase"):
        parse_scenario("name: x\nstorm: {hyetograph: [[0, 1], [0, 2]], depth_by_rank: []}")
    with pytest.raises(ValueError, match=r"sensor_faults\.0\.type: Input should be 'stuck'"):
        parse_scenario("name: x\nsensor_faults: [{type: melted, kind: rain}]")
    with pytest.raises(ValueError, match=r"sensor_faults\.0: .*metric 'rain_mm' is not a river metric"):
        parse_scenario("name: x\nsensor_faults: [{type: spike, kind: river, metric: rain_mm}]")
    with pytest.raises(ValueError, match=r"water_quality\.dosing_failures\.0\.start_hour: Extra inputs"):
        parse_scenario("name: x\nwater_quality: {dosing_failures: [{town: 田横镇, start_hour: 1}]}")
    with pytest.raises(ValueError, match=r"not valid YAML"):
        parse_scenario("name: [")
    bad = tmp_path / "mine.yaml"
    bad.write_text("storm: {}\n", encoding="utf-8")
    with pytest.raises(ValueError, match=r"mine\.yaml: name: Field required"):
        load_scenario(bad)
    with pytest.raises(ValueError, match=r"unknown scenario 'drought'; choose one of .*storm"):
        load_scenario("drought")
    assert parse_duration("6h") == 21600 and parse_duration("90") == 90 and parse_duration("1.5m") == 90
    with pytest.raises(ValueError, match="positive"):
        parse_duration("-1h")
