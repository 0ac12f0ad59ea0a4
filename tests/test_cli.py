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
    first = run(["init", "--demo-data"], tmp_path)
    assert first.returncode == 0, first.stderr
    assert "river network loaded: 150 rivers" in first.stdout
    again = run(["init", "--demo-data"], tmp_path)
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


def _network_counts(data_dir: Path) -> dict[str, int]:
    from core.patrols.repo import PatrolRepo
    from core.registry import open_registry
    from core.settings import Settings

    settings = Settings(_env_file=None, data_dir=data_dir)
    registry = open_registry(settings.db_url)
    try:
        return PatrolRepo(registry.engine, settings).counts()
    finally:
        registry.close()


def test_init_with_stations_stores_no_invented_rivers_or_chiefs(tmp_path):
    from core.importers import write_stations_csv
    from simulators import generate_district

    csv = tmp_path / "stations.csv"
    write_stations_csv(generate_district(1)[:5], csv)
    res = run(["init", "--stations", str(csv)], tmp_path)
    assert res.returncode == 0, res.stderr
    assert len(json.loads(run(["stations", "--json"], tmp_path).stdout)) == 5
    counts = _network_counts(tmp_path)
    assert counts["rivers"] == counts["segments"] == counts["chiefs"] == 0
    # --csv, its former name, still works (and still loads nothing else)
    again = run(["init", "--csv", str(csv)], tmp_path)
    assert again.returncode == 0, again.stderr
    assert _network_counts(tmp_path)["chiefs"] == 0
    bare = run(["init"], tmp_path / "bare")
    assert bare.returncode == 0 and "no stations yet" in bare.stdout
    assert _network_counts(tmp_path / "bare")["chiefs"] == 0


def test_init_loads_the_bureaus_rivers_and_chiefs(tmp_path):
    from core.importers import rivers_to_geojson, write_chiefs_csv, write_stations_csv
    from simulators import generate_district
    from simulators.rivers import generate_river_network

    district = generate_district()
    net = generate_river_network(n_rivers=12, n_chiefs=30)
    stations, rivers, chiefs = tmp_path / "stations.csv", tmp_path / "rivers.geojson", tmp_path / "chiefs.csv"
    write_stations_csv(district, stations)
    rivers.write_text(json.dumps(rivers_to_geojson(net.rivers), ensure_ascii=False), encoding="utf-8")
    write_chiefs_csv(net.chiefs, chiefs)
    res = run(["init", "--stations", str(stations), "--rivers", str(rivers), "--chiefs", str(chiefs)], tmp_path)
    assert res.returncode == 0, res.stderr
    # the same villages cut the same rivers into the same segments the chiefs name
    counts = _network_counts(tmp_path)
    assert (counts["rivers"], counts["segments"], counts["chiefs"]) == (12, len(net.segments), 30)


def test_init_reports_every_problem_of_every_file_and_loads_nothing(tmp_path):
    from core.importers import write_stations_csv
    from simulators import generate_district

    stations, chiefs = tmp_path / "stations.csv", tmp_path / "chiefs.csv"
    write_stations_csv(generate_district(1)[:5], stations)
    lines = stations.read_text(encoding="utf-8").splitlines()
    lines[2] = lines[2].replace("RS0002", "RS 2")  # row 3
    lines[4] = lines[4].replace("RS0004", "RS 4")  # row 5
    stations.write_text("\n".join(lines) + "\n", encoding="utf-8")
    chiefs.write_text("name,level,town,village,segment_ids\n王五,mayor,通济街道,,\n", encoding="utf-8")
    res = run(["init", "--stations", str(stations), "--chiefs", str(chiefs)], tmp_path)
    assert res.returncode == 2 and "Traceback" not in res.stderr
    assert "3 problem(s), nothing loaded" in res.stderr
    assert "row 3 (station 'RS 2')" in res.stderr and "row 5 (station 'RS 4')" in res.stderr
    assert "row 2 (chief '王五'): level 'mayor'" in res.stderr
    assert json.loads(run(["stations", "--json"], tmp_path).stdout) == []
    mixed = run(["init", "--demo-data", "--stations", str(stations)], tmp_path)
    assert mixed.returncode == 2 and "does not mix" in mixed.stderr
