"""Threshold rules from station reference levels and the design.md §4 facts.

Each rule looks at one reading (plus window state for rain) and answers with the severity the
condition is at now, or None when it is not met. Severities: blue < yellow < orange < red.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import tzinfo
from typing import Callable

from core.domain import Reading, Station


@dataclass(frozen=True, slots=True)
class Verdict:
    severity: str | None
    threshold: float | None = None
    message: str = ""


NONE = Verdict(None)

# China Meteorological Administration rainstorm signals, most severe first: (severity, window h, mm).
RAINSTORM_SIGNALS: tuple[tuple[str, int, float], ...] = (
    ("red", 3, 100.0),
    ("orange", 3, 50.0),
    ("yellow", 6, 50.0),
    ("blue", 12, 50.0),
)
RAIN_WINDOWS_H: tuple[int, ...] = (1, 3, 6, 12, 24)

# GB 5749-2022 (design.md §4).
TURBIDITY_LIMIT_NTU = 1.0
TURBIDITY_SEVERE_NTU = 3.0
FREE_CHLORINE_MIN_TAP_MGL = 0.05
FREE_CHLORINE_MAX_MGL = 2.0
PH_RANGE = (6.5, 8.5)


def reservoir_level(st: Station, r: Reading, tz: tzinfo, design_margin_m: float) -> Verdict:
    """Above flood-limit → yellow; within ``design_margin_m`` of the design flood level → orange;
    at the check flood level → red. The flood-limit level is seasonal (SL 323 ST_RSVRFSR_B)."""
    z = r.value
    if st.check_flood_level_m is not None and z >= st.check_flood_level_m:
        return Verdict("red", st.check_flood_level_m,
                       f"{st.name}: water level {z:.2f} m at or above check flood level {st.check_flood_level_m:.2f} m")
    if st.design_flood_level_m is not None and z >= st.design_flood_level_m - design_margin_m:
        return Verdict("orange", st.design_flood_level_m,
                       f"{st.name}: water level {z:.2f} m approaching design flood level {st.design_flood_level_m:.2f} m")
    limit = st.flood_limit_at(r.ts, tz)
    if limit is not None and z > limit:
        return Verdict("yellow", limit, f"{st.name}: water level {z:.2f} m above flood-limit level {limit:.2f} m")
    return NONE


def river_level(st: Station, r: Reading) -> Verdict:
    z = r.value
    if st.guaranteed_level_m is not None and z >= st.guaranteed_level_m:
        return Verdict("red", st.guaranteed_level_m,
                       f"{st.name}: water level {z:.2f} m at or above guaranteed level {st.guaranteed_level_m:.2f} m")
    if st.warning_level_m is not None and z > st.warning_level_m:
        return Verdict("orange", st.warning_level_m,
                       f"{st.name}: water level {z:.2f} m above warning level {st.warning_level_m:.2f} m")
    return NONE


def rainstorm(st: Station, sums_mm: dict[int, float]) -> Verdict:
    for severity, hours, mm in RAINSTORM_SIGNALS:
        total = sums_mm.get(hours, 0.0)
        if total >= mm:
            return Verdict(severity, mm, f"{st.name}: {total:.1f} mm of rain in {hours} h (≥ {mm:.0f} mm: {severity} rainstorm signal)")
    return NONE


def turbidity(st: Station, r: Reading) -> Verdict:
    if r.value > TURBIDITY_SEVERE_NTU:
        return Verdict("orange", TURBIDITY_SEVERE_NTU, f"{st.name}: turbidity {r.value:.2f} NTU (limit {TURBIDITY_LIMIT_NTU:g} NTU)")
    if r.value > TURBIDITY_LIMIT_NTU:
        return Verdict("yellow", TURBIDITY_LIMIT_NTU, f"{st.name}: turbidity {r.value:.2f} NTU above {TURBIDITY_LIMIT_NTU:g} NTU")
    return NONE


def free_chlorine(st: Station, r: Reading) -> Verdict:
    if r.value < FREE_CHLORINE_MIN_TAP_MGL:
        return Verdict("orange", FREE_CHLORINE_MIN_TAP_MGL,
                       f"{st.name}: free chlorine {r.value:.3f} mg/L below {FREE_CHLORINE_MIN_TAP_MGL} mg/L at the tap")
    if r.value > FREE_CHLORINE_MAX_MGL:
        return Verdict("yellow", FREE_CHLORINE_MAX_MGL,
                       f"{st.name}: free chlorine {r.value:.2f} mg/L above {FREE_CHLORINE_MAX_MGL} mg/L")
    return NONE


def ph(st: Station, r: Reading) -> Verdict:
    lo, hi = PH_RANGE
    if not lo <= r.value <= hi:
        return Verdict("yellow", lo if r.value < lo else hi, f"{st.name}: pH {r.value:.2f} outside {lo}–{hi}")
    return NONE


# (kind, metric) → (rule name, evaluator of a single reading). Rain is windowed and handled apart.
PointRule = Callable[..., Verdict]
POINT_RULES: dict[tuple[str, str], tuple[str, PointRule]] = {
    ("reservoir", "water_level_m"): ("reservoir_level", reservoir_level),
    ("river", "water_level_m"): ("river_level", river_level),
    ("village_water", "turbidity_ntu"): ("turbidity", turbidity),
    ("village_water", "free_chlorine_mgl"): ("free_chlorine", free_chlorine),
    ("village_water", "ph"): ("ph", ph),
}
RAINSTORM_RULE = "rainstorm"
