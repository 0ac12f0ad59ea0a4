"""Registry access. Every stage goes through this class; no SQL elsewhere."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta, timezone
from typing import Any, Iterable, Sequence

from sqlalchemy import create_engine, event, func, insert, select, update
from sqlalchemy.engine import Engine

from core.domain import OPEN_ALERT_STATES, Alert, AlertState, DeadLetter, DutyShift, Station
from core.datafiles import private_sqlite
from core.dead_letters import DEFAULT_KEEP_BYTES, bounded
from core.registry import tables as t
from core.rules import Rule
from core.sqlite_wal import switch_to_wal
from core.timeutil import utcnow

UTC = timezone.utc
log = logging.getLogger("core.registry")


class AlertNotFound(LookupError):
    pass


class RuleNotFound(LookupError):
    pass


class DuplicateRule(ValueError):
    pass


def _aware(ts: datetime | None) -> datetime | None:
    # SQLite gives naive datetimes back; everything stored is UTC.
    if ts is None:
        return None
    return ts if ts.tzinfo else ts.replace(tzinfo=UTC)


def _normalise_db_url(url: str) -> str:
    if url.startswith("postgresql://"):
        return "postgresql+psycopg://" + url.removeprefix("postgresql://")
    return url


def open_registry(url: str) -> "Registry":
    private_sqlite(url)  # it holds password hashes: 0600 in a 0700 directory
    sqlite = url.startswith("sqlite")
    engine = create_engine(_normalise_db_url(url), pool_pre_ping=True,
                           connect_args={"timeout": 30} if sqlite else {})
    if engine.dialect.name == "sqlite":
        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_conn: Any, _rec: Any) -> None:
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA busy_timeout=30000")
            switch_to_wal(cur)
            cur.execute("PRAGMA foreign_keys=ON")
            cur.close()
    return Registry(engine)


_STATION_COLS = [c.name for c in t.stations.columns]
_ALERT_FIELDS = ("station_id", "kind", "rule", "metric", "severity", "state", "started_at", "updated_at", "value",
                 "threshold", "message", "acknowledged_at", "acknowledged_by", "cleared_at")


_ACK_FIELDS = ("acknowledged_at", "acknowledged_by")


class Registry:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def create_schema(self) -> str | None:
        """Upgrade the registry to the newest schema revision (core/registry/migrations); returns it.

        A fresh database gets every migration; one that metadata.create_all() made before migrations is
        adopted at the baseline first. Safe to call from processes starting together: they take turns.
        """
        from core.registry import migrations

        return migrations.upgrade(self.engine)

    def close(self) -> None:
        self.engine.dispose()

    def ping(self) -> bool:
        try:
            with self.engine.connect() as conn:
                conn.execute(select(1))
            return True
        except Exception:  # noqa: BLE001 - any failure means "not reachable" to a health check
            return False

    # -- stations ---------------------------------------------------------
    def upsert_stations(self, stations: Iterable[Station]) -> int:
        rows = [s.model_dump(mode="json") for s in stations]
        if not rows:
            return 0
        with self.engine.begin() as conn:
            existing = set(conn.scalars(select(t.stations.c.id)))
            new = [r for r in rows if r["id"] not in existing]
            old = [r for r in rows if r["id"] in existing]
            if new:
                conn.execute(insert(t.stations), new)
            for r in old:
                conn.execute(update(t.stations).where(t.stations.c.id == r["id"]).values(**r))
        return len(rows)

    def list_stations(self, kind: str | None = None, town: str | None = None) -> list[Station]:
        q = select(t.stations).order_by(t.stations.c.id)
        if kind:
            q = q.where(t.stations.c.kind == kind)
        if town:
            q = q.where(t.stations.c.town == town)
        with self.engine.connect() as conn:
            return [Station.model_validate(dict(row._mapping)) for row in conn.execute(q)]

    def get_station(self, station_id: str) -> Station | None:
        with self.engine.connect() as conn:
            row = conn.execute(select(t.stations).where(t.stations.c.id == station_id)).first()
        return Station.model_validate(dict(row._mapping)) if row else None

    def count_stations(self) -> dict[str, int]:
        with self.engine.connect() as conn:
            rows = conn.execute(select(t.stations.c.kind, func.count()).group_by(t.stations.c.kind)).all()
        return {k: n for k, n in rows}

    # -- dead letters -----------------------------------------------------
    def add_dead_letters(self, letters: Sequence[DeadLetter], keep_bytes: int = DEFAULT_KEEP_BYTES) -> None:
        """Store dead letters, each cut to ``keep_bytes`` of payload (with its full size and hash)."""
        if not letters:
            return
        letters = [bounded(d, keep_bytes) for d in letters]
        with self.engine.begin() as conn:
            conn.execute(insert(t.dead_letters), [
                {"received_at": d.received_at, "topic": d.topic, "payload": d.payload, "reason": d.reason,
                 "detail": d.detail, "payload_size": d.payload_size, "payload_sha256": d.payload_sha256}
                for d in letters])

    def prune_dead_letters(self, now: datetime, max_count: int, max_age_s: float) -> int:
        """Delete dead letters received before ``now - max_age_s`` and all but the newest ``max_count``; how many."""
        from sqlalchemy import delete

        dl = t.dead_letters
        with self.engine.begin() as conn:
            n = conn.execute(delete(dl).where(dl.c.received_at < now - timedelta(seconds=max_age_s))).rowcount
            cutoff = conn.scalar(select(dl.c.id).order_by(dl.c.id.desc()).offset(max_count).limit(1))
            if cutoff is not None:
                n += conn.execute(delete(dl).where(dl.c.id <= cutoff)).rowcount
        return int(n or 0)

    def list_dead_letters(self, reason: str | None = None, start: datetime | None = None,
                          end: datetime | None = None, limit: int = 100, offset: int = 0) -> list[DeadLetter]:
        q = select(t.dead_letters).order_by(t.dead_letters.c.id.desc()).limit(limit).offset(offset)
        if reason:
            q = q.where(t.dead_letters.c.reason == reason)
        if start:
            q = q.where(t.dead_letters.c.received_at >= start)
        if end:
            q = q.where(t.dead_letters.c.received_at < end)
        with self.engine.connect() as conn:
            return [DeadLetter(topic=r.topic, payload=r.payload, reason=r.reason, detail=r.detail,
                               received_at=_aware(r.received_at), id=r.id, payload_size=r.payload_size,
                               payload_sha256=r.payload_sha256) for r in conn.execute(q)]

    def count_dead_letters(self) -> int:
        with self.engine.connect() as conn:
            return conn.scalar(select(func.count()).select_from(t.dead_letters)) or 0

    # -- alerts -----------------------------------------------------------
    @staticmethod
    def _alert(row: Any) -> Alert:
        m = dict(row._mapping)
        for k in ("started_at", "updated_at", "acknowledged_at", "cleared_at"):
            m[k] = _aware(m[k])
        return Alert(**m)

    def open_alerts(self) -> list[Alert]:
        q = select(t.alerts).where(t.alerts.c.state.in_(OPEN_ALERT_STATES))
        with self.engine.connect() as conn:
            return [self._alert(r) for r in conn.execute(q)]

    def insert_alert(self, alert: Alert, event_name: str = "raised") -> Alert:
        with self.engine.begin() as conn:
            alert.id = conn.execute(insert(t.alerts).values({f: getattr(alert, f) for f in _ALERT_FIELDS})
                                    ).inserted_primary_key[0]
            self._event(conn, alert.id, event_name, alert.severity, alert.started_at, alert.message)
        return alert

    def save_alert(self, alert: Alert, event_name: str, data_time: datetime | None, detail: str = "") -> Alert:
        # The acknowledgement belongs to the people (API), not to the engine's in-memory copy.
        with self.engine.begin() as conn:
            conn.execute(update(t.alerts).where(t.alerts.c.id == alert.id)
                         .values({f: getattr(alert, f) for f in _ALERT_FIELDS if f not in _ACK_FIELDS}))
            self._event(conn, alert.id, event_name, alert.severity, data_time, detail)
        return alert

    def add_alert_event(self, alert_id: int, event_name: str, severity: str | None, data_time: datetime | None,
                        detail: str = "") -> None:
        with self.engine.begin() as conn:
            self._event(conn, alert_id, event_name, severity, data_time, detail)

    @staticmethod
    def _event(conn: Any, alert_id: int, name: str, severity: str | None, data_time: datetime | None,
               detail: str) -> None:
        conn.execute(insert(t.alert_events).values(alert_id=alert_id, event=name, severity=severity,
                                                   data_time=data_time, wall_time=utcnow(), detail=detail))

    def list_alerts(self, state: str | None = None, severity: str | None = None, station_id: str | None = None,
                    limit: int = 100, offset: int = 0) -> list[Alert]:
        q = select(t.alerts).order_by(t.alerts.c.id.desc()).limit(limit).offset(offset)
        if state:
            q = q.where(t.alerts.c.state == state)
        if severity:
            q = q.where(t.alerts.c.severity == severity)
        if station_id:
            q = q.where(t.alerts.c.station_id == station_id)
        with self.engine.connect() as conn:
            return [self._alert(r) for r in conn.execute(q)]

    def get_alert(self, alert_id: int) -> Alert:
        with self.engine.connect() as conn:
            row = conn.execute(select(t.alerts).where(t.alerts.c.id == alert_id)).first()
        if row is None:
            raise AlertNotFound(alert_id)
        return self._alert(row)

    def alert_events(self, alert_id: int) -> list[dict[str, Any]]:
        q = select(t.alert_events).where(t.alert_events.c.alert_id == alert_id).order_by(t.alert_events.c.id)
        with self.engine.connect() as conn:
            out = []
            for r in conn.execute(q):
                m = dict(r._mapping)
                m["data_time"], m["wall_time"] = _aware(m["data_time"]), _aware(m["wall_time"])
                out.append(m)
            return out

    def acknowledge_alert(self, alert_id: int, by: str) -> Alert:
        """Acknowledge an open alert. Acknowledging twice is harmless; a cleared alert stays cleared."""
        with self.engine.begin() as conn:
            row = conn.execute(select(t.alerts).where(t.alerts.c.id == alert_id).with_for_update()).first()
            if row is None:
                raise AlertNotFound(alert_id)
            alert = self._alert(row)
            if alert.acknowledged_at is None:
                now = utcnow()
                values: dict[str, Any] = {"acknowledged_at": now, "acknowledged_by": by}
                if alert.state == AlertState.active.value:
                    values["state"] = AlertState.acknowledged.value
                conn.execute(update(t.alerts).where(t.alerts.c.id == alert_id).values(values))
                self._event(conn, alert_id, "acknowledged", alert.severity, None, f"by {by}")
                for k, v in values.items():
                    setattr(alert, k, v)
        return alert

    def count_alerts_by_severity(self, since_id: int = 0) -> dict[str, int]:
        q = select(t.alerts.c.severity, func.count()).where(t.alerts.c.id > since_id).group_by(t.alerts.c.severity)
        with self.engine.connect() as conn:
            rows = conn.execute(q).all()
        return {k: n for k, n in rows}

    # -- rules ------------------------------------------------------------
    @staticmethod
    def _rule(row: Any) -> Rule:
        return Rule.model_validate({**row.body, "id": row.id})

    def list_rules(self, enabled: bool | None = None) -> list[Rule]:
        """Stored rules; one that no longer validates (after an upgrade) is logged and skipped, not fatal."""
        q = select(t.rules).order_by(t.rules.c.id)
        if enabled is not None:
            q = q.where(t.rules.c.enabled == enabled)
        out = []
        with self.engine.connect() as conn:
            for row in conn.execute(q):
                try:
                    out.append(self._rule(row))
                except ValueError as exc:
                    log.error("stored rule %r (id %s) is invalid and ignored: %s", row.name, row.id, exc)
        return out

    def get_rule(self, rule_id: int) -> Rule:
        with self.engine.connect() as conn:
            row = conn.execute(select(t.rules).where(t.rules.c.id == rule_id)).first()
        if row is None:
            raise RuleNotFound(rule_id)
        return self._rule(row)

    def _rule_values(self, rule: Rule) -> dict[str, Any]:
        return {"name": rule.name, "type": rule.type.value, "station_kind": rule.station_kind.value,
                "enabled": rule.enabled, "body": rule.model_dump(mode="json", exclude={"id"}), "updated_at": utcnow()}

    def create_rule(self, rule: Rule) -> Rule:
        with self.engine.begin() as conn:
            if conn.execute(select(t.rules.c.id).where(t.rules.c.name == rule.name)).first():
                raise DuplicateRule(f"a rule named {rule.name!r} exists")
            rid = conn.execute(insert(t.rules).values(self._rule_values(rule))).inserted_primary_key[0]
        return rule.model_copy(update={"id": rid})

    def update_rule(self, rule_id: int, rule: Rule) -> Rule:
        with self.engine.begin() as conn:
            clash = conn.execute(select(t.rules.c.id).where(t.rules.c.name == rule.name, t.rules.c.id != rule_id)).first()
            if clash:
                raise DuplicateRule(f"a rule named {rule.name!r} exists")
            res = conn.execute(update(t.rules).where(t.rules.c.id == rule_id).values(self._rule_values(rule)))
            if res.rowcount == 0:
                raise RuleNotFound(rule_id)
        return rule.model_copy(update={"id": rule_id})

    def upsert_rules(self, rules: Iterable[Rule]) -> int:
        """Create or replace rules by name (YAML loading), all or nothing; returns how many were written."""
        n = 0
        with self.engine.begin() as conn:
            existing = dict(conn.execute(select(t.rules.c.name, t.rules.c.id)).all())
            for rule in rules:
                if rule.name in existing:
                    conn.execute(update(t.rules).where(t.rules.c.id == existing[rule.name])
                                 .values(self._rule_values(rule)))
                else:
                    conn.execute(insert(t.rules).values(self._rule_values(rule)))
                n += 1
        return n

    def delete_rule(self, rule_id: int) -> None:
        from sqlalchemy import delete

        with self.engine.begin() as conn:
            if conn.execute(delete(t.rules).where(t.rules.c.id == rule_id)).rowcount == 0:
                raise RuleNotFound(rule_id)

    # -- duty roster ------------------------------------------------------
    def add_shift(self, shift: DutyShift) -> DutyShift:
        values = shift.model_dump(exclude={"id"})
        with self.engine.begin() as conn:
            sid = conn.execute(insert(t.duty_roster).values(values)).inserted_primary_key[0]
        return shift.model_copy(update={"id": sid})

    def list_shifts(self, at: datetime | None = None) -> list[DutyShift]:
        q = select(t.duty_roster).order_by(t.duty_roster.c.starts_at, t.duty_roster.c.rank, t.duty_roster.c.id)
        if at is not None:
            q = q.where(t.duty_roster.c.starts_at <= at, t.duty_roster.c.ends_at > at)
        with self.engine.connect() as conn:
            out = []
            for r in conn.execute(q):
                m = dict(r._mapping)
                m["starts_at"], m["ends_at"] = _aware(m["starts_at"]), _aware(m["ends_at"])
                out.append(DutyShift.model_validate(m))
            return out

    def get_shift(self, shift_id: int) -> DutyShift | None:
        with self.engine.connect() as conn:
            row = conn.execute(select(t.duty_roster).where(t.duty_roster.c.id == shift_id)).first()
        if row is None:
            return None
        m = dict(row._mapping)
        m["starts_at"], m["ends_at"] = _aware(m["starts_at"]), _aware(m["ends_at"])
        return DutyShift.model_validate(m)

    def delete_shift(self, shift_id: int) -> bool:
        from sqlalchemy import delete

        with self.engine.begin() as conn:
            return conn.execute(delete(t.duty_roster).where(t.duty_roster.c.id == shift_id)).rowcount > 0

    def on_duty(self, at: datetime, town: str | None, station_kind: str | None) -> list[DutyShift]:
        """Who to notify for an alert, in escalation order: matching shifts, else the fallback shifts."""
        shifts = self.list_shifts(at)
        match = [s for s in shifts if not s.fallback and (s.town in (None, town))
                 and (s.station_kind in (None, station_kind))]
        chosen = match or [s for s in shifts if s.fallback]
        # Specific (town and kind) before general, then by rank.
        return sorted(chosen, key=lambda s: (s.rank, s.town is None, s.station_kind is None, s.id or 0))
