"""Reservoir inflow: measured by an inflow sensor, or from the water balance (docs/reports.md, "Reservoir inflow (入库水量)").

Water balance over an interval between two moments: inflow = ΔS / Δt + outflow, with the storage S read from the
reservoir's level–storage curve (or its storage sensor) and the outflow averaged over the interval. The input
is one value per bucket (the store's hourly means), placed at the bucket's middle; between two consecutive
middles the storage is taken as linear and the inflow as constant. A report window [start, end) takes the
intervals that overlap it, in proportion, so a day's volume does not depend on where the buckets fall.

Values the balance gives that cannot be physical (inflow below zero beyond ``NEGATIVE_TOLERANCE_M3S``, storage
outside the curve's range) are kept and flagged, never clipped: they point at a level sensor or a missing
outflow record, and hiding them would hide that.

Pure functions: no store, no clock.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Sequence

from core.domain import Station

Series = Sequence[tuple[datetime, float]]
# Below this, a negative balance inflow is rounding and level noise, not a finding.
NEGATIVE_TOLERANCE_M3S = 0.05


@dataclass(frozen=True, slots=True)
class Interval:
    """Inflow (m³/s) held constant over [start, end)."""

    start: datetime
    end: datetime
    inflow_m3s: float


@dataclass(frozen=True, slots=True)
class Flag:
    """A doubt about a reservoir's figures: a code for programs, a sentence in Chinese and in English."""

    code: str
    zh: str
    en: str

    def as_dict(self) -> dict[str, str]:
        return {"code": self.code, "zh": self.zh, "en": self.en}


@dataclass(slots=True)
class InflowResult:
    method: str  # "sensor" | "balance" | "none"
    intervals: list[Interval]
    flags: list[Flag] = field(default_factory=list)
    # Piecewise-linear storage (10⁶ m³) at the bucket middles, for the storage change.
    storage: list[tuple[datetime, float]] = field(default_factory=list)
    starts: list[datetime] | None = None  # the intervals' starts, for bisecting (filled on first use)
    storage_at: "Linear | None" = None  # interpolation over ``storage`` (made on first use)


def _middles(series: Series, bucket: timedelta) -> list[tuple[datetime, float]]:
    return sorted((ts + bucket / 2, v) for ts, v in series)


class Linear:
    """Linear interpolation between (time, value) points, held flat beyond the ends; None without points."""

    __slots__ = ("points", "times")

    def __init__(self, points: list[tuple[datetime, float]]) -> None:
        self.points = points
        self.times = [p[0] for p in points]

    def __call__(self, t: datetime) -> float | None:
        points = self.points
        if not points:
            return None
        i = bisect.bisect_left(self.times, t)
        if i == 0:
            return points[0][1]
        if i >= len(points):
            return points[-1][1]
        (t0, v0), (t1, v1) = points[i - 1], points[i]
        return v0 + (v1 - v0) * ((t - t0) / (t1 - t0))


def _interp(points: list[tuple[datetime, float]], t: datetime) -> float | None:
    return Linear(points)(t)


def balance_intervals(storage_mcm: Series, outflow_m3s: Series, bucket: timedelta) -> InflowResult:
    """Inflow by water balance from per-bucket mean storage (10⁶ m³) and mean outflow (m³/s)."""
    s = _middles(storage_mcm, bucket)
    o = _middles(outflow_m3s, bucket)
    out_at = Linear(o)
    flags: list[Flag] = []
    if not o:
        flags.append(Flag("no_outflow", "无出库流量记录，出库按0计", "no outflow record: outflow taken as 0"))
    intervals = []
    max_gap = bucket * 3
    gaps = 0
    for (t0, s0), (t1, s1) in zip(s, s[1:]):
        dt = (t1 - t0).total_seconds()
        if t1 - t0 > max_gap:
            gaps += 1
        o0, o1 = out_at(t0) or 0.0, out_at(t1) or 0.0
        intervals.append(Interval(t0, t1, (s1 - s0) * 1e6 / dt + (o0 + o1) / 2))
    if gaps:
        h = f"{max_gap.total_seconds() / 3600:g}"
        flags.append(Flag("level_gaps", f"水位记录有{gaps}处缺测超过{h}小时",
                          f"{gaps} gap(s) longer than {h} h in the level record"))
    return InflowResult("balance", intervals, flags, s)


def sensor_intervals(inflow_m3s: Series, bucket: timedelta) -> InflowResult:
    """Inflow measured by a sensor: each bucket's mean holds over its bucket."""
    intervals = [Interval(ts, ts + bucket, v) for ts, v in sorted(inflow_m3s)]
    return InflowResult("sensor", intervals, [])


def storage_series(station: Station, level_m: Series) -> tuple[list[tuple[datetime, float]], list[Flag]]:
    """Storage (10⁶ m³) from levels through the station's level–storage curve; flags levels off the curve."""
    curve = station.level_storage or []
    flags = []
    if not curve:
        return [], [Flag("no_curve", "无水位库容曲线，无法做水量平衡", "no level–storage curve: no water balance")]
    lo, hi = curve[0][0], curve[-1][0]
    off = [lv for _, lv in level_m if lv < lo or lv > hi]
    if off:
        flags.append(Flag("level_off_curve", f"{len(off)}个水位超出水位库容曲线范围（{lo}–{hi} m），库容按端点计",
                          f"{len(off)} level(s) outside the level–storage curve ({lo}–{hi} m): storage held at its end"))
    return [(ts, station.storage_at(lv)) for ts, lv in level_m], flags  # type: ignore[misc]


@dataclass(slots=True)
class WindowInflow:
    start: datetime
    end: datetime
    volume_m3: float | None
    peak_inflow_m3s: float | None
    peak_at: datetime | None
    storage_change_m3: float | None
    negative_intervals: int
    min_inflow_m3s: float | None

    @property
    def volume_10k_m3(self) -> float | None:
        return None if self.volume_m3 is None else self.volume_m3 / 1e4

    @property
    def volume_mcm(self) -> float | None:
        return None if self.volume_m3 is None else self.volume_m3 / 1e6


def window_inflow(result: InflowResult, start: datetime, end: datetime) -> WindowInflow:
    """Volume, peak and storage change of ``result`` over [start, end)."""
    volume, peak, peak_at, neg, low, covered = 0.0, None, None, 0, None, False
    # Intervals are in time order and do not overlap: start from the last one beginning before the window.
    if result.starts is None or len(result.starts) != len(result.intervals):
        result.starts = [iv.start for iv in result.intervals]
    first = max(0, bisect.bisect_right(result.starts, start) - 1)
    for iv in result.intervals[first:]:
        if iv.start >= end:
            break
        a, b = max(iv.start, start), min(iv.end, end)
        if b <= a:
            continue
        covered = True
        volume += iv.inflow_m3s * (b - a).total_seconds()
        if peak is None or iv.inflow_m3s > peak:
            peak, peak_at = iv.inflow_m3s, iv.start + (iv.end - iv.start) / 2
        if low is None or iv.inflow_m3s < low:
            low = iv.inflow_m3s
        if iv.inflow_m3s < -NEGATIVE_TOLERANCE_M3S:
            neg += 1
    ds = None
    if result.storage:
        if result.storage_at is None or result.storage_at.points is not result.storage:
            result.storage_at = Linear(result.storage)
        s0, s1 = result.storage_at(start), result.storage_at(end)
        if s0 is not None and s1 is not None:
            ds = (s1 - s0) * 1e6
    return WindowInflow(start, end, volume if covered else None, peak, peak_at, ds, neg, low)
