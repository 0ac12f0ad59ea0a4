"""Server-sent events: alert notifications as they are published, fed from MQTT by ``api.stream.AlertStream``."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Annotated, AsyncIterator, Callable

import anyio
from fastapi import APIRouter, Depends, HTTPException, Query, Request, Response
from fastapi.responses import StreamingResponse
from starlette.types import Receive, Scope, Send

from api.auth import ANY_ROLE_STREAM, Principal, client_of, get_auth
from api.schemas import ErrorOut
from api.stream import AlertStream, StreamClient
from core.auth import Role
from core.domain import Severity

router = APIRouter(prefix="/alerts", tags=["alerts"])

_STREAM_DOC = """
A `text/event-stream` of alert notifications, the same JSON the alerts service publishes to MQTT
`water/alerts/{severity}`:

```
event: alert
data: {"event": "raised", "id": 17, "station_id": "RS0001", "severity": "red", "state": "active", ...}

```

* `event` in the data is `raised`, `escalated`, `cleared`, ... (what happened to the alert).
* A `: keepalive` comment every 15 s keeps proxies from closing an idle stream.
* `severity` (repeatable: `?severity=orange&severity=red`) keeps only those severities.
* Notifications are live only: nothing is replayed on reconnect; fetch `GET /api/v1/alerts` for the state.
* A client that reads too slowly loses the oldest queued notifications; it is then sent
  `event: overflow` with `data: {"dropped": N}` (the total lost so far) — refetch the alert list.
* Limits: `SMARTWATER_STREAM_MAX_PER_USER` streams per user and `SMARTWATER_STREAM_MAX_PER_ADDRESS` per client
  address (429 beyond), `SMARTWATER_STREAM_MAX_CLIENTS` in all, of which the last
  `SMARTWATER_STREAM_RESERVED_STAFF` only for admins, supervisors and duty officers (503 beyond).
* Needs a token like every endpoint; since a browser's `EventSource` cannot send headers, `?access_token=<token>`
  is accepted here as well. When the token expires (or the account is disabled) the server sends `event: expired`
  (`data: {"reason": "token expired"}`) and ends the stream: log in again and reconnect with the new token.
"""


class EventStreamResponse(StreamingResponse):
    """A streaming response that always watches for the client going away, and always closes its generator.

    Starlette only watches for ``http.disconnect`` on ASGI servers older than spec 2.4, and leaves the generator
    to the garbage collector when a send fails; an SSE stream idles for long stretches, so it needs both.
    """

    media_type = "text/event-stream"

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            async with anyio.create_task_group() as tg:
                async def _stream() -> None:
                    try:
                        await self.stream_response(send)
                    except OSError:  # the client went away mid-send
                        pass
                    tg.cancel_scope.cancel()

                tg.start_soon(_stream)
                await self.listen_for_disconnect(receive)
                tg.cancel_scope.cancel()
        finally:
            aclose = getattr(self.body_iterator, "aclose", None)
            if aclose is not None:
                with anyio.CancelScope(shield=True):  # unregisters the client even when the task is cancelled
                    await aclose()


ACCOUNT_CHECK_S = 60.0
# The roles that act on alerts: they may use the slots kept free of chiefs' and viewers' dashboards.
STAFF_ROLES = frozenset({Role.admin, Role.supervisor, Role.duty})  # how often an open stream checks that its user is still active


async def _events(stream: AlertStream, severities: list[str] | None, expires_at: float | None = None,
                  still_allowed: Callable[[], bool] | None = None, user: str | None = None,
                  address: str | None = None, staff: bool = True) -> AsyncIterator[str]:
    """``expires_at``: the token's expiry (epoch seconds); ``still_allowed``: is the account still active (run in a
    thread about every ACCOUNT_CHECK_S). When either fails the stream ends with ``event: expired``.
    ``user``, ``address``, ``staff``: whose slot this is (``AlertStream.refusal``)."""
    # Checked again here, where the slot is taken: streams opened together all passed the endpoint's check.
    refused = stream.refusal(user, address, staff)
    if refused is not None:
        yield f"event: refused\ndata: {json.dumps({'reason': refused[1]})}\n\n"
        return
    # The client is registered here, not in the endpoint: a generator that never starts never runs its finally.
    client: StreamClient = stream.open_client(severities, user=user, address=address)
    getter: asyncio.Future[str | None] | None = None
    reported_drops = 0
    checked = time.monotonic()
    try:
        yield ": connected\n\n"
        while True:
            if getter is None:
                getter = asyncio.ensure_future(client.queue.get())
            timeout = stream.keepalive_s
            if expires_at is not None:
                left = expires_at - time.time()
                if left <= 0:
                    yield f"event: expired\ndata: {json.dumps({'reason': 'token expired'})}\n\n"
                    return
                timeout = min(timeout, left)
            if still_allowed is not None and time.monotonic() - checked >= ACCOUNT_CHECK_S:
                checked = time.monotonic()
                if not await asyncio.to_thread(still_allowed):
                    yield f"event: expired\ndata: {json.dumps({'reason': 'account disabled'})}\n\n"
                    return
            # asyncio.wait (not wait_for) so a timeout never cancels a get that already took an item.
            done, _ = await asyncio.wait({getter}, timeout=timeout)
            if not done:
                if expires_at is None or expires_at > time.time():
                    yield ": keepalive\n\n"
                continue
            item, getter = getter.result(), None
            if item is None:  # the server is shutting down
                return
            if client.dropped > reported_drops:
                reported_drops = client.dropped
                yield f"event: overflow\ndata: {json.dumps({'dropped': reported_drops})}\n\n"
            client.delivered += 1
            yield f"event: alert\ndata: {item}\n\n"
    finally:
        if getter is not None:
            getter.cancel()
        stream.close_client(client)


# response_class=Response (no media type): OpenAPI then lists the 200 as text/event-stream only and the errors as
# JSON; with EventStreamResponse it would list the JSON errors as text/event-stream too.
@router.get("/stream", summary="Live alert notifications (server-sent events)", description=_STREAM_DOC,
            response_model=None, response_class=Response,
            responses={200: {"content": {"text/event-stream": {"schema": {"type": "string"}}},
                             "description": "an endless event stream"},
                       429: {"model": ErrorOut,
                             "description": "this user or address has too many open streams"},
                       503: {"model": ErrorOut,
                             "description": "the alert stream is not enabled on this server, or has too many clients"}})
async def alert_stream(
    request: Request,
    user: Annotated[Principal, Depends(ANY_ROLE_STREAM)],
    severity: Annotated[list[Severity] | None, Query(description="only these severities (repeatable)")] = None,
) -> EventStreamResponse:
    stream: AlertStream | None = getattr(request.app.state, "alert_stream", None)
    if stream is None:
        raise HTTPException(status_code=503, detail="the alert stream is not enabled on this server")
    # Each client holds a queue and a connection: bound both, per user, per address and in all.
    address = client_of(request)[0]
    staff = user.role in STAFF_ROLES
    refused = stream.refusal(str(user.user_id), address, staff)
    if refused is not None:
        raise HTTPException(status_code=refused[0], detail=refused[1], headers={"Retry-After": "30"})
    severities = [s.value for s in severity] if severity else None
    headers = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}  # no buffering in nginx and friends
    auth = get_auth(request)

    def still_allowed() -> bool:
        try:
            account = auth.user(user.username)
        except Exception:  # the registry is unreachable: keep serving, check again later
            return True
        return account is not None and account.active

    return EventStreamResponse(_events(stream, severities, expires_at=float(user.token.exp),
                                       still_allowed=still_allowed, user=str(user.user_id), address=address,
                                       staff=staff), headers=headers)
