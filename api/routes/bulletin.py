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

from api.patrol_schemas import BULLETIN_FIELDS, BulletinOut, BulletinRow
from api.routes.compliance import From, To, period
from api.routes.patrol_scope import PatrolsDep
from core.csvcell import safe_row
from core.patrols.repo import PatrolRepo
from core.timeutil import utcnow

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
    rows = [BulletinRow(chief_id=c.chief_id, name=c.name, level=c.level, town=c.town, required=c.required,
                        valid=c.valid, total=c.patrols, rate=c.rate) for c in report.chiefs]
    out = BulletinOut(start=start, end=end, timezone=str(repo.tz), generated_at=utcnow(), rows=rows)
    body = json.dumps(out.model_dump(mode="json"), ensure_ascii=False, separators=(",", ":")).encode("utf-8")
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\r\n")
    w.writerow(BULLETIN_FIELDS)
    for r in rows:
        w.writerow(safe_row([r.chief_id, r.name, r.level, r.town or "", r.required, r.valid, r.total,
                             "" if r.rate is None else r.rate]))
    # UTF-8 with a BOM: Excel opens it with the Chinese names intact (without one it guesses the ANSI code page).
    text = "\ufeff" + buf.getvalue()
    local = [t.astimezone(repo.tz).strftime("%Y%m%d") for t in (start, end)]
    return Rendered(made=time.monotonic(), json=body, csv=text.encode("utf-8"),
                    filename=f"river-chief-bulletin-{local[0]}-{local[1]}.csv")


def _cache(request: Request, repo: PatrolRepo) -> BulletinCache:
    cache = getattr(request.app.state, "bulletin_cache", None)
    if cache is None:
        cache = request.app.state.bulletin_cache = BulletinCache(repo.settings.bulletin_cache_s)
    return cache


@router.get("/bulletin", response_model=BulletinOut, summary="Public bulletin: chiefs' patrols and compliance rates",
            description="No login. One row per chief: `chief_id, name, level, town, required, valid, total, rate` "
                        "over [from, to) (default: the current month, local time; only whole weeks, dekads and "
                        "months inside it and already over are due). `?format=csv` gives the same rows as CSV (UTF-8 with BOM, "
                        "header row). Recomputed at most once a minute.",
            responses={200: {"content": {"text/csv": {"schema": {"type": "string"}}},
                             "description": "the bulletin (JSON, or CSV with format=csv)"}})
def bulletin(request: Request, repo: PatrolsDep, start: From = None, end: To = None,
             format: Annotated[Literal["json", "csv"], Query(description="json (default) or csv")] = "json",
             ) -> Response:
    t0, t1 = period(start, end, repo.tz)
    rendered = _cache(request, repo).get(repo, t0, t1)
    headers = {"Cache-Control": f"public, max-age={int(repo.settings.bulletin_cache_s)}"}
    if format == "csv":
        headers["Content-Disposition"] = f'attachment; filename="{rendered.filename}"'
        return Response(rendered.csv, media_type="text/csv; charset=utf-8", headers=headers)
    return Response(rendered.json, media_type="application/json", headers=headers)
