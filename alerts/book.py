"""The alert engine's memory of every (station, rule) with something going on: open alerts, cleared ones within
(or just past) their reopen window, and conditions pending their minimum duration.

It mirrors the registry: alerts.persist changes it only after the registry took the change, so memory never runs
ahead of what was written (docs/alert-semantics.md, "Registry first").
"""

from __future__ import annotations

from datetime import datetime
from itertools import chain
from typing import Iterable

from alerts.lifecycle import KeyState
from alerts.plan import Key
from core.domain import Alert


class AlertBook:
    def __init__(self) -> None:
        self.open: dict[Key, Alert] = {}
        self.cleared: dict[Key, Alert] = {}
        self.pending: dict[Key, datetime] = {}  # condition true since (for min_duration)

    def state(self, key: Key) -> KeyState:
        return KeyState(self.open.get(key), self.cleared.get(key), self.pending.get(key))

    def set_pending(self, key: Key, since: datetime | None) -> None:
        if since is None:
            self.pending.pop(key, None)
        else:
            self.pending[key] = since

    def active_keys(self) -> Iterable[Key]:
        """(station, rule) pairs with state beyond a watermark: open, pending or cleared alerts."""
        return chain(self.open, self.pending, self.cleared)
