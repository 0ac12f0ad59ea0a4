"""Prometheus metrics of the ingest process, and the small HTTP server that exposes them with /healthz."""

from __future__ import annotations

import json
import logging
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Callable

from prometheus_client import CONTENT_TYPE_LATEST, Counter, Gauge, Histogram, generate_latest

log = logging.getLogger("ingest.metrics")

MESSAGES = Counter("smartwater_ingest_messages", "MQTT messages received by ingest")
READINGS = Counter("smartwater_ingest_readings_written", "Readings written to the time-series store", ["kind"])
DEAD_LETTERS = Counter("smartwater_ingest_dead_letters", "Messages rejected into the dead-letter table", ["reason"])
STORE_ERRORS = Counter("smartwater_ingest_store_errors", "Failed store writes (retried)")
BATCH_MESSAGES = Histogram("smartwater_ingest_batch_messages", "Messages per written batch",
                           buckets=(1, 10, 50, 100, 500, 1000, 2500, 5000, 10000, 20000, 50000))
WRITE_SECONDS = Histogram("smartwater_ingest_write_seconds", "Time to write one batch",
                          buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10))
PENDING = Gauge("smartwater_ingest_pending_messages", "Messages received and not yet acknowledged (written)")
DEGRADED = Gauge("smartwater_ingest_degraded", "1 while the store cannot be written")
# How far behind the sensors the newest written reading is; grows while a backlog drains.
LAG = Gauge("smartwater_ingest_data_lag_seconds", "Wall time minus the data time of the newest reading written")


class HealthServer:
    """Serves /metrics (Prometheus) and /healthz (JSON, 503 unless ok) for one long-running process."""

    def __init__(self, host: str, port: int, health: Callable[[], dict]) -> None:
        health_fn = health

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 - http.server's naming
                if self.path.split("?")[0] == "/metrics":
                    body, ctype, code = generate_latest(), CONTENT_TYPE_LATEST, 200
                elif self.path.split("?")[0] == "/healthz":
                    h = health_fn()
                    body = json.dumps(h).encode()
                    ctype, code = "application/json", 200 if h.get("status") == "ok" else 503
                else:
                    body, ctype, code = b'{"detail": "not found: try /metrics or /healthz"}', "application/json", 404
                self.send_response(code)
                self.send_header("content-type", ctype)
                self.send_header("content-length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *_args: object) -> None:
                pass

        self.server = ThreadingHTTPServer((host, port), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self.server.serve_forever, name="ingest-metrics", daemon=True)
        self._thread.start()
        log.info("metrics and health at http://%s:%s/metrics", *self.server.server_address[:2])

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
