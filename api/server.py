"""Run the API with uvicorn in a background thread (tests, the all-in-one runner)."""

from __future__ import annotations

import errno
import logging
import socket
import threading
import time

import uvicorn

from api.app import create_app
from api.protocol import protocol_with_header_timeout
from api.stream import AlertStream
from core.logs import kv
from core.registry import Registry
from core.settings import Settings
from core.tsdb import TimeSeriesStore

log = logging.getLogger("api")


def bind_socket(host: str, port: int) -> socket.socket:
    """A listening TCP socket on host:port (port 0: any free port); RuntimeError with a clear message if taken."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as exc:
        raise RuntimeError(f"cannot start the API: unknown host {host!r} ({exc})") from exc
    family, _, _, _, addr = infos[0]
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn does: TIME_WAIT is no obstacle
        sock.bind(addr)
        sock.listen(2048)
    except OSError as exc:
        sock.close()
        if exc.errno == errno.EADDRINUSE:
            raise RuntimeError(f"cannot start the API on {host}:{port}: the port is already in use "
                               "(set SMARTWATER_API_PORT or --port)") from exc
        raise RuntimeError(f"cannot start the API on {host}:{port}: {exc}") from exc
    sock.set_inheritable(True)
    return sock


def server_options(settings: Settings) -> dict[str, object]:
    """uvicorn's settings for the API. proxy_headers=False: uvicorn would trust X-Forwarded-For from loopback;
    the API reads it itself, from SMARTWATER_API_TRUSTED_PROXIES only (api/clientaddr.py)."""
    # log_config=None: keep the process's logging (core.logs), only set uvicorn's level.
    # Slow clients: a deadline for the request head, idle keep-alive connections closed, and a cap on connections
    # (503 beyond it) so that held-open sockets cannot exhaust the server.
    return {"log_level": "warning", "access_log": False, "log_config": None, "timeout_graceful_shutdown": 5,
            "proxy_headers": False, "forwarded_allow_ips": "",
            "http": protocol_with_header_timeout(settings.api_header_timeout_s),
            "timeout_keep_alive": settings.api_keepalive_timeout_s,
            "limit_concurrency": settings.api_max_connections}


class UvicornServer(uvicorn.Server):
    """uvicorn's server, ending the open alert streams as soon as a shutdown begins.

    An SSE response never finishes on its own, so uvicorn would otherwise wait out its graceful-shutdown timeout
    for every connected dashboard.
    """

    def handle_exit(self, sig: int, frame: object) -> None:
        end_streams(self.config.app)
        super().handle_exit(sig, frame)  # type: ignore[arg-type]


def end_streams(app: object) -> None:
    stream = getattr(getattr(app, "state", None), "alert_stream", None)
    if stream is not None:
        stream.close_clients()


class ApiServer:
    """``start()`` returns once the API accepts connections; ``stop()`` shuts it down and frees the port.

    Port 0 picks a free port; ``url`` then shows the one chosen.
    """

    def __init__(self, settings: Settings, registry: Registry | None = None, store: TimeSeriesStore | None = None,
                 host: str | None = None, port: int | None = None, stream: bool = True) -> None:
        self.settings = settings
        self.host = host if host is not None else settings.api_host
        self.port = port if port is not None else settings.api_port
        # The alert stream (MQTT → SSE) starts and stops with the app's lifespan.
        self.app = create_app(settings, registry=registry, store=store, stream=stream)
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self._sock: socket.socket | None = None

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    def start(self, timeout: float = 10.0) -> None:
        if self._thread is not None:
            raise RuntimeError("ApiServer already started")
        sock = bind_socket(self.host, self.port)
        self._sock = sock
        self.port = sock.getsockname()[1]
        config = uvicorn.Config(self.app, **server_options(self.settings), lifespan="on")
        self._server = UvicornServer(config)
        self._thread = threading.Thread(target=self._server.run, kwargs={"sockets": [sock]}, name="api-server",
                                        daemon=True)
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"the API did not start on {self.url} within {timeout:g} s")
            time.sleep(0.01)
        log.info("api listening", extra=kv(url=self.url))

    @property
    def alert_stream(self) -> "AlertStream | None":
        """The running alert stream, None when disabled or not running."""
        return self.app.state.alert_stream

    def stop(self, timeout: float = 10.0) -> None:
        if self._server is not None:
            end_streams(self.app)
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout)
            if self._thread.is_alive():
                log.warning("api server thread did not stop", extra=kv(timeout_s=timeout))
        if self._sock is not None:
            self._sock.close()
        self._server, self._thread, self._sock = None, None, None

    def __enter__(self) -> "ApiServer":
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
