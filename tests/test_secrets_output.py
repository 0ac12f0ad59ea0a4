"""Secrets given to the service never appear in what it prints or logs: every CLI command and a service start are
run with known secrets in their settings, and their whole output is searched for them (core/redact.py)."""

from __future__ import annotations

import os
import secrets
import signal
import subprocess
import sys
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from core.mqtt import wait_for
from support.servers import free_port

SMARTWATER = str(Path(sys.executable).with_name("smartwater"))


@pytest.fixture()
def secret_env(tmp_path, postgres):
    """Settings whose every secret is known: a PostgreSQL registry reached with a password in its URL (the test
    server trusts local connections, so any password works), a broker URL with a password, tokens and keys."""
    db = urlsplit(postgres.create_database())
    pg_password = "Pg-" + secrets.token_hex(10)
    mqtt_password = "Mq-" + secrets.token_hex(10)
    db_url = db._replace(netloc=f"{db.username or 'postgres'}:{pg_password}@{db.hostname}:{db.port or 5432}").geturl()
    given = {
        "SMARTWATER_DATA_DIR": str(tmp_path),
        "SMARTWATER_DB_URL": db_url,
        "SMARTWATER_MQTT_URL": f"mqtt://svc:{mqtt_password}@127.0.0.1:{free_port()}",
        "SMARTWATER_AUTH_SECRET": secrets.token_hex(32),
        "SMARTWATER_INFLUX_TOKEN": secrets.token_hex(16),
        "SMARTWATER_SMTP_PASSWORD": "Sm-" + secrets.token_hex(10),
        "SMARTWATER_WEBHOOK_SECRET": "Wh-" + secrets.token_hex(10),
        "SMARTWATER_LOG_LEVEL": "DEBUG",
    }
    env = {k: v for k, v in os.environ.items() if not k.startswith("SMARTWATER_")}
    values = [pg_password, mqtt_password] + [given[k] for k in ("SMARTWATER_AUTH_SECRET", "SMARTWATER_INFLUX_TOKEN",
                                                                "SMARTWATER_SMTP_PASSWORD",
                                                                "SMARTWATER_WEBHOOK_SECRET")]
    return {**env, **given}, values


def _no_secret(output: str, values: list[str], what: str) -> None:
    for value in values:
        assert value not in output, f"{what} printed a secret"


def _run(args, env, stdin=None):
    res = subprocess.run([SMARTWATER, *args], capture_output=True, text=True, env=env, input=stdin, timeout=180)
    return res, res.stdout + res.stderr


def test_no_command_prints_a_secret(secret_env, tmp_path):
    env, values = secret_env
    commands = [
        (["init"], None), (["init"], None), (["stations", "--kind", "rain"], None), (["rules", "list"], None),
        (["rules", "defaults"], None),
        (["user", "add", "admin", "--role", "admin", "--password-stdin"], "correct horse battery staple\n"),
        (["user", "list"], None), (["user", "list", "--json"], None), (["token", "admin"], None),
        (["user", "disable", "nobody"], None),
        (["devices", "credentials", "--out", str(tmp_path / "auth"), "--env-file", str(tmp_path / "env")], None),
    ]
    for args, stdin in commands:
        res, out = _run(args, env, stdin)
        _no_secret(out, values, " ".join(args))
    init, out = _run(["init"], env)
    assert init.returncode == 0, out
    assert "registry postgresql://postgres:***@" in out  # the URL is still shown, its password masked


def test_a_malformed_setting_is_reported_without_its_secret(secret_env):
    env, values = secret_env
    password = values[1]
    for bad in {"SMARTWATER_MQTT_URL": f"ftp://svc:{password}@broker:1883",
                "SMARTWATER_DB_URL": f"mysql://root:{password}@db/sw"}.items():
        res, out = _run(["stations"], {**env, bad[0]: bad[1]})
        assert res.returncode == 2 and bad[0] in out, out
        _no_secret(out, values, f"stations with a bad {bad[0]}")
        api = subprocess.run([sys.executable, "-m", "api"], capture_output=True, text=True, timeout=60,
                             env={**env, bad[0]: bad[1]})
        assert api.returncode == 2 and bad[0] in api.stderr
        _no_secret(api.stdout + api.stderr, values, f"python -m api with a bad {bad[0]}")


@pytest.mark.parametrize("stage", ["api", "ingest"])
def test_a_service_start_logs_no_secret(secret_env, stage):
    env, values = secret_env
    assert _run(["init"], env)[0].returncode == 0
    port = free_port()
    log = Path(env["SMARTWATER_DATA_DIR"]) / f"{stage}.log"
    with log.open("w") as out:
        proc = subprocess.Popen([SMARTWATER, "run", stage, "--port", str(port)], stdout=out, stderr=subprocess.STDOUT,
                                env={**env, "SMARTWATER_INGEST_METRICS_PORT": "0"})
        try:
            # Started (its broker is unreachable: the connection attempts are the lines likeliest to carry a URL).
            assert wait_for(lambda: f"started component={stage}" in log.read_text() or proc.poll() is not None, 60)
        finally:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
    text = log.read_text()
    assert text.strip(), "the service logged nothing"
    _no_secret(text, values, f"smartwater run {stage}")
