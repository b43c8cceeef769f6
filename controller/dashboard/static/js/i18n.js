// Text of the public pages in the reader's language. The server picks the language (see
// controller/dashboard/i18n.py) and sets <html lang>; scripts take their words from the same
// catalogue (/ui/i18n/<lang>.json) the server filled the page with, so each text lives once.

export const lang = document.documentElement.lang === "en" ? "en" : "nl";
export const locale = lang === "en" ? "en-GB" : "nl-NL";
let words = {};

export async function loadCatalogue() {
  const r = await fetch(`/ui/i18n/${lang}.json`, { credentials: "omit" });
  if (!r.ok) throw new Error(`/ui/i18n/${lang}.json: ${r.status}`);
  words = await r.json();
}

/** t("pole_title", {id: "RTD-1"}): a catalogue entry with its {placeholders} filled in. */
export function t(key, vars = {}) {
  const text = words[key];
  if (text === undefined) throw new Error(`no text "${key}" in the ${lang} catalogue`);
  return text.replace(/\{(\w+)\}/g, (m, k) => (k in vars ? String(vars[k]) : m));
}

export function fmtNumber(v, decimals = 1) {
  if (v === null || v === undefined || Number.isNaN(v)) return t("no_value");
  return Number(v).toLocaleString(locale, { maximumFractionDigits: decimals, minimumFractionDigits: 0 });
}

export function fmtWhen(iso) {
  return new Date(iso).toLocaleString(locale, { dateStyle: "medium", timeStyle: "short" });
}

/**
 * uPlot's date templates (axes, legend) in the page's language: its defaults are American
 * (month first, 12-hour clock, English month names). For uPlot's `fmtDate` option.
 */
export function chartDates() {
  const months = (month) => [...Array(12).keys()].map((m) => new Date(2021, m, 1).toLocaleString(locale, { month }));
  // 2021-02-07 was a Sunday, uPlot's first weekday
  const days = (weekday) => [...Array(7).keys()].map((d) => new Date(2021, 1, 7 + d).toLocaleString(locale, { weekday }));
  const names = { MMMM: months("long"), MMM: months("short"), WWWW: days("long"), WWW: days("short") };
  const sep = lang === "nl" ? "-" : "/";
  const ours = (tpl) => tpl
    .replace("{YYYY}-{MM}-{DD} {h}:{mm}{aa}", "{D} {MMM} {YYYY} {HH}:{mm}")
    .replace(/\{h\}:\{mm\}\{aa\}|\{h\}\{aa\}/g, "{HH}:{mm}")
    .replace(/\{aa\}/g, "")
    .replace(/\{h\}/g, "{HH}")
    .replace(/\{M\}\/\{D\}\/\{YY\}/g, `{D}${sep}{M}${sep}{YY}`)
    .replace(/\{M\}\/\{D\}/g, `{D}${sep}{M}`);
  // eslint-disable-next-line no-undef
  return (tpl) => uPlot.fmtDate(ours(tpl), names);
}
