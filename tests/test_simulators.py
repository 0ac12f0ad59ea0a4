"""The simulated district, its scenarios and the simulator's clock and flow control; no broker needed."""

from __future__ import annotations

import csv
import io
import json
import re
import time
from collections import Counter
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from core.domain import METRICS, Kind, Station
from core.mqtt import MqttConsumer, wait_for
from core.payload import decode
from core.settings import Settings
from core.importers import load_stations_csv, write_stations_csv
from simulators import SCENARIOS, Scenario, Simulator, generate_district
from simulators.runner import SimClock, default_sim_start, first_due

CST = timezone(timedelta(hours=8))
START = datetime(2026, 6, 28, 8, 0, tzinfo=CST)  # main flood season
HOUR = 3600


def by_kind(stations: list[Station], kind: Kind) -> list[Station]:
    return [s for s in stations if s.kind == kind]


def report_times(start: datetime, interval_s: int, hours: float) -> list[datetime]:
    return [start + timedelta(seconds=k * interval_s) for k in range(1, int(hours * HOUR / interval_s) + 1)]


# --------------------------------------------------------------------------- district

def test_same_seed_gives_the_same_district_and_another_seed_a_different_one(district):
    assert generate_district(20260628) == district
    other = generate_district(7)
    assert other != district
    assert [s.id for s in other] == [s.id for s in district]  # same ids, different details


def test_district_has_jimo_counts_and_seventeen_towns(district):
    counts = Counter(s.kind for s in district)
    assert counts[Kind.reservoir] == 40
    assert counts[Kind.rain] == 24
    assert counts[Kind.village_water] == 1033
    assert 25 <= counts[Kind.river] <= 35
    assert 15 <= len({s.river for s in by_kind(district, Kind.river)}) <= 25
    villages = by_kind(district, Kind.village_water)
    assert len({s.town for s in villages}) == 17
    assert {s.town for s in district} == {s.town for s in villages}
    assert all(s.village and s.village in s.name for s in villages)
    assert all(re.fullmatch(r"[\u4e00-\u9fff]+(街道|镇)", s.town) for s in district)


def test_every_station_has_an_ascii_topic_id_a_chinese_name_and_a_place_in_jimo(district):
    ids = [s.id for s in district]
    assert len(set(ids)) == len(ids)
    prefix = {Kind.reservoir: "RS", Kind.rain: "RG", Kind.river: "RV", Kind.village_water: "VW"}
    intervals = {Kind.reservoir: {600, 900}, Kind.rain: {300}, Kind.river: {600, 900},
                 Kind.village_water: {600, 900}}
    for s in district:
        assert re.fullmatch(prefix[s.kind] + r"\d{4}", s.id), s.id  # no '/', '+' or '#': one topic level
        assert re.search(r"[\u4e00-\u9fff]", s.name), s.name
        assert 36.25 <= s.lat <= 36.65 and 120.25 <= s.lon <= 120.85, s.id
        assert s.interval_s in intervals[s.kind], s.id


def test_reservoir_levels_are_ordered_and_curves_cover_dead_level_to_crest(district):
    for r in by_kind(district, Kind.reservoir):
        assert 20 <= r.dead_level_m < r.flood_limit_level_m <= r.normal_level_m < r.design_flood_level_m \
            < r.check_flood_level_m < r.crest_level_m <= 150, r.id
        levels = [p[0] for p in r.level_storage]
        storages = [p[1] for p in r.level_storage]
        assert levels[0] == r.dead_level_m and levels[-1] == r.crest_level_m, r.id
        assert all(b > a for a, b in zip(levels, levels[1:])), r.id
        assert all(b > a for a, b in zip(storages, storages[1:])), r.id
        assert storages[0] > 0
        assert r.storage_at(r.normal_level_m) < r.storage_at(r.design_flood_level_m)


def test_reservoir_flood_limit_is_seasonal(district):
    r = by_kind(district, Kind.reservoir)[0]
    # Shandong's flood season, 1 June – 30 September, main season July–August (docs/domain.md, "Flood season")
    assert [(p.start, p.end, p.type) for p in r.flood_limit_periods] == [
        ("0601", "0630", "transition"), ("0701", "0831", "main"), ("0901", "0930", "late"),
        ("1001", "0531", "non_flood")]
    def at(month: int, day: int) -> float:
        return r.flood_limit_at(datetime(2026, month, day, 12, tzinfo=CST), CST)
    assert at(6, 1) == at(7, 20) == at(9, 15) == at(9, 30) == r.flood_limit_level_m
    assert at(10, 1) == at(1, 1) == at(5, 31) == r.normal_level_m
    assert r.normal_level_m < r.flood_control_high_level_m < r.design_flood_level_m


def test_river_stations_have_warning_below_guaranteed(district):
    for s in by_kind(district, Kind.river):
        assert s.river and s.river in s.name
        assert s.warning_level_m < s.guaranteed_level_m, s.id


# --------------------------------------------------------------------------- CSV

def test_csv_round_trip_is_exact(district, tmp_path: Path):
    path = tmp_path / "stations.csv"
    write_stations_csv(district, path)
    header = path.read_text(encoding="utf-8").splitlines()[0]
    assert header.split(",") == list(Station.model_fields)
    assert load_stations_csv(path) == district


def test_csv_encodes_curves_and_periods_compactly(tmp_path: Path):
    r = Station(id="RS1", kind="reservoir", name="测试水库", town="通济街道", lat=36.4, lon=120.5, interval_s=600,
                dead_level_m=20.0, flood_limit_level_m=52.0, normal_level_m=54.0,
                level_storage=[(20.0, 0.1), (25.0, 0.8)],
                flood_limit_periods=[{"start": "0601", "end": "0915", "level_m": 52.0, "type": "main"},
                                     {"start": "0916", "end": "0531", "level_m": 54.0, "type": "non_flood"}])
    path = tmp_path / "one.csv"
    write_stations_csv([r], path)
    row = path.read_text(encoding="utf-8").splitlines()[1]
    assert "20.0:0.1;25.0:0.8" in row
    assert "0601-0915:52.0:main;0916-0531:54.0:non_flood" in row
    assert ",," in row  # None cells are empty
    assert load_stations_csv(path) == [r]


@pytest.mark.parametrize("column,bad,expected", [
    ("lat", "north", "lat"),
    ("kind", "volcano", "kind"),
    ("level_storage", "20.0:0.1;19.0:0.2", "ascending"),
    ("flood_limit_periods", "June:52.0", "MMDD"),
    ("id", "RS/1", "id"),
])
def test_bad_csv_row_raises_value_error_naming_the_row(district, tmp_path: Path, column, bad, expected):
    path = tmp_path / "stations.csv"
    write_stations_csv(district[:6], path)
    lines = path.read_text(encoding="utf-8").splitlines()
    header = lines[0].split(",")
    # Row 4 of the file (header = row 1) is the third reservoir; rewrite one of its cells.
    cells = next(csv.reader([lines[3]]))
    cells[header.index(column)] = bad
    buf = io.StringIO()
    csv.writer(buf).writerow(cells)
    lines[3] = buf.getvalue().rstrip("\r\n")
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    with pytest.raises(ValueError, match=r"row 4\b") as err:
        load_stations_csv(path)
    assert expected in str(err.value)


def test_csv_rejects_unknown_columns_and_duplicate_ids(district, tmp_path: Path):
    path = tmp_path / "stations.csv"
    write_stations_csv(district[:3], path)
    text = path.read_text(encoding="utf-8")
    path.write_text(text.replace("interval_s", "interval", 1), encoding="utf-8")
    with pytest.raises(ValueError, match=r"row 1 .*interval"):
        load_stations_csv(path)
    lines = text.splitlines()
    path.write_text("\n".join(lines + [lines[1]]) + "\n", encoding="utf-8")
    with pytest.raises(ValueError, match=r"row 5: duplicate station id 'RS0001' \(first in row 2\)"):
        load_stations_csv(path)


# --------------------------------------------------------------------------- scenarios

def rolling_sums(increments: list[float], window: int) -> list[float]:
    """Sum of each report and the window-1 before it: the rain in the trailing window ending at that report."""
    return [sum(increments[max(0, i - window + 1): i + 1]) for i in range(len(increments))]


@pytest.fixture(scope="module")
def storm(district) -> Scenario:
    return Scenario(district, "storm", seed=20260628, start=START)


def test_storm_gives_a_red_rainstorm_on_several_gauges_and_lighter_rain_elsewhere(district, storm):
    red_by_90_min, reached_100, totals = 0, 0, []
    for g in by_kind(district, Kind.rain):
        times = report_times(START, g.interval_s, 8)
        rain = [storm.values(g, t)["rain_mm"] for t in times]
        assert all(0 <= r <= METRICS["rain"]["rain_mm"].max for r in rain)
        sums3h = rolling_sums(rain, 3 * HOUR // g.interval_s)
        n_3h = 3 * HOUR // g.interval_s
        reached_100 += max(sums3h[:n_3h]) >= 100  # within the first 3 simulated hours
        red_by_90_min += max(sums3h[: 90 * 60 // g.interval_s]) >= 100
        totals.append(sum(rain))
        # Increments are differences of a rounded cumulative curve: nothing is lost to rounding.
        assert sum(rain) == pytest.approx(round(storm.cumulative_rain(g.id, times[-1].timestamp()), 1), abs=0.05)
        assert rain[0] == 0.0  # the storm starts 10 min in
    assert reached_100 >= 1
    assert red_by_90_min >= 3
    assert sum(t > 0 for t in totals) >= 0.75 * len(totals)  # over most gauges...
    assert sum(t < 50 for t in totals) >= 3                   # ...lighter on some


def test_storm_raises_rivers_over_warning_and_guaranteed_and_reservoirs_over_flood_limit(district, storm):
    over_warning, over_guaranteed, over_limit = set(), set(), set()
    for s in by_kind(district, Kind.river):
        for t in report_times(START, s.interval_s, 2.5):
            level = storm.values(s, t)["water_level_m"]
            if level > s.warning_level_m:
                over_warning.add(s.id)
            if level > s.guaranteed_level_m:
                over_guaranteed.add(s.id)
    for r in by_kind(district, Kind.reservoir):
        for t in report_times(START, r.interval_s, 2.5):
            if storm.values(r, t)["water_level_m"] > r.flood_limit_at(t, CST):
                over_limit.add(r.id)
    assert over_guaranteed and over_warning - over_guaranteed
    assert over_limit
    assert len(over_warning) < len(by_kind(district, Kind.river)) / 2  # a storm, not a uniform flood


def test_storm_levels_lag_the_rain_and_recede(district, storm):
    rain_gauges = by_kind(district, Kind.rain)
    steps = [START + timedelta(minutes=10 * k) for k in range(1, 6 * 16)]
    rain_total = [sum(storm.values(g, t, t - timedelta(minutes=10))["rain_mm"] for g in rain_gauges) for t in steps]
    rain_peak = steps[rain_total.index(max(rain_total))]
    for s in by_kind(district, Kind.river) + by_kind(district, Kind.reservoir):
        levels = [storm.values(s, t)["water_level_m"] for t in steps]
        if max(levels) - levels[0] < 0.05:
            continue
        assert steps[levels.index(max(levels))] > rain_peak, s.id
    late = START + timedelta(hours=14)
    for s in by_kind(district, Kind.river):
        assert storm.values(s, late)["water_level_m"] < s.warning_level_m, s.id
    # A reservoir drains its surcharge through the spillway and outlet: slower than a river, within a day or so.
    later = START + timedelta(hours=30)
    for r in by_kind(district, Kind.reservoir):
        assert storm.values(r, later)["water_level_m"] < r.flood_limit_at(later, CST), r.id


def test_storm_uses_the_flood_limit_in_force_outside_the_flood_season(district):
    november = datetime(2026, 11, 10, 8, 0, tzinfo=CST)
    sc = Scenario(district, "storm", seed=20260628, start=november)
    over = [r.id for r in by_kind(district, Kind.reservoir)
            if any(sc.values(r, t)["water_level_m"] > r.flood_limit_at(t, CST)
                   for t in report_times(november, r.interval_s, 2.5))]
    assert over
    for rid in over:  # in November the limit in force is the normal pool level
        r = next(s for s in district if s.id == rid)
        assert r.flood_limit_at(november, CST) == r.normal_level_m


def test_scenarios_are_deterministic_for_a_seed(district):
    stations = district[:2] + district[40:42] + district[64:66] + district[94:96]
    t = START + timedelta(hours=1, minutes=20)
    a = Scenario(district, "storm", seed=1, start=START)
    b = Scenario(district, "storm", seed=1, start=START)
    c = Scenario(district, "storm", seed=2, start=START)
    assert [a.values(s, t) for s in stations] == [b.values(s, t) for s in stations]
    assert [a.values(s, t) for s in stations] != [c.values(s, t) for s in stations]
    with pytest.raises(ValueError, match="unknown scenario"):
        Scenario(district, "drought", start=START)
    assert {"normal", "storm", "dosing-failure", "sensor-faults"} <= set(SCENARIOS)


def test_normal_scenario_is_plausible_and_below_every_threshold(district):
    sc = Scenario(district, "normal", seed=20260628, start=START)
    catalogue = {s.id: s for s in district}
    for s in district:
        specs = METRICS[s.kind.value]
        # Hourly over a day at a station-specific minute, so every station sees the whole daily cycle.
        for h in range(0, 25):
            t = START + timedelta(hours=h, minutes=int(s.id[2:]) % 60)
            v = sc.values(s, t)
            assert set(v) == set(specs), s.id
            for metric, value in v.items():
                assert specs[metric].min <= value <= specs[metric].max, (s.id, metric, value)
            if s.kind == Kind.rain:
                assert v["rain_mm"] == 0.0
            elif s.kind == Kind.river:
                assert v["water_level_m"] < s.warning_level_m, s.id
            elif s.kind == Kind.reservoir:
                assert s.dead_level_m < v["water_level_m"] < s.flood_limit_at(t, CST), s.id
                assert v["storage_mcm"] == pytest.approx(s.storage_at(v["water_level_m"]), abs=1e-4)
            else:
                assert 0.2 <= v["turbidity_ntu"] <= 0.6 and 7.0 <= v["ph"] <= 7.8
                assert 0.2 <= v["free_chlorine_mgl"] <= 0.6 and 0.2 <= v["pressure_mpa"] <= 0.35
            if h % 6 == 0:  # and ingest accepts it
                decode(f"water/{s.kind.value}/{s.id}", json.dumps({"ts": t.isoformat(), "values": v}).encode(),
                       catalogue, now=t)


def test_village_flow_peaks_morning_and_evening(district):
    sc = Scenario(district, "normal", seed=20260628, start=START)
    v = by_kind(district, Kind.village_water)[0]
    def flow(hour: int) -> float:
        return sc.values(v, datetime(2026, 6, 29, hour, tzinfo=CST))["flow_m3h"]
    assert flow(7) > 2 * flow(3) and flow(19) > 2 * flow(3)
    assert flow(7) > flow(10) and flow(19) > flow(15)
    pressure = lambda hour: sc.values(v, datetime(2026, 6, 29, hour, tzinfo=CST))["pressure_mpa"]  # noqa: E731
    assert pressure(7) < pressure(3)


# --------------------------------------------------------------------------- simulator clock

@pytest.mark.parametrize("speed", [0.5, 1.0, 60.0, 120.0, 3600.0, 100000.0])
@pytest.mark.parametrize("duration_s", [None, 30.0, 3600.0])
def test_simulated_clock_never_runs_ahead_of_the_wall_clock(speed, duration_s):
    now = 1_782_604_800.0  # any instant
    clock = SimClock(default_sim_start(now, speed, duration_s), now, speed)
    previous = clock.sim_at(now)
    for dt in sorted([0, 0.001, 0.5, 1, 29.9, 30, 31, 60, 600, 1800, 3600, 86400 / 59, 86400, 10 * 86400]):
        wall = now + dt
        sim = clock.sim_at(wall)
        assert sim <= wall
        assert sim >= previous  # and it never goes back
        previous = sim
        # The runner publishes a report once its due time <= sim_at(now): so never stamped ahead.
        assert clock.wall_at(sim) <= wall + 1e-6
        assert clock.sim_at(clock.wall_at(sim)) == pytest.approx(sim, abs=1e-6)


def test_accelerated_clock_replays_the_past_then_runs_live():
    now = 1_782_604_800.0
    with_duration = SimClock(default_sim_start(now, 120, 30), now, 120)
    assert with_duration.sim_start == now - 3600
    assert with_duration.sim_at(now + 30) == pytest.approx(now)  # a 30 s run replays the hour before it
    open_ended = SimClock(default_sim_start(now, 60, None), now, 60)
    catch_up = 86400 / 59
    assert open_ended.sim_at(now + catch_up / 2) < now + catch_up / 2
    assert open_ended.sim_at(now + catch_up + 100) == now + catch_up + 100  # live after catching up
    assert default_sim_start(now, 1.0, None) == now


def test_reports_follow_a_per_station_phase_on_the_interval_grid():
    assert first_due(120, 600, 1000.0) == 1320
    assert first_due(0, 600, 1200.0) == 1200
    assert first_due(599, 600, 1200.5) == 1799


# --------------------------------------------------------------------------- simulator with a fake broker

def small_network(district: list[Station]) -> list[Station]:
    return district[:3] + district[40:44] + district[64:67] + district[94:124]


class Collector(MqttConsumer):
    def __init__(self, settings):
        super().__init__(settings, settings.mqtt_client_prefix + "-collector", [("water/#", 1)], persistent=False)
        self.got: list[tuple[str, bytes, float]] = []

    def handle(self, msg):
        self.got.append((msg.topic, msg.payload, time.time()))


def test_simulator_publishes_each_station_on_schedule_and_never_in_the_future(district, own_settings):
    settings = own_settings
    stations = small_network(district)
    collector = Collector(settings)
    collector.start()
    assert collector.wait_connected(10)
    sim = Simulator(settings, stations, scenario="storm", speed=3600, duration_s=0.5)
    t0 = time.time()
    sim.start()
    try:
        assert sim.join(timeout=15)
        assert sim.error is None and sim.outstanding == 0
        assert wait_for(lambda: len(collector.got) == sim.published > 0, 10)
    finally:
        sim.stop()
        collector.stop()
    catalogue = {s.id: s for s in stations}
    per_station: dict[str, list[datetime]] = {}
    for topic, payload, wall in collector.got:
        _, kind, sid = topic.split("/")
        readings = decode(topic, payload, catalogue, now=datetime.fromtimestamp(wall, timezone.utc),
                          max_future_s=0)  # ingest would allow 5 min; we allow none
        assert readings and all(r.ts.timestamp() <= wall for r in readings)
        per_station.setdefault(sid, []).append(readings[0].ts)
    # The run replays [t0 - 1800 s, t0]: every station reports at its interval across that half hour.
    assert set(per_station) == set(catalogue)
    for sid, times in per_station.items():
        times.sort()
        interval = catalogue[sid].interval_s
        assert all((b - a).total_seconds() == interval for a, b in zip(times, times[1:])), sid
        assert times[0].timestamp() >= t0 - 3600 * 0.5 - 1
        assert len(times) >= int(1800 / interval) - 1


def test_stop_is_prompt_with_a_day_of_backlog(district, own_settings):
    sim = Simulator(own_settings, small_network(district), scenario="normal", speed=100000)
    sim.start()
    assert wait_for(lambda: sim.published > 1000, 15)
    t = time.monotonic()
    sim.stop()
    assert time.monotonic() - t < 2.0
    assert sim.done.is_set()


def test_simulator_rejects_bad_arguments(district, tmp_path):
    settings = Settings(data_dir=tmp_path, _env_file=None)
    with pytest.raises(ValueError, match="unknown scenario"):
        Simulator(settings, district, scenario="tsunami")
    with pytest.raises(ValueError, match="speed"):
        Simulator(settings, district, speed=0)


# --------------------------------------------------------------------------- registry data and the command line

def test_scenarios_cope_with_sparse_registry_entries_and_every_kind():
    from tests.conftest import TEST_STATIONS

    extra = [Station(id="GW0001", kind="groundwater", name="监测井", town="通济街道", lat=36.4, lon=120.5),
             Station(id="IN0001", kind="intake", name="取水口", town="通济街道", lat=36.4, lon=120.5),
             Station(id="RS0099", kind="reservoir", name="无资料水库", town="通济街道", lat=36.4, lon=120.5)]
    stations = TEST_STATIONS + extra
    catalogue = {s.id: s for s in stations}
    for name in SCENARIOS:
        sc = Scenario(stations, name, seed=3, start=START)
        volumes = []
        for h in range(0, 12):
            t = START + timedelta(hours=h)
            for s in stations:
                v = sc.values(s, t)
                assert set(v) <= set(METRICS[s.kind.value]) and v, s.id
                decode(f"water/{s.kind.value}/{s.id}", json.dumps({"ts": t.isoformat(), "values": v}).encode(),
                       catalogue, now=t)
            volumes.append(sc.values("IN0001", t)["volume_m3"])
        assert volumes == sorted(volumes)  # a cumulative meter never runs backwards


def test_csv_blank_lines_are_skipped_but_still_counted(district, tmp_path: Path):
    path = tmp_path / "stations.csv"
    write_stations_csv(district[:2], path)
    lines = path.read_text(encoding="utf-8").splitlines()
    broken = lines[2].replace("RS0002", "RS 2")
    path.write_text("\n".join([lines[0], lines[1], "", broken]) + "\n", encoding="utf-8")
    with pytest.raises(ValueError, match=r"row 4 \(station 'RS 2'\): id"):
        load_stations_csv(path)


def test_command_line_refuses_an_empty_registry(tmp_path: Path, monkeypatch, capsys):
    from core.settings import get_settings
    from simulators.__main__ import main

    monkeypatch.setenv("SMARTWATER_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("SMARTWATER_DB_URL", f"sqlite:///{tmp_path / 'registry.sqlite3'}")
    get_settings.cache_clear()
    try:
        assert main(["--scenario", "storm", "--speed", "60", "--duration", "30"]) == 2
    finally:
        get_settings.cache_clear()
    assert "run `smartwater init`" in capsys.readouterr().err
