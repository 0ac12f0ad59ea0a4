"""The demo district's water resources and village supplies: licensed intake users with their meters and
``intake`` stations, groundwater monitoring wells with their ``groundwater`` stations, water sources, and every
village's supply (type, population, design volume, disinfectant, service head).

Invented but plausible, and the same for the same seed: most villages have a small centralised supply of 200 to
3,000 people at 80-120 L a person a day; villages near the medium reservoirs are on a town plant's centralised
system; a few have dispersed supplies (own wells). Demo data, loaded only with ``--demo-data``.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone

from core.domain import Kind, Station
from core.supply.models import (GroundwaterWell, IntakeMeter, IntakeUser, VillageSupply, WaterSource,
                                service_head_m)
from simulators.district import DEFAULT_SEED, TOWNS, _place, _short

N_INTAKE_USERS = 60
N_WELLS = 30
N_RESERVOIR_SOURCES = 8  # the medium reservoirs and the largest small ones supply villages

# The plain in the west draws groundwater; wells and groundwater intakes sit there more often.
_PLAIN_TOWNS = {"蓝村街道", "移风店镇", "段泊岚镇", "大信街道", "龙泉街道", "刘家庄镇"}
_AQUIFERS_PLAIN = ("第四系松散岩类孔隙潜水", "第四系孔隙承压水")
_AQUIFERS_HILL = ("基岩裂隙水", "碎屑岩类裂隙孔隙水")
_USER_KINDS = (("水厂", "surface", (3e5, 5e6)), ("食品有限公司", "ground", (2e4, 3e5)),
               ("纺织印染有限公司", "ground", (5e4, 6e5)), ("酿造有限公司", "ground", (3e4, 4e5)),
               ("灌区管理站", "surface", (2e5, 3e6)), ("热电有限公司", "surface", (1e5, 2e6)),
               ("养殖专业合作社", "ground", (5e3, 8e4)), ("建材有限公司", "ground", (1e4, 1.5e5)))
_EPOCH = datetime(2018, 1, 1, tzinfo=timezone.utc)


@dataclass
class WaterSupplyDistrict:
    """Everything generated: the new stations (intake, groundwater) and the registry records."""

    stations: list[Station] = field(default_factory=list)
    intake_users: list[IntakeUser] = field(default_factory=list)
    meters: list[IntakeMeter] = field(default_factory=list)
    wells: list[GroundwaterWell] = field(default_factory=list)
    sources: list[WaterSource] = field(default_factory=list)
    supplies: list[VillageSupply] = field(default_factory=list)


def _town_seat(town: str) -> tuple[float, float]:
    for name, lat, lon, _ in TOWNS:
        if name == town:
            return lat, lon
    raise KeyError(town)


def _near(a: Station, b: Station) -> float:
    return (a.lat - b.lat) ** 2 + ((a.lon - b.lon) * 0.8) ** 2


def generate_water_supply(district: list[Station], seed: int = DEFAULT_SEED) -> WaterSupplyDistrict:
    """Water resources and supplies for ``district`` (simulators.district.generate_district's stations)."""
    rng = random.Random(seed * 7 + 15)
    out = WaterSupplyDistrict()
    towns = [t[0] for t in TOWNS]

    # Intake users, each with one or two metered intake points; some meters were replaced once.
    for i in range(1, N_INTAKE_USERS + 1):
        town = rng.choice(towns)
        suffix, source, (lo, hi) = rng.choice(_USER_KINDS)
        if suffix in ("水厂", "灌区管理站", "热电有限公司") and town in _PLAIN_TOWNS and rng.random() < 0.5:
            source = "ground"
        user_id = f"QS{i:04d}"
        name = f"青岛{_short(town)}{'第二' if i % 9 == 0 else ''}{suffix}" if suffix == "水厂" else \
            f"即墨{_short(town)}{rng.choice('华鑫恒泰丰源宏盛康')}{rng.choice('达兴隆昌利源海')}{suffix}"
        permitted = round(rng.uniform(lo, hi), -2)
        out.intake_users.append(IntakeUser(
            id=user_id, name=name, town=town, source=source, licence_no=f"取水(鲁青即)字[{2019 + i % 5}]第{i:04d}号",
            permitted_m3_per_year=permitted))
        lat0, lon0 = _town_seat(town)
        for j in range(1 if rng.random() < 0.55 else 2):
            sid = f"IN{len(out.stations) + 1:04d}"
            lat, lon = _place(rng, lat0, lon0, 0.02)
            out.stations.append(Station(id=sid, kind=Kind.intake, name=f"{name}{j + 1}号取水口", town=town,
                                        lat=lat, lon=lon, interval_s=3600))
            installed = _EPOCH + timedelta(days=rng.randrange(0, 900))
            rollover = 1e6 if permitted < 1e6 else 1e7
            if rng.random() < 0.15:  # an old meter replaced by the current one
                removed = installed + timedelta(days=rng.randrange(400, 1500))
                out.meters.append(IntakeMeter(id=f"M{sid}A", user_id=user_id, station_id=sid, installed_at=installed,
                                              removed_at=removed, rollover_m3=rollover))
                installed = removed
            out.meters.append(IntakeMeter(id=f"M{sid}", user_id=user_id, station_id=sid, installed_at=installed,
                                          rollover_m3=rollover))

    # Groundwater monitoring wells, two thirds of them on the plain.
    plain = [t for t in towns if t in _PLAIN_TOWNS]
    hills = [t for t in towns if t not in _PLAIN_TOWNS]
    for i in range(1, N_WELLS + 1):
        on_plain = i % 3 != 0
        town = rng.choice(plain if on_plain else hills)
        lat, lon = _place(rng, *_town_seat(town), 0.02)
        sid = f"GW{i:04d}"
        out.stations.append(Station(id=sid, kind=Kind.groundwater, name=f"{_short(town)}{i}号地下水监测井",
                                    town=town, lat=lat, lon=lon, interval_s=3600))
        out.wells.append(GroundwaterWell(
            station_id=sid, town=town,
            ground_elevation_m=round(rng.uniform(5.0, 30.0) if on_plain else rng.uniform(25.0, 90.0), 2),
            aquifer=rng.choice(_AQUIFERS_PLAIN if on_plain else _AQUIFERS_HILL),
            well_depth_m=round(rng.uniform(20.0, 60.0) if on_plain else rng.uniform(40.0, 120.0), 1)))

    # Water sources: the supplying reservoirs, a well field per town, and the border river for one plant.
    reservoirs = [s for s in district if s.kind == Kind.reservoir][:N_RESERVOIR_SOURCES]
    villages = [s for s in district if s.kind == Kind.village_water]
    plants = {r.id: f"PL{k:02d}" for k, r in enumerate(reservoirs[:3], 1)}  # each medium reservoir feeds a plant
    plants["RIVER"] = "PL04"
    served: dict[str, list[str]] = {r.id: [] for r in reservoirs}
    served_by_field: dict[str, list[str]] = {t: [] for t in towns}
    for v in villages:
        nearest = min(reservoirs, key=lambda r: _near(r, v))
        roll = rng.random()
        if roll < 0.10:
            supply_type, plant = "dispersed", None
        elif _near(nearest, v) < 0.04 ** 2 and nearest.id in plants:
            supply_type, plant = "centralised", plants[nearest.id]
        elif roll < 0.16:
            supply_type, plant = "centralised", plants["RIVER"]
        else:
            supply_type, plant = "small_centralised", None
        if supply_type == "small_centralised":
            (served[nearest.id] if _near(nearest, v) < 0.05 ** 2 else served_by_field[v.town]).append(v.id)
        population = int(min(3000, max(200, rng.lognormvariate(6.7, 0.5))))
        litres = rng.uniform(80.0, 120.0)
        storeys = 1 if rng.random() < 0.6 else 2 if rng.random() < 0.9 else 3
        out.supplies.append(VillageSupply(
            station_id=v.id, supply_type=supply_type, population=population,
            design_m3_per_day=round(population * litres / 1000.0, 1), plant_id=plant,
            disinfectant=("none" if supply_type == "dispersed" and rng.random() < 0.7 else
                          "chlorine_dioxide" if rng.random() < 0.45 else
                          "chloramine" if supply_type == "centralised" and rng.random() < 0.3 else "free_chlorine"),
            service_head_m=service_head_m(storeys)))
    for k, r in enumerate(reservoirs, 1):
        out.sources.append(WaterSource(id=f"SY{k:03d}", name=f"{r.name}水源地", kind="reservoir",
                                       reservoir_station_id=r.id, village_station_ids=tuple(served[r.id]),
                                       plant_ids=(plants[r.id],) if r.id in plants else ()))
    out.sources.append(WaterSource(id=f"SY{len(reservoirs) + 1:03d}", name="大沽河水源地", kind="river",
                                   plant_ids=(plants["RIVER"],)))
    for town in towns:
        if served_by_field[town]:
            out.sources.append(WaterSource(id=f"SY{len(out.sources) + 1:03d}", name=f"{_short(town)}地下水源地",
                                           kind="well_field", village_station_ids=tuple(served_by_field[town])))
    return out
