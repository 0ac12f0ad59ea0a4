"""Water resources and village supplies: the import files, the registry round trip, the demo district's data and
the limits each supply is held to."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from core.importers import (INTAKE_USER_FIELDS, METER_FIELDS, SOURCE_FIELDS, SUPPLY_FIELDS, WELL_FIELDS, InvalidFile,
                            load_intake_users_csv, load_meters_csv, load_sources_csv, load_supplies_csv,
                            load_wells_csv, write_supply_csv)
from core.supply.limits import supply_limits
from core.supply.models import IntakeMeter, IntakeUser, VillageSupply, WaterSource, is_small_supply, service_head_m
from core.supply.repo import SupplyRepo
from simulators import generate_district
from simulators.water_supply import generate_water_supply

UTC = timezone.utc


@pytest.fixture(scope="module")
def demo():
    district = generate_district()
    return district, generate_water_supply(district)


def _ids(stations, kind):
    return {s.id for s in stations if s.kind.value == kind}


# -- the import files --------------------------------------------------------------------------------------------
@pytest.mark.unit
def test_every_file_reads_back_what_was_written(tmp_path, demo):
    district, w = demo
    stations = district + w.stations
    files = {name: tmp_path / f"{name}.csv" for name in ("users", "meters", "wells", "sources", "supplies")}
    write_supply_csv(w.intake_users, INTAKE_USER_FIELDS, files["users"])
    write_supply_csv(w.meters, METER_FIELDS, files["meters"])
    write_supply_csv(w.wells, WELL_FIELDS, files["wells"])
    write_supply_csv(w.sources, SOURCE_FIELDS, files["sources"])
    write_supply_csv(w.supplies, SUPPLY_FIELDS, files["supplies"])
    assert load_intake_users_csv(files["users"]) == w.intake_users
    assert load_meters_csv(files["meters"], {u.id for u in w.intake_users}, _ids(stations, "intake")) == w.meters
    assert load_wells_csv(files["wells"], _ids(stations, "groundwater")) == w.wells
    assert load_sources_csv(files["sources"], _ids(stations, "reservoir"), _ids(stations, "village_water")) == w.sources
    assert load_supplies_csv(files["supplies"], _ids(stations, "village_water")) == w.supplies


@pytest.mark.unit
def test_supplies_take_the_service_head_from_the_storeys(tmp_path):
    path = tmp_path / "supplies.csv"
    path.write_text("station_id,supply_type,population,design_m3_per_day,disinfectant,storeys\n"
                    "VW0001,small_centralised,800,80,free_chlorine,3\n", encoding="utf-8")
    (supply,) = load_supplies_csv(path)
    assert supply.service_head_m == 16.0 and supply.plant_id is None


@pytest.mark.unit
def test_every_bad_supply_row_is_listed_with_its_row_number(tmp_path):
    path = tmp_path / "supplies.csv"
    path.write_text(
        "station_id,supply_type,population,design_m3_per_day,plant_id,disinfectant,service_head_m,storeys\n"
        "VW0001,small_centralised,800,80,,free_chlorine,10,\n"        # row 2: good
        "VW0002,small_centralised,800,80,,ozone,10,\n"                # row 3: unknown disinfectant
        "VW0003,centralised,5000,500,,chloramine,12,\n"               # row 4: centralised without a plant
        "VW0004,small_centralised,800,80,,free_chlorine,,\n"          # row 5: no head, no storeys
        "VW0005,small_centralised,12000,1500,,free_chlorine,10,\n"    # row 6: too big to be small
        "VW0001,dispersed,50,5,,none,10,\n"                           # row 7: duplicate
        "VW0404,dispersed,50,5,,none,10,\n",                          # row 8: no such village
        encoding="utf-8")
    with pytest.raises(InvalidFile) as err:
        load_supplies_csv(path, {"VW0001", "VW0002", "VW0003", "VW0004", "VW0005"})
    problems = err.value.problems
    assert len(problems) == 6, problems
    assert "row 3 (village supply 'VW0002'): disinfectant" in problems[0]
    assert "row 4 (village supply 'VW0003')" in problems[1] and "plant_id" in problems[1]
    assert "row 5 (village supply 'VW0004'): service_head_m or storeys is required" in problems[2]
    assert "row 6 (village supply 'VW0005')" in problems[3] and "GB 5749-2022" in problems[3]
    assert "row 7: duplicate village supply 'VW0001' (first in row 2)" in problems[4]
    assert "row 8 (village supply 'VW0404'): no village water-supply station 'VW0404'" in problems[5]


@pytest.mark.unit
def test_every_bad_meter_row_is_listed_and_overlapping_meters_are_refused(tmp_path):
    path = tmp_path / "meters.csv"
    path.write_text(
        "id,user_id,station_id,installed_at,removed_at,rollover_m3\n"
        "M1,QS0001,IN0001,2020-01-01T00:00:00+08:00,,1000000\n"                      # row 2: good
        "M2,QS0009,IN0001,2020-01-01T00:00:00+08:00,,1000000\n"                      # row 3: unknown user
        "M3,QS0001,IN0002,2020-01-01T00:00:00,,1000000\n"                            # row 4: no offset
        "M4,QS0001,IN0002,2021-01-01T00:00:00+08:00,2020-01-01T00:00:00+08:00,1e6\n"  # row 5: removed first
        "M5,QS0001,IN0002,2020-01-01T00:00:00+08:00,,12345\n",                        # row 6: not a power of ten
        encoding="utf-8")
    with pytest.raises(InvalidFile) as err:
        load_meters_csv(path, {"QS0001"}, {"IN0001", "IN0002"})
    problems = err.value.problems
    assert len(problems) == 4, problems
    assert "row 3 (meter 'M2'): no intake user 'QS0009'" in problems[0]
    assert "row 4 (meter 'M3'): installed_at" in problems[1]
    assert "row 5 (meter 'M4')" in problems[2] and "removed_at must be after installed_at" in problems[2]
    assert "row 6 (meter 'M5'): rollover_m3" in problems[3]

    path.write_text("id,user_id,station_id,installed_at,removed_at,rollover_m3\n"
                    "M1,QS0001,IN0001,2020-01-01T00:00:00+08:00,2022-06-01T00:00:00+08:00,1000000\n"
                    "M2,QS0001,IN0001,2022-05-01T00:00:00+08:00,,10000000\n", encoding="utf-8")
    with pytest.raises(InvalidFile, match="meters 'M1' and 'M2' both read station 'IN0001'"):
        load_meters_csv(path)


@pytest.mark.unit
def test_bad_users_wells_and_sources_are_listed_with_their_rows(tmp_path):
    users = tmp_path / "users.csv"
    users.write_text("id,name,town,source,licence_no,permitted_m3_per_year\n"
                     "QS1,甲水厂,通济街道,lake,L1,1000\n"
                     "QS2,乙公司,通济街道,ground,L2,-5\n", encoding="utf-8")
    with pytest.raises(InvalidFile) as err:
        load_intake_users_csv(users)
    assert ["row 2 (intake user 'QS1'): source" in err.value.problems[0],
            "row 3 (intake user 'QS2'): permitted_m3_per_year" in err.value.problems[1]] == [True, True]

    wells = tmp_path / "wells.csv"
    wells.write_text("station_id,town,ground_elevation_m,aquifer,well_depth_m\n"
                     "GW1,蓝村街道,12.5,孔隙潜水,40\n"
                     "RS0001,蓝村街道,12.5,孔隙潜水,0\n", encoding="utf-8")
    with pytest.raises(InvalidFile) as err:
        load_wells_csv(wells, {"GW1"})
    assert len(err.value.problems) == 1 and "row 3 (well 'RS0001'): well_depth_m" in err.value.problems[0]

    sources = tmp_path / "sources.csv"
    sources.write_text("id,name,kind,reservoir_station_id,village_station_ids,plant_ids\n"
                       "SY1,甲水源地,reservoir,,VW0001,\n"
                       "SY2,乙水源地,well_field,,VW0001;VW0404,\n"
                       "SY3,丙水源地,reservoir,RS0404,,PL01\n", encoding="utf-8")
    with pytest.raises(InvalidFile) as err:
        load_sources_csv(sources, {"RS0001"}, {"VW0001"})
    problems = err.value.problems
    assert len(problems) == 3, problems
    assert "row 2 (water source 'SY1')" in problems[0] and "reservoir_station_id" in problems[0]
    assert "row 3 (water source 'SY2'): no village water-supply station 'VW0404'" in problems[1]
    assert "row 4 (water source 'SY3'): no reservoir station 'RS0404'" in problems[2]


# -- the registry ----------------------------------------------------------------------------------------------------
def test_the_repository_round_trips_and_upserts(db_registry, demo):
    _, w = demo
    repo = SupplyRepo(db_registry.engine)
    assert set(repo.counts().values()) == {0}
    assert repo.upsert_intake_users(w.intake_users) == 60
    repo.upsert_meters(w.meters)
    repo.upsert_wells(w.wells)
    repo.upsert_sources(w.sources)
    repo.upsert_supplies(w.supplies)
    assert repo.list_intake_users() == sorted(w.intake_users, key=lambda u: u.id)
    assert repo.list_meters() == sorted(w.meters, key=lambda m: (m.station_id, m.installed_at))
    assert repo.list_wells() == w.wells and repo.list_sources() == w.sources
    assert repo.list_supplies() == w.supplies
    assert repo.counts() == {"intake_users": 60, "intake_meters": len(w.meters), "groundwater_wells": 30,
                             "water_sources": len(w.sources), "village_supplies": 1033}
    replaced = next(m for m in w.meters if m.removed_at is not None)
    assert repo.list_meters(station_id=replaced.station_id)[0].removed_at == replaced.removed_at

    # an upsert by id changes the row in place
    user = w.intake_users[0].model_copy(update={"permitted_m3_per_year": 123456.0})
    supply = VillageSupply(station_id=w.supplies[0].station_id, supply_type="dispersed", population=80,
                           design_m3_per_day=8.0, disinfectant="none", service_head_m=10.0)
    repo.upsert_intake_users([user])
    repo.upsert_supplies([supply])
    in_town = repo.list_intake_users(town=user.town)
    assert user in in_town and {u.town for u in in_town} == {user.town}
    assert next(u for u in repo.list_intake_users() if u.id == user.id).permitted_m3_per_year == 123456.0
    assert repo.get_supply(supply.station_id) == supply and repo.get_supply("VW9999") is None
    assert repo.counts()["village_supplies"] == 1033


def test_times_keep_their_instant_through_the_registry(db_registry):
    repo = SupplyRepo(db_registry.engine)
    repo.upsert_intake_users([IntakeUser(id="QS1", name="甲", town="通济街道", source="ground", licence_no="L",
                                         permitted_m3_per_year=1e4)])
    local = timezone(timedelta(hours=8))
    meter = IntakeMeter(id="M1", user_id="QS1", station_id="IN1", installed_at=datetime(2024, 3, 1, 0, 0, tzinfo=local),
                        removed_at=datetime(2025, 1, 1, 7, 59, tzinfo=local), rollover_m3=1e7)
    repo.upsert_meters([meter])
    (back,) = repo.list_meters(user_id="QS1")
    assert back == meter and back.installed_at == datetime(2024, 2, 29, 16, 0, tzinfo=UTC)
    assert back.active_at(datetime(2024, 12, 31, 23, 58, tzinfo=UTC))
    assert not back.active_at(datetime(2024, 12, 31, 23, 59, tzinfo=UTC))


# -- the demo district -----------------------------------------------------------------------------------------------
@pytest.mark.unit
def test_the_demo_water_resources_are_plausible_and_fixed_by_the_seed(demo):
    district, w = demo
    assert generate_water_supply(district) == w
    assert generate_water_supply(district, seed=1) != w
    kinds = [s.kind.value for s in w.stations]
    assert kinds.count("groundwater") == len(w.wells) == 30
    assert len(w.intake_users) == 60
    assert not {s.id for s in w.stations} & {s.id for s in district}

    # every user has one or two intake points, each with one current meter at its own intake station
    intake = {s.id for s in w.stations if s.kind.value == "intake"}
    points = {}
    for m in w.meters:
        assert m.station_id in intake and m.rollover_m3 in (1e6, 1e7)
        points.setdefault(m.user_id, set()).add(m.station_id)
    assert set(points) == {u.id for u in w.intake_users}
    assert all(1 <= len(p) <= 2 for p in points.values())
    assert sum(m.removed_at is None for m in w.meters) == len(intake)
    assert any(m.removed_at is not None for m in w.meters)

    # every village has a supply; most are small centralised, sized at 80-120 L a person a day
    villages = {s.id for s in district if s.kind.value == "village_water"}
    assert {s.station_id for s in w.supplies} == villages
    types = [s.supply_type for s in w.supplies]
    assert types.count("small_centralised") > len(types) / 2
    assert {"centralised", "dispersed"} <= set(types)
    for s in w.supplies:
        assert 200 <= s.population <= 3000
        assert 0.08 * s.population - 0.05 <= s.design_m3_per_day <= 0.12 * s.population + 0.05
        assert s.service_head_m in (10.0, 12.0, 16.0)
        assert is_small_supply(s.design_m3_per_day, s.population)
    assert {s.disinfectant for s in w.supplies} == {"free_chlorine", "chloramine", "chlorine_dioxide", "none"}

    # sources: reservoirs of the district, and every village or plant served exists
    reservoirs = {s.id for s in district if s.kind.value == "reservoir"}
    plants = {s.plant_id for s in w.supplies if s.plant_id}
    assert {s.kind for s in w.sources} == {"reservoir", "well_field", "river"}
    assert all(s.reservoir_station_id in reservoirs for s in w.sources if s.kind == "reservoir")
    served = [v for s in w.sources for v in s.village_station_ids]
    assert len(served) == len(set(served)) and set(served) <= villages
    assert {p for s in w.sources for p in s.plant_ids} == plants


# -- the limits of each supply ---------------------------------------------------------------------------------------
@pytest.mark.unit
@pytest.mark.parametrize("supply_type, disinfectant, storeys, turbidity, chlorine, pressure", [
    ("centralised", "free_chlorine", 1, 1.0, (0.05, 2.0), 0.098),
    ("small_centralised", "chloramine", 2, 3.0, (0.05, 3.0), 0.1176),
    ("dispersed", "chlorine_dioxide", 3, 3.0, (0.02, 0.8), 0.1568),
    ("dispersed", "none", 4, 3.0, (None, None), 0.196),
])
def test_each_supply_gets_the_limits_of_its_type_disinfectant_and_buildings(supply_type, disinfectant, storeys,
                                                                         turbidity, chlorine, pressure):
    supply = VillageSupply(station_id="VW0001", supply_type=supply_type, population=900, design_m3_per_day=90.0,
                           plant_id="PL01", disinfectant=disinfectant, service_head_m=service_head_m(storeys))
    limits = supply_limits(supply)
    assert limits.turbidity_max_ntu == turbidity
    assert (limits.disinfectant_min_mgl, limits.disinfectant_max_mgl) == chlorine
    assert limits.min_pressure_mpa == pytest.approx(pressure)


@pytest.mark.unit
def test_service_heads_and_size_class_follow_the_standards():
    assert [service_head_m(n) for n in (1, 2, 3, 6)] == [10.0, 12.0, 16.0, 28.0]
    with pytest.raises(ValueError):
        service_head_m(0)
    assert is_small_supply(999.9, 20_000) and is_small_supply(5000, 9_999)
    assert not is_small_supply(1000, 10_000)
    with pytest.raises(ValueError, match="reservoir station"):
        WaterSource(id="SY1", name="甲", kind="reservoir")
