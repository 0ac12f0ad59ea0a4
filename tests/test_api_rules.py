"""Rules and duty-roster API over a real (temporary) SQLite registry, and the `smartwater rules` commands."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import warnings
from pathlib import Path

import httpx
import pytest

with warnings.catch_warnings():
    warnings.filterwarnings("ignore", message=r"Using `httpx` with `starlette.testclient` is deprecated")
    from fastapi.testclient import TestClient

from api import create_app
from core.registry import open_registry
from core.rules import Rule, default_rules
from core.settings import Settings
from core.tsdb import open_store
from tests.auth_util import auth_headers

RULES = "/api/v1/rules"
ROSTER = "/api/v1/duty-roster"
SMARTWATER = str(Path(sys.executable).with_name("smartwater"))

TURBIDITY = {"name": "turbidity_high", "type": "threshold", "station_kind": "village_water",
             "metric": "turbidity_ntu",
             "levels": [{"severity": "orange", "value": 3}, {"severity": "yellow", "value": 1}],
             "hysteresis": 0.1, "description": "GB 5749-2022"}
TURBIDITY_OUT = {"name": "turbidity_high", "type": "threshold", "station_kind": "village_water", "station_ids": None,
                 "metric": "turbidity_ntu", "direction": "above",
                 "levels": [{"severity": "yellow", "value": 1.0, "windows_h": None},  # sorted by severity
                            {"severity": "orange", "value": 3.0, "windows_h": None}],
                 "min_duration_s": 0.0, "hysteresis": 0.1, "params": {}, "enabled": True,
                 "description": "GB 5749-2022"}
RAIN = {"name": "storm_3h", "type": "rain_sum", "station_kind": "rain", "station_ids": ["RG0001", "RG0002"],
        "levels": [{"severity": "red", "windows_h": {"3": 100}},
                   {"severity": "orange", "windows_h": {"3": 50, "1": 30}}]}
RAIN_OUT = {"name": "storm_3h", "type": "rain_sum", "station_kind": "rain", "station_ids": ["RG0001", "RG0002"],
            "metric": "rain_mm", "direction": "above",
            "levels": [{"severity": "orange", "value": None, "windows_h": {"3": 50.0, "1": 30.0}},
                       {"severity": "red", "value": None, "windows_h": {"3": 100.0}}],
            "min_duration_s": 0.0, "hysteresis": 0.0, "params": {}, "enabled": True, "description": ""}


@pytest.fixture()
def api_settings(tmp_path) -> Settings:
    return Settings(_env_file=None, data_dir=tmp_path)


@pytest.fixture()
def reg(api_settings):
    registry = open_registry(api_settings.db_url)
    registry.create_schema()
    yield registry
    registry.close()


@pytest.fixture()
def client(api_settings, reg):
    store = open_store(api_settings.tsdb_url)
    with TestClient(create_app(api_settings, registry=reg, store=store, stream=False),
                    headers=auth_headers(api_settings, reg)) as c:  # an admin (tests/test_auth.py: the roles)
        yield c
    store.close()


def _422(resp: httpx.Response, *needles: str, loc: list | None = None) -> dict:
    assert resp.status_code == 422, resp.text
    body = resp.json()
    assert isinstance(body["detail"], str) and body["errors"], body
    for needle in needles:
        assert needle in body["detail"], body["detail"]
    if loc is not None:
        assert loc in [e["loc"] for e in body["errors"]], body["errors"]
    return body


# -- rules: happy paths ------------------------------------------------------
def test_create_get_list_rule(client):
    resp = client.post(RULES, json=TURBIDITY)
    assert resp.status_code == 201, resp.text
    rid = resp.json()["id"]
    assert resp.json() == {"id": rid, **TURBIDITY_OUT}
    assert client.get(f"{RULES}/{rid}").json() == {"id": rid, **TURBIDITY_OUT}
    rain = client.post(RULES, json=RAIN)
    assert rain.status_code == 201, rain.text
    assert rain.json() == {"id": rain.json()["id"], **RAIN_OUT}
    assert [r["name"] for r in client.get(RULES).json()] == ["turbidity_high", "storm_3h"]


def test_replace_rule(client):
    rid = client.post(RULES, json=TURBIDITY).json()["id"]
    new = {"name": "turbidity_high", "type": "threshold", "station_kind": "village_water", "metric": "turbidity_ntu",
           "levels": [{"severity": "red", "value": 5}], "min_duration_s": 600}
    resp = client.put(f"{RULES}/{rid}", json=new)
    assert resp.status_code == 200, resp.text
    # A replacement: what the body leaves out takes its default (hysteresis, description), not the old value.
    assert resp.json() == {**TURBIDITY_OUT, "id": rid, "levels": [{"severity": "red", "value": 5.0, "windows_h": None}],
                           "min_duration_s": 600.0, "hysteresis": 0.0, "description": ""}
    assert client.get(f"{RULES}/{rid}").json() == resp.json()


def test_patch_disables_and_enables(client):
    rid = client.post(RULES, json=TURBIDITY).json()["id"]
    other = client.post(RULES, json=RAIN).json()["id"]
    off = client.patch(f"{RULES}/{rid}", json={"enabled": False})
    assert off.status_code == 200, off.text
    assert off.json() == {"id": rid, **TURBIDITY_OUT, "enabled": False}
    assert [r["id"] for r in client.get(RULES, params={"enabled": "false"}).json()] == [rid]
    assert [r["id"] for r in client.get(RULES, params={"enabled": "true"}).json()] == [other]
    on = client.patch(f"{RULES}/{rid}", json={"enabled": True})
    assert on.json() == {"id": rid, **TURBIDITY_OUT}
    assert client.get(RULES, params={"enabled": "false"}).json() == []


def test_patch_merges_then_validates_the_whole_rule(client):
    rid = client.post(RULES, json=TURBIDITY).json()["id"]
    # Flipping the direction alone makes the stored levels run the wrong way.
    _422(client.patch(f"{RULES}/{rid}", json={"direction": "below"}),
         "levels must get stricter with severity (below)", loc=["body", "levels"])
    assert client.get(f"{RULES}/{rid}").json() == {"id": rid, **TURBIDITY_OUT}  # unchanged
    both = client.patch(f"{RULES}/{rid}", json={"direction": "below", "levels": [
        {"severity": "yellow", "value": 0.5}, {"severity": "red", "value": 0.1}]})
    assert both.status_code == 200, both.text
    assert both.json()["direction"] == "below" and [lv["value"] for lv in both.json()["levels"]] == [0.5, 0.1]
    assert both.json()["hysteresis"] == 0.1  # fields not in the patch are kept
    _422(client.patch(f"{RULES}/{rid}", json={"enabled": None}), "enabled", loc=["body", "enabled"])
    _422(client.patch(f"{RULES}/{rid}", json={"id": 7}), "id", loc=["body", "id"])


def test_delete_rule(client):
    rid = client.post(RULES, json=TURBIDITY).json()["id"]
    resp = client.delete(f"{RULES}/{rid}")
    assert resp.status_code == 204 and resp.content == b""
    assert client.get(f"{RULES}/{rid}").status_code == 404
    assert client.delete(f"{RULES}/{rid}").status_code == 404
    assert client.get(RULES).json() == []


def test_every_default_rule_round_trips(client):
    for rule in default_rules():
        body = rule.model_dump(mode="json", exclude={"id"})
        resp = client.post(RULES, json=body)
        assert resp.status_code == 201, resp.text
        out = resp.json()
        assert Rule.model_validate(out) == rule.model_copy(update={"id": out["id"]})
    assert len(client.get(RULES).json()) == len(default_rules())


# -- rules: errors -----------------------------------------------------------
def test_duplicate_name_is_409(client):
    assert client.post(RULES, json=TURBIDITY).status_code == 201
    resp = client.post(RULES, json=TURBIDITY)
    assert resp.status_code == 409 and resp.json() == {"detail": "a rule named 'turbidity_high' exists"}
    rid = client.post(RULES, json=RAIN).json()["id"]
    renamed = client.put(f"{RULES}/{rid}", json={**RAIN, "name": "turbidity_high"})
    assert renamed.status_code == 409
    assert client.patch(f"{RULES}/{rid}", json={"name": "turbidity_high"}).status_code == 409
    assert client.get(f"{RULES}/{rid}").json()["name"] == "storm_3h"


def test_unknown_rule_is_404(client):
    assert client.get(f"{RULES}/999").json() == {"detail": "rule 999 not found"}
    assert client.get(f"{RULES}/999").status_code == 404
    assert client.put(f"{RULES}/999", json=TURBIDITY).status_code == 404
    assert client.patch(f"{RULES}/999", json={"enabled": False}).status_code == 404
    assert client.delete(f"{RULES}/999").status_code == 404


@pytest.mark.parametrize(("change", "needles", "loc"), [
    ({"levels": [{"severity": "yellow", "value": 3}, {"severity": "orange", "value": 1}]},
     ["body field 'levels'", "levels must get stricter with severity (above)"], ["body", "levels"]),
    ({"levels": [{"severity": "yellow", "value": 1}, {"severity": "yellow", "value": 2}]},
     ["each severity may appear once in levels"], ["body", "levels"]),
    ({"levels": [{"severity": "yellow"}]}, ["every level of a threshold rule needs a value"], ["body", "levels"]),
    ({"levels": [{"severity": "purple", "value": 1}]}, ["levels.0.severity"], ["body", "levels", 0, "severity"]),
    ({"levels": [{"severity": "red", "value": 1, "colour": "x"}]}, ["levels.0.colour"], None),
    ({"metric": "nitrate_mgl"}, ["body field 'metric'", "'nitrate_mgl' is not a village_water metric"],
     ["body", "metric"]),
    ({"metric": None}, ["a threshold rule needs a metric"], ["body", "metric"]),
    ({"name": "Turbidity High"}, ["body field 'name'", "lowercase letters"], ["body", "name"]),
    ({"type": "magic"}, ["body field 'type'"], ["body", "type"]),
    ({"station_kind": "lake"}, ["body field 'station_kind'"], ["body", "station_kind"]),
    ({"direction": "sideways"}, ["body field 'direction'"], ["body", "direction"]),
    ({"min_duration_s": -1}, ["body field 'min_duration_s'", "greater than or equal to 0"],
     ["body", "min_duration_s"]),
    ({"id": 5}, ["body field 'id'", "Extra inputs are not permitted"], ["body", "id"]),
    ({"colour": "red"}, ["body field 'colour'"], ["body", "colour"]),
])
def test_rule_422(client, change, needles, loc):
    body = {**TURBIDITY, **change}
    _422(client.post(RULES, json=body), *needles, loc=loc)
    assert client.get(RULES).json() == []


@pytest.mark.parametrize(("body", "needles", "loc"), [
    ({**RAIN, "station_kind": "river"}, ["rain_sum rules apply to rain gauges"], ["body", "station_kind"]),
    ({**RAIN, "levels": [{"severity": "red", "windows_h": {"96": 100}}]}, ["rain window 96 h outside 1..72 h"],
     ["body", "levels", 0, "windows_h"]),
    ({**RAIN, "levels": [{"severity": "red", "value": 100}]}, ["needs windows_h"], ["body", "levels"]),
    ({"name": "rise", "type": "rate_of_rise", "station_kind": "river", "metric": "water_level_m",
      "levels": [{"severity": "red", "value": 1}], "params": {"window_h": 48}},
     ["body field 'params.window_h'", "params.window_h must be in (0, 24]"], ["body", "params", "window_h"]),
    ({"name": "quiet", "type": "stale", "station_kind": "rain", "levels": []},
     ["a stale rule has exactly one level"], ["body", "levels"]),
    ({"name": "ref", "type": "reference_level", "station_kind": "rain", "metric": "rain_mm"},
     ["reference_level rules apply to water_level_m of reservoirs and rivers"], None),
])
def test_rule_422_cross_field(client, body, needles, loc):
    _422(client.post(RULES, json=body), *needles, loc=loc)


@pytest.mark.parametrize("content", [b"", b"not json", b"[1, 2]", b'{"name": 5}', b'{"levels": "x"}'])
def test_malformed_rule_body_is_422(client, content):
    _422(client.post(RULES, content=content, headers={"content-type": "application/json"}))


@pytest.mark.parametrize("path", [f"{RULES}/abc", f"{RULES}/0", f"{RULES}/{2**64}"])
def test_bad_rule_id_is_422(client, path):
    _422(client.get(path), "path parameter 'rule_id'")


def test_bad_enabled_filter_is_422(client):
    _422(client.get(RULES, params={"enabled": "maybe"}), "query parameter 'enabled'")


# -- duty roster -------------------------------------------------------------
def _shift(person: str, **kw) -> dict:
    return {"person": person, "starts_at": "2026-06-28T08:00:00+08:00", "ends_at": "2026-06-29T08:00:00+08:00", **kw}


def test_roster_crud(client):
    resp = client.post(ROSTER, json=_shift("Wang Li", email="wang.li@jimo.example", phone="+86 532 8888 0000",
                                           town="通济街道", station_kind="reservoir", rank=1))
    assert resp.status_code == 201, resp.text
    sid = resp.json()["id"]
    # Times come back in UTC, whatever offset they were given in.
    assert resp.json() == {"id": sid, "person": "Wang Li", "email": "wang.li@jimo.example",
                           "phone": "+86 532 8888 0000", "town": "通济街道", "station_kind": "reservoir",
                           "starts_at": "2026-06-28T00:00:00+00:00", "ends_at": "2026-06-29T00:00:00+00:00",
                           "rank": 1, "fallback": False}
    later = client.post(ROSTER, json=_shift("Zhao Min", starts_at="2026-06-29T08:00:00+08:00",
                                            ends_at="2026-06-30T08:00:00+08:00")).json()
    assert [s["id"] for s in client.get(ROSTER).json()] == [sid, later["id"]]
    # 07:59 local on the 29th is still the first shift; 08:00 is the second (ends_at is exclusive).
    assert [s["person"] for s in client.get(ROSTER, params={"at": "2026-06-29T07:59:00+08:00"}).json()] == ["Wang Li"]
    assert [s["person"] for s in client.get(ROSTER, params={"at": "2026-06-29T00:00:00Z"}).json()] == ["Zhao Min"]
    assert client.get(ROSTER, params={"at": "2027-01-01T00:00:00Z"}).json() == []
    assert client.delete(f"{ROSTER}/{sid}").status_code == 204
    assert client.delete(f"{ROSTER}/{sid}").status_code == 404
    assert client.delete(f"{ROSTER}/{sid}").json() == {"detail": f"shift {sid} not found"}
    assert [s["id"] for s in client.get(ROSTER).json()] == [later["id"]]


def test_on_duty_escalation_order(client):
    def add(person: str, **kw) -> int:
        resp = client.post(ROSTER, json=_shift(person, **kw))
        assert resp.status_code == 201, resp.text
        return resp.json()["id"]

    add("general_rank0", rank=0)
    add("town_kind_rank0", town="Lingshan", station_kind="reservoir", rank=0)
    add("town_rank1", town="Lingshan", rank=1)
    add("other_town", town="Duancun", rank=0)
    add("rain_only", station_kind="rain", rank=0)
    add("fallback", fallback=True)
    add("yesterday", starts_at="2026-06-27T08:00:00+08:00", ends_at="2026-06-28T08:00:00+08:00", town="Lingshan")

    def order(**params) -> list[str]:
        resp = client.get(f"{ROSTER}/on-duty", params={"at": "2026-06-28T12:00:00+08:00", **params})
        assert resp.status_code == 200, resp.text
        return [s["person"] for s in resp.json()]

    # By rank; at equal rank the more specific shift (town and kind) first.
    assert order(town="Lingshan", kind="reservoir") == ["town_kind_rank0", "general_rank0", "town_rank1"]
    assert order(town="Duancun", kind="rain") == ["other_town", "rain_only", "general_rank0"]
    assert order() == ["general_rank0"]  # only shifts for any town and any kind match an alert with neither


def test_on_duty_falls_back(client):
    client.post(ROSTER, json=_shift("duancun_only", town="Duancun"))
    client.post(ROSTER, json=_shift("bureau_night_desk", fallback=True))
    resp = client.get(f"{ROSTER}/on-duty", params={"at": "2026-06-28T04:00:00Z", "town": "Lingshan", "kind": "river"})
    assert [s["person"] for s in resp.json()] == ["bureau_night_desk"]
    # Default time is now: nobody is on duty in 2026's roster then (or, after 2026-06-29, still nobody).
    assert client.get(f"{ROSTER}/on-duty", params={"town": "Lingshan"}).status_code == 200


@pytest.mark.parametrize(("body", "needles", "loc"), [
    (_shift("x", starts_at="2026-06-28T08:00:00"), ["body field 'starts_at'", "no UTC offset"], ["body", "starts_at"]),
    (_shift("x", ends_at="2026-06-29"), ["body field 'ends_at'", "no UTC offset"], ["body", "ends_at"]),
    (_shift("x", ends_at="2026-06-28T07:00:00+08:00"), ["ends_at must be after starts_at"], ["body", "ends_at"]),
    (_shift("x", ends_at="2026-06-28T08:00:00+08:00"), ["ends_at must be after starts_at"], ["body", "ends_at"]),
    (_shift("x", starts_at="yesterday"), ["body field 'starts_at'"], ["body", "starts_at"]),
    (_shift("x", ends_at="9999-12-31T23:00:00-05:00"), ["ends_at must be between"], ["body", "ends_at"]),
    (_shift("x", email="not-an-address"), ["body field 'email'", "e-mail address"], ["body", "email"]),
    (_shift("x", phone="call me"), ["body field 'phone'", "phone number"], ["body", "phone"]),
    (_shift("", ), ["body field 'person'"], ["body", "person"]),
    (_shift("x", station_kind="lake"), ["body field 'station_kind'"], ["body", "station_kind"]),
    (_shift("x", rank=-1), ["body field 'rank'"], ["body", "rank"]),
    (_shift("x", id=3), ["body field 'id'"], ["body", "id"]),
    ({"person": "x"}, ["body field 'starts_at'", "body field 'ends_at'"], ["body", "starts_at"]),
])
def test_roster_422(client, body, needles, loc):
    _422(client.post(ROSTER, json=body), *needles, loc=loc)
    assert client.get(ROSTER).json() == []


@pytest.mark.parametrize(("path", "params", "needles"), [
    (ROSTER, {"at": "2026-06-28T08:00:00"}, ["query parameter 'at'", "no UTC offset"]),
    (f"{ROSTER}/on-duty", {"at": "soon"}, ["query parameter 'at'", "ISO 8601"]),
    (f"{ROSTER}/on-duty", {"kind": "lake"}, ["query parameter 'kind'"]),
])
def test_roster_query_422(client, path, params, needles):
    _422(client.get(path, params=params), *needles)


def test_bad_shift_id_is_422(client):
    _422(client.delete(f"{ROSTER}/abc"), "path parameter 'shift_id'")


def test_openapi_lists_rules_roster_and_stream(client):
    paths = client.get("/openapi.json").json()["paths"]
    assert {"/api/v1/rules", "/api/v1/rules/{rule_id}", "/api/v1/duty-roster", "/api/v1/duty-roster/on-duty",
            "/api/v1/duty-roster/{shift_id}", "/api/v1/alerts/stream"} <= set(paths)
    assert set(paths["/api/v1/rules/{rule_id}"]) == {"get", "put", "patch", "delete"}


def test_stream_disabled_is_503(client):
    resp = client.get("/api/v1/alerts/stream")
    assert resp.status_code == 503 and "not enabled" in resp.json()["detail"]


# -- the `smartwater rules` commands -----------------------------------------
def sw(args, data_dir):
    env = {**os.environ, "SMARTWATER_DATA_DIR": str(data_dir)}
    env.pop("SMARTWATER_DB_URL", None), env.pop("SMARTWATER_TSDB_URL", None)
    return subprocess.run([SMARTWATER, *args], capture_output=True, text=True, env=env, timeout=120)


GOOD_YAML = """\
# a bureau's own rules
rules:
  - name: river_flow_high
    type: threshold
    station_kind: river
    metric: flow_m3s
    levels: [{severity: yellow, value: 100}, {severity: red, value: 500}]
  - name: storm_1h
    type: rain_sum
    station_kind: rain
    levels:
      - {severity: orange, windows_h: {1: 30}}
"""

BAD_YAML = """\
- name: river_flow_high
  type: threshold
  station_kind: river
  metric: flow_m3s
  levels: [{severity: yellow, value: 100}, {severity: red, value: 500}]
- name: flow_backwards
  type: threshold
  station_kind: river
  metric: flow_m3s
  levels: [{severity: yellow, value: 500}, {severity: red, value: 100}]
"""


def _names(data_dir) -> list[str]:
    res = sw(["rules", "list", "--json"], data_dir)
    assert res.returncode == 0, res.stderr
    return [r["name"] for r in json.loads(res.stdout)]


def test_cli_rules_load_good_then_bad(tmp_path):
    good, bad = tmp_path / "good.yaml", tmp_path / "bad.yaml"
    good.write_text(GOOD_YAML, encoding="utf-8")
    bad.write_text(BAD_YAML, encoding="utf-8")

    res = sw(["rules", "load", str(good)], tmp_path)
    assert res.returncode == 0, res.stderr
    assert "2 rules loaded" in res.stdout and "(2 new, 0 replaced)" in res.stdout
    assert _names(tmp_path) == ["river_flow_high", "storm_1h"]

    # The first rule of the bad file is valid and would replace one; nothing may be written all the same.
    res = sw(["rules", "load", str(bad)], tmp_path)
    assert res.returncode == 2
    assert "rule #2 'flow_backwards'" in res.stderr and "levels must get stricter with severity (above)" in res.stderr
    assert "nothing loaded" in res.stderr and "Traceback" not in res.stderr
    listed = json.loads(sw(["rules", "list", "--json"], tmp_path).stdout)
    assert [lv["value"] for lv in listed[0]["levels"]] == [100.0, 500.0]

    again = sw(["rules", "load", str(good)], tmp_path)
    assert again.returncode == 0 and "(0 new, 2 replaced)" in again.stdout
    assert _names(tmp_path) == ["river_flow_high", "storm_1h"]


def test_cli_rules_load_unreadable_files(tmp_path):
    missing = sw(["rules", "load", str(tmp_path / "nope.yaml")], tmp_path)
    assert missing.returncode == 2 and "cannot read" in missing.stderr
    broken = tmp_path / "broken.yaml"
    broken.write_text("rules: [\n", encoding="utf-8")
    res = sw(["rules", "load", str(broken)], tmp_path)
    assert res.returncode == 2 and "not valid YAML at line" in res.stderr and "Traceback" not in res.stderr
    dup = tmp_path / "dup.yaml"
    dup.write_text(GOOD_YAML + GOOD_YAML.split("rules:\n", 1)[1], encoding="utf-8")
    res = sw(["rules", "load", str(dup)], tmp_path)
    assert res.returncode == 2 and "rules #1, #3 share the name 'river_flow_high'" in res.stderr
    assert _names(tmp_path) == []


def test_cli_rules_defaults_and_init(tmp_path):
    res = sw(["init"], tmp_path)
    assert res.returncode == 0, res.stderr
    expected = [r.name for r in default_rules()]
    assert f"{len(expected)} default alert rules loaded" in res.stdout
    assert _names(tmp_path) == expected
    # init leaves an existing rule set alone (edits survive); `rules defaults` restores the shipped rules.
    custom = tmp_path / "custom.yaml"
    custom.write_text("- {name: turbidity, type: threshold, station_kind: village_water, metric: turbidity_ntu, "
                      "levels: [{severity: red, value: 9}]}\n", encoding="utf-8")
    assert sw(["rules", "load", str(custom)], tmp_path).returncode == 0
    res = sw(["init"], tmp_path)
    assert res.returncode == 0 and "default alert rules" not in res.stdout
    listed = json.loads(sw(["rules", "list", "--json"], tmp_path).stdout)
    turbidity = next(r for r in listed if r["name"] == "turbidity")
    assert [lv["value"] for lv in turbidity["levels"]] == [9.0]
    res = sw(["rules", "defaults"], tmp_path)
    assert res.returncode == 0 and f"{len(expected)} default rules loaded" in res.stdout
    assert _names(tmp_path) == expected
    table = sw(["rules", "list"], tmp_path)
    assert table.returncode == 0 and "reservoir_level" in table.stdout


@pytest.mark.parametrize("number", ["NaN", "Infinity", "-Infinity", "1e999", "-1e999"])
def test_non_finite_numbers_are_422_everywhere(client, reg, number):
    body = json.dumps(TURBIDITY).replace('"value": 3', f'"value": {number}')
    assert number in body
    resp = client.post(RULES, content=body, headers={"Content-Type": "application/json"})
    assert resp.status_code == 422, resp.text
    assert "finite number" in resp.json()["detail"] and resp.json()["errors"][0]["loc"] == ["body"]
    assert not [r for r in reg.list_rules() if r.name == "turbidity_high"]
    shift = ('{"person": "x", "starts_at": "2026-07-01T08:00:00+08:00", "ends_at": "2026-07-02T08:00:00+08:00", '
             f'"rank": {number}}}')
    assert client.post(ROSTER, content=shift, headers={"Content-Type": "application/json"}).status_code == 422
    # the same body with a finite number is fine
    ok = client.post(RULES, content=body.replace(number, "3"), headers={"Content-Type": "application/json"})
    assert ok.status_code == 201, ok.text
