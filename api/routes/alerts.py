"""Alerts from the registry; acknowledging one is the only write (duty staff, supervisors, admins)."""

from __future__ import annotations

import logging
from typing import Annotated

from fastapi import APIRouter, Body, Depends, Path, Query

from api.auth import ANY_ROLE, STAFF, Principal
from api.deps import RegistryDep
from api.errors import not_found
from api.schemas import AckIn, AlertDetail, AlertOut, ErrorOut
from core.domain import AlertState, Severity
from core.logs import kv
from core.registry import AlertNotFound

log = logging.getLogger("api")

router = APIRouter(prefix="/alerts", tags=["alerts"])

MAX_PAGE = 1000
# Ids are 64-bit integers in both registry back-ends; anything larger is a 422, not a driver overflow.
AlertId = Annotated[int, Path(ge=1, le=2**63 - 1, description="alert id")]


@router.get("", response_model=list[AlertOut], summary="List alerts, newest first", dependencies=[Depends(ANY_ROLE)])
def list_alerts(
    registry: RegistryDep,
    state: Annotated[AlertState | None, Query()] = None,
    severity: Annotated[Severity | None, Query(description="blue < yellow < orange < red")] = None,
    station_id: Annotated[str | None, Query(max_length=64)] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 100,
    offset: Annotated[int, Query(ge=0, le=2**31 - 1)] = 0,
) -> list[AlertOut]:
    alerts = registry.list_alerts(state=state.value if state else None, severity=severity.value if severity else None,
                                  station_id=station_id, limit=limit, offset=offset)
    return [AlertOut.from_domain(a) for a in alerts]


@router.get("/{alert_id}", response_model=AlertDetail, summary="One alert with its history",
            responses={404: {"model": ErrorOut}}, dependencies=[Depends(ANY_ROLE)])
def get_alert(alert_id: AlertId, registry: RegistryDep) -> AlertDetail:
    try:
        alert = registry.get_alert(alert_id)
    except AlertNotFound:
        not_found("alert", alert_id)
    return AlertDetail.from_domain_with_events(alert, registry.alert_events(alert_id))


@router.post("/{alert_id}/ack", response_model=AlertOut, summary="Acknowledge an alert",
             description="Marks the alert acknowledged (an active alert moves to `acknowledged`; a cleared one stays "
                         "cleared). Acknowledging again changes nothing and returns the alert as it is. "
                         "`acknowledged_by` is `by` when given (a person at a shared duty desk), else the signed-in "
                         "user's name; the account is logged either way.",
             responses={404: {"model": ErrorOut}})
def acknowledge_alert(
    alert_id: AlertId,
    registry: RegistryDep,
    user: Annotated[Principal, Depends(STAFF)],
    body: Annotated[AckIn | None, Body(description='optional {"by": "name"}; the signed-in user when omitted')] = None,
) -> AlertOut:
    by = body.by if body is not None and body.by else user.username
    try:
        alert = registry.acknowledge_alert(alert_id, by)
    except AlertNotFound:
        not_found("alert", alert_id)
    log.info("alert acknowledged", extra=kv(alert_id=alert_id, user=user.username, by=by,
                                             acknowledged_by=alert.acknowledged_by))
    return AlertOut.from_domain(alert)
