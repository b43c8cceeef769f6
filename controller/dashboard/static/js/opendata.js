// The open-data landing page (/opendata): the server writes its links and words; this adds the
// privacy statement made from the sensor register, the same as the portal shows.
import { lang, loadCatalogue } from "./i18n.js";
import { renderPrivacy } from "./privacy.js";
import { loadQuantities } from "./quantities.js";

async function getJson(path) {
  const r = await fetch(path, { credentials: "omit" });
  if (!r.ok) throw new Error(`${path}: ${r.status}`);
  return r.json();
}

async function main() {
  document.querySelector(`.langs a[data-lang="${lang}"]`)?.setAttribute("aria-current", "true");
  await Promise.all([loadCatalogue(), loadQuantities()]);
  const [meta, summary] = await Promise.all([getJson("/opendata/v1"), getJson("/opendata/v1/register/summary")]);
  renderPrivacy(document.querySelector("#privacy-body"), summary, meta);
}

main();
