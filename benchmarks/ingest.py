"""Ingest throughput: a backlog of QoS 1 messages in a real Mosquitto drained by one ingest process.

Reports readings/s (wall, from the first stored reading to the last) and readings per CPU-second of
the ingest process (user + system, from its rusage). One JSON line per case.
``python -m benchmarks.ingest [--messages N]``
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path

from core.mqtt import Publisher, wait_for
from core.payload import encode, encode_batch
from core.registry import open_registry
from core.settings import Settings
from core.timeutil import utcnow
from core.tsdb import store_from_settings
from simulators import generate_district
from tests.servers import MosquittoServer

def _env(settings: Settings) -> dict[str, str]:
    return {**os.environ, "SMARTWATER_MQTT_URL": settings.mqtt_url, "SMARTWATER_DATA_DIR": str(settings.data_dir),
            "SMARTWATER_TSDB_URL": settings.tsdb_url, "SMARTWATER_DB_URL": settings.db_url,
            "SMARTWATER_MQTT_CLIENT_PREFIX": settings.mqtt_client_prefix, "SMARTWATER_LOG_LEVEL": "WARNING"}


def _ingest(settings: Settings) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "ingest"], env=_env(settings))


def _stop(proc: subprocess.Popen) -> float:
    proc.send_signal(signal.SIGTERM)
    _, _, ru = os.wait4(proc.pid, 0)
    proc.returncode = 0
    return ru.ru_utime + ru.ru_stime


def run_case(workdir: Path, broker: MosquittoServer, messages: int, per_message: int) -> dict:
    # Each case its own persistent session, so nothing of one case is redelivered into the next.
    settings = Settings(data_dir=workdir, mqtt_url=broker.url, mqtt_client_prefix=f"bench-{workdir.name}",
                        _env_file=None)
    registry = open_registry(settings.db_url)
    registry.create_schema()
    gauges = [s for s in generate_district(settings.district_seed) if s.kind.value == "rain"]
    registry.upsert_stations(gauges)
    store = store_from_settings(settings)

    proc = _ingest(settings)  # create the persistent session, then go away so the backlog queues
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and f"as {settings.mqtt_client_prefix}-ingest " not in broker.log.read_text(errors="replace"):
        time.sleep(0.05)
    _stop(proc)

    pub = Publisher(settings, "bench-pub", max_inflight=2000).start()
    t0 = utcnow() - timedelta(days=20)
    infos = []
    for i in range(messages):
        g = gauges[i % len(gauges)]
        base = t0 + timedelta(seconds=300 * per_message * (i // len(gauges)))
        if per_message == 1:
            payload = encode(base, {"rain_mm": 0.5})
        else:
            payload = encode_batch([(base + timedelta(seconds=300 * k), {"rain_mm": 0.5}) for k in range(per_message)])
        infos.append(pub.publish(f"water/rain/{g.id}", payload))
        if len(infos) >= 20000:
            pub.wait_all_published(infos, 120)
            infos.clear()
    pub.wait_all_published(infos, 120)
    pub.stop()

    expected = messages * per_message
    proc = _ingest(settings)
    wait_for(lambda: sum(store.counts_by_kind().values()) > 0, 60, 0.01)
    first = time.perf_counter()
    ok = wait_for(lambda: sum(store.counts_by_kind().values()) >= expected, 600, 0.02)
    wall = time.perf_counter() - first
    cpu = _stop(proc)
    stored = sum(store.counts_by_kind().values())
    store.close()
    registry.close()
    return {"case": f"ingest/sqlite/{'single' if per_message == 1 else f'batch{per_message}'}", "messages": messages,
            "readings": stored, "complete": ok and stored == expected, "wall_s": round(wall, 2),
            "readings_per_s": round(stored / wall) if wall else None, "ingest_cpu_s": round(cpu, 2),
            "readings_per_cpu_s": round(stored / cpu) if cpu else None}


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--messages", type=int, default=50000)
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        broker = MosquittoServer(Path(tmp) / "mosquitto").start()
        try:
            for per_message in (1, 12):
                work = Path(tmp) / f"case{per_message}"
                print(json.dumps(run_case(work, broker, args.messages if per_message == 1 else args.messages // 5,
                                          per_message)), flush=True)
        finally:
            broker.stop()


if __name__ == "__main__":
    main()
