"""Alerts into incidents, with Alertmanager's timing (docs/alert-incidents.md): pure, time passed in.

The alert engine tells the dispatcher every change of an alert (raised, escalated, stepped down, cleared) with its
labels; ``due(now)`` says which incidents must notify now and with what. One incident is one aggregation group: the
alerts that the same route groups under the same label values.

Timing per route, as Alertmanager's aggregation groups:

* a new incident waits ``group_wait_s`` (collecting the alerts that come together) before its first notification;
* afterwards a change (an alert joins, changes severity or clears) is notified at the earliest ``group_interval_s``
  after the previous notification, all changes of that interval in one message;
* an open incident with no change is notified again every ``repeat_interval_s``;
* when every alert of the incident has cleared, one last notification says so and the incident closes.

Muted alerts (an inhibit rule or a silence) stay members, shown as muted; they never make a notification happen,
and an incident whose alerts are all muted notifies nothing.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Iterable, Literal, Mapping

from core.incidents import IncidentPolicy, Route, Silence

Reason = Literal["new", "changed", "repeat", "resolved"]


@dataclass(slots=True)
class Member:
    alert_id: int
    labels: dict[str, str]
    open: bool
    changed_at: datetime
    muted_by: str | None = None  # the inhibit rule or "silence <id>" muting it at the last flush


@dataclass(slots=True)
class Incident:
    key: str
    route: Route
    labels: dict[str, str]  # the route's group_by values
    opened_at: datetime
    members: dict[int, Member] = field(default_factory=dict)
    next_flush_at: datetime | None = None
    notified_at: datetime | None = None
    notified_state: frozenset[tuple[int, str, bool]] = frozenset()
    id: int | None = None  # the registry's, once stored

    @property
    def open(self) -> bool:
        return any(m.open for m in self.members.values())


@dataclass(frozen=True, slots=True)
class Notification:
    incident: Incident
    reason: Reason
    alerts: tuple[Member, ...]  # the alerts that are not muted (open and cleared since the last notification)
    muted: tuple[Member, ...]


class Dispatcher:
    def __init__(self, policy: IncidentPolicy) -> None:
        self.policy = policy
        self.incidents: dict[str, Incident] = {}
        self._where: dict[int, str] = {}  # alert id → incident key

    def update(self, alert_id: int, labels: Mapping[str, str], open: bool, at: datetime) -> Incident:
        """Record an alert's change at ``at``; the incident it belongs to."""
        labels = dict(labels)
        route = self.policy.route_for(labels)
        key = route.group_key(labels)
        old_key = self._where.get(alert_id)
        if old_key is not None and old_key != key and old_key in self.incidents:
            self.incidents[old_key].members.pop(alert_id, None)  # relabelled (a station moved town): leaves
        inc = self.incidents.get(key)
        if inc is None:
            if not open:
                # a clear for an incident already closed (a late reading): nothing to tell anyone
                return Incident(key=key, route=route, labels={k: labels.get(k, "") for k in route.group_by},
                                opened_at=at)
            inc = self.incidents[key] = Incident(
                key=key, route=route, labels={k: labels.get(k, "") for k in route.group_by}, opened_at=at,
                next_flush_at=at + timedelta(seconds=route.group_wait_s))
        prev = inc.members.get(alert_id)
        inc.members[alert_id] = Member(alert_id, labels, open, at, prev.muted_by if prev else None)
        self._where[alert_id] = key
        if inc.notified_at is not None:  # after the first notification, changes wait for the group interval
            earliest = max(at, inc.notified_at + timedelta(seconds=route.group_interval_s))
            inc.next_flush_at = earliest if inc.next_flush_at is None else min(inc.next_flush_at, earliest)
        return inc

    def open_labels(self) -> list[dict[str, str]]:
        return [m.labels for inc in self.incidents.values() for m in inc.members.values() if m.open]

    def _mute(self, inc: Incident, now: datetime, silences: Iterable[Silence], sources: list[dict[str, str]]) -> None:
        active = [s for s in silences if s.active(now)]
        for m in inc.members.values():
            silence = next((s for s in active if s.mutes(m.labels, now)), None)
            if silence is not None:
                m.muted_by = f"silence {silence.id}" if silence.id is not None else "silence"
            else:
                m.muted_by = self.policy.inhibited(m.labels, sources) if m.open else m.muted_by

    def due(self, now: datetime, silences: Iterable[Silence] = ()) -> list[Notification]:
        """The notifications to send at ``now``; incidents all of whose alerts cleared are closed after theirs."""
        silences = list(silences)
        sources = self.open_labels()
        out: list[Notification] = []
        for key, inc in list(self.incidents.items()):
            if inc.next_flush_at is None or inc.next_flush_at > now:
                continue
            self._mute(inc, now, silences, sources)
            loud = [m for m in inc.members.values() if m.muted_by is None]
            state = frozenset((m.alert_id, m.labels.get("severity", ""), m.open) for m in loud)
            route = inc.route
            reason: Reason | None = None
            if not inc.open:
                reason = "resolved" if inc.notified_at is not None and loud else None
            elif not loud:
                reason = None  # everything muted: nothing to say, but keep watching
            elif inc.notified_at is None:
                reason = "new"
            elif state != inc.notified_state:
                reason = "changed"
            elif now - inc.notified_at >= timedelta(seconds=route.repeat_interval_s):
                reason = "repeat"
            if reason is not None:
                out.append(Notification(inc, reason, tuple(loud), tuple(m for m in inc.members.values()
                                                                          if m.muted_by is not None)))
                inc.notified_at, inc.notified_state = now, state
            if not inc.open:
                del self.incidents[key]
                for aid in inc.members:
                    if self._where.get(aid) == key:
                        del self._where[aid]
                continue
            # cleared members have been told (or were muted): they leave; the next check is the repeat
            for aid in [a for a, m in inc.members.items() if not m.open]:
                del inc.members[aid]
                self._where.pop(aid, None)
            base = inc.notified_at or now
            inc.next_flush_at = base + timedelta(seconds=route.repeat_interval_s if inc.notified_at
                                                 else route.group_interval_s)
        return out
