// Times arrive as ISO 8601 in UTC and are shown in the bureau's zone; numbers with fixed digits.
import { getLang, t } from "./i18n.js";

export const DISPLAY_TZ = "Asia/Shanghai";

const cache = new Map();
function formatter(opts) {
  const key = getLang() + JSON.stringify(opts);
  if (!cache.has(key)) {
    cache.set(key, new Intl.DateTimeFormat(getLang() === "zh" ? "zh-CN" : "en-GB",
      { timeZone: DISPLAY_TZ, hourCycle: "h23", ...opts }));
  }
  return cache.get(key);
}

export function fmtTime(iso, { date = true, seconds = false } = {}) {
  if (!iso) return t("common.none");
  const d = iso instanceof Date ? iso : new Date(iso);
  if (Number.isNaN(d.getTime())) return t("common.none");
  const opts = { hour: "2-digit", minute: "2-digit" };
  if (seconds) opts.second = "2-digit";
  if (date) Object.assign(opts, { month: "2-digit", day: "2-digit" });
  return formatter(opts).format(d);
}

export function fmtDateTime(iso) {
  if (!iso) return t("common.none");
  return formatter({ year: "numeric", month: "2-digit", day: "2-digit", hour: "2-digit", minute: "2-digit" })
    .format(new Date(iso));
}

export function fmtNum(v, digits = 1) {
  if (v === null || v === undefined || Number.isNaN(v)) return t("common.none");
  return Number(v).toLocaleString(getLang() === "zh" ? "zh-CN" : "en-GB",
    { minimumFractionDigits: digits, maximumFractionDigits: digits });
}

export function fmtSigned(v, digits = 2) {
  if (v === null || v === undefined) return t("common.none");
  return (v > 0 ? "+" : "") + fmtNum(v, digits);
}
