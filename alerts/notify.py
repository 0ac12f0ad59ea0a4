"""Sends alert events and reports on every channel: MQTT, signed webhooks, e-mail to the duty roster.

Sending happens on worker threads so a slow peer never holds up evaluation. A failed attempt is not
slept on: it goes back into a time-ordered queue with exponential back-off and jitter, so one failing
webhook does not delay the e-mail of the next alert. Every attempt on an alert is recorded in the
alert's event history (``notified`` / ``notify_failed``, with channel, attempt, HTTP status or error).
"""

from __future__ import annotations

import heapq
import itertools
import json
import logging
import random
import threading
import time
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Callable

import httpx

from alerts.channels import Channel, Delivery, EmailChannel, MqttChannel, Outcome, WebhookChannel
from core import topics
from core.domain import Alert, DutyShift
from core.logs import kv
from core.registry import Registry
from core.settings import Settings
from core.timeutil import iso, utcnow

log = logging.getLogger("alerts.notify")

ALERT_TOPIC = topics.alert("{severity}")


def alert_payload(alert: Alert, event: str) -> dict[str, Any]:
    return {
        "event": event, "id": alert.id, "station_id": alert.station_id, "kind": alert.kind, "rule": alert.rule,
        "metric": alert.metric, "severity": alert.severity, "state": alert.state,
        "started_at": iso(alert.started_at), "updated_at": iso(alert.updated_at), "value": alert.value,
        "threshold": alert.threshold, "message": alert.message,
    }


def encode_body(payload: dict[str, Any]) -> bytes:
    return json.dumps(payload, ensure_ascii=False).encode()


def backoff_s(settings: Settings, attempt: int, rng: random.Random | None = None) -> float:
    """Delay before attempt ``attempt + 1``: first delay × 2^(attempt−1), capped, ±20 % jitter."""
    base = min(settings.webhook_retry_max_delay_s, settings.webhook_retry_delay_s * 2 ** (attempt - 1))
    return base * (rng or random).uniform(0.8, 1.2)


@dataclass(slots=True)
class _Task:
    channel: Channel
    delivery: Delivery
    attempt: int


class AlertNotifier:
    def __init__(self, settings: Settings, registry: Registry, *, clock: Callable[[], datetime] = utcnow) -> None:
        self.settings = settings
        self.registry = registry
        self.clock = clock
        self._http = httpx.Client(timeout=settings.webhook_timeout_s, follow_redirects=False)
        # Webhook URLs are checked here, at startup, not on the first alert.
        self.webhooks = [WebhookChannel(settings, url, self._http) for url in settings.webhook_urls]
        self.mqtt = MqttChannel(settings, f"{settings.mqtt_client_prefix}-alerts-notify")
        self.email = EmailChannel(settings, registry, clock) if settings.smtp_host else None
        self.channels: list[Channel] = [self.mqtt, *self.webhooks] + ([self.email] if self.email else [])
        self._cond = threading.Condition()
        self._heap: list[tuple[float, int, _Task]] = []
        self._seq = itertools.count()
        self._busy = 0
        self._stopping = False
        self._threads: list[threading.Thread] = []
        self._delivery_seq: dict[tuple[int, str], int] = {}
        self._rng = random.Random()
        self.sent = 0
        self.failed = 0  # deliveries given up on

    # -- lifecycle ----------------------------------------------------------
    def start(self) -> None:
        self.mqtt.start()
        self._stopping = False
        for i in range(self.settings.notify_workers):
            t = threading.Thread(target=self._run, name=f"alerts-notify-{i}", daemon=True)
            t.start()
            self._threads.append(t)

    def stop(self) -> None:
        """Finish what is due now; give up (and record) retries still waiting for their turn."""
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
        for t in self._threads:
            t.join(timeout=15)
        self._threads.clear()
        with self._cond:
            abandoned, self._heap = [task for _, _, task in self._heap], []
        for task in abandoned:
            self._record(task, Outcome(False, "abandoned: notifier stopped"), final=True)
        for ch in self.channels:
            ch.close()
        self._http.close()

    def drain(self, timeout: float = 10.0) -> bool:
        """Wait until nothing is queued, scheduled for retry or being sent."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while self._heap or self._busy:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._cond.wait(min(0.1, remaining))
        return True

    # -- what callers use ------------------------------------------------------
    def notify(self, alert: Alert, event: str, *, recipients: list[DutyShift] | None = None) -> str:
        """Queue ``event`` of ``alert`` for every channel; returns the delivery id.

        ``recipients`` overrides the e-mail recipients (the re-notifier passes the escalated list);
        by default e-mail goes to the on-duty roster up to the alert's escalation level.
        """
        # Snapshot now: the engine keeps mutating the alert.
        payload = alert_payload(alert, event)
        aid = alert.id if alert.id is not None else 0
        d = Delivery(event=event, payload=payload, body=encode_body(payload),
                     delivery_id=f"{aid}-{event}-{self._next_seq(aid, event)}",
                     topic=ALERT_TOPIC.format(severity=alert.severity), alert_id=alert.id, severity=alert.severity,
                     recipients=list(recipients) if recipients is not None else None)
        self._submit(d)
        return d.delivery_id

    def publish_report(self, event: str, topic: str, payload: dict[str, Any], key: str) -> str:
        """Queue a report: retained on MQTT ``topic`` and POSTed to the webhooks with ``event``."""
        d = Delivery(event=event, payload=payload, body=encode_body(payload), delivery_id=f"{event}-{key}",
                     topic=topic, retain=True)
        self._submit(d)
        return d.delivery_id

    def _next_seq(self, alert_id: int, event: str) -> int:
        """n in <alert id>-<event>-<n>: stable across retries, new for the next delivery of the same event.

        The registry holds the event itself (raised, escalated, renotified …), so the count survives restarts;
        the in-process counter covers events notified without one.
        """
        try:
            recorded = sum(1 for e in self.registry.alert_events(alert_id) if e["event"] == event)
        except Exception:  # noqa: BLE001 - a registry hiccup must not stop the notification
            log.warning("cannot count alert events", exc_info=True)
            recorded = 0
        key = (alert_id, event)
        with self._cond:
            n = max(recorded, self._delivery_seq.get(key, 0) + 1, 1)
            self._delivery_seq[key] = n
        return n

    def _submit(self, d: Delivery) -> None:
        with self._cond:
            for ch in self.channels:
                if ch.accepts(d):
                    heapq.heappush(self._heap, (time.monotonic(), next(self._seq), _Task(ch, d, 1)))
            self._cond.notify_all()

    # -- workers ------------------------------------------------------------
    def _take(self) -> _Task | None:
        with self._cond:
            while True:
                now = time.monotonic()
                if self._heap and self._heap[0][0] <= now:
                    _, _, task = heapq.heappop(self._heap)
                    self._busy += 1
                    return task
                if self._stopping:
                    return None
                self._cond.wait(min(1.0, self._heap[0][0] - now) if self._heap else 1.0)

    def _run(self) -> None:
        while (task := self._take()) is not None:
            try:
                self._attempt(task)
            except Exception:  # noqa: BLE001 - one bad notification must not stop the others
                log.exception("notification failed", extra=kv(channel=task.channel.name, id=task.delivery.delivery_id))
            finally:
                with self._cond:
                    self._busy -= 1
                    self._cond.notify_all()

    def _attempt(self, task: _Task) -> None:
        try:
            outcome = task.channel.send(task.delivery)
        except Exception as exc:  # noqa: BLE001 - a channel bug counts as a failed attempt
            log.exception("channel raised", extra=kv(channel=task.channel.name))
            outcome = Outcome(False, f"{type(exc).__name__}: {exc}"[:300], retry=False)
        final = outcome.ok or not outcome.retry or task.attempt >= task.channel.attempts
        self._record(task, outcome, final)
        if final:
            return
        delay = backoff_s(self.settings, task.attempt, self._rng)
        with self._cond:
            stopping = self._stopping
            if not stopping:
                heapq.heappush(self._heap, (time.monotonic() + delay, next(self._seq),
                                            _Task(task.channel, task.delivery, task.attempt + 1)))
                self._cond.notify_all()
        if stopping:
            self._record(_Task(task.channel, task.delivery, task.attempt + 1),
                         Outcome(False, "abandoned: notifier stopped"), final=True)

    def _record(self, task: _Task, outcome: Outcome, final: bool) -> None:
        d, ch = task.delivery, task.channel
        if outcome.ok:
            self.sent += 1
        elif final:
            self.failed += 1
            log.error("notification gave up", extra=kv(channel=ch.name, delivery=d.delivery_id, attempt=task.attempt,
                                                         detail=outcome.detail))
        give_up = "; giving up" if final and not outcome.ok else ""
        detail = (f"{d.event} via {ch.name} attempt {task.attempt}/{ch.attempts} {outcome.detail}{give_up} "
                  f"[delivery {d.delivery_id}]")
        if d.alert_id is None:
            log.log(logging.INFO if outcome.ok else logging.WARNING, "report notification",
                    extra=kv(detail=detail))
            return
        try:
            self.registry.add_alert_event(d.alert_id, "notified" if outcome.ok else "notify_failed", d.severity,
                                          None, detail)
        except Exception:  # noqa: BLE001 - the registry being down must not lose the next attempts
            log.exception("cannot record notification attempt", extra=kv(detail=detail))
