"""Fault tests for ingest: at-least-once end to end (docs/architecture.md, "Ingest") under real faults.

Each test streams QoS 1 messages through a real Mosquitto and checks EXACT results: every distinct
(station, metric, ts) published is in the store once with its value, nothing else is, and every bad
message is one dead letter with its raw bytes. Waits use deadlines (core.mqtt.wait_for / events);
the only sleeps are load pacing and the deliberate outage duration.

1. the ingest process is killed with SIGKILL mid-stream (twice) and restarted: InfluxDB and SQLite
2. InfluxDB is stopped for 10 s mid-stream: health degraded (logged once), then caught up and ok
3. the broker is restarted mid-stream: ingest and publisher reconnect by themselves
4. 10,000 malformed messages of every kind mixed into 50,000 good ones

Regression tests for the bugs these found (and that were fixed) are at the end.
"""

from __future__ import annotations

import collections
import hashlib
import json
import logging
import os
import random
import signal
import subprocess
import sys
import threading
import time
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Callable

import httpx
import paho.mqtt.client as mqtt
import pytest

from core.broker import free_port
from core.domain import Station
from core.mqtt import Publisher, wait_for
from core.payload import Rejected, decode, encode, encode_batch, topic_for
from core.registry import open_registry
from core.settings import Settings
from core.timeutil import to_ms, utcnow
from core.tsdb import StoreUnavailable, open_store
from ingest import Ingestor
from tests.conftest import TEST_STATIONS
from support.servers import InfluxServer, stop_process

# ---------------------------------------------------------------------------------------------------------
# Streams of single-reading messages with a known expected content
# ---------------------------------------------------------------------------------------------------------

#: (station, kind, metric): message i goes to SERIES[i % 4] at base + i // 4 seconds.
SERIES = (("RG9001", "rain", "rain_mm"), ("RV9001", "river", "water_level_m"),
          ("RS9001", "reservoir", "water_level_m"), ("VW9001", "village_water", "ph"))
STREAM_KINDS = frozenset(kind for _, kind, _ in SERIES)
Key = tuple[str, str, int]  # (station_id, metric, ts in ms)


def _stream_value(metric: str, i: int) -> float:
    if metric == "rain_mm":
        return (i % 997) / 10
    if metric == "ph":
        return 6 + (i % 300) / 100
    return 40 + (i % 1000) / 100


def stream_message(base: datetime, i: int) -> tuple[str, bytes]:
    sid, kind, metric = SERIES[i % len(SERIES)]
    return topic_for(kind, sid), encode(base + timedelta(seconds=i // len(SERIES)), {metric: _stream_value(metric, i)})


def stream_expected(base: datetime, n: int) -> dict[Key, float]:
    out = {}
    for i in range(n):
        sid, _, metric = SERIES[i % len(SERIES)]
        out[(sid, metric, to_ms(base + timedelta(seconds=i // len(SERIES))))] = _stream_value(metric, i)
    assert len(out) == n
    return out


def stream_base() -> datetime:
    return (utcnow() - timedelta(days=3)).replace(microsecond=0)


def stored_stream_count(store) -> int:
    return sum(n for kind, n in store.counts_by_kind().items() if kind in STREAM_KINDS)


def assert_store_exactly(store, expected: dict[Key, float], start: datetime, end: datetime) -> None:
    """The store holds exactly ``expected`` in [start, end) for the stations involved: no loss, no duplicate,
    nothing extra, every value right."""
    got = []
    for sid in sorted({k[0] for k in expected} | {s for s, _, _ in SERIES}):
        got += store.query(sid, None, start, end, limit=-1)
    keys = collections.Counter((r.station_id, r.metric, to_ms(r.ts)) for r in got)
    duplicates = sum(n - 1 for n in keys.values() if n > 1)
    missing = expected.keys() - keys.keys()
    extra = keys.keys() - expected.keys()
    wrong = [(r.station_id, r.metric, r.ts, r.value) for r in got
             if (k := (r.station_id, r.metric, to_ms(r.ts))) in expected and abs(r.value - expected[k]) > 1e-9]
    assert (len(missing), duplicates, len(extra), len(wrong)) == (0, 0, 0, 0), (
        f"stored {len(got)} of {len(expected)}: missing {len(missing)} (e.g. {sorted(missing)[:3]}), "
        f"duplicates {duplicates}, extra {len(extra)} (e.g. {sorted(extra)[:3]}), wrong values {wrong[:3]}")


class Streamer(threading.Thread):
    """Publishes message(i) for i = 0, 1, ... at QoS 1, flow-controlled (``window`` unacknowledged at most),
    optionally paced at ``rate`` messages/s (load shaping, not synchronisation), until ``count`` or stop()."""

    def __init__(self, pub: Publisher, message: Callable[[int], tuple[str, bytes]], count: int | None = None,
                 rate: float | None = None, window: int = 2000) -> None:
        super().__init__(name="test-streamer", daemon=True)
        self.pub, self.message, self.count, self.rate, self.window = pub, message, count, rate, window
        self.published = 0
        self.error: BaseException | None = None
        self._stop_evt = threading.Event()

    def run(self) -> None:
        try:
            t0 = time.monotonic()
            while (self.count is None or self.published < self.count) and not self._stop_evt.is_set():
                if not self.pub.wait_for_room(self.window, self._stop_evt):
                    break
                topic, payload = self.message(self.published)
                info = self.pub.publish(topic, payload, qos=1)
                # NO_CONN still queues the message in paho, which sends it after reconnecting.
                if info.rc not in (mqtt.MQTT_ERR_SUCCESS, mqtt.MQTT_ERR_NO_CONN):
                    raise RuntimeError(f"publish #{self.published} failed: rc={info.rc}")
                self.published += 1
                if self.rate and self.published % 50 == 0:
                    ahead = t0 + self.published / self.rate - time.monotonic()
                    if ahead > 0:
                        self._stop_evt.wait(ahead)
        except BaseException as exc:  # noqa: BLE001 - reported by finish()
            self.error = exc

    def finish(self, timeout: float = 60.0) -> int:
        """Stop (if endless), wait for the thread, return how many messages were handed to paho."""
        if self.count is None:
            self._stop_evt.set()
        self.join(timeout)
        assert not self.is_alive(), f"streamer still running after {timeout} s ({self.published} published)"
        assert self.error is None, f"streamer failed: {self.error!r}"
        return self.published

    def abort(self) -> None:
        self._stop_evt.set()
        self.join(10)


def _uid() -> str:
    return uuid.uuid4().hex[:10]


def start_subscribed(ing: Ingestor, timeout: float = 10.0) -> None:
    """Start an in-process ingestor and wait until the broker has acknowledged its subscription.

    ``wait_connected()`` returns at CONNACK, before the SUBACK: a message published right then can reach the
    broker before the (brand-new) session's subscription and is not routed to it. Any on_subscribe the
    consumer sets itself is kept.
    """
    subscribed = threading.Event()
    inner = ing.client.on_subscribe

    def on_subscribe(client, userdata, mid, reason_codes, properties):
        if inner is not None:
            inner(client, userdata, mid, reason_codes, properties)
        if not any(getattr(rc, "is_failure", False) for rc in reason_codes):
            subscribed.set()

    ing.client.on_subscribe = on_subscribe
    ing.start()
    assert ing.wait_connected(timeout), "ingest did not connect"
    assert subscribed.wait(timeout), "the broker did not acknowledge ingest's subscription"


# ---------------------------------------------------------------------------------------------------------
# 1. kill -9 of the ingest process mid-stream
# ---------------------------------------------------------------------------------------------------------

PROBE = Station(id="GW9901", kind="groundwater", name="Readiness probe", town="通济街道", lat=36.4, lon=120.5)


def _ingest_env(*, mqtt_url: str, data_dir: Path, tsdb_url: str, db_url: str, prefix: str,
                metrics_port: int) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SMARTWATER_")}
    env.update(SMARTWATER_MQTT_URL=mqtt_url, SMARTWATER_DATA_DIR=str(data_dir), SMARTWATER_TSDB_URL=tsdb_url,
               SMARTWATER_DB_URL=db_url, SMARTWATER_MQTT_CLIENT_PREFIX=prefix, SMARTWATER_LOG_LEVEL="WARNING",
               # /healthz on a free port: the default 9108 would clash with parallel runs
               SMARTWATER_INGEST_METRICS_PORT=str(metrics_port))
    return env


class IngestProcess:
    """``python -m ingest`` as a real process; stderr goes to a file shown when an assertion fails."""

    def __init__(self, env: dict[str, str], workdir: Path) -> None:
        self.env, self.workdir, self.runs = env, workdir, 0
        self.proc: subprocess.Popen | None = None

    def start(self) -> None:
        self.runs += 1
        err = open(self.workdir / f"ingest-{self.runs}.stderr", "wb")
        try:
            self.proc = subprocess.Popen([sys.executable, "-m", "ingest"], env=self.env, cwd=self.workdir,
                                         stdin=subprocess.DEVNULL, stdout=err, stderr=subprocess.STDOUT)
        finally:
            err.close()

    def kill9(self) -> None:
        assert self.proc is not None and self.proc.poll() is None, f"ingest died on its own:\n{self.stderr()}"
        self.proc.send_signal(signal.SIGKILL)
        assert self.proc.wait(10) == -signal.SIGKILL

    def terminate(self) -> int | None:
        return None if self.proc is None else stop_process(self.proc, 30)

    def stderr(self) -> str:
        return "\n".join(f"--- run {p.name}\n{p.read_text(errors='replace')[-3000:]}"
                         for p in sorted(self.workdir.glob("ingest-*.stderr")))


def _wait_ingest_ready(pub: Publisher, store, proc: IngestProcess, timeout: float = 30.0) -> int:
    """Publish probe readings (groundwater, outside the counted stream) until one is stored; return how many."""
    deadline = time.monotonic() + timeout
    base = utcnow().replace(microsecond=0) - timedelta(days=1)
    sent = 0
    while True:
        pub.publish("water/groundwater/GW9901", encode(base + timedelta(seconds=sent), {"depth_m": 5.0}))
        sent += 1
        if wait_for(lambda: store.counts_by_kind().get("groundwater", 0) > 0, 0.5, 0.05):
            return sent
        assert proc.proc is not None and proc.proc.poll() is None, f"ingest exited:\n{proc.stderr()}"
        assert time.monotonic() < deadline, f"ingest stored no probe within {timeout} s:\n{proc.stderr()}"


@pytest.mark.timeout(120)
@pytest.mark.parametrize("backend", ["influxdb", "sqlite"])
def test_kill_9_mid_stream_loses_and_duplicates_nothing(backend, tmp_path, own_broker, request):
    n = 20_000
    if backend == "influxdb":
        influx: InfluxServer = request.getfixturevalue("influxdb")
        dbname = f"faults_{_uid()}"
        tsdb_url = influx.url_for(dbname)
        request.addfinalizer(lambda: influx.query(f'DROP DATABASE "{dbname}"'))
    else:
        tsdb_url = f"sqlite:///{tmp_path / 'timeseries.sqlite3'}"
    db_url = f"sqlite:///{tmp_path / 'registry.sqlite3'}"
    registry = open_registry(db_url)
    registry.create_schema()
    registry.upsert_stations([*TEST_STATIONS, PROBE])
    store = open_store(tsdb_url)
    prefix = f"kill9-{backend}-{_uid()}"
    metrics_port = free_port()
    proc = IngestProcess(_ingest_env(mqtt_url=own_broker.url, data_dir=tmp_path, tsdb_url=tsdb_url, db_url=db_url,
                                     prefix=prefix, metrics_port=metrics_port), tmp_path)
    settings = Settings(data_dir=tmp_path, mqtt_url=own_broker.url, mqtt_client_prefix=prefix, _env_file=None)
    pub = Publisher(settings, f"{prefix}-pub").start()
    base = stream_base()
    streamer = Streamer(pub, lambda i: stream_message(base, i), count=n)
    at_kill: list[int] = []
    try:
        proc.start()
        _wait_ingest_ready(pub, store, proc)
        streamer.start()
        for fraction in (0.25, 0.6):
            assert wait_for(lambda: stored_stream_count(store) >= fraction * n, 40, 0.02), \
                f"stored {stored_stream_count(store)} of {n}:\n{proc.stderr()}"
            proc.kill9()
            stored = stored_stream_count(store)
            at_kill.append(stored)
            assert 0 < stored < n, "the kill must land mid-stream"
            proc.start()
        assert streamer.finish() == n
        assert pub.flush(30), f"{pub.outstanding} messages never acknowledged by the broker"
        assert wait_for(lambda: stored_stream_count(store) >= n, 45, 0.1), \
            f"stored {stored_stream_count(store)} of {n} (at the kills: {at_kill}):\n{proc.stderr()}"
        assert_store_exactly(store, stream_expected(base, n), base - timedelta(days=1), base + timedelta(days=1))
        assert proc.proc.poll() is None, f"ingest exited:\n{proc.stderr()}"
        healthz = f"http://127.0.0.1:{metrics_port}/healthz"
        assert wait_for(lambda: httpx.get(healthz, timeout=2).json()["pending"] == 0, 10), httpx.get(healthz).text
        resp = httpx.get(healthz, timeout=2)
        assert resp.status_code == 200 and resp.json()["status"] == "ok", resp.text
        assert proc.terminate() == 0, proc.stderr()
        log = proc.stderr()
        assert "message handler failed" not in log and "CRITICAL" not in log, log
        print(f"\n{backend}: stored at the two kills {at_kill} of {n}; {proc.runs} ingest runs")
    finally:
        streamer.abort()
        proc.terminate()
        pub.stop()
        store.close()
        registry.close()


# ---------------------------------------------------------------------------------------------------------
# 2. InfluxDB down for 10 s mid-stream
# ---------------------------------------------------------------------------------------------------------

class CountingStore:
    """The real store, counting write attempts and failures; ``down`` makes writes fail as an outage would."""

    def __init__(self, inner) -> None:
        self.inner, self.writes, self.failures = inner, 0, 0
        self.down = threading.Event()

    def write(self, readings) -> None:
        self.writes += 1
        try:
            if self.down.is_set():
                raise StoreUnavailable("store is down (test)")
            self.inner.write(readings)
        except Exception:
            self.failures += 1
            raise

    def __getattr__(self, name):
        return getattr(self.inner, name)


OUTAGE_S = 10.0


@pytest.mark.timeout(120)
def test_influxdb_down_10s_mid_stream_degrades_then_catches_up_exactly(tmp_path, own_settings, registry, stations,
                                                                        caplog):
    caplog.set_level(logging.INFO, logger="ingest")
    server = InfluxServer(tmp_path / "influx-outage").start()  # dedicated: this test stops it
    store = open_store(server.url_for("outage"))
    counting = CountingStore(store)
    ing = Ingestor(own_settings, registry, counting)
    pub = Publisher(own_settings, f"{own_settings.mqtt_client_prefix}-pub").start()
    base = stream_base()
    # 1,500 messages/s: about 15,000 arrive during the outage, below the ingestor's Receive Maximum
    # (20,000), so all of them reach the ingestor and wait there unacknowledged.
    streamer = Streamer(pub, lambda i: stream_message(base, i), rate=1500)
    try:
        start_subscribed(ing)
        streamer.start()
        assert wait_for(lambda: stored_stream_count(store) >= 3000, 20, 0.05)
        assert ing.health()["status"] == "ok"

        server.stop()
        down_at = time.monotonic()
        published_at_stop = streamer.published
        assert wait_for(lambda: ing.health()["status"] == "degraded", 5), ing.health()
        time.sleep(max(0.0, down_at + OUTAGE_S - time.monotonic()))  # the outage itself
        health = ing.health()
        assert health["status"] == "degraded", health
        assert health["pending"] > 5000, health  # the stream kept coming and is held, unacknowledged
        assert streamer.published > published_at_stop + 5000
        failures_during_outage = counting.failures

        server.start()
        up_at = time.monotonic()
        assert wait_for(lambda: ing.health()["status"] == "ok", 40), ing.health()
        recovered_after_s = time.monotonic() - up_at
        published_at_recovery = streamer.published
        assert wait_for(lambda: streamer.published >= published_at_recovery + 3000, 10)  # the stream goes on
        n = streamer.finish()
        assert pub.flush(30)
        assert wait_for(lambda: stored_stream_count(store) >= n and ing.pending == 0, 40, 0.1), \
            (stored_stream_count(store), n, ing.health())
        assert_store_exactly(store, stream_expected(base, n), base - timedelta(days=1), base + timedelta(days=1))

        health = ing.health()
        assert health["status"] == "ok" and health["pending"] == 0, health
        assert sum(health["readings_written"].values()) >= n  # redeliveries may be written twice, harmlessly
        assert ing.callback_errors == 0
        failed = [r for r in caplog.records if r.name == "ingest" and "store write failed" in r.getMessage()]
        recovered = [r for r in caplog.records if r.name == "ingest" and "store recovered" in r.getMessage()]
        assert len(failed) == 1, [r.getMessage() for r in failed]
        assert len(recovered) == 1
        print(f"\noutage {OUTAGE_S:.0f} s: {failures_during_outage} failed writes during it "
              f"({counting.failures} in all), caught up {recovered_after_s:.1f} s after influxd answered; "
              f"{n} messages")
    finally:
        streamer.abort()
        ing.stop()
        pub.stop()
        store.close()
        server.stop()


# ---------------------------------------------------------------------------------------------------------
# 3. Broker restarted mid-stream
# ---------------------------------------------------------------------------------------------------------

@pytest.mark.timeout(120)
def test_broker_restart_mid_stream_loses_and_duplicates_nothing(own_broker, own_settings, registry, store, stations):
    ing = Ingestor(own_settings, registry, store)
    pub = Publisher(own_settings, f"{own_settings.mqtt_client_prefix}-pub").start()
    base = stream_base()
    streamer = Streamer(pub, lambda i: stream_message(base, i), rate=4000)
    try:
        start_subscribed(ing)
        streamer.start()
        assert wait_for(lambda: stored_stream_count(store) >= 4000, 20, 0.02)

        own_broker.stop()
        published_at_stop = streamer.published
        assert wait_for(lambda: not ing.connected.is_set(), 5), "ingest did not notice the broker going away"
        assert wait_for(lambda: not pub.connected.is_set(), 5)
        own_broker.start()
        # Nobody calls reconnect: paho's loop does it by itself.
        assert ing.wait_connected(20), "ingest did not reconnect by itself"
        assert pub.connected.wait(20), "publisher did not reconnect by itself"
        stored_at_reconnect = stored_stream_count(store)
        assert wait_for(lambda: streamer.published >= published_at_stop + 6000, 15)
        assert wait_for(lambda: stored_stream_count(store) >= stored_at_reconnect + 4000, 15), \
            "ingest stores nothing new after the reconnect"
        n = streamer.finish()
        assert pub.flush(30), f"{pub.outstanding} messages never acknowledged by the broker"
        assert wait_for(lambda: stored_stream_count(store) >= n and ing.pending == 0, 40, 0.1), \
            (stored_stream_count(store), n, ing.health())
        assert_store_exactly(store, stream_expected(base, n), base - timedelta(days=1), base + timedelta(days=1))

        sessions = own_broker.log.read_text(errors="replace").count(f" as {ing.client_id} ")
        assert sessions >= 2, f"broker saw the ingest client connect {sessions} time(s)"
        health = ing.health()
        assert health["status"] == "ok" and health["connected"] and health["pending"] == 0, health
        assert ing.callback_errors == 0
    finally:
        streamer.abort()
        ing.stop()
        pub.stop()


# ---------------------------------------------------------------------------------------------------------
# 4. Garbage of every kind mixed into good traffic
# ---------------------------------------------------------------------------------------------------------

MAX_PAYLOAD = 8192  # lowered from 256 KiB so oversized payloads stay cheap (above 4,300 digits)


def _j(doc) -> bytes:
    return json.dumps(doc, separators=(",", ":")).encode()


def garbage_kinds(bad_base: datetime, now: datetime) -> list[tuple[str, str, Callable[[int], tuple[str, bytes]]]]:
    """(name, expected dead-letter reason, make(n) -> (topic, payload)); ``n`` makes payloads differ."""
    rain = "water/rain/RG9001"

    def ts(n: int) -> str:  # a valid time in a range no good reading uses
        return (bad_base + timedelta(seconds=n)).isoformat()

    def single(n: int, values_json: str, ts_json: str | None = None) -> bytes:
        return (f'{{"ts":{ts_json or json.dumps(ts(n))},"values":{values_json}}}').encode()

    def deep(depth: int) -> str:
        return "[" * depth + "]" * depth

    return [
        # undecodable
        ("not_json", "invalid_json", lambda n: (rain, f'{{"ts": "{ts(n)}", values: {{rain_mm: 1}}}}'.encode())),
        ("truncated_json", "invalid_json", lambda n: (rain, single(n, '{"rain_mm":1.5}')[:-2])),
        ("empty_payload", "invalid_json", lambda n: ("water/river/RV9001", b"")),
        ("invalid_utf8", "invalid_utf8",
         lambda n: (rain, b'{"ts":"' + ts(n).encode() + b'","values":{"rain_mm\xff\xfe":1}}')),
        ("invalid_utf8_short", "invalid_utf8", lambda n: ("water/river/RV9001", b"\xc3\x28" + str(n).encode())),
        ("latin1_payload", "invalid_utf8",
         lambda n: ("water/village_water/VW9001", f'{{"ts":"{ts(n)}","values":{{"ph":7}},"n":"é"}}'.encode("latin-1"))),
        ("deep_nesting", "invalid_json", lambda n: (rain, deep(1500).encode())),
        ("deep_nesting_in_value", "invalid_json", lambda n: (rain, single(n, f'{{"rain_mm":{deep(1500)}}}'))),
        ("int_5000_digits", "invalid_json", lambda n: (rain, single(n, '{"rain_mm":1' + "0" * 5000 + "}"))),
        ("oversized", "oversized",
         lambda n: (rain, _j({"ts": ts(n), "values": {"rain_mm": 1.0}, "pad": "x" * (MAX_PAYLOAD + n % 100)}))),
        # not an object / wrong shape
        ("json_array", "bad_schema", lambda n: (rain, _j([n, 2, 3]))),
        ("json_number", "bad_schema", lambda n: (rain, str(n).encode())),
        ("json_string", "bad_schema", lambda n: (rain, _j(f"reading {n}"))),
        ("json_null", "bad_schema", lambda n: (rain, b"null")),
        ("missing_values", "bad_schema", lambda n: (rain, _j({"ts": ts(n)}))),
        ("values_not_object", "bad_schema", lambda n: (rain, single(n, "[1.5]"))),
        ("values_empty", "bad_schema", lambda n: (rain, single(n, "{}"))),
        ("readings_empty", "bad_schema", lambda n: (rain, _j({"readings": [], "n": n}))),
        ("readings_not_list", "bad_schema", lambda n: (rain, _j({"readings": {"ts": ts(n)}}))),
        ("reading_not_object", "bad_schema", lambda n: (rain, _j({"readings": [n]}))),
        # wrong types and values
        ("value_string", "bad_value", lambda n: (rain, single(n, '{"rain_mm":"1.5"}'))),
        ("value_bool", "bad_value", lambda n: (rain, single(n, '{"rain_mm":true}'))),
        ("value_null", "bad_value", lambda n: (rain, single(n, '{"rain_mm":null}'))),
        ("value_object", "bad_value", lambda n: ("water/river/RV9001", single(n, '{"water_level_m":{"v":9}}'))),
        ("nan", "not_finite", lambda n: (rain, single(n, '{"rain_mm":NaN}'))),
        ("infinity", "not_finite", lambda n: ("water/river/RV9001", single(n, '{"flow_m3s":Infinity}'))),
        ("minus_infinity", "not_finite", lambda n: ("water/river/RV9001", single(n, '{"water_level_m":-Infinity}'))),
        ("float_1e400", "out_of_range", lambda n: (rain, single(n, '{"rain_mm":1e400}'))),
        ("int_10_pow_400", "out_of_range", lambda n: (rain, single(n, '{"rain_mm":%d}' % 10**400))),
        ("int_minus_10_pow_400", "out_of_range",
         lambda n: ("water/river/RV9001", single(n, '{"water_level_m":%d}' % -10**400))),
        ("negative_rain", "out_of_range", lambda n: (rain, single(n, '{"rain_mm":-0.5}'))),
        ("ph_15", "out_of_range", lambda n: ("water/village_water/VW9001", single(n, '{"ph":15}'))),
        # registry mismatches
        ("unknown_station", "unknown_station", lambda n: (f"water/rain/ZZ{n % 50:04d}", single(n, '{"rain_mm":1}'))),
        ("unknown_metric", "unknown_metric", lambda n: (rain, single(n, '{"rainfall":1}'))),
        ("metric_of_other_kind", "unknown_metric", lambda n: (rain, single(n, '{"water_level_m":50}'))),
        ("lone_surrogate_metric", "unknown_metric", lambda n: (rain, single(n, '{"\\ud800":1}'))),
        ("station_mismatch", "station_mismatch",
         lambda n: (rain, _j({"station_id": "RV9001", "ts": ts(n), "values": {"rain_mm": 1}}))),
        ("wrong_kind_in_topic", "kind_mismatch", lambda n: ("water/river/RG9001", single(n, '{"water_level_m":9}'))),
        ("unknown_kind_in_topic", "unknown_kind", lambda n: ("water/lake/RG9001", single(n, '{"rain_mm":1}'))),
        ("empty_kind_in_topic", "unknown_kind", lambda n: ("water//RG9001", single(n, '{"rain_mm":1}'))),
        ("short_topic", "bad_topic", lambda n: ("water/rain", single(n, '{"rain_mm":1}'))),
        ("long_topic", "bad_topic", lambda n: ("water/rain/RG9001/extra", single(n, '{"rain_mm":1}'))),
        ("empty_station_in_topic", "bad_topic", lambda n: ("water/rain/", single(n, '{"rain_mm":1}'))),
        # timestamps
        ("future_1_day", "future_timestamp",
         lambda n: (rain, single(n, '{"rain_mm":1}', json.dumps((now + timedelta(days=1, seconds=n)).isoformat())))),
        ("future_year_9999", "future_timestamp",
         lambda n: (rain, single(n, '{"rain_mm":1}', '"9999-12-31T23:59:59+00:00"'))),
        ("before_2000", "too_old", lambda n: (rain, single(n, '{"rain_mm":1}', '"1999-12-31T23:59:59+00:00"'))),
        ("epoch_zero", "too_old", lambda n: (rain, single(n, '{"rain_mm":1}', "0"))),
        ("no_offset", "bad_timestamp", lambda n: (rain, single(n, '{"rain_mm":1}', json.dumps(ts(n)[:19])))),
        ("ts_words", "bad_timestamp", lambda n: (rain, single(n, '{"rain_mm":1}', '"yesterday"'))),
        ("ts_bool", "bad_timestamp", lambda n: (rain, single(n, '{"rain_mm":1}', "true"))),
        ("ts_epoch_1e20", "bad_timestamp", lambda n: (rain, single(n, '{"rain_mm":1}', "1e20"))),
        ("ts_missing", "bad_timestamp", lambda n: (rain, _j({"values": {"rain_mm": 1}, "n": n}))),
        # batches are accepted or rejected whole: good rows next to a bad one are not stored
        ("batch_bad_metric_row", "unknown_metric", lambda n: (rain, _j({"readings": [
            {"ts": ts(n), "values": {"rain_mm": 1}}, {"ts": ts(n + 1), "values": {"snow_mm": 1}}]}))),
        ("batch_future_row", "future_timestamp", lambda n: ("water/river/RV9001", _j({"readings": [
            {"ts": ts(n), "values": {"water_level_m": 9}},
            {"ts": (now + timedelta(hours=2)).isoformat(), "values": {"water_level_m": 9}}]}))),
        ("batch_nan_row", "not_finite", lambda n: ("water/reservoir/RS9001", (
            '{"readings":[{"ts":"%s","values":{"water_level_m":50}},{"ts":"%s","values":{"inflow_m3s":NaN}}]}'
            % (ts(n), ts(n + 1))).encode())),
    ]


def good_messages(rng: random.Random, base: datetime, count: int) -> tuple[list[tuple[str, bytes]], dict[Key, float]]:
    """``count`` valid messages (singles, multi-metric readings, batches, offsets, epoch seconds, optional
    station_id) and the readings they carry."""
    metrics = {"RG9001": ["rain_mm"], "RV9001": ["water_level_m", "flow_m3s"],
               "RS9001": ["water_level_m", "storage_mcm", "inflow_m3s", "outflow_m3s"],
               "VW9001": ["ph", "turbidity_ntu", "free_chlorine_mgl", "pressure_mpa"]}
    kinds = {s.id: s.kind.value for s in TEST_STATIONS}
    tick = {sid: 0 for sid in metrics}
    expected: dict[Key, float] = {}
    out = []

    def reading(sid: str) -> tuple[datetime, dict[str, float]]:
        t = base + timedelta(seconds=tick[sid])
        tick[sid] += 1
        chosen = rng.sample(metrics[sid], rng.randint(1, len(metrics[sid])))
        values = {m: round(rng.uniform(0.05, 1.9), 3) if m == "pressure_mpa" else round(rng.uniform(0, 14), 3)
                  for m in chosen}
        for m, v in values.items():
            key = (sid, m, to_ms(t))
            assert key not in expected
            expected[key] = v
        return t, values

    for _ in range(count):
        sid = rng.choice(list(metrics))
        topic = topic_for(kinds[sid], sid)
        form = rng.random()
        if form < 0.6:
            out.append((topic, encode(*reading(sid))))
        elif form < 0.7:  # other offsets, epoch seconds, station_id in the payload
            t, values = reading(sid)
            style = rng.randrange(3)
            doc = {"ts": t.astimezone(timezone(timedelta(hours=8))).isoformat()
                   if style == 0 else int(t.timestamp()) if style == 1 else t.isoformat(), "values": values}
            if style == 2:
                doc["station_id"] = sid
            out.append((topic, _j(doc)))
        else:
            out.append((topic, encode_batch([reading(sid) for _ in range(rng.randint(2, 6))])))
    return out, expected


@pytest.mark.timeout(150)
def test_garbage_is_dead_lettered_exactly_and_good_readings_all_stored(own_broker, own_settings, registry, store,
                                                                         stations):
    settings = own_settings.model_copy(update={"ingest_max_payload_bytes": MAX_PAYLOAD})
    rng = random.Random(20260628)
    now = utcnow()
    base = (now - timedelta(days=5)).replace(microsecond=0)
    bad_base = base - timedelta(days=2)
    good, expected = good_messages(rng, base, 50_000)
    kinds = garbage_kinds(bad_base, now)
    bad: list[tuple[str, bytes, str, str]] = []  # topic, payload, reason, kind name
    for n in range(10_000):
        name, reason, make = kinds[n % len(kinds)]
        topic, payload = make(n)
        bad.append((topic, payload, reason, name))
    # sanity: the test's own expectations agree with the decoder it exercises
    by_id = {s.id: s for s in TEST_STATIONS}
    for topic, payload, reason, name in bad[:len(kinds)]:
        with pytest.raises(Rejected) as rej:
            decode(topic, payload, by_id, utcnow(), max_bytes=MAX_PAYLOAD)
        assert rej.value.reason == reason, name
    ignored = [(f"water/alerts/{sev}", _j({"id": i})) for i, sev in enumerate(["blue", "red"] * 25)]
    traffic = [(t, p) for t, p in good] + [(t, p) for t, p, _, _ in bad] + ignored
    rng.shuffle(traffic)

    ing = Ingestor(settings, registry, store)
    pub = Publisher(settings, f"{settings.mqtt_client_prefix}-pub").start()
    streamer = Streamer(pub, lambda i: traffic[i], count=len(traffic), window=5000)
    try:
        start_subscribed(ing)
        t0 = time.monotonic()
        streamer.start()
        assert streamer.finish(90) == len(traffic)
        assert pub.flush(30)
        n_in = len(good) + len(bad)
        assert wait_for(lambda: ing.stats.messages_in >= n_in and ing.pending == 0, 60, 0.1), \
            (n_in, ing.callback_errors, ing.health(), own_broker.log.read_text(errors="replace")[-3000:])
        elapsed = time.monotonic() - t0

        # every good reading, exactly
        assert sum(store.counts_by_kind().values()) == len(expected)
        assert_store_exactly(store, expected, bad_base - timedelta(days=1), now + timedelta(days=2))

        # one dead letter per bad message, reason per kind, raw bytes and topic preserved
        letters = registry.list_dead_letters(limit=len(bad) * 2)
        assert len(letters) == len(bad) == registry.count_dead_letters()
        assert collections.Counter(d.reason for d in letters) == collections.Counter(r for _, _, r, _ in bad)
        # (a bounded prefix of each payload, with its whole size and hash: core/dead_letters.py)
        keep = settings.dead_letter_keep_bytes
        assert collections.Counter((d.topic, bytes(d.payload), d.reason) for d in letters) == \
            collections.Counter((t, p[:keep], r) for t, p, r, _ in bad)
        stored = {(d.topic, d.payload_sha256): d for d in letters}
        for name in ("invalid_utf8", "invalid_utf8_short", "latin1_payload", "oversized", "deep_nesting",
                     "empty_payload", "int_10_pow_400", "lone_surrogate_metric"):
            topic, payload, reason, _ = next(b for b in bad if b[3] == name)
            d = stored[(topic, hashlib.sha256(payload).hexdigest())]
            assert (d.payload, d.reason) == (payload[:keep], reason) and d.detail and d.received_at, name
            assert d.payload_size == len(payload), name
        assert not any(d.topic.startswith("water/alerts/") for d in letters)

        # and the ingestor is still fine
        health = ing.health()
        assert ing.callback_errors == 0
        assert health["status"] == "ok" and health["connected"] and health["pending"] == 0, health
        assert ing.stats.messages_in == n_in
        assert collections.Counter(ing.stats.dead_letters) == collections.Counter(r for _, _, r, _ in bad)
        assert sum(health["readings_written"].values()) == len(expected)
        print(f"\n{len(traffic)} messages ({len(expected)} good readings, {len(bad)} bad, {len(kinds)} kinds) "
              f"in {elapsed:.1f} s")
    finally:
        streamer.abort()
        ing.stop()
        pub.stop()


# ---------------------------------------------------------------------------------------------------------
# Regression tests for bugs found while writing the tests above
# ---------------------------------------------------------------------------------------------------------

def _drain_after_sentinel(ing: Ingestor, store, publisher: Publisher, infos: list) -> None:
    """Publish a good sentinel after ``infos`` and wait until it is stored and nothing is pending: by then
    the ingestor has handled every earlier message (one publisher, one topic order, one network thread)."""
    t = utcnow().replace(microsecond=0) - timedelta(hours=1)
    infos.append(publisher.publish("water/rain/RG9001", encode(t, {"rain_mm": 0.5})))
    assert publisher.wait_all_published(infos, 10)
    assert wait_for(lambda: store.counts_by_kind().get("rain") == 1 and ing.pending == 0, 10), ing.health()


@pytest.fixture
def small_ingest(settings, registry, store, stations):
    ing = Ingestor(settings, registry, store)
    pub = Publisher(settings, f"{settings.mqtt_client_prefix}-pub").start()
    start_subscribed(ing)
    yield ing, pub
    ing.stop()
    pub.stop()


def test_timestamp_overflowing_utc_is_dead_lettered(small_ingest, store, registry):
    ing, pub = small_ingest
    bad = [b'{"ts":"9999-12-31T23:59:59-01:00","values":{"rain_mm":1}}',
           b'{"ts":"0001-01-01T00:00:00+01:00","values":{"rain_mm":1}}']
    infos = [pub.publish("water/rain/RG9001", p) for p in bad]
    _drain_after_sentinel(ing, store, pub, infos)
    assert ing.callback_errors == 0
    letters = sorted(registry.list_dead_letters(), key=lambda d: d.payload, reverse=True)
    assert [d.payload for d in letters] == bad
    assert letters[0].reason in ("future_timestamp", "bad_timestamp")
    assert letters[1].reason in ("too_old", "bad_timestamp")


def test_message_on_bare_root_topic_is_dead_lettered(small_ingest, store, registry):
    ing, pub = small_ingest
    payload = b'{"ts":"2026-01-01T00:00:00+00:00","values":{"rain_mm":1}}'
    _drain_after_sentinel(ing, store, pub, [pub.publish("water", payload)])
    assert [(d.topic, d.payload, d.reason) for d in registry.list_dead_letters()] == [("water", payload, "bad_topic")]


def test_float_overflow_reason_does_not_depend_on_sign():
    stations = {s.id: s for s in TEST_STATIONS}
    reasons = {}
    for literal in ("1e400", "-1e400", str(10**400), str(-10**400)):
        payload = ('{"ts":"2026-01-01T00:00:00+00:00","values":{"water_level_m":%s}}' % literal).encode()
        with pytest.raises(Rejected) as rej:
            decode("water/river/RV9001", payload, stations, utcnow())
        reasons[literal[:6]] = rej.value.reason
    assert set(reasons.values()) == {"out_of_range"}, reasons


@pytest.mark.timeout(90)
def test_store_outage_retries_follow_the_backoff(own_settings, registry, store, stations):
    counting = CountingStore(store)
    settings = own_settings.model_copy(update={"ingest_batch_size": 1000})
    ing = Ingestor(settings, registry, counting)
    pub = Publisher(settings, f"{settings.mqtt_client_prefix}-pub").start()
    base = stream_base()
    n = 8000  # below the Receive Maximum: all of it reaches the ingestor during the outage
    streamer = Streamer(pub, lambda i: stream_message(base, i), count=n, rate=2500)
    try:
        start_subscribed(ing)
        counting.down.set()
        streamer.start()
        assert wait_for(lambda: counting.failures >= 1, 10)
        first = time.monotonic()
        assert streamer.finish() == n and pub.flush(30)
        assert wait_for(lambda: ing.stats.messages_in >= n, 20)
        span = time.monotonic() - first
        failures = counting.failures
        # exponential backoff from 0.5 s: about log2(span / 0.5) + 1 attempts; allow a generous margin
        assert failures <= 10, f"{failures} failed writes in {span:.1f} s of outage"
        counting.down.clear()
        assert wait_for(lambda: stored_stream_count(store) >= n and ing.pending == 0, 40, 0.1), ing.health()
        assert_store_exactly(store, stream_expected(base, n), base - timedelta(days=1), base + timedelta(days=1))
    finally:
        counting.down.clear()
        streamer.abort()
        ing.stop()
        pub.stop()


@pytest.mark.timeout(60)
def test_stop_during_store_outage_returns_promptly(own_settings, registry, store, stations, monkeypatch):
    monkeypatch.setattr("ingest.service.MAX_BACKOFF_S", 6.0)  # bounds this test's cost; 30 s in production
    counting = CountingStore(store)
    ing = Ingestor(own_settings, registry, counting)
    pub = Publisher(own_settings, f"{own_settings.mqtt_client_prefix}-pub").start()
    base = stream_base()
    try:
        start_subscribed(ing)
        counting.down.set()
        infos = [pub.publish(*stream_message(base, i)) for i in range(500)]
        assert pub.wait_all_published(infos, 10)
        # four failed attempts: with a 0.5 s initial backoff that is at most 3.5 s, and the backoff now >= 4 s
        assert wait_for(lambda: counting.failures >= 4, 15)
        t0 = time.monotonic()
        ing.stop()
        took = time.monotonic() - t0
        assert took < 2.0, f"stop() took {took:.1f} s with the store down"
        assert not ing._flusher.is_alive()
    finally:
        ing.stop()
        pub.stop()
