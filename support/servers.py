"""Private instances of real servers (Debian's packages) on free ports, for tests and benchmarks."""

from __future__ import annotations

import getpass
import os
import queue
import shutil
import socket
import subprocess
import threading
import time
from pathlib import Path

from core.broker import free_port


def _wait_port(host: str, port: int, timeout: float, proc: subprocess.Popen | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"server exited with code {proc.returncode} before listening on {port}")
        try:
            with socket.create_connection((host, port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.02)
    raise TimeoutError(f"nothing listening on {host}:{port} after {timeout} s")


def find_binary(name: str, *extra: str) -> str:
    path = shutil.which(name) or next((p for p in extra if Path(p).exists()), None)
    if not path:
        raise RuntimeError(f"{name} not found: `make test` installs it (apt-get install {name})")
    return path


class MosquittoServer:
    """A private Mosquitto with persistence in its own directory, restartable on the same port."""

    def __init__(self, workdir: Path, port: int | None = None, extra_conf: str = "") -> None:
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.port = port or free_port()
        self.binary = find_binary("mosquitto", "/usr/sbin/mosquitto")
        self.conf = self.workdir / "mosquitto.conf"
        self.log = self.workdir / "mosquitto.log"
        self.conf.write_text(
            f"listener {self.port} 127.0.0.1\n"
            "allow_anonymous true\n"
            f"user {getpass.getuser()}\n"
            "persistence true\n"
            f"persistence_location {self.workdir}/\n"
            "autosave_interval 1\n"
            # docs/domain.md ("The parts we build on"): the defaults (1,000 queued, 20 in flight) drop data for offline sessions.
            "max_queued_messages 2000000\n"
            "max_queued_bytes 0\n"
            "max_inflight_messages 0\n"
            "persistent_client_expiration 1d\n"
            f"log_dest file {self.log}\n"
            "log_type error\nlog_type warning\nlog_type notice\n"
            + extra_conf)
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"mqtt://127.0.0.1:{self.port}"

    def start(self, timeout: float = 10.0) -> "MosquittoServer":
        self.proc = subprocess.Popen([self.binary, "-c", str(self.conf)], stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL)
        _wait_port("127.0.0.1", self.port, timeout, self.proc)
        return self

    def stop(self) -> None:
        if self.proc:
            stop_process(self.proc, 10)
        self.proc = None

    def restart(self) -> None:
        self.stop()
        self.start()


class InfluxServer:
    """A private InfluxDB 1.x (Debian's ``influxd``) on free ports with all state in its own directory.

    Only the HTTP API listens (on 127.0.0.1); the RPC/backup bind address gets a second free port so two
    instances, or a system InfluxDB on 8086/8088, never clash. Restartable on the same ports and data.
    """

    def __init__(self, workdir: Path, port: int | None = None, database: str = "smartwater") -> None:
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.port = port or free_port()
        self.rpc_port = free_port()
        while self.rpc_port == self.port:
            self.rpc_port = free_port()
        self.database = database
        self.binary = find_binary("influxd", "/usr/bin/influxd")
        self.conf = self.workdir / "influxdb.conf"
        self.log = self.workdir / "influxd.log"
        d = self.workdir
        off = "[[{}]]\n  enabled = false\n  bind-address = \"127.0.0.1:0\"\n"
        self.conf.write_text(
            # Upstream's key, and Debian's (its build renamed it): unknown keys are ignored.
            "reporting-disabled = true\n"
            "reporting-enabled = false\n"
            f'bind-address = "127.0.0.1:{self.rpc_port}"\n'
            "[meta]\n"
            f'  dir = "{d / "meta"}"\n'
            "  retention-autocreate = true\n"
            "  logging-enabled = false\n"
            "[data]\n"
            f'  dir = "{d / "data"}"\n'
            f'  wal-dir = "{d / "wal"}"\n'
            '  index-version = "inmem"\n'
            '  wal-fsync-delay = "0s"\n'
            "  query-log-enabled = false\n"
            "  trace-logging-enabled = false\n"
            "[coordinator]\n"
            '  log-queries-after = "0s"\n'
            "[retention]\n  enabled = false\n"
            "[shard-precreation]\n  enabled = false\n"
            # No _internal database, no self-monitoring writes.
            "[monitor]\n  store-enabled = false\n"
            "[subscriber]\n  enabled = false\n"
            "[http]\n"
            "  enabled = true\n"
            f'  bind-address = "127.0.0.1:{self.port}"\n'
            "  auth-enabled = false\n"
            "  log-enabled = false\n"
            "  suppress-write-log = true\n"
            "  write-tracing = false\n"
            "  pprof-enabled = false\n"
            "  https-enabled = false\n"
            "  unix-socket-enabled = false\n"
            f'  bind-socket = "{d / "influxd.sock"}"\n'
            "  max-row-limit = 0\n"
            '[ifql]\n  enabled = false\n  bind-address = "127.0.0.1:0"\n'
            "[logging]\n"
            '  level = "error"\n'
            "  suppress-logo = true\n"
            "[continuous_queries]\n  enabled = false\n  log-enabled = false\n"
            + "".join(off.format(s) for s in ("graphite", "collectd", "opentsdb", "udp")))
        self.proc: subprocess.Popen | None = None
        self._logf = None

    @property
    def http(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        return f"influxdb://127.0.0.1:{self.port}/{self.database}"

    def url_for(self, database: str) -> str:
        return f"influxdb://127.0.0.1:{self.port}/{database}"

    def start(self, timeout: float = 20.0) -> "InfluxServer":
        import httpx

        # INFLUXDB_* variables override the config file: keep them out so nothing points elsewhere.
        env = {k: v for k, v in os.environ.items() if not k.startswith("INFLUXDB_")}
        self._logf = open(self.log, "ab")
        self.proc = subprocess.Popen([self.binary, "run", "-config", str(self.conf)], stdin=subprocess.DEVNULL,
                                     stdout=self._logf, stderr=subprocess.STDOUT, env=env, cwd=self.workdir)
        deadline = time.monotonic() + timeout
        with httpx.Client(timeout=0.5) as client:
            while True:
                if self.proc.poll() is not None:
                    code = self.proc.returncode
                    self._close_log()
                    tail = self.log.read_text(errors="replace")[-2000:]
                    self.proc = None
                    raise RuntimeError(f"influxd exited with code {code} before answering on {self.port}:\n{tail}")
                try:
                    if client.get(f"{self.http}/ping").status_code == 204:
                        return self
                except httpx.TransportError:
                    pass
                if time.monotonic() > deadline:
                    self.stop()
                    raise TimeoutError(f"influxd did not answer /ping on {self.port} after {timeout} s")
                time.sleep(0.02)

    def query(self, q: str, database: str | None = None) -> dict:
        """Run InfluxQL (POST /query, so CREATE/DROP work); raise on any error."""
        import httpx

        params = {"db": database} if database else {}
        resp = httpx.post(f"{self.http}/query", params=params, data={"q": q}, timeout=10)
        resp.raise_for_status()
        body = resp.json()
        errors = [r["error"] for r in body.get("results", []) if r.get("error")]
        if errors:
            raise RuntimeError(f"InfluxQL {q!r} failed: {errors}")
        return body

    def stop(self) -> None:
        if self.proc:
            stop_process(self.proc, 15)
        self.proc = None
        self._close_log()

    def _close_log(self) -> None:
        if self._logf is not None:
            self._logf.close()
            self._logf = None

    def restart(self) -> None:
        self.stop()
        self.start()


def stop_process(proc: subprocess.Popen, timeout: float) -> int | None:
    """SIGTERM, then SIGKILL if it has not ended within ``timeout`` s; its exit code when SIGTERM was enough."""
    if proc.poll() is not None:
        return proc.returncode
    proc.terminate()
    try:
        return proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        return None


def line_queue(stream) -> "queue.Queue[str | None]":
    """The lines of a child's pipe as they come (None at the end), read by a thread: a test can wait for a line
    (a login, a URL) while the child runs, and the pipe never fills up and blocks it."""
    q: queue.Queue[str | None] = queue.Queue()

    def pump() -> None:
        for line in stream:
            q.put(line)
        q.put(None)

    threading.Thread(target=pump, daemon=True).start()
    return q
