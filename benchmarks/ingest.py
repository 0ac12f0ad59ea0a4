"""Ingest throughput and memory: a QoS 1 backlog in a real Mosquitto drained by ONE ingest process.

``python -m benchmarks.ingest [--messages N] [--cases PATTERNS] [--backlog-memory] [--repeat K]``

Per case: a fresh store; the consumer's persistent session is created first (it runs until the broker
logs its subscription, then stops); the backlog is published with a flow-controlled
``core.mqtt.Publisher`` (QoS 1); then the consumer starts again and its drain is measured: wall time
from its connection (broker log) to the last write (the store files' mtime), CPU time of the consumer
process over the same span (``/proc/<pid>/stat``), peak RSS (``VmHWM`` just before SIGTERM; ``ru_maxrss``
from ``wait4`` too). Readings stored must equal readings published exactly, else ``"complete": false``.
Cases of one message shape share one published backlog (all their sessions exist before it).

Cases (``--cases``: comma list of names or fnmatch patterns, e.g. ``'ingest/*,*/single/*'``):

* ``ingest/single/{sqlite,influxdb}`` -- ``python -m ingest``, one reading per message;
* ``ingest/batch/{sqlite,influxdb}``  -- an RTU's batch: 12 five-minute timestamps x all the station's metrics;
* ``naive/single/{sqlite,influxdb}``  -- ``benchmarks.naive_consumer``: auto-ack, one INSERT+COMMIT or one
  POST /write per message (the tutorial way);
* ``mosquitto_sub/single``            -- the broker's own C client draining the same backlog (no store);
* ``ingest/backlog-1m/influxdb``      -- only with ``--backlog-memory``: 1,000,000 single-reading messages,
  for the ingest's peak RSS.

One JSON line per case on stdout, then one ``summary`` line (ratios, the issue's targets with pass/fail,
the environment); progress on stderr. The exit status does not depend on the targets.
See benchmarks/README.md for the method and how to read the numbers.
"""

from __future__ import annotations

import argparse
import fnmatch
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Callable, Iterator

from core import topics
from core.broker import free_port
from core.domain import METRICS, Station
from core.mqtt import Publisher
from core.payload import encode, encode_batch, topic_for
from core.registry import open_registry
from core.settings import Settings
from core.timeutil import utcnow
from core.tsdb import open_store
from simulators import generate_district
from support.servers import InfluxServer, MosquittoServer, find_binary

REPO = Path(__file__).resolve().parents[1]
BATCH_TIMESTAMPS = 12  # an RTU's five-minute batch: 12 readings of every metric, one hour
STEP_S = 300
PUBLISH_WINDOW = 2000  # unacknowledged QoS 1 publishes at most (paho stalls past 65,535: docs/domain.md)
CLK_TCK = os.sysconf("SC_CLK_TCK")

TARGETS = {
    "single_msgs_per_cpu_s": 15_000,
    "batch_readings_per_cpu_s": 100_000,
    "backlog_peak_rss_mb": 200,
    "vs_naive": 10,
}


# ---------------------------------------------------------------------------------------------------------
# Cases and backlogs
# ---------------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Case:
    consumer: str  # ingest | naive | mosquitto_sub
    shape: str     # single | batch | backlog-1m
    store: str     # sqlite | influxdb | -

    @property
    def name(self) -> str:
        return f"{self.consumer}/{self.shape}" + (f"/{self.store}" if self.store != "-" else "")

    @property
    def slug(self) -> str:
        return re.sub(r"[^A-Za-z0-9]+", "_", self.name).strip("_").lower()


CASES = [
    Case("mosquitto_sub", "single", "-"),
    Case("ingest", "single", "sqlite"),
    Case("ingest", "single", "influxdb"),
    Case("naive", "single", "sqlite"),
    Case("naive", "single", "influxdb"),
    Case("ingest", "batch", "sqlite"),
    Case("ingest", "batch", "influxdb"),
]
BACKLOG_CASE = Case("ingest", "backlog-1m", "influxdb")

# Plausible values well inside every metric's limits (core.domain.METRICS).
_TYPICAL = {"water_level_m": 42.0, "storage_mcm": 12.0, "inflow_m3s": 4.0, "outflow_m3s": 3.0,
            "seepage_pressure_kpa": 180.0, "rain_mm": 0.5, "flow_m3s": 15.0, "turbidity_ntu": 0.4, "ph": 7.3,
            "free_chlorine_mgl": 0.5, "pressure_mpa": 0.3, "flow_m3h": 25.0, "depth_m": 11.0, "volume_m3": 120000.0}


def _value(metric: str, i: int) -> float:
    base = _TYPICAL.get(metric)
    if base is None:
        spec = next(m[metric] for m in METRICS.values() if metric in m)
        base = (spec.min + spec.max) / 2
    return round(base * (1 + ((i * 7919) % 101 - 50) / 1000), 4)


@dataclass
class Backlog:
    shape: str
    messages: int
    stations: list[Station]
    t0: datetime
    readings: int = 0

    def __post_init__(self) -> None:
        if self.shape == "batch":
            per = [BATCH_TIMESTAMPS * len(METRICS[s.kind.value]) for s in self.stations]
            full, rest = divmod(self.messages, len(self.stations))
            self.readings = full * sum(per) + sum(per[:rest])
        else:
            self.readings = self.messages

    @property
    def readings_per_message(self) -> float:
        return round(self.readings / self.messages, 2) if self.messages else 0.0

    def __iter__(self) -> Iterator[tuple[str, bytes]]:
        """Round-robin over every station; (station, metric, time) never repeats, so each reading is one point."""
        n_st = len(self.stations)
        metrics = {k: list(m) for k, m in METRICS.items()}
        step = timedelta(seconds=STEP_S)
        for i in range(self.messages):
            st = self.stations[i % n_st]
            kind = st.kind.value
            r = i // n_st
            topic = topic_for(kind, st.id)
            if self.shape == "batch":
                base = self.t0 + step * (BATCH_TIMESTAMPS * r)
                yield topic, encode_batch([(base + step * k, {m: _value(m, i + k) for m in metrics[kind]})
                                           for k in range(BATCH_TIMESTAMPS)])
            else:
                ms = metrics[kind]
                yield topic, encode(self.t0 + step * r, {ms[r % len(ms)]: _value(ms[r % len(ms)], i)})


# ---------------------------------------------------------------------------------------------------------
# Process and broker-log helpers
# ---------------------------------------------------------------------------------------------------------

def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def proc_cpu(pid: int) -> float | None:
    """User + system CPU seconds of a live process (all threads)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / CLK_TCK
    except (OSError, IndexError, ValueError):
        return None


def thread_cpu(pid: int) -> dict[int, float]:
    """CPU seconds of each live thread of a process, by thread id."""
    out: dict[int, float] = {}
    try:
        tids = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return out
    for tid in tids:
        try:
            with open(f"/proc/{pid}/task/{tid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            out[int(tid)] = (int(fields[11]) + int(fields[12])) / CLK_TCK
        except (OSError, IndexError, ValueError):
            pass
    return out


def thread_split(pid: int, before: dict[int, float], after: dict[int, float]) -> dict[str, float]:
    """CPU per thread over a span: ``main``, then the others in start order (``t1``, ``t2``, ...)."""
    others = sorted(t for t in after if t != pid)
    names = {pid: "main", **{t: f"t{i}" for i, t in enumerate(others, 1)}}
    return {names[t]: round(after[t] - before.get(t, 0.0), 3) for t in sorted(after, key=lambda t: (t != pid, t))}


def proc_status_kb(pid: int, key: str) -> int | None:
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith(key + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


class Waiter:
    """``os.wait4`` in a thread: exit time and rusage of a child, however it ends."""

    def __init__(self, proc: subprocess.Popen) -> None:
        self.proc = proc
        self.exited_at: float | None = None
        self.status: int | None = None
        self.rusage = None
        self._done = threading.Event()
        threading.Thread(target=self._wait, daemon=True).start()

    def _wait(self) -> None:
        _, status, ru = os.wait4(self.proc.pid, 0)
        self.exited_at = time.time()
        self.status, self.rusage = status, ru
        self.proc.returncode = os.waitstatus_to_exitcode(status)
        self._done.set()

    def wait(self, timeout: float | None = None) -> bool:
        return self._done.wait(timeout)

    @property
    def done(self) -> bool:
        return self._done.is_set()

    @property
    def cpu(self) -> float | None:
        return None if self.rusage is None else self.rusage.ru_utime + self.rusage.ru_stime

    @property
    def maxrss_mb(self) -> float | None:
        return None if self.rusage is None else self.rusage.ru_maxrss / 1024

    def stop(self, timeout: float = 30.0) -> bool:
        """SIGTERM, then SIGKILL after ``timeout``; True if it stopped on SIGTERM."""
        if self.done:
            return True
        self.proc.send_signal(signal.SIGTERM)
        if self.wait(timeout):
            return True
        self.proc.kill()
        self.wait(10)
        return False


class BrokerLog:
    """Follows the private Mosquitto's log (connections and, with ``log_type subscribe``, subscriptions)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.pos = 0
        self._partial = ""

    def skip(self) -> None:
        self.pos = self.path.stat().st_size if self.path.exists() else 0
        self._partial = ""

    def lines(self) -> list[str]:
        try:
            with open(self.path, "rb") as f:
                f.seek(self.pos)
                data = f.read()
        except FileNotFoundError:
            return []
        self.pos += len(data)
        text = self._partial + data.decode(errors="replace")
        *complete, self._partial = text.split("\n")
        return complete

    def wait_for(self, regex: re.Pattern, timeout: float, alive: Callable[[], bool] = lambda: True,
                 interval: float = 0.005) -> tuple[re.Match | None, float]:
        deadline = time.monotonic() + timeout
        while True:
            for line in self.lines():
                m = regex.search(line)
                if m:
                    return m, time.time()
            if time.monotonic() > deadline or not alive():
                return None, time.time()
            time.sleep(interval)


def connected_re(prefix: str) -> re.Pattern:
    return re.compile(rf" as ({re.escape(prefix)}\S*) \(")


def subscribed_re(prefix: str) -> re.Pattern:
    return re.compile(rf"^\d+: ({re.escape(prefix)}\S*) [0-2] (\S+)\s*$")


def disconnected_re(client_id: str) -> re.Pattern:
    c = re.escape(client_id)
    return re.compile(rf"[Cc]lient {c} (disconnected|closed its connection)|on client {c}, disconnecting|"
                      rf"[Cc]lient {c} has exceeded timeout")


# ---------------------------------------------------------------------------------------------------------
# Stores: a fresh one per case, watched through their files' mtime and counted at the end
# ---------------------------------------------------------------------------------------------------------

class StoreProbe:
    url: str
    count_every_s: float

    def mtime(self) -> float:
        raise NotImplementedError

    def count(self) -> int:
        return sum(self._store.counts_by_kind().values())

    def close(self) -> None:
        self._store.close()


class SQLiteProbe(StoreProbe):
    count_every_s = 1.0

    def __init__(self, path: Path) -> None:
        self.path = path
        self.url = f"sqlite:///{path}"
        self._store = open_store(self.url)  # creates the schema (the naive consumer needs the table)
        self._files = [path, Path(f"{path}-wal")]

    def mtime(self) -> float:
        best = 0.0
        for p in self._files:
            try:
                best = max(best, p.stat().st_mtime)
            except FileNotFoundError:
                pass
        return best


class InfluxProbe(StoreProbe):
    count_every_s = 3.0  # count(*) over a million points costs influxd real CPU: mostly counted when idle

    def __init__(self, server: InfluxServer, database: str) -> None:
        self.server, self.database = server, database
        server.query(f'CREATE DATABASE "{database}"')
        self.url = server.url_for(database)
        self._store = open_store(self.url)
        self._wal = server.workdir / "wal" / database

    def mtime(self) -> float:
        best = 0.0
        if self._wal.exists():
            for root, _dirs, files in os.walk(self._wal):
                for name in files:
                    try:
                        best = max(best, os.stat(os.path.join(root, name)).st_mtime)
                    except FileNotFoundError:
                        pass
        return best

    def close(self) -> None:
        super().close()
        try:
            self.server.query(f'DROP DATABASE "{self.database}"')
        except Exception as exc:  # noqa: BLE001 - cleanup only
            log(f"could not drop {self.database}: {exc}")


# ---------------------------------------------------------------------------------------------------------
# The benchmark
# ---------------------------------------------------------------------------------------------------------

@dataclass
class Run:
    case: Case
    workdir: Path
    prefix: str
    probe: StoreProbe | None
    startup_cpu_s: float | None = None
    client_ids: set[str] = field(default_factory=set)


class Bench:
    def __init__(self, root: Path, broker: MosquittoServer, influx: InfluxServer | None, registry_url: str,
                 profile_dir: Path | None, ingest_env: dict[str, str] | None = None,
                 strace_dir: Path | None = None) -> None:
        self.root, self.broker, self.influx, self.registry_url = root, broker, influx, registry_url
        self.blog = BrokerLog(broker.log)
        self.profile_dir = profile_dir
        self.ingest_env = ingest_env or {}
        self.strace_dir = strace_dir
        self.mosquitto_sub = find_binary("mosquitto_sub", "/usr/bin/mosquitto_sub")
        self.run_id = uuid.uuid4().hex[:6]
        self._last_progress_log = 0.0
        self._children: list[subprocess.Popen] = []

    def kill_children(self) -> None:
        """On an error or ^C: stop every consumer this benchmark started that still runs (by its pid)."""
        for proc in self._children:
            if proc.returncode is None:  # set by Waiter once reaped
                try:
                    proc.kill()
                except ProcessLookupError:
                    pass

    # -- commands ---------------------------------------------------------------------------------------
    def _env(self, run: Run) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("SMARTWATER_")}
        env.update(SMARTWATER_MQTT_URL=self.broker.url, SMARTWATER_DATA_DIR=str(run.workdir),
                   SMARTWATER_DB_URL=self.registry_url,
                   SMARTWATER_MQTT_CLIENT_PREFIX=run.prefix, SMARTWATER_LOG_LEVEL="WARNING",
                   PYTHONPATH=os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])))
        if run.probe:
            env["SMARTWATER_TSDB_URL"] = run.probe.url
        if run.case.consumer == "ingest":
            # /metrics on a free port: the default 9108 may be taken (tests, a running stack); 0 would
            # switch the server off and measure less than production runs.
            env["SMARTWATER_INGEST_METRICS_PORT"] = str(free_port())
            env.update(self.ingest_env)
        return env

    def _cmd(self, run: Run, messages: int = 0, profile: Path | None = None) -> list[str]:
        c = run.case.consumer
        if c == "ingest":
            if profile:
                return [sys.executable, "-m", "benchmarks.profile_ingest", "-o", str(profile), "ingest"]
            return [sys.executable, "-m", "ingest"]
        if c == "naive":
            return [sys.executable, "-m", "benchmarks.naive_consumer", "--mqtt-url", self.broker.url,
                    "--client-id", f"{run.prefix}-naive", "--store", run.probe.url]
        cmd = [self.mosquitto_sub, "-h", "127.0.0.1", "-p", str(self.broker.port), "-q", "1", "-c",
               "-i", f"{run.prefix}-sub", "-t", topics.ALL]
        return cmd + (["-C", str(messages)] if messages else [])

    def _spawn(self, run: Run, cmd: list[str], stdout=subprocess.DEVNULL) -> subprocess.Popen:
        errlog = open(run.workdir / f"{run.case.consumer}.stderr", "ab")
        try:
            proc = subprocess.Popen(cmd, env=self._env(run), cwd=run.workdir, stdin=subprocess.DEVNULL,
                                    stdout=stdout, stderr=errlog)
            self._children.append(proc)
            return proc
        finally:
            errlog.close()

    def _stderr_tail(self, run: Run) -> str:
        p = run.workdir / f"{run.case.consumer}.stderr"
        return p.read_text(errors="replace")[-1500:] if p.exists() else ""

    # -- set-up -----------------------------------------------------------------------------------------
    def prepare(self, case: Case, rep: int = 0) -> Run:
        tag = f"{case.slug}_{rep}"
        workdir = self.root / tag
        workdir.mkdir(parents=True, exist_ok=True)
        prefix = f"b{self.run_id}-{tag.replace('_', '-')}"
        probe: StoreProbe | None = None
        if case.store == "sqlite":
            probe = SQLiteProbe(workdir / "timeseries.sqlite3")
        elif case.store == "influxdb":
            assert self.influx is not None
            probe = InfluxProbe(self.influx, f"bench_{self.run_id}_{tag}")
        run = Run(case, workdir, prefix, probe)
        self.create_session(run)
        return run

    def create_session(self, run: Run) -> None:
        """Start the consumer until the broker logs its subscription, then stop it: the session stays."""
        self.blog.skip()
        proc = self._spawn(run, self._cmd(run))
        waiter = Waiter(proc)
        sub_re = subscribed_re(run.prefix)
        m, _ = self.blog.wait_for(sub_re, 60, alive=lambda: not waiter.done)
        if not m:
            waiter.stop(5)
            raise RuntimeError(f"{run.case.name}: no subscription within 60 s\n{self._stderr_tail(run)}")
        run.client_ids.add(m.group(1))
        time.sleep(0.5)  # settle; more worker clients of the same consumer may subscribe meanwhile
        for line in self.blog.lines():
            mm = sub_re.search(line)
            if mm:
                run.client_ids.add(mm.group(1))
        run.startup_cpu_s = proc_cpu(proc.pid)
        if not waiter.stop():
            log(f"{run.case.name}: consumer needed SIGKILL while creating its session")
        # It must be offline before the backlog is published, or it would take (and ack) part of it.
        for cid in sorted(run.client_ids):
            if not self.blog.wait_for(disconnected_re(cid), 10)[0]:
                log(f"{run.case.name}: broker did not log {cid} disconnecting")
        log(f"{run.case.name}: persistent session ready ({', '.join(sorted(run.client_ids))}; "
            f"idle start {run.startup_cpu_s:.2f} CPU-s)")

    def publish(self, backlog: Backlog, tag: str) -> None:
        settings = Settings(data_dir=self.root, mqtt_url=self.broker.url, _env_file=None)
        # paho's own in-flight limit off (its queue re-scan per PUBACK costs O(in flight)); the window
        # below keeps fewer than PUBLISH_WINDOW unacknowledged, far from the 65,535 packet ids.
        pub = Publisher(settings, f"b{self.run_id}-pub-{tag}", max_inflight=0).start()
        t0, c0 = time.perf_counter(), time.process_time()
        last = t0
        try:
            for i, (topic, payload) in enumerate(backlog):
                if i % 64 == 0:
                    pub.wait_for_room(PUBLISH_WINDOW)
                    if time.perf_counter() - last > 10:
                        last = time.perf_counter()
                        log(f"  published {i:,}/{backlog.messages:,}")
                pub.publish(topic, payload)
            if not pub.flush(timeout=300):
                raise RuntimeError(f"{pub.outstanding} publishes still unacknowledged after 300 s")
        finally:
            pub.stop()
        el = time.perf_counter() - t0
        log(f"published {backlog.messages:,} {backlog.shape} messages ({backlog.readings:,} readings) in {el:.1f} s "
            f"({backlog.messages / el:,.0f} msg/s, publisher {time.process_time() - c0:.1f} CPU-s)")

    # -- measurement ------------------------------------------------------------------------------------
    def drain(self, run: Run, backlog: Backlog) -> dict:
        if run.case.consumer == "mosquitto_sub":
            return self._drain_mosquitto_sub(run, backlog)
        return self._drain_process(run, backlog)

    def _result(self, run: Run, backlog: Backlog, readings: int, complete: bool, wall: float | None,
                cpu: float | None, peak_rss_mb: float | None, **extra) -> dict:
        def rate(n: float, d: float | None) -> int | None:
            return round(n / d) if d else None

        return {"case": run.case.name, "store": run.case.store, "messages": backlog.messages, "readings": readings,
                "readings_per_message": backlog.readings_per_message, "complete": complete,
                "wall_s": None if wall is None else round(wall, 3),
                "msgs_per_s": rate(backlog.messages, wall) if complete else None,
                "readings_per_s": rate(readings, wall) if complete else None,
                "cpu_s": None if cpu is None else round(cpu, 3),
                "msgs_per_cpu_s": rate(backlog.messages, cpu) if complete else None,
                "readings_per_cpu_s": rate(readings, cpu) if complete else None,
                "peak_rss_mb": None if peak_rss_mb is None else round(peak_rss_mb, 1), **extra}

    def _drain_mosquitto_sub(self, run: Run, backlog: Backlog) -> dict:
        out_path = run.workdir / "received.txt"
        with open(out_path, "wb") as out:
            started = time.time()
            proc = self._spawn(run, self._cmd(run, backlog.messages), stdout=out)
            waiter = Waiter(proc)
            timeout = 120 + backlog.messages / 5000
            deadline = time.monotonic() + timeout
            hwm_kb = None
            # VmHWM only exists while it runs (ru_maxrss from wait4 also counts the fork of this big
            # Python process before exec, so it says nothing about mosquitto_sub itself).
            while not (finished := waiter.wait(0.02)) and time.monotonic() < deadline:
                hwm_kb = proc_status_kb(proc.pid, "VmHWM") or hwm_kb
            if not finished:
                log(f"{run.case.name}: still running after {timeout:.0f} s, stopping it")
                waiter.stop(5)
        with open(out_path, "rb") as f:
            received = sum(chunk.count(b"\n") for chunk in iter(lambda: f.read(1 << 20), b""))
        complete = finished and proc.returncode == 0 and received == backlog.messages
        wall = (waiter.exited_at or time.time()) - started
        # It stored nothing: "readings" are those carried by the messages it received.
        readings = round(received * backlog.readings / backlog.messages) if backlog.messages else 0
        return self._result(run, backlog, readings, complete, wall, waiter.cpu, hwm_kb / 1024 if hwm_kb else None,
                            messages_received=received, wall_from="process start (a C client starts in ~1 ms)")

    def _drain_process(self, run: Run, backlog: Backlog) -> dict:
        probe = run.probe
        assert probe is not None
        expected = backlog.readings
        profile = self.profile_dir / f"{run.workdir.name}.prof" if self.profile_dir and run.case.consumer == "ingest" \
            else None
        self.blog.skip()
        proc = self._spawn(run, self._cmd(run, profile=profile))
        waiter = Waiter(proc)
        m, t_connect = self.blog.wait_for(connected_re(run.prefix), 60, alive=lambda: not waiter.done)
        cpu_connect = proc_cpu(proc.pid)
        threads_connect = thread_cpu(proc.pid)
        if not m or cpu_connect is None:
            waiter.stop(5)
            raise RuntimeError(f"{run.case.name}: consumer did not connect\n{self._stderr_tail(run)}")
        tracer = None
        if self.strace_dir:
            # Counts every system call of every thread until the end of the drain (diagnostic; slows it).
            trace_out = self.strace_dir / f"{run.workdir.name}.strace"
            tracer = subprocess.Popen([find_binary("strace"), "-f", "-c", "-qq", "-o", str(trace_out),
                                       "-p", str(proc.pid)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

        # Watch the store's files; count (costly on big stores) when writes pause, and now and then.
        last_mtime, last_change = probe.mtime(), time.time()
        last_count_at, stored, reached = 0.0, 0, False
        stall_s = 60.0
        last_progress = time.time()
        while not waiter.done:
            now = time.time()
            mt = probe.mtime()
            if mt != last_mtime:
                last_mtime, last_change = mt, now
            idle = now - last_change
            if (idle >= 0.3 and now - last_count_at >= 0.3) or now - last_count_at >= probe.count_every_s:
                n = probe.count()
                last_count_at = time.time()
                if n != stored:
                    stored, last_progress = n, last_count_at
                    if n < expected and now - self._last_progress_log > 10:
                        self._last_progress_log = now
                        log(f"  {run.case.name}: {n:,}/{expected:,} readings stored")
                if n >= expected:
                    reached = True
                    break
            if idle > stall_s and now - last_progress > stall_s:
                log(f"{run.case.name}: no write for {stall_s:.0f} s at {stored:,}/{expected:,} readings; giving up")
                break
            time.sleep(0.02)
        cpu_end = proc_cpu(proc.pid)
        threads_end = thread_cpu(proc.pid)
        end_wall = probe.mtime()  # the last write
        hwm_kb = proc_status_kb(proc.pid, "VmHWM")
        died = waiter.done
        if tracer is not None:
            tracer.send_signal(signal.SIGINT)  # strace detaches and writes its summary
            try:
                tracer.wait(30)
            except subprocess.TimeoutExpired:
                tracer.kill()
                tracer.wait()
        clean = waiter.stop()
        stored = probe.count()
        complete = reached and stored == expected and not died
        if died:
            log(f"{run.case.name}: consumer exited during the drain (code {proc.returncode})\n{self._stderr_tail(run)}")
        if not clean:
            log(f"{run.case.name}: consumer needed SIGKILL to stop")
        wall = end_wall - t_connect if reached else None
        cpu = (cpu_end - cpu_connect) if cpu_end is not None else None
        extra = {"startup_cpu_s": round(cpu_connect, 3), "cpu_total_s": round(waiter.cpu or 0, 3),
                 "ru_maxrss_mb": round(waiter.maxrss_mb or 0, 1),
                 "cpu_by_thread_s": thread_split(proc.pid, threads_connect, threads_end)}
        if run.case.consumer == "ingest" and self.ingest_env:
            extra["ingest_env"] = self.ingest_env
        if profile:
            extra["profile"] = str(profile)
            extra["profiled"] = True  # cProfile in every thread: CPU times are inflated, not comparable
        if tracer is not None:
            extra["strace"] = str(trace_out)
            extra["profiled"] = True  # ptrace stops on every system call: CPU and wall are inflated
        if not complete:
            extra["expected_readings"] = expected
        return self._result(run, backlog, stored, complete, wall, cpu,
                            (hwm_kb / 1024) if hwm_kb else waiter.maxrss_mb, **extra)


# ---------------------------------------------------------------------------------------------------------
# Summary
# ---------------------------------------------------------------------------------------------------------

def summarize(results: dict[str, dict]) -> dict:
    def get(name: str, key: str) -> float | None:
        r = results.get(name)
        return r.get(key) if r and r.get("complete") else None

    def ratio(a: float | None, b: float | None) -> float | None:
        return round(a / b, 2) if a and b else None

    def check(value: float | None, target: float, higher: bool = True, ran: bool = True) -> dict:
        if value is None:
            return {"value": None, "pass": False if ran else None}
        return {"value": value, "pass": value >= target if higher else value <= target}

    ran = set(results)
    sub = "mosquitto_sub/single"
    ratios = {
        "ingest_vs_naive_readings_per_cpu_s": {
            s: ratio(get(f"ingest/single/{s}", "readings_per_cpu_s"), get(f"naive/single/{s}", "readings_per_cpu_s"))
            for s in ("sqlite", "influxdb")},
        "ingest_vs_mosquitto_sub_msgs_per_cpu_s": {
            s: ratio(get(f"ingest/single/{s}", "msgs_per_cpu_s"), get(sub, "msgs_per_cpu_s"))
            for s in ("sqlite", "influxdb")},
    }
    t = TARGETS
    targets: dict[str, dict] = {}
    for s in ("influxdb", "sqlite"):
        name = f"ingest/single/{s}"
        targets[f"{name} msgs_per_cpu_s >= {t['single_msgs_per_cpu_s']:,}"] = check(
            get(name, "msgs_per_cpu_s"), t["single_msgs_per_cpu_s"], ran=name in ran)
    for s in ("influxdb", "sqlite"):
        name = f"ingest/batch/{s}"
        targets[f"{name} readings_per_cpu_s >= {t['batch_readings_per_cpu_s']:,}"] = check(
            get(name, "readings_per_cpu_s"), t["batch_readings_per_cpu_s"], ran=name in ran)
    bname = BACKLOG_CASE.name
    targets[f"{bname} peak_rss_mb <= {t['backlog_peak_rss_mb']}"] = check(
        get(bname, "peak_rss_mb"), t["backlog_peak_rss_mb"], higher=False, ran=bname in ran)
    for s in ("influxdb", "sqlite"):
        both = f"ingest/single/{s}" in ran and f"naive/single/{s}" in ran
        targets[f"ingest vs naive ({s}) readings_per_cpu_s >= {t['vs_naive']}x"] = check(
            ratios["ingest_vs_naive_readings_per_cpu_s"][s], t["vs_naive"], ran=both)
    return {"case": "summary", "ratios": ratios, "targets": targets,
            "targets_note": "single-message targets at QoS 1; pass null = case not run; "
                            "the InfluxDB lines are the issue's targets, SQLite lines are for comparison"}


# ---------------------------------------------------------------------------------------------------------
# main
# ---------------------------------------------------------------------------------------------------------

def aggregate(per_run: list[dict]) -> dict:
    """One line for repeated runs of a case: the median run by readings per CPU-second, and every run's figures."""
    if len(per_run) == 1:
        return per_run[0]
    bad = [r for r in per_run if not r["complete"]]
    ranked = sorted((r for r in per_run if r["complete"]), key=lambda r: r["readings_per_cpu_s"] or 0)
    chosen = dict(bad[0] if bad else ranked[(len(ranked) - 1) // 2])
    chosen["repeats"] = {"n": len(per_run), "chosen": "first incomplete run" if bad else "median readings_per_cpu_s",
                         **{k: [r.get(k) for r in per_run]
                            for k in ("complete", "wall_s", "cpu_s", "msgs_per_cpu_s", "readings_per_cpu_s",
                                      "peak_rss_mb")}}
    return chosen


def environment(watched: tuple[str, ...] = ("ingest", "core")) -> dict:
    """What was measured: CPUs, Python, and the code's commit (read-only git), with the uncommitted paths
    under the ``watched`` folders, so a figure taken from a dirty tree says so."""
    env: dict = {"cpus": os.cpu_count(), "python": sys.version.split()[0]}
    try:
        git = ["git", "--no-optional-locks", "-C", str(REPO)]
        env["commit"] = subprocess.run(git + ["rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                                       timeout=10).stdout.strip() or None
        dirty = subprocess.run(git + ["status", "--porcelain", "--", *watched], capture_output=True,
                               text=True, timeout=10).stdout.split("\n")
        env[f"uncommitted_in_{'_'.join(watched)}"] = [line[3:] for line in dirty if line.strip()]
    except (OSError, subprocess.SubprocessError):
        pass
    return env


def select_cases(spec: str | None, backlog_memory: bool) -> list[Case]:
    everything = CASES + [BACKLOG_CASE]
    if not spec:
        return CASES + ([BACKLOG_CASE] if backlog_memory else [])
    pats = [p.strip() for p in spec.split(",") if p.strip()]
    picked = [c for c in everything if any(fnmatch.fnmatchcase(c.name, p) for p in pats)]
    if BACKLOG_CASE in picked and not backlog_memory and not any(p == BACKLOG_CASE.name for p in pats):
        picked.remove(BACKLOG_CASE)  # a wildcard alone does not opt into the long case
    if backlog_memory and BACKLOG_CASE not in picked:
        picked.append(BACKLOG_CASE)
    unknown = [p for p in pats if not any(fnmatch.fnmatchcase(c.name, p) for c in everything)]
    if unknown:
        raise SystemExit(f"no case matches {unknown}; cases: {', '.join(c.name for c in everything)}")
    return picked


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.ingest", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    # 50,000 keeps the whole default run near 2 minutes on 2 cores: the naive InfluxDB consumer (one POST per
    # message) drains only ~800 messages/s.
    ap.add_argument("--messages", type=int, default=50_000, help="single-reading messages per backlog (50,000)")
    ap.add_argument("--batch-messages", type=int, default=None,
                    help=f"batched messages ({BATCH_TIMESTAMPS} timestamps x the station's metrics; "
                         "default: --messages / 5)")
    ap.add_argument("--cases", help="comma list of case names or fnmatch patterns (default: all but backlog-1m)")
    ap.add_argument("--backlog-memory", action="store_true",
                    help="add ingest/backlog-1m/influxdb: a 1,000,000-message backlog, peak RSS (takes minutes)")
    ap.add_argument("--backlog-messages", type=int, default=1_000_000, help=argparse.SUPPRESS)
    ap.add_argument("--profile", metavar="DIR", type=Path,
                    help="run the ingest under cProfile (every thread); write DIR/<case>.prof and print the top 15")
    ap.add_argument("--repeat", type=int, default=1, metavar="K",
                    help="drain K identical sessions per case and report the median run (default 1)")
    ap.add_argument("--ingest-env", action="append", default=[], metavar="SMARTWATER_X=VALUE",
                    help="extra setting for the ingest process (repeatable), e.g. SMARTWATER_MQTT_PROTOCOL=3.1.1; "
                         "echoed in every ingest result as \"ingest_env\"")
    ap.add_argument("--strace", metavar="DIR", type=Path,
                    help="diagnostic: count the system calls of each Python consumer during its drain "
                         "(strace -f -c; writes DIR/<case>.strace; inflates its times)")
    ap.add_argument("--list", action="store_true", help="list the cases and exit")
    args = ap.parse_args(argv)
    if args.list:
        for c in CASES + [BACKLOG_CASE]:
            print(c.name)
        return
    cases = select_cases(args.cases, args.backlog_memory)
    ingest_env = {}
    for item in args.ingest_env:
        key, sep, value = item.partition("=")
        if not sep or not key.startswith("SMARTWATER_"):
            ap.error(f"--ingest-env wants SMARTWATER_NAME=VALUE, got {item!r}")
        ingest_env[key] = value
    sizes = {"single": args.messages, "batch": args.batch_messages or max(1, args.messages // 5),
             "backlog-1m": args.backlog_messages}
    for opt in ("profile", "strace"):
        if getattr(args, opt):
            getattr(args, opt).mkdir(parents=True, exist_ok=True)
            setattr(args, opt, getattr(args, opt).resolve())

    # SIGTERM unwinds like ^C, so the finally blocks stop the consumers, influxd and the broker.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    results: dict[str, dict] = {}
    started = time.monotonic()
    load_start = [round(x, 2) for x in os.getloadavg()]
    if load_start[0] > 0.5:
        log(f"note: load average {load_start[0]} before starting: other work on this machine skews the numbers")
    with tempfile.TemporaryDirectory(prefix="smartwater-bench-") as tmp:
        root = Path(tmp)
        # log_type subscribe: the benchmark sees when a session is subscribed. autosave_interval as in
        # deploy/mosquitto/mosquitto.conf (the test default of 1 s rewrites a multi-GB queue every second).
        broker = MosquittoServer(root / "mosquitto", extra_conf="log_type subscribe\nautosave_interval 10\n").start()
        influx = None
        bench: Bench | None = None
        try:
            if any(c.store == "influxdb" for c in cases):
                influx = InfluxServer(root / "influxdb").start()
            stations = generate_district()
            registry_url = f"sqlite:///{root / 'registry.sqlite3'}"
            reg = open_registry(registry_url)
            reg.create_schema()
            reg.upsert_stations(stations)
            reg.close()
            log(f"broker on {broker.port}" + (f", influxd on {influx.port}" if influx else "")
                + f"; registry: {len(stations)} stations; cases: {', '.join(c.name for c in cases)}")
            bench = Bench(root, broker, influx, registry_url, args.profile, ingest_env, args.strace)
            t0 = (utcnow() - timedelta(days=40)).replace(second=0, microsecond=0)
            t0 -= timedelta(minutes=t0.minute % 5)
            for shape in ("single", "batch", "backlog-1m"):
                group = [c for c in cases if c.shape == shape]
                if not group:
                    continue
                backlog = Backlog("single" if shape == "backlog-1m" else shape, sizes[shape], stations, t0)
                log(f"== {shape}: {backlog.messages:,} messages, {backlog.readings:,} readings "
                    f"({backlog.readings_per_message} per message); sessions: {len(group)}")
                runs = {c: [bench.prepare(c, rep) for rep in range(args.repeat)] for c in group}
                bench.publish(backlog, shape)
                for case, reps in runs.items():
                    per_run = []
                    for i, run in enumerate(reps, 1):
                        log(f"draining {case.name}" + (f" (run {i}/{len(reps)})" if len(reps) > 1 else "") + " ...")
                        try:
                            res = bench.drain(run, backlog)
                        finally:
                            if run.probe:
                                run.probe.close()
                            shutil.rmtree(run.workdir, ignore_errors=True)
                        per_run.append(res)
                        log(f"{case.name}: complete={res['complete']} wall={res['wall_s']} s cpu={res['cpu_s']} s "
                            f"msgs/CPU-s={res['msgs_per_cpu_s']} readings/CPU-s={res['readings_per_cpu_s']} "
                            f"peak RSS={res['peak_rss_mb']} MB")
                        if res.get("profile"):
                            from benchmarks.profile_ingest import show

                            show(res["profile"], 15, out=sys.stderr)
                    res = aggregate(per_run)
                    results[case.name] = res
                    print(json.dumps(res), flush=True)
        finally:
            if bench is not None:
                bench.kill_children()
            if influx:
                influx.stop()
            broker.stop()
    summary = summarize(results)
    summary["elapsed_s"] = round(time.monotonic() - started, 1)
    summary["environment"] = {**environment(), "loadavg_at_start": load_start,
                              "loadavg_at_end": [round(x, 2) for x in os.getloadavg()]}
    print(json.dumps(summary), flush=True)


if __name__ == "__main__":
    main()
