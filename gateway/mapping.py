"""Protocol element/code → project metric: the tables (gateway/mappings.yaml, extended by an operator's file),
validated whole, and the routing of one decoded message to the device's registered stations."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timezone, tzinfo
from pathlib import Path
from typing import Any, Mapping as TMapping

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from core.domain import KINDS, METRICS
from gateway.protocol import Message

DEFAULT_FILE = Path(__file__).with_name("mappings.yaml")
PROTOCOLS = ("sl651", "hj212")
ALL_METRICS = {m for specs in METRICS.values() for m in specs}
HEALTH = ("battery_v",)
# HJ 212 data flags (docs/gateway.md): only N is a normal measurement; the others mark a value taken during
# maintenance, calibration, a fault... which must never raise an alert.
FLAG_MEANINGS = {"N": "normal", "F": "analyser stopped", "M": "maintenance", "S": "set by hand", "D": "fault",
                 "C": "calibration", "T": "over the range", "B": "communication abnormal"}


class Target(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    metric: str | None = None
    scale: float = Field(default=1.0, gt=0)
    cumulative: bool = False
    health: str | None = None
    name: str = ""

    @field_validator("metric")
    @classmethod
    def _known_metric(cls, v: str | None) -> str | None:
        if v is not None and v not in ALL_METRICS:
            raise ValueError(f"{v!r} is not a project metric ({', '.join(sorted(ALL_METRICS))})")
        return v

    @field_validator("health")
    @classmethod
    def _known_health(cls, v: str | None) -> str | None:
        if v is not None and v not in HEALTH:
            raise ValueError(f"{v!r} is not a device-health value ({', '.join(HEALTH)})")
        return v


class MappingFile(BaseModel):
    model_config = ConfigDict(extra="forbid")

    sl651_station_kinds: dict[str, str] = {}
    sl651: dict[str, Target] = {}
    hj212: dict[str, Target] = {}

    @field_validator("sl651_station_kinds")
    @classmethod
    def _kinds(cls, v: dict[str, str]) -> dict[str, str]:
        bad = {k: kind for k, kind in v.items() if kind not in KINDS}
        if bad:
            raise ValueError(f"unknown station kinds {bad} (kinds: {', '.join(KINDS)})")
        return v

    @field_validator("sl651")
    @classmethod
    def _hex_codes(cls, v: dict[str, Target]) -> dict[str, Target]:
        return {str(k).upper().zfill(2): t for k, t in v.items()}


class MappingError(ValueError):
    pass


@dataclass
class Mapping:
    tables: dict[str, dict[str, Target]]
    station_kinds: dict[str, str]

    def target(self, protocol: str, code: str) -> Target | None:
        return self.tables[protocol].get(code)


def _read(path: Path) -> MappingFile:
    try:
        doc = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise MappingError(f"{path}: {exc}") from None
    try:
        return MappingFile.model_validate(doc)
    except ValidationError as exc:
        lines = [f"  {'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()]
        raise MappingError(f"{path}: {len(lines)} problem(s)\n" + "\n".join(lines)) from None


def load_mapping(extra: Path | None = None) -> Mapping:
    """The shipped tables, with an operator's file (same shape) laid over them entry by entry."""
    base = _read(DEFAULT_FILE)
    tables = {"sl651": dict(base.sl651), "hj212": dict(base.hj212)}
    kinds = dict(base.sl651_station_kinds)
    if extra is not None:
        more = _read(Path(extra))
        tables["sl651"].update(more.sl651)
        tables["hj212"].update(more.hj212)
        kinds.update(more.sl651_station_kinds)
    return Mapping(tables, kinds)


# -- routing -----------------------------------------------------------------------------------------------------
@dataclass
class Routed:
    """What one message becomes: readings per (kind, station), and everything set aside, counted by reason."""

    readings: dict[tuple[str, str], list[tuple[datetime, str, float]]] = field(default_factory=dict)
    unmapped: dict[str, int] = field(default_factory=dict)         # code -> count (no table entry or no station)
    withheld: list[tuple[str, float, str]] = field(default_factory=list)  # (code, value, flag) not normal
    out_of_range: list[str] = field(default_factory=list)
    health: dict[str, float] = field(default_factory=dict)

    @property
    def count(self) -> int:
        return sum(len(v) for v in self.readings.values())


class CumulativeState:
    """Last running total per (device, code): a total becomes an increment; a lower total is a counter reset."""

    def __init__(self) -> None:
        self.last: dict[tuple[str, str], tuple[datetime, float]] = {}

    def increment(self, device: str, code: str, ts: datetime, total: float) -> float | None:
        key = (device, code)
        prev = self.last.get(key)
        if prev is not None and ts <= prev[0]:
            return None  # a repeated or older report: its increment was counted already
        self.last[key] = (ts, total)
        if prev is None or total < prev[1]:
            return None
        return round(total - prev[1], 6)


def route(msg: Message, mapping: Mapping, stations: TMapping[str, str], zone: tzinfo,
          cumulative: CumulativeState | None = None) -> Routed:
    """Map each observation to (station, metric); ``stations``: the device's station id -> kind, in order."""
    out = Routed()
    table = mapping.tables[msg.protocol]
    preferred = mapping.station_kinds.get(msg.station_type or "", None) if msg.protocol == "sl651" else None
    codes_present = {o.code for o in msg.observations}
    utc_of: dict[datetime, datetime] = {}   # a report's values share a few times: convert each once
    station_of: dict[str, str | None] = {}
    codes: dict[tuple[str, str], list[str]] = {}
    first_code: dict[tuple, str] = {}
    clash = False
    for o in msg.observations:
        t = table.get(o.code)
        if t is None or (t.metric is None and t.health is None):
            out.unmapped[o.code] = out.unmapped.get(o.code, 0) + 1
            continue
        if t.health:
            out.health[t.health] = o.value
            continue
        if o.flag != "N":
            out.withheld.append((o.code, o.value, o.flag))
            continue
        station = station_of.get(t.metric, "")
        if station == "":
            station = station_of[t.metric] = _station_for(t.metric, stations, preferred)
        if station is None:
            out.unmapped[o.code] = out.unmapped.get(o.code, 0) + 1
            continue
        ts = utc_of.get(o.local_time)
        if ts is None:
            ts = utc_of[o.local_time] = o.local_time.replace(tzinfo=zone).astimezone(timezone.utc)
        value = o.value * t.scale
        if t.cumulative:
            inc = cumulative.increment(msg.device, o.code, ts, value) if cumulative is not None else None
            # A report carrying the increment itself (20, F4) needs no derived one.
            if inc is None or any(c in codes_present for c, x in table.items()
                                  if x.metric == t.metric and not x.cumulative and c != o.code):
                continue
            value = inc
        kind = stations[station]
        spec = METRICS[kind][t.metric]
        if not spec.min <= value <= spec.max:
            out.out_of_range.append(f"{o.code}={o.value:g} -> {t.metric}={value:g} outside {spec.min:g}..{spec.max:g}")
            continue
        key = (kind, station)
        out.readings.setdefault(key, []).append((ts, t.metric, value))
        codes.setdefault(key, []).append(o.code)
        first = first_code.setdefault((key, t.metric), o.code)
        clash = clash or first != o.code
    if clash:
        _one_code_per_metric(out, codes)
    return out


def _one_code_per_metric(out: Routed, codes: dict[tuple[str, str], list[str]]) -> None:
    """Two elements of one report may give the same metric (SL 651 hourly reports carry twelve 5-minute rain
    amounts and the hour's rain): the finer series (more values) wins, so nothing is counted twice."""
    for key, rows in out.readings.items():
        per: dict[str, dict[str, int]] = {}
        for (_ts, metric, _v), code in zip(rows, codes[key]):
            n = per.setdefault(metric, {})
            n[code] = n.get(code, 0) + 1
        keep = {metric: max(n, key=lambda c: (n[c], c)) for metric, n in per.items()}
        out.readings[key] = [row for row, code in zip(rows, codes[key]) if keep[row[1]] == code]


def _station_for(metric: str, stations: TMapping[str, str], preferred: str | None) -> str | None:
    first = None
    for sid, kind in stations.items():
        if metric in METRICS.get(kind, {}):
            if kind == preferred:
                return sid
            if first is None:
                first = sid
    return first


def describe(mapping: Mapping) -> dict[str, Any]:
    return {p: {c: t.model_dump(exclude_defaults=True) for c, t in mapping.tables[p].items()} for p in PROTOCOLS}
