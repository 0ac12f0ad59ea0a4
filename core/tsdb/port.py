"""The time-series store port. Adapters: SQLite (embedded), InfluxDB (servers)."""

from __future__ import annotations

from datetime import datetime
from typing import Literal, NamedTuple, Protocol, Sequence

from core.domain import Reading

Agg = Literal["mean", "min", "max", "sum", "count"]
AGGS: tuple[str, ...] = ("mean", "min", "max", "sum", "count")


StatName = Literal["count", "sum", "min", "max", "mean"]
STATS: tuple[str, ...] = ("count", "sum", "min", "max", "mean")


class BucketStats(NamedTuple):
    """Aggregates of the readings in one bucket; None for one that was not asked for (a store may skip it: each
    aggregate costs InfluxDB another pass)."""

    count: int | None
    sum: float | None
    min: float | None
    max: float | None
    mean: float | None


class StoreUnavailable(RuntimeError):
    """The store cannot be reached now; the caller keeps its data and retries."""


class TimeSeriesStore(Protocol):
    def write(self, readings: Sequence[Reading]) -> None:
        """Write readings; the same station, metric and time written twice keeps one point."""

    def latest(self, kind: str | None = None, station_ids: Sequence[str] | None = None) -> list[Reading]:
        """The newest reading of every (station, metric), optionally filtered."""

    def query(self, station_id: str, metric: str | None, start: datetime, end: datetime,
              limit: int = 10000) -> list[Reading]:
        """Raw readings in [start, end), oldest first."""

    def aggregate(self, station_id: str, metric: str, start: datetime, end: datetime,
                  every_s: int, agg: Agg) -> list[tuple[datetime, float]]:
        """Readings in [start, end) bucketed by ``every_s`` seconds (aligned to the epoch)."""

    def bucket_stats(self, station_ids: Sequence[str], metrics: Sequence[str], start: datetime, end: datetime,
                     every_s: int, offset_s: int = 0, stats: Sequence[StatName] = STATS,
                     ) -> dict[tuple[str, str], list[tuple[datetime, BucketStats]]]:
        """The ``stats`` per bucket of several stations and metrics in one request to the store:
        {(station_id, metric): [(bucket start, stats), ...]} oldest first; empty series left out. Buckets begin at
        epoch + ``offset_s`` + k·every_s."""

    def counts_by_kind(self) -> dict[str, int]:
        """Number of stored points per station kind."""

    def ping(self) -> bool: ...

    def close(self) -> None: ...
