// The Reports page (报表): storm events, areal rainfall by town, a map of event totals, hyetographs per gauge,
// reservoir inflow hydrographs, and the Excel downloads. Data from /api/v1/reports/*; no library, no CDN.
import { api, login, session, clearSession, query, AuthError, ApiError } from "./api.js";
import { h, s, clear, table } from "./dom.js";
import { renderChart } from "./chart.js";
import { fmtNum, fmtDateTime } from "./format.js";
import { getLang, setLang, langSwitch, onLangChange } from "./i18n.js";

const TEXT = {
  zh: {
    "title": "即墨区智慧水务 · 报表", "subtitle": "降雨场次 · 面雨量 · 水库来水", "nav.dashboard": "值班台",
    "lang": "English", "login.title": "登录", "login.username": "用户名", "login.password": "密码", "login.submit": "登录",
    "period.from": "起", "period.to": "止", "period.go": "查询", "period.hint": "按水文日统计（08:00 至次日 08:00）",
    "events.title": "降雨场次", "events.none": "该时段内没有降雨场次", "download.xlsx": "下载 Excel",
    "areal.title": "乡镇面雨量", "map.title": "场次雨量分布", "map.hint": "乡镇按面雨量着色，方块为雨量站累计雨量(mm)",
    "hyeto.title": "雨量站逐时雨量", "hyeto.gauge": "雨量站", "inflow.title": "水库来水", "inflow.reservoir": "水库",
    "inflow.total": "全区来水 {v} 万m³", "areal.period.title": "逐日面雨量(mm)",
    "areal.note": "泰森多边形法；参与计算雨量站 {used} 个{dropped}", "areal.dropped": "，缺测 {list}",
    "col.id": "场次", "col.start": "开始", "col.end": "结束", "col.duration": "历时(h)", "col.district": "全区面雨量(mm)",
    "col.wettest": "最大点雨量", "col.max1h": "最大1小时(mm)", "col.closed": "状态", "closed": "已结束", "open": "进行中",
    "col.rank": "排序", "col.reservoir": "水库", "col.volume": "来水量(万m³)", "col.peak": "最大入库(m³/s)",
    "col.peak_at": "出现时间", "col.ds": "蓄变量(万m³)", "col.maxlevel": "最高水位(m)", "col.margin": "距汛限(m)",
    "col.method": "方法", "col.flags": "提示", "col.day": "水文日", "method.sensor": "流量计", "method.balance": "水量平衡",
    "method.none": "无数据", "loading": "加载中…", "error": "出错：{msg}", "chart.empty": "无数据",
  },
  en: {
    "title": "Jimo smart water · Reports", "subtitle": "Storm events · areal rainfall · reservoir inflow",
    "nav.dashboard": "Duty board", "lang": "中文", "login.title": "Sign in", "login.username": "User name",
    "login.password": "Password", "login.submit": "Sign in", "period.from": "From", "period.to": "To",
    "period.go": "Show", "period.hint": "Hydrological days (08:00 to 08:00 local)", "events.title": "Storm events",
    "events.none": "No storm event in this period", "download.xlsx": "Download Excel", "areal.title": "Areal rainfall by town",
    "map.title": "Event rainfall map", "map.hint": "Towns coloured by areal rain; squares: gauge totals (mm)",
    "hyeto.title": "Hourly rain at a gauge", "hyeto.gauge": "Gauge", "inflow.title": "Reservoir inflow",
    "inflow.reservoir": "Reservoir", "inflow.total": "district inflow {v} ×10⁴ m³", "areal.period.title": "Daily areal rainfall (mm)",
    "areal.note": "Thiessen polygons; {used} gauges used{dropped}", "areal.dropped": ", missing: {list}",
    "col.id": "Event", "col.start": "Start", "col.end": "End", "col.duration": "Hours", "col.district": "District (mm)",
    "col.wettest": "Wettest gauge", "col.max1h": "Max 1 h (mm)", "col.closed": "State", "closed": "ended", "open": "ongoing",
    "col.rank": "Rank", "col.reservoir": "Reservoir", "col.volume": "Inflow (10⁴ m³)", "col.peak": "Peak (m³/s)",
    "col.peak_at": "at", "col.ds": "Storage change (10⁴ m³)", "col.maxlevel": "Highest level (m)",
    "col.margin": "Below flood limit (m)", "col.method": "Method", "col.flags": "Flags", "col.day": "Day",
    "method.sensor": "flow meter", "method.balance": "water balance", "method.none": "no data", "loading": "Loading…",
    "error": "Error: {msg}", "chart.empty": "no data",
  },
};

function r(key, vars = {}) {
  const text = TEXT[getLang()][key] ?? TEXT.zh[key] ?? key;
  return text.replace(/\{(\w+)\}/g, (_, k) => (k in vars ? String(vars[k]) : ""));
}

function applyText() {
  document.documentElement.lang = getLang() === "zh" ? "zh-CN" : "en";
  for (const el of document.querySelectorAll("[data-r]")) el.textContent = r(el.dataset.r);
  document.getElementById("lang-switch").textContent = r("lang");
}

const $ = (id) => document.getElementById(id);
const state = { events: null, event: null, inflow: null, areal: null, towns: null, eventId: null };

// Local dates (UTC+8) <-> the hydrological day's start, 08:00 local.
function localDate(offsetDays = 0) {
  const d = new Date(Date.now() + 8 * 3600e3 + offsetDays * 86400e3);
  return d.toISOString().slice(0, 10);
}
function dayStart(date, plusDays = 0) {
  const d = new Date(`${date}T08:00:00+08:00`);
  return new Date(d.getTime() + plusDays * 86400e3).toISOString();
}
function period() {
  return { from: dayStart($("from").value), to: dayStart($("to").value, 1) };
}

function status(text) { $("status").textContent = text || ""; }

async function download(path, filename) {
  const s = session();
  const resp = await fetch(path, { headers: { Authorization: `Bearer ${s.token}` } });
  if (!resp.ok) throw new ApiError(resp.status, resp.statusText);
  const url = URL.createObjectURL(await resp.blob());
  const a = h("a", { href: url, download: filename });
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10_000);
}

// ------------------------------------------------------------------------------------------- charts and map

function barsChart(svg, rows) {
  clear(svg);
  const W = 900, rowH = 22, left = 110, right = 70;
  const H = Math.max(60, rows.length * rowH + 16);
  svg.setAttribute("viewBox", `0 0 ${W} ${H}`);
  const max = Math.max(1, ...rows.map((x) => x.value ?? 0));
  rows.forEach((x, i) => {
    const y = 8 + i * rowH;
    const w = ((x.value ?? 0) / max) * (W - left - right);
    svg.append(s("text", { class: "bar-label", x: left - 8, y: y + 15, "text-anchor": "end" }, x.label));
    svg.append(s("rect", { class: "bar", x: left, y: y + 3, width: Math.max(0, w), height: rowH - 6,
      "data-town": x.label, "data-value": x.value ?? "" }, s("title", {}, `${x.label} ${fmtNum(x.value, 1)} mm`)));
    svg.append(s("text", { class: "bar-value", x: left + w + 6, y: y + 15 }, fmtNum(x.value, 1)));
  });
}

function colour(v, max) {
  const f = Math.max(0, Math.min(1, (v ?? 0) / (max || 1)));
  const c0 = [235, 244, 250], c1 = [23, 105, 170];
  return `rgb(${c0.map((a, i) => Math.round(a + (c1[i] - a) * f)).join(",")})`;
}

function eventMap(svg, towns, detail) {
  clear(svg);
  svg.classList.add("event-map");
  const pts = towns.features.flatMap((f) => (f.geometry.type === "Polygon" ? [f.geometry.coordinates]
    : f.geometry.coordinates).flatMap((poly) => poly[0]));
  if (!pts.length) return;
  const w = Math.min(...pts.map((p) => p[0])), e = Math.max(...pts.map((p) => p[0]));
  const so = Math.min(...pts.map((p) => p[1])), n = Math.max(...pts.map((p) => p[1]));
  const k = Math.cos(((so + n) / 2) * Math.PI / 180);
  const W = 900, pad = 10, scale = (W - 2 * pad) / ((e - w) * k), H = Math.round((n - so) * scale + 2 * pad);
  const xy = ([lon, lat]) => [pad + (lon - w) * k * scale, pad + (n - lat) * scale];
  svg.setAttribute("viewBox", `0 0 ${W} ${H}`);
  const areal = new Map(detail.towns.map((t) => [t.town, t.areal_rain_mm]));
  const max = Math.max(...detail.towns.map((t) => t.areal_rain_mm ?? 0));
  for (const f of towns.features) {
    const polys = f.geometry.type === "Polygon" ? [f.geometry.coordinates] : f.geometry.coordinates;
    const d = polys.map((poly) => poly.map((ring) => ring.map((p, i) => {
      const [x, y] = xy(p);
      return `${i ? "L" : "M"}${x.toFixed(1)},${y.toFixed(1)}`;
    }).join("") + "Z").join("")).join("");
    const v = areal.get(f.properties.name);
    svg.append(s("path", { class: "town", d, fill: colour(v, max), "data-town": f.properties.name },
      s("title", {}, `${f.properties.name} ${fmtNum(v, 1)} mm`)));
    const ring = polys[0][0];
    const c = ring.reduce((a, p) => [a[0] + p[0] / ring.length, a[1] + p[1] / ring.length], [0, 0]);
    const [cx, cy] = xy(c);
    svg.append(s("text", { class: "town-name", x: cx, y: cy }, f.properties.name));
  }
  for (const g of detail.gauges) {
    const [x, y] = xy([g.lon, g.lat]);
    svg.append(s("rect", { class: "gauge", x: x - 3, y: y - 3, width: 6, height: 6, "data-station-id": g.station_id },
      s("title", {}, `${g.name} ${fmtNum(g.rain_mm, 1)} mm`)));
    svg.append(s("text", { class: "gauge-value", x: x + 5, y: y - 4 }, fmtNum(g.rain_mm, 0)));
  }
}

// ------------------------------------------------------------------------------------------- sections

function renderEvents() {
  const el = clear($("events"));
  const events = state.events?.events || [];
  if (!events.length) { el.append(h("p", { class: "note" }, r("events.none"))); return; }
  el.append(table([
    { label: r("col.id"), value: (e) => e.id },
    { label: r("col.start"), value: (e) => fmtDateTime(e.start) },
    { label: r("col.end"), value: (e) => fmtDateTime(e.end) },
    { label: r("col.duration"), value: (e) => fmtNum(e.duration_h, 0), cls: "num" },
    { label: r("col.district"), value: (e) => fmtNum(e.district_areal_rain_mm, 1), cls: "num" },
    { label: r("col.wettest"), value: (e) => `${e.wettest_station_name ?? ""} ${fmtNum(e.wettest_rain_mm, 1)}` },
    { label: r("col.max1h"), value: (e) => fmtNum(e.max_1h_rain_mm, 1), cls: "num" },
    { label: r("col.closed"), value: (e) => r(e.closed ? "closed" : "open") },
  ], events, { rowAttrs: (e) => ({ "data-event-id": e.id, class: e.id === state.eventId ? "selected" : "",
    onclick: () => selectEvent(e.id) }) }));
}

function renderEvent() {
  const d = state.event;
  $("event").hidden = $("hyeto-card").hidden = !d;
  if (!d) return;
  $("event-name").textContent = `${d.id} · ${fmtDateTime(d.start)} – ${fmtDateTime(d.end)}`;
  barsChart($("areal-bars"), d.towns.map((t) => ({ label: t.town, value: t.areal_rain_mm }))
    .sort((a, b) => (b.value ?? 0) - (a.value ?? 0)));
  $("areal-note").textContent = r("areal.note", { used: d.gauges.filter((g) => g.used).length,
    dropped: d.gauges_dropped.length ? r("areal.dropped", { list: d.gauges_dropped.join("、") }) : "" });
  if (state.towns) eventMap($("event-map"), state.towns, d);
  const sel = $("hyeto-gauge");
  const keep = sel.value;
  clear(sel);
  for (const g of [...d.gauges].sort((a, b) => b.rain_mm - a.rain_mm)) {
    sel.append(h("option", { value: g.station_id }, `${g.name} (${fmtNum(g.rain_mm, 1)} mm)`));
  }
  if (keep && d.gauges.some((g) => g.station_id === keep)) sel.value = keep;
  renderHyetograph();
}

function renderHyetograph() {
  const d = state.event;
  if (!d) return;
  const pts = (d.hyetographs[$("hyeto-gauge").value] || []).map(([ts, v]) => ({ ts, value: v }));
  renderChart($("hyetograph"), { points: pts, start: d.start, end: d.end, bars: true, emptyText: r("chart.empty") });
}

function renderInflow() {
  const rep = state.inflow;
  $("inflow-card").hidden = !rep;
  if (!rep) return;
  $("inflow-total").textContent = r("inflow.total", { v: fmtNum(rep.district_inflow_volume_10k_m3, 1) });
  const sel = $("inflow-reservoir");
  const keep = sel.value;
  clear(sel);
  for (const x of rep.reservoirs) sel.append(h("option", { value: x.station_id }, `${x.rank ?? ""} ${x.name}`));
  if (keep && rep.reservoirs.some((x) => x.station_id === keep)) sel.value = keep;
  renderHydrograph();
  clear($("inflow")).append(table([
    { label: r("col.rank"), value: (x) => x.rank ?? "", cls: "num" },
    { label: r("col.reservoir"), value: (x) => x.name },
    { label: r("col.volume"), value: (x) => fmtNum(x.inflow_volume_10k_m3, 2), cls: "num" },
    { label: r("col.peak"), value: (x) => fmtNum(x.peak_inflow_m3s, 2), cls: "num" },
    { label: r("col.peak_at"), value: (x) => fmtDateTime(x.peak_inflow_at) },
    { label: r("col.ds"), value: (x) => fmtNum(x.storage_change_10k_m3, 2), cls: "num" },
    { label: r("col.maxlevel"), value: (x) => fmtNum(x.max_level_m, 2), cls: "num" },
    { label: r("col.margin"), value: (x) => fmtNum(x.margin_to_flood_limit_m, 2), cls: "num" },
    { label: r("col.method"), value: (x) => r(`method.${x.method}`) },
    { label: r("col.flags"), value: (x) => h("span", { class: "flag" }, x.flags.map((f) => f[getLang()] || f.zh).join(getLang() === "zh" ? "；" : "; ")) },
  ], rep.reservoirs, { rowAttrs: (x) => ({ "data-station-id": x.station_id }) }));
}

function renderHydrograph() {
  const rep = state.inflow;
  if (!rep) return;
  const x = rep.reservoirs.find((y) => y.station_id === $("inflow-reservoir").value) || rep.reservoirs[0];
  const pts = (x?.hydrograph || []).map(([ts, v]) => ({ ts, value: v }));
  $("hydrograph").dataset.stationId = x?.station_id || "";
  renderChart($("hydrograph"), { points: pts, start: rep.start, end: rep.end, emptyText: r("chart.empty") });
}

function renderAreal() {
  const rep = state.areal;
  const el = clear($("areal-days"));
  if (!rep) return;
  const cols = [{ label: r("col.day"), value: (d) => d.period },
    { label: r("col.district"), value: (d) => fmtNum(d.district_areal_rain_mm, 1), cls: "num" },
    ...rep.towns.map((name) => ({ label: name, cls: "num",
      value: (d) => fmtNum(d.towns.find((t) => t.town === name)?.areal_rain_mm, 1) }))];
  el.append(table(cols, rep.days));
}

function renderAll() {
  applyText();
  renderEvents();
  renderEvent();
  renderInflow();
  renderAreal();
}

// ------------------------------------------------------------------------------------------- loading

async function selectEvent(id) {
  state.eventId = id;
  status(r("loading"));
  state.event = await api(`/api/v1/reports/rain-events/${id}`);
  // Inflow from the event's start to a day after its end: the reservoirs' response lags the rain.
  const end = new Date(Math.min(Date.parse(state.event.end) + 86400e3, Date.parse(period().to))).toISOString();
  state.inflow = await api(`/api/v1/reports/reservoir-inflow?${query({ from: state.event.start, to: end, hydrograph: "true" })}`);
  renderEvents();
  renderEvent();
  renderInflow();
  status("");
}

async function load() {
  const p = period();
  status(r("loading"));
  try {
    if (!state.towns) state.towns = await api("/api/v1/reports/towns");
    state.events = await api(`/api/v1/reports/rain-events?${query(p)}`);
    state.areal = await api(`/api/v1/reports/areal-rainfall?${query(p)}`);
    renderAreal();
    const events = state.events.events;
    if (events.length) {
      const keep = events.find((e) => e.id === state.eventId) || events[events.length - 1];
      await selectEvent(keep.id);
    } else {
      state.event = state.inflow = null;
      state.eventId = null;
      renderAll();
    }
    status("");
  } catch (err) {
    handle(err);
  }
}

function handle(err) {
  if (err instanceof AuthError) { showLogin(); return; }
  status(r("error", { msg: err.message }));
}

function showLogin() {
  $("app").hidden = true;
  $("login").hidden = false;
}

function start() {
  $("login").hidden = true;
  $("app").hidden = false;
  load();
}

function init() {
  langSwitch($("lang-switch"));
  onLangChange(renderAll);
  applyText();
  $("from").value = localDate(-30);
  $("to").value = localDate(0);
  const params = new URLSearchParams(location.search);
  if (params.get("from")) $("from").value = params.get("from");
  if (params.get("to")) $("to").value = params.get("to");
  $("period").addEventListener("submit", (ev) => { ev.preventDefault(); load(); });
  $("hyeto-gauge").addEventListener("change", renderHyetograph);
  $("inflow-reservoir").addEventListener("change", renderHydrograph);
  const stamp = () => `${$("from").value.replaceAll("-", "")}-${$("to").value.replaceAll("-", "")}`;
  $("dl-events").addEventListener("click", () => download(`/api/v1/reports/rain-events?${query({ ...period(), format: "xlsx", lang: getLang() })}`,
    `降雨场次-${stamp()}.xlsx`).catch(handle));
  $("dl-areal").addEventListener("click", () => download(`/api/v1/reports/areal-rainfall?${query({ ...period(), format: "xlsx", lang: getLang() })}`,
    `面雨量-${stamp()}.xlsx`).catch(handle));
  $("dl-event").addEventListener("click", () => state.eventId && download(
    `/api/v1/reports/rain-events/${state.eventId}?${query({ format: "xlsx", lang: getLang() })}`,
    `降雨场次-${state.eventId}.xlsx`).catch(handle));
  $("dl-inflow").addEventListener("click", () => state.inflow && download(
    `/api/v1/reports/reservoir-inflow?${query({ from: state.inflow.start, to: state.inflow.end, format: "xlsx", lang: getLang() })}`,
    `水库来水-${state.eventId || stamp()}.xlsx`).catch(handle));
  $("login-form").addEventListener("submit", async (ev) => {
    ev.preventDefault();
    $("login-error").hidden = true;
    try {
      await login($("login-username").value, $("login-password").value);
      start();
    } catch (err) {
      $("login-error").textContent = err.message;
      $("login-error").hidden = false;
    }
  });
  if (session()) start(); else showLogin();
}

export { setLang, clearSession };
init();
