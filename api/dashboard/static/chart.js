// A readings chart in SVG: a line (or hourly bars for rain) with reference levels and limits as dashed lines.
import { s, clear } from "./dom.js";
import { fmtNum, fmtTime } from "./format.js";

const W = 900;
const H = 260;
const M = { left: 56, right: 128, top: 14, bottom: 30 };

function niceTicks(lo, hi, n = 5) {
  const span = hi - lo || 1;
  const step0 = span / n;
  const mag = 10 ** Math.floor(Math.log10(step0));
  const step = [1, 2, 2.5, 5, 10].map((m) => m * mag).find((st) => st >= step0) || step0;
  const out = [];
  for (let v = Math.ceil(lo / step) * step; v <= hi + 1e-9; v += step) out.push(+v.toFixed(10));
  return { ticks: out, digits: Math.max(0, -Math.floor(Math.log10(step))) };
}

// points: [{ts, value}], oldest first; thresholds: [{label, value, cls}]; bars: draw hourly bars (rain).
export function renderChart(svg, { points, start, end, thresholds = [], bars = false, emptyText = "" }) {
  clear(svg);
  svg.setAttribute("viewBox", `0 0 ${W} ${H}`);
  const t0 = Date.parse(start);
  const t1 = Date.parse(end);
  const vals = points.map((p) => p.value);
  const refs = thresholds.filter((r) => r.value !== null && r.value !== undefined);
  let lo = Math.min(...vals, ...(bars ? [0] : []));
  let hi = Math.max(...vals, ...(bars ? [1] : []));
  if (!vals.length) {
    lo = Math.min(...refs.map((r) => r.value), 0);
    hi = Math.max(...refs.map((r) => r.value), 1);
  }
  // Reference lines near the data are worth the space; far ones (a dead level 30 m below) are only listed.
  const near = refs.filter((r) => !vals.length || (r.value >= lo - (hi - lo + 1) * 1.5 && r.value <= hi + (hi - lo + 1) * 1.5));
  for (const r of near) { lo = Math.min(lo, r.value); hi = Math.max(hi, r.value); }
  const pad = (hi - lo) * 0.08 || Math.abs(hi) * 0.05 || 1;
  lo = bars ? Math.max(0, lo - pad) : lo - pad;
  hi += pad;
  const x = (ts) => M.left + ((ts - t0) / (t1 - t0)) * (W - M.left - M.right);
  const y = (v) => M.top + (1 - (v - lo) / (hi - lo)) * (H - M.top - M.bottom);

  const axis = s("g", { class: "axis" });
  const { ticks, digits } = niceTicks(lo, hi);
  for (const v of ticks) {
    axis.append(s("line", { class: "gridline", x1: M.left, x2: W - M.right, y1: y(v), y2: y(v) }));
    axis.append(s("text", { x: M.left - 6, y: y(v) + 4, "text-anchor": "end" }, fmtNum(v, Math.min(digits, 3))));
  }
  const hour = 3600e3;
  const stepH = (t1 - t0) / hour > 12 ? 4 : 1;
  // Ticks on whole local hours (UTC+8 has no DST: whole UTC hours are whole local hours).
  for (let ts = Math.ceil(t0 / (stepH * hour)) * stepH * hour; ts <= t1; ts += stepH * hour) {
    axis.append(s("line", { class: "tick", x1: x(ts), x2: x(ts), y1: H - M.bottom, y2: H - M.bottom + 4 }));
    axis.append(s("text", { x: x(ts), y: H - M.bottom + 17, "text-anchor": "middle" }, fmtTime(new Date(ts), { date: false })));
  }
  axis.append(s("line", { class: "baseline", x1: M.left, x2: W - M.right, y1: H - M.bottom, y2: H - M.bottom }));
  svg.append(axis);

  const refLayer = s("g", { class: "refs" });
  for (const r of near) {
    refLayer.append(s("line", { class: `ref ${r.cls || ""}`, x1: M.left, x2: W - M.right, y1: y(r.value), y2: y(r.value) }));
    refLayer.append(s("text", { class: `ref-label ${r.cls || ""}`, x: W - M.right + 6, y: y(r.value) + 4 },
      `${r.label} ${fmtNum(r.value, 2)}`));
  }
  svg.append(refLayer);

  if (!points.length) {
    svg.append(s("text", { class: "empty", x: (M.left + W - M.right) / 2, y: H / 2, "text-anchor": "middle" }, emptyText));
    return;
  }
  if (bars) {
    const bw = Math.max(2, ((W - M.left - M.right) / ((t1 - t0) / hour)) - 3);
    const g = s("g", { class: "bars" });
    for (const p of points) {
      const ts = Date.parse(p.ts);
      g.append(s("rect", { x: x(ts) + 1, y: y(p.value), width: bw, height: Math.max(0, y(lo) - y(p.value)) },
        s("title", {}, `${fmtTime(p.ts)}  ${fmtNum(p.value, 1)}`)));
    }
    svg.append(g);
    return;
  }
  const d = points.map((p, i) => `${i ? "L" : "M"}${x(Date.parse(p.ts)).toFixed(1)},${y(p.value).toFixed(1)}`).join("");
  svg.append(s("path", { class: "series", d }));
  const last = points[points.length - 1];
  svg.append(s("circle", { class: "series-end", cx: x(Date.parse(last.ts)), cy: y(last.value), r: 3.5 }));
}
