"""The Registry end to end on SQLite and PostgreSQL (conftest: registry_url / db_registry), and `smartwater init`
against PostgreSQL. PostgreSQL: SMARTWATER_TEST_PG_URL, default the local server; skipped when unreachable
(failed with SMARTWATER_REQUIRE_POSTGRES=1)."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.exc import IntegrityError

from core.dead_letters import DEFAULT_KEEP_BYTES
from core.domain import Alert, AlertState, DeadLetter, DutyShift, FloodLimitPeriod
from core.registry import AlertNotFound, DuplicateRule, RuleNotFound, migrations, open_registry
from core.rules import Rule, default_rules
from tests.conftest import GAUGE, RESERVOIR, RIVER, TEST_STATIONS, VILLAGE

UTC = timezone.utc
CST = timezone(timedelta(hours=8))
T0 = datetime(2026, 6, 28, 6, 5, 7, 123456, tzinfo=UTC)  # microseconds: they must survive too


def test_each_test_starts_with_empty_tables_and_fresh_ids(db_registry):
    assert db_registry.list_stations() == [] and db_registry.count_dead_letters() == 0
    assert db_registry.list_alerts() == [] and db_registry.list_rules() == [] and db_registry.list_shifts() == []
    rule = db_registry.create_rule(default_rules()[0])
    assert rule.id == 1  # identities restart between tests
    assert migrations.current_revision(db_registry.engine) == migrations.head_revision()


# -- stations -----------------------------------------------------------------------------------------------------
def test_stations_upsert_list_get_with_json_fields(db_registry):
    reservoir = RESERVOIR.model_copy(update={"flood_limit_periods": [
        FloodLimitPeriod(start="0601", end="0915", level_m=49.5), FloodLimitPeriod(start="0916", end="0531", level_m=51.0)]})
    assert db_registry.upsert_stations([reservoir, RIVER, GAUGE, VILLAGE]) == 4
    assert [s.id for s in db_registry.list_stations()] == sorted(s.id for s in TEST_STATIONS)
    got = db_registry.get_station(reservoir.id)
    assert got == reservoir
    assert got.level_storage == [(40.0, 0.5), (50.0, 5.0), (57.0, 12.0)]
    assert got.flood_limit_at(datetime(2026, 7, 1, tzinfo=UTC)) == 49.5
    assert db_registry.get_station("NOPE") is None
    assert [s.id for s in db_registry.list_stations(kind="river")] == [RIVER.id]
    assert {s.id for s in db_registry.list_stations(town="通济街道")} == {s.id for s in TEST_STATIONS}
    assert db_registry.list_stations(town="田横镇") == []
    assert db_registry.count_stations() == {"reservoir": 1, "river": 1, "rain": 1, "village_water": 1}

    # Upsert by id: changed fields (JSON included) replace the old ones, nothing is duplicated.
    changed = reservoir.model_copy(update={"name": "Renamed 水库", "level_storage": [(41.0, 1.0)],
                                           "flood_limit_periods": None})
    assert db_registry.upsert_stations([changed]) == 1
    assert db_registry.get_station(reservoir.id) == changed
    assert len(db_registry.list_stations()) == 4
    assert db_registry.upsert_stations([]) == 0


# -- dead letters -------------------------------------------------------------------------------------------------
def test_dead_letters_keep_binary_payloads_byte_for_byte(db_registry):
    payloads = {
        "invalid_utf8": b"\xff\xfe\xc3\x28 not utf-8 \x80\x00",
        "invalid_json": b'{"ts": "2026-06-28T14:05:00+08:00", "values": {',
        "oversized": bytes(range(256)) * 1024,  # 256 KiB, every byte value, NULs included
        "bad_topic": b"",
        "bad_schema": "{\"values\": {\"水位\": 1}}".encode(),
    }
    letters = [DeadLetter(topic=f"water/river/R{i}", payload=p, reason=reason, detail=f"detail {i} ✓",
                          received_at=T0 + timedelta(seconds=i))
               for i, (reason, p) in enumerate(payloads.items())]
    db_registry.add_dead_letters(letters)
    db_registry.add_dead_letters([])
    assert db_registry.count_dead_letters() == len(payloads)

    stored = db_registry.list_dead_letters()
    assert [d.reason for d in stored] == list(reversed(payloads))  # newest first
    for d in stored:  # byte for byte, up to the bounded prefix kept (core/dead_letters.py)
        whole = payloads[d.reason]
        assert isinstance(d.payload, bytes) and d.payload == whole[:DEFAULT_KEEP_BYTES], d.reason
        assert d.payload_size == len(whole) and d.payload_sha256 == hashlib.sha256(whole).hexdigest()
        assert d.received_at.tzinfo is not None
    by_reason = {d.reason: d for d in stored}
    assert by_reason["invalid_utf8"].received_at == T0 and by_reason["invalid_utf8"].detail == "detail 0 ✓"
    assert [d.id for d in stored] == [5, 4, 3, 2, 1]

    assert [d.reason for d in db_registry.list_dead_letters(reason="invalid_utf8")] == ["invalid_utf8"]
    window = db_registry.list_dead_letters(start=T0 + timedelta(seconds=1), end=T0 + timedelta(seconds=3))
    assert [d.reason for d in window] == ["oversized", "invalid_json"]
    assert [d.reason for d in db_registry.list_dead_letters(limit=2, offset=1)] == ["bad_topic", "oversized"]


# -- alerts -------------------------------------------------------------------------------------------------------
def _alert(**kw) -> Alert:
    values = dict(station_id=RIVER.id, kind="river", rule="river_level", metric="water_level_m", severity="yellow",
                  state=AlertState.active.value, started_at=T0, updated_at=T0, value=10.25, threshold=10.0,
                  message="above the warning level 警戒水位")
    values.update(kw)
    return Alert(**values)


def test_alerts_round_trip_with_aware_datetimes_and_events(db_registry):
    red = db_registry.insert_alert(_alert())
    assert red.id == 1
    assert db_registry.get_alert(red.id) == red  # every field, datetimes to the microsecond, as UTC
    other = db_registry.insert_alert(_alert(station_id=GAUGE.id, kind="rain", rule="rainstorm", metric="rain_mm",
                                            severity="blue", threshold=None, started_at=T0 + timedelta(hours=1),
                                            updated_at=T0 + timedelta(hours=1)), event_name="reopened")

    # The engine escalates: the stored row and a new event follow; the event keeps the data time exactly.
    later = T0 + timedelta(minutes=10, microseconds=1)
    red.severity, red.updated_at, red.value = "red", later, 11.75
    db_registry.save_alert(red, "escalated", later, "yellow → red")
    assert db_registry.get_alert(red.id) == red
    events = db_registry.alert_events(red.id)
    assert [(e["event"], e["severity"], e["data_time"], e["detail"]) for e in events] == [
        ("raised", "yellow", T0, "above the warning level 警戒水位"), ("escalated", "red", later, "yellow → red")]
    assert all(e["wall_time"].tzinfo is not None for e in events)
    db_registry.add_alert_event(red.id, "notified", "red", None, "webhook 200")
    assert db_registry.alert_events(red.id)[-1]["data_time"] is None
    assert [e["event"] for e in db_registry.alert_events(other.id)] == ["reopened"]

    # People acknowledge; twice is harmless; the engine's later save keeps the acknowledgement.
    acked = db_registry.acknowledge_alert(red.id, "duty officer 王")
    assert acked.state == AlertState.acknowledged.value and acked.acknowledged_by == "duty officer 王"
    assert acked.acknowledged_at.tzinfo is not None
    assert db_registry.acknowledge_alert(red.id, "someone else").acknowledged_by == "duty officer 王"
    assert [e["event"] for e in db_registry.alert_events(red.id)].count("acknowledged") == 1
    red.state = AlertState.acknowledged.value
    db_registry.save_alert(red, "updated", later, "")  # red (the engine's copy) has no acknowledgement
    stored = db_registry.get_alert(red.id)
    assert stored.acknowledged_by == "duty officer 王" and stored.acknowledged_at == acked.acknowledged_at

    cleared_at = T0 + timedelta(hours=2)
    red.state, red.cleared_at, red.updated_at = AlertState.cleared.value, cleared_at, cleared_at
    db_registry.save_alert(red, "cleared", cleared_at)
    assert db_registry.get_alert(red.id).cleared_at == cleared_at
    assert db_registry.acknowledge_alert(red.id, "late").state == AlertState.cleared.value

    assert [a.id for a in db_registry.open_alerts()] == [other.id]
    assert [a.id for a in db_registry.list_alerts()] == [other.id, red.id]
    assert [a.id for a in db_registry.list_alerts(state="cleared")] == [red.id]
    assert [a.id for a in db_registry.list_alerts(severity="blue", station_id=GAUGE.id)] == [other.id]
    assert [a.id for a in db_registry.list_alerts(limit=1, offset=1)] == [red.id]
    assert db_registry.count_alerts_by_severity() == {"red": 1, "blue": 1}
    assert db_registry.count_alerts_by_severity(since_id=red.id) == {"blue": 1}
    with pytest.raises(AlertNotFound):
        db_registry.get_alert(999)
    with pytest.raises(AlertNotFound):
        db_registry.acknowledge_alert(999, "x")

    # Deleting an alert deletes its events (ON DELETE CASCADE; SQLite: foreign keys are on).
    with db_registry.engine.begin() as conn:
        conn.execute(text("DELETE FROM alerts WHERE id = :id"), {"id": red.id})
    assert db_registry.alert_events(red.id) == []


def test_alert_times_with_another_offset_keep_their_instant(db_registry):
    # SQLite keeps no offset: core.registry.types.UTCDateTime converts on the way in
    alert = db_registry.insert_alert(_alert(started_at=T0.astimezone(CST), updated_at=T0.astimezone(CST)))
    assert db_registry.get_alert(alert.id).started_at == T0


# -- rules --------------------------------------------------------------------------------------------------------
def test_rules_crud_upsert_and_duplicates(db_registry):
    defaults = default_rules()
    first = db_registry.create_rule(defaults[0])
    assert first.id == 1 and db_registry.get_rule(first.id) == first
    with pytest.raises(DuplicateRule):
        db_registry.create_rule(defaults[0])

    # YAML loading: by name, all or nothing; the rule created above is replaced in place (same id).
    assert db_registry.upsert_rules(defaults) == len(defaults)
    assert db_registry.upsert_rules(defaults) == len(defaults)
    stored = {r.name: r for r in db_registry.list_rules()}
    assert len(stored) == len(defaults) and stored[defaults[0].name].id == first.id
    assert stored["rainstorm"] == next(r for r in defaults if r.name == "rainstorm").model_copy(
        update={"id": stored["rainstorm"].id})  # the whole body (JSON) round-trips
    brand_new = defaults[1].model_copy(update={"name": "brand_new"})
    with pytest.raises(IntegrityError):  # one transaction: the unique name refuses the second, nothing is kept
        db_registry.upsert_rules([brand_new, brand_new])
    assert "brand_new" not in {r.name for r in db_registry.list_rules()}

    turbidity = stored["turbidity"].model_copy(update={"enabled": False})
    assert db_registry.update_rule(turbidity.id, turbidity).enabled is False
    assert db_registry.get_rule(turbidity.id).enabled is False
    assert "turbidity" not in {r.name for r in db_registry.list_rules(enabled=True)}
    disabled_by_default = {r.name for r in defaults if not r.enabled}
    assert {r.name for r in db_registry.list_rules(enabled=False)} == disabled_by_default | {"turbidity"}
    with pytest.raises(DuplicateRule):
        db_registry.update_rule(turbidity.id, turbidity.model_copy(update={"name": "ph_low"}))
    with pytest.raises(RuleNotFound):
        db_registry.update_rule(999, turbidity.model_copy(update={"name": "nowhere"}))
    db_registry.delete_rule(turbidity.id)
    with pytest.raises(RuleNotFound):
        db_registry.get_rule(turbidity.id)
    with pytest.raises(RuleNotFound):
        db_registry.delete_rule(turbidity.id)

    # A stored body that no longer validates is skipped by list_rules, not fatal.
    with db_registry.engine.begin() as conn:
        conn.execute(text("UPDATE rules SET body = :b WHERE name = 'ph_low'"),
                     {"b": json.dumps({"name": "ph_low", "type": "no_such_type"})})
    assert "ph_low" not in {r.name for r in db_registry.list_rules()}
    assert isinstance(db_registry.get_rule(stored["ph_high"].id), Rule)


# -- duty roster --------------------------------------------------------------------------------------------------
def test_duty_roster_on_duty_in_escalation_order(db_registry):
    t0 = datetime(2026, 7, 1, tzinfo=UTC)
    day = {"starts_at": t0, "ends_at": t0 + timedelta(hours=12)}
    general = db_registry.add_shift(DutyShift(person="Li (any)", rank=1, **day))
    town = db_registry.add_shift(DutyShift(person="Zhou (通济 any kind)", town="通济街道", rank=1, **day))
    specific = db_registry.add_shift(DutyShift(person="Wang (通济 rain)", town="通济街道", station_kind="rain",
                                               rank=1, email="wang@example.org", phone="+86 532 1234 5678", **day))
    first = db_registry.add_shift(DutyShift(person="Chen (rank 0)", rank=0, **day))
    db_registry.add_shift(DutyShift(person="Zhao (fallback)", fallback=True, **day))
    # Given in +08:00, kept as the same instant: 20:00+08:00 is 12:00 UTC.
    night = db_registry.add_shift(DutyShift(person="Night", starts_at=datetime(2026, 7, 1, 20, tzinfo=CST),
                                            ends_at=datetime(2026, 7, 2, 8, tzinfo=CST)))
    assert [general.id, town.id, specific.id, first.id, night.id] == [1, 2, 3, 4, 6]

    at = t0 + timedelta(hours=1)
    assert [s.person for s in db_registry.on_duty(at, "通济街道", "rain")] == [
        "Chen (rank 0)", "Wang (通济 rain)", "Zhou (通济 any kind)", "Li (any)"]
    assert [s.person for s in db_registry.on_duty(at, "田横镇", "river")] == ["Chen (rank 0)", "Li (any)"]
    roster = {s.person: s for s in db_registry.list_shifts()}
    assert roster["Wang (通济 rain)"].email == "wang@example.org" and roster["Wang (通济 rain)"].starts_at == t0
    assert roster["Night"].starts_at == t0 + timedelta(hours=12) and roster["Night"].ends_at.tzinfo is not None
    assert [s.person for s in db_registry.on_duty(t0 + timedelta(hours=13), "田横镇", "river")] == ["Night"]
    assert db_registry.on_duty(t0 - timedelta(hours=1), None, None) == []

    # Nobody specific left: the fallback answers.
    for s in (general, town, specific, first):
        assert db_registry.delete_shift(s.id)
    assert not db_registry.delete_shift(general.id)
    assert [s.person for s in db_registry.on_duty(at, "田横镇", "river")] == ["Zhao (fallback)"]
    assert len(db_registry.list_shifts(at)) == 1


# -- `smartwater init` against PostgreSQL -------------------------------------------------------------------------
SMARTWATER = str(Path(sys.executable).with_name("smartwater"))


def test_smartwater_init_and_stations_on_postgresql(postgres, tmp_path):
    url = postgres.create_database()
    env = {**os.environ, "SMARTWATER_DATA_DIR": str(tmp_path), "SMARTWATER_DB_URL": url}
    env.pop("SMARTWATER_TSDB_URL", None)

    def run(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([SMARTWATER, *args], capture_output=True, text=True, env=env, timeout=180)

    try:
        first = run("init", "--demo-data")
        assert first.returncode == 0, first.stderr
        assert "default alert rules loaded" in first.stdout
        again = run("init", "--demo-data")  # idempotent: upserts, the schema is at head already
        assert again.returncode == 0, again.stderr
        out = run("stations", "--json")
        assert out.returncode == 0, out.stderr
        rows = json.loads(out.stdout)
        kinds = {}
        for r in rows:
            kinds[r["kind"]] = kinds.get(r["kind"], 0) + 1
        assert kinds["reservoir"] == 40 and kinds["rain"] == 24 and kinds["village_water"] == 1033
        assert not (tmp_path / "registry.sqlite3").exists()  # the registry really is PostgreSQL

        reg = open_registry(url)
        try:
            assert reg.engine.dialect.name == "postgresql"
            assert migrations.current_revision(reg.engine) == migrations.head_revision()
            assert len(reg.list_stations()) == len(rows) and reg.list_rules()
            reservoir = next(s for s in reg.list_stations(kind="reservoir"))
            assert reservoir.level_storage and reservoir.flood_limit_level_m is not None
        finally:
            reg.close()
    finally:
        postgres.drop_database(url)
