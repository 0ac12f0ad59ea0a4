"""This year against past years (历年同期): monthly and year-to-date rainfall per gauge, town and the district.

Each period of ``year`` (its hydrological months so far, and the year to date) is compared with the *same* period
of every earlier year that has data: the same months, and for a period still running the same span of days and
hours. The multi-year mean is over the years that have a value for that period (the report says how many), and
last year is shown on its own. Differences read as the bulletins put them: 偏多 / 偏少 x %.

Past years are often kept as daily totals only (one value per gauge and day), so a gauge counts for a period when
it reported on at least ``min_coverage`` of its days, whatever its interval.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from core.reports import hydrological_day_of
from core.reports.periods import DAY_S, day_bucket_offset_s, month_start
from core.reports.series import Prefix
from core.tsdb import TimeSeriesStore

RAIN = "rain_mm"


def _r(v: float | None, nd: int = 1) -> float | None:
    return None if v is None else round(v + 0.0, nd)


def _same_moment(now_local: datetime, year: int) -> datetime:
    """``now_local`` moved to ``year`` (29 February becomes 28 February)."""
    try:
        return now_local.replace(year=year)
    except ValueError:
        return now_local.replace(year=year, day=28)


def compare_text(value: float | None, ref: float | None) -> tuple[float | None, str | None]:
    """(per cent above (+) or below (−) ``ref``, the bulletin's words), or (None, None) without a reference."""
    if value is None or ref is None:
        return None, None
    if ref <= 0:
        return None, "基准为0" if value > 0 else "持平"
    pct = (value - ref) / ref * 100
    if abs(pct) < 0.05:
        return 0.0, "持平"
    return round(pct, 1), f"{'偏多' if pct > 0 else '偏少'}{abs(pct):.1f}%"


def rainfall_history(store: TimeSeriesStore, ctx: Any, year: int, now: datetime, years_back: int = 10) -> dict:
    """Rows per scope (district, each town, each gauge) and period (months so far, year to date) of ``year``."""
    tz = ctx.tz
    now_local = now.astimezone(tz)
    first_year = year - years_back
    lo = month_start(first_year, 1, tz)
    hi = min(month_start(year + 1, 1, tz), max(now, lo))
    ids = [g.id for g in ctx.gauges]
    off = day_bucket_offset_s(tz, lo)
    stats = store.bucket_stats(ids, [RAIN], lo, hi, DAY_S, offset_s=off, stats=("count", "sum"))
    day_sums = {sid: Prefix([(t, b.sum) for t, b in rows]) for (sid, _), rows in stats.items()}
    day_seen = {sid: Prefix([(t, 1.0) for t, b in rows if b.count]) for (sid, _), rows in stats.items()}

    # The periods of `year`: whole months before the current one, the running one up to now, the year to date.
    # Months are hydrological: at 07:59 on 1 March, March has not begun.
    today = hydrological_day_of(now, tz)
    periods: list[tuple[str, int | None]] = []
    last_month = 12 if year < today.year else today.month
    periods += [(f"{m:02d}月", m) for m in range(1, last_month + 1)]
    periods.append(("年初至今" if year == today.year else "全年", None))

    def span(y: int, month: int | None) -> tuple[datetime, datetime]:
        a = month_start(y, month or 1, tz)
        b = month_start(y + 1, 1, tz) if month is None or month == 12 else month_start(y, month + 1, tz)
        if year == today.year:  # a period still running: the same span of days and hours in every year
            b = min(b, _same_moment(now_local, y).astimezone(b.tzinfo))
        return a, b

    def figures(y: int, month: int | None) -> dict[str, Any] | None:
        a, b = span(y, month)
        if b <= a:
            return None
        days = max(1.0, (b - a).total_seconds() / DAY_S)
        tot = {sid: per.between(a, b) for sid, per in day_sums.items()}
        seen = {sid: per.between(a, b) for sid, per in day_seen.items()}
        out = ctx.areal.areal(tot, seen, (b - a).total_seconds(), expected={g.id: days for g in ctx.gauges})
        return {"district": out["district_areal_rain_mm"],
                **{f"town:{t['town']}": t["areal_rain_mm"] for t in out["towns"]},
                **{f"gauge:{g}": _r(tot.get(g)) for g in out["gauges_used"]}}

    names = {g.id: g.name for g in ctx.gauges}
    scopes = ([("district", "district", "全区")] + [("town", f"town:{t.name}", t.name) for t in ctx.towns]
              + [("gauge", f"gauge:{g.id}", names[g.id]) for g in ctx.gauges])
    rows = []
    for label, month in periods:
        this = figures(year, month) or {}
        past = {y: figures(y, month) or {} for y in range(first_year, year)}
        for scope, key, name in scopes:
            values = [p[key] for p in past.values() if p.get(key) is not None]
            mean = sum(values) / len(values) if values else None
            last = past.get(year - 1, {}).get(key)
            value = this.get(key)
            pct, text = compare_text(value, mean)
            pct_last, _ = compare_text(value, last)
            rows.append({"scope": scope, "name": name, "id": key.split(":", 1)[-1], "period": label,
                         "month": month, "rain_mm": _r(value), "mean_mm": _r(mean), "years": len(values),
                         "vs_mean_pct": pct, "vs_mean_text": text, "last_year_mm": _r(last),
                         "vs_last_year_pct": pct_last})
    return {"report": "rainfall_history", "year": year, "as_of": ctx.t(min(now, month_start(year + 1, 1, tz))),
            "years_compared": [y for y in range(first_year, year)], "rows": rows}
