"""The engine against a real (SQLite) registry; expectations computed from the thresholds, not the engine."""

from datetime import datetime, timedelta, timezone

import numpy as np
import pytest

from alerts.engine import AlertEngine
from alerts.windows import SeriesWindow
from core.domain import FloodLimitPeriod, Reading
from tests.expectations import RecordingNotifier, cma_rainstorm_signal

pytestmark = pytest.mark.unit  # the engine against SQLite: no broker, no server

T0 = datetime(2026, 7, 10, 0, 0, tzinfo=timezone.utc)


@pytest.fixture
def engine(settings, registry, stations):
    eng = AlertEngine(settings, registry, RecordingNotifier())
    eng.load()
    return eng


def level(sid, kind, minutes, z):
    return Reading(sid, kind, "water_level_m", T0 + timedelta(minutes=minutes), z)


def test_reservoir_raises_escalates_in_place_and_clears(engine, registry):
    engine.process([level("RS9001", "reservoir", 0, 49.0)])
    assert registry.list_alerts() == []
    engine.process([level("RS9001", "reservoir", 10, 50.2)])  # above flood-limit 50.0
    engine.process([level("RS9001", "reservoir", 20, 50.5)])  # still yellow: no new alert
    engine.process([level("RS9001", "reservoir", 30, 53.1)])  # 1 m below design flood 54.0 → orange
    engine.process([level("RS9001", "reservoir", 40, 55.6)])  # past the design flood level 54.0 → red
    alerts = [a for a in registry.list_alerts() if a.rule == "reservoir_level"]
    assert len(alerts) == 1
    a = alerts[0]
    assert (a.severity, a.state, a.started_at) == ("red", "active", T0 + timedelta(minutes=10))
    # a 6 m rise in half an hour is also a fast rise, an alert of its own rule
    assert {b.rule for b in registry.list_alerts()} == {"reservoir_level", "reservoir_rise"}
    engine.process([level("RS9001", "reservoir", 50, 49.9)])
    a = registry.get_alert(a.id)
    assert a.state == "cleared" and a.cleared_at == T0 + timedelta(minutes=50)
    assert [e["event"] for e in registry.alert_events(a.id)] == ["raised", "escalated", "escalated", "cleared"]
    assert [e[0] for e in engine.notifier.events if e[2] == "reservoir_level"] == [
        "raised", "escalated", "escalated", "cleared"]


def test_seasonal_flood_limit_is_looked_up_by_the_readings_date(engine, registry):
    st = engine.stations["RS9001"]
    engine.stations["RS9001"] = st.model_copy(update={"flood_limit_periods": [
        FloodLimitPeriod(start="0601", end="0915", level_m=50.0, type="main"),
        FloodLimitPeriod(start="0916", end="0531", level_m=51.0, type="non_flood")]})
    winter = datetime(2026, 1, 10, tzinfo=timezone.utc)
    engine.process([Reading("RS9001", "reservoir", "water_level_m", winter, 50.5)])
    assert registry.list_alerts() == []  # 50.5 is below the 51.0 that applies in January
    engine.process([level("RS9001", "reservoir", 0, 50.5)])  # July: main flood season, limit 50.0
    assert [a.severity for a in registry.list_alerts()] == ["yellow"]


def test_river_warning_then_guaranteed(engine, registry):
    engine.process([level("RV9001", "river", 0, 10.2)])
    assert [(a.severity, a.threshold) for a in registry.list_alerts()] == [("orange", 10.0)]
    engine.process([level("RV9001", "river", 10, 11.6)])
    assert [(a.severity, a.threshold) for a in registry.list_alerts()] == [("red", 11.5)]


def test_late_older_reading_does_not_clear_a_newer_alert(engine, registry):
    engine.process([level("RV9001", "river", 10, 10.5)])
    engine.process([level("RV9001", "river", 5, 9.0)])
    assert [a.state for a in registry.list_alerts()] == ["active"]


def expected_signal(increments: list[tuple[int, float]], at_min: int) -> str | None:
    """Rainstorm signal from first principles: sums over (t − h, t] compared with the CMA thresholds."""
    return cma_rainstorm_signal(lambda h: sum(v for m, v in increments if at_min - 60 * h < m <= at_min))


def test_rainstorm_signals_follow_the_rolling_sums(engine, registry):
    rng = np.random.default_rng(7)
    # 5-minute increments: dry, then a storm building to ~60 mm/h, then dry again
    minutes = list(range(0, 20 * 60, 5))
    rate_mm_h = [0 if m < 120 or m > 420 else 60 * np.sin(np.pi * (m - 120) / 300) for m in minutes]
    increments = [(m, round(float(max(0.0, r / 12 + rng.normal(0, 0.2))), 1)) for m, r in zip(minutes, rate_mm_h)]
    seen = []
    for m, v in increments:
        engine.process([Reading("RG9001", "rain", "rain_mm", T0 + timedelta(minutes=m), v)])
        open_alert = engine.open.get(("RG9001", "rainstorm"))
        seen.append(open_alert.severity if open_alert else None)
    # The highest signal reached must be what the thresholds say, at the same data time.
    want = [expected_signal(increments, m) for m, _ in increments]
    first_red = next(i for i, s in enumerate(want) if s == "red")
    assert seen[first_red] == "red" and (first_red == 0 or seen[first_red - 1] != "red")
    alert = registry.list_alerts(station_id="RG9001")[0]
    assert alert.started_at == T0 + timedelta(minutes=increments[want.index(next(s for s in want if s))][0])
    assert alert.severity == "red"
    assert len(registry.list_alerts(station_id="RG9001")) == 1  # escalated in place, never duplicated
    # Once every window has dried out the alert clears, and closes when it has not come back.
    assert want[-1] is None and alert.state == "closed"
    assert [e["event"] for e in registry.alert_events(alert.id)][-2:] == ["cleared", "closed"]


def test_redelivered_rain_is_not_counted_twice():
    from core.timeutil import to_ms

    w = SeriesWindow()
    t = T0
    for _ in range(3):
        w.add(t, 30.0)  # the same report delivered three times
    w.add(t + timedelta(minutes=5), 30.0)
    w.add(t - timedelta(minutes=5), 1.0)  # out of order
    assert w.sums(to_ms(t + timedelta(minutes=5)), (1, 3)) == {1: 61.0, 3: 61.0}
    assert w.sums(to_ms(t), (1,)) == {1: 31.0}


def test_water_quality_rules(engine, registry):
    t = T0
    engine.process([Reading("VW9001", "village_water", "turbidity_ntu", t, 1.4),
                    Reading("VW9001", "village_water", "free_chlorine_mgl", t, 0.03),
                    Reading("VW9001", "village_water", "ph", t, 7.2)])
    got = {(a.rule, a.severity) for a in registry.list_alerts()}
    assert got == {("free_chlorine_low", "orange")}  # turbidity waits for the next reading to confirm it
    engine.process([Reading("VW9001", "village_water", "turbidity_ntu", t + timedelta(minutes=10), 1.3)])
    (turbidity,) = [a for a in registry.list_alerts() if a.rule == "turbidity"]
    assert (turbidity.severity, turbidity.started_at) == ("yellow", t)  # from the first reading above 1 NTU


def test_a_single_turbidity_spike_is_a_data_quality_alert_not_a_water_quality_one(engine, registry):
    t = T0
    for i, ntu in enumerate([0.4, 0.5, 40.0, 0.4, 0.5]):
        engine.process([Reading("VW9001", "village_water", "turbidity_ntu", t + timedelta(minutes=10 * i), ntu)])
    assert {(a.rule, a.severity) for a in registry.list_alerts()} == {("turbidity_spike", "blue")}


def test_restart_reloads_open_alerts_and_rain_from_store(settings, registry, stations, store):
    readings = [Reading("RG9001", "rain", "rain_mm", T0 + timedelta(minutes=5 * i), 20.0) for i in range(4)]
    store.write(readings)
    eng = AlertEngine(settings, registry, RecordingNotifier())
    eng.load()
    assert eng.refill(store, T0 + timedelta(hours=1)) == 4
    # 80 mm already in the window; 25 more crosses 100 mm in 3 h → red straight away
    eng.process([Reading("RG9001", "rain", "rain_mm", T0 + timedelta(minutes=20), 25.0)])
    assert [a.severity for a in registry.list_alerts()] == ["red"]
    eng2 = AlertEngine(settings, registry, RecordingNotifier())
    eng2.load()
    assert list(eng2.open) == [("RG9001", "rainstorm")]
