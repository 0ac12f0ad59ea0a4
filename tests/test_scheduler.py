"""Re-notification with escalation, and the daily rain report, against real peers and a real SQLite store."""

from __future__ import annotations

import json
from datetime import date, datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest

from alerts.channels import DELIVERY_HEADER, EVENT_HEADER
from alerts.scheduler import REPORT_TOPIC, AlertScheduler
from core.domain import Reading, Station
from core.mqtt import wait_for
from core.reports import daily_rain_report, hydrological_day, hydrological_day_of
from core.timeutil import utcnow
from tests.conftest import GAUGE
from tests.test_notify import (Listener, add_roster, hooks, notifier_factory, red_rain_alert,  # noqa: F401
                               smtp, with_smtp)

SH = ZoneInfo("Asia/Shanghai")
MINUTE = timedelta(minutes=1)


def renotified_rounds(registry, alert_id):
    return [e["detail"] for e in registry.alert_events(alert_id) if e["event"] == "renotified"]


def escalations(registry, alert_id):
    return [e["detail"] for e in registry.alert_events(alert_id) if e["event"] == "escalated_to"]


# -- re-notification and escalation ---------------------------------------------
def test_unacknowledged_red_alert_is_renotified_and_escalated_until_acknowledged(
        settings, registry, smtp, hooks, notifier_factory):
    add_roster(registry)  # 王伟 (rank 0), 李娜 (1), 赵强 (2)
    hook = hooks()
    s = with_smtp(settings, smtp, webhook_urls=[hook.url])
    notifier = notifier_factory(s)
    alert = red_rain_alert(registry)
    notifier.notify(alert, "raised")
    assert notifier.drain(10)
    assert [r for _, r, _ in smtp.messages] == [["wang@example.org"]]
    t0 = utcnow()
    sched = AlertScheduler(s, registry, notifier, renotify_interval_s=600)

    assert sched.run_once(t0 + 5 * MINUTE) == []  # within the interval: nothing

    [r1] = sched.run_once(t0 + 11 * MINUTE)
    assert (r1.alert_id, r1.round, r1.escalated_to) == (alert.id, 1, "李娜 <li@example.org>")
    assert notifier.drain(10)
    assert smtp.messages[-1][1] == ["wang@example.org", "li@example.org"]
    assert smtp.messages[-1][2]["Subject"].startswith("[RED] 蓝村雨量站: ")
    headers, raw = hook.requests[-1]
    assert headers[EVENT_HEADER.lower()] == "renotified"
    assert headers[DELIVERY_HEADER.lower()] == f"{alert.id}-renotified-1"
    assert json.loads(raw)["event"] == "renotified"
    assert escalations(registry, alert.id) == ["李娜 <li@example.org>"]

    assert sched.run_once(t0 + 12 * MINUTE) == []  # the round just done resets the interval

    [r2] = sched.run_once(t0 + 22 * MINUTE)
    assert (r2.round, r2.escalated_to) == (2, "赵强 <zhao@example.org>")
    assert notifier.drain(10)
    assert smtp.messages[-1][1] == ["wang@example.org", "li@example.org", "zhao@example.org"]
    assert hook.requests[-1][0][DELIVERY_HEADER.lower()] == f"{alert.id}-renotified-2"

    [r3] = sched.run_once(t0 + 33 * MINUTE)  # everyone is already on it: notified again, nobody added
    assert (r3.round, r3.escalated_to) == (3, None)
    assert escalations(registry, alert.id) == ["李娜 <li@example.org>", "赵强 <zhao@example.org>"]
    assert notifier.drain(10)
    sent = len(smtp.messages)

    registry.acknowledge_alert(alert.id, "王伟")
    assert sched.run_once(t0 + 60 * MINUTE) == []
    assert sched.run_once(t0 + 120 * MINUTE) == []
    assert notifier.drain(10)
    assert len(smtp.messages) == sent
    assert len(renotified_rounds(registry, alert.id)) == 3
    # Every round went through every channel and was recorded.
    notified = [e["detail"] for e in registry.alert_events(alert.id) if e["event"] == "notified"]
    assert sum("renotified via email" in d for d in notified) == 3
    assert sum("renotified via webhook" in d for d in notified) == 3
    assert sum("renotified via mqtt" in d for d in notified) == 3


def test_only_active_red_alerts_are_renotified(settings, registry, notifier_factory):
    notifier = notifier_factory(settings)
    red = red_rain_alert(registry)
    orange = red_rain_alert(registry)
    orange.severity = "orange"
    registry.save_alert(orange, "escalated", None)
    acked = red_rain_alert(registry)
    registry.acknowledge_alert(acked.id, "李娜")
    cleared = red_rain_alert(registry)
    cleared.state = "cleared"
    registry.save_alert(cleared, "cleared", None)
    sched = AlertScheduler(settings, registry, notifier, renotify_interval_s=600)
    assert [r.alert_id for r in sched.run_once(utcnow() + 11 * MINUTE)] == [red.id]
    # Without anyone on duty it still goes out on MQTT and webhooks, and nobody is named.
    assert escalations(registry, red.id) == []


def test_the_running_scheduler_renotifies_on_its_own(settings, registry, notifier_factory):
    """The APScheduler job, not just run_once: a short interval and check period on the real clock."""
    listener = Listener(settings, "water/alerts/#")
    listener.start()
    assert listener.wait_connected(10)
    notifier = notifier_factory(settings)
    alert = red_rain_alert(registry)
    sched = AlertScheduler(settings, registry, notifier, renotify_interval_s=0.3, check_interval_s=0.1)
    sched.start()
    try:
        assert sched.running
        assert wait_for(lambda: any(b["event"] == "renotified" for _, b, _ in listener.got), 10)
        registry.acknowledge_alert(alert.id, "王伟")
    finally:
        sched.stop()
        listener.stop()
    assert not sched.running
    assert renotified_rounds(registry, alert.id)


# -- daily rain report ---------------------------------------------------------
G2 = Station(id="RG9002", kind="rain", name="Second gauge", town="蓝村街道", lat=36.5, lon=120.6, interval_s=300)
G3 = Station(id="RG9003", kind="rain", name="Silent gauge", town="蓝村街道", lat=36.5, lon=120.6, interval_s=300)


def local(y, mo, d, h, mi):
    return datetime(y, mo, d, h, mi, tzinfo=SH).astimezone(timezone.utc)


def rain(station, ts, mm):
    return Reading(station.id, "rain", "rain_mm", ts, mm)


@pytest.fixture
def rain_store(store):
    store.write([
        rain(GAUGE, local(2026, 6, 28, 7, 55), 4.0),   # hydrological day 27 June
        rain(GAUGE, local(2026, 6, 28, 8, 0), 1.5),    # first reading of 28 June (start inclusive)
        rain(GAUGE, local(2026, 6, 28, 8, 5), 2.5),
        rain(GAUGE, local(2026, 6, 28, 14, 0), 10.0),
        rain(GAUGE, local(2026, 6, 28, 14, 30), 12.0),
        rain(GAUGE, local(2026, 6, 28, 14, 55), 8.0),  # 14:00–14:55 = 30 mm within one hour
        rain(GAUGE, local(2026, 6, 28, 15, 10), 6.0),  # 14:30–15:10 = 26 mm
        rain(GAUGE, local(2026, 6, 29, 7, 55), 0.5),   # still 28 June
        rain(GAUGE, local(2026, 6, 29, 8, 0), 3.0),    # 29 June (end exclusive)
        rain(GAUGE, local(2026, 6, 29, 8, 5), 7.0),    # 29 June
        rain(G2, local(2026, 6, 28, 9, 0), 0.0),
        rain(G2, local(2026, 6, 28, 20, 0), 5.2),
        rain(G2, local(2026, 6, 29, 7, 59), 4.3),
    ])
    return store


def test_hydrological_day_runs_from_0800_to_0800_local():
    start, end = hydrological_day(date(2026, 6, 28), SH)
    assert (start.isoformat(), end.isoformat()) == ("2026-06-28T00:00:00+00:00", "2026-06-29T00:00:00+00:00")
    assert hydrological_day_of(local(2026, 6, 28, 7, 55), SH) == date(2026, 6, 27)
    assert hydrological_day_of(local(2026, 6, 28, 8, 5), SH) == date(2026, 6, 28)


def test_daily_rain_report_sums_the_hydrological_day(rain_store):
    report = daily_rain_report(rain_store, [GAUGE, G2, G3], date(2026, 6, 28), "Asia/Shanghai")
    assert (report["day"], report["start"], report["end"]) == (
        "2026-06-28", "2026-06-28T08:00:00+08:00", "2026-06-29T08:00:00+08:00")
    g = {x["station_id"]: x for x in report["gauges"]}
    # 1.5 + 2.5 + 10 + 12 + 8 + 6 + 0.5: not the 07:55 reading of the 28th, nor 08:00/08:05 of the 29th.
    assert g["RG9001"]["rain_mm"] == pytest.approx(40.5)
    assert g["RG9001"]["readings"] == 7
    assert g["RG9001"]["max_1h_mm"] == pytest.approx(30.0)
    assert g["RG9001"]["max_1h_end"] == "2026-06-28T14:55:00+08:00"
    assert (g["RG9002"]["rain_mm"], g["RG9002"]["readings"], g["RG9002"]["max_1h_mm"]) == (
        pytest.approx(9.5), 3, pytest.approx(5.2))
    assert (g["RG9003"]["rain_mm"], g["RG9003"]["readings"]) == (None, 0)  # missing is not dry
    d = report["district"]
    assert (d["gauges"], d["reporting"], d["max_station_id"]) == (3, 2, "RG9001")
    assert d["mean_mm"] == pytest.approx((40.5 + 9.5) / 2)
    assert d["max_mm"] == pytest.approx(40.5)

    previous = daily_rain_report(rain_store, [GAUGE], date(2026, 6, 27), SH)
    assert previous["gauges"][0]["rain_mm"] == pytest.approx(4.0)
    following = daily_rain_report(rain_store, [GAUGE], date(2026, 6, 29), SH)
    assert following["gauges"][0]["rain_mm"] == pytest.approx(10.0)


def test_daily_report_job_publishes_yesterday_retained_and_to_webhooks(
        settings, registry, rain_store, hooks, notifier_factory):
    registry.upsert_stations([GAUGE, G2, G3])
    hook = hooks()
    s = settings.model_copy(update={"webhook_urls": [hook.url]})
    notifier = notifier_factory(s)
    sched = AlertScheduler(s, registry, notifier, rain_store)
    report = sched.daily_report_job(local(2026, 6, 29, 8, 0))  # the cron job's moment
    assert report["day"] == "2026-06-28"
    assert notifier.drain(10)

    [(headers, raw)] = hook.requests
    assert headers[EVENT_HEADER.lower()] == "daily_rain_report"
    assert headers[DELIVERY_HEADER.lower()] == "daily_rain_report-2026-06-28"
    body = json.loads(raw)
    assert body["day"] == "2026-06-28" and body["district"]["max_mm"] == pytest.approx(40.5)

    # Retained: a dashboard subscribing afterwards still gets the latest report.
    listener = Listener(s, REPORT_TOPIC)
    listener.start()
    try:
        assert wait_for(lambda: listener.got, 10)
    finally:
        listener.stop()
    [(topic, payload, retained)] = listener.got
    assert (topic, retained, payload["day"]) == (REPORT_TOPIC, True, "2026-06-28")
    assert payload["gauges"][0]["rain_mm"] == pytest.approx(40.5)


def test_daily_report_cron_is_at_0800_shanghai(settings, registry, store, notifier_factory):
    notifier = notifier_factory(settings)
    sched = AlertScheduler(settings, registry, notifier, store)
    sched.start()
    try:
        job = sched._scheduler.get_job("daily_rain_report")
        nxt = job.next_run_time.astimezone(SH)
        assert (nxt.hour, nxt.minute) == (8, 0)
        assert nxt - datetime.now(SH) <= timedelta(days=1)
        assert sched._scheduler.get_job("renotify") is not None
    finally:
        sched.stop()
