"""Server-sent alert notifications: a real Mosquitto, the API on a real port, an httpx streaming client."""

from __future__ import annotations

import asyncio
import json
import time
from datetime import datetime, timezone
from typing import Iterator

import httpx
import pytest

from alerts.notify import alert_payload
from api import ApiServer
from api.routes.stream import _events
from api.stream import AlertStream
from core.broker import free_port
from core.domain import Alert
from core.mqtt import Publisher, wait_for
from tests.auth_util import auth_headers

STREAM = "/api/v1/alerts/stream"
T0 = datetime(2026, 6, 28, 6, 5, tzinfo=timezone.utc)


def _payload(alert_id: int, severity: str, event: str = "raised") -> dict:
    alert = Alert(station_id="RS9001", kind="reservoir", rule="reservoir_level", metric="water_level_m",
                  severity=severity, state="active", started_at=T0, updated_at=T0, value=55.6, threshold=55.5,
                  message=f"RS9001 at 55.60 m, above the check flood level (55.50 m) — {severity}", id=alert_id)
    return alert_payload(alert, event)


class SseReader:
    """Reads one SSE response: comments and events, each read bounded by the client's read timeout."""

    def __init__(self, resp: httpx.Response) -> None:
        self.resp = resp
        self._lines: Iterator[str] = resp.iter_lines()

    def comment(self) -> str:
        line = next(self._lines)
        assert line.startswith(":"), line
        assert next(self._lines) == ""
        return line[1:].strip()

    def event(self, timeout: float = 10.0) -> tuple[str, dict]:
        """The next event (comments skipped) as (event name, parsed data)."""
        deadline = time.monotonic() + timeout
        name, data = None, []
        while time.monotonic() < deadline:
            line = next(self._lines)
            if line.startswith(":"):
                continue
            if line == "":
                if data:
                    return name or "message", json.loads("\n".join(data))
                continue
            field, _, value = line.partition(":")
            value = value.removeprefix(" ")
            if field == "event":
                name = value
            elif field == "data":
                data.append(value)
        raise AssertionError(f"no event within {timeout} s")


@pytest.fixture()
def server(settings, registry, store):
    with ApiServer(settings, registry=registry, store=store, host="127.0.0.1", port=free_port()) as srv:
        assert srv.alert_stream is not None
        assert srv.alert_stream.subscribed.wait(10), "the API's alert stream did not subscribe"
        yield srv


@pytest.fixture()
def publisher(settings):
    pub = Publisher(settings, f"{settings.mqtt_client_prefix}-test-pub").start()
    yield pub
    pub.stop()


def _publish(pub: Publisher, payload: dict | bytes, severity: str | None = None) -> None:
    body = payload if isinstance(payload, bytes) else json.dumps(payload, ensure_ascii=False).encode()
    topic = f"water/alerts/{severity or payload['severity']}"  # type: ignore[index]
    assert pub.wait_all_published([pub.publish(topic, body, qos=1)], timeout=10)


@pytest.fixture()
def http(settings, registry):
    # Every stream needs a token (tests/test_auth.py); settings copies in these tests share the data_dir's secret.
    with httpx.Client(timeout=httpx.Timeout(10.0), headers=auth_headers(settings, registry)) as c:
        yield c


def test_sse_client_receives_published_alert(server, publisher, http):
    with http.stream("GET", server.url + STREAM) as resp:
        assert resp.status_code == 200
        assert resp.headers["content-type"].startswith("text/event-stream")
        assert resp.headers["cache-control"] == "no-cache"
        sse = SseReader(resp)
        assert sse.comment() == "connected"  # from here on the client is registered
        red = _payload(41, "red")
        _publish(publisher, red)
        assert sse.event() == ("alert", red)
        cleared = _payload(41, "red", event="cleared")
        _publish(publisher, cleared)
        assert sse.event() == ("alert", cleared)
    assert server.alert_stream.received == 2


def test_severity_filter(server, publisher, http):
    with http.stream("GET", server.url + STREAM, params={"severity": "red"}) as only_red, \
            http.stream("GET", server.url + STREAM, params=[("severity", "orange"), ("severity", "red")]) as both, \
            http.stream("GET", server.url + STREAM) as every:
        readers = [SseReader(r) for r in (only_red, both, every)]
        for r in readers:
            assert r.comment() == "connected"
        blue, orange, red = _payload(1, "blue"), _payload(2, "orange"), _payload(3, "red")
        for p in (blue, orange, red):
            _publish(publisher, p)
        # Published in order over one connection, so they arrive in order: what comes first proves the skips.
        assert readers[0].event() == ("alert", red)
        assert [readers[1].event()[1]["id"] for _ in range(2)] == [2, 3]
        assert [readers[2].event()[1]["id"] for _ in range(3)] == [1, 2, 3]


def test_bad_severity_is_422(server, http):
    resp = http.get(server.url + STREAM, params={"severity": "purple"})
    assert resp.status_code == 422 and "query parameter 'severity" in resp.json()["detail"]


def test_invalid_payload_is_skipped(server, publisher, http):
    with http.stream("GET", server.url + STREAM) as resp:
        sse = SseReader(resp)
        assert sse.comment() == "connected"
        _publish(publisher, b"\xff not json", severity="red")
        _publish(publisher, b"[1, 2]", severity="red")
        ok = _payload(7, "yellow")
        _publish(publisher, ok)
        assert sse.event() == ("alert", ok)
    assert server.alert_stream.invalid == 2


def test_disconnect_frees_the_client_queue(server, http):
    stream = server.alert_stream
    with http.stream("GET", server.url + STREAM) as resp:
        first = SseReader(resp)  # kept: a collected line iterator closes its connection
        assert first.comment() == "connected"
        with http.stream("GET", server.url + STREAM) as second:
            other = SseReader(second)
            assert other.comment() == "connected"
            assert stream.client_count == 2
        assert wait_for(lambda: stream.client_count == 1, 5), stream.client_count
    assert wait_for(lambda: stream.client_count == 0, 5), stream.client_count


def test_client_limit_is_503(server, http):
    server.alert_stream.max_clients = 1
    with http.stream("GET", server.url + STREAM) as resp:
        sse = SseReader(resp)
        assert sse.comment() == "connected"
        refused = http.get(server.url + STREAM)
        assert refused.status_code == 503 and refused.headers["retry-after"] == "30"
        assert "too many" in refused.json()["detail"]


def test_one_user_cannot_take_every_slot_and_staff_keep_theirs(server, settings, registry):
    from contextlib import ExitStack

    from core.auth import Role

    stream = server.alert_stream
    stream.max_clients, stream.reserved_staff, stream.max_per_user = 6, 2, 2
    chief = auth_headers(settings, registry, "chief.a", Role.chief)
    viewers = [auth_headers(settings, registry, f"viewer{i}", Role.viewer) for i in range(3)]
    duty = auth_headers(settings, registry, "duty1", Role.duty)

    readers: list[SseReader] = []

    def open_stream(stack: ExitStack, headers: dict[str, str]) -> int:
        client = stack.enter_context(httpx.Client(timeout=httpx.Timeout(10.0), headers=headers))
        resp = stack.enter_context(client.stream("GET", server.url + STREAM))
        if resp.status_code == 200:
            reader = SseReader(resp)
            readers.append(reader)  # kept: a collected line iterator closes its connection
            assert reader.comment() == "connected"
        else:
            resp.read()
        return resp.status_code

    with ExitStack() as stack:
        assert [open_stream(stack, chief) for _ in range(2)] == [200, 200]
        third = open_stream(stack, chief)
        assert third == 429  # one chief's token: at most max_per_user streams
        assert [open_stream(stack, v) for v in viewers[:2]] == [200, 200]  # 4 open: the last 2 kept for staff
        assert open_stream(stack, viewers[2]) == 503
        assert [open_stream(stack, duty) for _ in range(2)] == [200, 200]  # duty staff still get in
        assert stream.client_count == 6
        stream.max_per_address = 6
        assert open_stream(stack, duty) in (429, 503)


def test_per_address_cap(server, http):
    server.alert_stream.max_per_address, server.alert_stream.max_per_user = 1, 10
    with http.stream("GET", server.url + STREAM) as resp:
        sse = SseReader(resp)  # kept: a collected line iterator closes its connection
        assert sse.comment() == "connected"
        refused = http.get(server.url + STREAM)
        assert refused.status_code == 429 and "address" in refused.json()["detail"]


def test_keepalive_comment(server, http):
    server.alert_stream.keepalive_s = 0.1  # 15 s in service; read on every wait
    with http.stream("GET", server.url + STREAM) as resp:
        sse = SseReader(resp)
        assert sse.comment() == "connected"
        assert sse.comment() == "keepalive"


def test_stop_ends_open_streams_promptly(settings, registry, store, http):
    srv = ApiServer(settings, registry=registry, store=store, host="127.0.0.1", port=free_port())
    srv.start()
    try:
        with http.stream("GET", srv.url + STREAM) as resp:
            sse = SseReader(resp)
            assert sse.comment() == "connected"
            t = time.monotonic()
            srv.stop()
            assert time.monotonic() - t < 3  # not uvicorn's 5 s graceful-shutdown timeout
            assert list(sse._lines) == []  # the stream ended cleanly
    finally:
        srv.stop()


def test_api_starts_without_a_broker(settings, registry, store, http):
    nowhere = settings.model_copy(update={"mqtt_url": f"mqtt://127.0.0.1:{free_port()}"})
    t = time.monotonic()
    with ApiServer(nowhere, registry=registry, store=store, host="127.0.0.1", port=free_port()) as srv:
        assert http.get(srv.url + "/healthz").status_code == 200
        assert srv.alert_stream is not None and not srv.alert_stream.connected.is_set()
        with http.stream("GET", srv.url + STREAM) as resp:
            sse = SseReader(resp)
            assert resp.status_code == 200 and sse.comment() == "connected"
    assert time.monotonic() - t < 5


def test_stream_reconnects_after_broker_restart(own_settings, own_broker, registry, store, http):
    with ApiServer(own_settings, registry=registry, store=store, host="127.0.0.1", port=free_port()) as srv:
        stream = srv.alert_stream
        assert stream.subscribed.wait(10)
        with http.stream("GET", srv.url + STREAM) as resp:
            sse = SseReader(resp)
            assert sse.comment() == "connected"
            own_broker.restart()  # the broker loses the non-persistent subscription
            assert wait_for(lambda: stream.subscribed.is_set(), 15), "did not resubscribe after the restart"
            pub = Publisher(own_settings, f"{own_settings.mqtt_client_prefix}-test-pub2").start()
            try:
                after = _payload(9, "orange")
                _publish(pub, after)
                assert sse.event(timeout=15) == ("alert", after)
            finally:
                pub.stop()


def test_slow_client_drops_oldest_and_is_told(settings):
    """The queue bound, without a network: the fan-out and the SSE generator on one event loop."""
    stream = AlertStream(settings, queue_size=3)

    async def scenario() -> None:
        stream._loop = asyncio.get_running_loop()
        gen = _events(stream, ["red"])
        assert await gen.__anext__() == ": connected\n\n"
        assert stream.client_count == 1
        for i in range(1, 6):
            stream._fan_out("red", json.dumps({"id": i}))
        stream._fan_out("blue", json.dumps({"id": 99}))  # filtered out: neither queued nor counted
        assert stream.dropped == 2
        assert await gen.__anext__() == 'event: overflow\ndata: {"dropped": 2}\n\n'
        assert await gen.__anext__() == 'event: alert\ndata: {"id": 3}\n\n'
        assert await gen.__anext__() == 'event: alert\ndata: {"id": 4}\n\n'
        assert await gen.__anext__() == 'event: alert\ndata: {"id": 5}\n\n'
        await gen.aclose()
        assert stream.client_count == 0

    asyncio.run(scenario())
