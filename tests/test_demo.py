"""`smartwater demo` as an operator runs it: embedded broker, SQLite, storm scenario, API while it runs."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import httpx

from core.broker import free_port
from core.mqtt import wait_for
from support.servers import line_queue

SMARTWATER = str(Path(sys.executable).with_name("smartwater"))


def _get(url: str, headers: dict | None = None):
    try:
        r = httpx.get(url, timeout=5, headers=headers)
        return r.json() if r.status_code == 200 else None
    except httpx.HTTPError:
        return None


def test_demo_serves_data_while_running_and_prints_a_summary(tmp_path):
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("SMARTWATER_")}
    env["SMARTWATER_DATA_DIR"] = str(tmp_path)
    proc = subprocess.Popen([SMARTWATER, "demo", "--duration", "40", "--speed", "240", "--port", str(port)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    base = f"http://127.0.0.1:{port}"
    stdout, stderr = line_queue(proc.stdout), line_queue(proc.stderr)  # both drained while the demo runs
    try:
        head = [stdout.get(timeout=60), stdout.get(timeout=30)]
        assert all(head), f"the demo stopped early: {head}"
        login = re.fullmatch(r"Staff login: (\S+) / (\S+)\n", head[1])
        assert login, head
        assert wait_for(lambda: (_get(f"{base}/healthz") or {}).get("status") == "ok", 30, 0.2)
        assert httpx.get(f"{base}/api/v1/stations", timeout=5).status_code == 401  # nothing without a login
        resp = httpx.post(f"{base}/api/v1/auth/login", json={"username": login[1], "password": login[2]}, timeout=10)
        assert resp.status_code == 200, resp.text
        assert resp.json()["role"] == "duty"
        auth = {"Authorization": f"Bearer {resp.json()['access_token']}"}
        # reservoirs, gauges, river stations, villages, groundwater wells, intake points (simulators/water_supply.py)
        assert len(_get(f"{base}/api/v1/stations", auth) or []) == 40 + 24 + 30 + 1033 + 30 + 82
        assert wait_for(lambda: bool(_get(f"{base}/api/v1/readings/latest?kind=rain", auth)), 20, 0.2)
        assert wait_for(lambda: bool(_get(f"{base}/api/v1/alerts", auth)), 35, 0.5)
        alert = _get(f"{base}/api/v1/alerts", auth)[0]
        ack = httpx.post(f"{base}/api/v1/alerts/{alert['id']}/ack", headers=auth, timeout=5)
        assert ack.status_code == 200, ack.text
        assert ack.json()["acknowledged_by"] == login[1] and ack.json()["acknowledged_at"] is not None
        proc.wait(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    rest, err_lines = [], []
    while (line := stdout.get(timeout=10)) is not None:
        rest.append(line)
    while (line := stderr.get(timeout=10)) is not None:
        err_lines.append(line)
    err = "".join(err_lines)
    assert proc.returncode == 0, err[-3000:]
    lines = [*head, *rest]
    assert f"http://127.0.0.1:{port}" in lines[0]
    summary = json.loads(lines[-1])
    assert set(summary) == {"readings", "dead_letters", "alerts", "field_reports_confirmed"}
    assert summary["field_reports_confirmed"] > 0  # the simulated RTUs and analysers went through the gateway
    assert all(summary["readings"][k] > 0 for k in ("reservoir", "rain", "river", "village_water")), summary
    assert summary["dead_letters"] == 0
    assert summary["alerts"]["orange"] + summary["alerts"]["red"] >= 1, summary
    assert "Traceback" not in err
