"""A plausible multi-year daily rainfall history for the district's gauges, for "this year against past years".

Shaped like the Jiaodong peninsula's climate (docs/reports.md, "Seeded history"): about 700 mm a year, more than
half of it in July and August, dry winters. Each day the district is wet or dry (the wet-day frequency follows
the season); a wet day's depth is drawn from a gamma distribution (many light days, a few heavy ones), and each
gauge gets the district's depth times its own lognormal factor, so neighbouring gauges differ as they do in a
real storm. A year factor makes some years wetter than others. Deterministic for a seed.

One reading per gauge and hydrological day (noon local, inside the 08:00–08:00 day), zeros included, so the
reports can tell a dry day from a silent gauge.
"""

from __future__ import annotations

import random
from datetime import date, datetime, time, timedelta, tzinfo
from typing import Iterator, Sequence

from core.domain import Kind, Reading, Station
from core.reports import hydrological_day_of
from core.timeutil import UTC

# Mean monthly rain (mm) and wet days (≥ 0.1 mm) of a plausible Jiaodong climate, January to December.
MONTHLY_MM = (11, 15, 19, 33, 58, 85, 160, 165, 78, 35, 27, 13)
WET_DAYS = (3, 4, 4, 6, 7, 8, 13, 12, 7, 5, 5, 3)
GAMMA_SHAPE = 0.7
GAUGE_SPREAD = 0.35  # sigma of the gauge's lognormal factor
YEAR_SPREAD = 0.22  # sigma of the year's lognormal factor
READING_TIME = time(12, 0)


def _days_in_month(y: int, m: int) -> int:
    nxt = date(y + (m == 12), m % 12 + 1, 1)
    return (nxt - date(y, m, 1)).days


def daily_history(gauges: Sequence[Station], first: date, last: date, tz: tzinfo,
                  seed: int = 20260628) -> Iterator[Reading]:
    """Readings for the hydrological days first … last − 1 day (inclusive of first, exclusive of last)."""
    ids = sorted(g.id for g in gauges if g.kind == Kind.rain)
    year_factor: dict[int, float] = {}
    day = first
    while day < last:
        rng = random.Random(f"{seed}:{day.isoformat()}")
        yf = year_factor.setdefault(day.year, random.Random(f"{seed}:{day.year}").lognormvariate(0, YEAR_SPREAD))
        m = day.month - 1
        p_wet = WET_DAYS[m] / _days_in_month(day.year, day.month)
        depth = 0.0
        if rng.random() < p_wet:
            mean = MONTHLY_MM[m] / WET_DAYS[m] * yf
            depth = rng.gammavariate(GAMMA_SHAPE, mean / GAMMA_SHAPE)
        ts = datetime.combine(day, READING_TIME, tzinfo=tz).astimezone(UTC)
        for sid in ids:
            g = rng.lognormvariate(-GAUGE_SPREAD ** 2 / 2, GAUGE_SPREAD)
            mm = round(depth * g, 1) if depth else 0.0
            yield Reading(sid, Kind.rain.value, "rain_mm", ts, mm)
        day += timedelta(days=1)


def history_span(now: datetime, years: int, tz: tzinfo) -> tuple[date, date]:
    """From 1 January ``years`` years before ``now``'s year to the hydrological day before ``now``'s (live data
    takes over from there)."""
    today = hydrological_day_of(now, tz)
    return date(today.year - years, 1, 1), today - timedelta(days=1)


def seed_history(store, gauges: Sequence[Station], now: datetime, years: int, tz: tzinfo,  # noqa: ANN001
                 seed: int = 20260628, batch: int = 20000) -> int:
    """Write the history into ``store`` (a TimeSeriesStore); returns the number of readings."""
    first, last = history_span(now, years, tz)
    n, buf = 0, []
    for r in daily_history(gauges, first, last, tz, seed):
        buf.append(r)
        if len(buf) >= batch:
            store.write(buf)
            n += len(buf)
            buf = []
    if buf:
        store.write(buf)
        n += len(buf)
    return n
