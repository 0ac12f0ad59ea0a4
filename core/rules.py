"""Alert rules as data: validated here, stored in the registry, managed through the API or a YAML file.

Rule types:

* ``threshold``: a metric above (or below) fixed levels, one per severity.
* ``reference_level``: reservoir and river levels against the station's own reference levels
  (the ladder: flood-limit level in force, flood-control high level, design flood level; warning and
  guaranteed levels). ``params.design_margin_m`` (per reservoir: ``params.per_station``) places orange
  below the design flood level for a reservoir without a flood-control high level.
* ``rain_sum``: rolling rain sums; a level triggers when any of its windows (hours → mm) is reached.
  With ``params.per_station`` the windows may be overridden per station (mountain-torrent thresholds
  of a village's catchment).
* ``rate_of_rise``: rise of a level in metres per hour over ``params.window_h``; with
  ``params.min_share_of_warning`` only above that share of the way from the station's base level to its
  warning level.
* ``stale``: no reading for ``params.intervals`` reporting intervals (checked by the scheduler).
* ``stuck``: the same value ``params.count`` times in a row (data quality).
* ``spike``: a jump of more than the level's value between consecutive readings (data quality).

Common: ``min_duration_s`` (the condition must hold that long, in data time, before an alert is
raised), ``hysteresis`` (an alert clears only once the value is back past the threshold by this much).
"""

from __future__ import annotations

import enum
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, Field, field_validator, model_validator

from core.domain import METRICS, SEVERITY_ORDER, Kind, Severity

# A stale rule without ``params.intervals``: silent for this many reporting intervals (docs/alert-semantics.md).
DEFAULT_STALE_INTERVALS = 3


class RuleType(str, enum.Enum):
    threshold = "threshold"
    reference_level = "reference_level"
    rain_sum = "rain_sum"
    rate_of_rise = "rate_of_rise"
    stale = "stale"
    stuck = "stuck"
    spike = "spike"


class RuleLevel(BaseModel):
    model_config = {"extra": "forbid"}

    severity: Severity
    value: float | None = None
    windows_h: dict[int, float] | None = None  # rain_sum: {hours: mm}

    @field_validator("windows_h")
    @classmethod
    def _windows(cls, v: dict[int, float] | None) -> dict[int, float] | None:
        if v is not None:
            if not v:
                raise ValueError("windows_h must name at least one window")
            for h, mm in v.items():
                if not 1 <= h <= 72:
                    raise ValueError(f"rain window {h} h outside 1..72 h")
                if not mm > 0:
                    raise ValueError(f"rain threshold for {h} h must be positive")
        return v


class Rule(BaseModel):
    model_config = {"extra": "forbid"}

    id: int | None = None
    name: str = Field(pattern=r"^[a-z][a-z0-9_]{0,63}$")
    type: RuleType
    station_kind: Kind
    station_ids: list[str] | None = None  # None: every station of station_kind
    metric: str | None = None
    direction: Literal["above", "below"] = "above"
    levels: list[RuleLevel] = Field(default_factory=list)
    min_duration_s: float = Field(default=0, ge=0, le=7 * 86400)
    hysteresis: float = Field(default=0, ge=0)
    params: dict[str, Any] = Field(default_factory=dict)
    enabled: bool = True
    description: str = Field(default="", max_length=2000)

    @model_validator(mode="after")
    def _consistent(self) -> "Rule":
        kind = self.station_kind.value
        needs_metric = self.type not in (RuleType.stale, RuleType.rain_sum)
        if self.type == RuleType.rain_sum:
            self.metric = self.metric or "rain_mm"
            if kind not in ("rain", "village_water"):
                raise ValueError("rain_sum rules apply to rain gauges or to villages (mountain torrents)")
        if needs_metric and not self.metric:
            raise ValueError(f"a {self.type.value} rule needs a metric")
        metric_kind = "rain" if self.type == RuleType.rain_sum else kind
        if self.metric and self.metric not in METRICS[metric_kind]:
            raise ValueError(f"metric {self.metric!r} is not a {metric_kind} metric ({', '.join(METRICS[metric_kind])})")
        sevs = [lv.severity.value for lv in self.levels]
        if len(set(sevs)) != len(sevs):
            raise ValueError("each severity may appear once in levels")
        self.levels.sort(key=lambda lv: SEVERITY_ORDER.index(lv.severity.value))
        if self.type == RuleType.reference_level:
            if kind not in ("reservoir", "river") or self.metric != "water_level_m":
                raise ValueError("reference_level rules apply to water_level_m of reservoirs and rivers")
        elif self.type == RuleType.rain_sum:
            if not self.levels or any(lv.windows_h is None for lv in self.levels):
                raise ValueError("every level of a rain_sum rule needs windows_h, e.g. {3: 50}")
        elif self.type in (RuleType.threshold, RuleType.rate_of_rise, RuleType.spike):
            if not self.levels or any(lv.value is None for lv in self.levels):
                raise ValueError(f"every level of a {self.type.value} rule needs a value")
            vals = [lv.value for lv in self.levels]
            ordered = sorted(vals) if self.direction == "above" else sorted(vals, reverse=True)
            if vals != ordered:
                raise ValueError(f"levels must get stricter with severity ({self.direction})")
        elif self.type in (RuleType.stale, RuleType.stuck):
            if len(self.levels) != 1:
                raise ValueError(f"a {self.type.value} rule has exactly one level (its severity)")
        if self.type == RuleType.rate_of_rise:
            w = self.params.setdefault("window_h", 1.0)
            if not isinstance(w, (int, float)) or not 0 < w <= 24:
                raise ValueError("params.window_h must be in (0, 24]")
            share = self.params.get("min_share_of_warning")
            if share is not None and (isinstance(share, bool) or not isinstance(share, (int, float))
                                      or not 0 <= share <= 1):
                raise ValueError("params.min_share_of_warning must be a share in 0..1 (0.5: halfway from the "
                                 "station's base level to its warning level)")
        if self.type == RuleType.reference_level:
            margins = [("params.design_margin_m", self.params.get("design_margin_m"))]
            per = self.params.get("per_station") or {}
            if not isinstance(per, dict):
                raise ValueError("params.per_station must map station ids to {design_margin_m: metres}")
            for sid, own in per.items():
                if not isinstance(own, dict) or set(own) - {"design_margin_m"}:
                    raise ValueError(f"params.per_station.{sid} may hold only design_margin_m")
                margins.append((f"params.per_station.{sid}.design_margin_m", own.get("design_margin_m")))
            for name, m in margins:
                if m is not None and (isinstance(m, bool) or not isinstance(m, (int, float)) or not 0 <= m <= 20):
                    raise ValueError(f"{name} must be metres in 0..20")
        if self.type == RuleType.stale:
            n = self.params.setdefault("intervals", DEFAULT_STALE_INTERVALS)
            if not isinstance(n, (int, float)) or not 1 <= n <= 1000:
                raise ValueError("params.intervals must be in 1..1000")
        if self.type == RuleType.stuck:
            n = self.params.setdefault("count", 6)
            if not isinstance(n, int) or not 3 <= n <= 10000:
                raise ValueError("params.count must be an integer in 3..10000")
        return self

    def applies_to(self, station_id: str, station_kind: str) -> bool:
        return (self.enabled and self.station_kind == station_kind
                and (self.station_ids is None or station_id in self.station_ids))


def load_rules_yaml(path: str | Path) -> list[Rule]:
    """Rules from a YAML file: a list of rule mappings, or ``{rules: [...]}``."""
    doc = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    if isinstance(doc, dict):
        doc = doc.get("rules")
    if not isinstance(doc, list):
        raise ValueError(f"{path}: expected a list of rules (or a 'rules:' key holding one)")
    out = []
    for i, item in enumerate(doc, 1):
        try:
            out.append(Rule.model_validate(item))
        except ValueError as exc:
            raise ValueError(f"{path}: rule #{i}: {exc}") from None
    names = [r.name for r in out]
    dup = {n for n in names if names.count(n) > 1}
    if dup:
        raise ValueError(f"{path}: duplicate rule names {sorted(dup)}")
    return out


DEFAULT_RULES_FILE = Path(__file__).with_name("default_rules.yaml")


def default_rules() -> list[Rule]:
    return load_rules_yaml(DEFAULT_RULES_FILE)
