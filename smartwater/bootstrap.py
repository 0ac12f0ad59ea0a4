"""What ``smartwater init`` loads into the registry: the bureau's own files, or — only when asked — demo data.

A real bureau's registry must hold only what the bureau gave it: its stations, its rivers, its chiefs. The
generated district (stations, rivers, chiefs with invented names) is demo data, stored only with an explicit
``--demo-data`` (and by ``smartwater demo``), never as a fallback: invented chiefs on a public bulletin would be
worse than an empty one.

Every file given is read and validated before anything is written; the problems of all of them are reported
together. Rivers are cut into segments by the villages (village water-supply stations) of the registry and of the
stations file (core.importers.segments), and chiefs may name only segments that exist once the import is done.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from core.domain import Station
from core.importers import InvalidFile, load_chiefs_csv, load_rivers_geojson, load_stations_csv, split_river, \
    villages_of
from core.patrols.models import Chief, River, Segment
from core.patrols.repo import PatrolRepo
from core.registry import Registry
from core.settings import Settings


@dataclass
class Bundle:
    """Everything read from the files given, validated, not yet stored."""

    stations: list[Station] = field(default_factory=list)
    rivers: list[River] = field(default_factory=list)
    segments: list[Segment] = field(default_factory=list)
    chiefs: list[Chief] = field(default_factory=list)


def read_files(registry: Registry, settings: Settings, stations: Path | None = None, rivers: Path | None = None,
               chiefs: Path | None = None) -> Bundle:
    """Read and validate every file given; ``InvalidFile`` lists the problems of all of them."""
    out, problems = Bundle(), []

    def read(load, *args):  # noqa: ANN001, ANN202
        try:
            return load(*args)
        except InvalidFile as exc:
            problems.extend(exc.problems)
            return None

    if stations is not None:
        out.stations = read(load_stations_csv, stations) or []
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
    if problems:
        raise InvalidFile(problems)
    return out


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
    return counts


def store_demo_data(registry: Registry, settings: Settings) -> dict[str, int]:
    """The generated demo district: its stations (upserted), and its river network unless the registry has rivers
    already (imported or generated before). The counts stored."""
    from simulators import generate_district

    counts = {"stations": registry.upsert_stations(generate_district(settings.district_seed, settings.flood_season))}
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
