"""Incidents as data: how alerts are grouped, which alerts mute which, and silences (docs/alert-incidents.md).

The model is Prometheus Alertmanager's, applied to the bureau's alerts:

* every alert carries **labels** (``alert_labels``): station, kind, town, river, rule, rule family, severity;
* a **route** picks alerts by matchers and groups them by some labels into one incident per distinct value set
  (one town's chlorine alerts, one river's level alerts), with the timing of Alertmanager's aggregation groups:
  ``group_wait`` (collect the first alerts before the first notification), ``group_interval`` (at most one
  notification per change batch), ``repeat_interval`` (repeat an unchanged open incident);
* an **inhibit rule** mutes target alerts while a source alert with the same values of the ``equal`` labels is
  open (a station's level alert mutes its own rate-of-rise alert): muted alerts are stored, never notified;
* a **silence** mutes alerts matching its matchers from ``starts_at`` to ``ends_at``, with who and why.

Everything here is pure and validated whole (``IncidentPolicy.parse``): one readable error lists every problem.
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from functools import cached_property
from pathlib import Path
from typing import Any, Iterable, Literal, Mapping

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

# The labels an alert carries; matchers and group_by may name only these.
LABELS = ("station_id", "station_kind", "town", "river", "village", "rule", "rule_family", "severity", "metric")
LABEL_PATTERN = r"^[a-z_]{1,32}$"


class Matcher(BaseModel):
    """``label op value``: ``=`` equal, ``!=`` not equal, ``=~`` regex matches the whole value, ``!~`` does not."""
    model_config = ConfigDict(extra="forbid", frozen=True)

    label: str = Field(pattern=LABEL_PATTERN)
    op: Literal["=", "!=", "=~", "!~"] = "="
    value: str = Field(max_length=500)

    @field_validator("label")
    @classmethod
    def _known(cls, v: str) -> str:
        if v not in LABELS:
            raise ValueError(f"unknown label {v!r}; labels are {', '.join(LABELS)}")
        return v

    @model_validator(mode="after")
    def _regex(self) -> "Matcher":
        if self.op in ("=~", "!~"):
            try:
                re.compile(self.value)
            except re.error as exc:
                raise ValueError(f"{self.label}{self.op}{self.value!r}: not a regular expression ({exc})") from None
        return self

    @cached_property
    def _compiled(self) -> re.Pattern[str] | None:
        return re.compile(self.value) if self.op in ("=~", "!~") else None

    def matches(self, labels: Mapping[str, str]) -> bool:
        v = labels.get(self.label, "")
        if self.op == "=":
            return v == self.value
        if self.op == "!=":
            return v != self.value
        assert self._compiled is not None
        hit = self._compiled.fullmatch(v) is not None
        return hit if self.op == "=~" else not hit

    def __str__(self) -> str:
        return f"{self.label}{self.op}{self.value}"


def matches_all(matchers: Iterable[Matcher], labels: Mapping[str, str]) -> bool:
    return all(m.matches(labels) for m in matchers)


class Route(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(pattern=r"^[a-z][a-z0-9_]{0,63}$")
    match: list[Matcher] = Field(default_factory=list, description="all must hold; none: every alert")
    group_by: list[str] = Field(default_factory=list)
    group_wait_s: float = Field(default=30.0, ge=0, le=3600)
    group_interval_s: float = Field(default=300.0, gt=0, le=86400)
    repeat_interval_s: float = Field(default=4 * 3600.0, gt=0, le=7 * 86400)
    description: str = Field(default="", max_length=2000)

    @field_validator("group_by")
    @classmethod
    def _labels(cls, v: list[str]) -> list[str]:
        bad = [x for x in v if x not in LABELS]
        if bad:
            raise ValueError(f"group_by names unknown label(s) {', '.join(bad)}; labels are {', '.join(LABELS)}")
        if len(set(v)) != len(v):
            raise ValueError("group_by names a label twice")
        return v

    @model_validator(mode="after")
    def _timing(self) -> "Route":
        if self.repeat_interval_s < self.group_interval_s:
            raise ValueError(f"route {self.name}: repeat_interval_s ({self.repeat_interval_s:g}) must be at least "
                             f"group_interval_s ({self.group_interval_s:g})")
        return self

    def group_key(self, labels: Mapping[str, str]) -> str:
        """The incident an alert belongs to under this route: the route and its group_by values."""
        return self.name + "{" + ",".join(f"{k}={labels.get(k, '')}" for k in self.group_by) + "}"


class InhibitRule(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(pattern=r"^[a-z][a-z0-9_]{0,63}$")
    source: list[Matcher] = Field(min_length=1)
    target: list[Matcher] = Field(min_length=1)
    equal: list[str] = Field(default_factory=list, description="labels the source and target must share")
    description: str = Field(default="", max_length=2000)

    @field_validator("equal")
    @classmethod
    def _labels(cls, v: list[str]) -> list[str]:
        bad = [x for x in v if x not in LABELS]
        if bad:
            raise ValueError(f"equal names unknown label(s) {', '.join(bad)}")
        return v


class IncidentPolicy(BaseModel):
    """Rule families, routes (first match wins; the last must match every alert) and inhibit rules."""
    model_config = ConfigDict(extra="forbid")

    families: dict[str, list[str]] = Field(default_factory=dict, description="family → rule names")
    routes: list[Route] = Field(min_length=1)
    inhibit: list[InhibitRule] = Field(default_factory=list)

    @model_validator(mode="after")
    def _whole(self) -> "IncidentPolicy":
        problems: list[str] = []
        for what, names in (("route", [r.name for r in self.routes]), ("inhibit rule", [i.name for i in self.inhibit])):
            dupes = sorted({n for n in names if names.count(n) > 1})
            if dupes:
                problems.append(f"{what} name(s) used twice: {', '.join(dupes)}")
        if self.routes[-1].match:
            problems.append(f"the last route ({self.routes[-1].name}) must match every alert (no matchers), so no "
                            "alert goes unnotified")
        seen: dict[str, str] = {}
        for fam, rules in self.families.items():
            for r in rules:
                if r in seen:
                    problems.append(f"rule {r} is in two families ({seen[r]}, {fam})")
                seen[r] = fam
        if problems:
            raise ValueError("; ".join(problems))
        return self

    @cached_property
    def _family_of(self) -> dict[str, str]:
        return {r: fam for fam, rules in self.families.items() for r in rules}

    def family(self, rule: str) -> str:
        return self._family_of.get(rule, rule)

    def route_for(self, labels: Mapping[str, str]) -> Route:
        for r in self.routes:
            if matches_all(r.match, labels):
                return r
        return self.routes[-1]  # unreachable: the last route matches everything

    def inhibited(self, target: Mapping[str, str], open_alerts: Iterable[Mapping[str, str]]) -> str | None:
        """The name of the inhibit rule muting ``target`` given the open alerts' labels, or None.
        An alert never inhibits itself (a rule whose source and target both match it needs another alert)."""
        sources = list(open_alerts)
        for rule in self.inhibit:
            if not matches_all(rule.target, target):
                continue
            for src in sources:
                if src is target or src.get("station_id") == target.get("station_id") and \
                        src.get("rule") == target.get("rule"):
                    continue
                if matches_all(rule.source, src) and all(src.get(k, "") == target.get(k, "") for k in rule.equal):
                    return rule.name
        return None

    @classmethod
    def parse(cls, data: Any) -> "IncidentPolicy":
        """Validate a whole policy; a ValueError lists every problem with where it is."""
        try:
            return cls.model_validate(data)
        except ValidationError as exc:
            parts = []
            for e in exc.errors(include_url=False):
                where = ".".join(str(p) for p in e["loc"])
                parts.append(f"{where}: {e['msg'].removeprefix('Value error, ')}" if where else
                             e["msg"].removeprefix("Value error, "))
            raise ValueError("incident policy: " + "; ".join(parts)) from None

    @classmethod
    def load(cls, path: str | Path) -> "IncidentPolicy":
        with open(path, encoding="utf-8") as f:
            return cls.parse(yaml.safe_load(f))


class Silence(BaseModel):
    """Mute alerts matching every matcher from ``starts_at`` until ``ends_at``; readings are still stored and
    evaluated, alerts still raised and kept, nothing is notified. Who and why are kept for the audit trail."""
    model_config = ConfigDict(extra="forbid")

    id: int | None = None
    matchers: list[Matcher] = Field(min_length=1, max_length=20)
    starts_at: datetime
    ends_at: datetime
    created_by: str = Field(min_length=1, max_length=64)
    comment: str = Field(min_length=2, max_length=1000, description="why (maintenance of station X, …)")
    maintenance: bool = Field(default=False, description="a station under maintenance: the map shows it so")

    @model_validator(mode="after")
    def _window(self) -> "Silence":
        if self.starts_at.tzinfo is None or self.ends_at.tzinfo is None:
            raise ValueError("starts_at and ends_at need a UTC offset")
        if self.ends_at <= self.starts_at:
            raise ValueError("ends_at must be after starts_at")
        if self.ends_at - self.starts_at > timedelta(days=90):
            raise ValueError("a silence may last at most 90 days: set a new one when it ends")
        return self

    def active(self, at: datetime) -> bool:
        return self.starts_at <= at < self.ends_at

    def mutes(self, labels: Mapping[str, str], at: datetime) -> bool:
        return self.active(at) and matches_all(self.matchers, labels)


def alert_labels(station_id: str, station_kind: str, rule: str, severity: str, metric: str = "",
                 town: str | None = None, river: str | None = None, village: str | None = None,
                 family: str | None = None) -> dict[str, str]:
    """The labels of one alert, every one a string ('' when the station has none)."""
    return {"station_id": station_id, "station_kind": station_kind, "town": town or "", "river": river or "",
            "village": village or "", "rule": rule, "rule_family": family or rule, "severity": severity,
            "metric": metric}
