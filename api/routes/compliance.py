"""Patrol compliance per chief with roll-ups by town and level, and issue statistics, over a period.

The period is ``[from, to)``; by default the current calendar month in the display zone. Only calendar periods
lying wholly inside it count as due (core.patrols.compliance), so a month still running shows the weeks and
dekads already over.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Annotated
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Depends, Query

from api.auth import Principal, require
from api.errors import invalid
from api.params import TIME_HELP, parse_time
from api.patrol_schemas import ComplianceOut
from api.routes.patrol_scope import PatrolsDep, town_of
from core.auth import Role
from core.timeutil import utcnow

router = APIRouter(prefix="/compliance", tags=["compliance"])

COMPLIANCE_READERS = require(Role.admin, Role.supervisor, Role.duty, Role.viewer)
MAX_PERIOD = timedelta(days=731)  # two years: a year-on-year comparison, not an unbounded scan

From = Annotated[str | None, Query(alias="from", description=f"period start (default: this month's first day, "
                                                             f"local time); {TIME_HELP}")]
To = Annotated[str | None, Query(alias="to", description=f"period end, exclusive (default: next month's first day); "
                                                         f"{TIME_HELP}")]


def current_month(tz: ZoneInfo, now: datetime | None = None) -> tuple[datetime, datetime]:
    """The calendar month holding ``now`` in ``tz``: [first day 00:00, next month's first day 00:00)."""
    local = (now or utcnow()).astimezone(tz)
    start = datetime(local.year, local.month, 1, tzinfo=tz)
    end = datetime(local.year + local.month // 12, local.month % 12 + 1, 1, tzinfo=tz)
    return start, end


def period(start: str | None, end: str | None, tz: ZoneInfo) -> tuple[datetime, datetime]:
    """``from``/``to`` as aware datetimes (defaults: the current month, or a month from ``from``); 422 if wrong."""
    t0, t1 = parse_time("from", start), parse_time("to", end)
    if t0 is None and t1 is None:
        return current_month(tz)
    if t0 is None:
        assert t1 is not None
        t0 = current_month(tz, t1 - timedelta(microseconds=1))[0]
    if t1 is None:
        t1 = current_month(tz, t0)[1]
    if t1 <= t0:
        invalid("query", "to", f"to must be after from; got from {t0.isoformat()} to {t1.isoformat()}", end)
    if t1 - t0 > MAX_PERIOD:
        invalid("query", "to", f"the period may be at most {MAX_PERIOD.days} days long", end)
    return t0, t1


@router.get("", response_model=ComplianceOut, summary="Patrol compliance and issue statistics over a period",
            description="Per chief: required (N per whole calendar week/dekad/month… of their level inside the "
                        "period and already over), valid and finished patrols and the rate; roll-ups by town and level; issue "
                        "response, on-time and resolution rates. A town supervisor gets their town only.")
def get_compliance(repo: PatrolsDep, user: Annotated[Principal, Depends(COMPLIANCE_READERS)], start: From = None,
                   end: To = None) -> ComplianceOut:
    t0, t1 = period(start, end, repo.tz)
    town = town_of(user)
    report = repo.compliance(t0, t1, town=town)
    total, per_town = repo.issue_stats(t0, t1, town=town)
    return ComplianceOut.from_domain(report, town, total, per_town)
