"""The simulator's sensor faults and water-quality events against the alert engine with the default rules.

Each scenario is generated in-process with the CSV export's report stream (same schedule, values and faults as
a live run), sent through the service's payload decoding into an AlertEngine on a real SQLite registry, in the
order the stations send (so duplicated and held-back reports arrive as they would), with the stale-station
check called every 30 s of data time against the data clock, as the alert service's scheduler does.
What should fire is read from the scenario files; the engine only answers.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

from alerts.engine import AlertEngine
from core.domain import Alert, Kind, Station
from core.payload import decode, encode, topic_for
from core.registry import open_registry
from core.rules import default_rules
from core.settings import Settings
from simulators.district import DEFAULT_SEED
from simulators.export import reports
from simulators.faults import FaultPlan
from simulators.spec import ScenarioSpec, load_scenario
from tests.expectations import RecordingNotifier

CST = timezone(timedelta(hours=8))
START = datetime(2026, 6, 28, 8, 0, tzinfo=CST)  # main flood season, as the demo
HOUR = 3600.0
SCHEDULER_STEP_S = 30.0  # alerts.service: the stale check runs every 30 s
DATA_QUALITY = {"level_stuck", "turbidity_spike", "stale_station"}
# Villages in the run besides those a scenario names: enough for seeded picks and for controls, few enough
# to keep the test in seconds (a fault naming a kind picks among the stations of that kind in the run).
VILLAGES = 60


def without_villages(district: list[Station]) -> list[Station]:
    return [s for s in district if s.kind != Kind.village_water]


def villages(district: list[Station], towns: set[str] | None = None) -> list[Station]:
    return [s for s in district if s.kind == Kind.village_water and (towns is None or s.town in towns)]


def run(tmp_path: Path, stations: list[Station], spec: ScenarioSpec, hours: float) -> list[Alert]:
    """Every alert the default rules raise on ``hours`` of the scenario, oldest first."""
    url = f"sqlite:///{tmp_path / 'registry.sqlite3'}"
    registry = open_registry(url)
    try:
        registry.create_schema()
        registry.upsert_stations(stations)
        registry.upsert_rules(default_rules())
        engine = AlertEngine(Settings(data_dir=tmp_path, db_url=url, _env_file=None), registry, RecordingNotifier())
        engine.load()
        tz = START.tzinfo
        next_check = START.timestamp() + SCHEDULER_STEP_S
        for due, st, messages in reports(stations, spec, DEFAULT_SEED, START, hours * HOUR):
            while next_check <= due:
                clock = engine.data_clock
                if clock is not None:
                    engine.check_stale(clock)
                    engine.close_expired(clock)
                next_check += SCHEDULER_STEP_S
            now = datetime.fromtimestamp(due, UTC)  # the wall clock of a live run: the report's due time
            for ts, values in messages:
                engine.process(decode(topic_for(st.kind.value, st.id), encode(datetime.fromtimestamp(ts, tz), values),
                                      engine.stations, now))
        return sorted(registry.list_alerts(limit=100_000), key=lambda a: a.id)
    finally:
        registry.close()


def at(hours: float) -> datetime:
    return START + timedelta(hours=hours)


def by_rule(alerts: list[Alert], rule: str) -> dict[str, list[Alert]]:
    out: dict[str, list[Alert]] = defaultdict(list)
    for a in alerts:
        if a.rule == rule:
            out[a.station_id].append(a)
    return dict(out)


# --------------------------------------------------------------------------- sensor faults

def test_sensor_faults_raise_their_data_quality_alerts_and_nothing_else(tmp_path, district):
    spec = load_scenario("sensor-faults")
    stations = without_villages(district) + villages(district)[:VILLAGES]
    faults = {f.type: f for f in spec.sensor_faults}
    plan = FaultPlan(spec.sensor_faults, stations, DEFAULT_SEED, START.timestamp())
    faulty = {t: plan.stations(t) for t in faults}
    kind_of = {s.id: s.kind for s in stations}
    for t, f in faults.items():  # the file's picks, resolved the way the simulator resolves them
        assert len(faulty[t]) == f.count and {kind_of[sid] for sid in faulty[t]} == {f.kind}, t
    stuck, spike, dropout = faults["stuck"], faults["spike"], faults["dropout"]
    # Past the moment a stuck level counts as stuck (level_stuck holds for about a day), inside the fault.
    hours = 27.0
    assert stuck.start_h + 25 < hours < stuck.start_h + stuck.duration_h
    alerts = run(tmp_path, stations, spec, hours)

    want = {(sid, "level_stuck") for sid in faulty["stuck"]} | {(sid, "turbidity_spike") for sid in faulty["spike"]} \
        | {(sid, "stale_station") for sid in faulty["dropout"]}
    got = {(a.station_id, a.rule) for a in alerts if a.rule in DATA_QUALITY}
    assert got == want  # every fault its alert; drifting, duplicating and reordering stations none

    for sid, (a, *more) in by_rule(alerts, "level_stuck").items():
        assert not more and at(stuck.start_h) <= a.started_at < at(stuck.start_h + stuck.duration_h), sid
    for sid, spikes in by_rule(alerts, "turbidity_spike").items():
        assert all(a.started_at >= at(spike.start_h) for a in spikes), sid
    (sid,) = faulty["dropout"]
    (stale,) = by_rule(alerts, "stale_station")[sid]
    silent_from, back_at = at(dropout.start_h), at(dropout.start_h + dropout.duration_h)
    # overdue three reporting intervals into the silence, cleared by the first report after it
    interval = timedelta(seconds=next(s.interval_s for s in stations if s.id == sid))
    assert silent_from + 2 * interval <= stale.started_at <= silent_from + 4 * interval
    assert stale.state != "active" and back_at <= stale.cleared_at <= back_at + interval

    # Dry weather: nothing else. A spike reading is far above the GB 5749 turbidity limit, but the next reading
    # does not confirm it, so it is reported as the sensor fault it is and not as a water-quality alert.
    others = {(a.station_id, a.rule) for a in alerts if a.rule not in DATA_QUALITY}
    assert others == set()


def test_a_dry_normal_run_raises_no_alerts(tmp_path, district):
    """No false alarms: a day and more of calm weather, where reservoir levels sit on one centimetre for hours."""
    stations = without_villages(district) + villages(district)[:VILLAGES]
    alerts = run(tmp_path, stations, load_scenario("normal"), 27.0)
    assert [(a.station_id, a.rule, a.started_at.isoformat()) for a in alerts] == []


# --------------------------------------------------------------------------- water quality

def test_dosing_failures_lower_chlorine_at_their_villages_inside_their_windows(tmp_path, district):
    spec = load_scenario("dosing-failure")
    failures = spec.water_quality.dosing_failures
    towns = {f.town for f in failures}
    control = [v for v in villages(district) if v.town not in towns][:20]
    stations = villages(district, towns) + control
    last_end = max(f.start_h + f.duration_h for f in failures)
    alerts = run(tmp_path, stations, spec, last_end + 2)

    low = by_rule(alerts, "free_chlorine_low")
    assert not {v.id for v in control} & set(low)
    for f in failures:
        town = {v.id for v in villages(district, {f.town})}
        hit = {sid for sid in low if sid in town}
        assert len(hit) == (f.count or len(town)), f.town
        start, end = at(f.start_h), at(f.start_h + f.duration_h)
        for sid in hit:
            (a,) = low[sid]
            # below 0.05 mg/L only after dosing stopped (the residual decays), back above within an hour of it restarting
            assert start < a.started_at < end, sid
            assert a.cleared_at is not None and end < a.cleared_at < end + timedelta(hours=1), sid
    # dry weather: chlorine is all that goes wrong
    assert {a.rule for a in alerts} == {"free_chlorine_low"}
