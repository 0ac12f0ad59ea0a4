"""The water physics of the simulator, on a fixed time grid: rain → runoff → routed flow → river stage and
reservoir storage. Pure functions and small classes of numbers; no stations, no time zones.

* Runoff: an initial loss (the first millimetres wet the ground), then a constant share of the rain.
* Routing: a cascade of linear reservoirs (outflow ∝ storage), which lags and attenuates a flood wave.
* Rivers: stage from flow through a power-law rating curve Q = a (h − h0)^b.
* Reservoirs: a water balance. Storage integrates inflow − outflow; the level comes from inverting the
  level–storage curve; outflow is a controlled release through the outlet (opened as the level rises
  above its pre-flood level) plus a broad-crested weir Q = C·B·H^1.5 over the spillway crest, which sits
  at the flood-limit level.
"""

from __future__ import annotations

import bisect
import math
from dataclasses import dataclass
from typing import Sequence

import numpy as np

WEIR_C = 1.7  # broad-crested weir coefficient, SI units (m^0.5/s)


class Hyetograph:
    """Piecewise-linear intensity, normalised to a total of 1; exact cumulative (piecewise quadratic)."""

    def __init__(self, knots: Sequence[tuple[float, float]]) -> None:
        self.t = [float(k[0]) for k in knots]
        self.i = [float(k[1]) for k in knots]
        area = [0.0]
        for j in range(1, len(knots)):
            area.append(area[-1] + (self.t[j] - self.t[j - 1]) * (self.i[j] + self.i[j - 1]) / 2)
        self.total = area[-1]
        self.cum = [a / self.total for a in area]

    def _seg(self, tau: float) -> int:
        return min(max(1, bisect.bisect_left(self.t, tau)), len(self.t) - 1)

    def intensity(self, tau_h: float) -> float:
        """Fraction of the storm's depth per hour at ``tau_h`` hours after it starts."""
        if tau_h < self.t[0] or tau_h >= self.t[-1]:
            return 0.0
        j = self._seg(tau_h)
        t0, t1, i0, i1 = self.t[j - 1], self.t[j], self.i[j - 1], self.i[j]
        return (i0 + (i1 - i0) * (tau_h - t0) / (t1 - t0)) / self.total

    def cumulative(self, tau_h: float) -> float:
        """Fraction of the storm's depth fallen by ``tau_h`` hours after it starts (trapezoid, so exact)."""
        if tau_h <= self.t[0]:
            return 0.0
        if tau_h >= self.t[-1]:
            return 1.0
        j = self._seg(tau_h)
        t0 = self.t[j - 1]
        return self.cum[j - 1] + (tau_h - t0) * (self.i[j - 1] / self.total + self.intensity(tau_h)) / 2


def runoff(rain_mm_h: np.ndarray, dt_s: float, coefficient: float, initial_loss_mm: float) -> np.ndarray:
    """Effective rain (mm/h): nothing until ``initial_loss_mm`` has fallen, then ``coefficient`` of the rest."""
    depth = np.cumsum(rain_mm_h) * dt_s / 3600
    excess = coefficient * np.maximum(0.0, depth - initial_loss_mm)
    return np.diff(excess, prepend=0.0) * 3600 / dt_s


def route(x: np.ndarray, k_h: float, dt_s: float) -> np.ndarray:
    """Outflow of a linear reservoir (time constant ``k_h`` hours) fed by ``x``; conserves volume (up to
    what is still stored at the end of the series) and delays and flattens the peak."""
    a = math.exp(-dt_s / (k_h * 3600))
    out = np.empty(len(x))
    y = 0.0
    for i, v in enumerate(np.asarray(x, dtype=float).tolist()):
        y = y * a + v * (1 - a)
        out[i] = y
    return out


def to_m3s(runoff_mm_h: np.ndarray | float, area_km2: float) -> np.ndarray | float:
    """mm/h over km² → m³/s (1 mm over 1 km² is 1,000 m³)."""
    return runoff_mm_h * area_km2 / 3.6


@dataclass(frozen=True, slots=True)
class Rating:
    """Stage–discharge curve Q = q_ref · ((h − h0) / (h_ref − h0))^b: zero flow at h0, q_ref at h_ref."""
    h0: float
    h_ref: float
    q_ref: float
    b: float = 1.6

    def flow(self, h: float) -> float:
        return self.q_ref * (max(0.0, h - self.h0) / (self.h_ref - self.h0)) ** self.b

    def stage(self, q: np.ndarray | float) -> np.ndarray | float:
        return self.h0 + (self.h_ref - self.h0) * (np.maximum(q, 0.0) / self.q_ref) ** (1 / self.b)


@dataclass(slots=True)
class Balance:
    """A reservoir's state on the grid: level (m), storage (10⁶ m³), flows (m³/s)."""
    level_m: np.ndarray
    storage_mcm: np.ndarray
    inflow_m3s: np.ndarray
    release_m3s: np.ndarray
    spill_m3s: np.ndarray

    @property
    def outflow_m3s(self) -> np.ndarray:
        return self.release_m3s + self.spill_m3s


class ReservoirModel:
    """One reservoir: its level–storage curve, outlet, and spillway crest (the flood-limit level)."""

    def __init__(self, curve: Sequence[tuple[float, float]], crest_m: float, start_m: float,
                 spill_width_m: float, supply_m3s: float, outlet_m3s: float) -> None:
        self.levels = [float(p[0]) for p in curve]
        self.storages = [float(p[1]) * 1e6 for p in curve]  # m³ inside, 10⁶ m³ at the edges
        if len(self.levels) < 2:
            raise ValueError("a level–storage curve needs two points")
        self.crest_m = crest_m
        self.start_m = start_m
        self.spill_width_m = spill_width_m
        self.supply_m3s = supply_m3s
        self.outlet_m3s = outlet_m3s

    def storage_m3(self, h: float) -> float:
        """Linear between curve points, extended along the end segments (a flood can top the table)."""
        lv, st = self.levels, self.storages
        j = min(max(1, bisect.bisect_left(lv, h)), len(lv) - 1)
        return max(0.0, st[j - 1] + (st[j] - st[j - 1]) * (h - lv[j - 1]) / (lv[j] - lv[j - 1]))

    def level_m(self, storage_m3: float) -> float:
        """The inverse of storage_m3 (storage rises strictly with level, so the inverse is a function)."""
        lv, st = self.levels, self.storages
        j = min(max(1, bisect.bisect_left(st, storage_m3)), len(st) - 1)
        return lv[j - 1] + (lv[j] - lv[j - 1]) * (storage_m3 - st[j - 1]) / (st[j] - st[j - 1])

    def spill(self, h: float) -> float:
        head = h - self.crest_m
        return WEIR_C * self.spill_width_m * head ** 1.5 if head > 0 else 0.0

    def release(self, h: float) -> float:
        """Supply draw, plus the outlet opened in proportion to how far the level has risen towards the crest:
        operators pass a flood through and then draw the reservoir back to where it was."""
        band = self.crest_m - self.start_m
        opening = 1.0 if band <= 0 else min(1.0, max(0.0, (h - self.start_m) / band))
        return self.supply_m3s + self.outlet_m3s * opening

    def _substeps(self, dt_s: float) -> int:
        """Enough sub-steps for explicit integration to stay stable: each shorter than half the time constant
        of the outflow's response to level (plan area / dQ/dh) a metre or two over the crest."""
        plan_m2 = max(1.0, (self.storage_m3(self.crest_m + 0.5) - self.storage_m3(self.crest_m)) / 0.5)
        dq_dh = 1.5 * WEIR_C * self.spill_width_m * 2.0 ** 0.5 + self.outlet_m3s / max(0.1, self.crest_m - self.start_m)
        return max(1, math.ceil(2 * dt_s * dq_dh / plan_m2))

    def simulate(self, inflow_m3s: np.ndarray, dt_s: float, steps: int | None = None) -> Balance:
        """Integrate storage over the grid (``steps`` points, default all) from the start level."""
        n = len(inflow_m3s) if steps is None else min(steps, len(inflow_m3s))
        sub = self._substeps(dt_s)
        h_dt = dt_s / sub
        inflow = np.asarray(inflow_m3s[:n], dtype=float)
        level, storage = np.empty(n), np.empty(n)
        release, spill = np.empty(n), np.empty(n)
        s = self.storage_m3(self.start_m)
        h = self.start_m
        q_list = inflow.tolist()
        for i, q_in in enumerate(q_list):
            out = self.release(h), self.spill(h)
            level[i], storage[i] = h, s
            release[i], spill[i] = out
            if i == n - 1:
                break
            # Inflow is linear between grid points; outflow is evaluated at each sub-step's start.
            q_next = q_list[i + 1]
            for k in range(sub):
                if k:
                    out = self.release(h), self.spill(h)
                q = q_in + (q_next - q_in) * (k + 0.5) / sub
                s = max(0.0, s + h_dt * (q - out[0] - out[1]))
                h = self.level_m(s)
        return Balance(level, storage / 1e6, inflow, release, spill)
