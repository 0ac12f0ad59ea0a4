import pytest
from pydantic import ValidationError

from core.rules import Rule, default_rules, load_rules_yaml


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
