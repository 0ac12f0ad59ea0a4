"""Field-protocol gateway (SL 651-2014 / HJ 212-2017): decode speed, connections held, frame → stored latency.

``python -m benchmarks.gateway [--cases decode,connections,latency] [--frames 20000] [--connections 2000]
[--rate 1000] [--seconds 20] [--devices 100]``

1. **decode**: ``--frames`` distinct ~100-byte SL 651 reports (11 elements each) in one byte stream, cut into
   1,400-byte reads, through the framer (CRC check), the decoder and the routing to a device's stations — the
   gateway's per-frame work without the network; frames per CPU-second (``time.process_time``), best of 3. The
   same for HJ 212 uploads (5 codes each). Target: ≥ 20,000 SL 651 frames per CPU-second.
2. **connections**: ``smartwater run gateway`` in a subprocess with a private Mosquitto; ``--connections``
   registered SL 651 devices connect, each sends one keep-alive (2F) and stays connected; the gateway's RSS
   (``VmRSS``, then ``VmHWM``) once all are held. Target: 2,000 held with ≤ 200 MB.
3. **latency**: gateway and ingest (``python -m ingest``, SQLite store) in subprocesses; ``--devices`` simulated
   RTUs send ``--rate`` reports per second in total for ``--seconds``, each waiting for its confirmation (M2).
   Per report: device → confirmation (broker acknowledged) and device → readable in the store (the store polled
   every 20 ms, so store latencies are up to ~20 ms late). p50/p99/max. Target: p99 < 1 s.

One JSON line per measurement on stdout, a ``gateway/summary`` line with the targets; progress on stderr.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import subprocess
import sys
import tempfile
import threading
import time
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from benchmarks.alerts import percentile
from benchmarks.ingest import REPO, log
from core.broker import free_port
from core.domain import Station
from core.registry import open_registry
from core.registry.devices import DeviceIn, DeviceRepo
from core.timeutil import utcnow
from gateway import hj212, sl651
from gateway.mapping import load_mapping, route
from support.servers import MosquittoServer, _wait_port, stop_process

DECODE_TARGET = 20_000
RSS_TARGET_MB = 200
P99_TARGET_MS = 1000
SHANGHAI = ZoneInfo("Asia/Shanghai")


def _emit(record: dict) -> None:
    print(json.dumps(record), flush=True)


# -- 1. decode -----------------------------------------------------------------------------------------------------
def _sl651_frames(n: int) -> list[bytes]:
    base = datetime(2026, 6, 28, 8, 0)
    out = []
    for i in range(n):
        t = base + timedelta(minutes=5 * i)
        els = [(0x20, 0.5 + i % 7, 3, 1), (0x26, 100 + i, 4, 1), (0x39, 8.123 + i % 50 / 100, 4, 3),
               (0x3B, 48.12, 4, 2), (0x27, 12.5, 4, 3), (0x38, 12.31, 2, 2), (0x03, 15.2, 2, 1), (0x4C, 0.32, 3, 2),
               (0x1A, 0.5, 3, 1), (0x1B, 0.9, 3, 1), (0x1F, 12.5, 3, 1)]
        out.append(sl651.encode("0012345678", 0x32, i % 65536, t, password="1234", station_type=0x48,
                                groups=[(t, els)]))
    return out


def _hj212_frames(n: int) -> list[bytes]:
    base = datetime(2026, 6, 28, 8, 0)
    return [hj212.encode("QA0001", "2011", base + timedelta(minutes=i),
                         {"w01001": (7.2, "N"), "w01003": (0.41, "N"), "w01010": (15.1, "N"),
                          "w01014": (412.0, "N"), "w21003": (0.12, "N")}) for i in range(n)]


def bench_decode(n: int) -> list[dict]:
    mapping = load_mapping()
    out = []
    for name, frames, framer_cls, module, stations in (
            ("sl651", _sl651_frames(n), sl651.Sl651Framer, sl651, {"RG1": "rain", "RV1": "river"}),
            ("hj212", _hj212_frames(n), hj212.Hj212Framer, hj212, {"VW1": "village_water"})):
        stream = b"".join(frames)
        chunks = [stream[i:i + 1400] for i in range(0, len(stream), 1400)]
        best = None
        for _ in range(3):
            framer = framer_cls()
            began = time.process_time()
            decoded = values = 0
            for chunk in chunks:
                for ev in framer.feed(chunk):
                    msg = module.decode(ev)
                    r = route(msg, mapping, stations, SHANGHAI)
                    decoded += 1
                    values += r.count
            cpu = time.process_time() - began
            assert decoded == len(frames)
            best = cpu if best is None else min(best, cpu)
        rec = {"case": f"gateway/decode/{name}", "frames": len(frames),
               "mean_frame_bytes": round(len(stream) / len(frames), 1), "cpu_s": round(best, 4),
               "frames_per_cpu_s": round(len(frames) / best), "readings_per_frame": round(values / decoded, 2)}
        _emit(rec)
        out.append(rec)
    return out


# -- shared set-up for the server cases ----------------------------------------------------------------------------
class Rig:
    """A private Mosquitto, a registry with stations and devices, and the env for the stage subprocesses."""

    def __init__(self, work: Path, devices: int) -> None:
        self.work = work
        self.broker = MosquittoServer(work / "mosquitto").start()
        self.db_url = f"sqlite:///{work / 'registry.sqlite3'}"
        self.tsdb_url = f"sqlite:///{work / 'timeseries.sqlite3'}"
        reg = open_registry(self.db_url)
        reg.create_schema()
        reg.upsert_stations([Station(id=f"RV{i:05d}", kind="river", name=f"bench river {i}", town="bench",
                                     lat=36.4, lon=120.5) for i in range(devices)])
        repo = DeviceRepo(reg.engine)
        now = utcnow()
        for i in range(devices):
            repo.add(DeviceIn(protocol="sl651", address=f"{i:010d}", station_ids=[f"RV{i:05d}"]), now)
        reg.close()
        self.sl651_port = free_port()
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("SMARTWATER_")}
        self.env.update(SMARTWATER_DATA_DIR=str(work), SMARTWATER_MQTT_URL=self.broker.url,
                        SMARTWATER_DB_URL=self.db_url, SMARTWATER_TSDB_URL=self.tsdb_url,
                        SMARTWATER_LOG_LEVEL="WARNING", SMARTWATER_GATEWAY_HOST="127.0.0.1",
                        SMARTWATER_GATEWAY_SL651_PORT=str(self.sl651_port), SMARTWATER_GATEWAY_HJ212_PORT="0",
                        SMARTWATER_GATEWAY_METRICS_PORT="0", SMARTWATER_INGEST_METRICS_PORT="0",
                        SMARTWATER_GATEWAY_MAX_FRAMES_PER_S="1000", PYTHONPATH=str(REPO))
        self.procs: list[subprocess.Popen] = []

    def start_gateway(self) -> subprocess.Popen:
        p = subprocess.Popen([sys.executable, "-m", "smartwater.cli", "run", "gateway"], env=self.env, cwd=self.work,
                             stdout=subprocess.DEVNULL, stderr=open(self.work / "gateway.log", "ab"))
        _wait_port("127.0.0.1", self.sl651_port, 60, p)
        self.procs.append(p)
        return p

    def start_ingest(self) -> subprocess.Popen:
        p = subprocess.Popen([sys.executable, "-m", "ingest"], env=self.env, cwd=self.work,
                             stdout=subprocess.DEVNULL, stderr=open(self.work / "ingest.log", "ab"))
        self.procs.append(p)
        return p

    def close(self) -> None:
        for p in reversed(self.procs):
            stop_process(p, 15)
        self.broker.stop()


def _status(pid: int, key: str) -> float:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1]) / 1024
    return float("nan")


def _sockets(pid: int) -> int:
    n = 0
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            n += os.readlink(f"/proc/{pid}/fd/{fd}").startswith("socket:")
        except OSError:
            pass
    return n


# -- 2. connections held -------------------------------------------------------------------------------------------
def bench_connections(work: Path, n: int) -> dict:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, max(soft, 2 * n + 512)), hard))
    rig = Rig(work, n)
    health_port = free_port()
    rig.env["SMARTWATER_GATEWAY_METRICS_PORT"] = str(health_port)
    try:
        gw = rig.start_gateway()
        rss_idle = _status(gw.pid, "VmRSS")
        sockets_idle = _sockets(gw.pid)
        now_local = utcnow().astimezone(SHANGHAI).replace(tzinfo=None, microsecond=0)

        async def hold() -> tuple[int, int, float, float]:
            writers = []
            for i in range(n):
                _r, w = await asyncio.open_connection("127.0.0.1", rig.sl651_port)
                w.write(sl651.encode(f"{i:010d}", 0x2F, 1, now_local))
                writers.append(w)
                if i % 200 == 199:
                    await asyncio.gather(*(x.drain() for x in writers[-200:]))
            await asyncio.sleep(3)  # every keep-alive read and handled
            sockets = _sockets(gw.pid) - sockets_idle
            import httpx
            held = httpx.get(f"http://127.0.0.1:{health_port}/healthz", timeout=10).json()["connections"]
            rss, hwm = _status(gw.pid, "VmRSS"), _status(gw.pid, "VmHWM")
            for w in writers:
                w.close()
            return held, sockets, rss, hwm

        held, sockets, rss, hwm = asyncio.run(hold())
        rec = {"case": "gateway/connections", "connections": n, "held": held, "new_sockets": sockets,
               "rss_idle_mb": round(rss_idle, 1),
               "rss_mb": round(rss, 1), "peak_rss_mb": round(hwm, 1),
               "kb_per_connection": round((rss - rss_idle) * 1024 / max(1, n), 1)}
        _emit(rec)
        return rec
    finally:
        rig.close()


# -- 3. frame → stored latency -------------------------------------------------------------------------------------
def bench_latency(work: Path, devices: int, rate: float, seconds: float) -> dict:
    rig = Rig(work, devices)
    try:
        rig.start_ingest()
        gw = rig.start_gateway()
        time.sleep(2)  # ingest subscribed
        per_device = int(rate * seconds / devices)
        interval = devices / rate
        # Data times: one minute apart, interleaved over the devices, ending a day ago (unique per report).
        base = (utcnow() - timedelta(days=1, minutes=devices * per_device)).astimezone(SHANGHAI)
        base = base.replace(tzinfo=None, second=0, microsecond=0)
        sent: dict[tuple[str, datetime], float] = {}
        confirm_ms: list[float] = []
        stored_ms: list[float] = []
        done = threading.Event()

        async def device(d: int) -> None:
            reader, writer = await asyncio.open_connection("127.0.0.1", rig.sl651_port)
            framer = sl651.Sl651Framer()
            loop = asyncio.get_running_loop()
            next_at = loop.time() + (d % 50) * interval / 50
            for j in range(per_device):
                await asyncio.sleep(max(0.0, next_at - loop.time()))
                next_at += interval
                t = base + timedelta(minutes=j * devices + d)
                frame = sl651.encode(f"{d:010d}", 0x32, j, t, station_type=0x48,
                                     groups=[(t, [(0x39, 8.0 + j % 100 / 100, 4, 3), (0x38, 12.3, 2, 2)])])
                began = time.monotonic()
                sent[(f"RV{d:05d}", int(t.replace(tzinfo=SHANGHAI).timestamp() * 1000))] = began
                writer.write(frame)
                got = False
                while not got:
                    for ev in framer.feed(await reader.read(4096)):
                        got = got or isinstance(ev, bytes)
                confirm_ms.append((time.monotonic() - began) * 1000)
            writer.close()

        # Every report's (station, data time in ms), in data-time order: the poller reads only from the oldest
        # one not yet seen, so each poll costs the recent rows, not the whole table.
        def ms(d: int, j: int) -> int:
            return int((base + timedelta(minutes=j * devices + d)).replace(tzinfo=SHANGHAI).timestamp() * 1000)

        expected = sorted(((f"RV{d:05d}", ms(d, j)) for d in range(devices) for j in range(per_device)),
                          key=lambda k: k[1])

        def poll() -> None:
            import sqlite3
            con = sqlite3.connect(rig.tsdb_url.removeprefix("sqlite:///"), timeout=5)
            seen: set = set()
            oldest = 0
            while oldest < len(expected):
                now = time.monotonic()
                try:
                    rows = con.execute("SELECT station_id, ts_ms FROM readings WHERE metric = 'water_level_m' "
                                       "AND ts_ms >= ?", (expected[oldest][1],)).fetchall()
                except sqlite3.Error:
                    rows = []
                for sid, ts_ms in rows:
                    key = (sid, ts_ms)
                    if key not in seen and key in sent:
                        seen.add(key)
                        stored_ms.append((now - sent[key]) * 1000)
                while oldest < len(expected) and expected[oldest] in seen:
                    oldest += 1
                if len(seen) != last_change[1]:
                    last_change[:] = [time.monotonic(), len(seen)]
                elif done.is_set() and time.monotonic() - last_change[0] > 10:
                    break  # nothing new for 10 s after the last report: the rest is missing
                time.sleep(0.02)
            con.close()

        last_change = [time.monotonic(), 0]
        poller = threading.Thread(target=poll, daemon=True)
        poller.start()
        began = time.monotonic()
        cpu0 = _cpu(gw.pid)

        async def fleet() -> None:
            await asyncio.gather(*(device(d) for d in range(devices)))

        asyncio.run(fleet())
        wall = time.monotonic() - began
        cpu = _cpu(gw.pid) - cpu0
        done.set()
        poller.join(60)
        confirm_ms.sort()
        stored_ms.sort()
        rec = {"case": "gateway/latency", "devices": devices, "reports": len(sent),
               "rate_per_s": round(len(sent) / wall), "gateway_cpu_share": round(cpu / wall, 2),
               "confirm_p50_ms": _r(percentile(confirm_ms, 50)), "confirm_p99_ms": _r(percentile(confirm_ms, 99)),
               "stored": len(stored_ms), "stored_p50_ms": _r(percentile(stored_ms, 50)),
               "stored_p99_ms": _r(percentile(stored_ms, 99)),
               "stored_max_ms": _r(stored_ms[-1] if stored_ms else None)}
        _emit(rec)
        return rec
    finally:
        rig.close()


def _r(v: float | None) -> float | None:
    return None if v is None else round(v, 1)


def _cpu(pid: int) -> float:
    from benchmarks.ingest import proc_cpu
    return proc_cpu(pid) or 0.0


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--cases", default="decode,connections,latency")
    ap.add_argument("--frames", type=int, default=20_000)
    ap.add_argument("--connections", type=int, default=2000)
    ap.add_argument("--devices", type=int, default=100)
    ap.add_argument("--rate", type=float, default=1000)
    ap.add_argument("--seconds", type=float, default=20)
    args = ap.parse_args(argv)
    cases = set(args.cases.split(","))
    summary: dict = {"case": "gateway/summary", "targets": {"sl651_frames_per_cpu_s": DECODE_TARGET,
                                                            "rss_mb_at_2000": RSS_TARGET_MB,
                                                            "stored_p99_ms": P99_TARGET_MS}}
    with tempfile.TemporaryDirectory(prefix="bench-gateway-") as tmp:
        if "decode" in cases:
            log("decode")
            recs = bench_decode(args.frames)
            summary["sl651_frames_per_cpu_s"] = recs[0]["frames_per_cpu_s"]
        if "connections" in cases:
            log(f"connections: {args.connections}")
            rec = bench_connections(Path(tmp) / "connections", args.connections)
            summary["rss_mb"] = rec["rss_mb"]
        if "latency" in cases:
            log(f"latency: {args.rate:g} reports/s from {args.devices} devices for {args.seconds:g} s")
            rec = bench_latency(Path(tmp) / "latency", args.devices, args.rate, args.seconds)
            summary["stored_p99_ms"] = rec["stored_p99_ms"]
    _emit(summary)


if __name__ == "__main__":
    main()
