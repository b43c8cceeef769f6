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

const pad2 = (n) => String(n).padStart(2, "0");

/** One date format wherever people read a time: ISO-like, 24 h, local ("2026-12-04 14:05"). */
export function fmtTime(ts) {
  if (ts === null || ts === undefined) return "–";
  const d = new Date(ts * 1000);
  return `${d.getFullYear()}-${pad2(d.getMonth() + 1)}-${pad2(d.getDate())} ${pad2(d.getHours())}:${pad2(d.getMinutes())}`;
}

/** The browser's time zone, named once where times are shown ("Europe/Amsterdam, CET"). */
export function zoneName() {
  const iana = Intl.DateTimeFormat().resolvedOptions().timeZone || "local time";
  const short = new Intl.DateTimeFormat("en-GB", { timeZoneName: "short" }).formatToParts(new Date()).find((x) => x.type === "timeZoneName")?.value;
  return short && short !== iana ? `${iana}, ${short}` : iana;
}

/** A date (and time) field in the pages' one format: a text field with its pattern, because a
 * browser's own pickers show the user's locale (month-first, 12 h in en-US). */
export function isoInput(input, withTime = true) {
  input.type = "text";
  input.pattern = withTime ? "\\d{4}-\\d{2}-\\d{2} \\d{2}:\\d{2}" : "\\d{4}-\\d{2}-\\d{2}";
  input.placeholder = withTime ? "YYYY-MM-DD HH:MM" : "YYYY-MM-DD";
  input.inputMode = "numeric";
  input.autocomplete = "off";
  input.size = withTime ? 16 : 10;
}

/** "2026-12-04 14:05" (local) -> epoch seconds, or null when it is not such a time. */
export function parseTime(text) {
  const m = /^\s*(\d{4})-(\d{2})-(\d{2})[ T](\d{2}):(\d{2})\s*$/.exec(text || "");
  if (!m) return null;
  const [y, mo, d, h, mi] = m.slice(1).map(Number);
  const t = new Date(y, mo - 1, d, h, mi);
  // Date rolls 2026-02-31 over into March: such a date is not one
  if (t.getMonth() !== mo - 1 || t.getDate() !== d || h > 23 || mi > 59) return null;
  return Math.floor(t.getTime() / 1000);
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
