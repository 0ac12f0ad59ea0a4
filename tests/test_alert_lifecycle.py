"""Rule types and the alert lifecycle, against a real (SQLite) registry."""

import sqlite3
from contextlib import contextmanager
from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import event

from alerts.engine import AlertEngine
from core.domain import Reading, Station
from core.rules import Rule, default_rules
from tests.expectations import RecordingNotifier

pytestmark = pytest.mark.unit  # the engine against SQLite: no broker, no server

T0 = datetime(2026, 7, 10, 0, 0, tzinfo=timezone.utc)


def make_engine(settings, registry, rules=None):
    if rules is not None:
        registry.upsert_rules(rules)
    eng = AlertEngine(settings, registry, RecordingNotifier())
    eng.load()
    return eng


def rd(sid, kind, metric, minutes, value):
    return Reading(sid, kind, metric, T0 + timedelta(minutes=minutes), value)


def alerts_of(registry, rule):
    return [a for a in registry.list_alerts(limit=1000) if a.rule == rule]


def test_flapping_around_a_threshold_gives_one_alert(settings, registry, stations):
    eng = make_engine(settings, registry)
    # turbidity above 1 NTU twice in a row (the default rule wants the next reading to confirm), then wobbling
    # across 1 NTU every 10 minutes for 3 hours
    for i in range(18):
        eng.process([rd("VW9001", "village_water", "turbidity_ntu", 10 * i, 1.05 if i % 2 == 0 or i == 1 else 0.95)])
    assert len(alerts_of(registry, "turbidity")) == 1  # hysteresis (0.1 NTU) holds it open
    (a,) = alerts_of(registry, "turbidity")
    assert (a.state, a.started_at) == ("active", T0)
    # a clear drop clears it; coming back (confirmed) within the reopen window reopens the same alert
    eng.process([rd("VW9001", "village_water", "turbidity_ntu", 200, 0.5)])
    eng.process([rd("VW9001", "village_water", "turbidity_ntu", 210, 1.5)])
    eng.process([rd("VW9001", "village_water", "turbidity_ntu", 215, 1.5)])
    assert [x.id for x in alerts_of(registry, "turbidity")] == [a.id]
    assert [e["event"] for e in registry.alert_events(a.id)] == ["raised", "cleared", "reopened"]
    assert [e[0] for e in eng.notifier.events] == ["raised", "cleared", "reopened"]
    # after the reopen window (30 min of data time) a cleared alert closes and a new one may start
    eng.process([rd("VW9001", "village_water", "turbidity_ntu", 220, 0.5)])
    eng.process([rd("VW9001", "village_water", "turbidity_ntu", 260, 0.5)])
    assert registry.get_alert(a.id).state == "closed"
    eng.process([rd("VW9001", "village_water", "turbidity_ntu", 270, 1.5)])
    eng.process([rd("VW9001", "village_water", "turbidity_ntu", 280, 1.5)])
    assert len(alerts_of(registry, "turbidity")) == 2


def test_minimum_duration_delays_the_alert_to_when_it_held_long_enough(settings, registry, stations):
    eng = make_engine(settings, registry)  # pressure_low: < 0.14 MPa for 15 min
    for m, p in [(0, 0.13), (5, 0.12), (10, 0.2), (20, 0.12), (25, 0.12), (30, 0.12)]:
        eng.process([rd("VW9001", "village_water", "pressure_mpa", m, p)])
    assert alerts_of(registry, "pressure_low") == []  # the dip at 0–5 min never lasted 15 min
    eng.process([rd("VW9001", "village_water", "pressure_mpa", 35, 0.12)])
    (a,) = alerts_of(registry, "pressure_low")
    assert a.started_at == T0 + timedelta(minutes=20)  # when the condition began, in data time


def test_rate_of_rise_stuck_and_spike(settings, registry, stations):
    eng = make_engine(settings, registry)
    # river rising 0.8 m/h over an hour, below the warning level (10 m): river_rise yellow only
    for i in range(13):
        eng.process([rd("RV9001", "river", "water_level_m", 5 * i, 8.0 + 0.8 * i / 12)])
    (rise,) = alerts_of(registry, "river_rise")
    assert rise.severity == "yellow" and rise.value == pytest.approx(0.8, abs=0.01)
    assert alerts_of(registry, "river_level") == []
    # reservoir level stuck for 12 readings and still 22 h later (calm reservoirs sit still for hours): data quality
    for i in range(12 + 22 * 6):
        eng.process([rd("RS9001", "reservoir", "water_level_m", 10 * i, 45.25)])
        assert alerts_of(registry, "level_stuck") == [] or i == 12 + 22 * 6 - 1
    assert [a.severity for a in alerts_of(registry, "level_stuck")] == ["blue"]
    eng.process([rd("RS9001", "reservoir", "water_level_m", 10 * (12 + 22 * 6), 45.26)])
    assert alerts_of(registry, "level_stuck")[0].state == "cleared"
    # turbidity jumping by 25 NTU between readings
    eng.process([rd("VW9001", "village_water", "turbidity_ntu", 0, 0.3),
                 rd("VW9001", "village_water", "turbidity_ntu", 10, 25.5)])
    assert [a.severity for a in alerts_of(registry, "turbidity_spike")] == ["blue"]


def test_redelivered_readings_do_not_make_a_stuck_value(settings, registry, stations):
    eng = make_engine(settings, registry)
    for _ in range(20):  # one reading delivered 20 times is still one reading
        eng.process([rd("RS9001", "reservoir", "water_level_m", 0, 45.25)])
    assert alerts_of(registry, "level_stuck") == []


def test_stale_station_raised_by_the_clock_and_cleared_by_data(settings, registry, stations):
    eng = make_engine(settings, registry)
    eng.process([rd("RG9001", "rain", "rain_mm", 0, 0.0)])
    assert eng.check_stale(T0 + timedelta(minutes=14)) == 0  # 3 × 5 min not yet passed
    assert eng.check_stale(T0 + timedelta(minutes=16)) == 1
    (a,) = alerts_of(registry, "stale_station")
    assert a.started_at == T0 + timedelta(minutes=15) and a.severity == "blue"
    assert eng.check_stale(T0 + timedelta(minutes=30)) == 0  # one alert, not one per check
    eng.process([rd("RG9001", "rain", "rain_mm", 31, 0.0)])
    assert registry.get_alert(a.id).state == "cleared"


def test_mountain_torrent_thresholds_per_village(settings, registry, stations):
    torrent = next(r for r in default_rules() if r.name == "mountain_torrent")
    torrent = torrent.model_copy(update={"enabled": True,
                                         "params": {**torrent.params, "per_station": {"VW9001": {"red": {1: 30}}}}})
    eng = make_engine(settings, registry, [torrent])
    # 32 mm in one hour at the village's nearest gauge: below the county's blue (35) but over this village's red
    for i in range(4):
        eng.process([rd("RG9001", "rain", "rain_mm", 15 * i, 8.0)])
    (a,) = alerts_of(registry, "mountain_torrent")
    assert (a.station_id, a.severity, a.threshold) == ("VW9001", "red", 30.0)


def test_rules_come_from_the_registry(settings, registry, stations):
    rules = [r.model_copy(update={"enabled": r.name != "turbidity"}) for r in default_rules()]
    custom = Rule(name="flow_high", type="threshold", station_kind="river", metric="flow_m3s",
                  levels=[{"severity": "yellow", "value": 100}, {"severity": "red", "value": 300}])
    eng = make_engine(settings, registry, rules + [custom])
    eng.process([rd("VW9001", "village_water", "turbidity_ntu", 0, 5.0),
                 rd("RV9001", "river", "flow_m3s", 0, 350.0)])
    assert alerts_of(registry, "turbidity") == []  # disabled
    assert [a.severity for a in alerts_of(registry, "flow_high")] == ["red"]


def test_engine_never_overwrites_an_acknowledgement(settings, registry, stations):
    eng = make_engine(settings, registry)
    eng.process([rd("RV9001", "river", "water_level_m", 0, 10.2)])
    (a,) = alerts_of(registry, "river_level")
    registry.acknowledge_alert(a.id, "duty officer")
    eng.process([rd("RV9001", "river", "water_level_m", 10, 11.7)])  # escalates: needs fresh eyes
    got = registry.get_alert(a.id)
    assert (got.severity, got.state, got.acknowledged_by) == ("red", "active", "duty officer")


def test_seasonal_flood_limit_uses_the_local_date(settings, registry):
    # 2026-05-31T17:00Z is 1 June 01:00 in Shanghai: the main flood season's lower limit applies
    st = Station(id="RS9100", kind="reservoir", name="R", town="t", lat=36.4, lon=120.5, interval_s=600,
                 flood_limit_level_m=50.0, design_flood_level_m=60, check_flood_level_m=61,
                 flood_limit_periods=[{"start": "0601", "end": "0915", "level_m": 50.0},
                                      {"start": "0916", "end": "0531", "level_m": 52.0, "type": "non_flood"}])
    registry.upsert_stations([st])
    eng = make_engine(settings, registry)
    eng.process([Reading("RS9100", "reservoir", "water_level_m", datetime(2026, 5, 31, 17, tzinfo=timezone.utc), 51)])
    assert [a.threshold for a in alerts_of(registry, "reservoir_level")] == [50.0]


@pytest.fixture
def write_locked(settings, registry):
    """Hold the registry file's write lock from another connection (as a long backup or migration would): while
    held, the engine's writes fail with "database is locked" after 0.1 s instead of the usual 30 s."""
    @event.listens_for(registry.engine, "connect")
    def _short_wait(dbapi_conn, _rec):
        dbapi_conn.execute("PRAGMA busy_timeout=100")

    registry.engine.dispose()  # reconnect with the short wait
    holder = sqlite3.connect(settings.db_url.removeprefix("sqlite:///"), isolation_level=None)

    @contextmanager
    def locked():
        holder.execute("BEGIN IMMEDIATE")
        try:
            yield
        finally:
            holder.execute("ROLLBACK")

    yield locked
    holder.close()


def test_a_registry_refusing_writes_delays_transitions_but_loses_none(settings, registry, stations, write_locked):
    eng = make_engine(settings, registry, [r for r in default_rules() if r.name == "river_level"])
    key = ("RV9001", "river_level")

    def level_alerts():
        return alerts_of(registry, "river_level")

    def notified():
        return [(e, sev) for e, sid, rule, sev in eng.notifier.events if rule == "river_level"]

    with write_locked():
        eng.process([rd("RV9001", "river", "water_level_m", 0, 10.2)])  # above the warning level: orange
    assert level_alerts() == [] and key not in eng.open and notified() == []
    assert eng.write_failures == 1
    eng.process([rd("RV9001", "river", "water_level_m", 10, 10.3)])
    (a,) = level_alerts()
    assert (a.severity, a.started_at) == ("orange", T0)  # from the first reading above, as if nothing had failed

    with write_locked():
        eng.process([rd("RV9001", "river", "water_level_m", 20, 11.8)])  # above the guaranteed level: red
    assert registry.get_alert(a.id).severity == eng.open[key].severity == "orange"  # memory never runs ahead
    eng.process([rd("RV9001", "river", "water_level_m", 30, 11.9)])
    assert registry.get_alert(a.id).severity == "red"

    with write_locked():
        eng.process([rd("RV9001", "river", "water_level_m", 40, 9.0)])
    assert registry.get_alert(a.id).state == eng.open[key].state == "active"
    eng.process([rd("RV9001", "river", "water_level_m", 50, 9.0)])
    assert registry.get_alert(a.id).state == "cleared"

    assert [e["event"] for e in registry.alert_events(a.id)] == ["raised", "escalated", "cleared"]
    assert notified() == [("raised", "orange"), ("escalated", "red"), ("cleared", "red")]
    assert eng.write_failures == 3
