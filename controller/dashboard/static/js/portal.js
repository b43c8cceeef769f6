// The public portal: only the open-data API, never a token, so only what is open can appear.
import { timeChart } from "./chart.js";
import { PoleMap } from "./map.js";
import { $, CHART_GROUPS, el, fmtNum, table } from "./util.js";

const state = { features: [], pole: null, meta: null };

async function getJson(path) {
  const r = await fetch(path, { credentials: "omit" });
  if (!r.ok) throw new Error(`${path}: ${r.status}`);
  return r.json();
}

const when = (iso) => new Date(iso).toLocaleString("en-GB", { dateStyle: "short", timeStyle: "short" });

function describe(p) {
  const n = p.latest.length;
  return { cls: "open", text: n ? String(n) : "", label: `Pole ${p.id}: ${n} open measurement${n === 1 ? "" : "s"}` };
}

async function openPole(id) {
  const f = state.features.find((x) => x.id === id);
  if (!f) return;
  state.pole = id;
  const latest = f.latest;
  $("#pole-h").textContent = `Pole ${id}${f.name && f.name !== id ? ` – ${f.name}` : ""}`;
  $("#pole-hint").textContent = `${f.district || ""}${f.owner ? ` · ${f.owner}` : ""}`;
  $("#pole-latest").replaceChildren(latest.length ? table(
    ["Quantity", "Value", "Unit", "Time"],
    latest.map((l) => [l.quantity, fmtNum(l.result, 2), l.unit, when(l.time)]),
    `Latest open values of pole ${id}`,
  ) : el("p", { class: "muted" }, "This pole publishes no open measurements."));
  const enc = encodeURIComponent(id);
  $("#pole-downloads").replaceChildren(
    el("h3", {}, "Download"),
    el("ul", {},
      el("li", {}, el("a", { href: `/opendata/v1/csv?pole=${enc}`, download: "" }, `CSV of pole ${id} (last 24 hours)`)),
      el("li", {}, el("a", { href: `/sta/v1.1/Things('${enc}')?$expand=Datastreams` }, "SensorThings (JSON)"))),
  );
  $("#charts-section").hidden = !latest.length;
  $("#pole-h").focus();
  if (latest.length) await renderCharts();
}

async function renderCharts() {
  const span = Number($("#range").value);
  const end = Math.floor(Date.now() / 1000) + 300;
  const start = end - span;
  const iso = (t) => new Date(t * 1000).toISOString().replace(/\.\d+Z$/, "Z");
  const box = $("#charts");
  box.replaceChildren();
  const enc = encodeURIComponent(state.pole);
  const get = (window) => getJson(`/opendata/v1/aggregates?pole=${enc}&window=${window}&start=${iso(start)}&end=${iso(end)}`).catch(() => ({ value: [] }));
  const [fine, hourly] = await Promise.all([get(span <= 86400 ? "minute" : "hour"), get("hour")]);
  const streams = [
    ...fine.value.filter((s) => s.quantity !== "presenceCount"),
    ...hourly.value.filter((s) => s.quantity === "presenceCount"),
  ];
  for (const g of CHART_GROUPS) {
    const mine = streams.filter((s) => g.qs.includes(s.quantity));
    if (!mine.length) continue;
    const div = el("div", { class: "chart", id: `chart-${g.id}` });
    box.append(div);
    timeChart(div, g.title, g.unit, mine.map((s) => ({
      label: s.quantity,
      points: s.value.map((v) => [Date.parse(v.time) / 1000, v.sum ?? v.mean]),
    })), { scale: g.scale || 1, bars: g.bars, range: [start, end], heading: "h3" });
  }
  if (!box.children.length) box.append(el("p", { class: "muted" }, "No open readings in this range."));
}

function renderList() {
  $("#pole-list").replaceChildren(table(
    ["Pole", "District", "Latest open values"],
    state.features.map((f) => [
      el("button", { type: "button", class: "link", onclick: () => openPole(f.id) }, f.id),
      f.district || "",
      f.latest.map((l) => `${l.quantity} ${fmtNum(l.result, 2)} ${l.unit}`).join("; ") || "–",
    ]),
    "Poles",
  ));
}

async function main() {
  const map = new PoleMap($("#map"), { onOpen: openPole, describe });
  const [meta, geo] = await Promise.all([getJson("/opendata/v1"), getJson("/opendata/v1/poles.geojson")]);
  state.meta = meta;
  $("#title").textContent = meta.title;
  document.title = meta.title;
  $("#description").textContent = meta.description;
  $("#licence").replaceChildren(
    el("a", { href: meta.license.url, rel: "license" }, meta.license.name),
    `. Attribution: ${meta.attribution}. Updated: ${meta.updateFrequency}.`,
  );
  const links = meta.links;
  $("#links").replaceChildren(...[
    ["Latest value of every open measurement (JSON)", links.latest],
    ["All poles with latest values (GeoJSON)", links.geojson],
    ["Daily CSV archives", links.archives],
    ["Sensor register: what is measured where, by whom and why (JSON)", links.register],
    ["Sensor register (CSV)", "/opendata/v1/register.csv"],
    ["SensorThings API 1.1", links.sensorthings],
    ["API description (OpenAPI)", links.openapi],
    ["Interactive API documentation", "/docs"],
  ].map(([t, u]) => el("li", {}, el("a", { href: u }, t))));
  state.features = geo.features.map((f) => ({
    id: f.id, lat: f.geometry.coordinates[1], lon: f.geometry.coordinates[0], ...f.properties,
  }));
  map.setPoles(state.features);
  renderList();
  $("#range").addEventListener("change", renderCharts);
  setInterval(async () => {
    // latest values refresh every minute; no login, no live stream needed
    const g = await getJson("/opendata/v1/poles.geojson").catch(() => null);
    if (!g) return;
    for (const f of g.features) {
      const cur = state.features.find((x) => x.id === f.id);
      if (cur) { cur.latest = f.properties.latest; map.update(cur); }
    }
    renderList();
  }, 60000);
}

main();
