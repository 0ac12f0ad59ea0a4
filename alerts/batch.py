"""The engine's batch path: many readings evaluated with numpy, side by side, instead of one by one.

Almost every reading raises, holds and clears nothing; all it changes is its window and the watermarks of
its rules (the newest data time each (station, rule) was evaluated at). So a batch is evaluated in two steps:

1. **Filter, vectorised.** Per (station kind, metric): one append of the new points to the family's window
   matrix, then per rule one comparison over all its readings that proves the rule's verdict has no severity
   (a threshold or reference level not passed, a rise, jump or rain sum under the lowest level, no stuck run)
   for a (station, rule) that has no open, pending or cleared alert. Those readings only move watermarks,
   which is done in one assignment per rule.
2. **Everything else, one by one,** in the batch's order, through the same code as a single reading
   (``AlertEngine.evaluate`` and ``evaluate_rain``): readings a rule might fire on (the filter is conservative:
   close calls go here too), (station, rule) pairs with an alert in progress, stations with an open stale
   alert, out-of-order or redelivered readings, rows spilled out of a matrix.

The result is the same as evaluating every reading on its own (tests/test_alert_vectorised.py checks it on
random inputs). Plans — per-station limits and thresholds precomputed from the rules — are rebuilt only
when the stations or the rules change.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from itertools import repeat
from typing import Iterable, Protocol

import numpy as np

from alerts.index import Family, StationIndex, to_us
from alerts.plan import Key, RulePlan, Slot, reference_limits
from alerts.windows import HOUR_MS
from core.domain import Kind, Reading
from core.rules import Rule, RuleType
from core.timeutil import to_ms

KINDS = [k.value for k in Kind]
# Rain sums come from running totals (rounding differs from the exact sums): a sum within this relative
# margin of a threshold goes to the exact per-gauge evaluation.
RAIN_SLACK = 1e-7


@dataclass
class Check:
    """One rule of a (kind, metric), ready for the vectorised filter."""

    rule: Rule
    col: int
    applies: np.ndarray | None  # by station index; None: every station of the kind
    bound: float = 0.0  # threshold: the lowest level (above) / highest (below); rise, spike: lowest level
    limits: np.ndarray | None = None  # reference_level: the lowest level of each station (inf: none)
    window_ms: int = 0  # rate_of_rise
    count: int = 0  # stuck


@dataclass
class MetricPlan:
    kind: str
    metric: str
    history: bool  # the family keeps a window
    rain: bool  # rain_mm: evaluated per gauge at the end of the batch
    checks: list[Check] = field(default_factory=list)
    exotic: bool = False  # a rule type the filter does not know: every reading one by one


@dataclass
class RainPlan:
    hours: np.ndarray  # the windows, hours
    thresholds: np.ndarray  # (stations, windows): the lowest mm that triggers anything on that gauge
    storm: list[Check]  # the gauge's own rain_sum rules
    torrent: list[Check]  # village rules, on the gauge's villages
    storm_names: set[str]
    torrent_names: set[str]
    indptr: np.ndarray  # gauge index → its villages: villages[indptr[g]:indptr[g + 1]]
    villages: np.ndarray
    gauge_of: np.ndarray  # village index → its gauge (-1)


class Engine(Protocol):
    """What the batch pass uses of the engine: its index and plan, and its one-by-one evaluation."""

    batch_min: int
    index: StationIndex
    plan: RulePlan
    margin_m: float

    def slot(self, station_id: str, metric: str) -> Slot | None: ...

    def family(self, kind: str, metric: str) -> Family: ...

    def active_keys(self) -> Iterable[Key]: ...

    def process_one(self, r: Reading, rain: dict[int, None]) -> None: ...

    def flush_rain(self, rain: dict[int, None]) -> None: ...

    def evaluate(self, slot: Slot, ts: datetime, us: int, ms: int, value: float) -> None: ...

    def clear_stale(self, slot: Slot, ts: datetime) -> None: ...

    def evaluate_rain(self, slot: Slot) -> None: ...


class BatchPass:
    def __init__(self, engine: Engine) -> None:
        self.eng = engine
        self._plans: dict[tuple[str, str], MetricPlan | None] = {}
        self._rain_plan: RainPlan | None = None
        self._version: tuple[int, int] = (-1, -1)
        self._mcode: dict[str, int] = {}
        self._metrics: list[str] = []
        self._kind_code = np.zeros(0, dtype=np.int64)

    # -- plans -----------------------------------------------------------------------------------------------
    def _sync(self) -> None:
        idx = self.eng.index
        version = (idx.stations.version, self.eng.plan.version)
        if version == self._version and len(self._kind_code) == len(idx.ids):
            return
        self._plans, self._rain_plan, self._version = {}, None, version
        code = {k: i for i, k in enumerate(KINDS)}
        stations = idx.stations
        self._kind_code = np.array([code[stations[sid].kind.value] if sid in stations else 0
                                    for sid in idx.ids], dtype=np.int64)

    def _applies(self, rule: Rule) -> np.ndarray | None:
        if rule.station_ids is None:
            return None
        ids = set(rule.station_ids)
        return np.array([sid in ids for sid in self.eng.index.ids], dtype=bool)

    def _plan(self, kind: str, metric: str) -> MetricPlan | None:
        key = (kind, metric)
        if key in self._plans:
            return self._plans[key]
        rules = self.eng.plan.by_metric.get(key, [])
        history = key in self.eng.plan.history
        plan = None
        if rules or history or metric == "rain_mm":
            plan = MetricPlan(kind, metric, history, metric == "rain_mm")
            for rule in rules if not plan.rain else ():  # rain rules are evaluated per gauge
                plan.checks.append(self._check(rule))
                plan.exotic |= plan.checks[-1] is None
            plan.checks = [c for c in plan.checks if c is not None]
        self._plans[key] = plan
        return plan

    def _check(self, rule: Rule) -> Check | None:
        eng, idx = self.eng, self.eng.index
        c = Check(rule, idx.col(rule.name), self._applies(rule))
        values = [lv.value for lv in rule.levels if lv.value is not None]
        if rule.type == RuleType.threshold:
            above = rule.direction == "above"
            c.bound = (min(values) if above else max(values)) if values else (np.inf if above else -np.inf)
        elif rule.type == RuleType.reference_level:
            limits = np.full(len(idx.ids), np.inf)
            margin = eng.margin_m
            for gi, sid in enumerate(idx.ids):
                st = idx.stations.get(sid)
                if st is not None and st.kind == rule.station_kind:
                    known = reference_limits(st, rule, margin)
                    if known:
                        limits[gi] = min(known)
            c.limits = limits
        elif rule.type in (RuleType.rate_of_rise, RuleType.spike):
            c.bound = min(values) if values else np.inf
            c.window_ms = int(float(rule.params.get("window_h", 1.0)) * HOUR_MS)
        elif rule.type == RuleType.stuck:
            c.count = int(rule.params["count"])
        else:
            return None
        return c

    def _rain_plan_now(self) -> RainPlan:
        if self._rain_plan is not None:
            return self._rain_plan
        idx, plan = self.eng.index, self.eng.plan
        hours = np.array(plan.rain_hours, dtype=np.int64)
        hcol = {int(h): j for j, h in enumerate(plan.rain_hours)}
        n = len(idx.ids)
        thr = np.full((n, len(hours)), np.inf)

        def lower(rows: np.ndarray | slice, windows: dict) -> None:
            for h, mm in windows.items():
                j = hcol[int(h)]
                thr[rows, j] = np.minimum(thr[rows, j], float(mm))

        storm = []
        stations = idx.stations
        for rule in plan.by_metric.get(("rain", "rain_mm"), ()):  # any type: evaluate_rain gives each a verdict
            c = Check(rule, idx.col(rule.name), self._applies(rule))
            storm.append(c)
            rows = np.array([stations[sid].kind.value == "rain" if sid in stations else False
                             for sid in idx.ids], dtype=bool)
            if c.applies is not None:
                rows &= c.applies
            for lv in rule.levels:
                lower(rows, lv.windows_h or {})
        gauge_of = np.full(n, -1, dtype=np.int64)
        indptr = np.zeros(n + 1, dtype=np.int64)
        villages: list[int] = []
        per_gauge: dict[int, list[int]] = {}
        for gid, vs in idx.gauge_villages.items():
            g = idx.row.get(gid)
            if g is not None:
                per_gauge[g] = [idx.row[v.id] for v in vs if v.id in idx.row]
        for g in range(n):
            vs = per_gauge.get(g, [])
            villages += vs
            indptr[g + 1] = len(villages)
            gauge_of[vs] = g
        torrent = []
        for rule in plan.torrent:
            c = Check(rule, idx.col(rule.name), self._applies(rule))
            torrent.append(c)
            per = rule.params.get("per_station") or {}
            for g, vs in per_gauge.items():
                for gi in vs:
                    if c.applies is not None and not c.applies[gi]:
                        continue
                    own = per.get(idx.ids[gi])
                    for lv in rule.levels:
                        windows = lv.windows_h or {}
                        if own and lv.severity.value in own:
                            windows = own[lv.severity.value]
                        lower(g, windows)
        self._rain_plan = RainPlan(hours, thr, storm, torrent, {c.rule.name for c in storm},
                                   {c.rule.name for c in torrent}, indptr, np.array(villages, dtype=np.int64),
                                   gauge_of)
        return self._rain_plan

    # -- readings --------------------------------------------------------------------------------------------
    def process(self, readings: list[Reading] | tuple[Reading, ...], rain: dict[int, None]) -> None:
        eng, idx = self.eng, self.eng.index
        self._sync()
        n = len(readings)
        sids, _kinds, metrics, tss, values = zip(*readings)
        gi = np.array(list(map(idx.row.get, sids, repeat(-1, n))), dtype=np.int64)
        known = gi >= 0
        known[known] = idx.present[gi[known]]
        mc = np.array(list(map(self._mcode.get, metrics, repeat(-1, n))), dtype=np.int64)
        if (mc < 0).any():
            for j in np.flatnonzero(mc < 0).tolist():
                mc[j] = self._mcode.setdefault(metrics[j], len(self._mcode))
                if mc[j] == len(self._metrics):
                    self._metrics.append(metrics[j])
        ms, us = self._times(tss)
        v = np.array(values, dtype=np.float64)
        pos = np.flatnonzero(known)
        # A (station, metric) twice in one batch: evaluate in stretches where each appears once, in order.
        nm = len(self._mcode)
        keys = gi[pos] * nm + mc[pos]
        if len(keys) and _repeats(keys):
            stretches, seen, cur = [], set(), []
            for p, k in zip(pos.tolist(), keys.tolist()):
                if k in seen:
                    stretches.append(np.array(cur, dtype=np.int64))
                    seen, cur = set(), []
                seen.add(k)
                cur.append(p)
            stretches.append(np.array(cur, dtype=np.int64))
        else:
            stretches = [pos]
        for i, P in enumerate(stretches):
            if i:  # rain sums are due at each stretch's readings, before the next stretch moves the windows on
                eng.flush_rain(rain)
            if len(P) < eng.batch_min:
                for p in P.tolist():
                    eng.process_one(readings[p], rain)
            else:
                self._stretch(readings, P, gi[P], mc[P], ms[P], us[P], v[P], tss, rain)

    @staticmethod
    def _times(tss: tuple[datetime, ...]) -> tuple[np.ndarray, np.ndarray]:
        n, t0 = len(tss), tss[0]
        if tss.count(t0) == n:  # one data time for the whole batch: the common case
            return np.full(n, to_ms(t0), dtype=np.int64), np.full(n, to_us(t0), dtype=np.int64)
        uniq = dict.fromkeys(tss)
        for t in uniq:
            uniq[t] = (to_ms(t), to_us(t))
        both = np.array([uniq[t] for t in tss], dtype=np.int64)
        return both[:, 0].copy(), both[:, 1].copy()

    def _active(self) -> tuple[np.ndarray, np.ndarray]:
        """(station, rule column) pairs with an open, pending or cleared alert."""
        return self.eng.index.cells(self.eng.active_keys())

    def _stretch(self, readings, P, g, mc, ms, us, v, tss, rain: dict[int, None]) -> None:  # noqa: ANN001
        eng, idx = self.eng, self.eng.index
        wm = idx.wm
        n = len(P)
        # Last seen: the newest reading of each station (the first of equals, as one by one would keep).
        if _repeats(g):
            order = np.lexsort((P, -us, g))
            first = np.ones(n, dtype=bool)
            first[1:] = g[order][1:] != g[order][:-1]
            pick = order[first]
        else:
            pick = np.arange(n)
        newer = pick[us[pick] > idx.last_seen_us[g[pick]]]
        if len(newer):
            idx.last_seen_us[g[newer]] = us[newer]
            ids = idx.ids
            idx.last_seen.update(zip([ids[x] for x in g[newer].tolist()], [tss[p] for p in P[newer].tolist()]))

        act_g, act_c = self._active()
        active = np.zeros(wm.shape, dtype=bool)
        active[act_g, act_c] = True
        flagged = np.zeros(n, dtype=bool)
        if eng.plan.stale and len(act_g):
            stale_cols = [idx.rule_col[r.name] for r in eng.plan.stale]
            with_stale = act_g[np.isin(act_c, stale_cols)]
            if len(with_stale):
                flagged |= np.isin(g, with_stale)

        fk = self._kind_code[g] * max(1, len(self._mcode)) + mc
        order = np.argsort(fk, kind="stable")
        bounds = np.flatnonzero(np.diff(fk[order])) + 1
        for sel in np.split(order, bounds):
            kind = KINDS[int(self._kind_code[g[sel[0]]])]
            plan = self._plan(kind, self._metrics[int(mc[sel[0]])])
            if plan is None:
                continue
            if plan.exotic:
                flagged[sel] = True
            if plan.rain:
                rain.update(dict.fromkeys(g[np.sort(sel)].tolist()))
            if plan.history:
                fam = eng.family(kind, plan.metric)
                m = fam.m
                rows = fam.rows(g[sel])
                fast = ((m.n[rows] == 0) | (ms[sel] > m.last[rows])) & ~m.is_spilled[rows]
                if not fast.all():  # out of order, redelivered or spilled: that row one by one
                    for j in np.flatnonzero(~fast).tolist():
                        m.window(int(rows[j])).add(tss[P[sel[j]]], readings[P[sel[j]]].value)
                    flagged[sel[~fast]] = True
                    sel, rows = sel[fast], rows[fast]
                spilled = m.append(rows, ms[sel], v[sel])
                if spilled.any():
                    flagged[sel[spilled]] = True
            if plan.rain:
                continue
            sel = sel[~flagged[sel]]
            if not len(sel) or plan.exotic:
                continue
            gs, vs, ts_ms, ts_us = g[sel], v[sel], ms[sel], us[sel]
            if plan.history:
                rows = fam.row_of[gs]
                cnt = m.n[rows]
            for c in plan.checks:
                need, verdict = self._quiet(c, vs, gs, ts_ms, m if plan.history else None,
                                            rows if plan.history else None, cnt if plan.history else None)
                need |= active[gs, c.col]
                if c.applies is not None:
                    ok = c.applies[gs]
                    need &= ok
                    verdict &= ok
                flagged[sel[need]] = True
                upd = verdict & ~need
                if upd.any():
                    gu = gs[upd]
                    wm[gu, c.col] = np.maximum(wm[gu, c.col], ts_us[upd])

        for j in np.flatnonzero(flagged).tolist():  # in the batch's order
            r = readings[P[j]]
            slot = eng.slot(r.station_id, r.metric)
            if slot.rain:
                eng.clear_stale(slot, r.ts)
                continue
            eng.evaluate(slot, r.ts, int(us[j]), int(ms[j]), r.value)

    @staticmethod
    def _quiet(c: Check, v: np.ndarray, g: np.ndarray, t: np.ndarray, m, rows, cnt) -> tuple[np.ndarray, np.ndarray]:  # noqa: ANN001
        """(need: the rule might have a severity — evaluate it exactly; verdict: it gives a verdict at all,
        so its watermark moves). Comparisons are written so that NaN lands in ``need``."""
        rt = c.rule.type
        if rt == RuleType.threshold:
            quiet = (v <= c.bound) if c.rule.direction == "above" else (v >= c.bound)
            return ~quiet, np.ones(len(v), dtype=bool)
        if rt == RuleType.reference_level:
            return ~(v <= c.limits[g]), np.ones(len(v), dtype=bool)
        if rt == RuleType.rate_of_rise:
            k = m.bound(rows, t - c.window_ms, right=False)
            has = k < cnt
            kk = np.minimum(k, cnt - 1)
            t0 = m.at(rows, kk, m.ts)
            v0 = m.at(rows, kk)
            dt = t - t0
            verdict = has & ~(dt < c.window_ms / 2)
            with np.errstate(divide="ignore", invalid="ignore"):
                rate = (v - v0) / (dt / HOUR_MS)
            return verdict & ~(rate <= c.bound), verdict
        if rt == RuleType.spike:
            verdict = cnt >= 2
            prev = m.at(rows, np.maximum(cnt - 2, 0))
            return verdict & ~(np.abs(v - prev) <= c.bound), verdict
        if rt == RuleType.stuck:
            k = c.count
            full = cnt >= k
            cols = m.head[rows][:, None] + np.maximum(cnt - k, 0)[:, None] + np.arange(k)
            last = m.v[rows[:, None], np.minimum(cols, m.cap - 1)]
            stuck = full & (last == last[:, :1]).all(axis=1)
            return stuck, np.ones(len(v), dtype=bool)
        return np.ones(len(v), dtype=bool), np.zeros(len(v), dtype=bool)

    # -- rain, once per gauge at the end of the batch ----------------------------------------------------------
    def rain(self, gauges: np.ndarray) -> None:
        eng, idx = self.eng, self.eng.index
        self._sync()
        plan = self._rain_plan_now()
        fam = idx.families.get(("rain", "rain_mm"))
        if fam is None:
            return
        m = fam.m
        rows = fam.row_of[gauges]
        known = rows >= 0
        gauges, rows = gauges[known], rows[known]
        cnt = m.n[rows]
        maybe = m.is_spilled[rows] | (cnt == 0)
        at = m.last[rows]
        k = m.bound(rows, at[:, None] - plan.hours[None, :] * HOUR_MS, right=True)
        has = k < cnt[:, None]
        kk = np.minimum(k, np.maximum(cnt - 1, 0)[:, None])
        col0 = m.head[rows][:, None]
        top = m.cs[rows, m.head[rows] + np.maximum(cnt - 1, 0)][:, None]
        lo_cs = m.cs[rows[:, None], col0 + kk]
        lo_v = m.v[rows[:, None], col0 + kk]
        sums = np.where(has, top - lo_cs + lo_v, 0.0)
        slack = RAIN_SLACK * (np.abs(top) + np.abs(lo_cs) + np.abs(lo_v)) + 1e-9
        maybe |= ~((sums + slack) < plan.thresholds[gauges]).all(axis=1)
        act_g, act_c = self._active()
        if len(act_g):
            names = {v: k for k, v in idx.rule_col.items()}
            hot = [gg if names[cc] in plan.storm_names else int(plan.gauge_of[gg])
                   for gg, cc in zip(act_g.tolist(), act_c.tolist())
                   if names[cc] in plan.storm_names or names[cc] in plan.torrent_names]
            if hot:
                maybe |= np.isin(gauges, hot)
        quiet = ~maybe
        wm = idx.wm
        q, at_us = gauges[quiet], at[quiet] * 1000
        for c in plan.storm:
            ok = c.applies[q] if c.applies is not None else slice(None)
            gq = q[ok]
            wm[gq, c.col] = np.maximum(wm[gq, c.col], at_us[ok])
        if plan.torrent and len(q):
            lens = plan.indptr[q + 1] - plan.indptr[q]
            if lens.sum():
                offs = np.repeat(plan.indptr[q] - (np.cumsum(lens) - lens), lens)
                vill = plan.villages[offs + np.arange(int(lens.sum()))]
                vat = np.repeat(at_us, lens)
                for c in plan.torrent:
                    ok = c.applies[vill] if c.applies is not None else slice(None)
                    gv = vill[ok]
                    wm[gv, c.col] = np.maximum(wm[gv, c.col], vat[ok])
        for gi in gauges[maybe].tolist():
            eng.evaluate_rain(eng.slot(idx.ids[gi], "rain_mm"))


def _repeats(keys: np.ndarray) -> bool:
    if keys.max() < 4 * len(keys) + 1_000_000:
        return bool(np.bincount(keys).max() > 1)
    return len(np.unique(keys)) < len(keys)
