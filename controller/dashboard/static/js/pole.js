// The pole page's pieces: the latest values and the audit trail as people read them, the chart
// range (From/To checked, a new pole's charts over the time it has data), and the one light
// figure. Light appears in two meanings and the page names both: the level a node is told to
// give now (its state, "commanded") and the lamp's measured output, a mean over each report
// period (the illuminanceLevel readings: it follows a change one period later).
import { el, fmtTime, parseTime, RANGES, table } from "./util.js";
import { qName, qText } from "./quantity-text.js";

/** A table (util.js table()) that turns into one card per row on a phone: each cell carries
 * its column's name (CSS .table-wrap.stack), so nothing scrolls sideways. */
export function stacked(wrap) {
  const names = [...wrap.querySelectorAll("thead th")].map((th) => th.textContent);
  for (const tr of wrap.querySelectorAll("tbody tr")) {
    [...tr.children].forEach((td, i) => { if (names[i]) td.dataset.label = names[i]; });
  }
  wrap.classList.add("stack");
  return wrap;
}

export const LIGHT_COMMANDED = "Light (commanded)";
export const LIGHT_MEASURED = "Light output (measured)";

const quantityName = (q) => (q === "illuminanceLevel" ? LIGHT_MEASURED : qName(q));

/** A module as registered: "air: pm sensor (simulated)". A stream without one (stored before
 * its node's modules were registered, or whose module was removed since) says where it came
 * from, for whoever registers it. */
export function moduleName(m, v) {
  return m ? `${m.type}${m.purpose ? `: ${m.purpose}` : ""}` : `not registered (node ${v.node}, source ${v.src || "–"})`;
}

export function latestTable(values, modules) {
  const byId = new Map(modules.map((m) => [m.id, m]));
  return stacked(table(
    ["Quantity", "Value", "Module", "Time"],
    values.map((v) => [
      quantityName(v.q),
      el("span", { class: "num" }, qText(v.q, v.v)),
      moduleName(byId.get(v.module_id), v),
      fmtTime(v.ts),
    ]),
    "Latest values",
  ));
}

/** An audit entry's detail as "field: value" lines (not raw JSON); `named` turns ids into
 * names ({owner_id: (id) => "AirCo"}). */
export function auditDetail(detail, named = {}) {
  if (detail === null || detail === undefined || detail === "") return "–";
  if (typeof detail !== "object") return String(detail);
  const entries = Object.entries(detail).filter(([, v]) => v !== null && v !== undefined && v !== "");
  if (!entries.length) return "–";
  const show = (v) => (typeof v === "object" ? JSON.stringify(v).replace(/[{}"]/g, "").replace(/,/g, ", ").replace(/:/g, ": ") : String(v));
  const line = (k, v) => (named[k] ? [k.replace(/_id$/, ""), named[k](v)] : [k.replace(/_/g, " "), show(v)]);
  return el("ul", { class: "detail" }, entries.map(([k, v]) => {
    const [name, text] = line(k, v);
    return el("li", {}, el("span", { class: "muted" }, `${name}: `), text);
  }));
}

/** [start, end] of the chart range, or an error to show when From/To are not a range. */
export function chartRange(choice, fromText, toText, now = Math.floor(Date.now() / 1000)) {
  if (choice === "custom") {
    const start = parseTime(fromText);
    const end = parseTime(toText);
    if (start === null) return { error: "From: not a time; write it as YYYY-MM-DD HH:MM." };
    if (end === null) return { error: "To: not a time; write it as YYYY-MM-DD HH:MM." };
    if (end <= start) return { error: "From must be before To." };
    return { start, end };
  }
  const span = RANGES.find((x) => x.id === choice).s;
  const end = now + 300; // a node clock a little ahead still shows
  return { start: end - span - 300, end };
}

/** The part of [start, end] a chart spans: from a little before the first reading when the
 * pole has data only for the last part of it (a new street: not two dots at the right edge),
 * and up to now (the range reaches a little past it for node clocks running ahead). */
export function dataSpan(streams, start, end, now = Math.floor(Date.now() / 1000)) {
  let first = Infinity;
  let last = -Infinity;
  for (const s of streams) {
    if (!s.points.length) continue;
    first = Math.min(first, s.points[0][0]);
    last = Math.max(last, s.points[s.points.length - 1][0]);
  }
  if (!Number.isFinite(first)) return [start, end];
  const to = Math.min(end, Math.max(now, last + 60));
  if (first <= start) return [start, to];
  const pad = Math.max(60, Math.round((to - first) * 0.05));
  return [Math.max(start, first - pad), to];
}
