"""Does a patrol count? Pure checks of a GPS track against its segment and the configured minimums.

A finished patrol is *valid* when all of these hold (docs/domain.md, "River chiefs": patrol apps refuse or flag short,
perfunctory and padded patrols); otherwise ``invalid_reason`` lists every failed check as ``code: detail``
joined by ``; ``, codes in this order:

``no_track``        fewer than two usable fixes (after cleaning: sorted, one per timestamp, accuracy filter)
``short_duration``  last − first fix < patrol_min_duration_s
``short_distance``  haversine path length < patrol_min_distance_m
``off_segment``     coverage of the segment < patrol_min_coverage
``too_fast``        average speed > patrol_max_speed_kmh, or more than half the track's ground covered at
                    that speed (60 s windows, displacement-based, so GPS jitter is not speed)
``too_frequent``    a self-started patrol starting less than patrol_min_gap_h after the chief's previous
                    counted self-started patrol (when the gap is set)
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Iterable

from core.patrols.geometry import Track, coverage

# Fixes stamped this long before the patrol's start or after its finish are not part of it (a replayed
# track from another day, a phone left recording).
TRACK_SLACK = timedelta(minutes=10)
SPEED_WINDOW_S = 60.0
MAX_FAST_SHARE = 0.5


@dataclass(frozen=True, slots=True)
class PatrolRules:
    min_duration_s: float = 300.0
    min_distance_m: float = 300.0
    min_coverage: float = 0.6
    coverage_buffer_m: float = 100.0
    coverage_step_m: float = 10.0
    max_speed_kmh: float = 30.0
    min_gap_h: float = 0.0
    max_point_accuracy_m: float | None = 100.0

    @classmethod
    def from_settings(cls, settings: Any) -> "PatrolRules":
        return cls(min_duration_s=settings.patrol_min_duration_s, min_distance_m=settings.patrol_min_distance_m,
                   min_coverage=settings.patrol_min_coverage, coverage_buffer_m=settings.patrol_coverage_buffer_m,
                   coverage_step_m=settings.patrol_coverage_step_m, max_speed_kmh=settings.patrol_max_speed_kmh,
                   min_gap_h=settings.patrol_min_gap_h, max_point_accuracy_m=settings.patrol_max_point_accuracy_m)


@dataclass(slots=True)
class PatrolCheck:
    distance_m: float
    duration_s: float
    coverage: float
    point_count: int  # usable fixes after cleaning
    reasons: list[tuple[str, str]] = field(default_factory=list)

    @property
    def valid(self) -> bool:
        return not self.reasons

    @property
    def codes(self) -> list[str]:
        return [c for c, _ in self.reasons]

    @property
    def invalid_reason(self) -> str | None:
        return "; ".join(f"{c}: {m}" for c, m in self.reasons) or None


def evaluate_track(points: Iterable[Any], segment_lonlat: Any, rules: PatrolRules = PatrolRules(),
                   started_at: datetime | None = None, finished_at: datetime | None = None,
                   self_started: bool = True, previous_start: datetime | None = None) -> PatrolCheck:
    """Figures and validity of one patrol.

    ``points``: TrackPoints or mappings (``ts``, ``lat``, ``lon``, optional ``accuracy_m``) in any order,
    duplicates allowed. ``previous_start``: start of the chief's latest earlier *counted* self-started patrol
    (for the minimum gap); None when there is none.
    """
    track = Track.from_points(points, max_accuracy_m=rules.max_point_accuracy_m,
                              not_before=started_at - TRACK_SLACK if started_at else None,
                              not_after=finished_at + TRACK_SLACK if finished_at else None)
    distance, duration = track.distance_m(), track.duration_s()
    cov = coverage(segment_lonlat, track.lonlat, rules.coverage_buffer_m, rules.coverage_step_m) if len(track) else 0.0
    check = PatrolCheck(distance_m=round(distance, 1), duration_s=round(duration, 1), coverage=round(cov, 4),
                        point_count=len(track))
    r = check.reasons
    if len(track) < 2:
        r.append(("no_track", f"{len(track)} usable GPS fix(es)"))
    if duration < rules.min_duration_s:
        r.append(("short_duration", f"{duration / 60:.1f} min < {rules.min_duration_s / 60:g} min"))
    if distance < rules.min_distance_m:
        r.append(("short_distance", f"{distance:.0f} m < {rules.min_distance_m:g} m"))
    if cov < rules.min_coverage:
        r.append(("off_segment", f"coverage {cov:.2f} < {rules.min_coverage:g}"))
    if len(track) >= 2:
        max_ms = rules.max_speed_kmh / 3.6
        avg_kmh = distance / duration * 3.6 if duration > 0 else float("inf")
        if avg_kmh > rules.max_speed_kmh:
            r.append(("too_fast", f"average {avg_kmh:.1f} km/h > {rules.max_speed_kmh:g} km/h"))
        else:
            share = track.fast_share(max_ms, SPEED_WINDOW_S)
            if share > MAX_FAST_SHARE:
                r.append(("too_fast", f"{share:.0%} of the track faster than {rules.max_speed_kmh:g} km/h"))
    if self_started and rules.min_gap_h > 0 and previous_start is not None and started_at is not None:
        gap_h = (started_at - previous_start).total_seconds() / 3600
        if 0 <= gap_h < rules.min_gap_h:
            r.append(("too_frequent", f"{gap_h:.1f} h after the previous counted patrol < {rules.min_gap_h:g} h"))
    return check
