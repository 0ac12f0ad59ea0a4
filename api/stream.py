"""Live alert notifications for server-sent events, fed from MQTT.

The API may run apart from the alerts process, so it does not hear about alerts in-process: ``AlertStream``
subscribes to ``water/alerts/#`` (where ``alerts.notify`` publishes ``alert_payload`` JSON) with a
non-persistent session and fans every notification out to the connected SSE clients.

Threads: the MQTT client runs on its own thread; each message is handed to the event loop with
``loop.call_soon_threadsafe`` and fanned out there, so the client set and the queues are only ever touched on
the loop. Each client has a bounded queue; when a slow client lets it fill up the oldest notification is dropped
and counted (the client is told how many with an ``overflow`` event).

The network loop is driven here (``client.loop`` with a short timeout and our own reconnect back-off) rather
than by paho's ``loop_start``: paho's reconnect wait sleeps in one-second steps, which would hold up every
shutdown while the broker is unreachable; this one stops within a fraction of a second.
"""

from __future__ import annotations

import asyncio
import json
import logging
import secrets
import threading
from dataclasses import dataclass, field
from typing import Any, Iterable

import paho.mqtt.client as mqtt

from core import topics
from core.domain import SEVERITY_ORDER
from core.logs import kv
from core.mqtt import MqttConsumer, connect_kwargs
from core.settings import Settings

log = logging.getLogger("api.stream")

ALERTS_TOPIC = topics.ALERTS
DEFAULT_QUEUE_SIZE = 256
KEEPALIVE_S = 15.0
_LOOP_TIMEOUT_S = 0.1
_RECONNECT_MIN_S = 0.5
_RECONNECT_MAX_S = 30.0


@dataclass(eq=False)
class StreamClient:
    """One connected SSE client: its filter and its bounded queue (items are JSON text; None ends the stream)."""

    severities: frozenset[str] | None
    queue: asyncio.Queue[str | None]
    user: str | None = None  # who holds the slot, for the per-user cap
    address: str | None = None  # from where, for the per-address cap
    dropped: int = 0
    delivered: int = 0
    closed: bool = field(default=False)

    def accepts(self, severity: str | None) -> bool:
        return self.severities is None or severity in self.severities

    def put(self, item: str | None) -> bool:
        """Queue an item, dropping the oldest one when full; True when something was dropped."""
        dropped = False
        if self.queue.full():
            try:
                self.queue.get_nowait()
                dropped = True
            except asyncio.QueueEmpty:  # pragma: no cover - full() said otherwise; nothing to drop
                pass
        self.queue.put_nowait(item)
        return dropped


class AlertStream(MqttConsumer):
    """Subscribes to ``water/alerts/#`` and fans each notification out to every connected SSE client."""

    def __init__(self, settings: Settings, queue_size: int = DEFAULT_QUEUE_SIZE,
                 keepalive_s: float = KEEPALIVE_S, max_clients: int | None = None) -> None:
        client_id = f"{settings.mqtt_client_prefix}-api-stream-{secrets.token_hex(4)}"
        super().__init__(settings, client_id, [(ALERTS_TOPIC, 1)], persistent=False, name="api.stream")
        self.queue_size = queue_size
        self.keepalive_s = keepalive_s
        self.max_clients = max_clients if max_clients is not None else settings.stream_max_clients
        # Slots: per user, per address, and the last stream_reserved_staff ones only for staff (duty officers,
        # supervisors, admins), so chiefs' and viewers' dashboards can never lock duty staff out.
        self.max_per_user = settings.stream_max_per_user
        self.max_per_address = settings.stream_max_per_address
        self.reserved_staff = min(settings.stream_reserved_staff, self.max_clients)
        self.subscribed = threading.Event()  # set on SUBACK: from then on no notification is missed
        self.client.on_subscribe = self._on_subscribe
        self.received = 0  # notifications taken from MQTT
        self.invalid = 0  # payloads that were not a JSON object
        self.dropped = 0  # items dropped from full client queues, all clients together
        self._clients: set[StreamClient] = set()  # only touched on the event loop
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._closing_clients = False

    # -- lifecycle (called on the event loop's thread) ----------------------
    def start(self, loop: asyncio.AbstractEventLoop | None = None) -> None:
        """Start the MQTT thread; returns at once (connecting happens in the background, retried until stop)."""
        if self._thread is not None:
            raise RuntimeError("AlertStream already started")
        self._loop = loop or asyncio.get_running_loop()
        self._stop.clear()
        self._closing = False
        self._closing_clients = False
        self._thread = threading.Thread(target=self._run, name="api-alert-stream", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        """End every client's stream, disconnect from the broker and join the MQTT thread."""
        self.close_clients()
        self._closing = True
        self._stop.set()
        if self._thread is not None:
            try:
                self.client.disconnect()  # thread-safe in paho; wakes the network loop from its select at once
            except Exception:  # noqa: BLE001 - the thread ends on its own within the loop timeout anyway
                log.debug("alert stream disconnect failed", exc_info=True)
            self._thread.join(timeout)
            if self._thread.is_alive():  # only while a TCP connect to an unresponsive host is pending
                log.warning("alert stream MQTT thread did not stop", extra=kv(timeout_s=timeout))
        self._thread = None
        self.connected.clear()
        self.subscribed.clear()

    def close_clients(self) -> None:
        """End every open stream (before a shutdown, so the server need not wait for them). Thread-safe."""
        self._closing_clients = True
        self._call_soon(self._close_all)

    # -- the SSE side (on the event loop) -----------------------------------
    def refusal(self, user: str | None = None, address: str | None = None,
                staff: bool = True) -> tuple[int, str] | None:
        """Why a new stream for ``user`` from ``address`` may not open now, as (HTTP status, message); None: it may."""
        total = len(self._clients)
        if total >= self.max_clients or (not staff and total >= self.max_clients - self.reserved_staff):
            return 503, "too many alert stream clients, try again later"
        if user is not None and sum(c.user == user for c in self._clients) >= self.max_per_user:
            return 429, (f"too many alert streams for this user (at most {self.max_per_user}): close one, e.g. "
                         "another browser tab")
        if address is not None and sum(c.address == address for c in self._clients) >= self.max_per_address:
            return 429, f"too many alert streams from this address (at most {self.max_per_address})"
        return None

    def open_client(self, severities: Iterable[str] | None = None, user: str | None = None,
                    address: str | None = None) -> StreamClient:
        sev = frozenset(severities) if severities else None
        client = StreamClient(severities=sev, queue=asyncio.Queue(maxsize=self.queue_size), user=user,
                              address=address)
        if self._closing_clients:
            client.put(None)
        else:
            self._clients.add(client)
        return client

    def close_client(self, client: StreamClient) -> None:
        self._clients.discard(client)
        client.closed = True

    @property
    def client_count(self) -> int:
        return len(self._clients)

    @property
    def full(self) -> bool:
        return self.refusal() is not None

    def stats(self) -> dict[str, Any]:
        return {"connected": self.connected.is_set(), "clients": self.client_count, "received": self.received,
                "invalid": self.invalid, "dropped": self.dropped}

    def _fan_out(self, severity: str | None, data: str) -> None:
        for client in self._clients:
            if client.accepts(severity):
                if client.put(data):
                    client.dropped += 1
                    self.dropped += 1
                    if client.dropped == 1:
                        log.warning("SSE client too slow: dropping its oldest alert notifications",
                                    extra=kv(queue_size=self.queue_size))

    def _close_all(self) -> None:
        for client in list(self._clients):
            client.put(None)
            self.close_client(client)

    def _call_soon(self, fn: Any, *args: Any) -> bool:
        loop = self._loop
        if loop is None or loop.is_closed():
            return False
        try:
            loop.call_soon_threadsafe(fn, *args)
        except RuntimeError:  # the loop closed meanwhile (shutdown)
            return False
        return True

    # -- the MQTT side (on the stream's own thread) -------------------------
    def handle(self, msg: mqtt.MQTTMessage) -> None:
        try:
            payload = json.loads(msg.payload)
        except (ValueError, UnicodeDecodeError):
            payload = None
        if not isinstance(payload, dict):
            self.invalid += 1
            log.warning("ignoring an alert notification that is not a JSON object", extra=kv(topic=msg.topic))
            return
        self.received += 1
        parts = msg.topic.split("/")
        severity = parts[2] if len(parts) == 3 and parts[2] in SEVERITY_ORDER else payload.get("severity")
        # One line of JSON whatever the publisher sent: an SSE data field ends at a newline.
        data = json.dumps(payload, ensure_ascii=False)
        self._call_soon(self._fan_out, severity if isinstance(severity, str) else None, data)

    def _on_subscribe(self, _c: mqtt.Client, _ud: object, _mid: int, reason_codes: list[Any], _p: object) -> None:
        if any(getattr(rc, "is_failure", False) for rc in reason_codes):
            log.error("broker refused the alert subscription", extra=kv(topic=ALERTS_TOPIC))
            return
        self.subscribed.set()

    def _on_disconnect(self, c: mqtt.Client, ud: object, flags: object, reason: object, props: object) -> None:
        self.subscribed.clear()
        super()._on_disconnect(c, ud, flags, reason, props)

    def _run(self) -> None:
        kwargs = connect_kwargs(self.settings, persistent=False)
        delay = _RECONNECT_MIN_S
        first, warned = True, False
        while not self._stop.is_set():
            try:
                if first:
                    self.client.connect(**kwargs)
                    first = False
                else:
                    self.client.reconnect()
            except Exception as exc:  # noqa: BLE001 - refused, unreachable, DNS, TLS: all mean "try again later"
                if not warned:
                    log.warning("alert stream cannot reach the MQTT broker; retrying", extra=kv(
                        broker=repr(self.settings.mqtt), error=str(exc) or type(exc).__name__))
                    warned = True
                self._stop.wait(delay)
                delay = min(delay * 2, _RECONNECT_MAX_S)
                continue
            connected_at_least_once = False
            while not self._stop.is_set():
                try:
                    rc = self.client.loop(_LOOP_TIMEOUT_S)
                except Exception:  # noqa: BLE001 - keep the stream alive; reconnect below
                    log.exception("alert stream MQTT loop failed")
                    rc = mqtt.MQTT_ERR_UNKNOWN
                if self.connected.is_set() and not connected_at_least_once:
                    connected_at_least_once, warned, delay = True, False, _RECONNECT_MIN_S
                if rc != mqtt.MQTT_ERR_SUCCESS:
                    break
            if not self._stop.is_set():
                self._stop.wait(delay)
                delay = min(delay * 2, _RECONNECT_MAX_S)
        try:
            if self.client.disconnect() == mqtt.MQTT_ERR_SUCCESS:  # NO_CONN when there is no socket
                self.client.loop(_LOOP_TIMEOUT_S)  # writes the DISCONNECT and closes the socket
        except Exception:  # noqa: BLE001 - shutting down anyway
            log.debug("alert stream disconnect failed", exc_info=True)
