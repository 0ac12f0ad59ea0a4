"""What time alone triggers in the alert stage: re-notification with escalation, and the daily rain report.

Officials must acknowledge a flood warning within minutes or the system calls them again (docs/domain.md,
"Acknowledging warnings"; docs/alert-semantics.md, "Who is told, and when again").
Every ``renotify_check_s`` the job looks at open red alerts still ``active`` (not acknowledged); one whose
last notification is older than ``renotify_interval_s`` is notified again on every channel (event
``renotified``) and escalated one step down the duty roster: round k e-mails roster[0..k], and the
person added is recorded as an ``escalated_to`` event. Acknowledging stops it.

The state lives in the registry (the alert's events), not in memory, so a restart neither forgets an
escalation nor repeats one; ``run_once(now)`` and ``daily_report_job(now)`` are what the jobs call, and
tests call them directly with a controlled clock.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Callable, Protocol

from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger

from core import topics
from core.domain import Alert, AlertState, DutyShift
from core.logs import kv
from core.registry import Registry
from core.reports import HYDRO_DAY_START, daily_rain_report, hydrological_day_of
from core.settings import Settings
from core.timeutil import UTC, utcnow, zone
from core.tsdb import TimeSeriesStore

log = logging.getLogger("alerts.scheduler")

RENOTIFY_SEVERITY = "red"
# Events that count as "we told someone": the scheduler's own marker, and every channel attempt.
NOTIFICATION_EVENTS = ("renotified", "notified", "notify_failed")
REPORT_TOPIC = topics.DAILY_RAIN_REPORT
REPORT_EVENT = "daily_rain_report"


class Notifier(Protocol):
    def notify(self, alert: Alert, event: str, *, recipients: list[DutyShift] | None = None) -> Any: ...

    def publish_report(self, event: str, topic: str, payload: dict[str, Any], key: str) -> Any: ...


@dataclass(slots=True)
class Renotified:
    alert_id: int
    round: int
    escalated_to: str | None
    recipients: list[str] = field(default_factory=list)


class AlertScheduler:
    """APScheduler BackgroundScheduler (in settings.display_timezone) owning the time-triggered jobs."""

    def __init__(self, settings: Settings, registry: Registry, notifier: Notifier,
                 store: TimeSeriesStore | None = None, *, clock: Callable[[], datetime] = utcnow,
                 renotify_interval_s: float | None = None, check_interval_s: float | None = None) -> None:
        self.settings = settings
        self.registry = registry
        self.notifier = notifier
        self.store = store
        self.clock = clock
        self.tz = zone(settings.display_timezone)
        self.interval = timedelta(seconds=renotify_interval_s if renotify_interval_s is not None
                                  else settings.renotify_interval_s)
        self.check_interval_s = check_interval_s if check_interval_s is not None else settings.renotify_check_s
        self._scheduler: BackgroundScheduler | None = None
        # When this process last re-notified each alert, on self.clock: the registry's event times are wall
        # clock, so with an injected clock (tests, replays) this keeps rounds apart; in production they agree.
        self._last_round: dict[int, datetime] = {}
        self._extra: list[tuple[Callable[[], Any], float, str, str]] = []

    def every(self, seconds: float, fn: Callable[[], Any], job_id: str, name: str) -> None:
        """Register another periodic job (e.g. the engine's stale-station check) before start()."""
        self._extra.append((fn, seconds, job_id, name))

    # -- lifecycle ----------------------------------------------------------
    def start(self) -> None:
        sched = BackgroundScheduler(timezone=self.tz)
        sched.add_job(self._renotify_tick, IntervalTrigger(seconds=self.check_interval_s, timezone=self.tz),
                      id="renotify", name="re-notify unacknowledged red alerts", max_instances=1, coalesce=True,
                      misfire_grace_time=max(1, int(self.check_interval_s)))
        if self.store is not None and self.settings.daily_report_enabled:
            sched.add_job(self._daily_tick, CronTrigger(hour=HYDRO_DAY_START.hour, minute=HYDRO_DAY_START.minute,
                                                        timezone=self.tz),
                          id="daily_rain_report", name="daily rainfall report", max_instances=1, coalesce=True,
                          misfire_grace_time=3600)
        for fn, seconds, job_id, name in self._extra:
            sched.add_job(fn, IntervalTrigger(seconds=seconds, timezone=self.tz), id=job_id, name=name,
                          max_instances=1, coalesce=True, misfire_grace_time=max(1, int(seconds)))
        sched.start()
        self._scheduler = sched
        log.info("scheduler started", extra=kv(renotify_interval_s=self.interval.total_seconds(),
                                               check_s=self.check_interval_s, daily_report=self.store is not None))

    def stop(self) -> None:
        if self._scheduler is not None:
            self._scheduler.shutdown(wait=True)
            self._scheduler = None

    @property
    def running(self) -> bool:
        return self._scheduler is not None and self._scheduler.running

    def _renotify_tick(self) -> None:
        try:
            self.run_once()
        except Exception:  # noqa: BLE001 - keep the job scheduled; the next tick retries
            log.exception("re-notification pass failed")

    def _daily_tick(self) -> None:
        try:
            self.daily_report_job()
        except Exception:  # noqa: BLE001
            log.exception("daily rain report failed")

    # -- re-notification -------------------------------------------------------
    def due(self, alert: Alert, events: list[dict[str, Any]], now: datetime) -> bool:
        if alert.severity != RENOTIFY_SEVERITY or alert.state != AlertState.active.value:
            return False
        told = [e["wall_time"] for e in events if e["event"] in NOTIFICATION_EVENTS]
        if alert.id in self._last_round:
            told.append(self._last_round[alert.id])
        # Never notified (the notifier was down): count from when the alert was raised or escalated.
        last = max(told) if told else max((e["wall_time"] for e in events), default=None)
        return last is None or now - last >= self.interval

    def run_once(self, now: datetime | None = None) -> list[Renotified]:
        """One pass: re-notify and escalate every due alert; returns what was done."""
        now = now or self.clock()
        done: list[Renotified] = []
        open_alerts = self.registry.open_alerts()
        still_open = {a.id for a in open_alerts}
        for aid in [a for a in self._last_round if a not in still_open]:
            del self._last_round[aid]
        for alert in open_alerts:
            if alert.severity != RENOTIFY_SEVERITY or alert.state != AlertState.active.value or alert.id is None:
                continue
            events = self.registry.alert_events(alert.id)
            if not self.due(alert, events, now):
                continue
            done.append(self._renotify(alert, events, now))
        return done

    def _renotify(self, alert: Alert, events: list[dict[str, Any]], now: datetime) -> Renotified:
        k = 1 + sum(1 for e in events if e["event"] == "renotified")
        already = {e["detail"] for e in events if e["event"] == "escalated_to"}
        station = self.registry.get_station(alert.station_id)
        roster = self.registry.on_duty(now, station.town if station else None, alert.kind or None)
        recipients = roster[:k + 1]
        added = roster[k] if k < len(roster) else None
        # The marker first, so a slow channel cannot make the next tick see this round as not done.
        self.registry.add_alert_event(alert.id, "renotified", alert.severity, None,
                                      f"round {k}: unacknowledged for {self._age(events, now)}")
        name = None
        if added is not None:
            name = _person(added)
            if name not in already:
                self.registry.add_alert_event(alert.id, "escalated_to", alert.severity, None, name)
        log.warning("red alert unacknowledged: notifying again",
                    extra=kv(id=alert.id, station=alert.station_id, round=k, escalated_to=name,
                             recipients=len(recipients)))
        self._last_round[alert.id] = now
        self.notifier.notify(alert, "renotified", recipients=recipients)
        return Renotified(alert.id, k, name, [_person(s) for s in recipients])

    @staticmethod
    def _age(events: list[dict[str, Any]], now: datetime) -> str:
        first = min((e["wall_time"] for e in events), default=now)
        return f"{(now - first).total_seconds() / 60:.0f} min"

    # -- daily rain report -------------------------------------------------------
    def daily_report_job(self, now: datetime | None = None) -> dict[str, Any] | None:
        """Build the report of the hydrological day that ended last (yesterday at 08:00) and publish it."""
        if self.store is None:
            return None
        now = now or self.clock()
        day = hydrological_day_of(now, self.tz) - timedelta(days=1)
        stations = self.registry.list_stations(kind="rain")
        report = daily_rain_report(self.store, stations, day, self.tz)
        report["generated_at"] = now.astimezone(UTC).isoformat()
        self.notifier.publish_report(REPORT_EVENT, REPORT_TOPIC, report, day.isoformat())
        d = report["district"]
        log.info("daily rain report", extra=kv(day=day.isoformat(), gauges=d["gauges"], reporting=d["reporting"],
                                               mean_mm=d["mean_mm"], max_mm=d["max_mm"]))
        return report


def _person(s: DutyShift) -> str:
    return f"{s.person} <{s.email}>" if s.email else s.person
