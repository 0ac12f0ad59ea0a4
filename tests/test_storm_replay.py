"""A past storm replayed through a real Mosquitto: the signals come out at the data times the
thresholds say (computed here from docs/domain.md, not from the engine), also across a restart."""

from __future__ import annotations

import csv
import os
import subprocess
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from alerts import AlertService
from core.mqtt import wait_for
from core.timeutil import utcnow
from ingest import Ingestor
from simulators.replay import read_replay_csv, replay
from tests.expectations import cma_rainstorm_signal

SMARTWATER = str(Path(sys.executable).with_name("smartwater"))
STEP = timedelta(minutes=5)
# 5-minute rain increments (mm): dry; 4.5 h of steady rain (12 mm/h: ≥ 50 mm in 6 h, < 50 in 3 h);
# 2 h of downpour (60 mm/h); dry again
RAIN = [0.0] * 6 + [1.0] * 54 + [5.0] * 24 + [0.0] * 12


def storm(t0: datetime) -> list[tuple[datetime, str, str, float]]:
    rows = []
    for i, mm in enumerate(RAIN):
        t = t0 + i * STEP
        rows.append((t, "RG9001", "rain_mm", mm))
        if i % 2 == 0:  # levels every 10 minutes, rising with the rain so far
            so_far = sum(RAIN[:i + 1])
            rows.append((t, "RV9001", "water_level_m", round(8.0 + so_far / 40, 3)))
            rows.append((t, "RS9001", "water_level_m", round(48.0 + so_far / 60, 3)))
    return rows


def expected_rainstorm(t0: datetime) -> list[tuple[str, datetime]]:
    """(severity, data time) of each step up, from the CMA signal thresholds over rolling sums."""
    def signal(i: int) -> str | None:
        return cma_rainstorm_signal(lambda hours: sum(RAIN[max(0, i - hours * 12 + 1):i + 1]))
    order = ["blue", "yellow", "orange", "red"]
    out, top = [], -1
    for i in range(len(RAIN)):
        s = signal(i)
        if s is not None and order.index(s) > top:
            out.append((s, t0 + i * STEP))
            top = order.index(s)
    return out


def first_above(rows, station: str, threshold: float) -> datetime:
    return next(t for t, sid, _, v in rows if sid == station and v > threshold)


def write_csv(path: Path, rows) -> None:
    with path.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["ts", "station_id", "metric", "value"])
        for t, sid, metric, v in rows:
            w.writerow([t.astimezone().isoformat(), sid, metric, v])  # local offsets: times are still exact


def steps(registry, rule: str, station: str) -> list[tuple[str, datetime]]:
    (alert,) = [a for a in registry.list_alerts() if a.rule == rule and a.station_id == station]
    return [(e["severity"], e["data_time"]) for e in registry.alert_events(alert.id)
            if e["event"] in ("raised", "escalated")]


@pytest.fixture
def pipeline(settings, registry, store, stations):
    ing, alerts = Ingestor(settings, registry, store), AlertService(settings, registry, store)
    for part in (ing, alerts):
        part.start()
        assert part.wait_connected(10)
    yield ing, alerts
    alerts.stop()
    ing.stop()


def test_storm_replay_raises_the_expected_signals_at_the_expected_data_times(settings, registry, store, pipeline,
                                                                            tmp_path):
    t0 = (utcnow() - timedelta(hours=9)).replace(second=0, microsecond=0)
    rows = storm(t0)
    write_csv(tmp_path / "storm.csv", rows)
    env = {k: v for k, v in os.environ.items() if not k.startswith("SMARTWATER_")}
    env.update(SMARTWATER_MQTT_URL=settings.mqtt_url, SMARTWATER_DB_URL=settings.db_url,
               SMARTWATER_MQTT_CLIENT_PREFIX=settings.mqtt_client_prefix + "-cli")
    res = subprocess.run([SMARTWATER, "replay", str(tmp_path / "storm.csv")], env=env, capture_output=True,
                         text=True, timeout=60)
    assert res.returncode == 0, res.stderr
    n_messages = len({(t, sid) for t, sid, _, _ in rows})
    assert f"replayed {n_messages} of {n_messages} messages" in res.stdout

    want_rain = expected_rainstorm(t0)
    assert [s for s, _ in want_rain] == ["yellow", "orange", "red"]  # the storm was built to climb
    assert wait_for(lambda: store.counts_by_kind().get("rain") == len(RAIN), 15)
    assert wait_for(lambda: any(a.severity == "red" and a.rule == "rainstorm" for a in registry.list_alerts()), 10)
    assert steps(registry, "rainstorm", "RG9001") == want_rain
    assert steps(registry, "river_level", "RV9001") == [
        ("orange", first_above(rows, "RV9001", 10.0)), ("red", first_above(rows, "RV9001", 11.5))]
    # The reservoir's ceiling: its flood-limit level (50.0 m) in Shandong's flood season, 1 June – 30 September
    # local, its normal pool (51.0 m) outside it (docs/domain.md, "Flood season"); the storm tops out at 50.9 m.
    local = t0.astimezone(timezone(timedelta(hours=8)))
    ceiling = 50.0 if 6 <= local.month <= 9 else 51.0
    if any(sid == "RS9001" and v > ceiling for _, sid, _, v in rows):
        assert steps(registry, "reservoir_level", "RS9001")[0] == ("yellow", first_above(rows, "RS9001", ceiling))
    else:
        assert not [a for a in registry.list_alerts() if a.rule == "reservoir_level"]


def test_a_restart_mid_storm_still_raises_red_on_time(settings, registry, store, pipeline):
    ing, alerts = pipeline
    t0 = (utcnow() - timedelta(hours=9)).replace(second=0, microsecond=0)
    want = dict(expected_rainstorm(t0))
    rain = [(t, sid, {"rain_mm": v}) for t, sid, _, v in storm(t0) if sid == "RG9001"]
    half = next(i for i, (t, _, _) in enumerate(rain) if t > want["orange"])  # restart between orange and red
    st = {s.id: s for s in registry.list_stations()}
    assert replay(settings, st, rain[:half]) == half
    assert wait_for(lambda: store.counts_by_kind().get("rain") == half and alerts.readings_seen >= half, 15)
    alerts.stop()  # the alert engine goes down mid-storm; ingest keeps storing

    again = AlertService(settings, registry, store)
    again.start()
    try:
        assert again.wait_connected(10)
        assert replay(settings, st, rain[half:]) == len(rain) - half
        assert wait_for(lambda: store.counts_by_kind().get("rain") == len(rain), 15)
        assert wait_for(lambda: any(a.severity == "red" for a in registry.list_alerts()), 10)
        # the 3-hour sum needed the readings from before the restart, refilled from the store
        assert steps(registry, "rainstorm", "RG9001")[-1] == ("red", want["red"])
    finally:
        again.stop()


def test_replay_refuses_a_bad_file_naming_the_line(registry, stations, tmp_path):
    f = tmp_path / "bad.csv"
    f.write_text("ts,station_id,metric,value\n2026-06-28T14:00:00+08:00,RG9001,rain_mm,1\n"
                 "2026-06-28T14:05:00+08:00,RG9001,water_level_m,1\n")
    with pytest.raises(ValueError, match="line 3.*not a rain metric"):
        read_replay_csv(f, {s.id: s for s in registry.list_stations()})
