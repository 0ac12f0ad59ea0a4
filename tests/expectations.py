"""Test-side facts and helpers, written from docs/domain.md — never from the engine under test."""

from __future__ import annotations

from typing import Callable


def cma_rainstorm_signal(total_mm: Callable[[int], float]) -> str | None:
    """China Meteorological Administration rainstorm signal from rolling sums (``total_mm(hours)``)."""
    if total_mm(3) >= 100:
        return "red"
    if total_mm(3) >= 50:
        return "orange"
    if total_mm(6) >= 50:
        return "yellow"
    if total_mm(12) >= 50:
        return "blue"
    return None


class RecordingNotifier:
    """A notifier that only remembers what it was asked to send (the channels have tests of their own)."""

    def __init__(self) -> None:
        self.events: list[tuple[str, str, str, str]] = []

    def notify(self, alert, event, **_kw) -> None:
        self.events.append((event, alert.station_id, alert.rule, alert.severity))
