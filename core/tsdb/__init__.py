"""Pick the time-series adapter from SMARTWATER_TSDB_URL; call sites only see the port."""

from __future__ import annotations

from urllib.parse import urlsplit

from typing import TYPE_CHECKING

from core.tsdb.port import AGGS, StoreUnavailable, TimeSeriesStore

if TYPE_CHECKING:
    from core.settings import Settings

__all__ = ["AGGS", "StoreUnavailable", "TimeSeriesStore", "open_store", "store_from_settings"]


def open_store(url: str, token: str | None = None) -> TimeSeriesStore:
    """sqlite:///path | influxdb://[user:pass@]host:port/database | influxdb2://host:port/bucket?org=ORG.

    ``token`` (SMARTWATER_INFLUX_TOKEN) authenticates InfluxDB 2.x/3.x; required for influxdb2://.
    """
    scheme = urlsplit(url).scheme
    if scheme == "sqlite":
        from core.tsdb.sqlite import SQLiteStore

        return SQLiteStore.from_url(url)
    if scheme == "influxdb":
        from core.tsdb.influx import InfluxV1Store

        return InfluxV1Store.from_url(url, token=token)
    if scheme == "influxdb2":
        from core.tsdb.influx import Influx2Store

        return Influx2Store.from_url(url, token=token)
    raise ValueError(f"unsupported time-series store URL scheme: {scheme or url!r}")


def store_from_settings(settings: "Settings") -> TimeSeriesStore:
    """The store SMARTWATER_TSDB_URL names, with SMARTWATER_INFLUX_TOKEN when set."""
    token = settings.influx_token.get_secret_value() if settings.influx_token else None
    return open_store(settings.tsdb_url, token=token)
