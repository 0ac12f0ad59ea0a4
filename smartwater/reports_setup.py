"""Set-up the reports need: town boundaries in the registry, and a multi-year rain history in the store (demo)."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

from core.domain import Kind
from core.registry import Registry
from core.reports.towns import TownRepo, parse_towns
from core.settings import Settings
from core.timeutil import zone
from core.tsdb import TimeSeriesStore

HISTORY_YEARS = 10


def import_towns(registry: Registry, path: Path) -> int:
    """Replace the towns' boundaries with a GeoJSON file's (validated whole first); how many were stored."""
    return TownRepo(registry.engine).replace_all(parse_towns(path))


def ensure_towns(registry: Registry) -> int | None:
    """The generated district's boundaries, unless the registry has towns (imported or generated before)."""
    from simulators.town_polygons import generate_towns

    repo = TownRepo(registry.engine)
    if repo.count():
        return None
    return repo.replace_all(generate_towns())


def ensure_rain_history(registry: Registry, store: TimeSeriesStore, settings: Settings, now: datetime,
                        years: int = HISTORY_YEARS) -> int | None:
    """A seeded daily rain history of ``years`` past years up to yesterday, unless the store has rain from the
    last year already; the readings written, or None."""
    from simulators.rain_history import seed_history

    gauges = registry.list_stations(kind=Kind.rain.value)
    if not gauges:
        return None
    past = store.bucket_stats([g.id for g in gauges], ["rain_mm"], now - timedelta(days=366), now - timedelta(days=2),
                              400 * 86400, stats=("count",))
    if past:
        return None
    return seed_history(store, gauges, now, years, zone(settings.display_timezone), seed=settings.district_seed)
