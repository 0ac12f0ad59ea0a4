"""`smartwater demo` as an operator runs it: embedded broker, SQLite, storm scenario, API while it runs."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import httpx

from core.broker import free_port
from core.mqtt import wait_for

SMARTWATER = str(Path(sys.executable).with_name("smartwater"))


def _get(url: str):
    try:
        r = httpx.get(url, timeout=5)
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
    try:
        assert wait_for(lambda: (_get(f"{base}/healthz") or {}).get("status") == "ok", 30, 0.2)
        assert len(_get(f"{base}/api/v1/stations") or []) == 40 + 24 + 30 + 1033
        assert wait_for(lambda: bool(_get(f"{base}/api/v1/readings/latest?kind=rain")), 20, 0.2)
        assert wait_for(lambda: bool(_get(f"{base}/api/v1/alerts")), 35, 0.5)
        out, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0, err[-3000:]
    lines = out.strip().splitlines()
    assert f"http://127.0.0.1:{port}" in lines[0]
    summary = json.loads(lines[-1])
    assert set(summary) == {"readings", "dead_letters", "alerts"}
    assert all(summary["readings"][k] > 0 for k in ("reservoir", "rain", "river", "village_water")), summary
    assert summary["dead_letters"] == 0
    assert summary["alerts"]["orange"] + summary["alerts"]["red"] >= 1, summary
    assert "Traceback" not in err
