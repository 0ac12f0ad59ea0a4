"""Simulated field devices: SL 651 RTUs and HJ 212 analysers that talk to the gateway over real TCP.

Each device sends its reports in order and moves on only when the centre confirmed one; without a confirmation
(timeout, lost connection, gateway restarted) it reconnects and sends the same report again — the behaviour of an
M2 RTU. ``confirmed`` records what the device was told was received: the end-to-end tests check that every such
report reached the store.
"""

from __future__ import annotations

import asyncio
import math
import random
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from gateway import hj212, sl651

# What a simulated device reports for each kind of station it feeds: SL 651 (identifier, bytes, decimals) and
# HJ 212 codes, with a plausible value generator (t: hours since start).
SL651_ELEMENTS = {
    "rain": [(0x20, 3, 1, lambda t, r: max(0.0, round(r.gauss(0.3, 0.6), 1)))],
    "river": [(0x39, 4, 3, lambda t, r: round(8.0 + 0.5 * math.sin(t / 6) + r.gauss(0, 0.01), 3))],
    "reservoir": [(0x3B, 4, 2, lambda t, r: round(48.0 + 0.2 * math.sin(t / 12), 2))],
    "groundwater": [(0x0E, 3, 2, lambda t, r: round(12.0 + 0.1 * math.sin(t / 24), 2))],
}
SL651_TYPES = {"rain": 0x50, "river": 0x48, "reservoir": 0x4B, "groundwater": 0x47, "village_water": 0x51}
HJ212_CODES = {
    "village_water": [("w01001", lambda t, r: round(7.2 + r.gauss(0, 0.05), 2)),
                      ("w01003", lambda t, r: round(max(0.05, 0.4 + r.gauss(0, 0.05)), 2))],
}


@dataclass
class Report:
    frames: list[bytes]       # one frame, or the packets of a multi-packet message
    key: str                  # what the report stands for (device + time), to match against the store
    values: dict[str, float] = field(default_factory=dict)


def sl651_reports(address: str, password: str, kinds: list[str], start_local: datetime, count: int,
                  interval: timedelta, seed: int = 0, m3_every: int = 0) -> list[Report]:
    r = random.Random(seed)
    elements = [e for k in kinds for e in SL651_ELEMENTS.get(k, [])]
    st_type = SL651_TYPES.get(kinds[0], 0x50) if kinds else 0x50
    out = []
    for i in range(count):
        t = start_local + i * interval
        hours = i * interval.total_seconds() / 3600
        values = [(ident, gen(hours, r), n, dec) for ident, n, dec, gen in elements]
        values.append((0x38, round(12.4 - 0.001 * i, 2), 2, 2))  # supply voltage: device health
        frame = sl651.encode(address, 0x32, i % 65536, t, password=password, station_type=st_type,
                             groups=[(t, values)])
        frames = sl651.split_m3(frame, 12) if m3_every and i % m3_every == m3_every - 1 else [frame]
        out.append(Report(frames, f"{address}@{t.isoformat()}", {f"{v[0]:02X}": v[1] for v in values}))
    return out


def hj212_reports(mn: str, password: str, kinds: list[str], start_local: datetime, count: int,
                  interval: timedelta, seed: int = 0, flag_every: int = 0) -> list[Report]:
    r = random.Random(seed)
    codes = [c for k in kinds for c in HJ212_CODES.get(k, [])]
    out = []
    for i in range(count):
        t = start_local + i * interval
        hours = i * interval.total_seconds() / 3600
        values = {code: (gen(hours, r), "C" if flag_every and i % flag_every == flag_every - 1 else "N")
                  for code, gen in codes}
        frame = hj212.encode(mn, "2011", t, values, password=password)
        out.append(Report([frame], f"{mn}@{t.isoformat()}", {c: v for c, (v, _f) in values.items()}))
    return out


def _is_confirmation(protocol: str, reply: bytes) -> bool:
    if protocol == "sl651":
        return reply[-3] in (sl651.EOT, sl651.ESC)
    return b"CN=9014" in reply


class SimulatedDevice:
    """Sends its reports over TCP, each until confirmed; reconnects after any failure."""

    def __init__(self, protocol: str, host: str, port: int, reports: list[Report], *, reply_timeout_s: float = 5.0,
                 retry_delay_s: float = 0.2, pace_s: float = 0.0) -> None:
        self.protocol, self.host, self.port = protocol, host, port
        self.reports = reports
        self.reply_timeout_s = reply_timeout_s
        self.retry_delay_s = retry_delay_s
        self.pace_s = pace_s
        self.confirmed: list[Report] = []
        self.sent_frames = 0
        self.reconnects = 0

    def _framer(self):
        return sl651.Sl651Framer() if self.protocol == "sl651" else hj212.Hj212Framer()

    async def run(self, stop: asyncio.Event | None = None) -> None:
        i = 0
        while i < len(self.reports) and not (stop and stop.is_set()):
            try:
                reader, writer = await asyncio.wait_for(asyncio.open_connection(self.host, self.port), 5)
            except (OSError, asyncio.TimeoutError):
                self.reconnects += 1
                await asyncio.sleep(self.retry_delay_s)
                continue
            framer = self._framer()
            try:
                while i < len(self.reports) and not (stop and stop.is_set()):
                    report = self.reports[i]
                    for frame in report.frames:
                        writer.write(frame)
                        self.sent_frames += 1
                    await writer.drain()
                    if await self._await_confirmation(reader, framer):
                        self.confirmed.append(report)
                        i += 1
                        if self.pace_s:
                            await asyncio.sleep(self.pace_s)
                    else:
                        break
            except (OSError, asyncio.TimeoutError, asyncio.IncompleteReadError):
                pass
            finally:
                writer.close()
            if i < len(self.reports):
                self.reconnects += 1
                await asyncio.sleep(self.retry_delay_s)

    async def _await_confirmation(self, reader: asyncio.StreamReader, framer) -> bool:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.reply_timeout_s
        while True:
            left = deadline - loop.time()
            if left <= 0:
                return False
            data = await asyncio.wait_for(reader.read(4096), left)
            if not data:
                return False
            for ev in framer.feed(data):
                if isinstance(ev, bytes) and _is_confirmation(self.protocol, ev):
                    return True


async def run_fleet(devices: list[SimulatedDevice], stop: asyncio.Event | None = None) -> None:
    await asyncio.gather(*(d.run(stop) for d in devices))


class FieldFleet:
    """Simulated devices as a start/stop component (the demo): their own thread and event loop.

    ``port_of`` gives the gateway's port per protocol at start, so the fleet can be built before the gateway
    listens (on a free port)."""

    def __init__(self, devices: list[SimulatedDevice], port_of=None) -> None:
        self.devices = devices
        self.port_of = port_of
        self._loop: asyncio.AbstractEventLoop | None = None
        self._task: asyncio.Task | None = None
        self._thread = None

    @property
    def confirmed(self) -> int:
        return sum(len(d.confirmed) for d in self.devices)

    def start(self) -> None:
        import threading

        if self.port_of is not None:
            for d in self.devices:
                d.port = self.port_of(d.protocol)
        ready = threading.Event()

        def run() -> None:
            loop = asyncio.new_event_loop()
            self._loop = loop
            self._task = loop.create_task(run_fleet(self.devices))
            ready.set()
            try:
                loop.run_until_complete(self._task)
            except asyncio.CancelledError:
                pass
            finally:
                loop.close()

        self._thread = threading.Thread(target=run, name="field-devices", daemon=True)
        self._thread.start()
        ready.wait(10)

    def stop(self) -> None:
        if self._loop is not None and self._task is not None and not self._loop.is_closed():
            try:
                self._loop.call_soon_threadsafe(self._task.cancel)
            except RuntimeError:
                pass  # the loop ended by itself: every report was sent
        if self._thread is not None:
            self._thread.join(10)
