// The duty dashboard: login, district map, open alerts with acknowledge, live updates, station chart, tables.
import { api, ApiError, AuthError, clearSession, login, query, session } from "./api.js";
import { renderChart } from "./chart.js";
import { chiefsTable, fetchBulletin } from "./chiefs.js";
import { clear, h, s, table } from "./dom.js";
import { DISPLAY_TZ, fmtDateTime, fmtNum, fmtSigned, fmtTime } from "./format.js";
import { applyStatic, langSwitch, onLangChange, t, tOr } from "./i18n.js";
import { renderMap, STATES } from "./map.js";

const STAFF_ROLES = new Set(["admin", "supervisor", "duty"]);
const SEVERITIES = ["red", "orange", "yellow", "blue"];
const REFRESH_MS = 30_000;
const LIVE_DEBOUNCE_MS = 700;
const DEFAULT_METRIC = { reservoir: "water_level_m", river: "water_level_m", rain: "rain_mm",
  village_water: "turbidity_ntu", groundwater: "depth_m", intake: "volume_m3" };
// Supply pressure at the network's far end (CJ/T 316): a service level, drawn on the pressure chart.
const PRESSURE_MIN_MPA = 0.14;

const $ = (id) => document.getElementById(id);
const st = {
  map: null, stations: new Map(), alerts: null, rain: null, reservoirs: null, wq: null, chiefs: null,
  selected: null, detail: null, metric: null, readings: null, source: null, timers: [], pending: null,
  focusId: null, linkDone: null,
};

// ------------------------------------------------------------------ session
function showLogin(message) {
  closeStream();
  for (const id of st.timers) clearInterval(id);
  st.timers = [];
  $("app").hidden = true;
  $("login").hidden = false;
  $("user").hidden = true;
  $("logout").hidden = true;
  const err = $("login-error");
  err.hidden = !message;
  err.textContent = message || "";
  $("login-username").focus();
}

function handle(err) {
  if (err instanceof AuthError) {
    showLogin(t("login.expired"));
    return;
  }
  console.warn(err);
  toast(t("common.error", { why: err.message }), "error");
}

function isStaff() {
  return STAFF_ROLES.has(session()?.role);
}

function startApp() {
  const s0 = session();
  $("login").hidden = true;
  $("app").hidden = false;
  $("user").hidden = false;
  $("user").textContent = `${s0.username} · ${s0.role}`;
  $("logout").hidden = false;
  refreshAll();
  openStream();
  st.timers.push(setInterval(refreshAll, REFRESH_MS));
}

// ------------------------------------------------------------------ data
async function refreshAll() {
  await Promise.all([loadMap(), loadAlerts(), loadRain(), loadReservoirs(), loadWaterQuality(), loadChiefs()]);
}

async function loadMap() {
  try {
    st.map = await api("/api/v1/overview/map");
    st.stations = new Map(st.map.features.filter((f) => f.properties.layer === "station")
      .map((f) => [f.properties.id, f.properties]));
    renderMapCard();
    renderKpis();
    renderAlerts();  // station names come with the map
  } catch (err) { handle(err); }
}

async function loadAlerts() {
  try {
    const [active, acked] = await Promise.all([
      api(`/api/v1/alerts?${query({ state: "active", limit: 1000 })}`),
      api(`/api/v1/alerts?${query({ state: "acknowledged", limit: 1000 })}`),
    ]);
    st.alerts = [...active, ...acked];
    renderAlerts();
    renderKpis();
  } catch (err) { return handle(err); }
  await focusLinkedAlert();
}

// A notification's link (/#alert=42, in the e-mail) opens the dashboard on that alert, after the login if need be:
// its row marked and its station's panel open; one that is over by now says so.
function linkedAlertId() {
  const m = /^#alert=(\d{1,18})$/.exec(location.hash);
  return m ? Number(m[1]) : null;
}

async function focusLinkedAlert() {
  const id = linkedAlertId();
  if (id === null || id === st.linkDone || st.alerts === null) return;
  st.linkDone = id;
  st.focusId = id;
  renderAlerts();
  const open = st.alerts.find((a) => a.id === id);
  if (open) {
    document.querySelector(`#alerts li.alert[data-alert-id="${id}"]`)?.scrollIntoView({ block: "center" });
    await selectStation(open.station_id);
    return;
  }
  try {
    const over = await api(`/api/v1/alerts/${id}`);
    toast(t("alerts.link_over", { id }), "info");
    await selectStation(over.station_id);
  } catch (err) {
    if (err instanceof ApiError && err.status === 404) toast(t("alerts.link_missing", { id }), "error");
    else handle(err);
  }
}

async function loadRain() {
  try { st.rain = await api("/api/v1/overview/rain"); renderRain(); } catch (err) { handle(err); }
}

async function loadReservoirs() {
  try { st.reservoirs = await api("/api/v1/overview/reservoirs"); renderReservoirs(); } catch (err) { handle(err); }
}

async function loadWaterQuality() {
  try { st.wq = await api("/api/v1/overview/water-quality"); renderWaterQuality(); } catch (err) { handle(err); }
}

async function loadChiefs() {
  try { st.chiefs = await fetchBulletin(); } catch (err) { st.chiefs = []; console.warn(err); }
  renderChiefs();
}

// Alert notifications arrive in bursts during a storm: refetch once per burst.
function scheduleLiveRefresh() {
  if (st.pending) return;
  st.pending = setTimeout(async () => {
    st.pending = null;
    await Promise.all([loadAlerts(), loadMap()]);
  }, LIVE_DEBOUNCE_MS);
}

function openStream() {
  closeStream();
  const s0 = session();
  if (!s0) return;
  // EventSource cannot send headers: the API takes the token as ?access_token= on this one endpoint.
  const es = new EventSource(`/api/v1/alerts/stream?${query({ access_token: s0.token })}`);
  es.addEventListener("open", () => setLive(true));
  es.addEventListener("error", () => setLive(false));
  es.addEventListener("alert", (ev) => {
    let note = null;
    try { note = JSON.parse(ev.data); } catch (_) { /* not ours */ }
    // Only what needs the desk now: a storm raises hundreds of yellow and blue alerts, the list holds them.
    if (note && (note.event === "raised" || note.event === "escalated") && ["red", "orange"].includes(note.severity)) {
      const name = st.stations.get(note.station_id)?.name ?? note.station_id;
      toast(`${tOr(`event.${note.event}`, note.event)} · ${t(`state.${note.severity}`)} · ${name} · ${ruleLabel(note.rule)}`,
        note.severity);
    }
    scheduleLiveRefresh();
  });
  es.addEventListener("overflow", scheduleLiveRefresh);
  es.addEventListener("expired", () => { es.close(); clearSession(); showLogin(t("login.expired")); });
  st.source = es;
}

function closeStream() {
  if (st.source) st.source.close();
  st.source = null;
  setLive(false);
}

function setLive(on) {
  $("live").className = `live ${on ? "on" : "off"}`;
  $("live-text").dataset.i18n = on ? "live.on" : "live.off";
  $("live-text").textContent = t(on ? "live.on" : "live.off");
}

// ------------------------------------------------------------------ rendering
function ruleLabel(rule) {
  return tOr(`rule.${rule}`, rule);
}

function stationName(id) {
  return st.stations.get(id)?.name ?? id;
}

function dot(state) {
  return h("span", { class: `dot st-${state}`, title: t(`state.${state}`) });
}

function renderKpis() {
  const box = clear($("kpis"));
  if (!st.map) return;
  $("as-of").textContent = fmtDateTime(st.map.as_of);
  const c = st.map.counts;
  const open = st.alerts ?? [];
  const unacked = open.filter((a) => a.state === "active").length;
  for (const state of [...SEVERITIES, "stale", "normal"]) {
    box.append(h("div", { class: `kpi kpi-${state}`, dataset: { state } },
      h("span", { class: "kpi-n" }, c[state] ?? 0),
      h("span", { class: "kpi-label" }, t(`state.${state}`))));
  }
  box.append(h("div", { class: "kpi kpi-alerts" },
    h("span", { class: "kpi-n" }, unacked),
    h("span", { class: "kpi-label" }, t("alerts.active", { n: "" }).trim())));
}

function renderMapCard() {
  if (!st.map) return;
  const rivers = renderMap($("map"), st.map, { onSelect: selectStation, selected: st.selected });
  const legend = clear($("legend"));
  for (const state of ["red", "orange", "yellow", "blue", "normal", "stale"]) {
    legend.append(h("span", { class: "legend-item" }, dot(state), t(`state.${state}`)));
  }
  legend.append(h("span", { class: "legend-sep" }));
  const shapes = { reservoir: "M7,1L13,12L1,12Z", rain: "M2,2H12V12H2Z", river: "M7,0L14,7L7,14L0,7Z" };
  for (const kind of ["reservoir", "rain", "river", "village_water"]) {
    const icon = s("svg", { class: "kind-icon", viewBox: "0 0 14 14", width: 14, height: 14 },
      shapes[kind] ? s("path", { d: shapes[kind] }) : s("circle", { cx: 7, cy: 7, r: 3.5 }));
    legend.append(h("span", { class: "legend-item" }, icon, t(`kind.${kind}`)));
  }
  legend.append(h("span", { class: "legend-item" }, s("svg", { class: "kind-icon", viewBox: "0 0 14 14", width: 18, height: 14 },
    s("path", { class: "river", d: "M0,10C4,2 9,12 14,4" })), rivers ? t("map.rivers") : t("map.no_rivers")));
}

function alertItem(a) {
  const staff = isStaff();
  const valueText = a.metric ? `${fmtNum(a.value, 2)}` : "";
  const meta = [
    h("span", {}, fmtTime(a.started_at)),
    a.metric ? h("span", {}, t("alerts.value", { value: valueText })) : null,
    a.threshold !== null && a.threshold !== undefined ? h("span", {}, t("alerts.threshold", { value: fmtNum(a.threshold, 2) })) : null,
  ];
  let action;
  if (a.state === "active" && staff) {
    action = h("button", {
      class: "ack", type: "button", dataset: { alertId: a.id },
      onclick: (ev) => { ev.stopPropagation(); acknowledge(a, ev.currentTarget); },
    }, t("alerts.ack"));
  } else if (a.state === "acknowledged") {
    action = h("span", { class: "acked" }, t("alerts.acked_by", { by: a.acknowledged_by ?? "" }));
  } else {
    action = h("span", { class: "acked pending" }, t(`state.${a.severity}`));
  }
  return h("li", {
    class: `alert sev-${a.severity} state-${a.state}${a.id === st.focusId ? " focus" : ""}`, dataset: { alertId: a.id, state: a.state, stationId: a.station_id },
    tabindex: 0, onclick: () => selectStation(a.station_id),
  },
  h("span", { class: "sev-badge" }, t(`state.${a.severity}`)),
  h("div", { class: "alert-main" },
    h("div", { class: "alert-title" }, h("strong", {}, stationName(a.station_id)), " · ", ruleLabel(a.rule)),
    h("div", { class: "alert-meta" }, meta)),
  h("div", { class: "alert-action" }, action));
}

function renderAlerts() {
  const list = clear($("alerts"));
  if (st.alerts === null) return;
  const rank = (a) => SEVERITIES.indexOf(a.severity);
  const sorted = [...st.alerts].sort((a, b) => (a.state === "active" ? 0 : 1) - (b.state === "active" ? 0 : 1)
    || rank(a) - rank(b) || Date.parse(b.started_at) - Date.parse(a.started_at));
  const active = sorted.filter((a) => a.state === "active").length;
  $("alert-counts").textContent = `${t("alerts.active", { n: active })} · ${t("alerts.acknowledged", { n: sorted.length - active })}`;
  const note = $("alerts-note");
  note.hidden = isStaff();
  note.textContent = isStaff() ? "" : t("alerts.read_only");
  if (!sorted.length) {
    list.append(h("li", { class: "empty-note" }, t("alerts.none")));
    return;
  }
  for (const a of sorted) list.append(alertItem(a));
}

async function acknowledge(alert, button) {
  button.disabled = true;
  try {
    const updated = await api(`/api/v1/alerts/${alert.id}/ack`, { method: "POST" });
    st.alerts = st.alerts.map((a) => (a.id === updated.id ? updated : a));
    renderAlerts();
    renderKpis();
  } catch (err) {
    button.disabled = false;
    if (err instanceof AuthError) return handle(err);
    toast(t("alerts.ack_failed", { why: err.message }), "error");
  }
}

function renderRain() {
  const box = clear($("rain"));
  if (!st.rain) return;
  $("rain-asof").textContent = fmtDateTime(st.rain.as_of);
  const cell = (v) => (v === null ? t("common.none") : h("span", { class: v >= 100 ? "heavy-2" : v >= 50 ? "heavy-1" : "" }, fmtNum(v, 1)));
  box.append(table([
    { label: t("rain.station"), value: (g) => h("span", { class: "name" }, dot(g.state), g.name) },
    { label: t("rain.town"), value: (g) => g.town },
    { label: t("rain.1h"), value: (g) => cell(g.rain_1h_mm), cls: "num" },
    { label: t("rain.3h"), value: (g) => cell(g.rain_3h_mm), cls: "num" },
    { label: t("rain.6h"), value: (g) => cell(g.rain_6h_mm), cls: "num" },
    { label: t("rain.24h"), value: (g) => cell(g.rain_24h_mm), cls: "num" },
  ], st.rain.gauges, { rowAttrs: (g) => ({ dataset: { stationId: g.station_id }, class: "clickable", onclick: () => selectStation(g.station_id) }) }));
}

function renderReservoirs() {
  const box = clear($("reservoirs"));
  if (!st.reservoirs) return;
  $("res-asof").textContent = fmtDateTime(st.reservoirs.as_of);
  box.append(table([
    { label: t("res.name"), value: (r) => h("span", { class: "name" }, dot(r.state), r.name) },
    { label: t("res.level"), value: (r) => fmtNum(r.water_level_m, 2), cls: "num" },
    { label: t("res.limit"), value: (r) => fmtNum(r.flood_limit_level_m, 2), cls: "num" },
    { label: t("res.over"), value: (r) => h("span", { class: r.above_flood_limit_m > 0 ? "over" : "under" }, fmtSigned(r.above_flood_limit_m, 2)), cls: "num" },
    { label: t("res.storage"), value: (r) => fmtNum(r.storage_mcm, 2), cls: "num" },
    { label: t("res.pct"), value: (r) => pctBar(r.storage_pct), cls: "num" },
    { label: t("res.flow"), value: (r) => `${fmtNum(r.inflow_m3s, 1)} / ${fmtNum(r.outflow_m3s, 1)}`, cls: "num" },
  ], st.reservoirs.reservoirs, { rowAttrs: (r) => ({ dataset: { stationId: r.station_id }, class: "clickable", onclick: () => selectStation(r.station_id) }) }));
}

function pctBar(pct) {
  if (pct === null || pct === undefined) return t("common.none");
  const tenth = Math.max(0, Math.min(10, Math.round(pct / 10)));
  return h("span", { class: `rate ${pct > 100 ? "bad" : "ok"}` },
    h("span", { class: "bar" }, h("span", { class: `fill fill-${tenth}` })), `${fmtNum(pct, 0)}%`);
}

function renderWaterQuality() {
  const box = clear($("water-quality"));
  if (!st.wq) return;
  box.append(table([
    { label: t("wq.town"), value: (r) => r.town },
    { label: t("wq.villages"), value: (r) => r.villages, cls: "num" },
    { label: t("wq.reporting"), value: (r) => r.reporting, cls: "num" },
    { label: t("wq.compliant"), value: (r) => r.compliant, cls: "num" },
    { label: t("wq.rate"), value: (r) => pctRate(r.rate_pct), cls: "num" },
  ], st.wq.towns));
  const failing = st.wq.villages.filter((v) => v.compliant === false);
  box.append(h("h3", {}, `${t("wq.failing")} (${failing.length})`));
  if (!failing.length) {
    box.append(h("p", { class: "empty-note" }, t("wq.all_ok")));
    return;
  }
  const shown = failing.slice(0, 40);
  box.append(table([
    { label: t("wq.villages"), value: (v) => h("span", { class: "name" }, dot(v.state), v.village ?? v.name) },
    { label: t("wq.town"), value: (v) => v.town },
    { label: t("metric.turbidity_ntu"), value: (v) => fmtNum(v.turbidity_ntu, 2), cellCls: (v) => `num ${v.failing.includes("turbidity_ntu") ? "over" : ""}` },
    { label: t("metric.ph"), value: (v) => fmtNum(v.ph, 2), cellCls: (v) => `num ${v.failing.includes("ph") ? "over" : ""}` },
    { label: t("metric.free_chlorine_mgl"), value: (v) => fmtNum(v.free_chlorine_mgl, 2), cellCls: (v) => `num ${v.failing.includes("free_chlorine_mgl") ? "over" : ""}` },
  ], shown, { rowAttrs: (v) => ({ dataset: { stationId: v.station_id }, class: "clickable", onclick: () => selectStation(v.station_id) }) }));
  if (failing.length > shown.length) box.append(h("p", { class: "note" }, t("common.more", { n: failing.length - shown.length })));
}

function pctRate(pct) {
  if (pct === null || pct === undefined) return t("common.none");
  const cls = pct >= 97 ? "ok" : pct >= 90 ? "warn" : "bad";
  return h("span", { class: `rate ${cls}` }, h("span", { class: "bar" }, h("span", { class: `fill fill-${Math.round(pct / 10)}` })), `${fmtNum(pct, 1)}%`);
}

function renderChiefs() {
  const box = clear($("chiefs"));
  if (st.chiefs === null) return;
  const rows = [...st.chiefs].sort((a, b) => (a.pct ?? 1e9) - (b.pct ?? 1e9));
  box.append(chiefsTable(rows, { limit: 200 }));
}

// ------------------------------------------------------------------ station panel
async function selectStation(id) {
  st.selected = id;
  $("station").hidden = false;
  renderMapCard();
  try {
    st.detail = await api(`/api/v1/stations/${encodeURIComponent(id)}`);
  } catch (err) { return handle(err); }
  const select = clear($("station-metric"));
  for (const m of st.detail.metrics) select.append(h("option", { value: m.name }, tOr(`metric.${m.name}`, `${m.name} (${m.unit})`)));
  st.metric = DEFAULT_METRIC[st.detail.kind] ?? st.detail.metrics[0]?.name;
  select.value = st.metric;
  renderStationHead();
  $("station").scrollIntoView({ behavior: "smooth", block: "nearest" });
  await loadChart();
}

function renderStationHead() {
  const d = st.detail;
  if (!d) return;
  const p = st.stations.get(d.id);
  $("station-name").textContent = d.name;
  $("station-meta").textContent = `${d.id} · ${t(`kind.${d.kind}`)} · ${d.town}${d.river ? ` · ${d.river}` : ""}`;
  const facts = clear($("station-facts"));
  const add = (label, value, cls) => facts.append(h("dt", {}, label), h("dd", { class: cls }, value));
  if (p) add(t("station.state"), h("span", { class: "name" }, dot(p.state), t(`state.${p.state}`)));
  if (p) add(t("station.last"), fmtDateTime(p.last_ts));
  for (const r of references(d)) add(r.label, `${fmtNum(r.value, 2)} m`, r.cls);
}

function floodLimitNow(d, asOf) {
  if (d.flood_limit_periods && d.flood_limit_periods.length) {
    const parts = new Intl.DateTimeFormat("en-CA", { timeZone: DISPLAY_TZ, month: "2-digit", day: "2-digit" })
      .formatToParts(new Date(asOf));
    const mmdd = parts.find((x) => x.type === "month").value + parts.find((x) => x.type === "day").value;
    for (const p of d.flood_limit_periods) {
      const inside = p.start <= p.end ? (p.start <= mmdd && mmdd <= p.end) : (mmdd >= p.start || mmdd <= p.end);
      if (inside) return p.level_m;
    }
  }
  return d.flood_limit_level_m;
}

function references(d) {
  if (d.kind === "reservoir") {
    return [
      { label: t("ref.check_flood"), value: d.check_flood_level_m, cls: "ref-red" },
      { label: t("ref.design_flood"), value: d.design_flood_level_m, cls: "ref-red" },
      { label: t("ref.flood_control_high"), value: d.flood_control_high_level_m, cls: "ref-orange" },
      { label: t("ref.flood_limit"), value: floodLimitNow(d, st.map?.as_of ?? new Date()), cls: "ref-yellow" },
      { label: t("ref.normal"), value: d.normal_level_m, cls: "ref-normal" },
    ].filter((r) => r.value !== null && r.value !== undefined);
  }
  if (d.kind === "river") {
    return [
      { label: t("ref.guaranteed"), value: d.guaranteed_level_m, cls: "ref-red" },
      { label: t("ref.warning"), value: d.warning_level_m, cls: "ref-orange" },
    ].filter((r) => r.value !== null && r.value !== undefined);
  }
  return [];
}

function thresholdsFor(d, metric) {
  if (metric === "water_level_m") return references(d);
  if (metric === "pressure_mpa") return [{ label: t("ref.min"), value: PRESSURE_MIN_MPA, cls: "ref-yellow" }];
  const limit = st.wq?.limits.find((l) => l.metric === metric);
  if (!limit) return [];
  return [
    limit.max !== null ? { label: t("ref.max"), value: limit.max, cls: "ref-orange" } : null,
    limit.min !== null ? { label: t("ref.min"), value: limit.min, cls: "ref-orange" } : null,
  ].filter(Boolean);
}

async function loadChart() {
  const d = st.detail;
  if (!d || !st.metric) return;
  const end = new Date(Date.parse(st.map?.as_of ?? new Date().toISOString()) + 1000);
  const start = new Date(end.getTime() - 24 * 3600e3);
  const rain = st.metric === "rain_mm";
  const params = { metric: st.metric, start: start.toISOString(), end: end.toISOString(),
    every: rain ? "1h" : "10m", agg: rain ? "sum" : "mean" };
  try {
    st.readings = { ...(await api(`/api/v1/stations/${encodeURIComponent(d.id)}/readings?${query(params)}`)), rain };
  } catch (err) { return handle(err); }
  renderStationChart();
}

function renderStationChart() {
  if (!st.readings || !st.detail) return;
  const r = st.readings;
  renderChart($("chart"), { points: r.points, start: r.start, end: r.end, bars: r.rain,
    thresholds: thresholdsFor(st.detail, r.metric), emptyText: t("station.no_data") });
}

// ------------------------------------------------------------------ toasts, clock
function toast(text, kind = "info") {
  const el = h("div", { class: `toast toast-${kind}`, role: "status" }, text);
  $("toasts").append(el);
  setTimeout(() => el.remove(), 6000);
  while ($("toasts").children.length > 3) $("toasts").firstChild.remove();
}

function tick() {
  $("clock").textContent = fmtTime(new Date(), { date: false, seconds: true });
}

function renderAll() {
  document.title = t("app.title");
  renderKpis();
  renderMapCard();
  renderAlerts();
  renderRain();
  renderReservoirs();
  renderWaterQuality();
  renderChiefs();
  if (st.detail) {
    const select = $("station-metric");
    for (const opt of select.options) opt.textContent = tOr(`metric.${opt.value}`, opt.value);
    renderStationHead();
    renderStationChart();
  }
  setLive(st.source?.readyState === EventSource.OPEN);
}

// ------------------------------------------------------------------ wiring
function init() {
  applyStatic();
  document.title = t("app.title");
  langSwitch($("lang-switch"));
  onLangChange(renderAll);
  tick();
  setInterval(tick, 1000);
  $("login-form").addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const button = $("login-submit");
    button.disabled = true;
    $("login-error").hidden = true;
    try {
      await login($("login-username").value, $("login-password").value);
      $("login-password").value = "";
      startApp();
    } catch (err) {
      const msg = err instanceof ApiError && err.status === 401 ? t("login.failed")
        : err instanceof ApiError && err.status === 429 ? t("login.too_many") : err.message;
      showLogin(msg);
    } finally {
      button.disabled = false;
    }
  });
  $("logout").addEventListener("click", () => { clearSession(); showLogin(""); });
  $("station-close").addEventListener("click", () => {
    st.selected = null; st.detail = null; st.readings = null;
    $("station").hidden = true;
    renderMapCard();
  });
  $("station-metric").addEventListener("change", (ev) => { st.metric = ev.target.value; loadChart(); });
  window.addEventListener("hashchange", () => { st.linkDone = null; focusLinkedAlert(); });
  if (session()) startApp(); else showLogin("");
}

init();
