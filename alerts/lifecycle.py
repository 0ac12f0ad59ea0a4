"""The alert lifecycle as a pure state machine: (the state of a (station, rule), an evaluation) → a decision.

One alert per (station, rule) at a time (docs/alert-semantics.md):

* **raised** when a rule's condition has held for its ``min_duration_s`` (in data time; the alert starts when
  the condition began);
* **escalated** in place when the severity rises (a milder reading is not an all-clear: the severity stays);
* **cleared** when the value is back past the threshold by the hysteresis band;
* **reopened** — the same alert, not a new one — when the condition returns within the reopen window;
* **closed** once the reopen window has passed without a recurrence.

Nothing here writes or notifies: ``decide`` says what should happen, ``apply`` changes an alert accordingly;
alerts.persist writes it through to the registry (undoing ``apply`` if the write fails) and notifies.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Union

from alerts.evaluate import Verdict
from core.domain import SEVERITY_ORDER, Alert, AlertState


def rank(severity: str) -> int:
    return SEVERITY_ORDER.index(severity)


@dataclass(frozen=True, slots=True)
class KeyState:
    """What the engine holds about one (station, rule)."""

    open: Alert | None  # active or acknowledged
    cleared: Alert | None  # cleared, within or past its reopen window (closing is due)
    pending: datetime | None  # the condition has held since, not yet for its minimum duration


# -- transitions: what changes on the alert (and is written and notified) --------------------------------------------
@dataclass(frozen=True, slots=True)
class Raise:
    since: datetime
    severity: str
    value: float
    threshold: float | None
    message: str
    event = "raised"


@dataclass(frozen=True, slots=True)
class Escalate:
    previous: str
    severity: str
    value: float
    threshold: float | None
    message: str
    event = "escalated"


@dataclass(frozen=True, slots=True)
class Clear:
    value: float
    event = "cleared"


@dataclass(frozen=True, slots=True)
class Reopen:
    severity: str  # the alert's, or the verdict's when higher
    value: float
    threshold: float | None
    message: str
    event = "reopened"


@dataclass(frozen=True, slots=True)
class Hold:
    """Still open at the same severity: only the value moves (not written, not notified)."""

    value: float
    event = "held"


@dataclass(frozen=True, slots=True)
class Close:
    event = "closed"


Transition = Union[Raise, Escalate, Clear, Reopen, Hold, Close]


@dataclass(frozen=True, slots=True)
class Decision:
    """What one evaluation does to a (station, rule).

    ``transition``: what to write and notify (None: nothing). ``pending``: the pending-since time afterwards —
    the same whether the write succeeds or not, except ``pending_if_refused``: a raise or reopen the registry
    refuses stays pending from when the condition began, for the next reading to try again.
    ``close_expired``: cleared alerts past their reopen window are due to close first (data time has moved on).
    """

    transition: Transition | None
    pending: datetime | None
    pending_if_refused: datetime | None = None
    close_expired: bool = False


def expired(alert: Alert, now: datetime, reopen: timedelta) -> bool:
    """A cleared alert whose reopen window has passed at data time ``now``."""
    return alert.cleared_at is None or now - alert.cleared_at > reopen


def decide(state: KeyState, min_duration_s: float, ts: datetime, v: Verdict, reopen: timedelta) -> Decision:
    """The lifecycle step of one evaluation at data time ``ts`` with verdict ``v``."""
    alert = state.open
    if alert is not None:
        if v.hold is None:
            return Decision(Clear(v.value), state.pending)
        if v.raw is not None and rank(v.raw) > rank(alert.severity):
            return Decision(Escalate(alert.severity, v.raw, v.value, v.threshold, v.message), state.pending)
        return Decision(Hold(v.value), state.pending)  # a lower reading is not an all-clear: severity stays
    recent = state.cleared
    if v.raw is None:
        due = recent is not None and recent.cleared_at is not None and ts - recent.cleared_at > reopen
        return Decision(None, None, close_expired=due)
    since = state.pending if state.pending is not None else ts
    if (ts - since).total_seconds() < min_duration_s:
        return Decision(None, since)
    if recent is not None and recent.cleared_at is not None and ts - recent.cleared_at <= reopen:
        higher = rank(v.raw) > rank(recent.severity)
        return Decision(Reopen(v.raw if higher else recent.severity, v.value,
                               v.threshold if higher else recent.threshold, v.message if higher else recent.message),
                        None, pending_if_refused=since)
    return Decision(Raise(since, v.raw, v.value, v.threshold, v.message), None, pending_if_refused=since,
                    close_expired=recent is not None)


# -- applying a transition to an alert ---------------------------------------------------------------------------------
MUTABLE = ("severity", "state", "threshold", "message", "value", "updated_at", "cleared_at")


def snapshot(alert: Alert) -> dict[str, Any]:
    """What a transition changes on an alert, to put back if the registry refuses it."""
    return {f: getattr(alert, f) for f in MUTABLE}


def restore(alert: Alert, before: dict[str, Any]) -> None:
    for name, value in before.items():
        setattr(alert, name, value)


def apply(alert: Alert, t: Transition, ts: datetime) -> None:
    """Change an existing alert as ``t`` says, at data time ``ts``."""
    if isinstance(t, Hold):
        alert.value = t.value
    elif isinstance(t, Escalate):
        alert.severity, alert.threshold, alert.message = t.severity, t.threshold, t.message
        alert.value, alert.updated_at = t.value, ts
        # An escalation needs fresh eyes even if the milder alert was acknowledged.
        alert.state = AlertState.active.value
    elif isinstance(t, Clear):
        alert.state, alert.cleared_at, alert.updated_at, alert.value = AlertState.cleared.value, ts, ts, t.value
    elif isinstance(t, Reopen):
        alert.state, alert.cleared_at, alert.updated_at, alert.value = AlertState.active.value, None, ts, t.value
        alert.severity, alert.threshold, alert.message = t.severity, t.threshold, t.message
    elif isinstance(t, Close):
        alert.state = AlertState.closed.value
    else:
        raise TypeError(f"{type(t).__name__} makes a new alert, not a change of one")


def new_alert(t: Raise, station_id: str, kind: str, rule: str, metric: str, ts: datetime) -> Alert:
    """The alert a Raise creates: started when the condition began, updated now."""
    return Alert(station_id=station_id, kind=kind, rule=rule, metric=metric, severity=t.severity,
                 state=AlertState.active.value, started_at=t.since, updated_at=ts, value=t.value,
                 threshold=t.threshold, message=t.message)
