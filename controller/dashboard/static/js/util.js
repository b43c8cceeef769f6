// Small DOM and formatting helpers shared by the dashboard and the portal (no framework).

/** el("td", {class: "x"}, "text", child) */
export function el(tag, attrs = {}, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k.startsWith("on") && typeof v === "function") e.addEventListener(k.slice(2), v);
    else if (k === "dataset") Object.assign(e.dataset, v);
    else e.setAttribute(k, v === true ? "" : String(v));
  }
  for (const c of children.flat()) {
    if (c === null || c === undefined || c === false) continue;
    e.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return e;
}

export const $ = (sel, root = document) => root.querySelector(sel);
export const $$ = (sel, root = document) => [...root.querySelectorAll(sel)];

export function fmtTime(ts) {
  if (ts === null || ts === undefined) return "–";
  const d = new Date(ts * 1000);
  return d.toLocaleString("en-GB", { dateStyle: "short", timeStyle: "medium" });
}

export function fmtNum(v, digits = 1) {
  if (v === null || v === undefined || Number.isNaN(v)) return "–";
  return Number(v).toLocaleString("en-GB", { maximumFractionDigits: digits });
}

export function pct(level) {
  return level === null || level === undefined ? "–" : `${Math.round(level * 100)}%`;
}

export function badge(text) {
  return el("span", { class: `badge ${String(text).replace(/[^a-z_]/gi, "")}` }, text);
}

export function table(headers, rows, caption) {
  return el(
    "div",
    // a wrap that scrolls must be reachable by keyboard (WCAG 2.1.1): focusable, named region
    { class: "table-wrap", tabindex: "0", role: "region", "aria-label": caption || headers.join(", ") },
    el(
      "table",
      {},
      caption ? el("caption", { class: "visually-hidden" }, caption) : null,
      el("thead", {}, el("tr", {}, headers.map((h) => el("th", { scope: "col" }, h)))),
      el("tbody", {}, rows.map((r) => (r instanceof Node ? r : el("tr", {}, r.map((c) => el("td", {}, c)))))),
    ),
  );
}

export function say(node, text, kind = "") {
  node.textContent = text;
  node.className = `msg ${kind}`;
}

// Quantities the charts show, grouped as operators read them.
export const CHART_GROUPS = [
  { id: "light", title: "Light level", qs: ["illuminanceLevel"], unit: "%", scale: 100 },
  { id: "presence", title: "Presence counts", qs: ["presenceCount"], unit: "count", bars: true },
  { id: "noise", title: "Noise LAeq", qs: ["LAeq"], unit: "dB(A)" },
  { id: "pm", title: "PM2.5 and PM10", qs: ["pm25", "pm10"], unit: "µg/m³" },
  { id: "no2", title: "NO2", qs: ["no2"], unit: "µg/m³" },
  { id: "energy", title: "Energy", qs: ["energyConsumed"], unit: "Wh", bars: true },
];

export const RANGES = [
  { id: "1h", label: "Last hour", s: 3600 },
  { id: "6h", label: "Last 6 hours", s: 6 * 3600 },
  { id: "24h", label: "Last 24 hours", s: 86400 },
  { id: "7d", label: "Last 7 days", s: 7 * 86400 },
  { id: "30d", label: "Last 30 days", s: 30 * 86400 },
];

/** The store window that keeps a chart to a few thousand points. */
export function windowFor(seconds) {
  if (seconds <= 6 * 3600) return "raw";
  if (seconds <= 3 * 86400) return "minute";
  if (seconds <= 60 * 86400) return "hour";
  return "day";
}

export function localInput(ts) {
  const d = new Date(ts * 1000);
  const p = (n) => String(n).padStart(2, "0");
  return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())}T${p(d.getHours())}:${p(d.getMinutes())}`;
}
