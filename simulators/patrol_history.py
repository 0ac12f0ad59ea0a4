"""A year of finished patrols for a river network, bulk-loaded: the data set of the compliance benchmark and its test.

Patrols are spread uniformly over the year among the chiefs, each on the chief's first segment, ~85 % valid; with
``points_per_patrol`` each also gets a track (fixes along its segment, one every 90 s), so the points table is the
size a real year leaves behind. Rows go in the way a bulk load should: the patrols' indexes dropped, rows inserted
through the driver, indexes rebuilt (sorting once beats 75,000 random index inserts).
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone, tzinfo
from typing import Any, Mapping, Sequence
from zoneinfo import ZoneInfo

import numpy as np
from sqlalchemy import insert

from core.patrols import tables as pt
from core.patrols.compliance import Frequency, full_periods
from core.patrols.models import Chief
from simulators.rivers import RiverNetwork

UTC = timezone.utc
_COLS = ("chief_id", "segment_id", "self_started", "started_at", "status", "point_count", "distance_m", "duration_s",
         "coverage", "valid", "invalid_reason")


def _segment_samples(network: RiverNetwork, n: int) -> dict[str, np.ndarray]:
    """``n`` [lon, lat] positions evenly along each segment."""
    out = {}
    for s in network.segments:
        g = np.asarray(s.geometry, dtype=float)
        cum = np.concatenate(([0.0], np.cumsum(np.hypot(*np.diff(g, axis=0).T))))
        at = np.linspace(0.0, cum[-1], n)
        out[s.id] = np.column_stack((np.interp(at, cum, g[:, 0]), np.interp(at, cum, g[:, 1])))
    return out


def load_patrol_history(engine: Any, network: RiverNetwork, n_patrols: int, year_start: datetime, seed: int = 7,
                        valid_share: float = 0.85, points_per_patrol: int = 0) -> dict[str, Any]:
    """Insert ``n_patrols`` finished patrols started in the year from ``year_start`` (and their tracks);
    returns {"patrols": n, "valid": n, "points": n}. The network must be stored already."""
    rng = np.random.default_rng(seed)
    chief_idx = rng.integers(0, len(network.chiefs), n_patrols)
    offsets = rng.uniform(0, 365 * 86400, n_patrols)
    valid = rng.random(n_patrols) < valid_share
    chief_ids = np.array([c.id for c in network.chiefs])[chief_idx]
    segment_ids = np.array([c.segment_ids[0] for c in network.chiefs])[chief_idx]
    started = _utc64(year_start) + (offsets * 1e6).astype("timedelta64[us]")
    return _insert(engine, network, chief_ids, segment_ids, started, valid, points_per_patrol)


def load_recent_patrols(engine: Any, chiefs: Sequence[Chief], frequencies: Mapping[str, Frequency], end: datetime,
                        days: int = 60, tz: tzinfo = ZoneInfo("Asia/Shanghai"), seed: int = 7,
                        valid_share: float = 0.9) -> dict[str, Any]:
    """The last ``days`` of finished patrols before ``end``, as chiefs keep them: each chief patrols each of their
    level's periods about as often as required — most keep up, some fall behind — so a bulletin over the period
    shows a spread of compliance rates (the demo's history). The chiefs and their segments must be stored already;
    patrols get no track."""
    rng = np.random.default_rng(seed)
    start = end - timedelta(days=days)
    chief_ids: list[str] = []
    segment_ids: list[str] = []
    offsets: list[float] = []
    for chief in chiefs:
        freq = frequencies[chief.level.value]
        diligence = float(rng.choice([1.0, 1.0, 1.0, 0.8, 0.5]))  # most keep up, some don't
        # whole periods from before ``start`` to past ``end``, times clipped to the span
        for a, b in full_periods(freq.unit, start - timedelta(days=40), end + timedelta(days=40), tz):
            # now and then one more than required: a patrol that did not count is walked again
            k = int(rng.binomial(freq.count, min(1.0, 0.97 * diligence)) + rng.binomial(1, 0.3 * diligence))
            for t in rng.uniform(a.timestamp(), b.timestamp(), k):
                if start.timestamp() <= t < end.timestamp():
                    chief_ids.append(chief.id)
                    segment_ids.append(chief.segment_ids[int(rng.integers(len(chief.segment_ids)))])
                    offsets.append(t - start.timestamp())
    valid = rng.random(len(offsets)) < valid_share
    started = _utc64(start) + (np.array(offsets) * 1e6).astype("timedelta64[us]")
    return _insert(engine, None, np.array(chief_ids), np.array(segment_ids), started, valid, 0)


def _utc64(ts: datetime) -> np.datetime64:
    return np.datetime64(ts.astimezone(UTC).replace(tzinfo=None), "us")


def _insert(engine: Any, network: RiverNetwork | None, chief_ids: np.ndarray, segment_ids: np.ndarray,
            started: np.ndarray, valid: np.ndarray, points_per_patrol: int) -> dict[str, Any]:
    n_patrols = len(started)
    points = 0
    if not n_patrols:
        return {"patrols": 0, "valid": 0, "points": 0}
    with engine.begin() as conn:
        for ix in pt.patrols.indexes:
            ix.drop(conn)
        sqlite = conn.dialect.name == "sqlite"
        if sqlite:  # straight to the driver, times as SQLAlchemy stores them (UTC text)
            stamps: list[Any] = np.char.replace(np.datetime_as_string(started, unit="us"), "T", " ").tolist()
        else:
            stamps = [ts.replace(tzinfo=UTC) for ts in started.astype(datetime).tolist()]
        rows = [(c, sg, True, ts, "finished", points_per_patrol, 2500.0, 2400.0, 0.9 if v else 0.3, v,
                 None if v else "off_segment: coverage 0.30 < 0.6")
                for c, sg, ts, v in zip(chief_ids.tolist(), segment_ids.tolist(), stamps, valid.tolist())]
        if sqlite:
            conn.exec_driver_sql(f"INSERT INTO patrols ({', '.join(_COLS)}) VALUES ({', '.join('?' * len(_COLS))})",
                                 rows)
        else:
            conn.execute(insert(pt.patrols), [dict(zip(_COLS, r)) for r in rows])
        for ix in pt.patrols.indexes:
            ix.create(conn)
        if points_per_patrol:
            ids = conn.exec_driver_sql("SELECT id FROM patrols ORDER BY id").scalars().all()[-n_patrols:]
            assert network is not None  # tracks are laid along the network's segments
            samples = _segment_samples(network, points_per_patrol)
            start_ms = (started.astype("datetime64[ms]").astype(np.int64))
            step_ms = np.arange(points_per_patrol, dtype=np.int64) * 90_000
            batch: list[tuple] = []
            for pid, seg, t0 in zip(ids, segment_ids.tolist(), start_ms.tolist()):
                lonlat = samples[seg]
                batch.extend(zip([pid] * points_per_patrol, (t0 + step_ms).tolist(), lonlat[:, 1].tolist(),
                                 lonlat[:, 0].tolist(), [8.0] * points_per_patrol))
                if len(batch) >= 200_000:
                    points += _insert_points(conn, batch)
                    batch = []
            points += _insert_points(conn, batch)
    return {"patrols": n_patrols, "valid": int(valid.sum()), "points": points}


def _insert_points(conn: Any, batch: list[tuple]) -> int:
    if not batch:
        return 0
    if conn.dialect.name == "sqlite":
        conn.exec_driver_sql("INSERT INTO patrol_points (patrol_id, ts_ms, lat, lon, accuracy_m) VALUES (?, ?, ?, ?, ?)",
                             batch)
    else:
        conn.execute(insert(pt.patrol_points), [dict(zip(("patrol_id", "ts_ms", "lat", "lon", "accuracy_m"), r))
                                                for r in batch])
    return len(batch)
