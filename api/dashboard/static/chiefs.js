// The river-chief compliance table, from the public bulletin (GET /api/v1/bulletin); shared by the dashboard and
// the public bulletin page. Until the server has the bulletin it shows a "no data" note.
import { publicGet } from "./api.js";
import { h, table } from "./dom.js";
import { fmtNum } from "./format.js";
import { t, tOr } from "./i18n.js";

export async function fetchBulletin() {
  const body = await publicGet("/api/v1/bulletin");
  if (body === null) return [];
  const rows = Array.isArray(body) ? body : (body.rows || body.chiefs || body.items || []);
  // A rate may come as a fraction (0.75) or a percentage (75): a table where none exceeds 1 holds fractions.
  const fractions = rows.every((r) => r.rate === null || r.rate === undefined || r.rate <= 1);
  return rows.map((r) => {
    let pct = r.rate === null || r.rate === undefined ? null : (fractions ? r.rate * 100 : r.rate);
    if (pct === null && r.required) pct = (r.valid / r.required) * 100;
    return { ...r, pct };
  });
}

function rateCell(pct) {
  if (pct === null || pct === undefined) return t("common.none");
  const cls = pct >= 100 ? "ok" : pct >= 60 ? "warn" : "bad";
  return h("span", { class: `rate ${cls}` },
    h("span", { class: "bar" }, h("span", { class: `fill fill-${Math.min(10, Math.round(pct / 10))}` })),
    `${fmtNum(pct, 0)}%`);
}

export function chiefsTable(rows, { limit = Infinity } = {}) {
  if (!rows.length) return h("p", { class: "empty-note", id: "chiefs-empty" }, t("chief.no_data"));
  const shown = rows.slice(0, limit);
  const el = table([
    { label: t("chief.name"), value: (r) => r.name ?? r.chief_id },
    { label: t("chief.level"), value: (r) => tOr(`level.${r.level}`, r.level ?? "") },
    { label: t("chief.town"), value: (r) => r.town ?? t("common.none") },
    { label: t("chief.required"), value: (r) => r.required ?? t("common.none"), cls: "num" },
    { label: t("chief.valid"), value: (r) => r.valid ?? t("common.none"), cls: "num" },
    { label: t("chief.total"), value: (r) => r.total ?? t("common.none"), cls: "num" },
    { label: t("chief.rate"), value: (r) => rateCell(r.pct), cls: "num" },
  ], shown, { rowAttrs: (r) => ({ dataset: { chiefId: r.chief_id } }) });
  el.id = "chiefs-table";
  if (rows.length > shown.length) return h("div", {}, el, h("p", { class: "note" }, t("common.more", { n: rows.length - shown.length })));
  return el;
}
