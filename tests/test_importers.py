"""The importers (core/importers) validate a file whole: every problem, each with its row or feature, at once."""

from __future__ import annotations

import json

import pytest

from core.importers import (InvalidFile, load_chiefs_csv, load_rivers_geojson, load_stations_csv, split_river,
                            villages_of, write_stations_csv)
from core.patrols.models import Level, River
from tests.conftest import TEST_STATIONS, VILLAGE

pytestmark = pytest.mark.unit


def test_every_bad_station_row_is_listed_with_its_row_number(tmp_path):
    path = tmp_path / "stations.csv"
    write_stations_csv(TEST_STATIONS, path)
    lines = path.read_text(encoding="utf-8").splitlines()
    lines[1] = lines[1].replace("36.4", "north", 1)  # row 2: lat
    lines[3] = lines[3].replace("RG9001", "RG 9001")  # row 4: id
    lines.append(lines[2])  # row 6: the river again
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    with pytest.raises(InvalidFile) as err:
        load_stations_csv(path)
    problems = err.value.problems
    assert len(problems) == 3, problems
    assert "row 2 (station 'RS9001'): lat" in problems[0]
    assert "row 4 (station 'RG 9001'): id" in problems[1]
    assert "row 6: duplicate station id 'RV9001' (first in row 3)" in problems[2]
    assert isinstance(err.value, ValueError) and str(err.value).count("\n") == 2


def test_an_unreadable_or_headerless_file_is_one_clear_problem(tmp_path):
    with pytest.raises(InvalidFile, match="cannot read"):
        load_stations_csv(tmp_path / "missing.csv")
    bad = tmp_path / "bad.csv"
    bad.write_text("id,kind,nom\n", encoding="utf-8")
    with pytest.raises(InvalidFile, match=r"row 1 \(header\): missing columns .*unknown columns \['nom'\]"):
        load_stations_csv(bad)
    latin = tmp_path / "latin.csv"
    latin.write_bytes("name,level,town,village,segment_ids\nJos\xe9,town,T,,\n".encode("latin-1"))
    with pytest.raises(InvalidFile, match="UTF-8"):
        load_chiefs_csv(latin)


def test_every_bad_feature_and_chief_is_listed(tmp_path):
    line = [[120.5, 36.4], [120.51, 36.41]]

    def feature(props: dict, gtype: str, coords: list) -> dict:
        return {"type": "Feature", "properties": props, "geometry": {"type": gtype, "coordinates": coords}}

    fc = {"type": "FeatureCollection", "features": [feature({"id": "A", "name": "a"}, "Point", line[0]),
                                                    feature({"id": "B"}, "LineString", line),
                                                    feature({"id": "C", "name": "c"}, "LineString", line)]}
    path = tmp_path / "rivers.geojson"
    path.write_text(json.dumps(fc), encoding="utf-8")
    with pytest.raises(InvalidFile) as err:
        load_rivers_geojson(path)
    assert [p.split(": ", 1)[1] for p in err.value.problems] == [
        "features[0] (id 'A'): geometry 'Point' is not a LineString or MultiLineString",
        "features[1] (id 'B'): no 'name' property"]
    chiefs = tmp_path / "chiefs.csv"
    chiefs.write_text("name,level,town,village,segment_ids\n甲,mayor,通济街道,,\n乙,village,通济街道,,X-001\n"
                      "丙,town,通济街道,,C-001\n", encoding="utf-8")
    with pytest.raises(InvalidFile) as err:
        load_chiefs_csv(chiefs, {"C-001"})
    assert len(err.value.problems) == 2 and "row 2" in err.value.problems[0] and "row 3" in err.value.problems[1]


def test_rivers_are_cut_into_village_and_town_segments_by_the_villages():
    # 6 km due east at 36.4 N; the village stands by the first kilometre
    river = River(id="R1", name="东河", geometry=[[[120.50, 36.40], [120.567, 36.40]]])
    segments = split_river(river, villages_of(TEST_STATIONS))
    assert [(s.id, s.level, s.village) for s in segments] == [
        ("R1-001", Level.village, VILLAGE.village), ("R1-002", Level.town, None)]
    assert all(s.town == VILLAGE.town for s in segments)
    assert segments[0].geometry[-1] == segments[1].geometry[0]  # contiguous


def test_flood_control_high_level_travels_through_csv_and_older_files_still_load(tmp_path):
    from tests.conftest import RESERVOIR

    reservoir = RESERVOIR.model_copy(update={"flood_control_high_level_m": 52.5})
    path = tmp_path / "stations.csv"
    write_stations_csv([reservoir], path)
    assert "flood_control_high_level_m" in path.read_text(encoding="utf-8").splitlines()[0]
    assert load_stations_csv(path)[0].flood_control_high_level_m == 52.5
    # a file written before the column existed: the level is simply not known
    header, row = [line.split(",") for line in path.read_text(encoding="utf-8").splitlines()]
    col = header.index("flood_control_high_level_m")
    older = tmp_path / "older.csv"
    older.write_text("\n".join(",".join(r[:col] + r[col + 1:]) for r in (header, row)) + "\n", encoding="utf-8")
    assert load_stations_csv(older)[0].flood_control_high_level_m is None
