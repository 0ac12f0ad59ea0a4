"""Patrol compliance per chief with roll-ups by town and level, and issue statistics, over a period.

The period is ``[from, to)``, or ``month=YYYY-MM``; by default the last complete calendar month in the display
zone (on 1 December: November), so the figures people see are final. A period is due in the report in which it
ends (core.patrols.compliance), and not before it is over.
"""

from __future__ import annotations

import re
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
from core.timeutil import last_complete_month, month_bounds, month_of

router = APIRouter(prefix="/compliance", tags=["compliance"])

COMPLIANCE_READERS = require(Role.admin, Role.supervisor, Role.duty, Role.viewer)
MAX_PERIOD = timedelta(days=731)  # two years: a year-on-year comparison, not an unbounded scan
_MONTH = re.compile(r"(\d{4})-(\d{2})")

From = Annotated[str | None, Query(alias="from", description=f"period start (default: the first day of the last "
                                                             f"complete month, local time); {TIME_HELP}")]
To = Annotated[str | None, Query(alias="to", description=f"period end, exclusive (default: a month after from); "
                                                         f"{TIME_HELP}")]
Month = Annotated[str | None, Query(max_length=7, description="a calendar month, YYYY-MM (local time); instead of "
                                                              "from/to", examples=["2026-11"])]


def period(start: str | None, end: str | None, tz: ZoneInfo, now: datetime,
           month: str | None = None) -> tuple[datetime, datetime]:
    """``month`` or ``from``/``to`` as aware datetimes; default the last complete month at ``now``; 422 if wrong."""
    if month is not None:
        if start is not None or end is not None:
            invalid("query", "month", "give either month or from/to, not both", month)
        m = _MONTH.fullmatch(month)
        if not m or not 1 <= int(m.group(2)) <= 12 or not 2000 <= int(m.group(1)) <= 9998:
            invalid("query", "month", f"month must look like 2026-11 (YYYY-MM, 2000 or later); got {month!r}",
                    month)
        assert m is not None
        return month_bounds(int(m.group(1)), int(m.group(2)), tz)
    t0, t1 = parse_time("from", start), parse_time("to", end)
    if t0 is None and t1 is None:
        return last_complete_month(now, tz)
    if t0 is None:
        assert t1 is not None
        t0 = month_of(t1 - timedelta(microseconds=1), tz)[0]
    if t1 is None:
        t1 = month_of(t0, tz)[1]
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
                   end: To = None, month: Month = None,
                   chief_id: Annotated[str | None, Query(max_length=64, description="only this chief")] = None,
                   ) -> ComplianceOut:
    t0, t1 = period(start, end, repo.tz, repo.clock.now(), month)
    town = town_of(user)
    report = repo.compliance(t0, t1, town=town)
    total, per_town = repo.issue_stats(t0, t1, town=town)
    out = ComplianceOut.from_domain(report, town, total, per_town, repo.tz)
    if chief_id is not None:
        out.chiefs = [c for c in out.chiefs if c.chief_id == chief_id]
    return out
