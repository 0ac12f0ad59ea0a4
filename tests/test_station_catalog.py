"""The station catalogue (core/catalog.py): refresh when due, on an unknown id, a version; and the alert service
evaluating a station added — or edited — while it runs."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from core.catalog import StationCatalog, is_stale, overdue_at, stale_intervals
from core.domain import Station
from core.rules import default_rules

T0 = datetime(2026, 7, 10, 0, 0, tzinfo=timezone.utc)
RIVER = Station(id="RV9101", kind="river", name="Added river", town="通济街道", lat=36.4, lon=120.5, interval_s=600,
                river="墨水河", warning_level_m=10.0, guaranteed_level_m=11.5)
GAUGE = Station(id="RG9101", kind="rain", name="Gauge", town="通济街道", lat=36.4, lon=120.5, interval_s=300)


class Clock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


@pytest.mark.unit
def test_refreshes_when_due_and_counts_changes_only():
    rows, loads, clock = [GAUGE], [], Clock()

    def load():
        loads.append(clock.t)
        return list(rows)

    cat = StationCatalog(load, refresh_s=30, clock=clock)
    assert cat.refresh_if_due() and cat.version == 1 and list(cat) == ["RG9101"]
    clock.t += 29
    assert not cat.refresh_if_due() and len(loads) == 1  # not due yet
    clock.t += 2
    assert not cat.refresh_if_due() and len(loads) == 2 and cat.version == 1  # due, but nothing changed
    rows.append(RIVER)
    old = cat.stations
    clock.t += 31
    assert cat.refresh_if_due() and cat.version == 2 and "RV9101" in cat
    assert "RV9101" not in old  # a reader's snapshot is never changed under it
    rows[1] = RIVER.model_copy(update={"warning_level_m": 9.5})  # an edited reference level is a change too
    assert cat.refresh() and cat.version == 3 and cat["RV9101"].warning_level_m == 9.5


@pytest.mark.unit
def test_an_unknown_id_reloads_at_most_every_few_seconds():
    rows, loads, clock = [GAUGE], [], Clock()
    cat = StationCatalog(lambda: loads.append(1) or list(rows), refresh_s=30, unknown_retry_s=5, clock=clock)
    cat.refresh()
    rows.append(RIVER)
    clock.t += 1
    assert not cat.refresh_for_unknown("RV9101") and len(loads) == 1  # loaded a second ago: not again
    clock.t += 5
    assert cat.refresh_for_unknown("RV9101") and len(loads) == 2
    assert not cat.refresh_for_unknown("NOPE") and len(loads) == 2  # a flood of bad ids costs nothing
    assert cat.refresh_for_unknown("RG9101") and len(loads) == 2  # known: no reload


@pytest.mark.unit
def test_the_map_and_the_alert_use_one_stale_rule():
    rules = [r for r in default_rules() if r.enabled]
    # the default stale rule covers rain gauges: 3 intervals of 5 min
    assert stale_intervals(GAUGE, rules) == 3
    assert overdue_at(T0, GAUGE, 3) == T0 + timedelta(minutes=15)
    assert not is_stale(T0, GAUGE, 3, T0 + timedelta(minutes=15))
    assert is_stale(T0, GAUGE, 3, T0 + timedelta(minutes=15, seconds=1))
    assert is_stale(None, GAUGE, 3, T0)
    edited = [r.model_copy(update={"params": {**r.params, "intervals": 6}}) if r.type.value == "stale" else r
              for r in rules]
    assert stale_intervals(GAUGE, edited) == 6  # a bureau's own setting moves the map too


# -- the running alert service ---------------------------------------------------------------------------------
def _service(settings, registry, store):
    from alerts import AlertService

    service = AlertService(settings.model_copy(update={"station_refresh_s": 1.0}), registry, store)
    service.start()
    assert service.wait_connected(10)
    return service


def _publish_until(settings, topic, values, done, deadline_s=15.0) -> bool:
    """Publish a reading now and again until ``done()`` (each waits for the previous to be evaluated)."""
    import time

    from core.mqtt import Publisher, wait_for
    from core.payload import encode
    from core.timeutil import utcnow

    pub = Publisher(settings, settings.mqtt_client_prefix + "-rtu").start()
    try:
        end = time.monotonic() + deadline_s
        while time.monotonic() < end:
            assert pub.wait_all_published([pub.publish(topic, encode(utcnow(), values))], 10)
            if wait_for(done, 0.5, interval=0.05):
                return True
        return False
    finally:
        pub.stop()


def test_a_station_added_while_the_alert_service_runs_is_evaluated(settings, registry, store, stations):
    service = _service(settings, registry, store)
    try:
        registry.upsert_stations([RIVER])  # after the service loaded its stations
        red = RIVER.guaranteed_level_m + 0.5

        def raised() -> bool:
            return any(a.station_id == RIVER.id and a.rule == "river_level" for a in registry.list_alerts())

        assert _publish_until(settings, f"water/river/{RIVER.id}", {"water_level_m": red}, raised)
        (alert,) = [a for a in registry.list_alerts() if a.station_id == RIVER.id and a.rule == "river_level"]
        assert alert.severity == "red" and alert.threshold == RIVER.guaranteed_level_m
    finally:
        service.stop()


def test_an_edited_reference_level_is_used_within_the_refresh_time(settings, registry, store, stations):
    service = _service(settings, registry, store)
    river = stations["RV9001"]
    try:
        below = river.warning_level_m - 0.3  # nothing to raise against today's levels
        assert _publish_until(settings, "water/river/RV9001", {"water_level_m": below},
                              lambda: service.readings_seen >= 1)
        assert registry.list_alerts() == []
        registry.upsert_stations([river.model_copy(update={"warning_level_m": below - 0.2})])

        def raised() -> bool:
            return any(a.rule == "river_level" for a in registry.list_alerts(station_id="RV9001"))

        assert _publish_until(settings, "water/river/RV9001", {"water_level_m": below}, raised)
        (alert,) = registry.list_alerts(station_id="RV9001")
        assert alert.threshold == below - 0.2
    finally:
        service.stop()
