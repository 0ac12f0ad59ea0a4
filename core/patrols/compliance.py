"""Patrol compliance and issue statistics (docs/domain.md, "River chiefs": patrol frequency, deadlines).

Patrol compliance of a chief over a period ``[start, end)``:

- The minimum frequency of the chief's level is ``N/unit`` (settings ``patrol_frequency_<level>``), unit one
  of ``week`` (Monday 00:00 to Monday 00:00), ``dekad`` (旬: days 1–10, 11–20, 21–end of month), ``month``,
  ``quarter``, ``year``, all calendar periods in local time (settings ``display_timezone``).
- ``required`` = N × the number of those periods lying *entirely* inside ``[start, end)``. A period cut by
  either end is not required (one still running is not yet due), so June 2026 requires 4 weeks of a village
  chief (8–14, 15–21, 22–28 June and 1–7 June since 1 June 2026 is a Monday; 29 June–5 July is cut), 3 dekads
  of a town chief and 1 month of a county chief.
- ``valid`` = the chief's finished patrols with ``valid`` true that *started* in ``[start, end)``;
  ``patrols`` = all finished ones.
- ``rate`` = min(1, valid / required); None when nothing is required (period shorter than one unit).

Roll-ups (by town, by level): ``required`` and ``valid`` are sums; ``rate`` = Σ min(valid, required) ÷
Σ required, so one chief's extra patrols do not hide another's missing ones; ``compliant`` counts chiefs at
rate 1 and ``mean_rate`` averages the chiefs' rates (chiefs with nothing required are left out of both).

Issue statistics over the issues *found* in ``[start, end)``, as of a time (default: now):

- response rate = issues assigned within ``issue_response_h`` (4 h) of being found ÷ issues found;
- on-time rate = issues closed no later than their *first* deadline ÷ issues closed (a failed review
  renews the working deadline, but does not make a late closure punctual);
- resolution rate = issues closed ÷ issues found.
"""

from __future__ import annotations

import calendar
from collections import defaultdict
from dataclasses import asdict, dataclass
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


def required_patrols(freq: Frequency, start: datetime, end: datetime, tz: tzinfo) -> int:
    return freq.count * len(full_periods(freq.unit, start, end, tz))


# --------------------------------------------------------------------------- patrol compliance

@dataclass(slots=True)
class ChiefCompliance:
    chief_id: str
    name: str
    level: str
    town: str | None
    village: str | None
    frequency: str
    required: int
    patrols: int  # finished patrols started in the period
    valid: int
    rate: float | None


@dataclass(slots=True)
class Rollup:
    key: str | None
    chiefs: int
    required: int
    patrols: int
    valid: int
    rate: float | None  # Σ min(valid, required) / Σ required
    compliant: int  # chiefs at rate 1
    mean_rate: float | None


@dataclass(slots=True)
class ComplianceReport:
    start: datetime
    end: datetime
    frequencies: dict[str, str]
    required_by_level: dict[str, int]
    chiefs: list[ChiefCompliance]
    by_town: list[Rollup]
    by_level: list[Rollup]
    total: Rollup

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _rollup(key: str | None, rows: Sequence[ChiefCompliance]) -> Rollup:
    req = np.array([r.required for r in rows], dtype=np.int64)
    val = np.array([r.valid for r in rows], dtype=np.int64)
    due = req > 0
    rates = np.minimum(val[due], req[due]) / req[due] if due.any() else np.zeros(0)
    total_req = int(req.sum())
    return Rollup(key=key, chiefs=len(rows), required=total_req, patrols=int(sum(r.patrols for r in rows)),
                  valid=int(val.sum()),
                  rate=round(float(np.minimum(val, req).sum() / total_req), 4) if total_req else None,
                  compliant=int(np.count_nonzero(rates >= 1.0)),
                  mean_rate=round(float(rates.mean()), 4) if len(rates) else None)


def build_compliance(chiefs: Iterable[Any], counts: Mapping[str, tuple[int, int]], start: datetime, end: datetime,
                     tz: tzinfo, frequencies: Mapping[str, Frequency] = DEFAULT_FREQUENCIES,
                     as_of: datetime | None = None) -> ComplianceReport:
    """Pure: ``chiefs`` are rows/objects with id, name, level, town, village; ``counts`` maps a chief id to
    (finished patrols, valid patrols) started in ``[start, end)``. ``as_of`` (now): only the periods that have
    ended by then are due, so in the middle of a month nobody is marked down for the weeks still to come."""
    due_end = end if as_of is None else max(start, min(end, as_of))
    required = {lvl: required_patrols(f, start, due_end, tz) for lvl, f in frequencies.items()}
    rows: list[ChiefCompliance] = []
    for c in chiefs:
        level = c.level.value if hasattr(c.level, "value") else c.level
        n, v = counts.get(c.id, (0, 0))
        req = required.get(level, 0)
        rows.append(ChiefCompliance(chief_id=c.id, name=c.name, level=level, town=c.town, village=c.village,
                                    frequency=str(frequencies[level]) if level in frequencies else "",
                                    required=req, patrols=int(n), valid=int(v),
                                    rate=round(min(1.0, v / req), 4) if req else None))
    by_town: dict[str | None, list[ChiefCompliance]] = defaultdict(list)
    by_level: dict[str, list[ChiefCompliance]] = defaultdict(list)
    for r in rows:
        by_town[r.town].append(r)
        by_level[r.level].append(r)
    level_order = {lvl: i for i, lvl in enumerate(("county", "town", "village", "grid"))}
    return ComplianceReport(
        start=start, end=end, frequencies={k: str(f) for k, f in frequencies.items()}, required_by_level=required,
        chiefs=rows,
        by_town=[_rollup(k, v) for k, v in sorted(by_town.items(), key=lambda kv: (kv[0] is not None, kv[0] or ""))],
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
