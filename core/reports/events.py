"""Storm events from the gauges' hourly rain (docs/reports.md, "Storm events (降雨场次)").

Input is one series per gauge of clock-hour sums (``rain_mm`` summed by the store per hour). A district hour is
*wet* when at least one gauge measured ``trace_mm`` or more in it; less is a trace and ignored. An event is a run
of wet hours in which no dry gap lasts ``dry_gap_h`` hours or more: a gap that long ends the event, and the next
wet hour starts a new one. The event runs from the start of its first wet hour to the end of its last one.

An event is *closed* once ``dry_gap_h`` dry hours have followed it within the data (``data_end``); before that it
is *ongoing* and may still grow. Everything is recomputed from the stored hours, so late data change the events
the next time they are asked for.

Pure functions: no store, no clock.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Mapping, Sequence

from core.reports.series import Prefix

HOUR = timedelta(hours=1)
# Window lengths of the maximum-intensity figures (hours), as in the hydrological yearbooks' 时段最大降水量.
INTENSITY_WINDOWS_H: tuple[int, ...] = (1, 3, 6)

HourlySeries = Sequence[tuple[datetime, float]]


@dataclass(frozen=True, slots=True)
class WindowMax:
    """The largest rain over ``hours`` consecutive clock hours, and the window [start, end) it fell in."""

    hours: int
    rain_mm: float
    start: datetime | None
    end: datetime | None


@dataclass(slots=True)
class GaugeEventRain:
    station_id: str
    total_mm: float
    hours_reported: int
    max_windows: list[WindowMax] = field(default_factory=list)

    def max_mm(self, hours: int) -> WindowMax | None:
        return next((w for w in self.max_windows if w.hours == hours), None)


@dataclass(slots=True)
class StormEvent:
    start: datetime
    end: datetime
    closed: bool
    gauges: list[GaugeEventRain]

    @property
    def duration_h(self) -> float:
        return (self.end - self.start).total_seconds() / 3600

    @property
    def wettest(self) -> GaugeEventRain | None:
        return max(self.gauges, key=lambda g: g.total_mm, default=None)

    def event_id(self, tz) -> str:  # noqa: ANN001 - a tzinfo
        """A stable id: the local start hour, YYYYMMDDHH. Late data that move the start give a new id."""
        return self.start.astimezone(tz).strftime("%Y%m%d%H")


def wet_hours(series: Mapping[str, HourlySeries], trace_mm: float) -> list[datetime]:
    """Start times of the hours in which any gauge measured at least ``trace_mm``, ascending."""
    wet = {ts for rows in series.values() for ts, v in rows if v >= trace_mm}
    return sorted(wet)


def split_events(wet: Sequence[datetime], dry_gap_h: float) -> list[tuple[datetime, datetime]]:
    """Group wet hours (starts, ascending) into [start, end) spans; a dry gap of ``dry_gap_h`` or more splits."""
    gap = timedelta(hours=dry_gap_h)
    spans: list[tuple[datetime, datetime]] = []
    for ts in wet:
        if spans and ts - spans[-1][1] < gap:
            spans[-1] = (spans[-1][0], ts + HOUR)
        else:
            spans.append((ts, ts + HOUR))
    return spans


def window_max(rows: HourlySeries, hours: int) -> WindowMax:
    """Largest sum over ``hours`` consecutive clock hours (a missing hour counts as dry); rows ascending."""
    if not rows:
        return WindowMax(hours, 0.0, None, None)
    first = min(ts for ts, _ in rows)
    n = int((max(ts for ts, _ in rows) - first) / HOUR) + 1
    # Dense hourly values with hours − 1 dry hours in front, then one running sum slid along them.
    dense = [0.0] * (n + hours - 1)
    for ts, v in rows:
        dense[int((ts - first) / HOUR) + hours - 1] += v
    total = sum(dense[:hours])
    best, best_i = total, 0
    for i in range(1, n):
        total += dense[i + hours - 1] - dense[i - 1]
        if total > best + 1e-9:
            best, best_i = total, i
    start = first + (best_i - (hours - 1)) * HOUR
    return WindowMax(hours, round(best, 3), start, start + hours * HOUR)


def gauge_rain(station_id: str, rows: HourlySeries | Prefix, start: datetime, end: datetime) -> GaugeEventRain:
    """One gauge's total and maximum 1/3/6 h rain within [start, end)."""
    inside = (rows if isinstance(rows, Prefix) else Prefix(rows)).rows(start, end)
    return GaugeEventRain(
        station_id=station_id,
        total_mm=round(sum(v for _, v in inside), 3),
        hours_reported=len(inside),
        max_windows=[window_max(inside, h) for h in INTENSITY_WINDOWS_H],
    )


def detect_events(series: Mapping[str, HourlySeries], *, dry_gap_h: float, trace_mm: float,
                  data_end: datetime) -> list[StormEvent]:
    """Storm events in hourly per-gauge rain. ``data_end``: the end of the data looked at (the caller's "now"
    or the end of the queried range); an event is closed when ``dry_gap_h`` hours separate its end from it."""
    if dry_gap_h <= 0:
        raise ValueError("dry_gap_h must be positive")
    events = []
    indexed = {sid: Prefix(rows) for sid, rows in sorted(series.items())}
    for start, end in split_events(wet_hours(series, trace_mm), dry_gap_h):
        gauges = [gauge_rain(sid, rows, start, end) for sid, rows in indexed.items()]
        closed = data_end - end >= timedelta(hours=dry_gap_h)
        events.append(StormEvent(start=start, end=end, closed=closed, gauges=gauges))
    return events
