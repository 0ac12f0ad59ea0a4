"""River-chief compliance and the public bulletin.

``python -m benchmarks.patrols [--chiefs 2000] [--patrols 75000] [--points 20] [--repeat 5] [--requests 1000]
[--clients 4] [--db-url URL]``

1. **data**: the generated river network with ``--chiefs`` chiefs (simulators.rivers) and ``--patrols`` finished
   patrols spread over the 365 days up to now, each with a ``--points``-fix track (simulators.patrol_history,
   the data set of tests/test_patrols.py), in a fresh SQLite registry (or ``--db-url``, e.g. an empty
   PostgreSQL database).
2. **compliance**: ``PatrolRepo.compliance`` over that year (required vs valid per chief, roll-ups by town and
   level), repeated ``--repeat`` times; median and max. Target: <= 2 s.
3. **bulletin**: ``python -m api`` in a subprocess (uvicorn) on that registry; one request to fill the cache
   (its time is the uncached computation for the current month), then ``--requests`` GETs of
   ``/api/v1/bulletin`` (no token) from ``--clients`` threads with keep-alive httpx clients; p50/p99/max of the
   client-side latency. Target: p99 <= 100 ms. One more run of the same with ``?format=csv``.

One JSON line per measurement on stdout, then a ``patrols/summary`` line with the targets; progress on stderr.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx

from benchmarks.alerts import percentile
from benchmarks.ingest import REPO, log
from core.patrols.repo import PatrolRepo
from core.registry import open_registry
from core.settings import Settings
from core.timeutil import utcnow
from simulators.patrol_history import load_patrol_history
from simulators.rivers import generate_river_network, store_network
from support.servers import stop_process

COMPLIANCE_TARGET_S = 2.0
BULLETIN_P99_TARGET_MS = 100.0


def emit(obj: dict[str, Any]) -> None:
    print(json.dumps(obj, ensure_ascii=False), flush=True)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def build(settings: Settings, args: argparse.Namespace) -> dict[str, Any]:
    registry = open_registry(settings.db_url)
    registry.create_schema()
    try:
        t = time.perf_counter()
        net = generate_river_network(seed=settings.district_seed, n_chiefs=args.chiefs)
        repo = PatrolRepo(registry.engine, settings)
        store_network(repo, net)
        t_net = time.perf_counter() - t
        t = time.perf_counter()
        loaded = load_patrol_history(registry.engine, net, args.patrols, utcnow() - timedelta(days=365),
                                     points_per_patrol=args.points)
        out = {"case": "patrols/data", "db": registry.engine.dialect.name, "chiefs": len(net.chiefs),
               "segments": len(net.segments), **loaded, "network_s": round(t_net, 2),
               "load_s": round(time.perf_counter() - t, 2)}
    finally:
        registry.close()
    return out


def run_compliance(settings: Settings, args: argparse.Namespace) -> dict[str, Any]:
    registry = open_registry(settings.db_url)
    try:
        repo = PatrolRepo(registry.engine, settings)
        end = utcnow()
        start = end - timedelta(days=365)
        samples, report = [], None
        for _ in range(args.repeat):
            t = time.perf_counter()
            report = repo.compliance(start, end)
            samples.append(time.perf_counter() - t)
        assert report is not None
        return {"case": "patrols/compliance", "chiefs": len(report.chiefs), "patrols": report.total.patrols,
                "valid": report.total.valid, "district_rate": report.total.rate, "repeat": args.repeat,
                "median_ms": round(statistics.median(samples) * 1000, 1), "max_ms": round(max(samples) * 1000, 1),
                "target_ms": COMPLIANCE_TARGET_S * 1000}
    finally:
        registry.close()


def hammer(url: str, params: dict[str, str], n: int, clients: int) -> list[float]:
    """``n`` GETs from ``clients`` threads, each with its own keep-alive client; latencies in ms."""
    per = [n // clients + (1 if k < n % clients else 0) for k in range(clients)]
    results: list[list[float]] = [[] for _ in range(clients)]

    def work(k: int) -> None:
        with httpx.Client(timeout=10) as client:
            for _ in range(per[k]):
                t = time.perf_counter()
                r = client.get(url, params=params)
                results[k].append((time.perf_counter() - t) * 1000)
                r.raise_for_status()

    threads = [threading.Thread(target=work, args=(k,)) for k in range(clients)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    return sorted(x for r in results for x in r)


def run_bulletin(settings: Settings, root: Path, args: argparse.Namespace) -> list[dict[str, Any]]:
    port = free_port()
    env = {**os.environ, "SMARTWATER_DATA_DIR": str(root), "SMARTWATER_DB_URL": str(settings.db_url),
           "SMARTWATER_API_PORT": str(port), "SMARTWATER_LOG_LEVEL": "WARNING",
           "SMARTWATER_AUTH_SECRET": secrets.token_hex(32),
           # No broker here: the alert stream would only keep retrying in the background.
           "SMARTWATER_MQTT_URL": f"mqtt://127.0.0.1:{free_port()}"}
    proc = subprocess.Popen([sys.executable, "-m", "api"], cwd=REPO, env=env)
    url = f"http://127.0.0.1:{port}/api/v1/bulletin"
    out: list[dict[str, Any]] = []
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2)
                break
            except httpx.TransportError:
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise RuntimeError("the API did not come up") from None
                time.sleep(0.1)
        for fmt in ("json", "csv"):
            params = {"format": fmt}
            t = time.perf_counter()
            first = httpx.get(url, params=params, timeout=30)
            first.raise_for_status()
            cold_ms = (time.perf_counter() - t) * 1000
            rows = len(first.json()["rows"]) if fmt == "json" else first.text.count("\n") - 1
            log(f"bulletin ({fmt}): {args.requests} requests from {args.clients} clients")
            lat = hammer(url, params, args.requests, args.clients)
            out.append({"case": f"patrols/bulletin/{fmt}", "rows": rows, "bytes": len(first.content),
                        "first_request_ms": round(cold_ms, 1), "requests": len(lat), "clients": args.clients,
                        "p50_ms": round(percentile(lat, 50) or 0, 2), "p99_ms": round(percentile(lat, 99) or 0, 2),
                        "max_ms": round(lat[-1], 2), "target_p99_ms": BULLETIN_P99_TARGET_MS})
    finally:
        stop_process(proc, 15)
    return out


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m benchmarks.patrols", description=__doc__.split("\n\n")[0])
    p.add_argument("--chiefs", type=int, default=2000)
    p.add_argument("--patrols", type=int, default=75_000)
    p.add_argument("--points", type=int, default=20, help="GPS fixes stored per patrol")
    p.add_argument("--repeat", type=int, default=5)
    p.add_argument("--requests", type=int, default=1000)
    p.add_argument("--clients", type=int, default=4)
    p.add_argument("--db-url", help="an empty registry database (default: SQLite in a temporary directory)")
    args = p.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="bench-patrols-") as tmp:
        root = Path(tmp)
        settings = Settings(_env_file=None, data_dir=root, db_url=args.db_url)
        log(f"building {args.chiefs} chiefs, {args.patrols} patrols with {args.points} fixes each")
        data = build(settings, args)
        emit(data)
        log("compliance")
        comp = run_compliance(settings, args)
        emit(comp)
        bulletins = run_bulletin(settings, root, args)
        for b in bulletins:
            emit(b)
        p99 = max(b["p99_ms"] for b in bulletins)
        emit({"case": "patrols/summary", "compliance_median_ms": comp["median_ms"],
              "compliance_ok": comp["max_ms"] <= COMPLIANCE_TARGET_S * 1000, "bulletin_p99_ms": p99,
              "bulletin_ok": p99 <= BULLETIN_P99_TARGET_MS})


if __name__ == "__main__":
    main()
