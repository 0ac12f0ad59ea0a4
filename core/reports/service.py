"""The rain and inflow reports, assembled from the store's aggregates (docs/reports.md).

Each function takes the store, a ``ReportContext`` (stations, towns, zone, thresholds) and explicit moments;
none reads the clock. The store does the aggregation (hourly or 08:00-aligned daily buckets, several stations per
query); only those buckets reach Python. Results are JSON-ready dicts: times ISO 8601 with the display zone's
offset, units in the key names.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta, tzinfo
from typing import Any, Callable, Sequence

from core.domain import Kind, Station
from core.reports.areal import ArealCalculator
from core.reports.events import HOUR, StormEvent, detect_events
from core.reports.inflow import (Flag, InflowResult, balance_intervals, sensor_intervals, storage_series,
                                 window_inflow)
from core.reports.periods import DAY_S, day_bucket_offset_s, hydro_days, months
from core.reports.series import Prefix
from core.reports.towns import Town
from core.timeutil import UTC, iso
from core.tsdb import TimeSeriesStore
from core.tsdb.port import BucketStats

RAIN = "rain_mm"
# An event is looked for this far after its start when it is asked for by id.
EVENT_MAX_SPAN = timedelta(days=31)
# Events are looked for this far before a period, so that one already running when the period starts is whole.
EVENT_LOOKBACK = timedelta(days=7)
# An hour in which a gauge sent less than this share of its expected reports is not hourly data for events.
MIN_HOURLY_SHARE = 0.25
# Reservoir inflow is computed from hourly buckets for periods up to this long, from daily ones beyond.
HOURLY_UP_TO = timedelta(days=31)


@dataclass
class ReportContext:
    stations: Sequence[Station]
    towns: Sequence[Town]
    tz: tzinfo
    dry_gap_h: float = 6.0
    trace_mm: float = 0.1
    min_coverage: float = 0.8
    gauges: list[Station] = field(init=False)
    reservoirs: list[Station] = field(init=False)

    def __post_init__(self) -> None:
        self.gauges = sorted((s for s in self.stations if s.kind == Kind.rain), key=lambda s: s.id)
        self.reservoirs = sorted((s for s in self.stations if s.kind == Kind.reservoir), key=lambda s: s.id)
        self._areal = ArealCalculator(self.gauges, self.towns, self.min_coverage)

    @property
    def areal(self) -> ArealCalculator:
        return self._areal

    def t(self, ts: datetime | None) -> str | None:
        return iso(ts.astimezone(self.tz)) if ts is not None else None


def _r(v: float | None, nd: int = 1) -> float | None:
    return None if v is None else round(v + 0.0, nd)


# ----------------------------------------------------------------------------------------------- storm events

@dataclass
class _EventData:
    events: list[StormEvent]
    present: dict[str, Prefix]  # per gauge: 1 for each hour it reported as hourly data
    hours: Prefix  # 1 for each hour any gauge reported in
    sums: dict[str, list[tuple[datetime, float]]]


def _events(store: TimeSeriesStore, ctx: ReportContext, start: datetime, end: datetime, now: datetime) -> _EventData:
    """Events overlapping [start, end). The data are read from ``EVENT_LOOKBACK`` earlier, so an event that began
    before ``start`` keeps its true start (and id)."""
    data_end = min(end, now)
    ids = [g.id for g in ctx.gauges]
    if data_end <= start or not ids:
        return _EventData([], {}, Prefix([]), {})
    stats: dict[tuple[str, str], list] = {}
    for a, b in _wet_windows(store, ctx, ids, start - EVENT_LOOKBACK, data_end):
        for key, rows in store.bucket_stats(ids, [RAIN], a, b, 3600, stats=("count", "sum")).items():
            stats.setdefault(key, []).extend(rows)
    interval = {g.id: g.interval_s for g in ctx.gauges}
    sums: dict[str, list[tuple[datetime, float]]] = {}
    present: dict[str, Prefix] = {}
    for (sid, _), rows in stats.items():
        # An hour with less than a quarter of the gauge's reports is not hourly data (a daily total from an archive,
        # a gauge coming back): it neither starts an event nor adds to one.
        need = max(1.0, MIN_HOURLY_SHARE * 3600 / interval.get(sid, 300))
        ok = [(t, b.sum) for t, b in rows if (b.count or 0) >= need]
        sums[sid] = ok
        present[sid] = Prefix([(t, 1.0) for t, _ in ok])
    hours = Prefix([(t, 1.0) for t in sorted({t for rows in sums.values() for t, _ in rows})])
    events = detect_events(sums, dry_gap_h=ctx.dry_gap_h, trace_mm=ctx.trace_mm, data_end=data_end)
    return _EventData([e for e in events if e.end > start], present, hours, sums)


def _wet_windows(store: TimeSeriesStore, ctx: ReportContext, ids: list[str], lo: datetime,
                 hi: datetime) -> list[tuple[datetime, datetime]]:
    """The spans worth reading hour by hour: the days on which any gauge had rain, widened by the dry gap (and an
    hour) on both sides and merged. Every wet hour lies in a wet day, and two wet hours closer than the dry gap lie
    in one span, so events come out as from the whole period, at the cost of reading most of a year by days."""
    off = day_bucket_offset_s(ctx.tz, lo)
    days = store.bucket_stats(ids, [RAIN], lo, hi, DAY_S, offset_s=off, stats=("sum",))
    wet = sorted({t for rows in days.values() for t, b in rows if (b.sum or 0.0) >= ctx.trace_mm})
    pad = timedelta(hours=ctx.dry_gap_h) + HOUR
    spans: list[tuple[datetime, datetime]] = []
    for d in wet:
        a, b = max(lo, d - pad), min(hi, d + timedelta(days=1) + pad)
        if spans and a <= spans[-1][1]:
            spans[-1] = (spans[-1][0], max(spans[-1][1], b))
        elif a < b:
            spans.append((a, b))
    return spans


def _event_areal(ctx: ReportContext, ev: StormEvent, data: _EventData) -> dict:
    """A gauge counts for an event when it reported in enough of the event's hours that any gauge reported in (so
    the last, still running hour of an ongoing event does not count against anyone)."""
    totals = {g.station_id: g.total_mm for g in ev.gauges}
    n = {sid: rows.between(ev.start, ev.end) for sid, rows in data.present.items()}
    hours = data.hours.between(ev.start, ev.end)
    return ctx.areal.areal(totals, n, (ev.end - ev.start).total_seconds(),
                           expected={g.id: hours for g in ctx.gauges})


def _event_summary(ctx: ReportContext, ev: StormEvent, areal: dict) -> dict[str, Any]:
    names = {g.id: g.name for g in ctx.gauges}
    wet = ev.wettest
    max1 = max(ev.gauges, key=lambda g: g.max_mm(1).rain_mm, default=None)
    return {
        "id": ev.event_id(ctx.tz),
        "start": ctx.t(ev.start), "end": ctx.t(ev.end), "duration_h": ev.duration_h,
        "closed": ev.closed,
        "district_areal_rain_mm": areal["district_areal_rain_mm"],
        "wettest_station_id": wet.station_id if wet else None,
        "wettest_station_name": names.get(wet.station_id) if wet else None,
        "wettest_rain_mm": _r(wet.total_mm) if wet else None,
        "max_1h_rain_mm": _r(max1.max_mm(1).rain_mm) if max1 else None,
        "max_1h_station_id": max1.station_id if max1 else None,
        "gauges_used": len(areal["gauges_used"]),
    }


def rain_events(store: TimeSeriesStore, ctx: ReportContext, start: datetime, end: datetime,
                now: datetime) -> dict[str, Any]:
    """Storm events in [start, end) as known at ``now`` (data after ``now`` is not looked at)."""
    data = _events(store, ctx, start, end, now)
    events = [_event_summary(ctx, ev, _event_areal(ctx, ev, data)) for ev in data.events]
    return {"report": "rain_events", "start": ctx.t(start), "end": ctx.t(end), "as_of": ctx.t(min(end, now)),
            "dry_gap_h": ctx.dry_gap_h, "trace_mm": ctx.trace_mm, "events": events}


def parse_event_id(event_id: str, tz: tzinfo) -> datetime:
    """The start (UTC) an event id names: its local start hour YYYYMMDDHH. ValueError otherwise."""
    if len(event_id) != 10 or not event_id.isdigit():
        raise ValueError("an event id is its local start hour, YYYYMMDDHH (e.g. 2026062814)")
    try:
        local = datetime.strptime(event_id, "%Y%m%d%H")
    except ValueError:
        raise ValueError(f"event id {event_id} is not a valid local hour YYYYMMDDHH") from None
    if not 1900 <= local.year <= 2200:
        raise ValueError(f"event id {event_id} names a year outside 1900–2200")
    return local.replace(tzinfo=tz).astimezone(UTC)


def rain_event(store: TimeSeriesStore, ctx: ReportContext, event_id: str, now: datetime) -> dict[str, Any] | None:
    """One event with each gauge's and each town's figures; None when no event starts at that hour."""
    start = parse_event_id(event_id, ctx.tz)
    # Look back one dry gap: rain just before the named hour means the event began earlier (another id).
    lo = start - timedelta(hours=ctx.dry_gap_h)
    data = _events(store, ctx, lo, start + EVENT_MAX_SPAN, now)
    ev = next((e for e in data.events if e.start == start), None)
    if ev is None:
        return None
    areal = _event_areal(ctx, ev, data)
    gauges = {g.id: g for g in ctx.gauges}
    used = set(areal["gauges_used"])
    rows = []
    for g in ev.gauges:
        st = gauges[g.station_id]
        row: dict[str, Any] = {"station_id": st.id, "name": st.name, "town": st.town, "lat": st.lat, "lon": st.lon,
                               "rain_mm": _r(g.total_mm), "used": st.id in used,
                               "district_weight": areal["district_weights"].get(st.id, 0.0)}
        for w in g.max_windows:
            row[f"max_{w.hours}h_rain_mm"] = _r(w.rain_mm)
            row[f"max_{w.hours}h_start"] = ctx.t(w.start)
            row[f"max_{w.hours}h_end"] = ctx.t(w.end)
        rows.append(row)
    hyeto = {sid: [(t, v) for t, v in pts if ev.start <= t < ev.end] for sid, pts in data.sums.items()}
    note = {"note": areal["note"]} if "note" in areal else {}
    return {"report": "rain_event", **_event_summary(ctx, ev, areal), **note,
            "gauges_dropped": areal["gauges_dropped"], "gauges": rows, "towns": areal["towns"],
            "hyetographs": {sid: [[ctx.t(ts), _r(v)] for ts, v in pts] for sid, pts in hyeto.items()}}


# ----------------------------------------------------------------------------------------------- areal rainfall

def _daily(store: TimeSeriesStore, ctx: ReportContext, start: datetime, end: datetime,
           ids: list[str]) -> tuple[dict[str, Prefix], dict[str, Prefix]]:
    """Per gauge: daily rain sums and daily reading counts (days beginning 08:00 local), one store query."""
    off = day_bucket_offset_s(ctx.tz, start)
    stats = store.bucket_stats(ids, [RAIN], start, end, DAY_S, offset_s=off, stats=("count", "sum"))
    sums = {sid: Prefix([(t, b.sum) for t, b in rows]) for (sid, _), rows in stats.items()}
    counts = {sid: Prefix([(t, float(b.count)) for t, b in rows]) for (sid, _), rows in stats.items()}
    return sums, counts


def areal_rainfall(store: TimeSeriesStore, ctx: ReportContext, start: datetime, end: datetime,
                   now: datetime) -> dict[str, Any]:
    """Areal rain per hydrological day, per month and per storm event in [start, end) (whole days)."""
    ids = [g.id for g in ctx.gauges]
    days = hydro_days(start, end, ctx.tz)
    if days:
        start, end = days[0][1], days[-1][2]
    sums, counts = _daily(store, ctx, start, end, ids)

    def period(label: str, a: datetime, b: datetime) -> dict[str, Any]:
        tot = {sid: per.between(a, b) for sid, per in sums.items()}
        n = {sid: per.between(a, b) for sid, per in counts.items()}
        # Readings are expected up to now only: today's day and this month count what could have arrived.
        out = ctx.areal.areal(tot, n, max(0.0, (min(b, now) - a).total_seconds()))
        out.pop("district_weights")
        return {"period": label, "start": ctx.t(a), "end": ctx.t(b), **out,
                "gauge_rain_mm": {sid: _r(v) for sid, v in sorted(tot.items()) if sid in out["gauges_used"]}}

    by_day = [period(d.isoformat(), a, b) for d, a, b in days]
    by_month = [period(label, max(a, start), min(b, end)) for label, a, b in months(start, end, ctx.tz)]
    data = _events(store, ctx, start, end, now)
    by_event = []
    for ev in data.events:
        areal = _event_areal(ctx, ev, data)
        areal.pop("district_weights")
        by_event.append({"period": ev.event_id(ctx.tz), "start": ctx.t(ev.start), "end": ctx.t(ev.end), **areal,
                         "gauge_rain_mm": {g.station_id: _r(g.total_mm) for g in ev.gauges
                                           if g.station_id in areal["gauges_used"]}})
    return {"report": "areal_rainfall", "start": ctx.t(start), "end": ctx.t(end), "unit": "mm",
            "method": "Thiessen polygons over each town's boundary; gauges below coverage drop out",
            "towns": [t.name for t in ctx.towns], "days": by_day, "months": by_month, "events": by_event}


# ----------------------------------------------------------------------------------------------- reservoir inflow

def _inflow_result(ctx: ReportContext, st: Station, level: list, outflow: list, inflow: list,
                   start: datetime, end: datetime, bucket: timedelta) -> InflowResult:
    hours = max(1.0, (end - start) / bucket)
    storage, flags = storage_series(st, level)
    if inflow and len(inflow) >= ctx.min_coverage * hours:
        res = sensor_intervals(inflow, bucket)
        res.storage = [(ts + bucket / 2, v) for ts, v in storage]  # storage change still from the levels
        return res
    if not storage:
        return InflowResult("none", [], flags or [Flag("no_level", "无水位记录", "no level record")])
    res = balance_intervals(storage, outflow, bucket)
    res.flags = flags + res.flags
    return res


def _window_row(ctx: ReportContext, st: Station, res: InflowResult, outflow_res: InflowResult,
                level_max: Prefix, a: datetime, b: datetime) -> dict[str, Any]:
    w = window_inflow(res, a, b)
    out = window_inflow(outflow_res, a, b)
    inside = level_max.rows(a, b)
    top = max(inside, key=lambda p: p[1], default=None)
    limit = st.flood_limit_at(top[0], ctx.tz) if top else None
    flags = list(res.flags)
    if w.negative_intervals:
        low = f"{w.min_inflow_m3s:.2f}"
        flags.append(Flag("negative_inflow", f"{w.negative_intervals}个小时入库流量为负（最小 {low} m³/s）",
                          f"{w.negative_intervals} hour(s) with negative inflow (lowest {low} m³/s)"))
    return {
        "inflow_volume_10k_m3": _r(w.volume_10k_m3, 2), "inflow_volume_mcm": _r(w.volume_mcm, 4),
        "peak_inflow_m3s": _r(w.peak_inflow_m3s, 2), "peak_inflow_at": ctx.t(w.peak_at),
        "outflow_volume_10k_m3": _r(out.volume_10k_m3, 2),
        "storage_change_10k_m3": _r(None if w.storage_change_m3 is None else w.storage_change_m3 / 1e4, 2),
        "max_level_m": _r(top[1], 2) if top else None, "max_level_at": ctx.t(top[0]) if top else None,
        "flood_limit_level_m": limit,
        "margin_to_flood_limit_m": _r(limit - top[1], 2) if top and limit is not None else None,
        "method": res.method, "flags": [f.as_dict() for f in flags],
    }


def reservoir_inflow(store: TimeSeriesStore, ctx: ReportContext, start: datetime, end: datetime,
                     now: datetime, hydrograph: bool = False,
                     windows: Sequence[tuple[str, datetime, datetime]] | None = None) -> dict[str, Any]:
    """Per reservoir over [start, end) and per hydrological day (or ``windows``): inflow volume, peak, storage
    change, highest level and its margin to the flood-limit level in force; the district's total and ranking."""
    end = min(end, max(start, now))
    ids = [r.id for r in ctx.reservoirs]
    # One bucket either side, so the balance can interpolate storage at the window's edges.
    # Hourly up to a month; beyond, daily means (08:00–08:00), as yearbooks tabulate a year: the peak is then the
    # largest daily mean inflow, and the report says so.
    bucket = HOUR if end - start <= HOURLY_UP_TO else timedelta(days=1)
    offset = 0 if bucket == HOUR else day_bucket_offset_s(ctx.tz, start)
    lo, hi = start - bucket, end + bucket
    every = int(bucket.total_seconds())
    stats = store.bucket_stats(ids, ["water_level_m"], lo, hi, every, offset_s=offset, stats=("mean", "max"))
    stats.update(store.bucket_stats(ids, ["outflow_m3s", "inflow_m3s"], lo, hi, every, offset_s=offset,
                                    stats=("mean",)))

    def series(metric: str, pick: Callable[[BucketStats], float], a: datetime = lo,
               b: datetime = hi) -> dict[str, list[tuple[datetime, float]]]:
        return {sid: [(t, pick(x)) for t, x in rows if a <= t < b]
                for (sid, m), rows in stats.items() if m == metric}

    def mean(x: BucketStats) -> float:
        return x.mean  # type: ignore[return-value]

    level = series("water_level_m", mean)
    level_max = series("water_level_m", lambda x: x.max, start, end)
    outflow = series("outflow_m3s", mean)
    inflow = series("inflow_m3s", mean, start, end)
    periods = list(windows) if windows is not None else [(d.isoformat(), a, b)
                                                          for d, a, b in hydro_days(start, end, ctx.tz)]
    rows = []
    for st in ctx.reservoirs:
        res = _inflow_result(ctx, st, level.get(st.id, []), outflow.get(st.id, []), inflow.get(st.id, []),
                             start, end, bucket)
        out_res = sensor_intervals(outflow.get(st.id, []), bucket)
        top = Prefix(level_max.get(st.id, []))
        row = {"station_id": st.id, "name": st.name, "town": st.town,
               **_window_row(ctx, st, res, out_res, top, start, end),
               "periods": [{"period": label, "start": ctx.t(max(a, start)), "end": ctx.t(min(b, end)),
                            **_window_row(ctx, st, res, out_res, top, max(a, start), min(b, end))}
                           for label, a, b in periods if min(b, end) > max(a, start)]}
        if hydrograph:
            row["hydrograph"] = [[ctx.t(iv.start + (iv.end - iv.start) / 2), _r(iv.inflow_m3s, 3)]
                                 for iv in res.intervals if start <= iv.start + (iv.end - iv.start) / 2 < end]
        rows.append(row)
    ranked = sorted((r for r in rows if r["inflow_volume_10k_m3"] is not None),
                    key=lambda r: r["inflow_volume_10k_m3"], reverse=True)
    for i, r in enumerate(ranked, 1):
        r["rank"] = i
    total = sum(r["inflow_volume_10k_m3"] for r in ranked)
    return {"report": "reservoir_inflow", "start": ctx.t(start), "end": ctx.t(end),
            "resolution": "1h" if bucket == HOUR else "1d",
            "district_inflow_volume_10k_m3": _r(total, 2), "district_inflow_volume_mcm": _r(total / 100, 4),
            "reservoirs": sorted(rows, key=lambda r: r.get("rank", 10**6))}
