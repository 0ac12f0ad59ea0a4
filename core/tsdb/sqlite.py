"""Embedded time-series store on SQLite: one row per (station, metric, time), upserted."""

from __future__ import annotations

import sqlite3
import threading
from datetime import datetime
from pathlib import Path
from typing import Sequence

from core.datafiles import private_file
from core.domain import Reading
from core.sqlite_wal import switch_to_wal
from core.timeutil import from_ms, to_ms
from core.tsdb.port import AGGS, STATS, Agg, BucketStats, StatName, StoreUnavailable

_SCHEMA = """
CREATE TABLE IF NOT EXISTS readings (
    station_id TEXT NOT NULL,
    metric TEXT NOT NULL,
    ts_ms INTEGER NOT NULL,
    kind TEXT NOT NULL,
    value REAL NOT NULL,
    PRIMARY KEY (station_id, metric, ts_ms)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS latest (
    station_id TEXT NOT NULL,
    metric TEXT NOT NULL,
    kind TEXT NOT NULL,
    ts_ms INTEGER NOT NULL,
    value REAL NOT NULL,
    PRIMARY KEY (station_id, metric)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS latest_kind ON latest (kind);
"""

# Hourly count, sum, min and max per (station, metric), kept by triggers in the transaction of every write, so reports
# over months read hours, not 5-minute points (docs/reports.md, "Speed"). An overwritten point (redelivery) adjusts
# the sum and recomputes its hour's min and max.
HOUR_MS = 3_600_000
_ROLLUP: tuple[str, ...] = (
    """CREATE TABLE readings_hourly (
    station_id TEXT NOT NULL,
    metric TEXT NOT NULL,
    hour_ms INTEGER NOT NULL,
    n INTEGER NOT NULL,
    total REAL NOT NULL,
    lo REAL NOT NULL,
    hi REAL NOT NULL,
    PRIMARY KEY (station_id, metric, hour_ms)
) WITHOUT ROWID""",
    f"""CREATE TRIGGER readings_hourly_insert AFTER INSERT ON readings BEGIN
    INSERT INTO readings_hourly (station_id, metric, hour_ms, n, total, lo, hi)
    VALUES (NEW.station_id, NEW.metric, NEW.ts_ms - ((NEW.ts_ms % {HOUR_MS}) + {HOUR_MS}) % {HOUR_MS}, 1, NEW.value,
            NEW.value, NEW.value)
    ON CONFLICT (station_id, metric, hour_ms) DO UPDATE SET n = n + 1, total = total + excluded.total,
        lo = MIN(lo, excluded.lo), hi = MAX(hi, excluded.hi);
END;""",
    f"""CREATE TRIGGER readings_hourly_update AFTER UPDATE OF value ON readings BEGIN
    UPDATE readings_hourly SET total = total - OLD.value + NEW.value,
        lo = (SELECT MIN(value) FROM readings r WHERE r.station_id = NEW.station_id AND r.metric = NEW.metric
              AND r.ts_ms >= readings_hourly.hour_ms AND r.ts_ms < readings_hourly.hour_ms + {HOUR_MS}),
        hi = (SELECT MAX(value) FROM readings r WHERE r.station_id = NEW.station_id AND r.metric = NEW.metric
              AND r.ts_ms >= readings_hourly.hour_ms AND r.ts_ms < readings_hourly.hour_ms + {HOUR_MS})
    WHERE station_id = NEW.station_id AND metric = NEW.metric
      AND hour_ms = NEW.ts_ms - ((NEW.ts_ms % {HOUR_MS}) + {HOUR_MS}) % {HOUR_MS};
END""",
    f"""INSERT INTO readings_hourly (station_id, metric, hour_ms, n, total, lo, hi)
    SELECT station_id, metric, ts_ms - ((ts_ms % {HOUR_MS}) + {HOUR_MS}) % {HOUR_MS} AS h, COUNT(*), SUM(value),
           MIN(value), MAX(value)
    FROM readings GROUP BY station_id, metric, h""",
)

# BucketStats without NamedTuple's keyword handling: a year of hourly buckets is a few hundred thousand of them.
def _stats(values: tuple) -> BucketStats:
    return tuple.__new__(BucketStats, values)


_SQL_AGG = {"mean": "AVG(value)", "min": "MIN(value)", "max": "MAX(value)", "sum": "SUM(value)",
            "count": "COUNT(value)"}


class SQLiteStore:
    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        if str(self.path) != ":memory:":
            private_file(self.path)  # 0600 in a 0700 directory, as every data file
        # One connection shared across threads behind a lock; WAL lets readers in other
        # processes (the API under `smartwater run api`) read while ingest writes.
        self._conn = sqlite3.connect(self.path, check_same_thread=False, timeout=30, isolation_level=None)
        self._lock = threading.RLock()
        with self._lock:
            switch_to_wal(self._conn)
            self._conn.execute("PRAGMA synchronous=NORMAL")
            self._conn.executescript(_SCHEMA)
            self._ensure_rollup()

    def _ensure_rollup(self) -> None:
        """Create the hourly rollup once, filled from the readings already stored (a store from before it)."""
        if self._conn.execute("SELECT 1 FROM sqlite_master WHERE name = 'readings_hourly'").fetchone():
            return
        self._conn.execute("BEGIN IMMEDIATE")
        try:
            if not self._conn.execute("SELECT 1 FROM sqlite_master WHERE name = 'readings_hourly'").fetchone():
                for statement in _ROLLUP:
                    self._conn.execute(statement)
            self._conn.execute("COMMIT")
        except BaseException:
            self._conn.execute("ROLLBACK")
            raise

    @classmethod
    def from_url(cls, url: str) -> "SQLiteStore":
        return cls(url.removeprefix("sqlite:///"))

    def write(self, readings: Sequence[Reading]) -> None:
        if not readings:
            return
        rows = [(r.station_id, r.metric, to_ms(r.ts), r.kind, float(r.value)) for r in readings]
        try:
            with self._lock:
                self._conn.execute("BEGIN")
                try:
                    self._conn.executemany(
                        "INSERT INTO readings (station_id, metric, ts_ms, kind, value) VALUES (?,?,?,?,?) "
                        "ON CONFLICT (station_id, metric, ts_ms) DO UPDATE SET value=excluded.value, kind=excluded.kind",
                        rows)
                    # Out-of-order arrivals must not move "latest" backwards.
                    self._conn.executemany(
                        "INSERT INTO latest (station_id, metric, ts_ms, kind, value) VALUES (?,?,?,?,?) "
                        "ON CONFLICT (station_id, metric) DO UPDATE SET ts_ms=excluded.ts_ms, value=excluded.value, "
                        "kind=excluded.kind WHERE excluded.ts_ms >= latest.ts_ms",
                        rows)
                    self._conn.execute("COMMIT")
                except BaseException:
                    self._conn.execute("ROLLBACK")
                    raise
        except sqlite3.OperationalError as exc:
            raise StoreUnavailable(f"SQLite write failed: {exc}") from exc

    def latest(self, kind: str | None = None, station_ids: Sequence[str] | None = None) -> list[Reading]:
        sql = "SELECT station_id, kind, metric, ts_ms, value FROM latest"
        where, args = [], []
        if kind:
            where.append("kind = ?")
            args.append(kind)
        if station_ids is not None:
            where.append(f"station_id IN ({','.join('?' * len(station_ids))})")
            args.extend(station_ids)
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY station_id, metric"
        with self._lock:
            rows = self._conn.execute(sql, args).fetchall()
        return [Reading(s, k, m, from_ms(t), v) for s, k, m, t, v in rows]

    def query(self, station_id: str, metric: str | None, start: datetime, end: datetime,
              limit: int = 10000) -> list[Reading]:
        sql = "SELECT station_id, kind, metric, ts_ms, value FROM readings WHERE station_id = ? AND ts_ms >= ? AND ts_ms < ?"
        args: list[object] = [station_id, to_ms(start), to_ms(end)]
        if metric:
            sql += " AND metric = ?"
            args.append(metric)
        sql += " ORDER BY ts_ms, metric LIMIT ?"
        args.append(limit)
        with self._lock:
            rows = self._conn.execute(sql, args).fetchall()
        return [Reading(s, k, m, from_ms(t), v) for s, k, m, t, v in rows]

    def aggregate(self, station_id: str, metric: str, start: datetime, end: datetime,
                  every_s: int, agg: Agg) -> list[tuple[datetime, float]]:
        if agg not in AGGS:
            raise ValueError(f"agg must be one of {AGGS}")
        every_ms = int(every_s * 1000)
        sql = (f"SELECT (ts_ms / ?) * ? AS bucket, {_SQL_AGG[agg]} FROM readings "
               "WHERE station_id = ? AND metric = ? AND ts_ms >= ? AND ts_ms < ? GROUP BY bucket ORDER BY bucket")
        with self._lock:
            rows = self._conn.execute(sql, (every_ms, every_ms, station_id, metric, to_ms(start), to_ms(end))).fetchall()
        return [(from_ms(b), float(v)) for b, v in rows]

    def bucket_stats(self, station_ids: Sequence[str], metrics: Sequence[str], start: datetime, end: datetime,
                     every_s: int, offset_s: int = 0, stats: Sequence[StatName] = STATS,
                     ) -> dict[tuple[str, str], list[tuple[datetime, BucketStats]]]:
        # SQLite computes all of them in the same pass: ``stats`` only matters to InfluxDB.
        every_ms = int(every_s * 1000)
        if every_ms <= 0:
            raise ValueError("every_s must be positive")
        off_ms = int(offset_s * 1000) % every_ms
        ids, mets = list(dict.fromkeys(station_ids)), list(dict.fromkeys(metrics))
        if not ids or not mets:
            return {}
        t0, t1 = to_ms(start), to_ms(end)
        shift = every_ms * (1 + abs(t0) // every_ms)
        bucket = "((%s - ? + ?) / ?) * ? - ? + ?"
        where = (f"station_id IN ({','.join('?' * len(ids))}) AND metric IN ({','.join('?' * len(mets))})")
        b_args = [off_ms, shift, every_ms, every_ms, shift, off_ms]

        def raw(a: int, b: int) -> str:
            return (f"SELECT station_id, metric, {bucket % 'ts_ms'} AS bucket, COUNT(value), SUM(value), MIN(value), "
                    f"MAX(value) FROM readings WHERE {where} AND ts_ms >= ? AND ts_ms < ? GROUP BY station_id, metric, "
                    "bucket"), [*b_args, *ids, *mets, a, b]

        # Whole hours inside the range come from the hourly rollup when buckets are whole hours; the part hours at
        # either end from the readings.
        parts = []
        inner0, inner1 = -(-t0 // HOUR_MS) * HOUR_MS, (t1 // HOUR_MS) * HOUR_MS
        if every_ms == HOUR_MS and off_ms == 0 and inner0 < inner1:
            # Hourly buckets are the rollup's rows, already in key order: no grouping, no sorting.
            parts.append((f"SELECT station_id, metric, hour_ms, n, total, lo, hi FROM readings_hourly WHERE {where} "
                          "AND hour_ms >= ? AND hour_ms < ? ORDER BY station_id, metric, hour_ms",
                          [*ids, *mets, inner0, inner1]))
        elif every_ms % HOUR_MS == 0 and off_ms % HOUR_MS == 0 and inner0 < inner1:
            parts.append((f"SELECT station_id, metric, {bucket % 'hour_ms'} AS bucket, SUM(n), SUM(total), MIN(lo), "
                          f"MAX(hi) FROM readings_hourly WHERE {where} AND hour_ms >= ? AND hour_ms < ? "
                          "GROUP BY station_id, metric, bucket ORDER BY station_id, metric, bucket",
                          [*b_args, *ids, *mets, inner0, inner1]))
        if parts:
            if t0 < inner0:
                parts.append(raw(t0, inner0))
            if inner1 < t1:
                parts.append(raw(inner1, t1))
        else:
            parts.append(raw(t0, t1))
        with self._lock:
            results = [self._conn.execute(sql, args).fetchall() for sql, args in parts]
        if len(results) == 1 and "ORDER BY" in parts[0][0]:
            rows = results[0]
        elif len(results) == 1:
            rows = sorted(results[0], key=lambda r: (r[0], r[1], r[2]))
        else:
            merged: dict[tuple[str, str, int], list[float]] = {}
            for sid, metric, b, n, total, lo, hi in (r for res in results for r in res):
                prev = merged.get((sid, metric, b))
                merged[(sid, metric, b)] = [n, total, lo, hi] if prev is None else \
                    [prev[0] + n, prev[1] + total, min(prev[2], lo), max(prev[3], hi)]
            rows = [(*k, *v) for k, v in sorted(merged.items())]
        out: dict[tuple[str, str], list[tuple[datetime, BucketStats]]] = {}
        times: dict[int, datetime] = {}  # stations share their buckets: one datetime per bucket
        for sid, metric, b, n, total, lo, hi in rows:
            t = times.get(b)
            if t is None:
                t = times[b] = from_ms(b)
            out.setdefault((sid, metric), []).append((t, _stats((n, total, lo, hi, total / n))))
        return out

    def counts_by_kind(self) -> dict[str, int]:
        with self._lock:
            rows = self._conn.execute("SELECT kind, COUNT(*) FROM readings GROUP BY kind").fetchall()
        return {k: n for k, n in rows}

    def ping(self) -> bool:
        try:
            with self._lock:
                self._conn.execute("SELECT 1").fetchone()
            return True
        except sqlite3.Error:
            return False

    def close(self) -> None:
        with self._lock:
            self._conn.close()
