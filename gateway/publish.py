"""Publishing to the broker with QoS 1 and an asyncio future per message that resolves on the broker's PUBACK.

The gateway confirms a frame to its device only once every message made from it is acknowledged: that is what
makes the chain device → broker at least once. The paho client is the project's (core.mqtt.new_client); its
network thread resolves the futures through the event loop.
"""

from __future__ import annotations

import asyncio
import logging
import threading

import paho.mqtt.client as mqtt

from core.logs import kv
from core.mqtt import connect_kwargs, new_client
from core.settings import Settings

log = logging.getLogger("gateway.publish")


class AckingPublisher:
    def __init__(self, settings: Settings, client_id: str, max_inflight: int = 1000) -> None:
        self.settings = settings
        self.client = new_client(settings, client_id, persistent=False)
        self.client.max_inflight_messages_set(max_inflight)
        self.connected = threading.Event()
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = self._on_disconnect
        self.client.on_publish = self._on_publish
        self._lock = threading.Lock()
        self._waiters: dict[int, asyncio.Future] = {}
        self._early: set[int] = set()  # PUBACKs that arrived before publish() returned the mid
        self.loop: asyncio.AbstractEventLoop | None = None
        self._closing = False

    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.client.connect_async(**connect_kwargs(self.settings, persistent=False))
        self.client.loop_start()

    def stop(self) -> None:
        self._closing = True
        self.client.disconnect()
        self.client.loop_stop()
        with self._lock:
            waiters, self._waiters = self._waiters, {}
        for fut in waiters.values():
            if self.loop is not None and not self.loop.is_closed():
                self.loop.call_soon_threadsafe(_cancel, fut)

    def _on_connect(self, _c: mqtt.Client, _u: object, _f: object, reason: object, _p: object) -> None:
        if getattr(reason, "is_failure", False):
            log.error("broker refused the gateway's connection", extra=kv(reason=str(reason)))
            return
        self.connected.set()
        log.info("connected", extra=kv(broker=repr(self.settings.mqtt)))

    def _on_disconnect(self, *_a: object) -> None:
        if self.connected.is_set() and not self._closing:
            log.warning("disconnected from the broker; unacknowledged frames stay unconfirmed")
        self.connected.clear()

    def publish(self, topic: str, payload: bytes) -> asyncio.Future:
        """Queue one QoS 1 message; the future resolves when the broker acknowledged it (call in the loop)."""
        assert self.loop is not None
        fut = self.loop.create_future()
        info = self.client.publish(topic, payload, qos=1)
        if info.rc == mqtt.MQTT_ERR_QUEUE_SIZE:
            fut.set_exception(ConnectionError("the MQTT client's queue is full"))
            return fut
        with self._lock:
            if info.mid in self._early:
                self._early.discard(info.mid)
                fut.set_result(None)
            else:
                self._waiters[info.mid] = fut
        return fut

    def _on_publish(self, _c: mqtt.Client, _u: object, mid: int, *_rest: object) -> None:
        with self._lock:
            fut = self._waiters.pop(mid, None)
            if fut is None:
                self._early.add(mid)
                return
        self.loop.call_soon_threadsafe(_resolve, fut)

    @property
    def outstanding(self) -> int:
        with self._lock:
            return len(self._waiters)


def _resolve(fut: asyncio.Future) -> None:
    if not fut.done():
        fut.set_result(None)


def _cancel(fut: asyncio.Future) -> None:
    if not fut.done():
        fut.cancel()
