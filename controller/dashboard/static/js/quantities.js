// The one table of quantities (protocols/quantity_info.py, served at /opendata/quantities.json):
// names in the reader's language, units as people write them, and the colour scale of the map.
import { fmtNumber, lang, t } from "./i18n.js";

let table = {};

export async function loadQuantities() {
  const r = await fetch("/opendata/quantities.json", { credentials: "omit" });
  if (!r.ok) throw new Error(`/opendata/quantities.json: ${r.status}`);
  table = (await r.json()).quantities;
}

/** Quantity names in table order (the order people expect: air, noise, light ...). */
export const known = () => Object.keys(table);

export function qname(q) {
  return table[q]?.[lang] || q;
}

export function symbol(q) {
  return table[q]?.display.symbol ?? "";
}

/** A value as people read it: scaled (a light level 0..1 is shown as %) and rounded. */
export function shown(q, v) {
  const info = table[q];
  return info ? v * info.display.scale : v;
}

export function displayScale(q) {
  return table[q]?.display.scale ?? 1;
}

/** A value already scaled for people (shown()), with its unit. */
export function fmtShown(q, x, extra = 0) {
  if (x === null || x === undefined) return t("no_value");
  const text = fmtNumber(x, (table[q]?.display.decimals ?? 2) + extra);
  const sym = symbol(q);
  return sym ? `${text} ${sym}` : text;
}

export function fmtValue(q, v) {
  return v === null || v === undefined ? t("no_value") : fmtShown(q, shown(q, v));
}

/** The few characters that fit in a marker. */
export function compact(q, v) {
  const x = shown(q, v);
  return fmtNumber(x, Math.abs(x) >= 10 ? 0 : Math.min(1, table[q]?.display.decimals ?? 1));
}

/** The guideline a single reading is compared with: the first (shortest period) one. */
export function guideline(q) {
  return table[q]?.guidelines?.[0] || null;
}

// Colours of the bands, checked for contrast: dark marker text (#12263f) on each >= 4.5:1.
export const GUIDE_COLOURS = ["#86efac", "#fde047", "#fb923c", "#d8b4fe"];
export const RANGE_COLOURS = ["#e0f2fe", "#bae6fd", "#7dd3fc", "#38bdf8"];

/**
 * The colour scale of quantity q for the values now on the map: bands against the guideline
 * where one exists, else four equal steps from the lowest to the highest value.
 * Returns {kind, bands: [{from, to, colour, label}], band(v) -> index}.
 */
export function scaleFor(q, values) {
  const g = guideline(q);
  const f = (x) => fmtShown(q, x, g ? 1 : 0); // a band edge may be half a guideline: 7.5
  if (g) {
    const cuts = [g.value / 2, g.value, g.value * 2];
    const words = { half: f(cuts[0]), guideline: f(cuts[1]), double: f(cuts[2]) };
    const labels = ["band_well_below", "band_below", "band_above", "band_far_above"];
    return {
      kind: "guideline",
      guideline: g,
      bands: labels.map((k, i) => ({ colour: GUIDE_COLOURS[i], label: t(k, words) })),
      band: (v) => cuts.filter((c) => shown(q, v) >= c).length,
    };
  }
  const xs = values.map((v) => shown(q, v));
  const lo = Math.min(...xs);
  const hi = Math.max(...xs);
  const step = (hi - lo) / RANGE_COLOURS.length;
  if (!xs.length || step <= 0) {
    const label = xs.length ? f(lo) : t("no_value");
    return { kind: "range", bands: [{ colour: RANGE_COLOURS[1], label }], band: () => 0 };
  }
  return {
    kind: "range",
    bands: RANGE_COLOURS.map((colour, i) => ({
      colour,
      label: t("band_range", { from: f(lo + i * step), to: f(lo + (i + 1) * step) }),
    })),
    band: (v) => Math.min(RANGE_COLOURS.length - 1, Math.floor((shown(q, v) - lo) / step)),
  };
}
