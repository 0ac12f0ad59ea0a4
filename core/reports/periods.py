"""Report periods: hydrological days (08:00–08:00 local) and the months and years made of them.

A hydrological month is the run of hydrological days dated in that calendar month, so it starts at 08:00 local
on the 1st and ends at 08:00 on the 1st of the next month; a year likewise from 1 January 08:00. Daily figures
from the store come in day buckets shifted so that they begin at 08:00 local (``day_bucket_offset_s``).
"""

from __future__ import annotations

from datetime import date, datetime, timedelta, tzinfo

from core.reports import HYDRO_DAY_START, hydrological_day, hydrological_day_of
from core.timeutil import UTC

DAY_S = 86400


def day_bucket_offset_s(tz: tzinfo, at: datetime | None = None) -> int:
    """Shift (s, 0 ≤ x < 1 day) of epoch-aligned day buckets so they begin at 08:00 local in ``tz``.

    Taken at ``at`` (default 2000-01-01): a zone with daylight saving would move it twice a year; the bureau's zone
    (UTC+8) has none."""
    at = at or datetime(2000, 1, 1, tzinfo=UTC)
    offset = at.astimezone(tz).utcoffset() or timedelta(0)
    start_s = HYDRO_DAY_START.hour * 3600 + HYDRO_DAY_START.minute * 60
    return int((start_s - offset.total_seconds()) % DAY_S)


def hydro_days(start: datetime, end: datetime, tz: tzinfo) -> list[tuple[date, datetime, datetime]]:
    """The hydrological days overlapping [start, end): (day, its start, its end) in UTC."""
    out = []
    day = hydrological_day_of(start, tz)
    while True:
        s, e = hydrological_day(day, tz)
        if s >= end:
            break
        out.append((day, s, e))
        day += timedelta(days=1)
    return out


def month_start(year: int, month: int, tz: tzinfo) -> datetime:
    return hydrological_day(date(year, month, 1), tz)[0]


def months(start: datetime, end: datetime, tz: tzinfo) -> list[tuple[str, datetime, datetime]]:
    """The hydrological months overlapping [start, end): ("YYYY-MM", start, end) in UTC."""
    first = hydrological_day_of(start, tz)
    y, m = first.year, first.month
    out = []
    while True:
        s = month_start(y, m, tz)
        if s >= end:
            break
        ny, nm = (y + 1, 1) if m == 12 else (y, m + 1)
        out.append((f"{y:04d}-{m:02d}", s, month_start(ny, nm, tz)))
        y, m = ny, nm
    return out
