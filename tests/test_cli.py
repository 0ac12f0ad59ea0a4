"""The installed `smartwater` command, run as an operator would."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

SMARTWATER = str(Path(sys.executable).with_name("smartwater"))


def run(args, data_dir, **env):
    e = {**os.environ, "SMARTWATER_DATA_DIR": str(data_dir), **env}
    e.pop("SMARTWATER_DB_URL", None), e.pop("SMARTWATER_TSDB_URL", None)
    return subprocess.run([SMARTWATER, *args], capture_output=True, text=True, env=e, timeout=120)


def test_init_is_idempotent_and_stations_lists_the_district(tmp_path):
    first = run(["init"], tmp_path)
    assert first.returncode == 0, first.stderr
    again = run(["init"], tmp_path)
    assert again.returncode == 0, again.stderr
    out = run(["stations", "--json"], tmp_path)
    assert out.returncode == 0, out.stderr
    rows = json.loads(out.stdout)
    by_kind = {}
    for r in rows:
        by_kind[r["kind"]] = by_kind.get(r["kind"], 0) + 1
    assert by_kind["reservoir"] == 40 and by_kind["rain"] == 24 and by_kind["village_water"] == 1033
    assert len({r["town"] for r in rows if r["kind"] == "village_water"}) == 17
    reservoir = next(r for r in rows if r["kind"] == "reservoir")
    for key in ("id", "name", "town", "lat", "lon", "flood_limit_level_m", "design_flood_level_m",
                "check_flood_level_m", "dead_level_m"):
        assert reservoir[key] is not None, key
    rivers = json.loads(run(["stations", "--kind", "river", "--json"], tmp_path).stdout)
    assert rivers and all(r["kind"] == "river" and r["warning_level_m"] < r["guaranteed_level_m"] for r in rivers)


def test_bad_input_gives_a_clear_error_not_a_traceback(tmp_path):
    bad_kind = run(["stations", "--kind", "lake"], tmp_path)
    assert bad_kind.returncode == 2 and "unknown kind 'lake'" in bad_kind.stderr
    bad_url = run(["stations"], tmp_path, SMARTWATER_MQTT_URL="http://nope")
    assert bad_url.returncode == 2 and "SMARTWATER_MQTT_URL" in bad_url.stderr
    assert "Traceback" not in bad_kind.stderr + bad_url.stderr
    empty = run(["simulate", "--duration", "1"], tmp_path)
    assert empty.returncode == 2 and "smartwater init" in empty.stderr


def test_init_from_csv(tmp_path):
    csv = tmp_path / "stations.csv"
    from simulators import generate_district, write_stations_csv

    write_stations_csv(generate_district(1)[:5], csv)
    res = run(["init", "--csv", str(csv)], tmp_path)
    assert res.returncode == 0, res.stderr
    assert len(json.loads(run(["stations", "--json"], tmp_path).stdout)) == 5
