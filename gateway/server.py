"""The gateway stage: asyncio TCP servers, one port per protocol, from device frames to QoS 1 MQTT readings.

Per connection, frames are handled in order: decode → registered device and password → mapping to the device's
stations → publish (QoS 1) → wait for every PUBACK → only then the protocol's confirmation to the device. A device
that hears no confirmation sends again (at least once); nothing is confirmed that the broker does not hold.
Whatever a device sends costs at most its own connection: bad bytes become dead letters, limits close or slow it.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime
from typing import Callable
from zoneinfo import ZoneInfo

from core.logs import kv
from core.payload import encode, encode_batch, topic_for
from core.registry import Registry
from core.settings import Settings
from core.timeutil import utcnow
from gateway import hj212, metrics as m, sl651
from gateway.mapping import CumulativeState, FLAG_MEANINGS, Mapping, load_mapping, route
from gateway.protocol import Codec, FrameError, Junk, Message
from gateway.publish import AckingPublisher
from gateway.support import DeadLetterWriter, DeviceDirectory

log = logging.getLogger("gateway")

CODECS: dict[str, Codec] = {"sl651": sl651.CODEC, "hj212": hj212.CODEC}
REFRESH_S = 5.0        # devices and stations added with the CLI are heard within this long
FLUSH_S = 10.0         # unmapped counts and last-seen times written back this often
GARBAGE_FLUSH = 4096   # skipped bytes of one connection are kept together up to this size


class _Drop(Exception):
    """Close this connection (the reason is logged by whoever raises)."""


@dataclass
class _Conn:
    protocol: str
    peer: str
    refused: int = 0
    logged: set = field(default_factory=set)
    garbage: bytearray = field(default_factory=bytearray)
    tokens: float = 1.0
    last: float = field(default_factory=time.monotonic)
    device: str | None = None


@dataclass
class _Pending:
    parts: dict[int, Message]
    total: int
    started: float


class GatewayService:
    """Start/stop like the other stages; the asyncio loop runs in its own thread."""

    def __init__(self, settings: Settings, registry: Registry, *, clock: Callable[[], datetime] = utcnow,
                 mapping: Mapping | None = None, client_id: str | None = None,
                 ports: dict[str, int] | None = None) -> None:
        self.settings = settings
        self.registry = registry
        self.clock = clock
        self.mapping = mapping or load_mapping(settings.gateway_mapping_file)
        self.zone = ZoneInfo(settings.display_timezone)
        self.directory = DeviceDirectory(registry)
        self.dead = DeadLetterWriter(registry)
        self.publisher = AckingPublisher(settings, client_id or f"{settings.mqtt_client_prefix}-gateway")
        self.cumulative = CumulativeState()
        wanted = ports if ports is not None else {"sl651": settings.gateway_sl651_port,
                                                  "hj212": settings.gateway_hj212_port}
        self.wanted_ports = {p: port for p, port in wanted.items() if port or ports is not None}
        self.ports: dict[str, int] = {}
        self.active = 0
        self.stats: dict[str, int] = defaultdict(int)
        self.drift: dict[str, float] = {}
        self.health_values: dict[str, dict[str, float]] = {}
        self._pending: dict[tuple, _Pending] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._startup_error: BaseException | None = None
        self._stop: asyncio.Event | None = None
        self._tasks: set[asyncio.Task] = set()

    # -- lifecycle -----------------------------------------------------------------------------------------------
    def start(self) -> None:
        self.directory.refresh()
        self.dead.start()
        self._thread = threading.Thread(target=self._run, name="gateway", daemon=True)
        self._thread.start()
        self._ready.wait(30)
        if self._startup_error is not None:
            raise self._startup_error

    def stop(self) -> None:
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        if self._thread is not None:
            self._thread.join(timeout=30)
        self.publisher.stop()
        self.dead.stop()
        try:
            self.directory.flush()
        except Exception:  # noqa: BLE001 - counts are best effort at shutdown
            log.exception("cannot write device activity")

    def wait_connected(self, timeout: float = 10.0) -> bool:
        return self.publisher.connected.wait(timeout)

    def health(self) -> dict:
        return {"status": "ok" if self.publisher.connected.is_set() else "connecting",
                "connected": self.publisher.connected.is_set(), "ports": dict(self.ports),
                "connections": self.active, "unconfirmed_publishes": self.publisher.outstanding,
                "frames": dict(self.stats), "devices": len(self.directory.devices),
                "dead_letters_written": self.dead.written}

    def _run(self) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        try:
            loop.run_until_complete(self._main())
        except BaseException as exc:  # noqa: BLE001 - reported to start()
            if not self._ready.is_set():
                self._startup_error = exc
            else:
                log.exception("gateway loop failed")
        finally:
            self._ready.set()
            loop.close()

    async def _main(self) -> None:
        self._stop = asyncio.Event()
        self.publisher.start(asyncio.get_running_loop())
        servers = []
        for protocol, port in self.wanted_ports.items():
            codec = CODECS[protocol]
            server = await asyncio.start_server(
                lambda r, w, c=codec: self._serve(c, r, w), self.settings.gateway_host, port,
                limit=self.settings.gateway_max_frame_bytes * 2, backlog=1024)
            self.ports[protocol] = server.sockets[0].getsockname()[1]
            servers.append(server)
            log.info("listening", extra=kv(protocol=protocol, port=self.ports[protocol]))
        self._ready.set()
        housekeeping = asyncio.create_task(self._housekeeping())
        await self._stop.wait()
        housekeeping.cancel()
        for s in servers:
            s.close()
        for t in list(self._tasks):
            t.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        for s in servers:
            await s.wait_closed()

    async def _housekeeping(self) -> None:
        loop = asyncio.get_running_loop()
        last_flush = time.monotonic()
        while True:
            await asyncio.sleep(REFRESH_S)
            try:
                await loop.run_in_executor(None, self.directory.refresh)
            except Exception:  # noqa: BLE001 - keep the last good directory
                log.exception("cannot refresh the device directory")
            if time.monotonic() - last_flush >= FLUSH_S:
                last_flush = time.monotonic()
                try:
                    await loop.run_in_executor(None, self.directory.flush)
                except Exception:  # noqa: BLE001
                    log.exception("cannot write device activity")
            self._expire_multipacket()

    # -- one connection ------------------------------------------------------------------------------------------
    async def _serve(self, codec: Codec, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        peer = writer.get_extra_info("peername")
        conn = _Conn(codec.name, f"{peer[0]}:{peer[1]}" if peer else "?")
        if self.active >= self.settings.gateway_max_connections:
            m.REFUSED_CONNECTIONS.labels(codec.name).inc()
            writer.close()
            return
        self._tasks.add(task)
        self.active += 1
        m.CONNECTIONS.labels(codec.name).inc()
        framer = codec.framer(self.settings.gateway_max_frame_bytes)
        s = self.settings
        try:
            while True:
                try:
                    data = await asyncio.wait_for(reader.read(65536), s.gateway_idle_timeout_s)
                except asyncio.TimeoutError:
                    log.info("idle connection closed", extra=kv(protocol=codec.name, peer=conn.peer,
                                                                device=conn.device))
                    break
                if not data:
                    break
                for ev in framer.feed(data):
                    if isinstance(ev, Junk):
                        await self._junk(codec, conn, ev, writer)
                    else:
                        await self._throttle(conn)
                        await self._frame(codec, conn, ev, writer)
                    if conn.refused >= s.gateway_max_refused_frames:
                        raise _Drop()
        except _Drop:
            pass
        except (ConnectionError, OSError):
            pass
        except asyncio.CancelledError:
            pass
        finally:
            self._flush_garbage(conn)
            self.active -= 1
            m.CONNECTIONS.labels(codec.name).dec()
            self._tasks.discard(task)
            writer.close()

    async def _throttle(self, conn: _Conn) -> None:
        """Token bucket per connection: too fast a device is read more slowly (TCP pushes back on it)."""
        rate = self.settings.gateway_max_frames_per_s
        now = time.monotonic()
        conn.tokens = min(max(1.0, rate), conn.tokens + (now - conn.last) * rate)
        conn.last = now
        if conn.tokens < 1.0:
            await asyncio.sleep((1.0 - conn.tokens) / rate)
            conn.tokens = 1.0
            conn.last = time.monotonic()
        conn.tokens -= 1.0

    async def _junk(self, codec: Codec, conn: _Conn, junk: Junk, writer: asyncio.StreamWriter) -> None:
        if junk.reason == "garbage":
            conn.garbage += junk.data[:max(0, GARBAGE_FLUSH - len(conn.garbage))]
            self.stats["garbage_bytes"] += len(junk.data)
            if len(conn.garbage) >= GARBAGE_FLUSH:
                self._flush_garbage(conn)
            return
        self._count(codec.name, junk.reason)
        self._dead(conn, junk.data, junk.reason, f"{junk.detail}; frame {junk.data[:256].hex().upper()}")
        if junk.nak is not None:
            writer.write(junk.nak)
            await writer.drain()

    def _flush_garbage(self, conn: _Conn) -> None:
        if conn.garbage:
            self._dead(conn, bytes(conn.garbage), "garbage", "bytes outside any frame (skipped to the next start)")
            conn.garbage = bytearray()

    def _count(self, protocol: str, outcome: str) -> None:
        self.stats[outcome] += 1
        m.FRAMES.labels(protocol, outcome).inc()

    def _dead(self, conn: _Conn, payload: bytes, reason: str, detail: str) -> None:
        where = f"gateway/{conn.protocol}/{conn.device or conn.peer}"
        self.dead.put(where, payload, reason, detail, self.clock())

    async def _frame(self, codec: Codec, conn: _Conn, frame: bytes, writer: asyncio.StreamWriter) -> None:
        name = codec.name
        try:
            msg = codec.decode(frame)
        except FrameError as exc:
            self._count(name, exc.reason)
            self._dead(conn, frame, exc.reason, exc.detail)
            return
        except Exception as exc:  # noqa: BLE001 - a decoder bug must cost this frame only, never the gateway
            log.exception("frame could not be decoded", extra=kv(protocol=name, peer=conn.peer))
            self._count(name, "undecodable")
            self._dead(conn, frame, "undecodable", f"{type(exc).__name__}: {exc}"[:500])
            return
        device = self.directory.lookup(name, msg.device)
        if device is None:
            self._refuse(conn, msg, "unknown_device", f"{name} device {msg.device} is not registered "
                                                      f"(smartwater devices add)")
            return
        ok = self.directory.cached_password(device, msg.password)
        if ok is None:
            ok = await asyncio.get_running_loop().run_in_executor(None, self.directory.password_ok, device,
                                                                  msg.password)
        if not ok:
            self._refuse(conn, msg, "wrong_password", f"{name} device {msg.device}: wrong password")
            return
        conn.device = msg.device
        now = self.clock()
        now_local = now.astimezone(self.zone).replace(tzinfo=None)
        drift = self._check_clock(conn, msg, now)
        health = {"clock_drift_s": round(drift, 1)} if drift is not None else {}
        if msg.part is not None:
            whole = self._collect(msg)
            if whole is None:
                reply = codec.confirm(msg, now_local, final=False)
                if reply:
                    writer.write(reply)
                    await writer.drain()
                self._count(name, "packet")
                return
            msg = whole
        if not msg.carries_data:
            self._count(name, "no_data")
            self.directory.count(device, {}, now, health)
            reply = codec.confirm(msg, now_local)
            if reply:
                writer.write(reply)
                await writer.drain()
            return
        routed = route(msg, self.mapping, self.directory.stations_of(device), self.zone, self.cumulative)
        self._side_effects(conn, name, device, msg, routed, frame)
        futures = []
        for (kind, station), rows in routed.readings.items():
            by_ts: dict[datetime, dict[str, float]] = {}
            for ts, metric, value in rows:
                by_ts.setdefault(ts, {})[metric] = value
            payload = (encode(*next(iter(by_ts.items()))) if len(by_ts) == 1
                       else encode_batch(sorted(by_ts.items())))
            futures.append(self.publisher.publish(topic_for(kind, station), payload))
        if futures:
            try:
                await asyncio.wait_for(asyncio.gather(*futures), self.settings.gateway_publish_timeout_s)
            except (asyncio.TimeoutError, ConnectionError) as exc:
                log.warning("broker did not acknowledge in time: frame left unconfirmed, connection closed",
                            extra=kv(protocol=name, device=msg.device, error=type(exc).__name__))
                self._count(name, "unconfirmed")
                raise _Drop() from None
            m.READINGS.labels(name).inc(routed.count)
        self._count(name, "published")
        self.directory.count(device, routed.unmapped, now, {**health, **routed.health})
        reply = codec.confirm(msg, now_local)
        if reply:
            writer.write(reply)
            await writer.drain()

    def _refuse(self, conn: _Conn, msg: Message, reason: str, detail: str) -> None:
        conn.refused += 1
        self._count(msg.protocol, reason)
        if reason not in conn.logged:
            conn.logged.add(reason)
            log.warning("frame refused", extra=kv(protocol=msg.protocol, peer=conn.peer, device=msg.device,
                                                  reason=reason))
        self._dead(conn, msg.raw, reason, detail)

    def _check_clock(self, conn: _Conn, msg: Message, now: datetime) -> float | None:
        """Seconds the device's clock is ahead of ours (None: the frame carries no send time)."""
        if msg.sent_local is None:
            return None
        sent = msg.sent_local.replace(tzinfo=self.zone)
        drift = (sent - now).total_seconds()
        self.drift[f"{msg.protocol}:{msg.device}"] = drift
        if abs(drift) > self.settings.gateway_clock_drift_s:
            m.CLOCK_DRIFT.labels(msg.protocol).inc()
            self.stats["clock_drift"] += 1
            if "clock" not in conn.logged:
                conn.logged.add("clock")
                log.warning("device clock is off: a data-quality problem (times are taken as the device sends them)",
                            extra=kv(protocol=msg.protocol, device=msg.device, drift_s=round(drift)))
        return drift

    def _side_effects(self, conn: _Conn, name: str, device, msg: Message, routed, frame: bytes) -> None:
        for code, n in routed.unmapped.items():
            m.UNMAPPED.labels(name, msg.device, code).inc(n)
        if "battery_v" in routed.health:
            m.BATTERY.labels(name, msg.device).set(routed.health["battery_v"])
            self.health_values.setdefault(f"{name}:{msg.device}", {}).update(routed.health)
        if routed.withheld:
            for _code, _v, flag in routed.withheld:
                m.WITHHELD.labels(name, flag).inc()
            text = ", ".join(f"{c}={v:g} flag {f} ({FLAG_MEANINGS.get(f, 'unknown flag')})"
                             for c, v, f in routed.withheld)
            self._dead(conn, frame, "flagged_values", f"not normal measurements, kept out of the readings: {text}")
        if routed.out_of_range:
            self._dead(conn, frame, "out_of_range", "; ".join(routed.out_of_range))
        if msg.bad_elements:
            self._dead(conn, frame, "bad_elements", "; ".join(msg.bad_elements)[:1500])

    # -- multi-packet messages -----------------------------------------------------------------------------------
    def _collect(self, msg: Message) -> Message | None:
        total, number = msg.part
        # SL 651 packets after the first carry no serial number: one message per device and function at a time.
        key = (msg.protocol, msg.device, msg.function, msg.qn if msg.protocol == "hj212" else None)
        pending = self._pending.get(key)
        if pending is None or pending.total != total:
            pending = self._pending[key] = _Pending({}, total, time.monotonic())
        pending.parts[number] = msg
        if len(pending.parts) < total:
            return None
        del self._pending[key]
        codec = CODECS[msg.protocol]
        try:
            return codec.merge(list(pending.parts.values()))
        except FrameError as exc:
            self.dead.put(f"gateway/{msg.protocol}/{msg.device}", b"".join(p.raw for p in pending.parts.values()),
                          exc.reason, f"multi-packet message: {exc.detail}", self.clock())
            return None

    def _expire_multipacket(self) -> None:
        limit = self.settings.gateway_multipacket_timeout_s
        now = time.monotonic()
        for key, p in list(self._pending.items()):
            if now - p.started > limit:
                del self._pending[key]
                self._count(key[0], "incomplete_multipacket")
                self.dead.put(f"gateway/{key[0]}/{key[1]}", b"".join(x.raw for x in p.parts.values()),
                              "incomplete_multipacket",
                              f"{len(p.parts)} of {p.total} packets arrived within {limit:g} s", self.clock())
