"""Small hardening points: Swagger UI served locally, private data files, absurd token times, chief logins."""

from __future__ import annotations

import os
import re
import stat
import subprocess
import sys
import warnings
from pathlib import Path

import pytest

with warnings.catch_warnings():
    warnings.filterwarnings("ignore", message=r"Using `httpx` with `starlette.testclient` is deprecated")
    from fastapi.testclient import TestClient

from api import create_app
from core.auth import InvalidToken, Role, TokenSigner, load_secret, new_user
from core.registry import DuplicateUser, UserRepo, open_registry
from core.settings import Settings
from tests.auth_util import PASSWORD, ensure_user

SMARTWATER = str(Path(sys.executable).with_name("smartwater"))


@pytest.fixture()
def settings(tmp_path) -> Settings:
    return Settings(_env_file=None, data_dir=tmp_path / "data", auth_user_cache_s=0)


@pytest.fixture()
def registry(settings):
    reg = open_registry(settings.db_url)
    reg.create_schema()
    yield reg
    reg.close()


def test_docs_load_nothing_from_outside(settings, registry):
    with TestClient(create_app(settings, registry=registry, stream=False)) as c:
        page = c.get("/docs")
        assert page.status_code == 200
        urls = re.findall(r"""(?:src|href)=["']([^"']+)["']|url:\s*['"]([^'"]+)['"]""", page.text)
        urls = [a or b for a, b in urls]
        assert urls and not [u for u in urls if "//" in u], urls  # no CDN, no other host
        for url in urls:
            assert c.get(url).status_code == 200, url
        assert c.get("/docs/oauth2-redirect").status_code == 200


def test_data_files_are_private(tmp_path):
    if os.name != "posix":
        pytest.skip("POSIX permissions")
    data = tmp_path / "fresh" / "data"
    env = {k: v for k, v in os.environ.items() if not k.startswith("SMARTWATER_")}
    res = subprocess.run([SMARTWATER, "init"], capture_output=True, text=True, timeout=180,
                         env={**env, "SMARTWATER_DATA_DIR": str(data)})
    assert res.returncode == 0, res.stderr
    res = subprocess.run([SMARTWATER, "user", "add", "admin", "--role", "admin", "--password-stdin"], text=True,
                         capture_output=True, input=PASSWORD + "\n", timeout=60,
                         env={**env, "SMARTWATER_DATA_DIR": str(data)})
    assert res.returncode == 0, res.stderr
    subprocess.run([SMARTWATER, "token", "admin"], capture_output=True, timeout=60,
                   env={**env, "SMARTWATER_DATA_DIR": str(data)}, check=True)
    assert stat.S_IMODE(data.stat().st_mode) == 0o700
    files = [p for p in data.rglob("*") if p.is_file()]
    assert {"registry.sqlite3", "timeseries.sqlite3", "auth_secret"} <= {p.name for p in files}
    for p in files:
        assert stat.S_IMODE(p.stat().st_mode) & 0o077 == 0, (p, oct(p.stat().st_mode))


def test_token_with_absurd_times_is_401(settings, registry):
    ensure_user(registry, "admin", Role.admin)
    secret = load_secret(settings)
    signer = TokenSigner(secret)
    huge, _ = TokenSigner(secret, clock=lambda: 10**15).issue("admin", "admin", 3600)  # exp in year ~31 million
    # issued "in the future" is refused anyway; the checks must hold without a clock that far off
    with pytest.raises(InvalidToken, match="malformed"):
        TokenSigner(secret, clock=lambda: 10**15 + 1).verify(huge)
    with TestClient(create_app(settings, registry=registry, stream=False)) as c:
        ok, _ = signer.issue("admin", "admin", 3600)
        assert c.get("/api/v1/auth/me", headers={"Authorization": f"Bearer {ok}"}).status_code == 200
        for bad in (huge,):
            resp = c.get("/api/v1/auth/me", headers={"Authorization": f"Bearer {bad}"})
            assert resp.status_code == 401, resp.text
        far, _ = TokenSigner(secret).issue("admin", "admin", 10**13)  # exp beyond year 9999, iat now
        resp = c.get("/api/v1/auth/me", headers={"Authorization": f"Bearer {far}"})
        assert resp.status_code == 401 and resp.json() == {"detail": "invalid token"}


def test_a_chief_with_a_login_already_gets_a_clear_message(registry):
    users = UserRepo(registry.engine)
    users.add(new_user("chief.a", PASSWORD, Role.chief, chief_id="RC-0001"))
    with pytest.raises(DuplicateUser, match="river chief 'RC-0001' already has a login: user 'chief.a'"):
        users.add(new_user("chief.b", PASSWORD, Role.chief, chief_id="RC-0001"))


def test_user_add_cli_names_the_existing_login(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("SMARTWATER_")}
    env["SMARTWATER_DATA_DIR"] = str(tmp_path)

    def add(name):
        return subprocess.run([SMARTWATER, "user", "add", name, "--role", "chief", "--chief-id", "RC-0001",
                               "--password-stdin"], capture_output=True, text=True, input=PASSWORD + "\n",
                              env=env, timeout=60)

    assert add("chief.a").returncode == 0
    res = add("chief.b")
    assert res.returncode == 2 and "already has a login: user 'chief.a'" in res.stderr
    assert "a user named" not in res.stderr
