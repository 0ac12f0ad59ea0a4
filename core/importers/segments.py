"""Cutting rivers into segments, each owned by a village or a town (docs/domain.md, "River chiefs").

A stretch of river within ``VILLAGE_RADIUS_M`` of a village is that village's (a village segment); a stretch
farther from every village is its nearest village's town's (a town segment). Pieces shorter than
``MIN_SEGMENT_M`` join a neighbour, so no chief patrols a few dozen metres. The villages are the registry's
village water-supply stations: each stands at its village.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Iterable, Sequence

import numpy as np

from core.domain import Kind, Station
from core.patrols.geometry import Projection
from core.patrols.models import Level, River, Segment

VILLAGE_RADIUS_M = 1500.0
SAMPLE_M = 100.0  # resolution of segment boundaries
MIN_SEGMENT_M = 300.0

_PROJ = Projection()


@dataclass(slots=True)
class Village:
    town: str
    name: str
    lat: float
    lon: float


def villages_of(stations: Iterable[Station]) -> list[Village]:
    """The villages of a station list: one per village water-supply station."""
    return [Village(s.town, s.village or s.name, s.lat, s.lon) for s in stations if s.kind == Kind.village_water]


def _resample(lonlat: Sequence[Sequence[float]], step_m: float) -> np.ndarray:
    """Points every ``step_m`` along a polyline (both ends included), planar in the district projection."""
    xy = _PROJ.to_xy(lonlat)
    seg = np.hypot(*np.diff(xy, axis=0).T)
    cum = np.concatenate(([0.0], np.cumsum(seg)))
    n = max(1, math.ceil(cum[-1] / step_m))
    s = np.linspace(0.0, cum[-1], n + 1)
    return np.column_stack((np.interp(s, cum, xy[:, 0]), np.interp(s, cum, xy[:, 1])))


def split_river(river: River, villages: Sequence[Village], radius_m: float = VILLAGE_RADIUS_M,
                step_m: float = SAMPLE_M, min_segment_m: float = MIN_SEGMENT_M) -> list[Segment]:
    """Cut a river into segments by the nearest village (town segment where none is within ``radius_m``)."""
    vxy = _PROJ.to_xy([[v.lon, v.lat] for v in villages])
    out: list[Segment] = []
    for line in river.geometry:
        pts = _resample(line, step_m)
        # Label each piece between samples by its midpoint's nearest village.
        mids = (pts[:-1] + pts[1:]) / 2
        d2 = (mids[:, 0, None] - vxy[None, :, 0]) ** 2 + (mids[:, 1, None] - vxy[None, :, 1]) ** 2
        nearest = d2.argmin(axis=1)
        near_d = np.sqrt(d2[np.arange(len(mids)), nearest])
        labels = [(villages[j].town, villages[j].name if d <= radius_m else None)
                  for j, d in zip(nearest.tolist(), near_d.tolist())]
        piece = np.hypot(*np.diff(pts, axis=0).T)
        at = np.concatenate(([0.0], np.cumsum(piece)))  # distance along the line at each sample
        # Runs of equal labels: [start, end) piece indices.
        runs: list[list[Any]] = []
        for k, lab in enumerate(labels):
            if runs and runs[-1][2] == lab:
                runs[-1][1] = k + 1
            else:
                runs.append([k, k + 1, lab])
        # Merge runs shorter than the minimum into a neighbour (the previous one, else the next).
        while len(runs) > 1:
            lengths = [at[b] - at[a] for a, b, _ in runs]
            k = int(np.argmin(lengths))
            if lengths[k] >= min_segment_m:
                break
            if k > 0:
                runs[k - 1][1] = runs[k][1]
            else:
                runs[1][0] = runs[0][0]
            del runs[k]
            merged: list[list[Any]] = []  # neighbours may now share a label
            for r in runs:
                if merged and merged[-1][2] == r[2]:
                    merged[-1][1] = r[1]
                else:
                    merged.append(r)
            runs = merged
        lonlat = _PROJ.to_lonlat(pts)
        for a, b, (town, village) in runs:
            geom = [[round(float(x), 6), round(float(y), 6)] for x, y in lonlat[a:b + 1]]
            out.append(Segment(id=f"{river.id}-{len(out) + 1:03d}", river_id=river.id, town=town, village=village,
                               level=Level.village if village else Level.town, geometry=geom))
    return out
