"""Write-through persistence of alert transitions, with rollback.

The registry is written before anything is notified or remembered: a transition the registry refuses (locked,
restarting, unreachable) leaves the alert and the book as they were, and the next reading — 5 to 15 minutes
later — makes the same transition again. An escalation held only in memory would never be written or notified,
since the next reading would find nothing left to escalate (docs/alert-semantics.md, "Registry first").
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import Callable, Protocol

from alerts import lifecycle
from alerts.book import AlertBook
from alerts.lifecycle import Clear, Close, Decision, Escalate, Hold, Raise, Reopen
from alerts.plan import Key
from core.domain import Alert, Station
from core.logs import kv
from core.registry import Registry

log = logging.getLogger("alerts")


class Notifier(Protocol):
    def notify(self, alert: Alert, event: str) -> None: ...


class AlertWriter:
    """Applies decisions to the book: writes the registry first, rolls the alert back if that fails, notifies."""

    def __init__(self, registry: Registry, notifier: Notifier, book: AlertBook) -> None:
        self.registry = registry
        self.notifier = notifier
        self.book = book
        self.write_failures = 0  # transitions the registry refused; each is tried again with the next reading

    def apply(self, d: Decision, key: Key, st: Station, rule_name: str, metric: str, ts: datetime) -> None:
        """Carry out a decision about ``key`` (its ``close_expired`` is the caller's, done before)."""
        book, t = self.book, d.transition
        if t is None or isinstance(t, Hold):
            book.set_pending(key, d.pending)
            if t is not None:
                lifecycle.apply(book.open[key], t, ts)
            return
        if isinstance(t, Raise):
            alert = lifecycle.new_alert(t, st.id, st.kind.value, rule_name, metric, ts)
            if not self._written(lambda: self.registry.insert_alert(alert), alert, t.event, ts):
                book.set_pending(key, d.pending_if_refused)  # the next reading raises it, from when it began
                return
            book.set_pending(key, d.pending)
            book.open[key] = alert
            log.info("alert raised", extra=kv(id=alert.id, station=st.id, rule=rule_name, severity=alert.severity,
                                              value=t.value, data_time=t.since.isoformat()))
            self.notifier.notify(alert, t.event)
            return
        alert = book.open[key] if isinstance(t, (Escalate, Clear)) else book.cleared[key]
        before = lifecycle.snapshot(alert)
        lifecycle.apply(alert, t, ts)
        detail = {Escalate: lambda: f"{t.previous} → {t.severity}", Clear: lambda: "condition ended",
                  Reopen: lambda: "condition returned within the reopen window"}[type(t)]()
        if not self._written(lambda: self.registry.save_alert(alert, t.event, ts, detail), alert, t.event, ts, before):
            if isinstance(t, Reopen):
                book.set_pending(key, d.pending_if_refused)
            return  # as it was: the next reading tries again
        book.set_pending(key, d.pending)
        if isinstance(t, Clear):
            del book.open[key]
            book.cleared[key] = alert
            log.info("alert cleared", extra=kv(id=alert.id, station=alert.station_id, rule=alert.rule,
                                               data_time=ts.isoformat()))
        elif isinstance(t, Reopen):
            del book.cleared[key]
            book.open[key] = alert
        else:
            log.info("alert escalated", extra=kv(id=alert.id, station=alert.station_id, rule=alert.rule,
                                                 severity=alert.severity, data_time=ts.isoformat()))
        self.notifier.notify(alert, t.event)

    def close_expired(self, now: datetime, reopen: timedelta) -> int:
        """Close cleared alerts whose reopen window has passed (data time ``now``); how many were closed."""
        cleared = self.book.cleared
        closed = 0
        for key in [k for k, a in cleared.items() if lifecycle.expired(a, now, reopen)]:
            alert = cleared[key]
            before = lifecycle.snapshot(alert)
            lifecycle.apply(alert, Close(), now)
            if self._written(lambda a=alert: self.registry.save_alert(a, "closed", now,
                                                                      "no recurrence within the reopen window"),
                             alert, "closed", now, before):
                del cleared[key]
                closed += 1
        return closed

    def _written(self, write: Callable[[], object], alert: Alert, event: str, ts: datetime,
                 before: dict | None = None) -> bool:
        """Run a registry write of a transition; if it fails, put the alert back as it was and say so."""
        try:
            write()
            return True
        except Exception:  # noqa: BLE001 - any failure of the registry: locked, restarting, unreachable
            if before is not None:
                lifecycle.restore(alert, before)
            self.write_failures += 1
            log.error("registry write failed; the alert is left as it was and the next reading tries again",
                      exc_info=True, extra=kv(station=alert.station_id, rule=alert.rule, event=event,
                                              data_time=ts.isoformat()))
            return False
