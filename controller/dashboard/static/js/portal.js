// The public portal: only the open-data API, never a token, so only what is open can appear.
// Words from the catalogue of the page's language (i18n.js), names and units from the one
// table of quantities (quantities.js), the privacy statement from the register's summary (privacy.js).
import { timeChart } from "./chart.js";
import { chartDates, fmtWhen, lang, loadCatalogue, t } from "./i18n.js";
import { PoleMap } from "./map.js";
import { renderPrivacy } from "./privacy.js";
import { compact, displayScale, fmtShown, fmtValue, known, loadQuantities, qname, scaleFor, symbol } from "./quantities.js";
import { stacked } from "./stack.js";
import { $, el, table } from "./util.js";

// A value older than this shows grey: the map says what the street is like now.
const RECENT_H = 3;
// The first of these a street measures is what the map shows to a first-time visitor.
const FIRST_CHOICE = ["pm25", "pm10", "no2", "LAeq", "temperature"];
const CHOICE_KEY = "streetpole.portal.quantity";

const state = { features: [], pole: null, meta: null, quantity: null, scale: null, map: null };

async function getJson(path) {
  const r = await fetch(path, { credentials: "omit" });
  if (!r.ok) throw new Error(`${path}: ${r.status}`);
  return r.json();
}

const recent = (l) => l && Date.now() - Date.parse(l.time) < RECENT_H * 3600 * 1000;
const latestOf = (f, q) => f.latest.find((l) => l.quantity === q);

function describe(f) {
  const d = describeValue(f);
  return f.id === state.pole ? { ...d, cls: `${d.cls} selected` } : d;
}

function describeValue(f) {
  const q = state.quantity;
  const l = latestOf(f, q);
  if (!q) return { cls: "q-none", text: "", label: t("pole_title", { id: f.id }) };
  const words = { id: f.id, quantity: qname(q) };
  if (!l) return { cls: "q-none", text: "", label: t("marker_nothing", words) };
  if (!recent(l)) return { cls: "q-none", text: "–", label: t("marker_none", words) };
  const i = state.scale.band(l.result);
  const band = state.scale.bands[i];
  const value = fmtValue(q, l.result);
  return {
    cls: `q-band b${i}`,
    text: compact(q, l.result),
    style: `background:${band.colour}`,
    label: state.scale.kind === "guideline" ? t("marker_value", { ...words, value, meaning: band.label })
      : t("marker_plain", { ...words, value }),
  };
}

function renderLegend() {
  const q = state.quantity;
  const s = state.scale;
  const g = s.guideline;
  const swatch = (style, cls = "") => el("span", { class: `swatch ${cls}`, style, "aria-hidden": "true" });
  $("#legend").replaceChildren(
    el("p", {}, g
      ? t("legend_guideline", { quantity: qname(q), source: g.source, guideline: `${g.value} ${symbol(q)}`.trim(), period: g[lang] })
      : t("legend_range", { quantity: qname(q) })),
    el("ul", { class: "legend", "aria-label": t("legend_heading") },
      s.bands.map((b) => el("li", {}, swatch(`background:${b.colour}`), b.label)),
      el("li", {}, swatch("", "none"), t("legend_none", { hours: RECENT_H }))),
    ...(g ? [el("p", { class: "muted source" }, t("legend_source"), " ", el("a", { href: g.url, translate: "no" }, g.source))] : []),
  );
}

function choose(q) {
  state.quantity = q;
  const values = state.features.map((f) => latestOf(f, q)).filter(recent).map((l) => l.result);
  state.scale = scaleFor(q, values);
  renderLegend();
  for (const f of state.features) state.map.update(f);
}

function fillChoices() {
  const have = new Set(state.features.flatMap((f) => f.latest.map((l) => l.quantity)));
  const qs = known().filter((q) => have.has(q));
  const sel = $("#quantity");
  sel.replaceChildren(...qs.map((q) => el("option", { value: q }, symbol(q) ? `${qname(q)} (${symbol(q)})` : qname(q))));
  const saved = localStorage.getItem(CHOICE_KEY);
  const pick = qs.includes(saved) ? saved : FIRST_CHOICE.find((q) => qs.includes(q)) || qs[0];
  if (pick) sel.value = pick;
  return pick;
}

async function openPole(id) {
  const f = state.features.find((x) => x.id === id);
  if (!f) return;
  state.pole = id;
  const latest = [...f.latest].sort((a, b) => known().indexOf(a.quantity) - known().indexOf(b.quantity));
  $("#pole-h").replaceChildren(t("pole_title", { id }));
  $("#pole-hint").replaceChildren(el("span", { translate: "no" }, [f.district, f.owner].filter(Boolean).join(" · ")));
  // one time for all when the pole measured them together (the usual case), else per row
  const times = new Set(latest.map((l) => l.time));
  const when = (l) => el("time", { datetime: l.time, translate: "no" }, fmtWhen(l.time));
  const measured = times.size === 1 ? [t("measured_at"), " ", when(latest[0])] : null;
  $("#pole-latest").replaceChildren(...(latest.length ? [
    ...(measured ? [el("p", { class: "muted" }, measured)] : []),
    table(
      measured ? [t("th_quantity"), t("th_value")] : [t("th_quantity"), t("th_value"), t("th_time")],
      latest.map((l) => [
        qname(l.quantity),
        el("span", { class: "value", translate: "no" }, fmtValue(l.quantity, l.result)),
        ...(measured ? [] : [when(l)]),
      ]),
      t("latest_caption", { id }),
    ),
  ] : [el("p", { class: "muted" }, t("pole_no_open"))]));
  for (const x of state.features) state.map.update(x); // the selected pole's ring
  const enc = encodeURIComponent(id);
  $("#pole-downloads").replaceChildren(
    el("h3", {}, t("download_heading")),
    el("ul", {},
      el("li", {}, el("a", { href: `/opendata/v1/csv?pole=${enc}`, download: "" }, t("download_csv", { id }))),
      el("li", {}, el("a", { href: `/sta/v1.1/Things('${enc}')?$expand=Datastreams` }, t("download_sta")))),
    el("button", { type: "button", class: "secondary", onclick: backToMap }, t("pole_back")),
  );
  $("#charts-section").hidden = !latest.length;
  $("#pole-h").focus();
  if (latest.length) await renderCharts();
}

/** Keyboard users return to the marker they came from (the button, or Escape in the panel). */
function backToMap() {
  const marker = state.map.byId.get(state.pole)?.marker.getElement();
  marker?.scrollIntoView({ block: "center" });
  marker?.focus({ preventScroll: true });
}

async function renderCharts() {
  const span = Number($("#range").value);
  const end = Math.floor(Date.now() / 1000) + 300;
  const start = end - span;
  const iso = (s) => new Date(s * 1000).toISOString().replace(/\.\d+Z$/, "Z");
  const box = $("#charts");
  box.replaceChildren();
  const enc = encodeURIComponent(state.pole);
  const get = (window) => getJson(`/opendata/v1/aggregates?pole=${enc}&window=${window}&start=${iso(start)}&end=${iso(end)}`).catch(() => ({ value: [] }));
  // the pole's streams in one window each; counts come only per hour (open data, unless)
  const [fine, hourly] = await Promise.all([get(span <= 86400 ? "minute" : "hour"), get("hour")]);
  const streams = [
    ...fine.value.filter((s) => s.quantity !== "presenceCount"),
    ...hourly.value.filter((s) => s.quantity === "presenceCount"),
  ].filter((s) => s.value.length);
  streams.sort((a, b) => known().indexOf(a.quantity) - known().indexOf(b.quantity));
  for (const s of streams) {
    const q = s.quantity;
    const counted = q === "presenceCount";
    const name = counted ? t("chart_counts", { name: qname(q) }) : qname(q);
    const div = el("div", { class: "chart", id: `chart-${q}` });
    box.append(div);
    timeChart(div, name, symbol(q), [{
      label: qname(q),
      points: s.value.map((v) => [Date.parse(v.time) / 1000, counted ? v.sum : v.mean]),
    }], {
      scale: displayScale(q),
      bars: counted,
      range: [start, end],
      live: false, // names only in the legend, no "Time: --" readout
      heading: "h3",
      words: {
        time: t("chart_time"),
        summary: (label, vs) => t("chart_summary", {
          name: label, n: vs.length, last: fmtShown(q, vs[vs.length - 1]),
          min: fmtShown(q, Math.min(...vs)), max: fmtShown(q, Math.max(...vs)),
        }),
        image: (title, summary) => t("chart_image", { name: title, summary }),
        fmtDate: chartDates(),
      },
    });
  }
  if (!box.children.length) box.append(el("p", { class: "muted" }, t("charts_none")));
}

function renderList() {
  const order = (l) => known().indexOf(l.quantity);
  $("#pole-list").replaceChildren(stacked(table(
    [t("th_pole"), t("th_district"), t("th_latest")],
    state.features.map((f) => el("tr", {},
      el("td", { class: "pole-id" }, el("button", { type: "button", class: "link", translate: "no", onclick: () => openPole(f.id) }, f.id)),
      el("td", { translate: "no" }, f.district || ""),
      el("td", {}, f.latest.length ? [...f.latest].sort((a, b) => order(a) - order(b)).map((l) =>
        el("span", { class: "lv" }, qname(l.quantity), " ", el("span", { class: "value", translate: "no" }, fmtValue(l.quantity, l.result))))
        : t("no_value")),
    )),
    t("list_caption"),
  )));
}

function renderLinks(meta) {
  const links = meta.links;
  $("#links").replaceChildren(...[
    ["link_latest", links.latest],
    ["link_geojson", links.geojson],
    ["link_archives", links.archives],
    ["link_register", links.register],
    ["link_register_csv", "/opendata/v1/register.csv"],
    ["link_register_summary", links.registerSummary],
    ["link_quantities", links.quantities],
    ["link_sta", links.sensorthings],
    ["link_openapi", links.openapi],
    ["link_docs", "/docs"],
  ].map(([k, u]) => el("li", {}, el("a", { href: u }, t(k)))));
  $("#licence").replaceChildren(
    el("a", { href: meta.license.url, rel: "license", translate: "no" }, meta.license.name),
    ". ",
    t("licence_line", { attribution: meta.attribution }),
  );
}

function zoomInMyLanguage(map) {
  // Leaflet's own zoom buttons are titled in English: replace them with titled ones
  map.removeControl(map.zoomControl);
  // eslint-disable-next-line no-undef
  L.control.zoom({ zoomInTitle: t("zoom_in"), zoomOutTitle: t("zoom_out") }).addTo(map);
}

async function refresh() {
  // latest values every minute; no login, no live stream needed
  const g = await getJson("/opendata/v1/poles.geojson").catch(() => null);
  if (!g) return;
  for (const f of g.features) {
    const cur = state.features.find((x) => x.id === f.id);
    if (cur) cur.latest = f.properties.latest;
  }
  choose(state.quantity);
  renderList();
}

async function main() {
  document.querySelector(`.langs a[data-lang="${lang}"]`)?.setAttribute("aria-current", "true");
  await Promise.all([loadCatalogue(), loadQuantities()]);
  state.map = new PoleMap($("#map"), { onOpen: openPole, describe });
  zoomInMyLanguage(state.map.map);
  const [meta, geo, register] = await Promise.all([
    getJson("/opendata/v1"), getJson("/opendata/v1/poles.geojson"), getJson("/opendata/v1/register/summary"),
  ]);
  state.meta = meta;
  renderLinks(meta);
  renderPrivacy($("#privacy-body"), register, meta);
  state.features = geo.features.map((f) => ({
    id: f.id, lat: f.geometry.coordinates[1], lon: f.geometry.coordinates[0], ...f.properties,
  }));
  state.quantity = fillChoices();
  if (state.quantity) choose(state.quantity); // the scale first: markers are drawn with it
  state.map.setPoles(state.features);
  renderList();
  $("#quantity").addEventListener("change", (e) => {
    localStorage.setItem(CHOICE_KEY, e.target.value);
    choose(e.target.value);
  });
  $("#range").addEventListener("change", renderCharts);
  $("#pole-panel").addEventListener("keydown", (e) => {
    if (e.key === "Escape" && state.pole) backToMap();
  });
  setInterval(refresh, 60000);
}

main().catch((e) => {
  let text = e.message;
  try {
    text = t("error_load", { reason: e.message });
  } catch { /* the catalogue itself did not load: the reason alone */ }
  $("#main").prepend(el("p", { class: "msg error", role: "alert" }, text));
  throw e;
});
