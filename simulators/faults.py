"""Sensor and RTU faults, applied to what a station sends (so ingest and the data-quality rules meet them).

``FaultPlan.messages(station, due)`` turns one scheduled report into the messages actually sent: none
(dropout, or a report held back), one, or several (duplicate, a held-back report sent late after the next
one). It is a pure function of (spec, seed, station, due time) like the scenario itself, so the runner keeps
no fault state and a CSV export gives the same stream.

* stuck: every metric repeats its value at the fault's start.
* spike: a share of reports (about ``rate``) carry ``magnitude`` added to one metric; the next report is normal.
* dropout: no reports in the window (the stale-station check notices).
* clock_drift: the RTU's clock gains ``drift_s_per_h`` (negative: loses), so timestamps stray from the truth.
* duplicate: a share of reports are sent twice.
* out_of_order: a share of reports are held back and sent after the next one.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Callable, Iterable

from core.domain import METRICS, Station
from simulators.spec import SensorFault

Values = dict[str, float]
Message = tuple[float, Values]  # (timestamp sent, epoch s; values)

# Spike size when the file gives none: large enough for a spike rule, inside every hard plausibility limit.
DEFAULT_SPIKE = {"turbidity_ntu": 40.0, "water_level_m": 3.0, "rain_mm": 60.0, "free_chlorine_mgl": 3.0,
                 "ph": 2.5, "pressure_mpa": 0.5, "flow_m3s": 200.0, "flow_m3h": 500.0, "inflow_m3s": 50.0,
                 "outflow_m3s": 50.0, "storage_mcm": 5.0, "seepage_pressure_kpa": 50.0, "depth_m": 3.0,
                 "volume_m3": 1000.0}


@dataclass(frozen=True, slots=True)
class _Bound:
    """A fault bound to its stations, with times in epoch seconds."""
    index: int
    fault: SensorFault
    start: float
    end: float

    def active(self, t: float) -> bool:
        return self.start <= t < self.end


class FaultPlan:
    def __init__(self, faults: Iterable[SensorFault], stations: Iterable[Station], seed: int, t0: float) -> None:
        self.seed = seed
        stations = list(stations)
        known = {s.id for s in stations}
        self._by_station: dict[str, list[_Bound]] = {}
        for j, fault in enumerate(faults):
            ids = [sid for sid in fault.stations if sid in known]
            if fault.kind is not None:
                pool = sorted(s.id for s in stations if s.kind == fault.kind and s.id not in fault.stations)
                ids += sorted(random.Random(f"{seed}:fault:{j}").sample(pool, min(fault.count, len(pool))))
            end = float("inf") if fault.duration_h is None else t0 + (fault.start_h + fault.duration_h) * 3600
            for sid in ids:
                self._by_station.setdefault(sid, []).append(_Bound(j, fault, t0 + fault.start_h * 3600, end))

    def __bool__(self) -> bool:
        return bool(self._by_station)

    def stations(self, fault_type: str | None = None) -> list[str]:
        """Station ids with a fault (of this type), for logs and tests."""
        return sorted(sid for sid, bs in self._by_station.items()
                      if fault_type is None or any(b.fault.type == fault_type for b in bs))

    def _hit(self, b: _Bound, sid: str, due: float) -> bool:
        """Whether a rate-limited fault strikes this report: a coin toss seeded by (fault, station, time)."""
        return b.active(due) and (b.fault.rate >= 1 or
                                  random.Random(f"{self.seed}:{b.index}:{sid}:{due:.0f}").random() < b.fault.rate)

    def messages(self, station: Station, due: float, values: Callable[[float], Values]) -> list[Message]:
        """What the station sends for its report due at ``due``; ``values(t)`` gives the true values at t."""
        bounds = self._by_station.get(station.id)
        if not bounds:
            return [(due, values(due))]
        held_now = any(b.fault.type == "out_of_order" and self._hit(b, station.id, due) for b in bounds)
        if any(b.fault.type == "dropout" and b.active(due) for b in bounds):
            out: list[Message] = []
        elif held_now:
            out = []
        else:
            out = [self._one(station, bounds, due, values)]
            if any(b.fault.type == "duplicate" and self._hit(b, station.id, due) for b in bounds):
                out.append(out[0])
        previous = due - station.interval_s
        if any(b.fault.type == "out_of_order" and self._hit(b, station.id, previous) for b in bounds) \
                and not any(b.fault.type == "dropout" and b.active(previous) for b in bounds):
            out.append(self._one(station, bounds, previous, values))  # the held-back report, late
        return out

    def _one(self, station: Station, bounds: list[_Bound], due: float, values: Callable[[float], Values]) -> Message:
        vals = None
        ts = due
        for b in bounds:
            f = b.fault
            if f.type == "stuck" and b.active(due):
                vals = dict(values(b.start))
            elif f.type == "clock_drift" and b.active(due):
                ts = round(due + f.drift_s_per_h * (due - b.start) / 3600)  # RTUs stamp whole seconds
        vals = dict(values(due)) if vals is None else vals
        for b in bounds:
            f = b.fault
            # A spike is one odd report: never two in a row (two in a row would be a real change).
            if f.type == "spike" and self._hit(b, station.id, due) \
                    and not self._hit(b, station.id, due - station.interval_s):
                metric = f.metric or next(iter(METRICS[station.kind.value]))
                if metric in vals:
                    spec = METRICS[station.kind.value][metric]
                    bump = f.magnitude if f.magnitude is not None else DEFAULT_SPIKE.get(metric, 10.0)
                    vals[metric] = round(min(spec.max, max(spec.min, vals[metric] + bump)), 3)
        return ts, vals
