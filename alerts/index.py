"""The alert engine's station index: a row per station, and what hangs on it.

Every station the engine has ever known gets a row, kept for good: the arrays indexed by it are the newest data
time seen from each station (``last_seen_us``), the watermarks (the newest data time each (station, rule) was
evaluated at, one column per rule name), and the rows of the window matrices (``Family.row_of``). A station
removed from the registry keeps its row but is no longer ``present``.

Watermarks make late or replayed readings alert exactly as they would have live: a reading older than the
watermark of a (station, rule) cannot undo a newer state (docs/alert-semantics.md, "Data time").
"""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime, timedelta, timezone
from typing import Any, Iterable

import numpy as np

from alerts.evaluate import haversine_km
from alerts.window_matrix import RowWindow, SeriesMatrix
from alerts.windows import SeriesWindow
from core.domain import Station

NO_TIME = np.iinfo(np.int64).min  # "never evaluated" in the watermark and last-seen arrays
_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
_US = timedelta(microseconds=1)


def to_us(ts: datetime) -> int:
    """Exact microseconds since the epoch: the engine compares data times as datetimes do."""
    return (ts - _EPOCH) // _US


class StationMap(dict):
    """Stations by id that count their changes, so per-station plans know when to rebuild."""

    version = 0

    def _changed(self) -> None:
        self.version += 1

    def __setitem__(self, key: str, value: Station) -> None:
        super().__setitem__(key, value)
        self._changed()

    def __delitem__(self, key: str) -> None:
        super().__delitem__(key)
        self._changed()

    def pop(self, *args: Any) -> Any:
        self._changed()
        return super().pop(*args)

    def popitem(self) -> Any:
        self._changed()
        return super().popitem()

    def clear(self) -> None:
        super().clear()
        self._changed()

    def update(self, *args: Any, **kw: Any) -> None:
        super().update(*args, **kw)
        self._changed()

    def setdefault(self, key: str, default: Any = None) -> Any:
        self._changed()
        return super().setdefault(key, default)


class Family:
    """The windows of one (station kind, metric): a SeriesMatrix and the row of each station index."""

    __slots__ = ("m", "row_of")

    def __init__(self, m: SeriesMatrix, stations: int) -> None:
        self.m = m
        self.row_of = np.full(stations, -1, dtype=np.int64)

    def rows(self, gis: np.ndarray) -> np.ndarray:
        """Rows of these station indexes (distinct), created for those that have none yet."""
        rows = self.row_of[gis]
        new = rows < 0
        if new.any():
            first = self.m.add_rows(int(new.sum()))
            rows[new] = np.arange(first, first + int(new.sum()))
            self.row_of[gis[new]] = rows[new]
        return rows

    def row(self, gi: int) -> int:
        r = int(self.row_of[gi])
        if r < 0:
            r = self.row_of[gi] = self.m.add_rows(1)
        return r


def nearest_gauges(stations: Iterable[Station]) -> dict[str, list[Station]]:
    """Each rain gauge's villages: every village water-supply station goes to its nearest gauge (a village's
    mountain-torrent rule reads that gauge's rain; docs/alert-semantics.md, "Mountain torrents")."""
    stations = list(stations)
    gauges = [s for s in stations if s.kind.value == "rain"]
    out: dict[str, list[Station]] = defaultdict(list)
    if gauges:
        for v in stations:
            if v.kind.value == "village_water":
                near = min(gauges, key=lambda g: haversine_km(v.lat, v.lon, g.lat, g.lon))
                out[near.id].append(v)
    return out


class StationIndex:
    """Rows of stations and rule columns; last seen, watermarks and window families by row."""

    def __init__(self) -> None:
        self.stations = StationMap()
        self.row: dict[str, int] = {}  # station id → row
        self.ids: list[str] = []  # row → station id
        self.present = np.zeros(0, dtype=bool)  # row → still in the registry
        self.last_seen: dict[str, datetime] = {}
        self.last_seen_us = np.zeros(0, dtype=np.int64)
        # Watermarks by (row, rule column); columns by rule name, kept across rule reloads.
        self.rule_col: dict[str, int] = {}
        self.wm = np.full((0, 0), NO_TIME, dtype=np.int64)
        self.families: dict[tuple[str, str], Family] = {}
        self.gauge_villages: dict[str, list[Station]] = {}
        self._indexed_version = -1

    # -- stations -----------------------------------------------------------------------------------------------
    def replace_stations(self, stations: dict[str, Station]) -> None:
        """Take a new set of stations (a catalogue refresh): a new version, rows for the new ones."""
        m = StationMap(stations)
        m.version = self.stations.version + 1
        self.stations = m
        self.gauge_villages = nearest_gauges(m.values())
        self.sync()

    @property
    def synced(self) -> bool:
        return self.stations.version == self._indexed_version

    def sync(self) -> None:
        """Give every station a row (kept for good: watermarks and windows hang on it)."""
        st = self.stations
        if st.version == self._indexed_version:
            return
        for sid in st:
            if sid not in self.row:
                self.row[sid] = len(self.ids)
                self.ids.append(sid)
        n = len(self.ids)
        if n > len(self.last_seen_us):
            grow = n - len(self.last_seen_us)
            self.last_seen_us = np.concatenate([self.last_seen_us, np.full(grow, NO_TIME, dtype=np.int64)])
            self.wm = np.vstack([self.wm, np.full((grow, self.wm.shape[1]), NO_TIME, dtype=np.int64)])
            for fam in self.families.values():
                fam.row_of = np.concatenate([fam.row_of, np.full(grow, -1, dtype=np.int64)])
        self.present = np.array([sid in st for sid in self.ids], dtype=bool)
        self._indexed_version = st.version

    def row_of(self, station_id: str) -> int:
        """The row of a station, given one first if it has none (a station set in ``stations`` directly)."""
        gi = self.row.get(station_id)
        if gi is None:
            self.sync()
            gi = self.row[station_id]
        return gi

    def seen(self, gi: int, sid: str, ts: datetime, us: int) -> None:
        """A reading of this station at ``ts`` (µs ``us``): the newest data time it reported, if newer."""
        if us > self.last_seen_us.item(gi):
            self.last_seen[sid] = ts
            self.last_seen_us[gi] = us

    # -- watermarks ---------------------------------------------------------------------------------------------
    def col(self, rule_name: str) -> int:
        """The watermark column of a rule, added on first use."""
        c = self.rule_col.get(rule_name)
        if c is None:
            c = self.rule_col[rule_name] = len(self.rule_col)
            if c >= self.wm.shape[1]:
                extra = np.full((self.wm.shape[0], max(8, self.wm.shape[1])), NO_TIME, dtype=np.int64)
                self.wm = np.hstack([self.wm, extra])
        return c

    def advance(self, gi: int, col: int, us: int) -> bool:
        """Move a watermark to ``us``; False (and nothing moved) when it is already newer: a late reading."""
        wm = self.wm
        if us < wm.item(gi, col):
            return False
        wm[gi, col] = us
        return True

    @property
    def watermarks_set(self) -> int:
        return int((self.wm != NO_TIME).sum())

    def cells(self, keys: Iterable[tuple[str, str]]) -> tuple[np.ndarray, np.ndarray]:
        """(rows, rule columns) of (station, rule) keys; keys of unknown stations or rules are left out."""
        g, c = [], []
        for sid, name in keys:
            gi, col = self.row.get(sid), self.rule_col.get(name)
            if gi is not None and col is not None:
                g.append(gi)
                c.append(col)
        return np.array(g, dtype=np.int64), np.array(c, dtype=np.int64)

    # -- windows ------------------------------------------------------------------------------------------------
    def family(self, kind: str, metric: str, keep_h: int, running_sums: bool) -> Family:
        """The window family of a (kind, metric), made on first use."""
        fam = self.families.get((kind, metric))
        if fam is None:
            m = SeriesMatrix(keep_h=keep_h, running_sums=running_sums)
            fam = self.families[(kind, metric)] = Family(m, len(self.ids))
        return fam

    def window(self, station_id: str, metric: str) -> RowWindow | SeriesWindow | None:
        """The window of one station's metric, None when none is kept."""
        st = self.stations.get(station_id)
        fam = self.families.get((st.kind.value, metric)) if st is not None else None
        gi = self.row.get(station_id)
        if fam is None or gi is None or fam.row_of[gi] < 0:
            return None
        return fam.m.window(int(fam.row_of[gi]))
