"""Readings from the time-series store: raw, aggregated per bucket, and the latest per station and metric."""

from __future__ import annotations

import math
from datetime import timedelta
from typing import Annotated

from fastapi import APIRouter, Depends, Query

from api.auth import ANY_ROLE
from api.deps import RegistryDep, StoreDep
from api.errors import echo, invalid
from api.params import TIME_HELP, parse_every, parse_time
from api.routes.stations import lookup_station
from api.schemas import BucketPoint, ErrorOut, LatestReading, RawPoint, ReadingsOut
from core.domain import METRICS, Kind
from core.timeutil import utcnow
from core.tsdb.port import Agg

router = APIRouter(tags=["readings"], dependencies=[Depends(ANY_ROLE)])

DEFAULT_WINDOW = timedelta(hours=24)
MAX_RANGE = timedelta(days=366)
MAX_BUCKETS = 10_000
DEFAULT_LIMIT = 5_000
MAX_LIMIT = 50_000

_READINGS_DOC = f"""
Raw readings of one station, oldest first, or — when `every` is given — one aggregate per time bucket.

* `start` / `end`: {TIME_HELP}. The window is `[start, end)`; `end` defaults to now and `start` to `end` − 24 h.
  At most 366 days.
* `metric`: one of the station kind's metrics; all of them when omitted (raw readings only).
* `every`: bucket length, seconds (`300`) or `30s`, `5m`, `1h`, `1d`; at least 1 s, at most 10,000 buckets.
  Buckets are aligned to the Unix epoch; buckets without readings are left out.
* `agg`: `mean` (default), `min`, `max`, `sum` or `count`; only together with `every`.
* `limit`: raw readings only, default {DEFAULT_LIMIT:,}, at most {MAX_LIMIT:,}; `truncated` tells when more matched.
"""


@router.get("/stations/{station_id}/readings", response_model=ReadingsOut, summary="Readings of a station",
            description=_READINGS_DOC, responses={404: {"model": ErrorOut}})
def station_readings(
    station_id: str,
    registry: RegistryDep,
    store: StoreDep,
    metric: Annotated[str | None, Query(max_length=64)] = None,
    start: Annotated[str | None, Query(max_length=64, description=f"{TIME_HELP}; default end − 24 h")] = None,
    end: Annotated[str | None, Query(max_length=64, description=f"{TIME_HELP}; default now")] = None,
    every: Annotated[str | None, Query(max_length=32, description="bucket length: 300, 30s, 5m, 1h, 1d")] = None,
    agg: Annotated[Agg | None, Query(description="bucket aggregate (default mean); needs every")] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT, description="raw readings at most")] = DEFAULT_LIMIT,
) -> ReadingsOut:
    start_ts, end_ts = parse_time("start", start), parse_time("end", end)
    station = lookup_station(registry, station_id)

    metrics = METRICS[station.kind.value]
    if metric is not None and metric not in metrics:
        invalid("query", "metric", f"unknown metric {echo(metric)} for a {station.kind.value} station; "
                f"valid metrics: {', '.join(metrics)}", metric)

    if end_ts is None:
        end_ts = utcnow()
    if start_ts is None:
        start_ts = end_ts - DEFAULT_WINDOW
    if start_ts >= end_ts:
        invalid("query", "start", f"start ({start_ts.isoformat()}) must be before end ({end_ts.isoformat()})", start)
    span = end_ts - start_ts
    if span > MAX_RANGE:
        invalid("query", "start", f"time range of {span.total_seconds() / 86400:.1f} days is too long; "
                f"at most {MAX_RANGE.days} days per query", start)

    if every is None:
        if agg is not None:
            invalid("query", "agg", "agg needs every (the bucket length, e.g. every=1h)", agg)
        rows = store.query(station.id, metric, start_ts, end_ts, limit=limit + 1)
        truncated = len(rows) > limit
        points: list[RawPoint] | list[BucketPoint] = [
            RawPoint(ts=r.ts, metric=r.metric, value=r.value) for r in rows[:limit]]
        return ReadingsOut(station_id=station.id, metric=metric, unit=metrics[metric].unit if metric else None,
                           start=start_ts, end=end_ts, every=None, agg=None, truncated=truncated, points=points)

    every_s = parse_every(every, max_s=int(MAX_RANGE.total_seconds()))
    if metric is None:
        invalid("query", "metric", f"metric is required when aggregating (every); valid metrics: "
                f"{', '.join(metrics)}", None)
    buckets = math.ceil(span.total_seconds() / every_s)
    if buckets > MAX_BUCKETS:
        invalid("query", "every", f"{buckets:,} buckets requested; at most {MAX_BUCKETS:,} — "
                "use a longer every or a shorter time range", every)
    agg = agg or "mean"
    rows_b = store.aggregate(station.id, metric, start_ts, end_ts, every_s, agg)
    points = [BucketPoint(ts=ts, value=value) for ts, value in rows_b]
    return ReadingsOut(station_id=station.id, metric=metric, unit=metrics[metric].unit, start=start_ts, end=end_ts,
                       every=every_s, agg=agg, truncated=False, points=points)


@router.get("/readings/latest", response_model=list[LatestReading], summary="Latest reading per station and metric",
            description="The newest reading of every (station, metric) pair, as a flat list sorted by station id "
                        "then metric (one entry per pair, not grouped per station). Filter by station `kind`.")
def latest_readings(
    store: StoreDep,
    kind: Annotated[Kind | None, Query(description="only stations of this kind")] = None,
) -> list[LatestReading]:
    rows = store.latest(kind=kind.value if kind else None)
    return [LatestReading.from_domain(r) for r in rows]
