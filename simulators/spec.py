"""Scenario files: what a scenario may say (a pydantic model) and where the shipped ones live.

A scenario is data, not code: the storm's shape and timing, water-quality fault events and sensor faults,
and the seed, in a YAML file. The shipped files are in ``simulators/scenario_files``; an operator's own file
works the same way (``smartwater simulate --scenario my-storm.yaml``). Errors name the field that is wrong.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal, Optional

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from core.domain import METRICS, Kind
from core.importers.problems import validation_detail

SCENARIO_DIR = Path(__file__).with_name("scenario_files")

FaultType = Literal["stuck", "spike", "dropout", "clock_drift", "duplicate", "out_of_order"]


class _Strict(BaseModel):
    # A misspelt key would otherwise be ignored silently and the scenario would not do what the file says.
    model_config = ConfigDict(extra="forbid", frozen=True)


class Centre(_Strict):
    lat: float = Field(ge=36.0, le=37.0)
    lon: float = Field(ge=120.0, le=121.2)


class DepthBand(_Strict):
    """Storm depth for the gauges ranked ``ranks[0]`` … ``ranks[1] - 1`` by distance from the centre."""
    ranks: tuple[int, int]
    depth_mm: tuple[float, float]
    max_shift_h: float = Field(0.0, ge=0, le=24)

    @model_validator(mode="after")
    def _ordered(self) -> "DepthBand":
        if not 0 <= self.ranks[0] < self.ranks[1]:
            raise ValueError("ranks must be [first, after_last] with 0 <= first < after_last")
        if not 0 <= self.depth_mm[0] <= self.depth_mm[1] <= 1000:
            raise ValueError("depth_mm must be [low, high] with 0 <= low <= high <= 1000")
        return self


class Storm(_Strict):
    start_min: float = Field(10.0, ge=0, le=7 * 24 * 60, description="minutes after the simulation start")
    # (hours since the storm starts, relative intensity): the same shape at every gauge, scaled by its depth.
    hyetograph: list[tuple[float, float]]
    centre: Optional[Centre] = None  # default: drawn from the seed inside the district
    depth_by_rank: list[DepthBand]
    # The stations nearest the storm cross their thresholds by this time after the simulation start.
    target_h: float = Field(2.0, gt=0, le=48)
    rivers_over_guaranteed: int = Field(1, ge=0)
    rivers_over_warning: int = Field(3, ge=0)
    reservoirs_over_flood_limit: int = Field(2, ge=0)
    runoff_coefficient: tuple[float, float] = (0.55, 0.75)
    initial_loss_mm: tuple[float, float] = (5.0, 15.0)

    @field_validator("hyetograph")
    @classmethod
    def _hyetograph(cls, knots: list[tuple[float, float]]) -> list[tuple[float, float]]:
        if len(knots) < 2:
            raise ValueError("needs at least two knots [hours, intensity]")
        times = [k[0] for k in knots]
        if times[0] < 0 or any(b <= a for a, b in zip(times, times[1:])):
            raise ValueError("knot hours must start at 0 or later and strictly increase")
        if any(k[1] < 0 for k in knots) or not any(k[1] > 0 for k in knots):
            raise ValueError("intensities must be >= 0 and not all zero")
        return knots

    @field_validator("runoff_coefficient")
    @classmethod
    def _coefficient(cls, v: tuple[float, float]) -> tuple[float, float]:
        if not 0 < v[0] <= v[1] <= 1:
            raise ValueError("must be [low, high] with 0 < low <= high <= 1")
        return v

    @field_validator("initial_loss_mm")
    @classmethod
    def _loss(cls, v: tuple[float, float]) -> tuple[float, float]:
        if not 0 <= v[0] <= v[1] <= 200:
            raise ValueError("must be [low, high] with 0 <= low <= high <= 200")
        return v

    @property
    def hours(self) -> float:
        return self.hyetograph[-1][0]


class Window(_Strict):
    start_h: float = Field(0.0, ge=0, description="hours after the simulation start")
    duration_h: Optional[float] = Field(None, gt=0, description="default: until the run ends")

    def contains(self, t_rel_s: float) -> bool:
        if t_rel_s < self.start_h * 3600:
            return False
        return self.duration_h is None or t_rel_s < (self.start_h + self.duration_h) * 3600


class DosingFailure(Window):
    """Chlorine dosing stops at a waterworks: free chlorine at its villages' taps decays towards zero."""
    town: Optional[str] = None
    villages: list[str] = []      # station ids
    count: Optional[int] = Field(None, ge=1, description="only this many of the town's villages (seeded pick)")

    @model_validator(mode="after")
    def _target(self) -> "DosingFailure":
        if not self.town and not self.villages:
            raise ValueError("name a town or a list of village station ids")
        return self


class TurbidityAfterRain(_Strict):
    # NTU per mm/h of rain at the village's nearest gauge, after routing through the source (lag_h).
    ntu_per_mm_h: tuple[float, float] = (0.003, 0.025)
    lag_h: float = Field(1.5, gt=0, le=48)


class WaterQuality(_Strict):
    dosing_failures: list[DosingFailure] = []
    turbidity_after_rain: TurbidityAfterRain = TurbidityAfterRain()


class SensorFault(Window):
    """A faulty sensor or RTU, applied by the publisher to what it sends (so ingest and alerts see it)."""
    type: FaultType
    stations: list[str] = []      # station ids
    kind: Optional[Kind] = None   # or: ``count`` stations of this kind, picked from the seed
    count: int = Field(1, ge=1)
    rate: float = Field(1.0, gt=0, le=1, description="share of reports affected (spike, duplicate, out_of_order)")
    metric: Optional[str] = None  # spike: default the kind's first metric
    magnitude: Optional[float] = None  # spike: added to the value; default by metric
    drift_s_per_h: float = Field(60.0, ge=-3600, le=3600, description="clock_drift: seconds gained per hour")

    @model_validator(mode="after")
    def _target(self) -> "SensorFault":
        if not self.stations and self.kind is None:
            raise ValueError("name station ids or a kind")
        if self.metric is not None and self.kind is not None and self.metric not in METRICS[self.kind.value]:
            raise ValueError(f"metric {self.metric!r} is not a {self.kind.value} metric "
                             f"(one of {', '.join(METRICS[self.kind.value])})")
        return self


class ScenarioSpec(_Strict):
    name: str = Field(min_length=1, max_length=64)
    description: str = ""
    seed: Optional[int] = None  # default: the caller's (SMARTWATER_DISTRICT_SEED)
    storm: Optional[Storm] = None
    water_quality: WaterQuality = WaterQuality()
    sensor_faults: list[SensorFault] = []


def builtin_names() -> list[str]:
    return sorted(p.stem for p in SCENARIO_DIR.glob("*.yaml"))


def parse_scenario(text: str, source: str = "<scenario>") -> ScenarioSpec:
    """A ScenarioSpec from YAML text; ValueError naming the source and the field on any problem."""
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ValueError(f"{source}: not valid YAML: {exc}") from None
    if not isinstance(data, dict):
        raise ValueError(f"{source}: a scenario is a YAML mapping (name, storm, water_quality, sensor_faults…)")
    try:
        return ScenarioSpec.model_validate(data)
    except ValidationError as exc:
        raise ValueError(f"{source}: {validation_detail(exc, top='(top level)')}") from None


def load_scenario(name_or_path: str | Path | ScenarioSpec) -> ScenarioSpec:
    """A shipped scenario by name (``storm``) or a YAML file by path (anything ending .yaml/.yml or naming a file)."""
    if isinstance(name_or_path, ScenarioSpec):
        return name_or_path
    text = str(name_or_path)
    path = Path(text)
    if not text.endswith((".yaml", ".yml")) and not path.is_file():
        builtin = SCENARIO_DIR / f"{text}.yaml"
        if not builtin.is_file():
            raise ValueError(f"unknown scenario {text!r}; choose one of {', '.join(builtin_names())} "
                             "or give a path to a .yaml file")
        path = builtin
    try:
        content = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ValueError(f"cannot read scenario file {path}: {exc.strerror or exc}") from None
    return parse_scenario(content, str(path))


_UNITS = {"s": 1.0, "m": 60.0, "min": 60.0, "h": 3600.0, "d": 86400.0}


def parse_duration(text: str) -> float:
    """Seconds from ``90``, ``90s``, ``30m``, ``6h`` or ``2d``; ValueError with the accepted forms otherwise."""
    t = str(text).strip().lower()
    unit = next((u for u in sorted(_UNITS, key=len, reverse=True) if t.endswith(u)), "")
    try:
        seconds = float(t[: len(t) - len(unit)] if unit else t) * _UNITS.get(unit, 1.0)
    except ValueError:
        raise ValueError(f"duration {text!r} is not a number of seconds or a number with s, m, h or d") from None
    if not seconds > 0 or seconds == float("inf"):
        raise ValueError(f"duration {text!r} must be positive")
    return seconds
