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
    assert by_kind["groundwater"] == 30 and by_kind["intake"] >= 60
    assert "water resources loaded: 60 intake users" in first.stdout
    water = _supply_counts(tmp_path)
    assert water["intake_users"] == 60 and water["groundwater_wells"] == 30 and water["village_supplies"] == 1033
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


def _supply_counts(data_dir: Path) -> dict[str, int]:
    from core.registry import open_registry
    from core.settings import Settings
    from core.supply.repo import SupplyRepo

    registry = open_registry(Settings(_env_file=None, data_dir=data_dir).db_url)
    try:
        return SupplyRepo(registry.engine).counts()
    finally:
        registry.close()


def _write_supply_files(tmp_path: Path) -> dict[str, Path]:
    from core.importers import (INTAKE_USER_FIELDS, METER_FIELDS, SOURCE_FIELDS, SUPPLY_FIELDS, WELL_FIELDS,
                                write_stations_csv, write_supply_csv)
    from simulators import generate_district
    from simulators.water_supply import generate_water_supply

    district = generate_district()
    w = generate_water_supply(district)
    files = {name: tmp_path / f"{name}.csv" for name in ("stations", "users", "meters", "wells", "sources",
                                                         "supplies")}
    write_stations_csv(district + w.stations, files["stations"])
    write_supply_csv(w.intake_users, INTAKE_USER_FIELDS, files["users"])
    write_supply_csv(w.meters, METER_FIELDS, files["meters"])
    write_supply_csv(w.wells, WELL_FIELDS, files["wells"])
    write_supply_csv(w.sources, SOURCE_FIELDS, files["sources"])
    write_supply_csv(w.supplies, SUPPLY_FIELDS, files["supplies"])
    return files


def _supply_args(files: dict[str, Path]) -> list[str]:
    return ["--intake-users", str(files["users"]), "--meters", str(files["meters"]), "--wells", str(files["wells"]),
            "--sources", str(files["sources"]), "--supplies", str(files["supplies"])]


def test_init_loads_the_bureaus_water_resources_with_its_stations(tmp_path):
    files = _write_supply_files(tmp_path)
    res = run(["init", "--stations", str(files["stations"]), *_supply_args(files)], tmp_path)
    assert res.returncode == 0, res.stderr
    counts = _supply_counts(tmp_path)
    assert counts["intake_users"] == 60 and counts["groundwater_wells"] == 30 and counts["village_supplies"] == 1033
    assert counts["intake_meters"] > 60 and counts["water_sources"] > 8
    assert "water resources loaded: 60 intake users" in res.stdout


def test_init_lists_the_bad_rows_of_every_water_file_and_loads_nothing(tmp_path):
    files = _write_supply_files(tmp_path)
    users = files["users"].read_text(encoding="utf-8").splitlines()
    users[3] = users[3].replace(",surface,", ",lake,").replace(",ground,", ",lake,")  # row 4
    files["users"].write_text("\n".join(users) + "\n", encoding="utf-8")
    supplies = files["supplies"].read_text(encoding="utf-8").splitlines()
    supplies[1] = supplies[1].replace("VW0001", "VW9999")  # row 2: no such village
    supplies[5] = supplies[5].split(",", 1)[0] + ",tanker" + "," + supplies[5].split(",", 2)[2]  # row 6: type
    files["supplies"].write_text("\n".join(supplies) + "\n", encoding="utf-8")
    res = run(["init", "--stations", str(files["stations"]), *_supply_args(files)], tmp_path)
    assert res.returncode == 2 and "Traceback" not in res.stderr
    assert "3 problem(s), nothing loaded" in res.stderr, res.stderr
    assert "users.csv: row 4 (intake user 'QS0003'): source" in res.stderr
    assert "supplies.csv: row 2 (village supply 'VW9999'): no village water-supply station" in res.stderr
    assert "supplies.csv: row 6 (village supply 'VW0005'): supply_type" in res.stderr
    assert set(_supply_counts(tmp_path).values()) == {0}
    assert json.loads(run(["stations", "--json"], tmp_path).stdout) == []
    # meters need their users and intake stations: alone on an empty registry, every row says what is missing
    alone = run(["init", "--meters", str(files["meters"])], tmp_path)
    assert alone.returncode == 2 and "row 2 (meter 'MIN0001'): no intake user 'QS0001'" in alone.stderr
    assert "row 2 (meter 'MIN0001'): no intake station 'IN0001'" in alone.stderr
    mixed = run(["init", "--demo-data", "--wells", str(files["wells"])], tmp_path)
    assert mixed.returncode == 2 and "does not mix" in mixed.stderr
