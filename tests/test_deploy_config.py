"""docker-compose.yml and deploy/ must stay true to the settings the code reads."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

from core.settings import Settings

ROOT = Path(__file__).resolve().parents[1]
SETTINGS_ENV = {f"SMARTWATER_{name.upper()}" for name in Settings.model_fields}


def _compose() -> dict:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


def _service_env(svc: dict) -> dict[str, str]:
    return {k: str(v) for k, v in (svc.get("environment") or {}).items()}


def _fill(value: str) -> str:
    """Compose interpolation: ${VAR:-default} → default, ${VAR:?error} → a dummy secret."""
    value = re.sub(r"\$\{[A-Z0-9_]+:-([^}]*)\}", r"\1", value)
    return re.sub(r"\$\{[^}]+\}", "x" * 40, value)  # long enough for any secret


def test_every_smartwater_variable_in_compose_is_a_setting():
    for name, svc in _compose()["services"].items():
        for var in _service_env(svc):
            if var.startswith("SMARTWATER_"):
                assert var in SETTINGS_ENV, f"{name}: {var} is not read by core.settings.Settings"


def test_services_wire_the_stores_and_broker_they_need():
    services = _compose()["services"]
    stages = {n: s for n, s in services.items() if s.get("command") and s["command"][0] in ("run", "simulate", "init")}
    assert {"init", "ingest-1", "ingest-2", "alerts", "api", "simulator"} <= set(stages)
    for name, svc in stages.items():
        env = _service_env(svc)
        for var in ("SMARTWATER_TSDB_URL", "SMARTWATER_DB_URL"):
            assert var in env, f"{name} lacks {var}"
        if svc["command"][0] != "init":
            assert env.get("SMARTWATER_MQTT_URL", "").endswith("@mosquitto:1883"), name
        # The URLs must be ones the code accepts (placeholders filled with dummy secrets).
        filled = {k: _fill(v) for k, v in env.items() if k.startswith("SMARTWATER_")}
        Settings(**{k.removeprefix("SMARTWATER_").lower(): v for k, v in filled.items()}, _env_file=None)
    ingest_envs = [_service_env(services[n]) for n in ("ingest-1", "ingest-2")]
    assert {e["SMARTWATER_INGEST_WORKER_ID"] for e in ingest_envs} == {"1", "2"}
    assert {e["SMARTWATER_INGEST_SHARED_GROUP"] for e in ingest_envs} == {"ingest"}
    assert services["api"]["ports"] == ["8000:8000"] and _service_env(services["api"])["SMARTWATER_API_PORT"] == "8000"


def test_mosquitto_config_has_no_anonymous_access_and_raised_limits():
    conf = (ROOT / "deploy/mosquitto/mosquitto.conf").read_text()
    assert "allow_anonymous false" in conf
    assert re.search(r"^max_queued_messages (\d+)", conf, re.M).group(1) != "1000"
    assert "autosave_interval 10" in conf
    acl = (ROOT / "deploy/mosquitto/acl").read_text()
    assert "pattern write water/+/%u" in acl
