"""Dead letters: input that ingest could not decode or validate, kept with its raw payload."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query

from api.auth import STAFF
from api.deps import RegistryDep
from api.errors import invalid
from api.params import TIME_HELP, parse_time
from api.schemas import DeadLetterOut

router = APIRouter(prefix="/dead-letters", tags=["dead letters"], dependencies=[Depends(STAFF)])

MAX_PAGE = 1000


@router.get("", response_model=list[DeadLetterOut], summary="List dead letters, newest first",
            description="The payload is shown as UTF-8 text when it decodes, else as base64 "
                        "(`payload_encoding` says which).")
def list_dead_letters(
    registry: RegistryDep,
    reason: Annotated[str | None, Query(max_length=64)] = None,
    start: Annotated[str | None, Query(max_length=64, description=f"received at or after; {TIME_HELP}")] = None,
    end: Annotated[str | None, Query(max_length=64, description=f"received before; {TIME_HELP}")] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 100,
    offset: Annotated[int, Query(ge=0, le=2**31 - 1)] = 0,
) -> list[DeadLetterOut]:
    start_ts, end_ts = parse_time("start", start), parse_time("end", end)
    if start_ts is not None and end_ts is not None and start_ts >= end_ts:
        invalid("query", "start", f"start ({start_ts.isoformat()}) must be before end ({end_ts.isoformat()})", start)
    letters = registry.list_dead_letters(reason=reason, start=start_ts, end=end_ts, limit=limit, offset=offset)
    return [DeadLetterOut.from_domain(d) for d in letters]
