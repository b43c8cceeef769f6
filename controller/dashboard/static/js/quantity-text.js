// The operator dashboard's words for quantities: names, units and decimals as people read
// them, from the controller's one table (protocols/quantity_info.py, served at
// /opendata/quantities.json), so a page and the APIs cannot disagree. (The portal reads the
// same table in its reader's language.)

let TABLE = {};

/** Load the table once (before a page shows any value). */
export async function loadQuantities() {
  const r = await fetch("/opendata/quantities.json");
  if (!r.ok) throw new Error(`quantities: ${r.status}`);
  TABLE = (await r.json()).quantities;
}

const info = (q) => TABLE[q];

/** "Temperature"; an unknown quantity keeps its protocol name. */
export function qName(q) {
  return info(q)?.en || q;
}

/** The unit as a page shows it ("°C", "µg/m³", "%"), "" for counts. */
export function qSymbol(q) {
  return info(q)?.display?.symbol ?? "";
}

/** The factor from the API's value to the page's (a fraction 0..1 shows as %). */
export function qScale(q) {
  return info(q)?.display?.scale ?? 1;
}

/** The value as a page shows it, with the table's decimals and no digit grouping ("1013"). */
export function qNumber(q, v) {
  if (v === null || v === undefined || Number.isNaN(v)) return "–";
  const d = info(q)?.display?.decimals ?? 2;
  const x = Number(v) * qScale(q);
  return x.toFixed(d).replace(/^-(0\.?0*)$/, "$1"); // no "-0.0"
}

/** "5.4 °C", "20%", "3" (a count has no unit). */
export function qText(q, v) {
  const n = qNumber(q, v);
  const sym = qSymbol(q);
  if (n === "–" || !sym) return n;
  return sym === "%" ? `${n}%` : `${n} ${sym}`;
}
