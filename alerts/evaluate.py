"""What each rule type says about a station now: a Verdict with the severity the condition is at
(``raw``), the severity it still holds with the hysteresis band (``hold``), and the value and
threshold behind it. Pure functions of the rule, the station and its windows."""

from __future__ import annotations

import math
from datetime import datetime, tzinfo
from typing import NamedTuple, Sequence

from alerts.windows import HOUR_MS, SeriesWindow
from core.domain import Station
from core.flood_season import FloodSeason, flood_limit_in_force
from core.rules import Rule, RuleType
from core.timeutil import to_ms


class Verdict(NamedTuple):  # a tuple: made for almost every reading, and cheaper to build than a dataclass
    raw: str | None
    hold: str | None
    value: float
    threshold: float | None = None
    message: str = ""


def _beyond(v: float, thr: float, above: bool) -> bool:
    return v > thr if above else v < thr


def graded(levels: Sequence[tuple[str, float | None]], v: float, above: bool, hysteresis: float) -> tuple[
        str | None, str | None, float | None]:
    """Highest severity whose threshold ``v`` passes, with and without the hysteresis band."""
    raw = hold = None
    thr_raw = None
    shift = -hysteresis if above else hysteresis
    for severity, thr in levels:  # ascending severity
        if thr is None:
            continue
        if _beyond(v, thr, above):
            raw, thr_raw = severity, thr
        if _beyond(v, thr + shift, above):
            hold = severity
    return raw, hold, thr_raw


# What each reference level is called in labels and messages: Chinese first, the station kind and the level
# crossed (docs/alert-semantics.md, "Reference levels"). A river alert never reads like a reservoir's.
REF_LABELS = {
    "flood_limit": ("水库超汛限水位", "above flood-limit level"),
    "normal_pool": ("水库超正常蓄水位", "above normal pool level, outside the flood season"),
    "flood_control_high": ("水库超防洪高水位", "above flood-control high level"),
    "near_design": ("水库接近设计洪水位", "within the margin below design flood level"),
    "design": ("水库达设计洪水位", "at design flood level"),
    "warning": ("河道超警戒水位", "above warning level"),
    "guaranteed": ("河道超保证水位", "above guaranteed level"),
}


class RefStep(NamedTuple):
    severity: str
    level_m: float | None
    name: str  # a REF_LABELS key
    at: bool = False  # reached at the level itself (≥), not only above it


def design_margin_m(rule: Rule, st: Station, default: float) -> float:
    """How far below its design flood level a reservoir without a flood-control high level goes orange: its own
    (params.per_station.{id}.design_margin_m), the rule's (params.design_margin_m), else the setting."""
    own = ((rule.params.get("per_station") or {}).get(st.id) or {}).get("design_margin_m")
    return float(own if own is not None else rule.params.get("design_margin_m", default))


def orange_level(rule: Rule, st: Station, default_margin: float) -> tuple[float | None, str]:
    """A reservoir's orange step: its flood-control high level, else its design flood level less its margin."""
    if st.flood_control_high_level_m is not None:
        return st.flood_control_high_level_m, "flood_control_high"
    if st.design_flood_level_m is not None:
        return st.design_flood_level_m - design_margin_m(rule, st, default_margin), "near_design"
    return None, "near_design"


def reference_steps(rule: Rule, st: Station, ts: datetime, tz: tzinfo, design_margin: float,
                    season: FloodSeason | None = None) -> list[RefStep]:
    """The station's own levels, in ascending order, matched to the rule's severities. A reservoir's ladder
    (its emergency plan): above the ceiling in force, above the flood-control high level, at the design flood
    level; a river's: above the warning level, above the guaranteed level."""
    if st.kind.value == "reservoir":
        ceiling, ceiling_name = flood_limit_in_force(st, ts, tz, season)
        orange, orange_name = orange_level(rule, st, design_margin)
        refs = [(ceiling, ceiling_name, False), (orange, orange_name, False), (st.design_flood_level_m, "design", True)]
    else:
        refs = [(st.warning_level_m, "warning", False), (st.guaranteed_level_m, "guaranteed", False)]
    sevs = [lv.severity.value for lv in rule.levels]
    return [RefStep(sev, lvl, name, at) for sev, (lvl, name, at)
            in zip(sevs, refs[-len(sevs):] if len(sevs) <= len(refs) else refs)]


def reference_thresholds(rule: Rule, st: Station, ts: datetime, tz: tzinfo, design_margin: float,
                         season: FloodSeason | None = None) -> list[tuple[str, float | None]]:
    return [(s.severity, s.level_m) for s in reference_steps(rule, st, ts, tz, design_margin, season)]


def graded_steps(steps: Sequence[RefStep], v: float, hysteresis: float) -> tuple[
        str | None, str | None, RefStep | None]:
    """``graded`` for reference levels, some of which are reached at the level itself."""
    raw = hold = None
    hit = None
    for step in steps:  # ascending severity
        thr = step.level_m
        if thr is None:
            continue
        if v > thr or (step.at and v >= thr):
            raw, hit = step.severity, step
        if v > thr - hysteresis or (step.at and v >= thr - hysteresis):
            hold = step.severity
    return raw, hold, hit


def reference_message(st: Station, value: float, step: RefStep) -> str:
    """"大坝水库: 水库超防洪高水位 (above flood-control high level 54.20 m), water level 54.31 m", and for a reservoir
    the margin left to its check flood level, which the ladder records rather than waits for."""
    zh, en = REF_LABELS[step.name]
    msg = f"{st.name}: {zh} ({en} {step.level_m:.2f} m), water level {value:.2f} m"
    if st.kind.value == "reservoir" and st.check_flood_level_m is not None:
        margin = st.check_flood_level_m - value
        msg += (f"; 距校核洪水位 {margin:.2f} m ({margin:.2f} m below check flood level "
                f"{st.check_flood_level_m:.2f} m)" if margin > 0 else
                f"; 超校核洪水位 {-margin:.2f} m (above check flood level {st.check_flood_level_m:.2f} m)")
    return msg


RISE_LABELS = {"reservoir": ("水库水位陡涨", "reservoir level"), "river": ("河道水位陡涨", "river level")}


def rise_floor(st: Station, ts: datetime, tz: tzinfo, share: float, season: FloodSeason | None = None) -> float | None:
    """The level below which a rate-of-rise rule does not count: ``share`` of the way from the station's base (a
    reservoir's dead level, a river's usual stage, normal_level_m) to its first warning step (the reservoir's
    ceiling in force, the river's warning level). None: the station lacks either, so every rise counts."""
    if st.kind.value == "reservoir":
        base, top = st.dead_level_m, flood_limit_in_force(st, ts, tz, season)[0]
    else:
        base, top = st.normal_level_m, st.warning_level_m
    if base is None or top is None or top <= base:
        return None
    return base + share * (top - base)


def rule_levels(rule: Rule) -> list[tuple[str, float | None]]:
    """(severity, value) of the rule's levels, ascending."""
    return [(lv.severity.value, lv.value) for lv in rule.levels]


def evaluate_point(rule: Rule, st: Station, ts: datetime, value: float, series: SeriesWindow | None,
                   tz: tzinfo, design_margin_m: float, *, t_ms: int | None = None,
                   levels: list[tuple[str, float | None]] | None = None,
                   season: FloodSeason | None = None) -> Verdict | None:
    """Threshold, reference-level, rate-of-rise, spike and stuck rules on one reading. None: not enough data.
    ``t_ms`` (to_ms(ts)) and ``levels`` (rule_levels(rule)) may be passed by a caller that already has them."""
    above = rule.direction == "above"
    rt = rule.type
    if rt == RuleType.threshold:
        if levels is None:
            levels = rule_levels(rule)
        raw, hold, thr = graded(levels, value, above, rule.hysteresis)
        rel = "above" if above else "below"
        return Verdict(raw, hold, value, thr, f"{st.name}: {rule.metric} {value:g} {rel} {thr:g}" if raw else "")
    if rt == RuleType.reference_level:
        steps = reference_steps(rule, st, ts, tz, design_margin_m, season)
        raw, hold, hit = graded_steps(steps, value, rule.hysteresis)
        if hit is None:
            return Verdict(raw, hold, value, None, "")
        return Verdict(raw, hold, value, hit.level_m, reference_message(st, value, hit))
    if series is None:
        return None
    t = to_ms(ts) if t_ms is None else t_ms
    if levels is None:
        levels = rule_levels(rule)
    if rt == RuleType.rate_of_rise:
        window_ms = int(float(rule.params["window_h"]) * HOUR_MS)
        first = series.first_since(t - window_ms)
        if first is None or t - first[0] < window_ms / 2:
            return None  # too little history to call it a rate
        rate = (value - first[1]) / ((t - first[0]) / HOUR_MS)
        raw, hold, thr = graded(levels, rate, True, rule.hysteresis)
        share = rule.params.get("min_share_of_warning")
        if (raw or hold) and share is not None:
            floor = rise_floor(st, ts, tz, float(share), season)
            if floor is not None and value < floor:  # far below its warning level: a rise there is no warning
                return Verdict(None, None, round(rate, 4), None, "")
        if not raw:
            return Verdict(raw, hold, round(rate, 4), thr, "")
        zh, en = RISE_LABELS.get(st.kind.value, ("水位陡涨", "level"))
        return Verdict(raw, hold, round(rate, 4), thr,
                       f"{st.name}: {zh} {rate:.2f} m/h ({en} rising {rate:.2f} m/h, ≥ {thr:g} m/h), "
                       f"water level {value:.2f} m")
    if rt == RuleType.spike:
        prev = series.before(t)
        if prev is None:
            return None
        jump = abs(value - prev[1])
        raw, hold, thr = graded(levels, jump, True, 0.0)
        return Verdict(raw, raw, jump, thr,
                       f"{st.name}: {rule.metric} jumped by {jump:g} between readings (data quality)" if raw else "")
    if rt == RuleType.stuck:
        n = int(rule.params["count"])
        last = series.last(n).tolist()
        stuck = len(last) == n and all(x == last[0] for x in last)
        sev = rule.levels[0].severity.value if stuck else None
        return Verdict(sev, sev, float(value), None,
                       f"{st.name}: {rule.metric} stuck at {value:g} for {n} readings (data quality)" if stuck else "")
    return None


def rain_levels(rule: Rule, per_station: dict | None = None) -> list[tuple[str, list[tuple[int, float]]]]:
    """(severity, its windows as (hours, mm) by hours) of a rain rule, ascending; a station's own limits
    (``per_station``: severity → {hours: mm}) replace a level's windows."""
    out = []
    for lv in rule.levels:
        windows = lv.windows_h or {}
        if per_station and lv.severity.value in per_station:
            windows = {int(h): float(mm) for h, mm in per_station[lv.severity.value].items()}
        out.append((lv.severity.value, sorted(windows.items())))
    return out


def evaluate_rain(rule: Rule, st: Station, sums: dict[int, float], per_station: dict | None = None, *,
                  levels: list[tuple[str, list[tuple[int, float]]]] | None = None) -> Verdict:
    """Rolling rain sums against the rule's levels; any window of a level triggers it. ``levels``:
    rain_levels(rule, per_station), for a caller that keeps it."""
    raw, value, thr, window = None, sums.get(3, 0.0), None, 3
    for severity, windows in rain_levels(rule, per_station) if levels is None else levels:  # ascending
        for h, mm in windows:
            if sums.get(h, 0.0) >= mm:
                raw, value, thr, window = severity, sums[h], mm, h
                break
    msg = ""
    if raw:
        # What a gauge measured, on the rule's scale (for rainstorms the CMA signal colours): a gauge exceedance,
        # never worded as a rainstorm signal, which only meteorological offices issue.
        if st.kind.value == "rain":
            msg = (f"{st.name}: 雨量站 {window} 小时降雨 {value:.1f} mm ≥ {thr:g} mm "
                   f"({window} h rain ≥ {thr:g} mm at gauge {st.name}: {value:.1f} mm)")
        else:  # a village's rule, read from its nearest gauge
            msg = (f"{st.name}: 最近雨量站 {window} 小时降雨 {value:.1f} mm ≥ {thr:g} mm "
                   f"({window} h rain ≥ {thr:g} mm at the village's nearest gauge: {value:.1f} mm)")
        label = (rule.params.get("labels") or {}).get(raw)
        if label:
            msg += f"; {label}"
    return Verdict(raw, raw, round(value, 3), thr, msg)


def rain_windows(rules: Sequence[Rule]) -> tuple[int, ...]:
    hours: set[int] = {1, 3, 6, 12, 24}
    for rule in rules:
        for lv in rule.levels:
            hours.update(lv.windows_h or {})
        for per in (rule.params.get("per_station") or {}).values():
            for windows in per.values():
                hours.update(int(h) for h in windows)
    return tuple(sorted(hours))


def haversine_km(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dlat, dlon = p2 - p1, math.radians(lon2 - lon1)
    a = math.sin(dlat / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dlon / 2) ** 2
    return 2 * 6371.0 * math.asin(math.sqrt(a))
