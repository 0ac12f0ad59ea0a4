"""Rule defaults a hydrologist would sign: a reservoir's ladder (flood limit → flood-control high → design flood),
labels that name the station kind and the level crossed, the flood season from settings, rate of rise only near
a warning. Expectations from docs/domain.md, computed here; every time is a data time passed in."""

from datetime import datetime, timedelta, timezone

import pytest

from alerts.engine import AlertEngine
from alerts.evaluate import evaluate_point, evaluate_rain, reference_thresholds
from core.flood_season import FloodSeason
from core.rules import Rule, default_rules
from core.settings import Settings
from core.domain import Reading
from tests.conftest import GAUGE, RESERVOIR, RIVER
from tests.expectations import RecordingNotifier

pytestmark = pytest.mark.unit

CST = timezone(timedelta(hours=8))
JULY = datetime(2026, 7, 10, 8, 0, tzinfo=CST)  # the main flood season
# the ladder's reservoir: flood limit 50.0, flood-control high 52.5, design flood 54.0, check flood 55.5
LADDER = RESERVOIR.model_copy(update={"flood_control_high_level_m": 52.5})


def rule(name: str) -> Rule:
    return next(r for r in default_rules() if r.name == name)


def make_engine(settings, registry, *stations) -> AlertEngine:
    registry.upsert_stations(list(stations))
    eng = AlertEngine(settings, registry, RecordingNotifier())
    eng.load()
    return eng


def level(sid: str, kind: str, ts: datetime, z: float) -> Reading:
    return Reading(sid, kind, "water_level_m", ts.astimezone(timezone.utc), z)


def of(registry, rule_name: str) -> list:
    return [a for a in registry.list_alerts() if a.rule == rule_name]


def test_the_ladder_steps_yellow_orange_red_on_one_reservoir(settings, registry):
    eng = make_engine(settings, registry, LADDER)
    eng.process([level("RS9001", "reservoir", JULY, 49.9)])
    assert of(registry, "reservoir_level") == []
    steps = [(50.1, "yellow", 50.0, "水库超汛限水位 (above flood-limit level 50.00 m)"),
             (52.6, "orange", 52.5, "水库超防洪高水位 (above flood-control high level 52.50 m)"),
             (54.0, "red", 54.0, "水库达设计洪水位 (at design flood level 54.00 m)")]  # at the level itself: red
    for k, (z, severity, threshold, label) in enumerate(steps, 1):
        eng.process([level("RS9001", "reservoir", JULY + timedelta(hours=k), z)])
        (a,) = of(registry, "reservoir_level")
        assert (a.severity, a.threshold) == (severity, threshold)
        assert a.message.startswith(f"Test reservoir: {label}, water level {z:.2f} m")
        # the check flood level is recorded, not waited for: the margin to it is in every message
        assert f"距校核洪水位 {55.5 - z:.2f} m" in a.message
        assert "河道" not in a.message
    assert a.started_at == (JULY + timedelta(hours=1)).astimezone(timezone.utc)


def test_without_a_flood_control_high_level_orange_is_a_margin_below_design_flood():
    st = RESERVOIR  # design flood 54.0, no flood-control high level
    r = rule("reservoir_level")
    assert reference_thresholds(r, st, JULY, CST, 1.0)[1] == ("orange", 53.0)  # the rule's 1.0 m
    own = r.model_copy(update={"params": {**r.params, "per_station": {"RS9001": {"design_margin_m": 0.3}}}})
    assert reference_thresholds(own, st, JULY, CST, 1.0)[1] == ("orange", 53.7)  # the reservoir's own margin
    bare = r.model_copy(update={"params": {}})
    assert reference_thresholds(bare, st, JULY, CST, 0.6)[1] == ("orange", pytest.approx(53.4))  # the setting
    v = evaluate_point(r, st, JULY, 53.2, None, CST, 1.0)
    assert v.raw == "orange" and "水库接近设计洪水位" in v.message
    with pytest.raises(ValueError, match="design_margin_m"):
        Rule.model_validate({**r.model_dump(), "params": {"per_station": {"RS9001": {"design_margin_m": -1}}}})


def test_the_flood_season_starts_at_local_midnight_on_1_june(settings, registry):
    # no seasonal periods of its own: flood limit 50.0 inside the season, normal pool 51.0 outside
    eng = make_engine(settings, registry, RESERVOIR)
    eng.process([level("RS9001", "reservoir", datetime(2026, 5, 31, 23, 59, tzinfo=CST), 50.5)])
    assert of(registry, "reservoir_level") == []
    eng.process([level("RS9001", "reservoir", datetime(2026, 6, 1, 0, 0, tzinfo=CST), 50.5)])
    (a,) = of(registry, "reservoir_level")
    assert (a.severity, a.threshold) == ("yellow", 50.0) and "水库超汛限水位" in a.message
    assert a.started_at == datetime(2026, 5, 31, 16, 0, tzinfo=timezone.utc)


def test_after_the_season_the_ceiling_is_the_normal_pool_and_says_so():
    r = rule("reservoir_level")
    last = datetime(2026, 9, 30, 23, 59, tzinfo=CST)
    after = datetime(2026, 10, 1, 0, 0, tzinfo=CST)
    season = FloodSeason()
    assert reference_thresholds(r, RESERVOIR, last, CST, 1.0, season)[0] == ("yellow", 50.0)
    assert reference_thresholds(r, RESERVOIR, after, CST, 1.0, season)[0] == ("yellow", 51.0)
    v = evaluate_point(r, RESERVOIR, after, 51.2, None, CST, 1.0, season=season)
    assert v.raw == "yellow" and "水库超正常蓄水位" in v.message


def test_the_flood_season_comes_from_settings_and_is_checked(tmp_path):
    s = Settings(data_dir=tmp_path, _env_file=None)
    assert s.flood_season == FloodSeason("0601", "0930", "0701", "0831")
    early = Settings(data_dir=tmp_path, _env_file=None, flood_season_start="05-15", main_flood_season="06-15..08-31")
    assert early.flood_season.contains(datetime(2026, 5, 15, 0, 0, tzinfo=CST), CST)
    assert not early.flood_season.contains(datetime(2026, 5, 14, 23, 59, tzinfo=CST), CST)
    for bad, words in [({"flood_season_end": "09-31"}, "not a day of the year"),
                       ({"flood_season_start": "June"}, "not a month and day"),
                       ({"flood_season_end": "05-01"}, "before its start"),
                       ({"main_flood_season": "07-01"}, "MM-DD..MM-DD"),
                       ({"main_flood_season": "05-01..08-31"}, "not inside the flood season")]:
        with pytest.raises(ValueError, match=words):
            Settings(data_dir=tmp_path, _env_file=None, **bad)


def test_the_seasons_periods_for_the_demo_district():
    periods = FloodSeason().flood_limit_periods(50.0, 52.0)
    assert [(p.start, p.end, p.type, p.level_m) for p in periods] == [
        ("0601", "0630", "transition", 50.0), ("0701", "0831", "main", 50.0), ("0901", "0930", "late", 50.0),
        ("1001", "0531", "non_flood", 52.0)]


def test_a_river_alert_reads_like_a_river(settings, registry):
    eng = make_engine(settings, registry, RIVER)
    eng.process([level("RV9001", "river", JULY, 10.2)])
    (a,) = of(registry, "river_level")
    assert a.message.startswith("Test river: 河道超警戒水位 (above warning level 10.00 m), water level 10.20 m")
    eng.process([level("RV9001", "river", JULY + timedelta(minutes=10), 11.6)])
    (a,) = of(registry, "river_level")
    assert "河道超保证水位 (above guaranteed level 11.50 m)" in a.message
    assert "水库" not in a.message and "flood" not in a.message


def test_rain_is_a_gauge_exceedance_not_a_signal():
    v = evaluate_rain(rule("rainstorm"), GAUGE, {1: 60.0, 3: 105.0, 6: 110.0, 12: 110.0, 24: 110.0})
    assert v.raw == "red"
    assert v.message == "Test gauge: 雨量站 3 小时降雨 105.0 mm ≥ 100 mm (3 h rain ≥ 100 mm at gauge Test gauge: 105.0 mm)"
    assert "signal" not in v.message and "rainstorm" not in v.message


def test_rate_of_rise_counts_only_halfway_to_the_warning_level(settings, registry):
    # usual stage 7.0 m, warning 10.0 m: a rise counts from 8.5 m up
    river = RIVER.model_copy(update={"normal_level_m": 7.0})
    eng = make_engine(settings, registry, river)
    for i in range(13):  # 0.8 m/h from 7.0 to 7.8 m: far below the warning level
        eng.process([level("RV9001", "river", JULY + timedelta(minutes=5 * i), 7.0 + 0.8 * i / 12)])
    assert of(registry, "river_rise") == []
    later = JULY + timedelta(hours=3)
    for i in range(13):  # the same rise from 8.6 m
        eng.process([level("RV9001", "river", later + timedelta(minutes=5 * i), 8.6 + 0.8 * i / 12)])
    (a,) = of(registry, "river_rise")
    assert a.severity == "yellow" and a.message.startswith("Test river: 河道水位陡涨 0.80 m/h")
    with pytest.raises(ValueError, match="min_share_of_warning"):
        Rule.model_validate({**rule("river_rise").model_dump(), "params": {"min_share_of_warning": 2}})
