// The public river-chief bulletin: no login, read from GET /api/v1/bulletin.
import { chiefsTable, fetchBulletin } from "./chiefs.js";
import { clear, h } from "./dom.js";
import { fmtTime } from "./format.js";
import { applyStatic, langSwitch, onLangChange, t } from "./i18n.js";

const LEVELS = ["county", "town", "village", "grid"];
let rows = null;
let error = null;

function render() {
  document.title = t("bulletin.title");
  const select = document.getElementById("town");
  const chosen = select.value;
  clear(select).append(h("option", { value: "" }, t("bulletin.all_towns")));
  const towns = [...new Set((rows || []).map((r) => r.town).filter(Boolean))].sort();
  for (const town of towns) select.append(h("option", { value: town }, town));
  select.value = towns.includes(chosen) ? chosen : "";
  const box = clear(document.getElementById("chiefs"));
  if (error) {
    box.append(h("p", { class: "empty-note" }, t("common.error", { why: error })));
    return;
  }
  if (rows === null) return;
  const shown = rows.filter((r) => !select.value || r.town === select.value)
    .sort((a, b) => (LEVELS.indexOf(a.level) - LEVELS.indexOf(b.level)) || String(a.town).localeCompare(String(b.town))
      || String(a.name).localeCompare(String(b.name)));
  box.append(chiefsTable(shown));
}

async function init() {
  applyStatic();
  langSwitch(document.getElementById("lang-switch"));
  onLangChange(render);
  document.getElementById("town").addEventListener("change", render);
  const tick = () => { document.getElementById("clock").textContent = fmtTime(new Date(), { date: false }); };
  tick();
  setInterval(tick, 10_000);
  try {
    rows = await fetchBulletin();
  } catch (err) {
    error = err.message;
  }
  render();
}

init();
