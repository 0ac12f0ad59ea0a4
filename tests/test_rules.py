import pytest
from pydantic import ValidationError

from core.rules import Rule, default_rules, load_rules_yaml


@pytest.fixture
def registry(db_registry):
    """The registry tests here run on SQLite and on PostgreSQL (conftest: registry_url)."""
    return db_registry


def test_default_rules_load_and_encode_the_design_facts():
    rules = {r.name: r for r in default_rules()}
    rain = rules["rainstorm"]
    assert [(lv.severity.value, lv.windows_h) for lv in rain.levels] == [
        ("blue", {12: 50}), ("yellow", {6: 50}), ("orange", {3: 50}), ("red", {3: 100})]
    assert [(lv.severity.value, lv.value) for lv in rules["turbidity"].levels] == [("yellow", 1.0), ("orange", 3.0)]
    assert rules["free_chlorine_low"].direction == "below" and rules["free_chlorine_low"].levels[0].value == 0.05
    assert rules["stale_station"].params["intervals"] == 3


@pytest.mark.parametrize("rule,message", [
    ({"name": "x", "type": "threshold", "station_kind": "rain", "metric": "water_level_m",
      "levels": [{"severity": "red", "value": 1}]}, "not a rain metric"),
    ({"name": "x", "type": "threshold", "station_kind": "river", "metric": "water_level_m",
      "levels": [{"severity": "red"}]}, "needs a value"),
    ({"name": "x", "type": "threshold", "station_kind": "river", "metric": "water_level_m",
      "levels": [{"severity": "red", "value": 1}, {"severity": "yellow", "value": 2}]}, "stricter"),
    ({"name": "x", "type": "rain_sum", "station_kind": "rain", "levels": [{"severity": "red"}]}, "windows_h"),
    ({"name": "x", "type": "rain_sum", "station_kind": "rain",
      "levels": [{"severity": "red", "windows_h": {100: 5}}]}, "outside 1..72"),
    ({"name": "Bad Name", "type": "stale", "station_kind": "rain", "levels": [{"severity": "blue"}]}, "name"),
    ({"name": "x", "type": "stale", "station_kind": "rain", "levels": [{"severity": "blue"}],
      "params": {"intervals": 0}}, "intervals"),
    ({"name": "x", "type": "reference_level", "station_kind": "rain", "metric": "rain_mm"}, "reference_level"),
    ({"name": "x", "type": "threshold", "station_kind": "river", "metric": "flow_m3s", "colour": "red",
      "levels": [{"severity": "red", "value": 1}]}, "colour"),
])
def test_invalid_rules_are_refused_with_a_reason(rule, message):
    with pytest.raises(ValidationError, match=message):
        Rule.model_validate(rule)


def test_yaml_errors_name_the_rule(tmp_path):
    f = tmp_path / "rules.yaml"
    f.write_text("- {name: a, type: stale, station_kind: rain, levels: [{severity: blue}]}\n"
                 "- {name: b, type: threshold, station_kind: rain, metric: rain_mm, levels: [{severity: red}]}\n")
    with pytest.raises(ValueError, match="rule #2"):
        load_rules_yaml(f)
    f.write_text("- {name: a, type: stale, station_kind: rain, levels: [{severity: blue}]}\n" * 2)
    with pytest.raises(ValueError, match="duplicate"):
        load_rules_yaml(f)


def test_rules_round_trip_through_the_registry(registry):
    from core.registry import DuplicateRule, RuleNotFound

    assert registry.upsert_rules(default_rules()) == len(default_rules())
    assert registry.upsert_rules(default_rules()) == len(default_rules())  # by name: idempotent
    stored = {r.name: r for r in registry.list_rules()}
    assert stored["rainstorm"].levels[-1].windows_h == {3: 100.0}
    rule = stored["turbidity"].model_copy(update={"enabled": False})
    registry.update_rule(rule.id, rule)
    assert registry.get_rule(rule.id).enabled is False
    assert "turbidity" not in {r.name for r in registry.list_rules(enabled=True)}
    with pytest.raises(DuplicateRule):
        registry.create_rule(stored["ph_low"].model_copy(update={"id": None}))
    registry.delete_rule(rule.id)
    with pytest.raises(RuleNotFound):
        registry.get_rule(rule.id)


def test_duty_roster_picks_town_kind_then_fallback(registry):
    from datetime import datetime, timedelta, timezone

    from core.domain import DutyShift

    t0 = datetime(2026, 7, 1, tzinfo=timezone.utc)
    span = {"starts_at": t0, "ends_at": t0 + timedelta(hours=12)}
    registry.add_shift(DutyShift(person="Li (any)", rank=1, **span))
    registry.add_shift(DutyShift(person="Wang (通济 rain)", town="通济街道", station_kind="rain", rank=0, **span))
    registry.add_shift(DutyShift(person="Zhao (fallback)", fallback=True, **span))
    registry.add_shift(DutyShift(person="Night", starts_at=t0 + timedelta(hours=12), ends_at=t0 + timedelta(hours=24)))
    at = t0 + timedelta(hours=1)
    assert [s.person for s in registry.on_duty(at, "通济街道", "rain")] == ["Wang (通济 rain)", "Li (any)"]
    assert [s.person for s in registry.on_duty(at, "田横镇", "river")] == ["Li (any)"]
    assert [s.person for s in registry.on_duty(t0 + timedelta(hours=13), "田横镇", "river")] == ["Night"]
    assert registry.on_duty(t0 - timedelta(hours=1), None, None) == []
    with pytest.raises(ValidationError, match="after"):
        DutyShift(person="x", starts_at=t0, ends_at=t0)
