// The public river-chief bulletin: no login, read from GET /api/v1/bulletin. The period is chosen by month (the
// default is the server's: the last complete month), the tables filtered by town.
import { chiefsTable, fetchBulletinBody, townsTable } from "./chiefs.js";
import { clear, h } from "./dom.js";
import { fmtTime } from "./format.js";
import { applyStatic, langSwitch, onLangChange, t } from "./i18n.js";

const LEVELS = ["county", "town", "village", "grid"];
let body = null;
let error = null;

function render() {
  document.title = t("bulletin.title");
  const select = document.getElementById("town");
  const chosen = select.value;
  clear(select).append(h("option", { value: "" }, t("bulletin.all_towns")));
  const towns = [...new Set((body?.rows || []).map((r) => r.town).filter(Boolean))].sort();
  for (const town of towns) select.append(h("option", { value: town }, town));
  select.value = towns.includes(chosen) ? chosen : "";
  const period = document.getElementById("period");
  const month = document.getElementById("month");
  if (body) {
    period.textContent = t("bulletin.period", { label: body.period.label, tz: body.period.timezone });
    if (body.period.month) month.value = body.period.month;
    const rate = body.district_rate;
    document.getElementById("district").textContent = rate === null || rate === undefined ? ""
      : t("bulletin.district_rate", { pct: Math.round(rate * 100) });
  }
  const box = clear(document.getElementById("chiefs"));
  const townBox = clear(document.getElementById("towns"));
  if (error) {
    box.append(h("p", { class: "empty-note" }, t("common.error", { why: error })));
    return;
  }
  if (body === null) return;
  townBox.append(townsTable(body.towns.filter((x) => !select.value || x.town === select.value)));
  const shown = body.rows.filter((r) => !select.value || r.town === select.value)
    .sort((a, b) => (LEVELS.indexOf(a.level) - LEVELS.indexOf(b.level)) || String(a.town).localeCompare(String(b.town))
      || String(a.name).localeCompare(String(b.name)));
  box.append(chiefsTable(shown));
}

async function load(month) {
  error = null;
  try {
    body = await fetchBulletinBody(month);
    if (body === null) body = { rows: [], towns: [], period: { label: "", timezone: "" } };
  } catch (err) {
    error = err.message;
  }
  render();
}

async function init() {
  applyStatic();
  langSwitch(document.getElementById("lang-switch"));
  onLangChange(render);
  document.getElementById("town").addEventListener("change", render);
  document.getElementById("month").addEventListener("change", (ev) => { if (ev.target.value) load(ev.target.value); });
  const tick = () => { document.getElementById("clock").textContent = fmtTime(new Date(), { date: false }); };
  tick();
  setInterval(tick, 10_000);
  await load(new URLSearchParams(location.search).get("month"));
}

init();
