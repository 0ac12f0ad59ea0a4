// Labels in Chinese by default, English by the switch; the choice is kept in localStorage (it is no secret).
import zh from "./i18n/zh.js";
import en from "./i18n/en.js";

const DICTS = { zh, en };
const KEY = "smartwater.lang";
const listeners = [];
let lang = DICTS[localStorage.getItem(KEY)] ? localStorage.getItem(KEY) : "zh";

export function getLang() {
  return lang;
}

export function t(key, vars = {}) {
  const text = DICTS[lang][key] ?? DICTS.en[key] ?? key;
  return text.replace(/\{(\w+)\}/g, (_, name) => (name in vars ? String(vars[name]) : `{${name}}`));
}

// The label of a key, or the fallback when the dictionaries have none (rule names an operator added, say).
export function tOr(key, fallback) {
  return DICTS[lang][key] ?? DICTS.en[key] ?? fallback;
}

export function applyStatic(root = document) {
  document.documentElement.lang = lang === "zh" ? "zh-CN" : "en";
  for (const el of root.querySelectorAll("[data-i18n]")) el.textContent = t(el.dataset.i18n);
  for (const el of root.querySelectorAll("[data-i18n-placeholder]")) el.placeholder = t(el.dataset.i18nPlaceholder);
  for (const el of root.querySelectorAll("[data-i18n-title]")) el.title = t(el.dataset.i18nTitle);
}

export function setLang(next) {
  if (!DICTS[next] || next === lang) return;
  lang = next;
  localStorage.setItem(KEY, lang);
  applyStatic();
  for (const fn of listeners) fn(lang);
}

export function onLangChange(fn) {
  listeners.push(fn);
}

// Wires a button that flips between the two languages.
export function langSwitch(button) {
  button.addEventListener("click", () => setLang(lang === "zh" ? "en" : "zh"));
}
