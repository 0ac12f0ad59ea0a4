"""What each rule type says about a station now: a Verdict with the severity the condition is at
(``raw``), the severity it still holds with the hysteresis band (``hold``), and the value and
threshold behind it. Pure functions of the rule, the station and its windows."""

from __future__ import annotations

import math
from datetime import datetime, tzinfo
from typing import NamedTuple, Sequence

from alerts.windows import HOUR_MS, SeriesWindow
from core.domain import Station
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


def reference_thresholds(rule: Rule, st: Station, ts: datetime, tz: tzinfo, design_margin_m: float) -> list[
        tuple[str, float | None]]:
    """The station's own levels, in ascending order, matched to the rule's severities."""
    if st.kind.value == "reservoir":
        design = st.design_flood_level_m
        margin = float(rule.params.get("design_margin_m", design_margin_m))
        refs = [st.flood_limit_at(ts, tz), None if design is None else design - margin, st.check_flood_level_m]
    else:
        refs = [st.warning_level_m, st.guaranteed_level_m]
    sevs = [lv.severity.value for lv in rule.levels]
    return list(zip(sevs, refs[-len(sevs):] if len(sevs) <= len(refs) else refs))


REF_NAMES = {"reservoir": ("flood-limit level", "design flood level (less margin)", "check flood level"),
             "river": ("warning level", "guaranteed level")}


def rule_levels(rule: Rule) -> list[tuple[str, float | None]]:
    """(severity, value) of the rule's levels, ascending."""
    return [(lv.severity.value, lv.value) for lv in rule.levels]


def evaluate_point(rule: Rule, st: Station, ts: datetime, value: float, series: SeriesWindow | None,
                   tz: tzinfo, design_margin_m: float, *, t_ms: int | None = None,
                   levels: list[tuple[str, float | None]] | None = None) -> Verdict | None:
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
        levels = reference_thresholds(rule, st, ts, tz, design_margin_m)
        raw, hold, thr = graded(levels, value, True, rule.hysteresis)
        msg = ""
        if raw:
            names = REF_NAMES[st.kind.value]
            idx = [s for s, _ in levels].index(raw) + (len(names) - len(levels))
            msg = f"{st.name}: water level {value:.2f} m above {names[max(0, idx)]} {thr:.2f} m"
        return Verdict(raw, hold, value, thr, msg)
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
        return Verdict(raw, hold, round(rate, 4), thr,
                       f"{st.name}: {rule.metric} rising {rate:.2f} m/h (≥ {thr:g} m/h)" if raw else "")
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
        label = rule.params.get("labels", {}).get(raw, f"{raw} {rule.name.replace('_', ' ')}")
        msg = f"{st.name}: {value:.1f} mm of rain in {window} h (≥ {thr:g} mm: {label})"
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
