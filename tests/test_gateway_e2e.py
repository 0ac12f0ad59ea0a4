"""End to end through the real command: simulated RTU → `smartwater run gateway` → Mosquitto → ingest → store →
an alert, with the gateway killed (SIGKILL) mid-stream: every report the device was told was received is stored."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import threading
from datetime import timedelta
from zoneinfo import ZoneInfo

import pytest

from alerts import AlertService
from core.broker import free_port
from core.mqtt import wait_for
from core.timeutil import utcnow
from gateway import sl651
from gateway.simulated import Report, SimulatedDevice
from ingest import Ingestor
from support.servers import _wait_port, stop_process

RTU = "0012345678"
SHANGHAI = ZoneInfo("Asia/Shanghai")


def _env(settings, sl651_port: int, hj212_port: int) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SMARTWATER_")}
    env.update(SMARTWATER_DATA_DIR=str(settings.data_dir), SMARTWATER_MQTT_URL=settings.mqtt_url,
               SMARTWATER_DB_URL=settings.db_url, SMARTWATER_TSDB_URL=settings.tsdb_url,
               SMARTWATER_MQTT_CLIENT_PREFIX=settings.mqtt_client_prefix + "g",
               SMARTWATER_GATEWAY_HOST="127.0.0.1", SMARTWATER_GATEWAY_SL651_PORT=str(sl651_port),
               SMARTWATER_GATEWAY_HJ212_PORT=str(hj212_port), SMARTWATER_GATEWAY_METRICS_PORT="0")
    return env


def _cli(env: dict, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "smartwater.cli", *args], env=env, capture_output=True, text=True,
                          timeout=60)


@pytest.fixture
def pipeline(settings, registry, store, stations):
    parts = [Ingestor(settings, registry, store), AlertService(settings, registry, store)]
    for p in parts:
        p.start()
    assert parts[0].wait_connected(10) and parts[1].wait_connected(10)
    yield
    for p in reversed(parts):
        p.stop()


def _gateway(env: dict, port: int) -> subprocess.Popen:
    proc = subprocess.Popen([sys.executable, "-m", "smartwater.cli", "run", "gateway"], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    _wait_port("127.0.0.1", port, 30, proc)
    return proc


def test_kill_9_mid_stream_loses_nothing_confirmed(settings, registry, store, pipeline):
    sl_port, hj_port = free_port(), free_port()
    env = _env(settings, sl_port, hj_port)
    added = _cli(env, "devices", "add", "--protocol", "sl651", "--address", RTU, "--password", "1234",
                 "--station", "RG9001", "--station", "RV9001")
    assert added.returncode == 0, added.stderr
    listed = _cli(env, "devices", "list", "--json")
    assert '"address": "0012345678"' in listed.stdout and '"RV9001"' in listed.stdout

    # 60 one-minute reports ending a minute ago; the river rises through its warning (10.0 m) and guaranteed
    # (11.5 m) levels in the last ones: a red alert at the end.
    now_local = utcnow().astimezone(SHANGHAI).replace(tzinfo=None, second=0, microsecond=0)
    first = now_local - timedelta(minutes=61)
    reports = []
    for i in range(60):
        t = first + timedelta(minutes=i)
        level = round(8.0 + (4.0 if i >= 55 else i * 0.01), 3)
        frame = sl651.encode(RTU, 0x32, i, t, password="1234", station_type=0x48,
                             groups=[(t, [(0x39, level, 4, 3), (0x20, 0.5, 3, 1), (0x38, 12.3, 2, 2)])])
        reports.append(Report([frame], t.isoformat(), {"39": level}))
    device = SimulatedDevice("sl651", "127.0.0.1", sl_port, reports, reply_timeout_s=2.0, retry_delay_s=0.1,
                             pace_s=0.03)

    gw = _gateway(env, sl_port)
    runner = threading.Thread(target=lambda: asyncio.run(asyncio.wait_for(device.run(), 120)), daemon=True)
    try:
        runner.start()
        assert wait_for(lambda: len(device.confirmed) >= 15, 30)
        gw.send_signal(signal.SIGKILL)  # no goodbye: whatever it held unconfirmed is the device's to resend
        gw.wait(10)
        confirmed_before = len(device.confirmed)
        assert confirmed_before < len(reports)
        gw = _gateway(env, sl_port)
        runner.join(120)
        assert len(device.confirmed) == len(reports) and device.reconnects >= 1
    finally:
        stop_process(gw, 10)

    start, end = first.replace(tzinfo=SHANGHAI) - timedelta(minutes=1), utcnow()
    want = {r.key: r.values["39"] for r in device.confirmed}
    assert wait_for(lambda: len(store.query("RV9001", "water_level_m", start, end)) == len(want), 20)
    got = {r.ts.astimezone(SHANGHAI).replace(tzinfo=None).isoformat(): r.value
           for r in store.query("RV9001", "water_level_m", start, end)}
    assert got == want
    assert len(store.query("RG9001", "rain_mm", start, end)) == len(want)

    def red():
        return [a for a in registry.list_alerts(station_id="RV9001") if a.rule == "river_level"]
    assert wait_for(lambda: red() and red()[0].severity == "red", 20)

    listed = _cli(env, "devices", "list", "--json")
    assert '"last_seen_at": null' not in listed.stdout
