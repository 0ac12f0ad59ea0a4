"""The alert engine's parts on their own: the lifecycle as a pure state machine, the rule plan, the station index.

No registry, no broker: these are functions of their inputs (the engine's tests run them together)."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from alerts.evaluate import Verdict
from alerts.index import NO_TIME, StationIndex, nearest_gauges, to_us
from alerts.lifecycle import (Clear, Close, Escalate, Hold, KeyState, Raise, Reopen, apply, decide, expired,
                              new_alert, restore, snapshot)
from alerts.plan import MetricCheck, RulePlan, SlotTable, safe_bound
from core.domain import AlertState, Station
from core.rules import default_rules

pytestmark = pytest.mark.unit

T0 = datetime(2026, 7, 10, 0, 0, tzinfo=timezone.utc)
REOPEN = timedelta(minutes=30)
RIVER = Station(id="RV1", kind="river", name="River", town="通济街道", lat=36.4, lon=120.5, interval_s=600,
                warning_level_m=10.0, guaranteed_level_m=11.5)


def at(minutes: float) -> datetime:
    return T0 + timedelta(minutes=minutes)


def raised(severity: str = "orange", minutes: float = 0):
    return new_alert(Raise(at(minutes), severity, 10.2, 10.0, "m"), "RV1", "river", "river_level", "water_level_m",
                     at(minutes))


NOTHING = KeyState(None, None, None)
ORANGE = Verdict("orange", "orange", 10.2, 10.0, "above the warning level")
QUIET = Verdict(None, None, 9.0)


def test_a_condition_raises_only_after_its_minimum_duration_from_when_it_began():
    first = decide(NOTHING, 900, at(0), ORANGE, REOPEN)
    assert first.transition is None and first.pending == at(0)
    still = decide(KeyState(None, None, at(0)), 900, at(10), ORANGE, REOPEN)
    assert still.transition is None and still.pending == at(0)
    d = decide(KeyState(None, None, at(0)), 900, at(15), ORANGE, REOPEN)
    assert isinstance(d.transition, Raise) and d.transition.since == at(0)
    assert d.pending is None and d.pending_if_refused == at(0)  # a refused write stays pending from the start
    assert decide(KeyState(None, None, at(0)), 900, at(20), QUIET, REOPEN).pending is None  # the dip ended


def test_an_open_alert_escalates_holds_and_clears():
    alert = raised("orange")
    state = KeyState(alert, None, None)
    up = decide(state, 0, at(10), Verdict("red", "red", 11.7, 11.5, "above the guaranteed level"), REOPEN)
    assert up.transition == Escalate("orange", "red", 11.7, 11.5, "above the guaranteed level")
    # a milder reading within the hysteresis band: not an all-clear, the severity stays
    assert decide(state, 0, at(20), Verdict(None, "orange", 9.95), REOPEN).transition == Hold(9.95)
    assert decide(state, 0, at(30), QUIET, REOPEN).transition == Clear(9.0)


def test_a_condition_back_within_the_reopen_window_reopens_the_same_alert():
    alert = raised("orange")
    apply(alert, Clear(9.0), at(10))
    assert (alert.state, alert.cleared_at) == (AlertState.cleared.value, at(10))
    back = decide(KeyState(None, alert, None), 0, at(30), Verdict("red", "red", 11.8, 11.5, "red"), REOPEN)
    assert back.transition == Reopen("red", 11.8, 11.5, "red")
    milder = decide(KeyState(None, alert, None), 0, at(30), Verdict("yellow", "yellow", 9.9, 9.8, "y"), REOPEN)
    assert milder.transition == Reopen("orange", 9.9, 10.0, "m")  # never reopens lower than it was
    late = decide(KeyState(None, alert, None), 0, at(41), ORANGE, REOPEN)
    assert isinstance(late.transition, Raise) and late.close_expired  # the old one closes, a new one starts
    assert decide(KeyState(None, alert, None), 0, at(41), QUIET, REOPEN).close_expired
    assert not decide(KeyState(None, alert, None), 0, at(39), QUIET, REOPEN).close_expired
    assert expired(alert, at(41), REOPEN) and not expired(alert, at(40), REOPEN)


def test_apply_and_restore_round_trip():
    alert = raised("orange")
    alert.state = AlertState.acknowledged.value
    before = snapshot(alert)
    apply(alert, Escalate("orange", "red", 11.7, 11.5, "red"), at(5))
    assert (alert.severity, alert.state, alert.updated_at) == ("red", "active", at(5))  # fresh eyes needed
    restore(alert, before)
    assert snapshot(alert) == before and alert.state == AlertState.acknowledged.value
    apply(alert, Close(), at(6))
    assert alert.state == AlertState.closed.value
    with pytest.raises(TypeError):
        apply(alert, Raise(at(0), "red", 1.0, 1.0, ""), at(0))


def test_the_plan_sorts_rules_by_what_they_watch_and_slots_are_named():
    rules = [r.model_copy(update={"enabled": True}) if r.name == "mountain_torrent" else r for r in default_rules()]
    rules = [r for r in rules if r.enabled]
    plan = RulePlan.build(rules, 1)
    assert {r.name for r in plan.stale} == {"stale_station"}
    assert {r.name for r in plan.torrent} == {"mountain_torrent"}  # a village's rain, read at its gauge
    assert ("river", "water_level_m") in plan.by_metric and ("rain", "rain_mm") in plan.history
    assert plan.keep_h("rain_mm") == max(plan.rain_hours) and plan.keep_h("ph") == 24

    index = StationIndex()
    index.replace_stations({RIVER.id: RIVER})
    for r in rules:
        index.col(r.name)
    slots = SlotTable(index, 1.0, lambda gi, kind, metric: None)
    slots.renew(plan)
    slot = slots.get("RV1", "water_level_m")
    level = next(c for c in slot.checks if c.rule.name == "river_level")
    assert isinstance(level, MetricCheck) and level.key == ("RV1", "river_level")
    assert level.bound == safe_bound(RIVER, level.rule, 1.0) == 10.0 - level.rule.hysteresis
    assert slots.get("NOPE", "water_level_m") is None


def test_the_index_keeps_rows_for_good_and_watermarks_only_move_forward():
    index = StationIndex()
    index.replace_stations({"RV1": RIVER})
    c = index.col("river_level")
    assert index.wm[0, c] == NO_TIME
    assert index.advance(0, c, to_us(at(10))) and not index.advance(0, c, to_us(at(5)))
    index.seen(0, "RV1", at(10), to_us(at(10)))
    index.seen(0, "RV1", at(5), to_us(at(5)))  # late: last seen stays
    assert index.last_seen == {"RV1": at(10)}
    other = RIVER.model_copy(update={"id": "RV2"})
    index.replace_stations({"RV2": other})  # RV1 removed from the registry: its row stays, not present
    assert index.ids == ["RV1", "RV2"] and index.present.tolist() == [False, True]
    assert index.wm.shape[0] == 2 and index.wm[0, c] == to_us(at(10))


def test_villages_go_to_their_nearest_gauge():
    near = Station(id="RG1", kind="rain", name="g1", town="t", lat=36.40, lon=120.50, interval_s=300)
    far = Station(id="RG2", kind="rain", name="g2", town="t", lat=36.60, lon=120.80, interval_s=300)
    village = Station(id="VW1", kind="village_water", name="v", town="t", lat=36.41, lon=120.51, interval_s=600)
    assert {g: [v.id for v in vs] for g, vs in nearest_gauges([near, far, village]).items()} == {"RG1": ["VW1"]}
