"""Areal rainfall (面雨量) of the district and its towns from gauge totals, with the gauges in use per period.

A gauge is *in use* for a period when it sent at least ``min_coverage`` of the readings its interval promises
(``Station.interval_s``); otherwise it is silent or patchy and drops out, and the Thiessen weights are recomputed
over the gauges left. The district is the union of the towns' boundaries.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterable, Mapping, Sequence

from core.domain import Station
from core.reports.thiessen import Area, thiessen_weights
from core.reports.towns import Town


def _r(v: float | None, nd: int = 1) -> float | None:
    return None if v is None else round(v + 0.0, nd)


@dataclass
class ArealCalculator:
    """Thiessen weights per town and for the district, cached per set of gauges in use."""

    gauges: Sequence[Station]
    towns: Sequence[Town]
    min_coverage: float

    def __post_init__(self) -> None:
        self._points = {g.id: (g.lon, g.lat) for g in self.gauges}
        self._areas: dict[str, Area] = {t.name: t.area for t in self.towns}
        self._district: Area = [poly for a in self._areas.values() for poly in a]
        self._cache: dict[frozenset[str], tuple[dict[str, dict[str, float]], dict[str, float]]] = {}

    def weights(self, used: Iterable[str]) -> tuple[dict[str, dict[str, float]], dict[str, float]]:
        """({town: {gauge: weight}}, {gauge: district weight}) for the gauges ``used`` (weights 0 left out)."""
        key = frozenset(used)
        if key not in self._cache:
            pts = {g: self._points[g] for g in key}
            towns = {name: {g: w for g, w in thiessen_weights(pts, area).items() if w > 1e-9}
                     for name, area in self._areas.items()} if pts else {}
            district = ({g: w for g, w in thiessen_weights(pts, self._district).items() if w > 1e-9}
                        if pts and self._district else {})
            self._cache[key] = (towns, district)
        return self._cache[key]

    def used(self, counts: Mapping[str, float], expected: Mapping[str, float]) -> tuple[list[str], list[str]]:
        """(in use, dropped) gauge ids by coverage: count / expected readings ≥ min_coverage."""
        ok, dropped = [], []
        for g in self.gauges:
            exp = expected.get(g.id, 0.0)
            cov = counts.get(g.id, 0.0) / exp if exp > 0 else 0.0
            (ok if cov >= self.min_coverage and counts.get(g.id, 0) > 0 else dropped).append(g.id)
        return ok, dropped

    def areal(self, totals: Mapping[str, float], counts: Mapping[str, float], span_s: float,
              expected: Mapping[str, float] | None = None) -> dict[str, Any]:
        """The district's and each town's areal rain over a period of ``span_s`` seconds. ``counts`` are readings
        per gauge, against ``span_s / interval_s`` expected, unless ``expected`` says otherwise (e.g. days)."""
        if expected is None:
            expected = {g.id: span_s / g.interval_s for g in self.gauges}
        used, dropped = self.used(counts, expected)
        towns_w, district_w = self.weights(used)
        rain = {g: totals.get(g, 0.0) for g in used}
        towns = []
        for t in self.towns:
            w = towns_w.get(t.name, {})
            towns.append({"town": t.name, "area_km2": t.area_km2,
                          "areal_rain_mm": _r(sum(wi * rain[g] for g, wi in w.items())) if w else None,
                          "gauges": [{"station_id": g, "weight": round(wi, 4)} for g, wi in sorted(w.items())]})
        out: dict[str, Any] = {}
        if not self.towns:
            out["note"] = ("没有乡镇边界，无法计算面雨量：用 smartwater reports import-towns 导入 / no town boundaries: "
                           "import them with `smartwater reports import-towns`")
        return out | {
            "district_areal_rain_mm": _r(sum(w * rain[g] for g, w in district_w.items())) if district_w else None,
            "district_weights": {g: round(w, 4) for g, w in sorted(district_w.items())},
            "gauges_used": sorted(used),
            "gauges_dropped": sorted(dropped),
            "towns": towns,
        }
