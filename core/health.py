"""The small HTTP server a long-running stage exposes beside its work: /metrics (Prometheus) and /healthz."""

from __future__ import annotations

import json
import logging
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Callable

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

log = logging.getLogger("core.health")


class HealthServer:
    """Serves /metrics (Prometheus) and /healthz (JSON, 503 unless ok) for one long-running process."""

    def __init__(self, host: str, port: int, health: Callable[[], dict], name: str = "metrics") -> None:
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
        self.name = name

    def start(self) -> None:
        self._thread = threading.Thread(target=self.server.serve_forever, name=self.name, daemon=True)
        self._thread.start()
        log.info("%s: metrics and health at http://%s:%s/metrics", self.name, *self.server.server_address[:2])

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
