"""Reports built from the time-series store.

The daily rainfall report covers the hydrological day (docs/alert-semantics.md, "Reports"): 08:00 local time
of ``day`` to 08:00 of the next day, so a reading at 07:55 belongs to the previous day's report and one at
08:05 to this day's. ``rain_mm`` is the increment since the gauge's previous report, so a day's rain is their sum.
"""

from __future__ import annotations

from datetime import date, datetime, time, timedelta, tzinfo
from typing import Any, Iterable

from core.domain import Kind, Reading, Station
from core.timeutil import UTC, iso, zone
from core.tsdb import TimeSeriesStore

HYDRO_DAY_START = time(8, 0)
RAIN_METRIC = "rain_mm"
# A gauge reports every 5 min and on each tip in rain: a day stays far below this.
MAX_READINGS_PER_DAY = 200_000


def _tz(tz: tzinfo | str) -> tzinfo:
    return zone(tz) if isinstance(tz, str) else tz


def hydrological_day(day: date, tz: tzinfo | str) -> tuple[datetime, datetime]:
    """[start, end) in UTC of the hydrological day ``day``: 08:00 local to 08:00 local the next day."""
    z = _tz(tz)
    start = datetime.combine(day, HYDRO_DAY_START, tzinfo=z)
    end = datetime.combine(day + timedelta(days=1), HYDRO_DAY_START, tzinfo=z)
    return start.astimezone(UTC), end.astimezone(UTC)


def hydrological_day_of(ts: datetime, tz: tzinfo | str) -> date:
    """The hydrological day a moment belongs to (before 08:00 local: the previous calendar day)."""
    local = ts.astimezone(_tz(tz))
    return local.date() if local.time() >= HYDRO_DAY_START else local.date() - timedelta(days=1)


def max_window_sum(readings: list[Reading], window: timedelta) -> tuple[float, datetime | None]:
    """The largest sum of increments over any window (t − window, t] ending at a reading; readings oldest first."""
    best, best_end, total, lo = 0.0, None, 0.0, 0
    for r in readings:
        total += r.value
        while readings[lo].ts <= r.ts - window:
            total -= readings[lo].value
            lo += 1
        if best_end is None or total > best:
            best, best_end = total, r.ts
    return best, best_end


def _r(v: float) -> float:
    return round(v + 0.0, 3)


def daily_rain_report(store: TimeSeriesStore, stations: Iterable[Station], day: date,
                      tz: tzinfo | str) -> dict[str, Any]:
    """Rain per gauge and for the district over the hydrological day ``day``.

    Per gauge: total ``rain_mm`` (sum of increments), the largest 1-hour rain (sliding window ending at a
    reading), and the number of readings. A gauge without readings has ``rain_mm: null``: missing is not
    dry, so the district mean and max use reporting gauges only.
    """
    z = _tz(tz)
    start, end = hydrological_day(day, z)
    gauges: list[dict[str, Any]] = []
    for st in sorted((s for s in stations if s.kind == Kind.rain), key=lambda s: s.id):
        rows = store.query(st.id, RAIN_METRIC, start, end, limit=MAX_READINGS_PER_DAY)
        rows.sort(key=lambda r: r.ts)
        entry: dict[str, Any] = {"station_id": st.id, "name": st.name, "town": st.town, "readings": len(rows),
                                 "rain_mm": None, "max_1h_mm": None, "max_1h_end": None,
                                 "truncated": len(rows) >= MAX_READINGS_PER_DAY}
        if rows:
            peak, peak_end = max_window_sum(rows, timedelta(hours=1))
            entry.update(rain_mm=_r(sum(r.value for r in rows)), max_1h_mm=_r(peak),
                         max_1h_end=iso(peak_end.astimezone(z)) if peak_end else None)
        gauges.append(entry)
    reporting = [g for g in gauges if g["rain_mm"] is not None]
    wettest = max(reporting, key=lambda g: g["rain_mm"], default=None)
    district = {
        "gauges": len(gauges),
        "reporting": len(reporting),
        "mean_mm": _r(sum(g["rain_mm"] for g in reporting) / len(reporting)) if reporting else None,
        "max_mm": wettest["rain_mm"] if wettest else None,
        "max_station_id": wettest["station_id"] if wettest else None,
        "max_1h_mm": max((g["max_1h_mm"] for g in reporting), default=None),
    }
    return {
        "report": "daily_rain",
        "day": day.isoformat(),
        "timezone": getattr(z, "key", str(z)),
        "start": iso(start.astimezone(z)),
        "end": iso(end.astimezone(z)),
        "start_utc": iso(start),
        "end_utc": iso(end),
        "unit": "mm",
        "district": district,
        "gauges": gauges,
    }
