"""Where "now" comes from: one clock object passed to whatever asks what time it is.

Anything whose answer depends on the date (the bulletin's default month, which periods are due, whether a patrol
is back-dated, whether an issue is overdue) takes a clock or an explicit moment instead of reading the wall
clock, so tests can pin the first hours of a month, a year's end or 29 February (docs/testing.md).
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Protocol

UTC = timezone.utc


class Clock(Protocol):
    def now(self) -> datetime:
        """The current moment, timezone-aware, in UTC."""
        ...


class SystemClock:
    """The machine's clock (production)."""

    def now(self) -> datetime:
        return datetime.now(UTC)


class FixedClock:
    """A clock that stands still until moved (tests, replays)."""

    def __init__(self, at: datetime) -> None:
        self.set(at)

    def set(self, at: datetime) -> None:
        if at.tzinfo is None:
            raise ValueError("FixedClock needs an aware datetime")
        self._at = at.astimezone(UTC)

    def advance(self, delta: timedelta) -> None:
        self._at += delta

    def now(self) -> datetime:
        return self._at


SYSTEM_CLOCK: Clock = SystemClock()
