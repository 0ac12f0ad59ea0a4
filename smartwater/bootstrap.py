"""What ``smartwater init`` loads into the registry: the bureau's own files, or — only when asked — demo data.

A real bureau's registry must hold only what the bureau gave it: its stations, its rivers, its chiefs. The
generated district (stations, rivers, chiefs with invented names) is demo data, stored only with an explicit
``--demo-data`` (and by ``smartwater demo``), never as a fallback: invented chiefs on a public bulletin would be
worse than an empty one.

Every file given is read and validated before anything is written; the problems of all of them are reported
together. Rivers are cut into segments by the villages (village water-supply stations) of the registry and of the
stations file (core.importers.segments), and chiefs may name only segments that exist once the import is done.
Likewise the water-resources files name only stations of the right kind (and intake users) that exist in the
registry or in the files of the same command.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from core.domain import Station
from core.importers import InvalidFile, load_chiefs_csv, load_intake_users_csv, load_meters_csv, \
    load_rivers_geojson, load_sources_csv, load_stations_csv, load_supplies_csv, load_wells_csv, split_river, \
    villages_of
from core.patrols.models import Chief, River, Segment
from core.patrols.repo import PatrolRepo
from core.registry import Registry
from core.settings import Settings
from core.supply.models import GroundwaterWell, IntakeMeter, IntakeUser, VillageSupply, WaterSource
from core.supply.repo import SupplyRepo


@dataclass
class Bundle:
    """Everything read from the files given, validated, not yet stored."""

    stations: list[Station] = field(default_factory=list)
    rivers: list[River] = field(default_factory=list)
    segments: list[Segment] = field(default_factory=list)
    chiefs: list[Chief] = field(default_factory=list)
    intake_users: list[IntakeUser] = field(default_factory=list)
    meters: list[IntakeMeter] = field(default_factory=list)
    wells: list[GroundwaterWell] = field(default_factory=list)
    sources: list[WaterSource] = field(default_factory=list)
    supplies: list[VillageSupply] = field(default_factory=list)


@dataclass
class SupplyFiles:
    """The water-resources and village-supply files of one import (any of them may be None)."""

    intake_users: Path | None = None
    meters: Path | None = None
    wells: Path | None = None
    sources: Path | None = None
    supplies: Path | None = None


def read_files(registry: Registry, settings: Settings, stations: Path | None = None, rivers: Path | None = None,
               chiefs: Path | None = None, supply: SupplyFiles | None = None) -> Bundle:
    """Read and validate every file given; ``InvalidFile`` lists the problems of all of them."""
    out, problems = Bundle(), []

    def read(load, *args):  # noqa: ANN001, ANN202
        try:
            return load(*args)
        except InvalidFile as exc:
            problems.extend(exc.problems)
            return None

    stations_ok = True
    if stations is not None:
        loaded = read(load_stations_csv, stations)
        stations_ok = loaded is not None
        out.stations = loaded or []
    if rivers is not None:
        out.rivers = read(load_rivers_geojson, rivers) or []
        if out.rivers:
            known = {s.id: s for s in registry.list_stations(kind="village_water")}
            known.update({s.id: s for s in out.stations})
            villages = villages_of(known.values())
            if not villages:
                problems.append(f"{rivers}: no village water-supply stations to cut the rivers into village and town "
                                "segments: load the stations first, or with --stations in the same command")
            else:
                out.segments = [seg for r in out.rivers for seg in split_river(r, villages)]
    if chiefs is not None:
        repo = PatrolRepo(registry.engine, settings)
        segment_ids = {s.id for s in out.segments} | {s.id for s in repo.list_segments()}
        out.chiefs = read(load_chiefs_csv, chiefs, segment_ids) or []
    if supply is not None and any(vars(supply).values()):
        _read_supply_files(registry, supply, out, read, stations_ok)
    if problems:
        raise InvalidFile(problems)
    return out


def _read_supply_files(registry: Registry, files: SupplyFiles, out: Bundle, read,  # noqa: ANN001
                       stations_ok: bool) -> None:
    """The water-resources files into ``out``; the stations they name may come from the registry or from the
    stations file of the same command, the users of meters from the registry or the intake-users file. When
    the stations file (or the users file) has problems of its own, the ids it would have given are unknown: rows
    are not checked against them, so its problems are not repeated in every row that names them."""
    by_kind: dict[str, set[str]] = {}
    for s in [*registry.list_stations(), *out.stations]:
        by_kind.setdefault(s.kind.value, set()).add(s.id)

    def of_kind(kind: str) -> set[str] | None:
        return by_kind.get(kind, set()) if stations_ok else None

    users_ok = True
    if files.intake_users is not None:
        loaded = read(load_intake_users_csv, files.intake_users)
        users_ok = loaded is not None
        out.intake_users = loaded or []
    if files.meters is not None:
        users = SupplyRepo(registry.engine).intake_user_ids() | {u.id for u in out.intake_users}
        out.meters = read(load_meters_csv, files.meters, users if users_ok else None, of_kind("intake")) or []
    if files.wells is not None:
        out.wells = read(load_wells_csv, files.wells, of_kind("groundwater")) or []
    if files.sources is not None:
        out.sources = read(load_sources_csv, files.sources, of_kind("reservoir"), of_kind("village_water")) or []
    if files.supplies is not None:
        out.supplies = read(load_supplies_csv, files.supplies, of_kind("village_water")) or []


def store_supply(registry: Registry, bundle: Bundle) -> dict[str, int]:
    """Store the water-resources part of a validated bundle; the counts stored, by what."""
    repo, counts = SupplyRepo(registry.engine), {}
    for name, items, upsert in (("intake users", bundle.intake_users, repo.upsert_intake_users),
                                ("meters", bundle.meters, repo.upsert_meters),
                                ("wells", bundle.wells, repo.upsert_wells),
                                ("water sources", bundle.sources, repo.upsert_sources),
                                ("village supplies", bundle.supplies, repo.upsert_supplies)):
        if items:
            counts[name] = upsert(items)
    return counts


def store(registry: Registry, settings: Settings, bundle: Bundle) -> dict[str, int]:
    """Store a validated bundle (upserts by id); the counts stored, by what."""
    counts: dict[str, int] = {}
    if bundle.stations:
        counts["stations"] = registry.upsert_stations(bundle.stations)
    if bundle.rivers or bundle.chiefs:
        repo = PatrolRepo(registry.engine, settings)
        if bundle.rivers:
            counts["rivers"] = repo.upsert_rivers(bundle.rivers)
            counts["segments"] = repo.upsert_segments(bundle.segments)
        if bundle.chiefs:
            counts["chiefs"] = repo.upsert_chiefs(bundle.chiefs)
    counts.update(store_supply(registry, bundle))
    return counts


def store_demo_data(registry: Registry, settings: Settings) -> dict[str, int]:
    """The generated demo district: its stations (upserted), its water resources and village supplies (upserted:
    intake users and meters, wells, sources, supplies), and its river network unless the registry has rivers
    already (imported or generated before). The counts stored."""
    from simulators import generate_district
    from simulators.water_supply import generate_water_supply

    district = generate_district(settings.district_seed, settings.flood_season)
    supply = generate_water_supply(district, settings.district_seed)
    counts = {"stations": registry.upsert_stations(district + supply.stations)}
    counts.update(store_supply(registry, Bundle(intake_users=supply.intake_users, meters=supply.meters,
                                                wells=supply.wells, sources=supply.sources,
                                                supplies=supply.supplies)))
    counts.update(ensure_demo_network(registry, settings) or {})
    return counts


def ensure_demo_network(registry: Registry, settings: Settings) -> dict[str, int] | None:
    """Store the generated river network (150 rivers, their segments, 400 chiefs) unless the registry has rivers
    already (imported or generated before); the counts stored, or None."""
    from simulators.rivers import generate_river_network, store_network

    repo = PatrolRepo(registry.engine, settings)
    if repo.counts()["rivers"]:
        return None
    return store_network(repo, generate_river_network(seed=settings.district_seed))
