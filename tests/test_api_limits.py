"""Request bodies are bounded per route and not read before the caller is authenticated (api/limits.py)."""

from __future__ import annotations

import socket
import time
import warnings

import pytest

with warnings.catch_warnings():
    warnings.filterwarnings("ignore", message=r"Using `httpx` with `starlette.testclient` is deprecated")
    from fastapi.testclient import TestClient

from api import ApiServer, create_app
from api.limits import LOGIN_MAX_BYTES
from core.auth import Role
from core.registry import open_registry
from core.settings import Settings
from core.tsdb import open_store
from tests.auth_util import token_for

LOGIN = "/api/v1/auth/login"
UPLOAD = "/api/v1/patrols/1/photos"


@pytest.fixture()
def settings(tmp_path) -> Settings:
    return Settings(_env_file=None, data_dir=tmp_path, auth_user_cache_s=0, photo_max_bytes=64 * 1024,
                    api_max_json_bytes=32 * 1024)


@pytest.fixture()
def backends(settings):
    registry = open_registry(settings.db_url)
    registry.create_schema()
    store = open_store(settings.tsdb_url)
    yield registry, store
    store.close()
    registry.close()


@pytest.fixture()
def server(settings, backends):
    registry, store = backends
    with ApiServer(settings, registry=registry, store=store, host="127.0.0.1", port=0, stream=False) as srv:
        yield srv


def _raw(server: ApiServer, head: str, body_prefix: bytes = b"") -> tuple[int, bytes, float]:
    """Send request headers and only the start of the body; the status the server answers without the rest."""
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        sock.sendall(head.encode("latin-1") + b"\r\n" + body_prefix)
        t0 = time.monotonic()
        data = b""
        while True:
            head_end = data.find(b"\r\n\r\n")
            if head_end >= 0:
                length = [int(line.split(b":")[1]) for line in data[:head_end].lower().split(b"\r\n")
                          if line.startswith(b"content-length:")]
                if length and len(data) >= head_end + 4 + length[0]:
                    break
            chunk = sock.recv(65536)
            if not chunk:
                break
            data += chunk
        status = int(data.split(b" ", 2)[1])
        return status, data, time.monotonic() - t0


def test_huge_login_is_refused_by_its_length_before_reading(server):
    head = (f"POST {LOGIN} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            f"Content-Length: {100 * 1024 * 1024}\r\n")
    status, data, _ = _raw(server, head, b'{"username": "')
    assert status == 413 and b"at most" in data


def test_unauthenticated_upload_is_refused_before_its_body(server):
    boundary = "b0undary"
    head = (f"POST {UPLOAD} HTTP/1.1\r\nHost: x\r\nContent-Type: multipart/form-data; boundary={boundary}\r\n"
            f"Content-Length: {300 * 1024 * 1024}\r\n")
    status, data, _ = _raw(server, head, f"--{boundary}\r\n".encode())
    assert status == 401 and b"WWW-Authenticate" in data.replace(b"www-authenticate", b"WWW-Authenticate")
    forged = head + "Authorization: Bearer abc.def.ghi\r\n"
    assert _raw(server, forged)[0] == 401


def test_authenticated_but_oversized_upload_is_413(server, settings, backends):
    token = token_for(settings, backends[0], "chief1", Role.chief)
    head = (f"POST {UPLOAD} HTTP/1.1\r\nHost: x\r\nContent-Type: multipart/form-data; boundary=b\r\n"
            f"Authorization: Bearer {token}\r\nContent-Length: {settings.photo_max_bytes + 200 * 1024}\r\n")
    assert _raw(server, head)[0] == 413


def test_chunked_bodies_are_counted(settings, backends):
    registry, store = backends
    token = token_for(settings, registry, "admin", Role.admin)
    app = create_app(settings, registry=registry, store=store, stream=False)

    def chunks(total: int):
        sent = 0
        while sent < total:
            yield b" " * 4096
            sent += 4096

    with TestClient(app) as c:
        resp = c.post(LOGIN, content=chunks(LOGIN_MAX_BYTES * 4), headers={"Content-Type": "application/json"})
        assert resp.status_code == 413, resp.text
        rule = c.post("/api/v1/rules", content=chunks(settings.api_max_json_bytes + 8192),
                      headers={"Content-Type": "application/json", "Authorization": f"Bearer {token}"})
        assert rule.status_code == 413 and "at most" in rule.json()["detail"]
        # Within the limits nothing changes: a normal login still gets its 401 for a wrong password.
        assert c.post(LOGIN, json={"username": "admin", "password": "wrong password!"}).status_code == 401


def test_a_client_that_never_finishes_its_headers_is_disconnected(settings, backends):
    from core.mqtt import wait_for
    from api.server import server_options

    registry, store = backends
    fast = settings.model_copy(update={"api_header_timeout_s": 0.5})
    assert server_options(fast)["limit_concurrency"] == fast.api_max_connections
    with ApiServer(fast, registry=registry, store=store, host="127.0.0.1", port=0, stream=False) as srv:
        slow = [socket.create_connection(("127.0.0.1", srv.port), timeout=10) for _ in range(3)]
        slow[0].sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")  # never the blank line
        slow[1].sendall(b"GET /hea")
        # slow[2] sends nothing at all

        def closed(sock: socket.socket) -> bool:
            sock.settimeout(0.2)
            try:
                return sock.recv(1024) == b""
            except TimeoutError:
                return False

        try:
            assert wait_for(lambda: all(closed(s) for s in slow), 10, 0.1)
            # a normal request on a fresh connection is unaffected
            status, _, _ = _raw(srv, "GET /healthz HTTP/1.1\r\nHost: x\r\n")
            assert status == 200
        finally:
            for s in slow:
                s.close()
