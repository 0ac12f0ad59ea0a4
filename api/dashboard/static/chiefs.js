// The river-chief compliance tables, from the public bulletin (GET /api/v1/bulletin); shared by the dashboard and
// the public bulletin page. Until the server has the bulletin it shows a "no data" note.
import { publicGet, query } from "./api.js";
import { h, table } from "./dom.js";
import { fmtNum } from "./format.js";
import { t, tOr } from "./i18n.js";

const pct = (rate) => (rate === null || rate === undefined ? null : rate * 100);

// The whole bulletin for a month ("YYYY-MM") or the default period (the last complete month): the period, the
// towns by rank and the chiefs' rows (each with `pct`, the rate in per cent).
export async function fetchBulletinBody(month) {
  const q = query({ month: month || undefined });
  const body = await publicGet(`/api/v1/bulletin${q ? `?${q}` : ""}`);
  if (body === null) return null;
  return { ...body, rows: (body.rows || []).map((r) => ({ ...r, pct: pct(r.rate) })),
    towns: (body.towns || []).map((x) => ({ ...x, pct: pct(x.rate) })) };
}

export async function fetchBulletin() {
  const body = await fetchBulletinBody();
  return body ? body.rows : [];
}

function rateCell(value) {
  if (value === null || value === undefined) return t("common.none");
  const cls = value >= 100 ? "ok" : value >= 60 ? "warn" : "bad";
  return h("span", { class: `rate ${cls}` },
    h("span", { class: "bar" }, h("span", { class: `fill fill-${Math.min(10, Math.round(value / 10))}` })),
    `${fmtNum(value, 0)}%`);
}

const none = (v) => (v === null || v === undefined ? t("common.none") : v);

export function chiefsTable(rows, { limit = Infinity } = {}) {
  if (!rows.length) return h("p", { class: "empty-note", id: "chiefs-empty" }, t("chief.no_data"));
  const shown = rows.slice(0, limit);
  const el = table([
    { label: t("chief.name"), value: (r) => r.name ?? r.chief_id },
    { label: t("chief.level"), value: (r) => tOr(`level.${r.level}`, r.level ?? "") },
    { label: t("chief.town"), value: (r) => r.town ?? t("common.none") },
    { label: t("chief.frequency"), value: (r) => frequencyText(r.frequency) },
    { label: t("chief.periods"), value: (r) => (r.periods_due === undefined ? t("common.none")
      : `${r.periods_met}/${r.periods_due}`), cls: "num" },
    { label: t("chief.required"), value: (r) => none(r.required), cls: "num" },
    { label: t("chief.valid"), value: (r) => none(r.valid), cls: "num" },
    { label: t("chief.total"), value: (r) => none(r.total), cls: "num" },
    { label: t("chief.rate"), value: (r) => rateCell(r.pct), cls: "num" },
  ], shown, { rowAttrs: (r) => ({ dataset: { chiefId: r.chief_id } }) });
  el.id = "chiefs-table";
  if (rows.length > shown.length) return h("div", {}, el, h("p", { class: "note" }, t("common.more", { n: rows.length - shown.length })));
  return el;
}

export function townsTable(towns) {
  if (!towns.length) return h("p", { class: "empty-note", id: "towns-empty" }, t("chief.no_data"));
  const el = table([
    { label: t("town.rank"), value: (x) => none(x.rank), cls: "num" },
    { label: t("chief.town"), value: (x) => x.town },
    { label: t("town.chiefs"), value: (x) => x.chiefs, cls: "num" },
    { label: t("chief.required"), value: (x) => x.required, cls: "num" },
    { label: t("town.counted"), value: (x) => x.counted, cls: "num" },
    { label: t("town.compliant"), value: (x) => x.compliant, cls: "num" },
    { label: t("chief.rate"), value: (x) => rateCell(x.pct), cls: "num" },
  ], towns, { rowAttrs: (x) => ({ dataset: { town: x.town } }) });
  el.id = "towns-table";
  return el;
}

// "1/week" -> "每周 1 次" / "1 a week"
function frequencyText(freq) {
  const m = /^(\d+)\/(\w+)$/.exec(freq || "");
  if (!m) return freq || t("common.none");
  return t("chief.per", { n: m[1], unit: tOr(`unit.${m[2]}`, m[2]) });
}
