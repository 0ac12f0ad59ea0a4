"""The station catalogue: the registry's stations held in memory, shared by ingest and the alert engine.

Both stages decode every message against the stations they know, and the alert engine evaluates each reading
against the station's reference levels. Holding a copy is what makes that fast, and a copy goes out of date: a
station is added, a flood-limit level edited. So the copy refreshes itself when it is older than
``refresh_s`` and, at most every ``unknown_retry_s``, when asked about an id it does not know (a station
registered after the last load). Every refresh that changes anything bumps ``version``, so whoever built
something from the stations (the alert engine's plans) knows to rebuild it. See docs/architecture.md.

Also here: the one rule for "stale", used by the stale-station alert and by the dashboard's map alike.
"""

from __future__ import annotations

import logging
import threading
import time
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Callable, Iterable, Iterator, Mapping

from core.domain import Station
from core.logs import kv
from core.rules import DEFAULT_STALE_INTERVALS, Rule, RuleType

if TYPE_CHECKING:
    from core.registry import Registry

log = logging.getLogger("core.catalog")

DEFAULT_REFRESH_S = 30.0
UNKNOWN_RETRY_S = 5.0  # an unknown id reloads the catalogue at most this often: a flood of bad ids costs little


class StationCatalog(Mapping[str, Station]):
    """Stations by id, with refresh-when-due, refresh-on-unknown-id and a version.

    Reads never block on a refresh: a refresh builds a new dict and swaps it in, so a reader holding
    ``stations`` keeps a consistent (if slightly old) view.
    """

    def __init__(self, load: Callable[[], Iterable[Station]], *, refresh_s: float = DEFAULT_REFRESH_S,
                 unknown_retry_s: float = UNKNOWN_RETRY_S, clock: Callable[[], float] = time.monotonic) -> None:
        self._load = load
        self.refresh_s = refresh_s
        self.unknown_retry_s = min(unknown_retry_s, refresh_s)
        self._clock = clock
        self._stations: dict[str, Station] = {}
        self._loaded_at: float | None = None
        self._refresh_lock = threading.Lock()
        self.version = 0  # bumped by every refresh that changes a station (added, removed or edited)

    @classmethod
    def of(cls, registry: "Registry", refresh_s: float = DEFAULT_REFRESH_S, **kw: float) -> "StationCatalog":
        """A catalogue of a Registry's stations."""
        return cls(registry.list_stations, refresh_s=refresh_s, **kw)

    # -- the mapping --------------------------------------------------------------------------------------------
    @property
    def stations(self) -> Mapping[str, Station]:
        """The current stations by id (a snapshot: a refresh replaces it, never changes it)."""
        return self._stations

    def __getitem__(self, station_id: str) -> Station:
        return self._stations[station_id]

    def __contains__(self, station_id: object) -> bool:
        return station_id in self._stations

    def __iter__(self) -> Iterator[str]:
        return iter(self._stations)

    def __len__(self) -> int:
        return len(self._stations)

    # -- refreshing ---------------------------------------------------------------------------------------------
    @property
    def loaded(self) -> bool:
        return self._loaded_at is not None

    def age_s(self) -> float:
        return float("inf") if self._loaded_at is None else self._clock() - self._loaded_at

    def refresh(self) -> bool:
        """Load the stations now; True when anything changed (and ``version`` was bumped)."""
        with self._refresh_lock:
            fresh = {s.id: s for s in self._load()}
            self._loaded_at = self._clock()
            if fresh == self._stations:
                return False
            added = fresh.keys() - self._stations.keys()
            self._stations = fresh
            self.version += 1
        log.info("station catalogue refreshed", extra=kv(stations=len(fresh), added=len(added), version=self.version))
        return True

    def refresh_if_due(self) -> bool:
        """Refresh when the last load is older than ``refresh_s`` (or never happened); True when it changed."""
        if self.age_s() < self.refresh_s:
            return False
        return self.refresh()

    def refresh_for_unknown(self, station_id: str) -> bool:
        """A message named a station we do not know: reload, unless we did so within ``unknown_retry_s``.
        True when the station is known afterwards."""
        if station_id in self._stations:
            return True
        if self.age_s() < self.unknown_retry_s:
            return False
        self.refresh()
        return station_id in self._stations


# -- stale: one rule for the alert and the map ---------------------------------------------------------------------
def stale_intervals(station: Station, rules: Iterable[Rule]) -> float:
    """How many reporting intervals without a reading make this station stale: the first enabled stale rule that
    applies to it, else the stale rule type's default (docs/alert-semantics.md, "Stale stations")."""
    for rule in rules:
        if rule.type == RuleType.stale and rule.applies_to(station.id, station.kind.value):
            return float(rule.params.get("intervals", DEFAULT_STALE_INTERVALS))
    return float(DEFAULT_STALE_INTERVALS)


def overdue_at(last: datetime, station: Station, intervals: float) -> datetime:
    """When a station last heard from at ``last`` becomes stale: ``intervals`` of its reporting intervals later."""
    return last + timedelta(seconds=intervals * station.interval_s)


def is_stale(last: datetime | None, station: Station, intervals: float, now: datetime) -> bool:
    """Stale at ``now``: never heard from, or past its overdue time."""
    return last is None or now > overdue_at(last, station, intervals)
