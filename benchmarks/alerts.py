"""Alert latency and evaluation cost.

``python -m benchmarks.alerts [--parts latency,evaluation] [--duration S] [--rate R] [--repeat K] ...``

1. **latency** -- ``python -m alerts`` in a subprocess against a private Mosquitto (registry: the generated
   district and the default rules, SQLite; store: SQLite). A publisher thread keeps a steady background load
   of normal readings (``--rate``, default 2,000 readings/s, one reading per QoS 1 message, flow-controlled)
   that raise nothing; every ``--probe-interval`` (200 ms) a second publisher sends one reading that raises a
   fresh alert on a station not probed before (a river level 0.5 m above its guaranteed level -> red
   ``river_level``; turbidity 5 NTU at a village water point -> orange ``turbidity``, the probe being the
   reading that confirms a first one sent, 10 min earlier in data time, before the warm-up). A local HTTP server in
   this process is the service's only webhook (``SMARTWATER_WEBHOOK_URLS``); latency = webhook receipt time -
   probe publish time (both ``time.time()`` in this process), matched by station id. Every probe must arrive.
2. **evaluation** -- an in-process ``AlertEngine`` (no-op notifier) over ``--stations`` (10,000: 2,000 rain
   gauges, 1,000 reservoirs, 1,000 river stations, 6,000 village water points; registry on SQLite with the
   default rules), its windows filled with 24 h of normal data through ``engine.process`` (rain every 5 min,
   every metric of the other stations every 10 min), then: (a) one pass = one new reading for each station
   through ``engine.process`` (one call with all of them; also one call per reading, as the service does,
   and per station kind), (b) one ``check_stale(now)`` over every station, (c) the RSS the filled engine
   adds. Each timing is repeated ``--repeat`` (5) times, the median of wall and of CPU time (process_time)
   reported; (a) is profiled once with cProfile (top functions by tottime).

One JSON line per measurement on stdout, then an ``alerts/summary`` line with the targets (p99 latency <= 500 ms,
pass <= 50 ms) and pass/fail; progress on stderr. The exit status does not depend on the targets.
See benchmarks/README.md for the method and how to read the numbers.
"""

from __future__ import annotations

import argparse
import cProfile
import gc
import io
import json
import math
import os
import pstats
import random
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Callable

from benchmarks.ingest import (PUBLISH_WINDOW, REPO, BrokerLog, Waiter, environment, log, proc_cpu,
                               proc_status_kb, subscribed_re, thread_cpu, thread_split)
from core import topics
from core.domain import METRICS, Kind, Reading, Station
from core.mqtt import MqttConsumer, Publisher
from core.payload import encode, topic_for
from core.registry import open_registry
from core.rules import default_rules
from core.settings import Settings
from core.timeutil import utcnow
from core.tsdb import open_store
from simulators import generate_district
from support.servers import MosquittoServer

TARGETS = {"latency_p99_ms": 500.0, "pass_ms": 50.0}

RIVER_PROBE_ABOVE_GUARANTEED_M = 0.5
VILLAGE_PROBE_TURBIDITY_NTU = 5.0
EXPECTED_RULE = {"river": "river_level", "village_water": "turbidity"}
EXPECTED_SEVERITY = {"river": "red", "village_water": "orange"}

# Normal values (core.domain.METRICS units), far from every default rule's threshold.
_NORMAL = {"storage_mcm": 12.0, "inflow_m3s": 4.0, "outflow_m3s": 3.0, "seepage_pressure_kpa": 180.0,
           "flow_m3s": 15.0, "turbidity_ntu": 0.4, "ph": 7.3, "free_chlorine_mgl": 0.5, "pressure_mpa": 0.3,
           "flow_m3h": 25.0, "depth_m": 11.0, "volume_m3": 120000.0}


def normal_value(st: Station, metric: str, i: int) -> float:
    """A plausible reading that raises nothing: never the same value 12 times in a row (stuck rule), small steps
    (spike, rate-of-rise), levels well below the flood-limit / warning levels, (almost) no rain."""
    wobble = ((i * 7919) % 13 - 6) / 600  # -1 % .. +1 %, period 13
    if metric == "rain_mm":
        return 0.1 if i % 10 == 0 else 0.0
    if metric == "water_level_m":
        if st.kind == Kind.reservoir:
            base = (st.dead_level_m if st.dead_level_m is not None else 40.0) + 1.5
        elif st.warning_level_m is not None:
            base = st.warning_level_m - 1.0
        else:
            base = 10.0
        return round(base + wobble * 3, 3)  # +-0.03 m
    return round(_NORMAL[metric] * (1 + wobble), 4)


def percentile(sorted_values: list[float], p: float) -> float | None:
    """Nearest-rank percentile (the smallest value with at least p % of the values at or below it)."""
    if not sorted_values:
        return None
    k = max(1, math.ceil(p / 100 * len(sorted_values)))
    return sorted_values[k - 1]


def rss_mb(pid: int | None = None) -> float | None:
    kb = proc_status_kb(pid or os.getpid(), "VmRSS")
    return None if kb is None else kb / 1024


# ---------------------------------------------------------------------------------------------------------
# 1. Latency: publish -> broker -> python -m alerts -> webhook
# ---------------------------------------------------------------------------------------------------------

class HookReceiver:
    """The alert service's webhook: records when each station's first ``raised`` event arrives."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.first_raised: dict[str, tuple[float, dict]] = {}
        self.events: list[tuple[float, dict]] = []
        rec = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's name
                body = self.rfile.read(int(self.headers.get("content-length") or 0))
                t = time.time()
                self.send_response(204)
                self.end_headers()
                try:
                    doc = json.loads(body)
                except ValueError:
                    doc = {"event": "undecodable"}
                with rec.lock:
                    rec.events.append((t, doc))
                    sid = doc.get("station_id")
                    if doc.get("event") == "raised" and sid and sid not in rec.first_raised:
                        rec.first_raised[sid] = (t, doc)

            def log_message(self, *_args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_port}/hook"
        self._thread = threading.Thread(target=self.server.serve_forever, name="webhook", daemon=True)
        self._thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class AlertTopicListener(MqttConsumer):
    """water/alerts/#: the service's MQTT notification of the same alerts, a second arrival time."""

    def __init__(self, settings: Settings, client_id: str) -> None:
        super().__init__(settings, client_id, [(topics.ALERTS, 1)], persistent=False, name="bench.listener")
        self.first_raised: dict[str, float] = {}

    def handle(self, msg: Any) -> None:
        t = time.time()
        try:
            doc = json.loads(msg.payload)
        except ValueError:
            return
        sid = doc.get("station_id")
        if doc.get("event") == "raised" and sid and sid not in self.first_raised:
            self.first_raised[sid] = t


class BackgroundLoad(threading.Thread):
    """Normal readings at a steady rate, one per message, round-robin over every (station, metric)."""

    def __init__(self, pub: Publisher, stations: list[Station], rate: float, skip: set[tuple[str, str]]) -> None:
        super().__init__(name="background-load", daemon=True)
        self.pub, self.rate, self.skip = pub, rate, skip
        self.plan = [(topic_for(st.kind.value, st.id), st, m) for st in stations for m in METRICS[st.kind.value]]
        self.stop_event = threading.Event()
        self.sent = 0
        self.started_at = self.stopped_at = 0.0
        self.max_behind = 0  # most messages the publisher was behind its schedule
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            self._run()
        except BaseException as exc:  # noqa: BLE001 - reported by the benchmark
            self.error = exc
        finally:
            self.stopped_at = time.perf_counter()

    def _run(self) -> None:
        plan, n_plan, skip, pub = self.plan, len(self.plan), self.skip, self.pub
        i = 0
        t0 = self.started_at = time.perf_counter()
        while not self.stop_event.is_set():
            due = int((time.perf_counter() - t0) * self.rate)
            behind = due - self.sent
            if behind <= 0:
                time.sleep(min(0.005, (self.sent + 1 - due) / self.rate))
                continue
            self.max_behind = max(self.max_behind, behind)
            if not pub.wait_for_room(PUBLISH_WINDOW, self.stop_event):
                break
            ts = utcnow()
            for _ in range(min(behind, 500)):
                while True:
                    topic, st, metric = plan[i % n_plan]
                    i += 1
                    if (st.id, metric) not in skip:
                        break
                pub.publish(topic, encode(ts, {metric: normal_value(st, metric, i // n_plan + i)}))
                self.sent += 1

    @property
    def achieved_rate(self) -> float | None:
        span = (self.stopped_at or time.perf_counter()) - self.started_at
        return self.sent / span if span > 0 else None


def probe_plan(stations: list[Station]) -> list[tuple[Station, str, float]]:
    """Stations to raise one fresh alert each: rivers spread among the villages (one river in ten probes)."""
    rivers = [(s, "water_level_m", round(s.guaranteed_level_m + RIVER_PROBE_ABOVE_GUARANTEED_M, 2))
              for s in stations if s.kind == Kind.river and s.guaranteed_level_m is not None]
    villages = [(s, "turbidity_ntu", VILLAGE_PROBE_TURBIDITY_NTU) for s in stations if s.kind == Kind.village_water]
    out: list[tuple[Station, str, float]] = []
    while rivers or villages:
        if rivers and (not villages or len(out) % 10 == 0):
            out.append(rivers.pop(0))
        else:
            out.append(villages.pop(0))
    return out


def run_latency(root: Path, args: argparse.Namespace) -> dict:
    run_id = uuid.uuid4().hex[:6]
    prefix = f"b{run_id}-alerts"
    broker = MosquittoServer(root / "mosquitto", extra_conf="log_type subscribe\nautosave_interval 10\n").start()
    blog = BrokerLog(broker.log)
    hook = HookReceiver()
    proc: subprocess.Popen | None = None
    waiter: Waiter | None = None
    pubs: list[Publisher] = []
    listener: AlertTopicListener | None = None
    background: BackgroundLoad | None = None
    workdir = root / "alerts"
    workdir.mkdir()
    try:
        stations = generate_district()
        registry_url = f"sqlite:///{root / 'registry.sqlite3'}"
        reg = open_registry(registry_url)
        reg.create_schema()
        reg.upsert_stations(stations)
        reg.upsert_rules(default_rules())
        reg.close()
        store_url = f"sqlite:///{root / 'timeseries.sqlite3'}"
        open_store(store_url).close()  # the schema; the service refills from it (empty) at start

        env = {k: v for k, v in os.environ.items() if not k.startswith("SMARTWATER_")}
        env.update(SMARTWATER_MQTT_URL=broker.url, SMARTWATER_DATA_DIR=str(workdir), SMARTWATER_DB_URL=registry_url,
                   SMARTWATER_TSDB_URL=store_url, SMARTWATER_MQTT_CLIENT_PREFIX=prefix,
                   SMARTWATER_WEBHOOK_URLS=hook.url, SMARTWATER_LOG_LEVEL="WARNING",
                   PYTHONPATH=os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])))
        env.update(args.service_env_map)
        # The webhook is local: no proxy from the environment may sit in between.
        env["NO_PROXY"] = env["no_proxy"] = ",".join(filter(None, ["127.0.0.1,localhost", env.get("NO_PROXY")]))
        blog.skip()
        errpath = workdir / "alerts.stderr"
        cmd = [sys.executable, "-m", "alerts"]
        profile = None
        if args.profile:
            # cProfile in every thread of the service (benchmarks/profile_ingest.py runs any module).
            profile = args.profile / "alerts-service.prof"
            cmd = [sys.executable, "-m", "benchmarks.profile_ingest", "-o", str(profile), "alerts"]
        with open(errpath, "ab") as err:
            proc = subprocess.Popen(cmd, env=env, cwd=workdir, stdin=subprocess.DEVNULL,
                                    stdout=subprocess.DEVNULL, stderr=err)
        waiter = Waiter(proc)
        t_spawn = time.time()
        m, t_sub = blog.wait_for(subscribed_re(prefix), 90, alive=lambda: not waiter.done)
        if not m:
            raise RuntimeError(f"the alert service did not subscribe within 90 s:\n"
                               f"{errpath.read_text(errors='replace')[-2000:]}")
        log(f"alert service (pid {proc.pid}) subscribed as {m.group(1)} {t_sub - t_spawn:.1f} s after spawn; "
            f"{len(stations)} stations; webhook {hook.url}")

        settings = Settings(data_dir=root, mqtt_url=broker.url, _env_file=None)
        listener = AlertTopicListener(settings, f"b{run_id}-listener")
        listener.start()
        if not listener.wait_connected(15):
            raise RuntimeError("the alert-topic listener did not connect")
        # paho's own in-flight limit off (see benchmarks/ingest.py); the window keeps < PUBLISH_WINDOW unacked.
        bg_pub = Publisher(settings, f"b{run_id}-load", max_inflight=0).start()
        pubs.append(bg_pub)
        probe_pub = Publisher(settings, f"b{run_id}-probe", max_inflight=0).start()
        pubs.append(probe_pub)

        plan = probe_plan(stations)
        n_probes = min(len(plan), int(args.duration / args.probe_interval))
        plan = plan[:n_probes]
        probed: set[tuple[str, str]] = set()
        # The turbidity rule wants an exceedance confirmed by the next reading: each village probe gets its first
        # reading above the limit now, 10 min back in data time, and the probe is the confirming one. Those
        # stations get no background readings, which would break the run of readings above the limit.
        t_first = utcnow() - timedelta(minutes=10)
        for st, metric, value in plan:
            if metric == "turbidity_ntu":
                probed.add((st.id, metric))
                probe_pub.publish(topic_for(st.kind.value, st.id), encode(t_first, {metric: value}))
        if not probe_pub.flush(30):
            raise RuntimeError("the broker did not take the village probes' first readings")
        background = BackgroundLoad(bg_pub, stations, args.rate, probed)
        cpu0 = threads0 = None
        broker_cpu0 = proc_cpu(broker.proc.pid)
        background.start()
        log(f"background load {args.rate:,.0f} readings/s; warm-up {args.warmup:g} s, then {n_probes} probes "
            f"every {args.probe_interval * 1000:.0f} ms")
        time.sleep(args.warmup)
        bg_sent0, bg_t0 = background.sent, time.perf_counter()
        cpu0, threads0 = proc_cpu(proc.pid), thread_cpu(proc.pid)
        probes: list[dict] = []
        t_start = time.perf_counter()
        for k, (st, metric, value) in enumerate(plan):
            due = t_start + k * args.probe_interval
            while (delay := due - time.perf_counter()) > 0:
                time.sleep(delay)
            if waiter.done:
                raise RuntimeError(f"the alert service exited (code {proc.returncode}):\n"
                                   f"{errpath.read_text(errors='replace')[-2000:]}")
            probed.add((st.id, metric))
            ts = utcnow()
            payload = encode(ts, {metric: value})
            t_pub = time.time()
            probe_pub.publish(topic_for(st.kind.value, st.id), payload)
            probes.append({"station_id": st.id, "kind": st.kind.value, "t": t_pub})
            if k and k % 50 == 0:
                with hook.lock:
                    got = len(hook.first_raised)
                log(f"  {k} probes published, {got} alerts received; background {background.sent:,} readings")
        t_probes_end = time.perf_counter()
        bg_during = background.sent - bg_sent0
        bg_rate_during = bg_during / (t_probes_end - bg_t0)
        cpu1, threads1 = proc_cpu(proc.pid), thread_cpu(proc.pid)
        broker_cpu1 = proc_cpu(broker.proc.pid)
        background.stop_event.set()
        background.join(10)
        if background.error:
            raise RuntimeError(f"background publisher failed: {background.error!r}")
        # Every probe must arrive; allow the service to catch up.
        deadline = time.monotonic() + args.drain_timeout
        want = {p["station_id"] for p in probes}
        while time.monotonic() < deadline:
            with hook.lock:
                if want <= hook.first_raised.keys():
                    break
            time.sleep(0.05)
        time.sleep(1.0)  # late duplicates or unexpected alerts, if any
        service_rss = rss_mb(proc.pid)
        service_hwm = proc_status_kb(proc.pid, "VmHWM")

        with hook.lock:
            first = dict(hook.first_raised)
            events = list(hook.events)
        lat = []
        missing, wrong = [], []
        mqtt_lat = []
        for p in probes:
            got = first.get(p["station_id"])
            if got is None:
                missing.append(p["station_id"])
                continue
            t_recv, doc = got
            p["latency_ms"] = (t_recv - p["t"]) * 1000
            lat.append(p["latency_ms"])
            if (doc.get("rule"), doc.get("severity")) != (EXPECTED_RULE[p["kind"]], EXPECTED_SEVERITY[p["kind"]]):
                wrong.append({"station_id": p["station_id"], "rule": doc.get("rule"), "severity": doc.get("severity")})
            t_mqtt = listener.first_raised.get(p["station_id"])
            if t_mqtt is not None:
                mqtt_lat.append((t_mqtt - p["t"]) * 1000)
        by_event: dict[str, int] = {}
        raised_per_station: dict[str, int] = {}
        for _, doc in events:
            by_event[doc.get("event", "?")] = by_event.get(doc.get("event", "?"), 0) + 1
            if doc.get("event") == "raised":
                raised_per_station[doc.get("station_id")] = raised_per_station.get(doc.get("station_id"), 0) + 1
        unexpected = sorted(s for s in raised_per_station if s not in want)
        duplicates = sorted(s for s, n in raised_per_station.items() if n > 1)
        lat_sorted = sorted(lat)
        mqtt_sorted = sorted(mqtt_lat)
        worst = sorted((p for p in probes if "latency_ms" in p), key=lambda p: -p["latency_ms"])[:5]
        span = t_probes_end - t_start
        cpu = (cpu1 - cpu0) if cpu1 is not None and cpu0 is not None else None

        def ms(v: float | None) -> float | None:
            return None if v is None else round(v, 1)

        result = {
            "case": "alerts/latency",
            "probes_sent": len(probes), "probes_received": len(lat), "all_received": not missing,
            "missing": missing[:20], "wrong_rule_or_severity": wrong[:20],
            "duplicate_raised": duplicates[:20], "unexpected_raised": unexpected[:20],
            "webhook_events": by_event,
            "latency_ms": {"p50": ms(percentile(lat_sorted, 50)), "p95": ms(percentile(lat_sorted, 95)),
                           "p99": ms(percentile(lat_sorted, 99)), "max": ms(lat_sorted[-1] if lat_sorted else None),
                           "min": ms(lat_sorted[0] if lat_sorted else None),
                           "mean": ms(statistics.fmean(lat) if lat else None)},
            "mqtt_alert_latency_ms": {"n": len(mqtt_sorted), "p50": ms(percentile(mqtt_sorted, 50)),
                                      "p99": ms(percentile(mqtt_sorted, 99)),
                                      "max": ms(mqtt_sorted[-1] if mqtt_sorted else None)},
            "worst": [{"station_id": p["station_id"], "kind": p["kind"], "probe_s": round(p["t"] - probes[0]["t"], 2),
                       "latency_ms": round(p["latency_ms"], 1)} for p in worst],
            "duration_s": round(span, 1), "probe_interval_ms": round(args.probe_interval * 1000),
            "background": {"target_readings_per_s": args.rate,
                           "achieved_readings_per_s": round(bg_rate_during),
                           "achieved_over_whole_run": round(background.achieved_rate or 0),
                           "readings_sent": background.sent, "max_behind_schedule": background.max_behind,
                           "one_reading_per_message": True, "qos": 1},
            "service": {"cpu_s": None if cpu is None else round(cpu, 2),
                        "cpu_share_of_one_core": None if cpu is None else round(cpu / span, 3),
                        "cpu_us_per_message": None if cpu is None else round(cpu / (bg_during + len(probes)) * 1e6, 1),
                        "cpu_by_thread_s": thread_split(proc.pid, threads0, threads1) if threads0 else None,
                        "rss_mb": ms(service_rss), "peak_rss_mb": ms(service_hwm / 1024 if service_hwm else None),
                        "stations": len(stations)},
            "broker_cpu_s": round(broker_cpu1 - broker_cpu0, 2) if broker_cpu0 is not None and broker_cpu1 else None,
            "stderr_tail": errpath.read_text(errors="replace")[-800:] or None,
        }
        if args.service_env_map:
            result["service_env"] = args.service_env_map
        if profile:
            result["profiled"] = True  # cProfile in every thread: latencies and CPU are inflated
            result["profile"] = str(profile)
        return result
    finally:
        if background is not None:
            background.stop_event.set()
            background.join(5)
        for p in pubs:
            try:
                p.stop()
            except Exception:  # noqa: BLE001 - cleanup only
                pass
        if listener is not None:
            listener.stop()
        if waiter is not None and not waiter.stop(20):
            log("the alert service needed SIGKILL to stop")
        if args.profile and (args.profile / "alerts-service.prof").exists():
            from benchmarks.profile_ingest import show

            show(str(args.profile / "alerts-service.prof"), 15, out=sys.stderr)
        hook.close()
        broker.stop()


# ---------------------------------------------------------------------------------------------------------
# 2. Evaluation pass: in-process AlertEngine over a large registry
# ---------------------------------------------------------------------------------------------------------

class NoopNotifier:
    def __init__(self) -> None:
        self.calls = 0

    def notify(self, alert: Any, event: str, **_kw: Any) -> None:
        self.calls += 1


def build_stations(n_rain: int, n_reservoir: int, n_river: int, n_village: int, seed: int = 4) -> list[Station]:
    """Copies of the generated district's stations (their reference levels, curves and seasonal flood
    limits) under new ids, scattered over the district's bounding box."""
    from simulators.district import LAT_MAX, LAT_MIN, LON_MAX, LON_MIN

    rng = random.Random(seed)
    tmpl: dict[str, list[Station]] = {}
    for s in generate_district():
        tmpl.setdefault(s.kind.value, []).append(s)
    out: list[Station] = []
    for kind, prefix, n in (("rain", "RG", n_rain), ("reservoir", "RS", n_reservoir), ("river", "RV", n_river),
                            ("village_water", "VW", n_village)):
        src = tmpl[kind]
        for i in range(n):
            t = src[i % len(src)]
            out.append(t.model_copy(update={"id": f"{prefix}{i + 1:05d}", "name": f"{t.name} #{i + 1}",
                                            "lat": rng.uniform(LAT_MIN, LAT_MAX),
                                            "lon": rng.uniform(LON_MIN, LON_MAX)}))
    return out


def pass_metric(st: Station) -> str:
    """The reading each station contributes to a pass: the metric its alerting rules are mostly about."""
    return {"rain": "rain_mm", "reservoir": "water_level_m", "river": "water_level_m",
            "village_water": "turbidity_ntu"}[st.kind.value]


class Timings(list):
    """Wall seconds of each run (the list) and the process's CPU seconds of each (``cpu``)."""

    def __init__(self) -> None:
        super().__init__()
        self.cpu: list[float] = []


def timed(fn: Callable[[], Any], repeat: int, before: Callable[[], Any] | None = None) -> Timings:
    """Wall and CPU seconds of ``fn`` ``repeat`` times (GC collected before each, ``before`` untimed). CPU time
    (time.process_time) is the steadier figure on a shared machine: waiting for a core does not count."""
    out = Timings()
    for _ in range(repeat):
        if before:
            before()
        gc.collect()
        c = time.process_time()
        t = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t)
        out.cpu.append(time.process_time() - c)
    return out


def summary_ms(samples: list[float]) -> dict:
    ms = [s * 1000 for s in samples]
    out = {"median_ms": round(statistics.median(ms), 2), "min_ms": round(min(ms), 2), "max_ms": round(max(ms), 2),
           "runs_ms": [round(x, 2) for x in ms]}
    cpu = getattr(samples, "cpu", None)
    if cpu:
        cms = [s * 1000 for s in cpu]
        out.update({"cpu_median_ms": round(statistics.median(cms), 2), "cpu_min_ms": round(min(cms), 2),
                    "cpu_runs_ms": [round(x, 2) for x in cms]})
    return out


def window_stats(engine: Any) -> tuple[int, int, int]:
    """(windows, points, numpy bytes) of the engine's windows; also for the engine before the window matrices
    (``engine.series``), so this benchmark can run against an older checkout for an A/B comparison."""
    families = getattr(engine, "families", None)
    if families is None:
        ws = engine.series.values()
        return len(engine.series), sum(len(w) for w in ws), sum(w._ts.nbytes + w._v.nbytes for w in ws)
    fams = [f.m for f in families.values()]
    return sum(m.rows for m in fams), sum(m.points for m in fams), sum(m.nbytes for m in fams)


def top_functions(prof: cProfile.Profile, limit: int) -> tuple[list[dict], str]:
    stats = pstats.Stats(prof)
    rows = []
    for (path, line, func), (cc, nc, tt, ct, _callers) in stats.stats.items():  # type: ignore[attr-defined]
        rows.append((tt, ct, nc, cc, path, line, func))
    rows.sort(key=lambda r: -r[0])
    repo = str(REPO) + os.sep
    out = []
    for tt, ct, nc, cc, path, line, func in rows[:limit]:
        if path == "~":  # a built-in: cProfile names it "<method 'x' of 'y' objects>" or "<built-in ...>"
            name = func
        else:
            where = path.replace(repo, "")
            if "site-packages" in where:
                where = where.split("site-packages" + os.sep, 1)[1]
            elif os.path.isabs(where):
                where = os.path.basename(where)  # the standard library
            name = f"{where}:{line}({func})"
        out.append({"function": name, "ncalls": nc if nc == cc else f"{nc}/{cc}",
                    "tottime_ms": round(tt * 1000, 2), "cumtime_ms": round(ct * 1000, 2)})
    buf = io.StringIO()
    pstats.Stats(prof, stream=buf).strip_dirs().sort_stats("tottime").print_stats(limit)
    return out, buf.getvalue()


def run_evaluation(root: Path, args: argparse.Namespace) -> list[dict]:
    from alerts.engine import AlertEngine

    counts = dict(zip(("rain", "reservoir", "river", "village_water"), args.mix))
    stations = build_stations(counts["rain"], counts["reservoir"], counts["river"], counts["village_water"])
    registry_url = f"sqlite:///{root / 'eval-registry.sqlite3'}"
    reg = open_registry(registry_url)
    reg.create_schema()
    t = time.perf_counter()
    reg.upsert_stations(stations)
    reg.upsert_rules(default_rules())
    log(f"evaluation: {len(stations):,} stations {counts} in the registry ({time.perf_counter() - t:.1f} s)")
    settings = Settings(data_dir=root, db_url=registry_url, tsdb_url=f"sqlite:///{root / 'unused.sqlite3'}",
                        _env_file=None)
    notifier = NoopNotifier()
    gc.collect()
    rss_before = rss_mb()
    engine = AlertEngine(settings, reg, notifier)
    t = time.perf_counter()
    engine.load()
    load_s = time.perf_counter() - t
    log(f"engine.load(): {load_s:.2f} s ({len(engine.stations):,} stations, {len(engine.rules)} rules, "
        f"{sum(len(v) for v in engine.index.gauge_villages.values()):,} villages mapped to their nearest gauge)")

    # 24 h of normal data, in data-time order, one process() call per 5-minute step (every station reporting
    # at that step): rain every 5 min, every metric of the other stations every 10 min.
    step = timedelta(minutes=5)
    now = utcnow().replace(second=0, microsecond=0)
    t_end = now - timedelta(hours=2) - timedelta(minutes=now.minute % 5)
    steps = int(timedelta(hours=24) / step)
    t_first = t_end - step * (steps - 1)
    by_kind: dict[str, list[Station]] = {}
    for s in engine.stations.values():
        by_kind.setdefault(s.kind.value, []).append(s)
    slow_metrics = [(s, m) for k in ("reservoir", "river", "village_water") for s in by_kind.get(k, [])
                    for m in (METRICS[k] if args.fill == "all" else [pass_metric(s)])]
    rain = by_kind.get("rain", [])
    fill_readings = 0
    t = time.perf_counter()
    for k in range(steps):
        ts = t_first + step * k
        batch = [Reading(s.id, "rain", "rain_mm", ts, normal_value(s, "rain_mm", k + j)) for j, s in enumerate(rain)]
        if k % 2 == 0:
            batch += [Reading(s.id, s.kind.value, m, ts, normal_value(s, m, k // 2 + j))
                      for j, (s, m) in enumerate(slow_metrics)]
        engine.process(batch)
        fill_readings += len(batch)
        if k % 48 == 47:
            log(f"  filled {k + 1}/{steps} steps, {fill_readings:,} readings, {time.perf_counter() - t:.0f} s")
    fill_s = time.perf_counter() - t
    del batch
    gc.collect()
    rss_after = rss_mb()
    windows, points, nbytes = window_stats(engine)
    open_after_fill = len(engine.open)
    log(f"filled: {fill_readings:,} readings in {fill_s:.1f} s ({fill_readings / fill_s:,.0f}/s); "
        f"{windows:,} windows, {points:,} points; RSS +{rss_after - rss_before:.0f} MB; "
        f"open alerts {open_after_fill}")

    # Passes: one new reading per station, a minute later each time (data time), never raising anything.
    clock = [t_end]

    def make_pass(subset: list[Station]) -> list[Reading]:
        clock[0] += timedelta(minutes=1)
        ts = clock[0]
        n = int((ts - t_first) / timedelta(minutes=1))
        return [Reading(s.id, s.kind.value, pass_metric(s), ts, normal_value(s, pass_metric(s), n + j))
                for j, s in enumerate(subset)]

    all_st = list(engine.stations.values())
    pending: list[list[Reading]] = []

    def prepare(subset: list[Station]) -> Callable[[], None]:
        def before() -> None:
            pending[:] = [make_pass(subset)]
            engine.load_rules()  # the 30-s rule reload happens outside the timed pass (measured on its own)
        return before

    results: list[dict] = []
    engine.process(make_pass(all_st))  # warm-up
    bulk = timed(lambda: engine.process(pending[0]), args.repeat, prepare(all_st))
    per_msg = timed(lambda: [engine.process((r,)) for r in pending[0]], args.repeat, prepare(all_st))
    kinds = {}
    for kind in ("rain", "reservoir", "river", "village_water"):
        sub = by_kind.get(kind, [])
        if sub:
            s = timed(lambda: engine.process(pending[0]), args.repeat, prepare(sub))
            kinds[kind] = {"stations": len(sub), "metric": pass_metric(sub[0]), **summary_ms(s),
                           "us_per_reading": round(statistics.median(s) / len(sub) * 1e6, 2)}
    reload = timed(engine.load_rules, args.repeat)
    n = len(all_st)
    results.append({"case": "alerts/pass", "stations": n, "readings": n, "calls": "one engine.process() with all",
                    **summary_ms(bulk), "us_per_reading": round(statistics.median(bulk) / n * 1e6, 2),
                    "cpu_us_per_reading": round(statistics.median(bulk.cpu) / n * 1e6, 2),
                    "repeat": args.repeat, "alerts_raised": len(engine.open) - open_after_fill,
                    "readings_by_kind": {k: f"{v['stations']} x {v['metric']}" for k, v in kinds.items()}})
    results.append({"case": "alerts/pass/per_message", "stations": n, "readings": n,
                    "calls": "one engine.process() per reading (as AlertService.handle does)",
                    **summary_ms(per_msg), "us_per_reading": round(statistics.median(per_msg) / n * 1e6, 2),
                    "repeat": args.repeat})
    results.append({"case": "alerts/pass/by_kind", "kinds": kinds,
                    "rule_reload_ms": summary_ms(reload)["median_ms"],
                    "rule_reload_note": "engine.load_rules() (registry query + validation), every 30 s in process()"})

    # (a) profiled once.
    readings = make_pass(all_st)
    engine.load_rules()
    prof = cProfile.Profile()
    gc.collect()
    prof.enable()
    engine.process(readings)
    prof.disable()
    top, text = top_functions(prof, args.profile_top)
    total_calls = sum(v[1] for v in pstats.Stats(prof).stats.values())  # type: ignore[attr-defined]
    log("cProfile of one pass (top by tottime):\n" + text)
    results.append({"case": "alerts/pass/profile", "readings": n, "function_calls": total_calls,
                    "calls_per_reading": round(total_calls / n, 1),
                    "note": "cProfile inflates many small calls; shares, not absolute times", "top_by_tottime": top})

    # (b) check_stale over every station; data time just after the last pass: nobody is overdue.
    stale_now = clock[0] + timedelta(seconds=30)
    raised = []
    stale = timed(lambda: raised.append(engine.check_stale(stale_now)), args.repeat)
    results.append({"case": "alerts/check_stale", "stations": n, **summary_ms(stale),
                    "stale_rules": len(engine.plan.stale), "alerts_raised": sum(raised),
                    "us_per_station": round(statistics.median(stale) / n * 1e6, 3)})

    # (c) memory of the filled engine.
    gc.collect()
    results.append({"case": "alerts/memory", "stations": n, "rss_before_engine_mb": round(rss_before, 1),
                    "rss_filled_mb": round(rss_after, 1), "engine_rss_mb": round(rss_after - rss_before, 1),
                    "windows": windows, "window_points": points,
                    "window_numpy_mb": round(nbytes / 2**20, 1),
                    "state_entries": {"last_seen": len(engine.last_seen),
                                      "watermarks": getattr(engine, "watermarks_set", None)
                                      or len(getattr(engine, "_last_ts", ())),
                                      "pending": len(engine.pending), "open": len(engine.open)},
                    "load_s": round(load_s, 2), "fill": {"readings": fill_readings, "s": round(fill_s, 1),
                                                          "readings_per_s": round(fill_readings / fill_s),
                                                          "metrics": args.fill, "hours": 24,
                                                          "open_alerts_after": open_after_fill}})
    reg.close()
    return results


# ---------------------------------------------------------------------------------------------------------
# Summary and main
# ---------------------------------------------------------------------------------------------------------

def summarize(results: dict[str, dict]) -> dict:
    lat = results.get("alerts/latency")
    pss = results.get("alerts/pass")
    targets: dict[str, dict] = {}
    name = f"alerts/latency p99_ms <= {TARGETS['latency_p99_ms']:g} (all probes received)"
    if lat is None:
        targets[name] = {"value": None, "pass": None}
    else:
        p99 = lat["latency_ms"]["p99"]
        targets[name] = {"value": p99, "all_received": lat["all_received"],
                         "pass": p99 is not None and lat["all_received"] and p99 <= TARGETS["latency_p99_ms"]}
    name = f"alerts/pass median_ms <= {TARGETS['pass_ms']:g}"
    if pss is None:
        targets[name] = {"value": None, "pass": None}
    else:
        targets[name] = {"value": pss["median_ms"], "cpu_median_ms": pss.get("cpu_median_ms"),
                         "pass": pss["median_ms"] <= TARGETS["pass_ms"]}
    return {"case": "alerts/summary", "targets": targets,
            "targets_note": "pass null = part not run; the exit status does not depend on the targets"}


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.alerts", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--parts", default="latency,evaluation", help="comma list: latency, evaluation (default both)")
    ap.add_argument("--duration", type=float, default=45.0, help="seconds of probing (default 45)")
    ap.add_argument("--warmup", type=float, default=5.0, help="seconds of background load before the first probe")
    ap.add_argument("--rate", type=float, default=2000.0, help="background readings per second (default 2,000)")
    ap.add_argument("--probe-interval", type=float, default=0.2, help="seconds between probes (default 0.2)")
    ap.add_argument("--drain-timeout", type=float, default=60.0,
                    help="seconds to wait for the last probes' webhooks after the load stops")
    ap.add_argument("--mix", type=lambda s: tuple(int(x) for x in s.split(",")), default=(2000, 1000, 1000, 6000),
                    metavar="RAIN,RESERVOIR,RIVER,VILLAGE",
                    help="stations of the evaluation part (2000,1000,1000,6000)")
    ap.add_argument("--fill", choices=("all", "windowed"), default="all",
                    help="24-h fill: every metric of each station (default) or only the pass metric")
    ap.add_argument("--repeat", type=int, default=5, help="timings per measurement; the median is reported")
    ap.add_argument("--profile-top", type=int, default=20, help="functions listed from the pass profile")
    ap.add_argument("--profile", metavar="DIR", type=Path,
                    help="diagnostic: run the alert service under cProfile (every thread), write "
                         "DIR/alerts-service.prof, print its top 15 (inflates the latencies)")
    ap.add_argument("--service-env", action="append", default=[], metavar="SMARTWATER_X=VALUE",
                    help="extra setting for the alert service process (repeatable), e.g. "
                         "SMARTWATER_MQTT_PROTOCOL=3.1.1; echoed in the latency line as \"service_env\"")
    args = ap.parse_args(argv)
    args.service_env_map = {}
    for item in args.service_env:
        key, sep, value = item.partition("=")
        if not sep or not key.startswith("SMARTWATER_"):
            ap.error(f"--service-env wants SMARTWATER_NAME=VALUE, got {item!r}")
        args.service_env_map[key] = value
    parts = {p.strip() for p in args.parts.split(",") if p.strip()}
    if not parts <= {"latency", "evaluation"}:
        ap.error(f"unknown part(s) {sorted(parts - {'latency', 'evaluation'})}")
    if len(args.mix) != 4:
        ap.error("--mix wants four numbers: RAIN,RESERVOIR,RIVER,VILLAGE")

    if args.profile:
        args.profile.mkdir(parents=True, exist_ok=True)
        args.profile = args.profile.resolve()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    started = time.monotonic()
    load_start = [round(x, 2) for x in os.getloadavg()]
    if load_start[0] > 0.5:
        log(f"note: load average {load_start[0]} before starting: other work on this machine skews the numbers")
    results: dict[str, dict] = {}
    with tempfile.TemporaryDirectory(prefix="smartwater-bench-alerts-") as tmp:
        root = Path(tmp)
        if "latency" in parts:
            res = run_latency(root, args)
            results[res["case"]] = res
            print(json.dumps(res, ensure_ascii=False), flush=True)
            log(f"latency: p50 {res['latency_ms']['p50']} ms, p99 {res['latency_ms']['p99']} ms, "
                f"{res['probes_received']}/{res['probes_sent']} probes")
        if "evaluation" in parts:
            for res in run_evaluation(root, args):
                results[res["case"]] = res
                print(json.dumps(res, ensure_ascii=False), flush=True)
    summary = summarize(results)
    summary["elapsed_s"] = round(time.monotonic() - started, 1)
    summary["environment"] = {**environment(("alerts", "core")), "loadavg_at_start": load_start,
                              "loadavg_at_end": [round(x, 2) for x in os.getloadavg()]}
    print(json.dumps(summary, ensure_ascii=False), flush=True)


if __name__ == "__main__":
    main()
