"""docker-compose.yml and deploy/ must stay true to the settings and topics the code reads.

There is no Docker engine here: the files are parsed and checked against the code, and the pieces that run here
(Mosquitto with the deploy config, the PostgreSQL grant script, `docker compose config` when the plugin is
installed) are run for real.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import uuid
from pathlib import Path
from urllib.parse import parse_qs, quote, urlsplit

import pytest
import yaml

from core.broker import free_port
from core.settings import Settings
from core.topics import DEFAULT_SHARED_GROUP
from smartwater.devices import (ACL_FILE, DEFAULT_OUT, PASSWD_FILE, SERVICE_ACL, SERVICE_ENV, service_acl,
                                write_credentials)
from support.servers import _wait_port

ROOT = Path(__file__).resolve().parents[1]
SETTINGS_ENV = {f"SMARTWATER_{name.upper()}" for name in Settings.model_fields}
DEFAULTS = Settings(_env_file=None)
LONG_RUNNING = {"mosquitto", "influxdb", "postgres", "ingest-1", "ingest-2", "alerts", "api", "gateway", "simulator",
                "prometheus", "grafana"}
ONE_SHOT = {"init", "grafana-db-role"}


def _compose() -> dict:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


def _service_env(svc: dict) -> dict[str, str]:
    return {k: str(v) for k, v in (svc.get("environment") or {}).items()}


def _fill(value: str) -> str:
    """Compose interpolation: ${VAR:-default} → default, ${VAR:?error} → a dummy secret."""
    value = re.sub(r"\$\{[A-Z0-9_]+:-([^}]*)\}", r"\1", value)
    return re.sub(r"\$\{[^}]+\}", DUMMY_SECRET, value)  # long and random enough for any secret


DUMMY_SECRET = "7d3f9b1e5a2c8e04f6b1d9a3c7e5f2b8d0a4c6e1"


def _mounts(svc: dict) -> dict[str, str]:
    """Container path → host path (or volume name) of a service's volumes."""
    out = {}
    for v in svc.get("volumes") or []:
        src, dst = v.split(":")[:2]
        out[dst] = src
    return out


def _stages(services: dict) -> dict[str, dict]:
    return {n: s for n, s in services.items() if s.get("command") and s["command"][0] in ("run", "simulate", "init")}


def test_every_smartwater_variable_in_compose_is_a_setting():
    for name, svc in _compose()["services"].items():
        for var in _service_env(svc):
            if var.startswith("SMARTWATER_"):
                assert var in SETTINGS_ENV, f"{name}: {var} is not read by core.settings.Settings"


def test_services_wire_the_stores_and_broker_they_need(monkeypatch):
    services = _compose()["services"]
    stages = _stages(services)
    assert {"init", "ingest-1", "ingest-2", "alerts", "api", "simulator"} <= set(stages)
    for name in [k for k in os.environ if k.startswith("SMARTWATER_")]:
        monkeypatch.delenv(name)
    for name, svc in stages.items():
        env = _service_env(svc)
        for var in ("SMARTWATER_TSDB_URL", "SMARTWATER_DB_URL"):
            assert var in env, f"{name} lacks {var}"
        # Read as the container reads them: from its environment, placeholders filled with dummy secrets and
        # optional ones (${VAR:-}) left empty, which must mean the default.
        filled = {k: _fill(v) for k, v in env.items() if k.startswith("SMARTWATER_")}
        with monkeypatch.context() as m:
            for k, v in filled.items():
                m.setenv(k, v)
            s = Settings(_env_file=None)
        assert (s.mqtt.host, s.mqtt.port) == ("mosquitto", 1883), name
        assert s.display_timezone == "Asia/Shanghai"
        if name == "alerts":  # the optional channels reach the alert stage, and are off unless set
            assert {"SMARTWATER_SMTP_HOST", "SMARTWATER_PUBLIC_URL", "SMARTWATER_WEBHOOK_SECRET"} <= set(env)
            assert (s.smtp_host, s.smtp_port, s.smtp_starttls, s.public_url) == (None, 587, True, None)
    ingest_envs = [_service_env(services[n]) for n in ("ingest-1", "ingest-2")]
    assert {e["SMARTWATER_INGEST_WORKER_ID"] for e in ingest_envs} == {"1", "2"}
    assert {e["SMARTWATER_INGEST_SHARED_GROUP"] for e in ingest_envs} == {"ingest"}


def test_each_stage_uses_its_own_broker_account():
    services = _compose()["services"]
    expected = {"ingest-1": "ingest", "ingest-2": "ingest", "alerts": "alerts", "api": "api", "simulator": "simulator"}
    for name, account in expected.items():
        env = _service_env(services[name])
        assert env["SMARTWATER_MQTT_USERNAME"] == account, name
        assert env["SMARTWATER_MQTT_PASSWORD"].startswith(f"${{{SERVICE_ENV[account]}:?"), name
        assert "@" not in env["SMARTWATER_MQTT_URL"], f"{name}: credentials belong in the username/password settings"
    assert "init" in services and "SMARTWATER_MQTT_PASSWORD" not in _service_env(services["init"])
    # The ingest account may take the shared subscription the workers use.
    group = _service_env(services["ingest-1"])["SMARTWATER_INGEST_SHARED_GROUP"]
    assert group == DEFAULT_SHARED_GROUP  # what the ACL grants unless the settings name another group
    assert ("read", f"$share/{group}/water/#") in SERVICE_ACL["ingest"]
    assert ("read", "$share/other/water/#") in service_acl("other")["ingest"]


def test_every_service_has_a_restart_policy_and_long_running_ones_a_healthcheck():
    services = _compose()["services"]
    assert LONG_RUNNING | ONE_SHOT == set(services)
    for name in LONG_RUNNING:
        svc = services[name]
        assert svc.get("restart") in ("unless-stopped", "always"), name
        hc = svc.get("healthcheck") or {}
        assert hc.get("test") and not hc.get("disable"), f"{name} has no healthcheck"
    for name in ONE_SHOT:
        assert services[name].get("restart") == "no", name
    assert services["simulator"].get("profiles") == ["simulator"]
    # Stages start only once the registry schema is in place and the broker lets them log in.
    for name, svc in _stages(services).items():
        if name != "init":
            deps = svc["depends_on"]
            assert deps["init"]["condition"] == "service_completed_successfully", name
            assert deps["mosquitto"]["condition"] == "service_healthy", name


def test_data_lives_in_named_volumes():
    compose = _compose()
    services = compose["services"]
    named = set(compose["volumes"])
    wanted = {"mosquitto": "/mosquitto/data", "influxdb": "/var/lib/influxdb2", "postgres": "/var/lib/postgresql/data",
              "grafana": "/var/lib/grafana", "prometheus": "/prometheus",
              "api": _service_env(services["api"])["SMARTWATER_DATA_DIR"]}
    for name, path in wanted.items():
        src = _mounts(services[name]).get(path)
        assert src in named, f"{name}: {path} is not on a named volume"
    # Photos (data_dir) are shared: every stage sees the same volume at SMARTWATER_DATA_DIR.
    for name, svc in _stages(services).items():
        assert _mounts(svc).get(_service_env(svc)["SMARTWATER_DATA_DIR"]) == "app-data", name


def test_ports_match_the_settings():
    services = _compose()["services"]
    api_env = _service_env(services["api"])
    assert services["api"]["ports"] == [f"{DEFAULTS.api_port}:{DEFAULTS.api_port}"]
    assert api_env["SMARTWATER_API_PORT"] == str(DEFAULTS.api_port)
    assert str(DEFAULTS.api_port) in " ".join(services["api"]["healthcheck"]["test"])
    assert services["mosquitto"]["ports"] == [f"{DEFAULTS.mqtt.port}:1883"]
    tsdb = urlsplit(api_env["SMARTWATER_TSDB_URL"])
    assert services["influxdb"]["ports"] == [f"{tsdb.port}:8086"]
    metrics_port = DEFAULTS.ingest_metrics_port
    for name in ("ingest-1", "ingest-2"):
        env = _service_env(services[name])
        assert env["SMARTWATER_INGEST_METRICS_PORT"] == str(metrics_port)
        assert env["SMARTWATER_INGEST_METRICS_HOST"] == "0.0.0.0"  # Prometheus scrapes from another container
        assert f":{metrics_port}/healthz" in " ".join(services[name]["healthcheck"]["test"])
    prom = yaml.safe_load((ROOT / "deploy/prometheus/prometheus.yml").read_text())
    targets = {t for job in prom["scrape_configs"] for sc in job["static_configs"] for t in sc["targets"]}
    alerts_env = _service_env(services["alerts"])
    alerts_port = DEFAULTS.alerts_metrics_port
    assert alerts_env["SMARTWATER_ALERTS_METRICS_PORT"] == str(alerts_port)
    assert alerts_env["SMARTWATER_ALERTS_METRICS_HOST"] == "0.0.0.0"
    assert f":{alerts_port}/healthz" in " ".join(services["alerts"]["healthcheck"]["test"])
    gateway_env = _service_env(services["gateway"])
    gw_port = DEFAULTS.gateway_metrics_port
    assert gateway_env["SMARTWATER_GATEWAY_METRICS_PORT"] == str(gw_port)
    assert f":{gw_port}/healthz" in " ".join(services["gateway"]["healthcheck"]["test"])
    assert services["gateway"]["ports"] == [f"{DEFAULTS.gateway_sl651_port}:{gateway_env['SMARTWATER_GATEWAY_SL651_PORT']}",
                                            f"{DEFAULTS.gateway_hj212_port}:{gateway_env['SMARTWATER_GATEWAY_HJ212_PORT']}"]
    assert targets == {f"ingest-1:{metrics_port}", f"ingest-2:{metrics_port}", f"alerts:{alerts_port}",
                       f"gateway:{gw_port}"}
    assert _mounts(services["prometheus"])["/etc/prometheus/prometheus.yml"] == "./deploy/prometheus/prometheus.yml"


def test_env_example_names_every_variable_compose_needs():
    text = (ROOT / "docker-compose.yml").read_text()
    needed = set(re.findall(r"\$\{([A-Z0-9_]+)(?::[?-][^}]*)?\}", text))
    example = dict(line.split("=", 1) for line in (ROOT / ".env.example").read_text().splitlines()
                   if line and not line.startswith("#"))
    assert needed <= set(example), f"missing from .env.example: {sorted(needed - set(example))}"
    assert set(SERVICE_ENV.values()) <= set(example)
    # Placeholders only, never something that could pass for a real secret.
    for key, value in example.items():
        assert not value or "change-me" in value, key


def test_mosquitto_config_has_no_anonymous_access_and_raised_limits():
    conf = (ROOT / "deploy/mosquitto/mosquitto.conf").read_text()
    assert re.search(r"^allow_anonymous false$", conf, re.M)
    assert not re.search(r"^allow_anonymous true", conf, re.M)
    assert re.search(r"^max_queued_messages (\d+)", conf, re.M).group(1) != "1000"
    assert "autosave_interval 10" in conf
    # A publisher must not be able to push 20 MB messages through to ingest (dead letters stay small).
    size_limit = int(re.search(r"^message_size_limit (\d+)$", conf, re.M).group(1))
    assert DEFAULTS.ingest_max_payload_bytes <= size_limit <= 16 * 1024 * 1024
    passwd = re.search(r"^password_file (\S+)$", conf, re.M).group(1)
    acl = re.search(r"^acl_file (\S+)$", conf, re.M).group(1)
    # start.sh copies the mounted files to exactly the paths the config reads.
    mounts = _mounts(_compose()["services"]["mosquitto"])
    start = (ROOT / "deploy/mosquitto/start.sh").read_text()
    auth_dir = Path(passwd).parent
    assert Path(acl).parent == auth_dir and Path(passwd).name == PASSWD_FILE and Path(acl).name == ACL_FILE
    assert f"cp /mosquitto/secrets/passwd /mosquitto/secrets/acl {auth_dir}/" in start
    default_out = DEFAULT_OUT  # the CLI's --out default
    assert mounts["/mosquitto/secrets/passwd"] == f"./{default_out}/{PASSWD_FILE}"
    assert mounts["/mosquitto/secrets/acl"] == f"./{default_out}/{ACL_FILE}"
    assert mounts["/mosquitto/config/mosquitto.conf"] == "./deploy/mosquitto/mosquitto.conf"
    assert (ROOT / default_out / ".gitignore").read_text().splitlines()[-2:] == ["*", "!.gitignore"]
    assert subprocess.run(["sh", "-n", str(ROOT / "deploy/mosquitto/start.sh")]).returncode == 0


def test_mosquitto_runs_with_the_deploy_config_and_the_health_account(tmp_path: Path):
    """The deploy config, pointed at local paths, starts a real Mosquitto; the compose health check passes."""
    auth = tmp_path / "auth"
    summary = write_credentials([], auth)
    port = free_port()
    conf = (ROOT / "deploy/mosquitto/mosquitto.conf").read_text()
    conf = (conf.replace("listener 1883 0.0.0.0", f"listener {port} 127.0.0.1")
            .replace("/mosquitto/auth/", f"{auth}/").replace("/mosquitto/data/", f"{tmp_path}/")
            .replace("log_dest stdout", f"log_dest file {tmp_path / 'mosquitto.log'}"))
    (tmp_path / "mosquitto.conf").write_text(conf + "user root\n" if os.geteuid() == 0 else conf)
    binary = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
    proc = subprocess.Popen([binary, "-c", str(tmp_path / "mosquitto.conf")], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    try:
        _wait_port("127.0.0.1", port, 10, proc)
        sub = shutil.which("mosquitto_sub")
        if not sub:
            pytest.skip("mosquitto_sub (mosquitto-clients) not installed")
        health = _compose()["services"]["mosquitto"]["healthcheck"]["test"][1]
        password = {a.username: a.password for a in summary.accounts}["health"]
        cmd = health.replace("$$", "$").replace(">/dev/null", "") + f" -p {port}"
        ok = subprocess.run(["sh", "-c", cmd], env={**os.environ, "MQTT_HEALTH_PASSWORD": password},
                            capture_output=True, text=True, timeout=20)
        assert ok.returncode == 0, ok.stderr
        bad = subprocess.run(["sh", "-c", cmd], env={**os.environ, "MQTT_HEALTH_PASSWORD": "wrong"},
                             capture_output=True, text=True, timeout=20)
        assert bad.returncode != 0
    finally:
        proc.terminate()
        proc.wait(10)


def test_influxdb_init_creates_the_dbrp_the_code_reads():
    services = _compose()["services"]
    influx_env = _service_env(services["influxdb"])
    tsdb = urlsplit(_service_env(services["api"])["SMARTWATER_TSDB_URL"])
    assert tsdb.scheme == "influxdb2"
    assert tsdb.path.strip("/") == influx_env["DOCKER_INFLUXDB_INIT_BUCKET"]
    assert parse_qs(tsdb.query)["org"] == [influx_env["DOCKER_INFLUXDB_INIT_ORG"]]
    assert influx_env["DOCKER_INFLUXDB_INIT_MODE"] == "setup"
    assert influx_env["DOCKER_INFLUXDB_INIT_ADMIN_TOKEN"] == _service_env(services["api"])["SMARTWATER_INFLUX_TOKEN"]
    host_dir = _mounts(services["influxdb"])["/docker-entrypoint-initdb.d"]
    scripts = sorted((ROOT / host_dir).glob("*.sh"))
    assert scripts, "no init script"
    text = "\n".join(s.read_text() for s in scripts)
    # Influx2Store reads /query?db=<bucket> with the default retention policy.
    assert "influx v1 dbrp create" in text
    assert '--db "${DOCKER_INFLUXDB_INIT_BUCKET}"' in text
    assert '--bucket-id "${DOCKER_INFLUXDB_INIT_BUCKET_ID}"' in text and "--default" in text
    for s in scripts:
        assert os.access(s, os.X_OK), f"{s} is not executable"
        assert subprocess.run(["bash", "-n", str(s)]).returncode == 0


def _walk(node):
    if isinstance(node, dict):
        yield node
        for v in node.values():
            yield from _walk(v)
    elif isinstance(node, list):
        for v in node:
            yield from _walk(v)


def test_grafana_provisioning_parses_and_the_dashboard_uses_provisioned_datasources():
    services = _compose()["services"]
    grafana = services["grafana"]
    mounts = _mounts(grafana)
    prov = ROOT / mounts["/etc/grafana/provisioning"]
    datasources = [ds for f in sorted((prov / "datasources").glob("*.yml"))
                   for ds in yaml.safe_load(f.read_text())["datasources"]]
    uids = {ds["uid"]: ds for ds in datasources}
    influx = next(ds for ds in datasources if ds["type"] == "influxdb")
    assert influx["jsonData"]["dbName"] == _service_env(services["influxdb"])["DOCKER_INFLUXDB_INIT_BUCKET"]
    assert influx["url"] == "http://influxdb:8086"
    # Provisioning reads secrets from Grafana's environment: every $VAR used must be set there.
    env = _service_env(grafana)
    for var in re.findall(r"\$([A-Z_][A-Z0-9_]*)", json.dumps(datasources)):
        assert var in env, f"grafana provisioning uses ${var}, not in the grafana service's environment"
    assert env["GF_SECURITY_ADMIN_PASSWORD"].startswith("${GRAFANA_ADMIN_PASSWORD:?")
    pg = next(ds for ds in datasources if ds["type"] == "grafana-postgresql-datasource")
    assert "role=" + pg["user"] in " ".join(services["grafana-db-role"]["command"])

    providers = [p for f in sorted((prov / "dashboards").glob("*.yml"))
                 for p in yaml.safe_load(f.read_text())["providers"]]
    dash_dirs = [mounts[p["options"]["path"]] for p in providers]
    dashboards = [json.loads(f.read_text()) for d in dash_dirs for f in sorted((ROOT / d).glob("*.json"))]
    assert dashboards
    for dash in dashboards:
        used = {n["uid"] for n in _walk(dash) if "uid" in n and n.get("type") and n is not dash}
        used.discard("-- Mixed --")
        assert used and used <= set(uids), f"{dash['title']}: unknown datasource uid {used - set(uids)}"
        text = json.dumps(dash)
        # The panels query what ingest writes: measurement = kind, field = metric, tag station_id.
        for needle in ('FROM \\"reservoir\\"', '\\"water_level_m\\"', '\\"rain_mm\\"', 'FROM \\"village_water\\"',
                       "smartwater_ingest_messages_total", "flood_limit_level_m"):
            assert needle in text, needle
    home = grafana["environment"]["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"]
    assert home.startswith(providers[0]["options"]["path"] + "/")


def test_grafana_db_role_reads_dashboard_tables_but_not_users(postgres, tmp_path: Path):
    """deploy/postgres/grafana-reader.sql on a real PostgreSQL, against a registry made by the code."""
    from core.registry import open_registry

    psql = shutil.which("psql")
    if not psql:
        pytest.skip("psql not installed")
    url = postgres.create_database()
    role = f"grafana_reader_{uuid.uuid4().hex[:8]}"
    PW = "s3cret'x"  # noqa: N806 - a quote, to show the script quotes it
    import psycopg

    try:
        registry = open_registry(url)
        registry.create_schema()
        registry.close()
        for _ in range(2):  # idempotent: compose runs it on every `up`
            run = subprocess.run([psql, url, "-q", "-v", "ON_ERROR_STOP=1", "-v", f"role={role}", "-v", f"pw={PW}",
                                  "-f", str(ROOT / "deploy/postgres/grafana-reader.sql")],
                                 capture_output=True, text=True, timeout=60)
            assert run.returncode == 0, run.stderr
        parts = urlsplit(url)
        as_reader = parts._replace(netloc=f"{role}:{quote(PW)}@{parts.hostname}:{parts.port or 5432}")
        with psycopg.connect(as_reader.geturl(), connect_timeout=5) as conn:
            conn.execute("SELECT count(*) FROM stations").fetchone()
            conn.execute("SELECT count(*) FROM alerts").fetchone()
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                conn.execute("SELECT * FROM users")
    finally:
        postgres.drop_database(url)
        with psycopg.connect(postgres.admin_url, autocommit=True, connect_timeout=5) as admin:
            admin.execute(f'DROP ROLE IF EXISTS "{role}"')


def test_compose_file_validates_with_docker_compose(tmp_path: Path):
    docker = shutil.which("docker")
    if not docker or subprocess.run([docker, "compose", "version"], capture_output=True).returncode != 0:
        pytest.skip("the docker compose plugin is not installed")
    env_file = tmp_path / "env"
    env_file.write_text((ROOT / ".env.example").read_text())
    run = subprocess.run([docker, "compose", "--env-file", str(env_file), "-f", str(ROOT / "docker-compose.yml"),
                          "config", "-q"], capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stderr
