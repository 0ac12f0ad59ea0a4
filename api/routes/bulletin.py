"""The public bulletin (no login): every chief's patrol counts and compliance rate over a period, JSON or CSV.

Anyone may ask, so the answer is computed at most once per ``bulletin_cache_s`` per period and kept rendered
(JSON and CSV bytes): a burst of requests costs one compliance run, and the others only copy bytes. One lock
makes concurrent misses wait for the one computation instead of repeating it.
"""

from __future__ import annotations

import csv
import io
import json
import threading
import time
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response

from api.patrol_schemas import (BULLETIN_FIELDS, BULLETIN_TOWN_FIELDS, BulletinOut, BulletinRow, BulletinTown,
                                PeriodInfo)
from api.routes.compliance import From, Month, To, period
from api.routes.patrol_scope import PatrolsDep
from core.csvcell import safe_row
from core.patrols.repo import PatrolRepo

router = APIRouter(tags=["bulletin"])

MAX_CACHED_PERIODS = 64


@dataclass(frozen=True, slots=True)
class Rendered:
    made: float  # time.monotonic()
    json: bytes
    csv: bytes
    filename: str


class BulletinCache:
    def __init__(self, ttl_s: float) -> None:
        self.ttl_s = ttl_s
        self._items: dict[tuple[datetime, datetime], Rendered] = {}
        self._lock = threading.Lock()

    def get(self, repo: PatrolRepo, start: datetime, end: datetime) -> Rendered:
        key = (start, end)
        hit = self._items.get(key)
        if hit is not None and time.monotonic() - hit.made < self.ttl_s:
            return hit
        with self._lock:
            hit = self._items.get(key)  # made while this request waited for the lock
            if hit is not None and time.monotonic() - hit.made < self.ttl_s:
                return hit
            fresh = render(repo, start, end)
            if len(self._items) >= MAX_CACHED_PERIODS:  # arbitrary periods from the public must not pile up
                self._items.clear()
            self._items[key] = fresh
            return fresh


def render(repo: PatrolRepo, start: datetime, end: datetime) -> Rendered:
    report = repo.compliance(start, end)
    period = PeriodInfo.of(start, end, repo.tz, report.as_of)
    rows = [BulletinRow(chief_id=c.chief_id, name=c.name, level=c.level, town=c.town, frequency=c.frequency,
                        periods_due=c.periods_due, periods_met=c.periods_met, required=c.required, valid=c.valid,
                        total=c.patrols, rate=c.rate) for c in report.chiefs]
    towns = sorted((BulletinTown(rank=r.rank, town=r.key, chiefs=r.chiefs, required=r.required, counted=r.counted,
                                 rate=r.rate, compliant=r.compliant) for r in report.by_town if r.key is not None),
                   key=lambda x: (x.rank is None, x.rank or 0, x.town))
    out = BulletinOut(start=start, end=end, timezone=str(repo.tz), period=period, generated_at=repo.clock.now(),
                      district_rate=report.total.rate, towns=towns, rows=rows)
    body = json.dumps(out.model_dump(mode="json"), ensure_ascii=False, separators=(",", ":")).encode("utf-8")
    # The file says what it is and which period it covers before the table (the first lines a person reads in
    # Excel); the chiefs' table, then the towns' table, each under its own header row.
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\r\n")
    w.writerow(["河长巡河情况公示 / River-chief patrol bulletin"])
    w.writerow(["统计期 / period", period.label, f"{start.astimezone(repo.tz).isoformat()} – "
                f"{end.astimezone(repo.tz).isoformat()} (end exclusive)", str(repo.tz)])
    w.writerow(["达标率 / rate", "每个应巡周期最多计 N 次有效巡河 ÷ 应巡次数 / valid patrols counted up to N per due "
                "period ÷ required"])
    w.writerow([])
    w.writerow(BULLETIN_FIELDS)
    for r in rows:
        w.writerow(safe_row([r.chief_id, r.name, r.level, r.town or "", r.frequency, r.periods_due, r.periods_met,
                             r.required, r.valid, r.total, "" if r.rate is None else r.rate]))
    w.writerow([])
    w.writerow(BULLETIN_TOWN_FIELDS)
    for x in towns:
        w.writerow(safe_row(["" if x.rank is None else x.rank, x.town, x.chiefs, x.required, x.counted,
                             "" if x.rate is None else x.rate, x.compliant]))
    # UTF-8 with a BOM: Excel opens it with the Chinese names intact (without one it guesses the ANSI code page).
    text = "\ufeff" + buf.getvalue()
    name = period.month or "-".join(t.astimezone(repo.tz).strftime("%Y%m%d") for t in (start, end))
    return Rendered(made=time.monotonic(), json=body, csv=text.encode("utf-8"),
                    filename=f"river-chief-bulletin-{name}.csv")


def _cache(request: Request, repo: PatrolRepo) -> BulletinCache:
    cache = getattr(request.app.state, "bulletin_cache", None)
    if cache is None:
        cache = request.app.state.bulletin_cache = BulletinCache(repo.settings.bulletin_cache_s)
    return cache


@router.get("/bulletin", response_model=BulletinOut, summary="Public bulletin: chiefs' patrols and compliance rates",
            description="No login. The period (`month=YYYY-MM`, or [from, to); default the last complete "
                        "calendar month, local time), one row per chief (frequency, periods due and met, required, "
                        "valid and finished patrols, rate) and each town's rate and rank. A week, dekad or month is "
                        "due in the report in which it ends. `?format=csv`: the period on the first lines, then the "
                        "chiefs' and the towns' tables (UTF-8 with BOM). Recomputed at most once a minute.",
            responses={200: {"content": {"text/csv": {"schema": {"type": "string"}}},
                             "description": "the bulletin (JSON, or CSV with format=csv)"}})
def bulletin(request: Request, repo: PatrolsDep, start: From = None, end: To = None, month: Month = None,
             format: Annotated[Literal["json", "csv"], Query(description="json (default) or csv")] = "json",
             ) -> Response:
    t0, t1 = period(start, end, repo.tz, repo.clock.now(), month)
    rendered = _cache(request, repo).get(repo, t0, t1)
    headers = {"Cache-Control": f"public, max-age={int(repo.settings.bulletin_cache_s)}"}
    if format == "csv":
        headers["Content-Disposition"] = f'attachment; filename="{rendered.filename}"'
        return Response(rendered.csv, media_type="text/csv; charset=utf-8", headers=headers)
    return Response(rendered.json, media_type="application/json", headers=headers)
