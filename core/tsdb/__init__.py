"""Pick the time-series adapter from SMARTWATER_TSDB_URL; call sites only see the port."""

from __future__ import annotations

from urllib.parse import urlsplit

from core.tsdb.port import AGGS, StoreUnavailable, TimeSeriesStore

__all__ = ["AGGS", "StoreUnavailable", "TimeSeriesStore", "open_store"]


def open_store(url: str) -> TimeSeriesStore:
    scheme = urlsplit(url).scheme
    if scheme == "sqlite":
        from core.tsdb.sqlite import SQLiteStore

        return SQLiteStore.from_url(url)
    if scheme in ("influxdb", "influxdb2"):
        raise NotImplementedError(f"the InfluxDB adapter is not built yet (issue 3): {scheme}://")
    raise ValueError(f"unsupported time-series store URL: {url!r}")
