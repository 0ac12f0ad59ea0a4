"""Incidents as data: policy validation, matchers, inhibition, silences and Alertmanager's group timing (pure)."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from alerts.dispatch import Dispatcher
from core.incidents import IncidentPolicy, Matcher, Silence, alert_labels

pytestmark = pytest.mark.unit

UTC = timezone.utc
T0 = datetime(2026, 7, 20, 0, 0, tzinfo=UTC)  # 08:00 local, the main flood season

POLICY = {
    "families": {"flood": ["reservoir_level", "river_level", "river_rise"], "chlorine": ["free_chlorine_low"]},
    "routes": [
        {"name": "flood", "match": [{"label": "rule_family", "value": "flood"}], "group_by": ["town", "rule_family"],
         "group_wait_s": 0, "group_interval_s": 60, "repeat_interval_s": 3600},
        {"name": "default", "group_by": ["town", "rule_family"], "group_wait_s": 30, "group_interval_s": 300,
         "repeat_interval_s": 14400},
    ],
    "inhibit": [
        {"name": "level_mutes_its_rise", "source": [{"label": "rule", "op": "=~", "value": "river_level"}],
         "target": [{"label": "rule", "value": "river_rise"}], "equal": ["station_id"]},
    ],
}


def labels(station: str, rule: str, town: str = "灵山街道", severity: str = "yellow", kind: str = "village_water"):
    policy = IncidentPolicy.parse(POLICY)
    return alert_labels(station, kind, rule, severity, town=town, family=policy.family(rule))


def test_a_policy_is_validated_whole_with_readable_errors():
    bad = {"routes": [{"name": "a", "match": [{"label": "colour", "value": "x"}], "group_by": ["nope"]},
                      {"name": "a", "match": [{"label": "rule", "op": "=~", "value": "("}]}],
           "inhibit": [{"name": "i", "source": [], "target": [{"label": "rule", "value": "x"}]}]}
    with pytest.raises(ValueError) as err:
        IncidentPolicy.parse(bad)
    text = str(err.value)
    for expected in ("unknown label 'colour'", "group_by names unknown label(s) nope", "not a regular expression",
                     "inhibit.0.source"):
        assert expected in text, text
    with pytest.raises(ValueError, match="must match every alert"):
        IncidentPolicy.parse({"routes": [{"name": "only", "match": [{"label": "town", "value": "x"}]}]})
    with pytest.raises(ValueError, match="used twice"):
        IncidentPolicy.parse({"routes": [{"name": "a"}, {"name": "a"}]})
    with pytest.raises(ValueError, match="repeat_interval_s"):
        IncidentPolicy.parse({"routes": [{"name": "a", "group_interval_s": 600, "repeat_interval_s": 60}]})


def test_matchers():
    lab = {"town": "灵山街道", "rule": "river_rise"}
    assert Matcher(label="town", value="灵山街道").matches(lab)
    assert Matcher(label="rule", op="=~", value="river_.*").matches(lab)
    assert not Matcher(label="rule", op="=~", value="river").matches(lab)  # the whole value, as Alertmanager
    assert Matcher(label="rule", op="!~", value="reservoir_.*").matches(lab)
    assert Matcher(label="river", op="!=", value="墨水河").matches(lab)  # a missing label is ''


def test_one_towns_chlorine_alerts_are_one_incident_notified_once_after_group_wait():
    d = Dispatcher(IncidentPolicy.parse(POLICY))
    for k in range(30):  # one dosing failure: every village of the town within a minute
        d.update(k, labels(f"VW{k:04d}", "free_chlorine_low"), True, T0 + timedelta(seconds=k))
    d.update(100, labels("VW9999", "free_chlorine_low", town="大信街道"), True, T0)
    assert d.due(T0 + timedelta(seconds=29)) == []  # collecting
    first = d.due(T0 + timedelta(seconds=30))
    assert sorted((n.incident.labels["town"], n.reason, len(n.alerts)) for n in first) == [
        ("大信街道", "new", 1), ("灵山街道", "new", 30)]  # those raised by then
    for k in range(30, 60):
        d.update(k, labels(f"VW{k:04d}", "free_chlorine_low"), True, T0 + timedelta(seconds=k))
    assert d.due(T0 + timedelta(seconds=200)) == []  # the later 30 wait for the group interval
    later = d.due(T0 + timedelta(seconds=330))
    assert [(n.reason, len(n.alerts)) for n in later] == [("changed", 60)]
    assert d.due(T0 + timedelta(hours=2)) == []
    again = d.due(T0 + timedelta(seconds=330, hours=4))
    assert sorted(n.reason for n in again) == ["repeat", "repeat"]


def test_flood_alerts_notify_at_once_and_clearing_resolves_the_incident():
    d = Dispatcher(IncidentPolicy.parse(POLICY))
    d.update(1, labels("RV0001", "river_level", kind="river", severity="orange"), True, T0)
    [n] = d.due(T0)
    assert (n.reason, n.incident.route.name) == ("new", "flood")
    d.update(1, labels("RV0001", "river_level", kind="river", severity="red"), True, T0 + timedelta(seconds=10))
    assert d.due(T0 + timedelta(seconds=30)) == []  # within the group interval
    [n] = d.due(T0 + timedelta(seconds=60))
    assert n.reason == "changed" and n.alerts[0].labels["severity"] == "red"
    d.update(1, labels("RV0001", "river_level", kind="river", severity="red"), False, T0 + timedelta(minutes=5))
    [n] = d.due(T0 + timedelta(minutes=5))
    assert n.reason == "resolved" and not n.alerts[0].open
    assert d.incidents == {}
    assert d.due(T0 + timedelta(hours=5)) == []


def test_a_level_alert_mutes_its_own_rate_of_rise_alert_not_another_stations():
    d = Dispatcher(IncidentPolicy.parse(POLICY))
    d.update(1, labels("RV0001", "river_level", kind="river", severity="orange"), True, T0)
    d.update(2, labels("RV0001", "river_rise", kind="river"), True, T0)
    d.update(3, labels("RV0002", "river_rise", kind="river"), True, T0)
    [n] = d.due(T0)
    assert sorted(m.alert_id for m in n.alerts) == [1, 3]
    assert [(m.alert_id, m.muted_by) for m in n.muted] == [(2, "level_mutes_its_rise")]


def test_a_silence_mutes_until_it_expires_then_the_incident_is_notified():
    d = Dispatcher(IncidentPolicy.parse(POLICY))
    s = Silence(id=7, matchers=[Matcher(label="station_id", value="RV0001")], starts_at=T0,
                ends_at=T0 + timedelta(hours=2), created_by="duty", comment="gauge under maintenance",
                maintenance=True)
    d.update(1, labels("RV0001", "river_level", kind="river", severity="orange"), True, T0 + timedelta(minutes=1))
    assert d.due(T0 + timedelta(minutes=1), [s]) == []
    assert d.incidents and next(iter(d.incidents.values())).members[1].muted_by == "silence 7"
    assert d.due(T0 + timedelta(minutes=90), [s]) == []
    [n] = d.due(T0 + timedelta(hours=2, minutes=1), [s])
    assert n.reason == "new" and n.alerts[0].alert_id == 1
    with pytest.raises(ValueError, match="after starts_at"):
        Silence(matchers=[Matcher(label="town", value="x")], starts_at=T0, ends_at=T0, created_by="a", comment="no")
