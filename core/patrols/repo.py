"""PatrolRepo: the river-chief registry (rivers, segments, chiefs, patrols, photos, issues) on an Engine.

Every river-chief read and write goes through this class, in the style of core.registry.Registry. Open it on
the registry's engine: ``PatrolRepo(registry.engine, settings)``.

Issue lifecycle (each transition checks the current state; a wrong one raises InvalidTransition, a ValueError):

    report ─▶ found ─assign─▶ assigned ─rectify(photo)─▶ rectified ─review(pass)─▶ closed
                                  ▲                          │
                                  └──── review(fail): reopened += 1, new deadline ◀─┘
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence
from zoneinfo import ZoneInfo

from sqlalchemy import and_, case, delete, func, insert, not_, or_, select, update
from sqlalchemy.engine import Connection, Engine

from core.patrols import tables as t
from core.patrols.compliance import (ComplianceReport, IssueStats, PatrolStarts, build_compliance, counting_start,
                                     frequencies_from_settings, issue_stats)
from core.patrols.models import (AssigneeKind, Chief, Issue, IssueEvent, IssueReport, IssueState, OwnerKind,
                                 Patrol, PatrolStatus, Photo, River, Segment, TrackPoint)
from core.patrols.photos import store_photo
from core.patrols.validity import PatrolRules, evaluate_track
from core.clock import SYSTEM_CLOCK, Clock

UTC = timezone.utc
log = logging.getLogger("core.patrols")


# --------------------------------------------------------------------------- errors

class PatrolError(ValueError):
    """Base of the river-chief domain's rejections (the API maps these to 4xx); ``field``: the input at fault."""

    def __init__(self, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


class NotFound(LookupError):
    """An id that does not exist (the API maps this to 404)."""

    def __init__(self, kind: str, ident: Any) -> None:
        super().__init__(f"{kind} {ident!r} not found")
        self.kind, self.ident = kind, ident


class NotAssigned(PatrolError):
    """The chief is not responsible for that segment."""


class UnknownReference(PatrolError):
    """A chief or segment refers to a river, segment or chief that does not exist."""


class PatrolClosed(PatrolError):
    """The patrol is already finished (finishing it twice)."""


class InvalidTransition(PatrolError):
    """The issue is not in a state that allows this step."""

    def __init__(self, issue_id: int, action: str, state: str, allowed: Sequence[str]) -> None:
        super().__init__(f"issue {issue_id}: cannot {action} in state {state!r} (allowed in {', '.join(allowed)})")
        self.issue_id, self.action, self.state, self.allowed = issue_id, action, state, tuple(allowed)


class OutOfTimeWindow(PatrolError):
    """A patrol time that cannot be true: a start back-dated beyond the grace, a fix outside the patrol, a time in
    the future. Back-filling past periods (docs/river-chiefs.md, "No back-filling") goes through an import."""


class TooManyPoints(PatrolError):
    """A patrol's track would hold more fixes than ``patrol_max_points``."""


class PhotoRequired(PatrolError):
    """Rectification needs a photo of this issue."""


# --------------------------------------------------------------------------- helpers

@dataclass(frozen=True, slots=True)
class PatrolImport:
    """Who records a patrol after the fact, and why (paper records): kept on the patrol for audit."""
    by: str
    reason: str


def _ago(delta: timedelta) -> str:
    hours = delta.total_seconds() / 3600
    return f"{hours:.1f} h" if hours < 72 else f"{hours / 24:.0f} days"


def _aware(ts: datetime | None) -> datetime | None:
    # SQLite gives naive datetimes back; everything stored is UTC.
    if ts is None:
        return None
    return ts if ts.tzinfo else ts.replace(tzinfo=UTC)


def _utc(ts: datetime | None, name: str = "time") -> datetime | None:
    if ts is None:
        return None
    if ts.tzinfo is None:
        raise PatrolError(f"{name} needs a UTC offset")
    return ts.astimezone(UTC)


def _row(row: Any, times: Sequence[str] = ()) -> dict[str, Any]:
    m = dict(row._mapping)
    for k in times:
        if k in m:
            m[k] = _aware(m[k])
    return m


# The history event that records an overdue notification (not a state change: from and to are the same).
OVERDUE_EVENT = "overdue_notified"
_PATROL_TIMES = ("started_at", "finished_at", "recorded_at")
_ISSUE_TIMES = ("found_at", "first_assigned_at", "assigned_at", "first_deadline", "deadline", "rectified_at",
                "reviewed_at", "closed_at")


class PatrolRepo:
    def __init__(self, engine: Engine, settings: Any = None, data_dir: str | Path | None = None,
                 clock: Clock = SYSTEM_CLOCK) -> None:
        if settings is None:
            from core.settings import get_settings

            settings = get_settings()
        self.engine = engine
        self.settings = settings
        self.clock = clock
        self.data_dir = Path(data_dir if data_dir is not None else settings.data_dir)
        self.rules = PatrolRules.from_settings(settings)
        self.frequencies = frequencies_from_settings(settings)
        self.tz = ZoneInfo(settings.display_timezone)

    def create_schema(self) -> None:
        """Only the river-chief tables (tests, tools); normally Registry.create_schema or a migration."""
        t.metadata.create_all(self.engine, tables=[t.rivers, t.river_segments, t.river_chiefs, t.chief_segments,
                                                   t.patrols, t.patrol_points, t.photos, t.issues, t.issue_events])

    # ================================================================== rivers, segments, chiefs
    @staticmethod
    def _upsert(conn: Connection, table: Any, rows: list[dict[str, Any]]) -> None:
        if not rows:
            return
        existing = set(conn.scalars(select(table.c.id).where(table.c.id.in_([r["id"] for r in rows]))))
        new = [r for r in rows if r["id"] not in existing]
        if new:
            conn.execute(insert(table), new)
        for r in rows:
            if r["id"] in existing:
                conn.execute(update(table).where(table.c.id == r["id"]).values(**r))

    def upsert_rivers(self, rivers: Iterable[River]) -> int:
        rows = [{"id": r.id, "name": r.name, "geometry": r.geometry, "length_m": round(r.length_m, 1)}
                for r in rivers]
        with self.engine.begin() as conn:
            for i in range(0, len(rows), 500):
                self._upsert(conn, t.rivers, rows[i:i + 500])
        return len(rows)

    def upsert_segments(self, segments: Iterable[Segment]) -> int:
        rows = [s.model_dump(mode="json") for s in segments]
        if not rows:
            return 0
        with self.engine.begin() as conn:
            rivers = set(conn.scalars(select(t.rivers.c.id)))
            for r in rows:
                if r["river_id"] not in rivers:
                    raise UnknownReference(f"segment {r['id']!r}: unknown river {r['river_id']!r}")
            for i in range(0, len(rows), 500):
                self._upsert(conn, t.river_segments, rows[i:i + 500])
        return len(rows)

    def upsert_chiefs(self, chiefs: Iterable[Chief]) -> int:
        """Create or replace chiefs with their segment assignments (all or nothing)."""
        chiefs = list(chiefs)
        if not chiefs:
            return 0
        with self.engine.begin() as conn:
            segments = set(conn.scalars(select(t.river_segments.c.id)))
            for c in chiefs:
                missing = [s for s in c.segment_ids if s not in segments]
                if missing:
                    raise UnknownReference(f"chief {c.id!r}: unknown segment(s) {missing[:5]}")
            rows = [c.model_dump(mode="json", exclude={"segment_ids"}) for c in chiefs]
            for i in range(0, len(rows), 500):
                self._upsert(conn, t.river_chiefs, rows[i:i + 500])
                ids = [r["id"] for r in rows[i:i + 500]]
                conn.execute(delete(t.chief_segments).where(t.chief_segments.c.chief_id.in_(ids)))
            links = [{"chief_id": c.id, "segment_id": s, "position": k}
                     for c in chiefs for k, s in enumerate(c.segment_ids)]
            for i in range(0, len(links), 5000):
                conn.execute(insert(t.chief_segments), links[i:i + 5000])
        return len(chiefs)

    def list_rivers(self) -> list[River]:
        with self.engine.connect() as conn:
            return [River(id=r.id, name=r.name, geometry=r.geometry)
                    for r in conn.execute(select(t.rivers).order_by(t.rivers.c.id))]

    def get_river(self, river_id: str) -> River:
        with self.engine.connect() as conn:
            r = conn.execute(select(t.rivers).where(t.rivers.c.id == river_id)).first()
        if r is None:
            raise NotFound("river", river_id)
        return River(id=r.id, name=r.name, geometry=r.geometry)

    def list_segments(self, river_id: str | None = None, town: str | None = None,
                      chief_id: str | None = None) -> list[Segment]:
        q = select(t.river_segments).order_by(t.river_segments.c.id)
        if river_id:
            q = q.where(t.river_segments.c.river_id == river_id)
        if town:
            q = q.where(t.river_segments.c.town == town)
        if chief_id:
            q = q.join(t.chief_segments, t.chief_segments.c.segment_id == t.river_segments.c.id).where(
                t.chief_segments.c.chief_id == chief_id)
        with self.engine.connect() as conn:
            return [Segment.model_validate(dict(r._mapping)) for r in conn.execute(q)]

    def get_segment(self, segment_id: str) -> Segment:
        with self.engine.connect() as conn:
            r = conn.execute(select(t.river_segments).where(t.river_segments.c.id == segment_id)).first()
        if r is None:
            raise NotFound("segment", segment_id)
        return Segment.model_validate(dict(r._mapping))

    def _segment_ids(self, conn: Connection, chief_ids: Sequence[str]) -> dict[str, list[str]]:
        out: dict[str, list[str]] = {c: [] for c in chief_ids}
        q = (select(t.chief_segments.c.chief_id, t.chief_segments.c.segment_id)
             .order_by(t.chief_segments.c.chief_id, t.chief_segments.c.position))
        if len(chief_ids) <= 500:
            q = q.where(t.chief_segments.c.chief_id.in_(chief_ids))
        for cid, sid in conn.execute(q):
            if cid in out:
                out[cid].append(sid)
        return out

    def list_chiefs(self, level: str | None = None, town: str | None = None) -> list[Chief]:
        q = select(t.river_chiefs).order_by(t.river_chiefs.c.id)
        if level:
            q = q.where(t.river_chiefs.c.level == level)
        if town:
            q = q.where(t.river_chiefs.c.town == town)
        with self.engine.connect() as conn:
            rows = [dict(r._mapping) for r in conn.execute(q)]
            segs = self._segment_ids(conn, [r["id"] for r in rows])
        return [Chief.model_validate({**r, "segment_ids": segs[r["id"]]}) for r in rows]

    def get_chief(self, chief_id: str) -> Chief:
        with self.engine.connect() as conn:
            r = conn.execute(select(t.river_chiefs).where(t.river_chiefs.c.id == chief_id)).first()
            if r is None:
                raise NotFound("chief", chief_id)
            segs = self._segment_ids(conn, [chief_id])[chief_id]
        return Chief.model_validate({**dict(r._mapping), "segment_ids": segs})

    def counts(self) -> dict[str, int]:
        with self.engine.connect() as conn:
            return {name: conn.scalar(select(func.count()).select_from(tab)) or 0 for name, tab in
                    (("rivers", t.rivers), ("segments", t.river_segments), ("chiefs", t.river_chiefs),
                     ("patrols", t.patrols), ("issues", t.issues), ("photos", t.photos))}

    # ================================================================== patrols
    def _patrol(self, row: Any, points: list[TrackPoint] | None = None) -> Patrol:
        m = _row(row, _PATROL_TIMES)
        return Patrol.model_validate({**m, "points": points or []})

    def start_patrol(self, chief_id: str, segment_id: str, started_at: datetime | None = None,
                     self_started: bool = True, imported: PatrolImport | None = None) -> Patrol:
        """Open a patrol of ``chief_id`` on one of their segments, recorded now (the clock).

        ``started_at`` may lie at most ``patrol_backdate_grace_h`` before now (a phone offline for a day or two)
        and not in the future beyond the clock tolerance; an older start is an ``imported`` record (paper
        records, an admin), which keeps who imported it and why."""
        now = self.clock.now()
        started_at = _utc(started_at, "started_at") or now
        tol = timedelta(seconds=self.settings.patrol_clock_tolerance_s)
        if started_at > now + tol:
            raise OutOfTimeWindow(f"started_at {started_at.isoformat()} is in the future (now {now.isoformat()})",
                                  "started_at")
        grace = timedelta(hours=self.settings.patrol_backdate_grace_h)
        if imported is None and started_at < now - grace:
            raise OutOfTimeWindow(
                f"started_at {started_at.isoformat()} is {_ago(now - started_at)} before now ({now.isoformat()}); "
                f"a patrol may start at most {self.settings.patrol_backdate_grace_h:g} h before it is recorded. "
                "Older records (paper patrol logs) are imported by an admin: POST /api/v1/patrols/import",
                "started_at")
        with self.engine.begin() as conn:
            if conn.scalar(select(t.river_chiefs.c.id).where(t.river_chiefs.c.id == chief_id)) is None:
                raise NotFound("chief", chief_id)
            if conn.scalar(select(t.river_segments.c.id).where(t.river_segments.c.id == segment_id)) is None:
                raise NotFound("segment", segment_id)
            link = conn.scalar(select(t.chief_segments.c.chief_id).where(
                t.chief_segments.c.chief_id == chief_id, t.chief_segments.c.segment_id == segment_id))
            if link is None:
                raise NotAssigned(f"chief {chief_id!r} is not responsible for segment {segment_id!r}")
            record = {"recorded_at": now, "source": "import" if imported else "app",
                      "recorded_by": imported.by if imported else None,
                      "import_reason": imported.reason if imported else None}
            pid = conn.execute(insert(t.patrols).values(
                chief_id=chief_id, segment_id=segment_id, self_started=self_started, started_at=started_at,
                status=PatrolStatus.open.value, point_count=0, **record)).inserted_primary_key[0]
        if imported:
            log.info("patrol %s of chief %s imported by %s (started %s): %s", pid, chief_id, imported.by,
                     started_at.isoformat(), imported.reason)
        return Patrol(id=pid, chief_id=chief_id, segment_id=segment_id, self_started=self_started,
                      started_at=started_at, **record)

    def _insert_points(self, conn: Connection, patrol_id: int, rows: list[dict[str, Any]]) -> int:
        """Insert points not stored yet; the (patrol_id, ts_ms) key makes a retried batch harmless."""
        dialect = conn.dialect.name
        n = 0
        for i in range(0, len(rows), 2000):
            chunk = rows[i:i + 2000]
            if dialect in ("sqlite", "postgresql"):
                if dialect == "sqlite":
                    from sqlalchemy.dialects.sqlite import insert as dialect_insert
                else:
                    from sqlalchemy.dialects.postgresql import insert as dialect_insert
                # Small statements: SQLite caps bound parameters per statement. RETURNING gives the rows actually
                # inserted (rowcount is -1 for this statement under psycopg).
                for j in range(0, len(chunk), 150):
                    res = conn.execute(dialect_insert(t.patrol_points).values(chunk[j:j + 150])
                                       .on_conflict_do_nothing(index_elements=["patrol_id", "ts_ms"])
                                       .returning(t.patrol_points.c.ts_ms))
                    n += len(res.all())
            else:
                have = set(conn.scalars(select(t.patrol_points.c.ts_ms).where(
                    t.patrol_points.c.patrol_id == patrol_id,
                    t.patrol_points.c.ts_ms.in_([r["ts_ms"] for r in chunk]))))
                new = [r for r in chunk if r["ts_ms"] not in have]
                if new:
                    conn.execute(insert(t.patrol_points), new)
                n += len(new)
        return n

    def add_points(self, patrol_id: int, points: Iterable[TrackPoint | Mapping[str, Any]]) -> int:
        """Store GPS fixes; returns how many were new. Idempotent by (patrol, ts): phones upload late and twice.

        Points may arrive after the patrol was finished (the last batch of a phone that was offline): they are
        stored and the patrol's figures and validity are computed again.
        """
        pts = [p if isinstance(p, TrackPoint) else TrackPoint.model_validate(p) for p in points]
        # One row per timestamp inside the batch too (the first wins), as the key will insist.
        by_ms: dict[int, dict[str, Any]] = {}
        for p in pts:
            ms = int(round(p.ts.timestamp() * 1000))
            by_ms.setdefault(ms, {"patrol_id": patrol_id, "ts_ms": ms, "lat": p.lat, "lon": p.lon,
                                  "accuracy_m": p.accuracy_m})
        with self.engine.begin() as conn:
            row = conn.execute(select(t.patrols.c.status, t.patrols.c.started_at, t.patrols.c.finished_at,
                                      t.patrols.c.point_count)
                               .where(t.patrols.c.id == patrol_id).with_for_update()).first()
            if row is None:
                raise NotFound("patrol", patrol_id)
            status = row.status
            if not by_ms:
                return 0
            self._check_fix_times(patrol_id, list(by_ms), _aware(row.started_at), _aware(row.finished_at))
            n = self._insert_points(conn, patrol_id, list(by_ms.values()))
            limit = self.settings.patrol_max_points
            if row.point_count + n > limit:  # raising here rolls the insert back: fixes already stored don't count
                raise TooManyPoints(f"patrol {patrol_id} holds {row.point_count} fixes; {n} more would exceed the "
                                    f"limit of {limit} fixes per patrol (patrol_max_points); nothing was stored",
                                    "points")
            if n:
                conn.execute(update(t.patrols).where(t.patrols.c.id == patrol_id)
                             .values(point_count=t.patrols.c.point_count + n))
            refinish = n > 0 and status == PatrolStatus.finished.value
        if refinish:
            self._evaluate(patrol_id, finish_at=None)
        return n

    def _check_fix_times(self, patrol_id: int, ts_ms: list[int], started_at: datetime | None,
                         finished_at: datetime | None) -> None:
        """Every fix lies within its patrol: from its start to its finish (now, while open), give or take the
        clock tolerance; else the whole batch is refused, naming the first fixes out of place."""
        assert started_at is not None
        tol = timedelta(seconds=self.settings.patrol_clock_tolerance_s)
        lo = (started_at - tol).timestamp() * 1000
        end = finished_at or self.clock.now()
        hi = (end + tol).timestamp() * 1000
        bad = sorted(ms for ms in ts_ms if not lo <= ms <= hi)
        if bad:
            shown = ", ".join(datetime.fromtimestamp(ms / 1000, UTC).isoformat() for ms in bad[:3])
            more = f" and {len(bad) - 3} more" if len(bad) > 3 else ""
            until = "its finish" if finished_at else "now"
            raise OutOfTimeWindow(
                f"{len(bad)} fix(es) lie outside patrol {patrol_id} ({started_at.isoformat()} to {until} "
                f"{end.isoformat()}, ± {tol.total_seconds():g} s): {shown}{more}; nothing of this batch was stored",
                "points")

    def points(self, patrol_id: int) -> list[TrackPoint]:
        """Stored fixes in time order."""
        q = select(t.patrol_points).where(t.patrol_points.c.patrol_id == patrol_id).order_by(t.patrol_points.c.ts_ms)
        with self.engine.connect() as conn:
            return [TrackPoint(ts=datetime.fromtimestamp(r.ts_ms / 1000, UTC), lat=r.lat, lon=r.lon,
                               accuracy_m=r.accuracy_m) for r in conn.execute(q)]

    def finish_patrol(self, patrol_id: int, finished_at: datetime | None = None) -> Patrol:
        """Close a patrol: compute distance, duration, coverage and validity from its track and store them."""
        return self._evaluate(patrol_id, finish_at=_utc(finished_at, "finished_at") or self.clock.now())

    def _evaluate(self, patrol_id: int, finish_at: datetime | None) -> Patrol:
        with self.engine.begin() as conn:
            row = conn.execute(select(t.patrols).where(t.patrols.c.id == patrol_id).with_for_update()).first()
            if row is None:
                raise NotFound("patrol", patrol_id)
            p = _row(row, _PATROL_TIMES)
            if finish_at is not None:
                if p["status"] == PatrolStatus.finished.value:
                    raise PatrolClosed(f"patrol {patrol_id} is already finished")
                if finish_at < p["started_at"]:
                    raise PatrolError(f"patrol {patrol_id}: finished_at before started_at")
                if finish_at > self.clock.now() + timedelta(seconds=self.settings.patrol_clock_tolerance_s):
                    raise OutOfTimeWindow(f"patrol {patrol_id}: finished_at {finish_at.isoformat()} is in the future",
                                          "finished_at")
                last = conn.scalar(select(func.max(t.patrol_points.c.ts_ms))
                                   .where(t.patrol_points.c.patrol_id == patrol_id))
                tol_ms = self.settings.patrol_clock_tolerance_s * 1000
                if last is not None and last > finish_at.timestamp() * 1000 + tol_ms:
                    raise OutOfTimeWindow(
                        f"patrol {patrol_id}: finished_at {finish_at.isoformat()} is before its last GPS fix "
                        f"{datetime.fromtimestamp(last / 1000, UTC).isoformat()}", "finished_at")
                p["finished_at"] = finish_at
            seg = conn.execute(select(t.river_segments.c.geometry)
                               .where(t.river_segments.c.id == p["segment_id"])).scalar_one()
            pts = [{"ts": r.ts_ms / 1000, "lat": r.lat, "lon": r.lon, "accuracy_m": r.accuracy_m}
                   for r in conn.execute(select(t.patrol_points).where(t.patrol_points.c.patrol_id == patrol_id))]
            previous = None
            if p["self_started"] and self.rules.min_gap_h > 0:
                previous = _aware(conn.scalar(
                    select(func.max(t.patrols.c.started_at)).where(
                        t.patrols.c.chief_id == p["chief_id"], t.patrols.c.id != patrol_id,
                        t.patrols.c.self_started.is_(True), t.patrols.c.valid.is_(True),
                        t.patrols.c.started_at <= p["started_at"])))
            check = evaluate_track(pts, seg, self.rules, started_at=p["started_at"], finished_at=p["finished_at"],
                                   self_started=p["self_started"], previous_start=previous)
            values = {"status": PatrolStatus.finished.value, "finished_at": p["finished_at"],
                      "distance_m": check.distance_m, "duration_s": check.duration_s, "coverage": check.coverage,
                      "valid": check.valid, "invalid_reason": check.invalid_reason}
            conn.execute(update(t.patrols).where(t.patrols.c.id == patrol_id).values(values))
            p.update(values)
        return Patrol.model_validate(p)

    def get_patrol(self, patrol_id: int, with_points: bool = True) -> Patrol:
        with self.engine.connect() as conn:
            row = conn.execute(select(t.patrols).where(t.patrols.c.id == patrol_id)).first()
        if row is None:
            raise NotFound("patrol", patrol_id)
        return self._patrol(row, self.points(patrol_id) if with_points else None)

    def list_patrols(self, chief_id: str | None = None, start: datetime | None = None, end: datetime | None = None,
                     segment_id: str | None = None, status: str | None = None, valid: bool | None = None,
                     town: str | None = None, limit: int = 100, offset: int = 0) -> list[Patrol]:
        """Patrols (without points) started in ``[start, end)``, newest first."""
        q = select(t.patrols).order_by(t.patrols.c.started_at.desc(), t.patrols.c.id.desc()).limit(limit).offset(offset)
        if chief_id:
            q = q.where(t.patrols.c.chief_id == chief_id)
        if segment_id:
            q = q.where(t.patrols.c.segment_id == segment_id)
        if start:
            q = q.where(t.patrols.c.started_at >= _utc(start))
        if end:
            q = q.where(t.patrols.c.started_at < _utc(end))
        if status:
            q = q.where(t.patrols.c.status == status)
        if valid is not None:
            q = q.where(t.patrols.c.valid.is_(valid))
        if town:
            q = q.join(t.river_segments, t.river_segments.c.id == t.patrols.c.segment_id).where(
                t.river_segments.c.town == town)
        with self.engine.connect() as conn:
            return [self._patrol(r) for r in conn.execute(q)]

    # ================================================================== photos
    def _owner_exists(self, conn: Connection, owner_kind: OwnerKind, owner_id: int) -> bool:
        table = t.patrols if owner_kind == OwnerKind.patrol else t.issues
        return conn.scalar(select(table.c.id).where(table.c.id == owner_id)) is not None

    def add_photo(self, owner_kind: OwnerKind | str, owner_id: int, data: bytes, content_type: str | None = None,
                  uploaded_at: datetime | None = None, uploaded_by: str | None = None) -> Photo:
        """Check (PhotoRejected) and store a photo of a patrol or an issue. The file is kept once per content;
        the same bytes for the same owner return the existing photo."""
        owner_kind = OwnerKind(owner_kind)
        with self.engine.connect() as conn:
            if not self._owner_exists(conn, owner_kind, owner_id):
                raise NotFound(owner_kind.value, owner_id)
        stored = store_photo(self.data_dir, data, content_type, self.settings.photo_max_bytes)
        with self.engine.begin() as conn:
            row = conn.execute(select(t.photos).where(
                t.photos.c.owner_kind == owner_kind.value, t.photos.c.owner_id == owner_id,
                t.photos.c.sha256 == stored.sha256)).first()
            if row is None:
                values = {"owner_kind": owner_kind.value, "owner_id": owner_id, "path": stored.path,
                          "content_type": stored.content_type, "size": stored.size, "sha256": stored.sha256,
                          "uploaded_at": _utc(uploaded_at, "uploaded_at") or self.clock.now(), "uploaded_by": uploaded_by}
                pid = conn.execute(insert(t.photos).values(values)).inserted_primary_key[0]
                return Photo(id=pid, **values)
        return Photo.model_validate(_row(row, ("uploaded_at",)))

    def get_photo(self, photo_id: int) -> Photo:
        with self.engine.connect() as conn:
            row = conn.execute(select(t.photos).where(t.photos.c.id == photo_id)).first()
        if row is None:
            raise NotFound("photo", photo_id)
        return Photo.model_validate(_row(row, ("uploaded_at",)))

    def list_photos(self, owner_kind: OwnerKind | str, owner_id: int) -> list[Photo]:
        q = (select(t.photos).where(t.photos.c.owner_kind == OwnerKind(owner_kind).value,
                                    t.photos.c.owner_id == owner_id).order_by(t.photos.c.id))
        with self.engine.connect() as conn:
            return [Photo.model_validate(_row(r, ("uploaded_at",))) for r in conn.execute(q)]

    def photo_file(self, photo: Photo) -> Path:
        """The photo's file on disk (serve it with its stored content_type)."""
        return self.data_dir / photo.path

    # ================================================================== issues
    def deadline_for(self, assignee_kind: AssigneeKind | str, at: datetime) -> datetime:
        days = getattr(self.settings, f"issue_deadline_days_{AssigneeKind(assignee_kind).value}")
        return at + timedelta(days=days)

    @staticmethod
    def _add_event(conn: Connection, issue_id: int, event: str, at: datetime, by: str | None,
                   from_state: str | None, to_state: str, detail: str = "", data: dict[str, Any] | None = None) -> None:
        conn.execute(insert(t.issue_events).values(issue_id=issue_id, event=event, at=at, by=by,
                                                   from_state=from_state, to_state=to_state, detail=detail or "",
                                                   data=data or {}))

    def report_issue(self, report: IssueReport, found_by: str, by: str | None = None) -> Issue:
        """A chief reports an issue (state ``found``)."""
        found_at = report.found_at or self.clock.now()
        with self.engine.begin() as conn:
            chief = conn.execute(select(t.river_chiefs.c.id, t.river_chiefs.c.town)
                                 .where(t.river_chiefs.c.id == found_by)).first()
            if chief is None:
                raise NotFound("chief", found_by)
            town = chief.town
            if report.segment_id is not None:
                town_of_segment = conn.scalar(select(t.river_segments.c.town)
                                              .where(t.river_segments.c.id == report.segment_id))
                if town_of_segment is None:
                    raise NotFound("segment", report.segment_id)
                town = town_of_segment
            if report.patrol_id is not None and conn.scalar(
                    select(t.patrols.c.id).where(t.patrols.c.id == report.patrol_id)) is None:
                raise NotFound("patrol", report.patrol_id)
            values = {"category": report.category.value, "description": report.description, "lat": report.lat,
                      "lon": report.lon, "segment_id": report.segment_id, "town": town,
                      "patrol_id": report.patrol_id, "found_by": found_by, "found_at": found_at,
                      "state": IssueState.found.value, "reopened": 0}
            iid = conn.execute(insert(t.issues).values(values)).inserted_primary_key[0]
            self._add_event(conn, iid, "found", found_at, by or found_by, None, IssueState.found.value,
                            report.description[:200])
        return self.get_issue(iid)

    def _transition(self, issue_id: int, action: str, allowed: Sequence[IssueState], at: datetime | None,
                    make: Any) -> Issue:
        """Lock the issue, check its state, apply ``make(issue_row, at) -> (values, event, detail, data)``.

        The UPDATE also filters on the state read, so a concurrent transition on a database without row locks
        (SQLite) cannot slip in between: a lost race raises InvalidTransition instead of overwriting.
        """
        at = _utc(at, "time") or self.clock.now()
        with self.engine.begin() as conn:
            row = conn.execute(select(t.issues).where(t.issues.c.id == issue_id).with_for_update()).first()
            if row is None:
                raise NotFound("issue", issue_id)
            cur = _row(row, _ISSUE_TIMES)
            if cur["state"] not in {s.value for s in allowed}:
                raise InvalidTransition(issue_id, action, cur["state"], [s.value for s in allowed])
            if at < cur["found_at"]:
                raise PatrolError(f"issue {issue_id}: {action} at {at.isoformat()} is before it was found")
            values, event, by, detail, data = make(conn, cur, at)
            res = conn.execute(update(t.issues).where(t.issues.c.id == issue_id, t.issues.c.state == cur["state"])
                               .values(values))
            if res.rowcount != 1:
                raise InvalidTransition(issue_id, action, "changed concurrently", [s.value for s in allowed])
            self._add_event(conn, issue_id, event, at, by, cur["state"], values["state"], detail, data)
        return self.get_issue(issue_id)

    def assign_issue(self, issue_id: int, assignee_kind: AssigneeKind | str, assignee: str,
                     at: datetime | None = None, by: str | None = None, deadline: datetime | None = None) -> Issue:
        """found → assigned, to a village, town or department, with the default deadline for that kind
        (issue_deadline_days_*) unless one is given."""
        kind = AssigneeKind(assignee_kind)
        assignee = (assignee or "").strip()
        if not assignee:
            raise PatrolError("assignee must not be empty")
        deadline = _utc(deadline, "deadline")

        def make(conn: Connection, cur: dict[str, Any], at: datetime):
            dl = deadline or self.deadline_for(kind, at)
            if dl <= at:
                raise PatrolError(f"issue {issue_id}: deadline must be after the assignment")
            values = {"state": IssueState.assigned.value, "assignee_kind": kind.value, "assignee": assignee,
                      "assigned_at": at, "deadline": dl,
                      "first_assigned_at": cur["first_assigned_at"] or at,
                      "first_deadline": cur["first_deadline"] or dl}
            return values, "assigned", by, f"to {kind.value} {assignee}", {"deadline": dl.isoformat()}

        return self._transition(issue_id, "assign", (IssueState.found,), at, make)

    def rectify_issue(self, issue_id: int, photo_id: int, at: datetime | None = None, by: str | None = None,
                      note: str = "") -> Issue:
        """assigned → rectified; needs a photo uploaded for this issue (add_photo("issue", issue_id, …))."""

        def make(conn: Connection, cur: dict[str, Any], at: datetime):
            photo = conn.execute(select(t.photos.c.owner_kind, t.photos.c.owner_id)
                                 .where(t.photos.c.id == photo_id)).first()
            if photo is None or photo.owner_kind != OwnerKind.issue.value or photo.owner_id != issue_id:
                raise PhotoRequired(f"issue {issue_id}: rectification needs a photo of this issue "
                                    f"(photo {photo_id} is {'unknown' if photo is None else 'of another object'})")
            values = {"state": IssueState.rectified.value, "rectified_at": at, "rectify_photo_id": photo_id}
            return values, "rectified", by, note, {"photo_id": photo_id}

        return self._transition(issue_id, "rectify", (IssueState.assigned,), at, make)

    def review_issue(self, issue_id: int, passed: bool, at: datetime | None = None, by: str | None = None,
                     note: str = "") -> Issue:
        """rectified → closed when the review passes; → assigned again (reopened + 1, a new deadline for the
        same assignee from the review time) when it fails."""

        def make(conn: Connection, cur: dict[str, Any], at: datetime):
            base = {"reviewed_at": at, "review_passed": passed}
            if passed:
                return ({**base, "state": IssueState.closed.value, "closed_at": at}, "review_passed", by, note, {})
            dl = self.deadline_for(cur["assignee_kind"], at)
            values = {**base, "state": IssueState.assigned.value, "reopened": cur["reopened"] + 1,
                      "assigned_at": at, "deadline": dl, "rectified_at": None, "rectify_photo_id": None}
            return values, "review_failed", by, note, {"deadline": dl.isoformat(), "reopened": cur["reopened"] + 1}

        return self._transition(issue_id, "review", (IssueState.rectified,), at, make)

    def get_issue(self, issue_id: int, with_history: bool = True) -> Issue:
        with self.engine.connect() as conn:
            row = conn.execute(select(t.issues).where(t.issues.c.id == issue_id)).first()
            if row is None:
                raise NotFound("issue", issue_id)
            history = []
            if with_history:
                q = select(t.issue_events).where(t.issue_events.c.issue_id == issue_id).order_by(t.issue_events.c.id)
                history = [IssueEvent.model_validate({**_row(e, ("at",)), "data": e.data or {}})
                           for e in conn.execute(q)]
        return Issue.model_validate({**_row(row, _ISSUE_TIMES), "history": history})

    def list_issues(self, state: str | None = None, town: str | None = None, category: str | None = None,
                    found_by: str | None = None, assignee: str | None = None, start: datetime | None = None,
                    end: datetime | None = None, limit: int = 100, offset: int = 0, involving: str | None = None,
                    overdue: bool | None = None, at: datetime | None = None) -> list[Issue]:
        """Issues (without history) found in ``[start, end)``, newest first.

        ``involving``: only issues that chief found or that are assigned to them (``assignee`` is their id).
        ``overdue``: only issues past their deadline at ``at`` (default now), or only those that are not.
        """
        i = t.issues.c
        q = select(t.issues).order_by(i.found_at.desc(), i.id.desc()).limit(limit).offset(offset)
        for col, v in ((i.state, state), (i.town, town), (i.category, category), (i.found_by, found_by),
                       (i.assignee, assignee)):
            if v:
                q = q.where(col == v)
        if involving is not None:
            q = q.where(or_(i.found_by == involving, i.assignee == involving))
        if overdue is not None:
            late = and_(i.state == IssueState.assigned.value, i.deadline < (_utc(at, "at") or self.clock.now()))
            q = q.where(late if overdue else not_(late))
        if start:
            q = q.where(i.found_at >= _utc(start))
        if end:
            q = q.where(i.found_at < _utc(end))
        with self.engine.connect() as conn:
            return [Issue.model_validate(_row(r, _ISSUE_TIMES)) for r in conn.execute(q)]

    def overdue_issues(self, at: datetime | None = None, town: str | None = None) -> list[Issue]:
        """Issues still with their assignee (state ``assigned``) whose deadline has passed at ``at``.

        A rectified issue waiting for review is not overdue: the assignee has done their part.
        """
        at = _utc(at, "at") or self.clock.now()
        q = (select(t.issues).where(t.issues.c.state == IssueState.assigned.value, t.issues.c.deadline < at)
             .order_by(t.issues.c.deadline, t.issues.c.id))
        if town:
            q = q.where(t.issues.c.town == town)
        with self.engine.connect() as conn:
            return [Issue.model_validate(_row(r, _ISSUE_TIMES)) for r in conn.execute(q)]

    def overdue_to_notify(self, at: datetime | None = None) -> list[Issue]:
        """Overdue issues not yet notified for the deadline now in force (a failed review sets a new deadline,
        and missing that one is news again)."""
        late = self.overdue_issues(at)
        if not late:
            return []
        done: set[tuple[int, str]] = set()
        q = select(t.issue_events.c.issue_id, t.issue_events.c.data).where(
            t.issue_events.c.event == OVERDUE_EVENT, t.issue_events.c.issue_id.in_([x.id for x in late]))
        with self.engine.connect() as conn:
            for iid, data in conn.execute(q):
                done.add((iid, (data or {}).get("deadline", "")))
        return [x for x in late if (x.id, x.deadline.isoformat()) not in done]

    def record_overdue_notified(self, issue: Issue, at: datetime | None = None, by: str | None = None) -> None:
        """Note on the issue's history that its missed deadline was notified (so it is notified once)."""
        at = _utc(at, "at") or self.clock.now()
        with self.engine.begin() as conn:
            self._add_event(conn, issue.id, OVERDUE_EVENT, at, by, issue.state.value, issue.state.value,
                            f"deadline {issue.deadline.isoformat()} missed",
                            {"deadline": issue.deadline.isoformat(), "assignee": issue.assignee})

    # ================================================================== compliance and statistics
    def patrol_starts(self, start: datetime, end: datetime, town: str | None = None) -> PatrolStarts:
        """Finished patrols started in ``[start, end)``: chief id, start, valid (one indexed range scan).
        ``town``: only that town's chiefs."""
        p = t.patrols.c
        q = (select(p.chief_id, p.started_at, p.valid)
             .where(p.started_at >= _utc(start), p.started_at < _utc(end), p.status == PatrolStatus.finished.value))
        if town is not None:
            q = q.where(p.chief_id.in_(select(t.river_chiefs.c.id).where(t.river_chiefs.c.town == town)))
        with self.engine.connect() as conn:
            return PatrolStarts.of((cid, _aware(ts), bool(v)) for cid, ts, v in conn.execute(q))

    def compliance(self, start: datetime, end: datetime, town: str | None = None,
                   as_of: datetime | None = None) -> ComplianceReport:
        """Per-chief due periods, met or not, and the roll-ups by town and level (see core.patrols.compliance),
        as of ``as_of`` (default: the clock's now). ``town``: only that town's chiefs (a supervisor's view)."""
        start, end = _utc(start, "start"), _utc(end, "end")
        if end <= start:
            raise PatrolError("end must be after start")
        c = t.river_chiefs.c
        q = select(c.id, c.name, c.level, c.town, c.village).order_by(c.id)
        if town is not None:
            q = q.where(c.town == town)
        with self.engine.connect() as conn:
            chiefs = conn.execute(q).all()
        since = counting_start(start, end, self.tz, self.frequencies)
        return build_compliance(chiefs, self.patrol_starts(since, end, town), start, end, self.tz, self.frequencies,
                                as_of=_utc(as_of, "as_of") or self.clock.now())

    def issue_stats(self, start: datetime, end: datetime, as_of: datetime | None = None, town: str | None = None
                    ) -> tuple[IssueStats, list[IssueStats]]:
        """Response, on-time and resolution rates of the issues found in ``[start, end)`` as of ``as_of``
        (default now): the whole district (or ``town``) and per town."""
        start, end = _utc(start, "start"), _utc(end, "end")
        i = t.issues.c
        q = (select(i.town, i.found_at, i.first_assigned_at, i.closed_at, i.first_deadline)
             .where(i.found_at >= start, i.found_at < end).order_by(i.town))
        if town is not None:
            q = q.where(i.town == town)
        with self.engine.connect() as conn:
            rows = conn.execute(q).all()
        cols = list(zip(*[(r.town, _aware(r.found_at), _aware(r.first_assigned_at), _aware(r.closed_at),
                           _aware(r.first_deadline)) for r in rows])) or [(), (), (), (), ()]
        as_of = _utc(as_of, "as_of") or self.clock.now()
        h = self.settings.issue_response_h
        total = issue_stats(cols[1], cols[2], cols[3], cols[4], h, as_of)
        towns: dict[str | None, list[int]] = {}
        for k, town in enumerate(cols[0]):
            towns.setdefault(town, []).append(k)
        per_town = [issue_stats([cols[1][k] for k in ks], [cols[2][k] for k in ks], [cols[3][k] for k in ks],
                                [cols[4][k] for k in ks], h, as_of, key=town) for town, ks in towns.items()]
        return total, per_town
