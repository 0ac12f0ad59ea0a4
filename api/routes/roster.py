"""The duty roster: who is on duty when, for which town and station kind, and in which escalation order."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Annotated

from fastapi import APIRouter, Body, Depends, HTTPException, Path, Query, Response
from pydantic import ValidationError

from api.auth import MANAGERS, STAFF, Principal
from api.deps import RegistryDep
from api.errors import domain_invalid, echo, invalid, not_found
from api.params import MAX_TIME, MIN_TIME, TIME_HELP, parse_time
from api.schemas import DutyShiftIn, DutyShiftOut, ErrorOut
from core.domain import DutyShift, Kind
from core.timeutil import utcnow

router = APIRouter(prefix="/duty-roster", tags=["duty roster"])

UTC = timezone.utc
# 32-bit: duty_roster.id is INTEGER, and PostgreSQL refuses a larger number in the query itself.
ShiftId = Annotated[int, Path(ge=1, le=2**31 - 1, description="shift id")]
_SHIFT_FIELDS = tuple(n for n in DutyShift.model_fields if n != "id")
# The roster holds e-mail addresses and phone numbers: duty staff and up read it, supervisors and admins change it;
# a town's supervisor only their town's shifts (not district-wide or fallback ones, not another town's).
_READ = [Depends(STAFF)]
Manager = Annotated[Principal, Depends(MANAGERS)]


def _check_town(user: Principal, shift: DutyShift, verb: str) -> None:
    if user.district_wide:
        return
    if shift.town != user.town or shift.fallback:
        whose = f"town {shift.town}" if shift.town else "the whole district"
        if shift.fallback:
            whose = "the district's fallback"
        raise HTTPException(status_code=403, detail=f"forbidden: a supervisor of {user.town} may {verb} only "
                                                    f"{user.town}'s shifts, not one for {whose}")


def _utc(name: str, ts: datetime) -> datetime:
    """A shift boundary as aware UTC: the registry compares stored times as UTC (SQLite keeps no offset)."""
    if ts.tzinfo is None:
        invalid("body", name, f"{name} has no UTC offset; use {TIME_HELP}; got {echo(ts.isoformat())}",
                ts.isoformat())
    try:
        out = ts.astimezone(UTC)
    except OverflowError:
        out = MIN_TIME - timedelta(days=1)  # reported just below
    if not MIN_TIME <= out < MAX_TIME:
        invalid("body", name, f"{name} must be between {MIN_TIME.year} and {MAX_TIME.year - 1}; "
                f"got {echo(ts.isoformat())}", ts.isoformat())
    return out


@router.get("", response_model=list[DutyShiftOut], summary="List shifts, by start time then rank",
            description=f"All shifts, or with `at` ({TIME_HELP}) only those on duty at that time.", dependencies=_READ)
def list_shifts(
    registry: RegistryDep,
    at: Annotated[str | None, Query(max_length=64, description=f"on duty at this time; {TIME_HELP}")] = None,
) -> list[DutyShiftOut]:
    return [DutyShiftOut.from_domain(s) for s in registry.list_shifts(parse_time("at", at))]


@router.get("/on-duty", response_model=list[DutyShiftOut], summary="Who to notify, in escalation order",
            description="The shifts on duty at `at` (default now) for an alert in `town` at a station of `kind`: "
                        "the matching shifts by rank, the more specific (town and kind) first at equal rank; the "
                        "fallback shifts when none matches.", dependencies=_READ)
def on_duty(
    registry: RegistryDep,
    at: Annotated[str | None, Query(max_length=64, description=f"default now; {TIME_HELP}")] = None,
    town: Annotated[str | None, Query(max_length=100, description="the alert's town")] = None,
    kind: Annotated[Kind | None, Query(description="the alert's station kind")] = None,
) -> list[DutyShiftOut]:
    when = parse_time("at", at) or utcnow()
    return [DutyShiftOut.from_domain(s) for s in registry.on_duty(when, town, kind.value if kind else None)]


@router.post("", response_model=DutyShiftOut, status_code=201, summary="Add a shift",
             description="A supervisor with a town adds shifts for that town only (403 otherwise).")
def add_shift(body: Annotated[DutyShiftIn, Body()], registry: RegistryDep,  # type: ignore[valid-type]
              user: Manager) -> DutyShiftOut:
    data = body.model_dump(exclude_unset=True)  # type: ignore[attr-defined]
    for name in ("starts_at", "ends_at"):
        data[name] = _utc(name, data[name])
    try:
        shift = DutyShift.model_validate(data)
    except ValidationError as exc:
        domain_invalid(exc, "body", _SHIFT_FIELDS)
    _check_town(user, shift, "add")
    return DutyShiftOut.from_domain(registry.add_shift(shift))


@router.delete("/{shift_id}", status_code=204, response_class=Response, summary="Remove a shift",
               description="A supervisor with a town removes that town's shifts only (403 otherwise).",
               responses={404: {"model": ErrorOut, "description": "no shift with this id"}})
def delete_shift(shift_id: ShiftId, registry: RegistryDep, user: Manager) -> Response:
    shift = registry.get_shift(shift_id)
    if shift is None:
        not_found("shift", shift_id)
    _check_town(user, shift, "remove")
    if not registry.delete_shift(shift_id):
        not_found("shift", shift_id)
    return Response(status_code=204)
