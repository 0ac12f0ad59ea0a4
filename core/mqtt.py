"""paho-mqtt clients set up the same way for every stage, and a consumer base class.

Lessons from paho's issue tracker (docs/domain.md, "The parts we build on") built in: subscriptions are
(re)made in on_connect, an exception in a callback is caught and counted instead of killing the network
thread.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Callable, Sequence

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from core.logs import kv
from core.settings import Settings

log = logging.getLogger("core.mqtt")

SESSION_EXPIRY_S = 7 * 24 * 3600


def new_client(settings: Settings, client_id: str, *, persistent: bool, manual_ack: bool = False) -> mqtt.Client:
    ep = settings.mqtt
    v5 = settings.mqtt_protocol == "5"
    client = mqtt.Client(
        CallbackAPIVersion.VERSION2,
        client_id=client_id,
        clean_session=None if v5 else not persistent,
        protocol=mqtt.MQTTv5 if v5 else mqtt.MQTTv311,
        manual_ack=manual_ack,
    )
    if ep.username:
        client.username_pw_set(ep.username, ep.password)
    if ep.tls:
        client.tls_set()
    client.reconnect_delay_set(min_delay=1, max_delay=30)
    client.max_queued_messages_set(0)
    return client


def connect_kwargs(settings: Settings, *, persistent: bool) -> dict:
    kwargs: dict = {"host": settings.mqtt.host, "port": settings.mqtt.port, "keepalive": settings.mqtt_keepalive_s}
    if settings.mqtt_protocol == "5":
        props = Properties(PacketTypes.CONNECT)
        props.ReceiveMaximum = settings.mqtt_receive_maximum
        if persistent:
            props.SessionExpiryInterval = SESSION_EXPIRY_S
        kwargs.update(clean_start=not persistent, properties=props)
    return kwargs


class MqttConsumer:
    """A long-running MQTT subscriber with start/stop, automatic reconnect and guarded callbacks."""

    def __init__(self, settings: Settings, client_id: str, topics: Sequence[tuple[str, int]], *,
                 persistent: bool = True, manual_ack: bool = False, name: str = "mqtt") -> None:
        self.settings = settings
        self.client_id = client_id
        self.topics = list(topics)
        self.persistent = persistent
        self.log = logging.getLogger(name)
        self.connected = threading.Event()
        self.callback_errors = 0
        self.client = new_client(settings, client_id, persistent=persistent, manual_ack=manual_ack)
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = self._on_disconnect
        self.client.on_message = self._on_message
        self.client.on_subscribe = self._on_subscribe
        self.subscribe_refused = False
        self._started = False
        self._closing = False

    # Subclasses implement this.
    def handle(self, msg: mqtt.MQTTMessage) -> None:
        raise NotImplementedError

    def start(self) -> None:
        self._closing = False
        self.client.connect_async(**connect_kwargs(self.settings, persistent=self.persistent))
        self.client.loop_start()
        self._started = True

    def stop(self) -> None:
        self._closing = True
        if self._started:
            self.client.disconnect()
            self.client.loop_stop()
            self._started = False
        self.connected.clear()

    def wait_connected(self, timeout: float = 10.0) -> bool:
        return self.connected.wait(timeout)

    def _on_connect(self, client: mqtt.Client, _ud: object, _flags: object, reason: object, _props: object) -> None:
        if getattr(reason, "is_failure", False):
            self.log.error("broker refused connection", extra=kv(reason=str(reason), client_id=self.client_id))
            return
        # "connected" waits for the SUBACK: a message published before the broker has the
        # subscription of a brand-new session would never reach us.
        client.subscribe(self.topics)

    def _on_subscribe(self, _c: mqtt.Client, _ud: object, _mid: int, reason_codes: list, _props: object) -> None:
        refused = [str(rc) for rc in reason_codes if getattr(rc, "is_failure", False)]
        if refused:
            self.subscribe_refused = True
            self.log.error("broker refused the subscription (check the ACL)",
                           extra=kv(topics=[t for t, _ in self.topics], reasons=refused, client_id=self.client_id))
            return
        self.subscribe_refused = False
        self.connected.set()
        self.log.info("connected", extra=kv(broker=repr(self.settings.mqtt), client_id=self.client_id))

    def _on_disconnect(self, _c: mqtt.Client, _ud: object, _flags: object, reason: object, _props: object) -> None:
        if self.connected.is_set() and not self._closing:
            self.log.warning("disconnected", extra=kv(reason=str(reason), client_id=self.client_id))
        self.connected.clear()

    def _on_message(self, _c: mqtt.Client, _ud: object, msg: mqtt.MQTTMessage) -> None:
        try:
            self.handle(msg)
        except Exception:  # noqa: BLE001 - an escaping exception would kill paho's network thread
            self.callback_errors += 1
            self.log.exception("message handler failed", extra=kv(topic=msg.topic))


class Publisher:
    """A connected publisher with flow control, for simulators, notifications, tools and benchmarks.

    Packet ids handed to paho and not yet acknowledged are tracked through on_publish, because
    paho stalls past 65,535 outstanding QoS 1 messages (docs/domain.md), and a message queued while
    disconnected keeps an error rc although paho sends it after reconnecting.
    """

    def __init__(self, settings: Settings, client_id: str, max_inflight: int = 1000) -> None:
        self.settings = settings
        self.client = new_client(settings, client_id, persistent=False)
        self.client.max_inflight_messages_set(max_inflight)
        self.connected = threading.Event()
        self.client.on_connect = lambda c, u, f, rc, p: (not getattr(rc, "is_failure", False)) and self.connected.set()
        self.client.on_disconnect = lambda *a: self.connected.clear()
        self.client.on_publish = self._on_publish
        self._cond = threading.Condition()
        self._pending: set[int] = set()
        self._early_acks: set[int] = set()  # acks that beat publish() returning its mid

    def start(self, timeout: float = 15.0) -> "Publisher":
        self.client.connect_async(**connect_kwargs(self.settings, persistent=False))
        self.client.loop_start()
        if not self.connected.wait(timeout):
            self.client.loop_stop()
            raise ConnectionError(f"cannot connect to MQTT broker {self.settings.mqtt!r} within {timeout:.0f} s")
        return self

    def publish(self, topic: str, payload: bytes | str, qos: int = 1) -> mqtt.MQTTMessageInfo:
        info = self.client.publish(topic, payload, qos=qos)
        if info.rc != mqtt.MQTT_ERR_QUEUE_SIZE:  # NO_CONN still queues the message for the reconnect
            with self._cond:
                if info.mid in self._early_acks:
                    self._early_acks.discard(info.mid)
                else:
                    self._pending.add(info.mid)
        return info

    def _on_publish(self, _c: mqtt.Client, _ud: object, mid: int, *_rest: object) -> None:
        with self._cond:
            if mid in self._pending:
                self._pending.discard(mid)
            else:
                self._early_acks.add(mid)
            self._cond.notify_all()

    @property
    def outstanding(self) -> int:
        with self._cond:
            return len(self._pending)

    def wait_for_room(self, limit: int, stop: threading.Event | None = None) -> bool:
        """Block while ``limit`` or more messages are unacknowledged; False if ``stop`` was set meanwhile."""
        with self._cond:
            while len(self._pending) >= limit:
                if stop is not None and stop.is_set():
                    return False
                self._cond.wait(0.2)
        return stop is None or not stop.is_set()

    def flush(self, timeout: float = 30.0, stop: threading.Event | None = None, stop_grace_s: float = 0.0) -> bool:
        """Wait until every published message is acknowledged; after ``stop`` is set, wait at most ``stop_grace_s`` more."""
        deadline = time.monotonic() + timeout
        cut = False
        with self._cond:
            while self._pending and time.monotonic() < deadline:
                if stop is not None and stop.is_set() and not cut:
                    deadline, cut = min(deadline, time.monotonic() + stop_grace_s), True
                self._cond.wait(max(0.0, min(0.1, deadline - time.monotonic())))
            return not self._pending

    def wait_all_published(self, infos: Sequence[mqtt.MQTTMessageInfo], timeout: float = 30.0) -> bool:
        mids = {i.mid for i in infos}
        deadline = time.monotonic() + timeout
        with self._cond:
            while mids & self._pending:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._cond.wait(min(0.1, remaining))
        return True

    def stop(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def wait_for(predicate: Callable[[], bool], timeout: float, interval: float = 0.05) -> bool:
    """Poll ``predicate`` until it holds or the deadline passes."""
    deadline = time.monotonic() + timeout
    while True:
        if predicate():
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(interval)
