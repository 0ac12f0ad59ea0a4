"""The engine's batch path (alerts.batch, alerts.window_matrix) against the straightforward one-reading-at-a-time
evaluation, on seeded random inputs: any divergence in windows, watermarks, alerts or notifications fails."""

from __future__ import annotations

import os
import random
import shutil
import tempfile
from datetime import datetime, timedelta, timezone

import numpy as np
import pytest

import alerts.window_matrix as wmx
from alerts.engine import AlertEngine
from alerts.window_matrix import SeriesMatrix
from alerts.windows import HOUR_MS, SeriesWindow
from core.domain import FloodLimitPeriod, Reading
from core.registry import open_registry
from core.rules import Rule, default_rules
from tests.conftest import GAUGE, RESERVOIR, RIVER, VILLAGE
from tests.expectations import RecordingNotifier

pytestmark = pytest.mark.unit  # the engine against SQLite: no broker, no server

T0 = datetime(2026, 7, 10, 0, 0, tzinfo=timezone.utc)
T0_MS = int(T0.timestamp() * 1000)
MIN_MS = 60_000


def content(w) -> tuple[list[int], list[float]]:
    if isinstance(w, SeriesWindow):
        return w._ts[:w._n].tolist(), w._v[:w._n].tolist()
    if w.w is not None:
        return content(w.w)
    ts, v = w._span()
    return ts.tolist(), v.tolist()


# -- the window matrix against SeriesWindow ---------------------------------------------------------------------

@pytest.mark.parametrize("seed, spill", [(1, False), (2, False), (3, True), (4, True)])
def test_matrix_rows_hold_what_series_windows_hold(seed, spill, monkeypatch):
    if spill:  # growth refused unless the matrix stays full: busy rows move out to windows of their own
        monkeypatch.setattr(wmx, "_SMALL_BYTES", 0)
        monkeypatch.setattr(wmx, "_MIN_FILL_AFTER_GROWTH", 0.9)
    rng = random.Random(seed)
    rows = 12
    m = SeriesMatrix(keep_h=3, capacity=8, running_sums=True)
    m.add_rows(rows)
    ref = [SeriesWindow(keep_h=3) for _ in range(rows)]
    clock = [T0_MS] * rows
    for step in range(400):
        busy = {r for r in range(rows) if r % 4 == 0}  # report every minute, the others every 5 to 15
        batch_rows, batch_t, batch_v = [], [], []
        for r in range(rows):
            if rng.random() < 0.3:
                continue
            roll = rng.random()
            if roll < 0.08 and len(ref[r]):  # redelivered, maybe with a corrected value
                t = int(rng.choice(content(ref[r])[0]))
            elif roll < 0.16:  # late: somewhere in the last 4 hours (sometimes older than the window)
                t = clock[r] - rng.randint(1, 240) * MIN_MS
            elif roll < 0.18:  # back after a silence longer than the window
                clock[r] += rng.randint(180, 400) * MIN_MS
                t = clock[r]
            else:
                clock[r] += (1 if r in busy else rng.choice((5, 10, 15))) * MIN_MS
                t = clock[r]
            value = float(rng.choice((0.0, 0.0, 1.0, 2.5, rng.uniform(0, 30))))
            in_order = not len(ref[r]) or t > ref[r]._last
            ref[r].add_ms(t, value)
            if in_order and not m.is_spilled[r] and rng.random() < 0.7:
                batch_rows.append(r), batch_t.append(t), batch_v.append(value)
            else:
                m.window(r).add_ms(t, value)
        if batch_rows:
            spilled = m.append(np.array(batch_rows), np.array(batch_t), np.array(batch_v))
            assert not spilled.any() or spill
        for r in range(rows):
            assert content(m.window(r)) == content(ref[r]), (step, r)
        if step % 7 == 0:
            live = [r for r in range(rows) if len(ref[r]) and not m.is_spilled[r]]
            if live:
                at = np.array([ref[r]._last for r in live])
                edges = at[:, None] - np.array([1, 2, 3])[None, :] * HOUR_MS
                got = m.bound(np.array(live), edges, right=True)
                for j, r in enumerate(live):
                    ts = ref[r]._ts[:ref[r]._n]
                    assert got[j].tolist() == ts.searchsorted(edges[j], side="right").tolist()
                    # running totals: the sum of the last hour within rounding of the exact one
                    k = int(got[j][0])
                    if k < len(ts):
                        h, n = int(m.head[r]), int(m.n[r])
                        approx = m.cs[r, h + n - 1] - m.cs[r, h + k] + m.v[r, h + k]
                        assert approx == pytest.approx(ref[r].sums(int(at[j]), (1,))[1], rel=1e-9, abs=1e-9)
            for r in range(rows):
                w, t = m.window(r), clock[r] - rng.randint(0, 200) * MIN_MS
                assert w.first_since(t) == ref[r].first_since(t)
                assert w.before(t) == ref[r].before(t)
                assert w.last(5).tolist() == ref[r].last(5).tolist()
                assert w.sums(clock[r], (1, 3)) == ref[r].sums(clock[r], (1, 3))
                assert w.latest == ref[r].latest
    assert bool(m.spilled) == spill


# -- the whole engine: batch path against one reading at a time --------------------------------------------------

def district() -> list:
    out = []
    for i in range(8):
        out.append(GAUGE.model_copy(update={"id": f"RG{i:04d}", "lat": 36.3 + 0.02 * i}))
        periods = [FloodLimitPeriod(start="0601", end="0915", level_m=50.0 + 0.2 * (i % 3), type="main"),
                   FloodLimitPeriod(start="0916", end="0531", level_m=51.0, type="non_flood")] if i % 2 else None
        # half with a flood-control high level (orange there), half with the margin below design flood
        out.append(RESERVOIR.model_copy(update={"id": f"RS{i:04d}", "flood_limit_periods": periods,
                                                "flood_control_high_level_m": 52.5 if i % 4 < 2 else None}))
        # some rivers with a usual stage, so rate-of-rise counts only above half the way to warning
        out.append(RIVER.model_copy(update={"id": f"RV{i:04d}", "normal_level_m": 7.0 if i % 3 else None}))
        for j in range(3):
            out.append(VILLAGE.model_copy(update={"id": f"VW{i:02d}{j:02d}", "lat": 36.3 + 0.02 * i + 0.001 * j}))
    return out


def rules() -> list[Rule]:
    out = []
    for r in default_rules():
        if r.name == "mountain_torrent":
            r = r.model_copy(update={"enabled": True, "params": {**r.params, "per_station": {
                "VW0101": {"orange": {1: 20}, "red": {1: 30}}}}})
        elif r.name == "reservoir_level":  # one reservoir with a margin of its own
            r = r.model_copy(update={"params": {**r.params, "per_station": {"RS0003": {"design_margin_m": 0.4}}}})
        elif r.name == "level_stuck":  # the default holds a day, longer than this run
            r = r.model_copy(update={"min_duration_s": 0})
        out.append(r)
    out.append(Rule(name="river_watch", type="threshold", station_kind="river", metric="water_level_m",
                    station_ids=["RV0001", "RV0003"], levels=[{"severity": "yellow", "value": 9.8}],
                    hysteresis=0.1))
    out.append(Rule(name="reservoir_jump", type="spike", station_kind="reservoir", metric="water_level_m",
                    levels=[{"severity": "blue", "value": 1.5}]))
    return out


@pytest.fixture
def db_dir(tmp_path):
    """The registries' directory: in memory when the machine has /dev/shm (hundreds of alert commits)."""
    if not os.path.isdir("/dev/shm"):
        yield tmp_path
        return
    d = tempfile.mkdtemp(prefix="smartwater-vectorised-", dir="/dev/shm")
    yield d
    shutil.rmtree(d, ignore_errors=True)


def make_engine(settings, db_dir, name: str, batch_min: int) -> AlertEngine:
    url = f"sqlite:///{os.path.join(db_dir, name + '.sqlite3')}"
    reg = open_registry(url)
    reg.create_schema()
    reg.upsert_stations(district())
    reg.upsert_rules(rules())
    eng = AlertEngine(settings.model_copy(update={"db_url": url}), reg, RecordingNotifier())
    eng.batch_min = batch_min
    eng.load()
    return eng


def random_batch(rng: random.Random, step: int, state: dict) -> list[Reading]:
    ts = T0 + timedelta(minutes=5 * step)
    out = []
    storm = 8 <= step % 60 < 30
    for i in range(8):
        if step % 50 < 12 and i == 3:
            continue  # gauge 3 goes silent now and then: stale alerts, cleared when it reports again
        out.append(Reading(f"RG{i:04d}", "rain", "rain_mm", ts,
                           round(rng.uniform(3, 14) if storm and i % 2 else rng.choice((0.0, 0.0, 0.2, 1.0)), 1)))
        if step % 2 == 0:
            lv = state.setdefault(f"RS{i:04d}", 49.0)
            if not (i == 5 and 20 < step < 52):  # reservoir 5 stuck on one value for a while
                lv = state[f"RS{i:04d}"] = min(56.0, max(46.0, lv + rng.choice((-0.4, -0.1, 0.0, 0.1, 0.3, 0.9, 1.6, -1.7))))
            out.append(Reading(f"RS{i:04d}", "reservoir", "water_level_m", ts, lv))
            rv = state[f"RV{i:04d}"] = min(12.5, max(8.5, state.get(f"RV{i:04d}", 9.5) + rng.uniform(-0.3, 0.35)))
            out.append(Reading(f"RV{i:04d}", "river", "water_level_m", ts, round(rv, 3)))
            for j in range(3):
                sid = f"VW{i:02d}{j:02d}"
                out.append(Reading(sid, "village_water", "turbidity_ntu", ts,
                                   rng.choice((0.3, 0.5, 0.9, 1.2, 3.5, 0.4, 20.7, 25.0)) if rng.random() < 0.3 else 0.4))
                if rng.random() < 0.3:
                    out.append(Reading(sid, "village_water", "pressure_mpa", ts, rng.choice((0.3, 0.12, 0.13))))
                    out.append(Reading(sid, "village_water", "ph", ts, rng.choice((7.2, 6.4, 8.7))))
    extra = []
    for r in rng.sample(out, k=min(len(out), 6)):
        roll = rng.random()
        if roll < 0.4:
            extra.append(r)  # redelivered
        elif roll < 0.8:  # late, sometimes with a different value
            extra.append(r._replace(ts=r.ts - timedelta(minutes=rng.choice((5, 10, 20))),
                                    value=r.value + rng.choice((0.0, 0.5))))
        else:
            extra.append(r._replace(station_id="XX9999"))  # not in the registry
    out += extra
    rng.shuffle(out)
    return out


def snapshot(eng: AlertEngine) -> dict:
    def alerts(d):
        return {k: (a.severity, a.state, a.value, a.threshold, a.started_at, a.updated_at, a.cleared_at, a.message)
                for k, a in d.items()}

    windows = {}
    for (kind, metric), fam in eng.families.items():
        for sid in eng.station_ids:
            w = eng.window(sid, metric)
            if w is not None and eng.stations[sid].kind.value == kind:
                windows[(sid, metric)] = content(w)
    return {"open": alerts(eng.open), "cleared": alerts(eng.cleared), "pending": dict(eng.pending),
            "last_seen": dict(eng.last_seen), "watermarks": eng.index.wm.tolist(), "windows": windows,
            "events": list(eng.notifier.events)}


@pytest.mark.parametrize("seed", [11, 12])
def test_batch_path_matches_reading_by_reading(settings, db_dir, seed):
    fast = make_engine(settings, db_dir, "fast", batch_min=1)
    slow = make_engine(settings, db_dir, "slow", batch_min=10**9)
    assert fast.station_ids == slow.station_ids and fast.index.rule_col == slow.index.rule_col
    rng = random.Random(seed)
    state: dict = {}
    raised = set()
    for step in range(100):
        batch = random_batch(rng, step, state)
        fast.process(list(batch))
        slow.process(list(batch))
        if step % 6 == 5:
            now = T0 + timedelta(minutes=5 * step + 2)
            assert fast.check_stale(now) == slow.check_stale(now)
            assert fast.close_expired(now) == slow.close_expired(now)
        a, b = snapshot(fast), snapshot(slow)
        for part in a:
            assert a[part] == b[part], f"step {step}: {part} differs"
        raised |= {rule for _, _, rule, _ in a["events"]}
    # the inputs really did exercise the alerting paths, not only the quiet one
    assert {"rainstorm", "mountain_torrent", "reservoir_level", "river_level", "turbidity", "turbidity_spike",
            "stale_station", "river_watch", "reservoir_jump", "reservoir_rise", "level_stuck", "ph_low"} <= raised
    assert {e for e, *_ in fast.notifier.events} >= {"raised", "escalated", "cleared"}


def test_station_replaced_after_load_is_planned_anew(settings, db_dir):
    """Per-station limits are precomputed; replacing a station must not leave a stale limit behind."""
    eng = make_engine(settings, db_dir, "replace", batch_min=1)
    batch = [Reading(s, "reservoir", "water_level_m", T0, 49.0) for s in ("RS0000", "RS0002", "RS0004")]
    eng.process(batch)
    st = eng.stations["RS0000"]
    eng.stations["RS0000"] = st.model_copy(update={"flood_limit_level_m": 45.0})
    eng.process([r._replace(ts=T0 + timedelta(minutes=10)) for r in batch])
    assert {k for k in eng.open if k[1] == "reservoir_level"} == {("RS0000", "reservoir_level")}


@pytest.mark.parametrize("batch_min", [1, 10**9])
def test_rain_signal_comes_at_the_crossing_reading_when_a_gauge_reports_many_times_in_one_call(
        settings, db_dir, batch_min):
    """The alert service hands the engine everything queued at once; a backlog holds many readings of one gauge.
    The signal's data time must be the reading that crossed the threshold, not the last one in the call."""
    eng = make_engine(settings, db_dir, f"crossing{batch_min}", batch_min=batch_min)
    gauge = next(s for s in eng.station_ids if eng.stations[s].kind.value == "rain")
    # 10 mm every 5 minutes: the 3 h sum reaches 50 mm (orange) at the 5th reading and 100 mm (red) at the 10th
    readings = [Reading(gauge, "rain", "rain_mm", T0 + timedelta(minutes=5 * i), 10.0) for i in range(16)]
    eng.process(readings)
    alert = eng.open[(gauge, "rainstorm")]
    assert alert.severity == "red"
    steps = [(e, sev) for e, sid, rule, sev in eng.notifier.events if sid == gauge and rule == "rainstorm"]
    assert steps[0][0] == "raised" and steps[-1] == ("escalated", "red")
    assert alert.started_at == T0 + timedelta(minutes=5 * 4)
