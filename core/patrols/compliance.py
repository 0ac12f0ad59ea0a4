"""Patrol compliance and issue statistics (docs/river-chiefs.md, "Compliance: counting per period").

Patrol compliance of a chief over a report period ``[start, end)``:

- The minimum frequency of the chief's level is ``N/unit`` (settings ``patrol_frequency_<level>``), unit one
  of ``week`` (Monday 00:00 to Monday 00:00), ``dekad`` (旬: days 1–10, 11–20, 21–end of month), ``month``,
  ``quarter``, ``year``, all calendar periods in local time (settings ``display_timezone``).
- A period is *due* in the report in which it **ends**: its end lies in ``(start, end]`` and, when the report is
  asked for before its end (``as_of``), no later than then. So the week 30 November–6 December belongs to
  December's report and is counted with the patrols of 30 November; the week 29 June–5 July belongs to July's.
  Every period is due in exactly one of a run of consecutive reports, and none is due before it is over.
- Each due period is *met* when it holds at least N valid patrols (finished, ``valid`` true, started inside
  the period). Four patrols on one day meet one week, not a month of weekly duty.
- ``required`` = N × periods due; ``counted`` = Σ over due periods of min(valid patrols in it, N);
  ``rate`` = counted ÷ required (None when nothing is due). This is the bureau's published "valid ÷ required",
  capped per period: with N = 1 it equals periods met ÷ periods due, and a town chief owing 3 a month who
  made 2 gets 2/3 rather than 0.
- ``patrols`` and ``valid`` are the finished and valid patrols started in ``[start, end)``: what the chief did
  in the report period, shown beside the rate.

Roll-ups (by town, by level, the district): ``rate`` = Σ counted ÷ Σ required, so one chief's extra patrols do
not hide another's missing ones; ``compliant`` counts chiefs at rate 1 and ``mean_rate`` averages the chiefs'
rates (chiefs with nothing due are left out of both); towns are ranked by rate (1 = best; equal rates share a
rank; a town with nothing due has no rank).

Issue statistics over the issues *found* in ``[start, end)``, as of a time (default: now):

- response rate = issues assigned within ``issue_response_h`` (4 h) of being found ÷ issues found;
- on-time rate = issues closed no later than their *first* deadline ÷ issues closed (a failed review
  renews the working deadline, but does not make a late closure punctual);
- resolution rate = issues closed ÷ issues found.
"""

from __future__ import annotations

import calendar
from collections import defaultdict
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, tzinfo
from typing import Any, Iterable, Mapping, Sequence

import numpy as np

UNITS = ("week", "dekad", "month", "quarter", "year")


@dataclass(frozen=True, slots=True)
class Frequency:
    count: int
    unit: str

    @classmethod
    def parse(cls, text: str) -> "Frequency":
        count, _, unit = text.replace(" ", "").partition("/")
        if not count.isdigit() or int(count) < 1 or unit not in UNITS:
            raise ValueError(f"patrol frequency must look like 1/week or 3/month, got {text!r}")
        return cls(int(count), unit)

    def __str__(self) -> str:
        return f"{self.count}/{self.unit}"


DEFAULT_FREQUENCIES: dict[str, Frequency] = {
    "county": Frequency(1, "month"), "town": Frequency(1, "dekad"),
    "village": Frequency(1, "week"), "grid": Frequency(1, "week"),
}


def frequencies_from_settings(settings: Any) -> dict[str, Frequency]:
    return {lvl: Frequency.parse(getattr(settings, f"patrol_frequency_{lvl}")) for lvl in DEFAULT_FREQUENCIES}


# --------------------------------------------------------------------------- calendar periods

def _period_start(unit: str, d: date) -> date:
    """First day of the period holding day ``d``."""
    if unit == "week":
        return d - timedelta(days=d.weekday())
    if unit == "dekad":
        return d.replace(day=1 if d.day <= 10 else 11 if d.day <= 20 else 21)
    if unit == "month":
        return d.replace(day=1)
    if unit == "quarter":
        return date(d.year, 3 * ((d.month - 1) // 3) + 1, 1)
    if unit == "year":
        return date(d.year, 1, 1)
    raise ValueError(f"unknown period unit {unit!r}")


def _next_period(unit: str, d: date) -> date:
    """First day of the period after the one starting on ``d``."""
    if unit == "week":
        return d + timedelta(days=7)
    if unit == "dekad":
        d = _period_start(unit, d)
        if d.day < 21:
            return d.replace(day=d.day + 10)
        return d.replace(day=calendar.monthrange(d.year, d.month)[1]) + timedelta(days=1)
    if unit in ("month", "quarter"):
        months = 1 if unit == "month" else 3
        m = d.month - 1 + months
        return date(d.year + m // 12, m % 12 + 1, 1)
    if unit == "year":
        return date(d.year + 1, 1, 1)
    raise ValueError(f"unknown period unit {unit!r}")


def _midnight(d: date, tz: tzinfo) -> datetime:
    return datetime.combine(d, time(), tzinfo=tz)


def full_periods(unit: str, start: datetime, end: datetime, tz: tzinfo) -> list[tuple[datetime, datetime]]:
    """The local calendar periods of ``unit`` lying entirely inside ``[start, end)``, as aware datetimes."""
    out: list[tuple[datetime, datetime]] = []
    d = _period_start(unit, start.astimezone(tz).date())
    if _midnight(d, tz) < start:
        d = _next_period(unit, d)
    while True:
        nxt = _next_period(unit, d)
        a, b = _midnight(d, tz), _midnight(nxt, tz)
        if b > end:
            return out
        out.append((a, b))
        d = nxt


def due_periods(unit: str, start: datetime, end: datetime, tz: tzinfo,
                as_of: datetime | None = None) -> list[tuple[datetime, datetime]]:
    """The local calendar periods of ``unit`` due in the report ``[start, end)``: those that end inside
    ``(start, end]`` and, with ``as_of``, by then. The first may begin before ``start`` (a straddling week)."""
    limit = end if as_of is None else min(end, as_of)
    out: list[tuple[datetime, datetime]] = []
    d = _period_start(unit, start.astimezone(tz).date())  # the period holding start: it ends after start
    while True:
        nxt = _next_period(unit, d)
        a, b = _midnight(d, tz), _midnight(nxt, tz)
        if b > limit:
            return out
        if b > start:
            out.append((a, b))
        d = nxt


def counting_start(start: datetime, end: datetime, tz: tzinfo, frequencies: Mapping[str, "Frequency"]) -> datetime:
    """The earliest moment whose patrols a report ``[start, end)`` needs: the start of its first due period."""
    firsts = [p[0][0] for f in frequencies.values() if (p := due_periods(f.unit, start, end, tz))]
    return min([start, *firsts])


# --------------------------------------------------------------------------- patrol compliance

@dataclass(slots=True)
class PeriodResult:
    start: datetime
    end: datetime
    valid: int  # valid patrols started in the period
    met: bool  # valid >= the level's N


@dataclass(slots=True)
class ChiefCompliance:
    chief_id: str
    name: str
    level: str
    town: str | None
    village: str | None
    frequency: str
    periods_due: int
    periods_met: int
    required: int  # N x periods due
    counted: int  # sum over due periods of min(valid in it, N)
    patrols: int  # finished patrols started in the report period
    valid: int  # valid patrols started in the report period
    rate: float | None  # counted / required
    periods: list[PeriodResult]


@dataclass(slots=True)
class Rollup:
    key: str | None
    chiefs: int
    required: int
    counted: int
    patrols: int
    valid: int
    rate: float | None  # sum counted / sum required
    compliant: int  # chiefs at rate 1
    mean_rate: float | None
    rank: int | None = None  # towns only: 1 = highest rate


@dataclass(slots=True)
class ComplianceReport:
    start: datetime
    end: datetime
    as_of: datetime | None
    frequencies: dict[str, str]
    periods_by_level: dict[str, list[tuple[datetime, datetime]]]
    chiefs: list[ChiefCompliance]
    by_town: list[Rollup]
    by_level: list[Rollup]
    total: Rollup

    @property
    def required_by_level(self) -> dict[str, int]:
        return {lvl: len(p) * Frequency.parse(self.frequencies[lvl]).count for lvl, p in self.periods_by_level.items()}


@dataclass(frozen=True, slots=True)
class PatrolStarts:
    """Finished patrols as columns: chief id, start (epoch seconds), valid. What compliance reads of patrols."""
    chief_ids: Sequence[str]
    started: np.ndarray  # float64 epoch seconds
    valid: np.ndarray  # bool

    @classmethod
    def of(cls, rows: Iterable[tuple[str, datetime, bool]]) -> "PatrolStarts":
        rows = list(rows)
        return cls([r[0] for r in rows], np.array([r[1].timestamp() for r in rows], dtype=float),
                   np.array([bool(r[2]) for r in rows], dtype=bool))


def _rollup(key: str | None, rows: Sequence[ChiefCompliance]) -> Rollup:
    req = np.array([r.required for r in rows], dtype=np.int64)
    cnt = np.array([r.counted for r in rows], dtype=np.int64)
    due = req > 0
    rates = cnt[due] / req[due] if due.any() else np.zeros(0)
    total_req = int(req.sum())
    return Rollup(key=key, chiefs=len(rows), required=total_req, counted=int(cnt.sum()),
                  patrols=int(sum(r.patrols for r in rows)), valid=int(sum(r.valid for r in rows)),
                  rate=round(float(cnt.sum() / total_req), 4) if total_req else None,
                  compliant=int(np.count_nonzero(rates >= 1.0)),
                  mean_rate=round(float(rates.mean()), 4) if len(rates) else None)


def rank_towns(rollups: list[Rollup]) -> None:
    """Rank 1 = the highest rate; equal rates share a rank (1, 2, 2, 4); no rate, no rank."""
    rated = sorted((r.rate for r in rollups if r.rate is not None), reverse=True)
    for r in rollups:
        r.rank = None if r.rate is None else 1 + sum(1 for x in rated if x > r.rate)


def build_compliance(chiefs: Iterable[Any], patrols: PatrolStarts, start: datetime, end: datetime,
                     tz: tzinfo, frequencies: Mapping[str, Frequency] = DEFAULT_FREQUENCIES,
                     as_of: datetime | None = None) -> ComplianceReport:
    """Pure: ``chiefs`` are rows/objects with id, name, level, town, village; ``patrols`` the finished patrols
    started from ``counting_start(...)`` to ``end``. ``as_of`` (now): a period not over by then is not due."""
    periods = {lvl: due_periods(f.unit, start, end, tz, as_of) for lvl, f in frequencies.items()}
    t0, t1 = start.timestamp(), end.timestamp()
    by_chief: dict[str, list[int]] = defaultdict(list)
    for k, cid in enumerate(patrols.chief_ids):
        by_chief[cid].append(k)
    bounds = {lvl: np.array([a.timestamp() for a, _ in p] + ([p[-1][1].timestamp()] if p else []))
              for lvl, p in periods.items()}
    rows: list[ChiefCompliance] = []
    for c in chiefs:
        level = c.level.value if hasattr(c.level, "value") else c.level
        idx = np.array(by_chief.get(c.id, ()), dtype=np.int64)
        started, valid = patrols.started[idx], patrols.valid[idx]
        inside = (started >= t0) & (started < t1)
        freq = frequencies.get(level)
        due = periods.get(level, [])
        per_period = np.zeros(len(due), dtype=np.int64)
        if due:
            b = bounds[level]
            k = np.searchsorted(b, started[valid], side="right") - 1
            k = k[(k >= 0) & (k < len(due))]
            per_period = np.bincount(k, minlength=len(due))
        n = freq.count if freq else 0
        required = n * len(due)
        counted = int(np.minimum(per_period, n).sum())
        results = [PeriodResult(a, b_, int(v), bool(v >= n)) for (a, b_), v in zip(due, per_period)]
        rows.append(ChiefCompliance(
            chief_id=c.id, name=c.name, level=level, town=c.town, village=c.village,
            frequency=str(freq) if freq else "", periods_due=len(due), periods_met=sum(r.met for r in results),
            required=required, counted=counted, patrols=int(np.count_nonzero(inside)),
            valid=int(np.count_nonzero(inside & valid)),
            rate=round(counted / required, 4) if required else None, periods=results))
    by_town: dict[str | None, list[ChiefCompliance]] = defaultdict(list)
    by_level: dict[str, list[ChiefCompliance]] = defaultdict(list)
    for r in rows:
        by_town[r.town].append(r)
        by_level[r.level].append(r)
    level_order = {lvl: i for i, lvl in enumerate(("county", "town", "village", "grid"))}
    towns = [_rollup(k, v) for k, v in sorted(by_town.items(), key=lambda kv: (kv[0] is not None, kv[0] or ""))]
    rank_towns([r for r in towns if r.key is not None])
    return ComplianceReport(
        start=start, end=end, as_of=as_of, frequencies={k: str(f) for k, f in frequencies.items()},
        periods_by_level=periods, chiefs=rows, by_town=towns,
        by_level=[_rollup(k, v) for k, v in sorted(by_level.items(), key=lambda kv: level_order.get(kv[0], 99))],
        total=_rollup(None, rows))


# --------------------------------------------------------------------------- issue statistics

@dataclass(slots=True)
class IssueStats:
    key: str | None
    found: int
    responded: int  # assigned within the response time
    closed: int
    closed_on_time: int
    open: int
    response_rate: float | None
    on_time_rate: float | None
    resolution_rate: float | None


def _epoch(values: Sequence[datetime | None]) -> np.ndarray:
    return np.array([np.nan if v is None else v.timestamp() for v in values], dtype=float)


def issue_stats(found_at: Sequence[datetime], first_assigned_at: Sequence[datetime | None],
                closed_at: Sequence[datetime | None], first_deadline: Sequence[datetime | None],
                response_h: float = 4.0, as_of: datetime | None = None, key: str | None = None) -> IssueStats:
    """Pure, vectorised over the columns of the issues found in the period (None = not yet)."""
    found = _epoch(found_at)
    assigned, closed, deadline = _epoch(first_assigned_at), _epoch(closed_at), _epoch(first_deadline)
    if as_of is not None:  # what was known at as_of
        t = as_of.timestamp()
        assigned[assigned > t] = np.nan
        closed[closed > t] = np.nan
    with np.errstate(invalid="ignore"):
        responded = int(np.count_nonzero(assigned - found <= response_h * 3600))
        is_closed = ~np.isnan(closed)
        on_time = int(np.count_nonzero(is_closed & (closed <= deadline)))
    n, n_closed = len(found), int(np.count_nonzero(is_closed))

    def ratio(a: int, b: int) -> float | None:
        return round(a / b, 4) if b else None

    return IssueStats(key=key, found=n, responded=responded, closed=n_closed, closed_on_time=on_time,
                      open=n - n_closed, response_rate=ratio(responded, n), on_time_rate=ratio(on_time, n_closed),
                      resolution_rate=ratio(n_closed, n))
