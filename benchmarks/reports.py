"""Rain and inflow reports on a year of 5-minute data (core/reports), on SQLite and on InfluxDB 1.x.

``python -m benchmarks.reports [--days 365] [--stores sqlite,influxdb] [--repeat 3] [--history-years 10]``

1. **data**: the demo district's 24 gauges and 40 reservoirs, ``--days`` days of 5-minute readings ending at a
   fixed moment (gauges: ``rain_mm``; reservoirs: ``water_level_m``, ``outflow_m3s``, ``storage_mcm`` and, at
   every other reservoir, ``inflow_m3s``), rain following the seeded daily climate (simulators.rain_history)
   spread over a few hours, plus ``--history-years`` earlier years of daily totals. Written through the store's
   own ``write``.
2. **reports**: each report function as the API calls it, with ``now`` = the end of the data; median and max of
   ``--repeat`` runs. Typical requests (the wettest event, a month, a week) and whole-year ones.

Target: every report <= 1 s on each store. One JSON line per measurement on stdout, then a ``reports/summary``
line; progress on stderr. The exit status never depends on a target.
"""

from __future__ import annotations

import argparse
import json
import math
import random
import statistics
import sys
import tempfile
import time
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any, Callable

from core.domain import Kind, Reading, Station
from core.reports.history import rainfall_history
from core.reports.service import ReportContext, areal_rainfall, rain_event, rain_events, reservoir_inflow
from core.timeutil import UTC, zone
from core.tsdb import TimeSeriesStore, open_store
from simulators import generate_district
from simulators.rain_history import daily_history
from simulators.town_polygons import generate_towns

TARGET_S = 1.0
SH = zone("Asia/Shanghai")
END = datetime(2026, 12, 1, 8, 0, tzinfo=SH).astimezone(UTC)
STEP = timedelta(minutes=5)


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def emit(obj: dict[str, Any]) -> None:
    print(json.dumps(obj, ensure_ascii=False), flush=True)


def _rain(gauges: list[Station], start: datetime, days: int, seed: int = 7) -> list[Reading]:
    """Every gauge every 5 minutes; each day's seeded depth falls over 2–8 hours from a random hour."""
    rng = random.Random(seed)
    first = start.astimezone(SH).date()
    daily = {}
    for r in daily_history(gauges, first, first + timedelta(days=days), SH):
        daily[(r.station_id, r.ts.astimezone(SH).date())] = r.value
    out: list[Reading] = []
    n = days * 288
    times = [start + i * STEP for i in range(n)]
    for g in gauges:
        series = [0.0] * n
        for d in range(days):
            depth = daily.get((g.id, first + timedelta(days=d)), 0.0)
            if depth <= 0:
                continue
            hours = rng.randint(2, 8)
            begin = d * 288 + rng.randint(0, 15) * 12
            steps = min(hours * 12, n - begin)
            for k in range(steps):  # a triangular hyetograph
                w = 1 - abs(2 * (k + 0.5) / steps - 1)
                series[begin + k] += depth * w * 2 / steps
        out += [Reading(g.id, "rain", "rain_mm", t, round(v, 1)) for t, v in zip(times, series)]
    return out


def _reservoirs(reservoirs: list[Station], start: datetime, days: int) -> list[Reading]:
    """Levels swinging with the seasons and after rain, outflow over the spillway, storage from the curve."""
    out: list[Reading] = []
    n = days * 288
    for j, st in enumerate(reservoirs):
        assert st.flood_limit_level_m is not None and st.dead_level_m is not None
        mid = (st.flood_limit_level_m + st.dead_level_m) / 2 + 1.5
        amp = (st.flood_limit_level_m - st.dead_level_m) / 3
        for i in range(0, n):
            t = start + i * STEP
            phase = 2 * math.pi * i / (365 * 288)
            level = round(mid + amp * math.sin(phase - 2.0) + 0.3 * math.sin(2 * math.pi * i / (10 * 288) + j), 2)
            storage = st.storage_at(level) or 0.0
            out.append(Reading(st.id, "reservoir", "water_level_m", t, level))
            out.append(Reading(st.id, "reservoir", "storage_mcm", t, round(storage, 4)))
            out.append(Reading(st.id, "reservoir", "outflow_m3s", t, round(0.2 + max(0.0, level - mid) * 3, 3)))
            if j % 2:
                out.append(Reading(st.id, "reservoir", "inflow_m3s", t, round(0.5 + max(0.0, level - mid) * 4, 3)))
    return out


def load(store: TimeSeriesStore, stations: list[Station], days: int, history_years: int) -> int:
    start = END - timedelta(days=days)
    gauges = [s for s in stations if s.kind == Kind.rain]
    reservoirs = [s for s in stations if s.kind == Kind.reservoir]
    n = 0
    first = start.astimezone(SH).date()
    hist = list(daily_history(gauges, date(first.year - history_years, 1, 1), first, SH, seed=11))
    for chunk in (hist, _rain(gauges, start, days)):
        for i in range(0, len(chunk), 50_000):
            store.write(chunk[i:i + 50_000])
        n += len(chunk)
        log(f"  {n:,} readings written")
    for k in range(0, len(reservoirs), 4):
        chunk = _reservoirs(reservoirs[k:k + 4], start, days)
        for i in range(0, len(chunk), 50_000):
            store.write(chunk[i:i + 50_000])
        n += len(chunk)
        log(f"  {n:,} readings written")
    return n


def timed(fn: Callable[[], Any], repeat: int) -> tuple[list[float], Any]:
    runs, result = [], None
    for _ in range(repeat):
        t0 = time.perf_counter()
        result = fn()
        runs.append(time.perf_counter() - t0)
    return runs, result


def run_reports(store: TimeSeriesStore, label: str, ctx: ReportContext, days: int, repeat: int) -> list[dict]:
    start = END - timedelta(days=days)
    year_events = rain_events(store, ctx, start, END, END)["events"]
    wettest = max(year_events, key=lambda e: e["district_areal_rain_mm"] or 0)
    ev_start = datetime.fromisoformat(wettest["start"])
    month = (END - timedelta(days=30), END)
    week = (ev_start - timedelta(days=1), ev_start + timedelta(days=6))
    cases: list[tuple[str, Callable[[], Any]]] = [
        ("rain-events/year", lambda: rain_events(store, ctx, start, END, END)),
        ("rain-event/wettest", lambda: rain_event(store, ctx, wettest["id"], END)),
        ("areal-rainfall/month", lambda: areal_rainfall(store, ctx, *month, END)),
        ("areal-rainfall/year", lambda: areal_rainfall(store, ctx, start, END, END)),
        ("reservoir-inflow/event-week", lambda: reservoir_inflow(store, ctx, *week, END, hydrograph=True)),
        ("reservoir-inflow/month", lambda: reservoir_inflow(store, ctx, *month, END)),
        ("reservoir-inflow/year", lambda: reservoir_inflow(store, ctx, start, END, END)),
        ("rainfall-history/year", lambda: rainfall_history(store, ctx, END.astimezone(SH).year, END)),
    ]
    out = []
    for name, fn in cases:
        runs, _ = timed(fn, repeat)
        row = {"bench": f"reports/{name}", "store": label, "median_s": round(statistics.median(runs), 3),
               "max_s": round(max(runs), 3), "runs": len(runs), "target_s": TARGET_S,
               "ok": max(runs) <= TARGET_S, "events_in_year": len(year_events)}
        emit(row)
        out.append(row)
    return out


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--days", type=int, default=365)
    ap.add_argument("--stores", default="sqlite,influxdb")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--history-years", type=int, default=10)
    args = ap.parse_args(argv)
    district = generate_district()
    stations = [s for s in district if s.kind in (Kind.rain, Kind.reservoir)]
    ctx = ReportContext(stations, generate_towns(), SH)
    rows: list[dict] = []
    with tempfile.TemporaryDirectory(prefix="bench-reports-") as tmp:
        for kind in args.stores.split(","):
            server = None
            if kind == "sqlite":
                store = open_store(f"sqlite:///{Path(tmp) / 'ts.sqlite3'}")
            elif kind == "influxdb":
                from support.servers import InfluxServer

                server = InfluxServer(Path(tmp) / "influxdb").start()
                store = open_store(server.url_for("bench"))
            else:
                raise SystemExit(f"unknown store {kind!r}: sqlite or influxdb")
            try:
                log(f"{kind}: loading {args.days} days of 5-minute data, {args.history_years} years of daily history")
                t0 = time.perf_counter()
                n = load(store, stations, args.days, args.history_years)
                emit({"bench": "reports/load", "store": kind, "readings": n,
                      "seconds": round(time.perf_counter() - t0, 1)})
                rows += run_reports(store, kind, ctx, args.days, args.repeat)
            finally:
                store.close()
                if server is not None:
                    server.stop()
    emit({"bench": "reports/summary", "target_s": TARGET_S, "all_ok": all(r["ok"] for r in rows),
          "slowest": max(rows, key=lambda r: r["max_s"])["bench"] if rows else None})


if __name__ == "__main__":
    main()
