// The operator dashboard: one page, views switched by the URL hash (#/map, #/pole/ID, ...).
import { api, auth, get, login, post, put, LiveEvents } from "./api.js";
import { isoTicks, timeChart } from "./chart.js";
import { PoleMap } from "./map.js";
import { $, $$, badge, CHART_GROUPS, el, fmtNum, fmtTime, pct, RANGES, isoInput, say, table, windowFor, zoneName } from "./util.js";
import { auditDetail, chartRange, dataSpan, latestTable, LIGHT_COMMANDED, LIGHT_MEASURED, stacked } from "./pole.js";
import { loadQuantities, qName } from "./quantity-text.js";
import { campaignAction, renderCampaignForm, wireCampaigns } from "./campaigns.js";
import { labelCells } from "./cards.js";
import { renderEnergy, renderEnergyForm } from "./energy.js";
import { renderGroups, usedBy, wireGroups } from "./groups.js";

const ROLES = ["viewer", "technician", "operator", "admin"];
const S = {
  me: null,
  poles: new Map(), // id -> pole (with nodes)
  shown: [], // poles after filters
  alarms: new Map(), // open alarms by id
  owners: [],
  groups: [],
  map: null,
  live: null,
  pole: null, // pole page id
  selected: null, // the pole opened last: marked on the map when you come back to it
};

const can = (role) => S.me && ROLES.indexOf(S.me.role) >= ROLES.indexOf(role);

// ---- pole state ------------------------------------------------------------------------------
function poleState(p) {
  const nodes = p.nodes || [];
  const online = nodes.filter((n) => n.status === "online");
  const levels = online.map((n) => n.level).filter((l) => l !== null && l !== undefined);
  const level = levels.length ? Math.max(...levels) : null;
  const status = !nodes.length ? "unknown" : online.length === nodes.length ? "online" : online.length ? "partly" : nodes[0].status;
  const alarms = [...S.alarms.values()].filter((a) => a.pole_id === p.id && a.state !== "cleared");
  return { status, level, alarms };
}

function describe(p) {
  const st = poleState(p);
  const on = st.status === "online" || st.status === "partly";
  const lvl = st.level ?? 0;
  // dim (pale) to bright (amber); dark text on all of them (contrast >= 4.5:1)
  const shade = `hsl(48, 100%, ${Math.round(95 - 40 * lvl)}%)`;
  const cls = `st-${on ? "online" : st.status}${st.alarms.length ? " alarm" : ""}${S.selected === p.id ? " selected" : ""}`;
  const text = on && st.level !== null ? Math.round(lvl * 100) : on ? "" : "×";
  const label = `Pole ${p.id}${p.name ? ` (${p.name})` : ""}: ${st.status}${on ? `, light ${pct(st.level)}` : ""}${st.alarms.length ? `, ${st.alarms.length} open alarm(s)` : ""}${S.selected === p.id ? ", opened last" : ""}`;
  const tip = `${p.id}${on && st.level !== null ? ` · ${pct(st.level)}` : ` · ${st.status}`}${st.alarms.length ? ` · ${st.alarms.length} alarm(s)` : ""}`;
  return { cls, text, label, tip, style: on ? `--lvl:${shade}` : "" };
}

// ---- views -----------------------------------------------------------------------------------
const VIEWS = ["login", "map", "pole", "alarms", "control", "programs", "groups", "campaigns", "energy"];

function show(view) {
  for (const v of VIEWS) $(`#view-${v}`).hidden = v !== view;
  for (const a of $$("#nav a")) {
    if (a.getAttribute("href") === `#/${view}` || (view === "pole" && a.getAttribute("href") === "#/map")) a.setAttribute("aria-current", "page");
    else a.removeAttribute("aria-current");
  }
  document.title = `${view === "pole" ? `Pole ${S.pole}` : view[0].toUpperCase() + view.slice(1)} – Streetpole operations`;
}

async function route() {
  if (!auth.token) return showLogin();
  if (!S.me) {
    try {
      S.starting ??= start(); // the hashchange and the login handler both land here
      await S.starting;
    } catch (e) {
      return showLogin(e.message);
    } finally {
      S.starting = null;
    }
  }
  const [, view, arg] = (location.hash || "#/map").split("/");
  const name = VIEWS.includes(view) ? view : "map";
  S.pole = name === "pole" ? decodeURIComponent(arg || "") : null;
  show(name);
  const focusH = () => $(`#view-${name} h2`)?.focus();
  try {
    if (name === "map") { S.map.invalidate(); renderPoles(); }
    if (name === "pole") await renderPole(S.pole);
    if (name === "alarms") await renderAlarms();
    if (name === "control") await renderOverrides();
    if (name === "programs") await renderPrograms();
    if (name === "groups") await renderGroups(CTX);
    if (name === "campaigns") await Promise.all([renderCampaigns(arg), renderCampaignForm(CTX)]);
    if (name === "energy") await renderEnergyForm(CTX);
  } catch (e) {
    announce(`Could not load: ${e.message}`);
  }
  if (route.moved) focusH();
  route.moved = true;
}

function announce(text) {
  $("#announce").textContent = "";
  setTimeout(() => { $("#announce").textContent = text; }, 50);
}

function showLogin(msg = "") {
  S.me = null;
  S.live?.stop();
  $("#nav").hidden = $("#who").hidden = true;
  show("login");
  say($("#login-msg"), msg, msg ? "error" : "");
  $("#login-user").focus();
}

async function start() {
  const me = await get("/api/auth/me");
  S.me = me;
  $("#user").textContent = `${S.me.username} (${S.me.role})`;
  $("#nav").hidden = $("#who").hidden = false;
  applyRole();
  [S.owners, S.groups] = await Promise.all([get("/api/owners"), get("/api/groups"), loadQuantities()]);
  $("#zone").textContent = `Times: ${zoneName()}`;
  fillFilters();
  await Promise.all([loadPoles(), loadAlarms()]);
  S.live = new LiveEvents(
    {
      hello: () => Promise.all([loadPoles(), loadAlarms()]),
      resync: () => Promise.all([loadPoles(), loadAlarms()]),
      node: onNode,
      alarm: onAlarm,
    },
    (st) => {
      $("#live").dataset.state = st;
      $("#live").textContent = st === "on" ? "Live: on" : "Live: reconnecting";
    },
  );
  S.live.start();
}

function applyRole() {
  const op = can("operator");
  for (const b of $$("[data-needs='operator']")) {
    b.disabled = !op;
    if (!op) b.title = "Needs the operator role";
  }
  for (const n of $$("[data-role-note]")) if (!op) n.textContent = "You can look; changing needs the operator role.";
  // the fields of a form that only acts are the action too: a viewer cannot type in them
  // (a select that only picks what to look at is marked data-look and stays)
  for (const form of $$("form")) {
    if (!$("[data-needs='operator']", form)) continue;
    for (const f of $$("input, select, textarea", form)) {
      if (f.hasAttribute("data-look")) continue;
      f.disabled = !op;
      if (!op) f.title = "Needs the operator role";
    }
  }
}

function fillFilters() {
  const opts = (sel, items) => sel.replaceChildren(el("option", { value: "" }, "All"), ...items.map(([v, t]) => el("option", { value: v }, t)));
  opts($("#f-owner"), S.owners.map((o) => [o.id, o.name]));
  opts($("#f-group"), S.groups.map((g) => [g.id, g.name]));
  opts($("#f-type"), ["lighting", "air", "noise", "motion", "ev_charger", "camera", "small_cell", "other"].map((t) => [t, t]));
}

// ---- poles and the map -----------------------------------------------------------------------
async function loadPoles() {
  const all = await get("/api/poles?limit=5000");
  S.poles = new Map(all.map((p) => [p.id, p]));
  const districts = [...new Set(all.map((p) => p.district).filter(Boolean))].sort();
  const sel = $("#f-district");
  const cur = sel.value;
  sel.replaceChildren(el("option", { value: "" }, "All"), ...districts.map((d) => el("option", { value: d }, d)));
  sel.value = cur;
  await applyFilters(true);
}

async function applyFilters(fit = false) {
  const q = new URLSearchParams({ limit: "5000" });
  for (const [id, name] of [["f-district", "district"], ["f-group", "group"], ["f-owner", "owner"], ["f-type", "module_type"]]) {
    if ($(`#${id}`).value) q.set(name, $(`#${id}`).value);
  }
  const filtered = [...q.keys()].length > 1 ? await get(`/api/poles?${q}`) : [...S.poles.values()];
  S.shown = filtered.map((p) => S.poles.get(p.id) || p);
  S.map.setPoles(S.shown, { fit });
  $("#map-empty").hidden = S.shown.length > 0 || !S.poles.size;
  renderPoles();
}

function renderPoles() {
  $("#pole-count").textContent = `${S.shown.length} of ${S.poles.size} poles shown`;
  if (!S.shown.length) {
    $("#pole-list").replaceChildren(el("p", { class: "empty" }, S.poles.size ? "No pole matches these filters. Set a filter back to All to see more." : "No poles registered yet."));
    return;
  }
  const rows = S.shown.map((p) => {
    const st = poleState(p);
    return el(
      "tr",
      { dataset: { pole: p.id } },
      el("td", {}, el("a", { href: `#/pole/${encodeURIComponent(p.id)}` }, p.id)),
      el("td", {}, p.name || ""),
      el("td", {}, p.district || ""),
      el("td", {}, badge(st.status)),
      el("td", { class: "level" }, pct(st.level)),
      el("td", {}, st.alarms.length ? badge(`${st.alarms.length} alarm(s)`) : "none"),
    );
  });
  $("#pole-list").replaceChildren(stacked(table(["Pole", "Name", "District", "State", LIGHT_COMMANDED, "Alarms"], rows, "Poles shown on the map")));
}

function refreshPole(id) {
  const p = S.poles.get(id);
  if (!p) return;
  S.map.update(p);
  const row = $(`#pole-list tr[data-pole="${CSS.escape(id)}"]`);
  if (row) {
    const st = poleState(p);
    row.children[3].replaceChildren(badge(st.status));
    row.children[4].textContent = pct(st.level);
    row.children[5].replaceChildren(st.alarms.length ? badge(`${st.alarms.length} alarm(s)`) : "none");
  }
  if (S.pole === id) renderPoleNodes(p);
}

function onNode(ev) {
  const p = S.poles.get(ev.pole);
  if (!p) return;
  const n = (p.nodes || []).find((x) => x.id === ev.id);
  if (!n) return;
  Object.assign(n, { status: ev.status, level: ev.level, last_seen: ev.last_seen });
  refreshPole(ev.pole);
}

function onAlarm(a) {
  const was = S.alarms.get(a.id);
  if (a.state === "cleared") S.alarms.delete(a.id);
  else S.alarms.set(a.id, a);
  if (!was && a.state === "active") announce(`New alarm: ${a.code} on pole ${a.pole_id}`);
  updateAlarmCount();
  refreshPole(a.pole_id);
  if (!$("#view-alarms").hidden) renderAlarms();
  if (S.pole === a.pole_id) renderPoleAlarms(a.pole_id);
}

async function loadAlarms() {
  const open = await get("/api/alarms?state=open&limit=5000");
  S.alarms = new Map(open.map((a) => [a.id, a]));
  updateAlarmCount();
  for (const id of S.poles.keys()) S.map.update(S.poles.get(id));
  renderPoles();
}

function updateAlarmCount() {
  const n = [...S.alarms.values()].filter((a) => a.state === "active").length;
  const b = $("#alarm-count");
  b.hidden = !n;
  b.textContent = `${n}`;
  b.setAttribute("aria-label", `${n} active`);
}

// ---- override forms (pole, group, area share the fields) ---------------------------------------
function overrideFields(fs, prefix) {
  fs.replaceChildren(
    el("legend", { class: "visually-hidden" }, "Override settings"),
    el("label", { for: `${prefix}-level` }, "Level % (0–100)", el("input", { id: `${prefix}-level`, type: "number", min: 0, max: 100, required: true, inputmode: "numeric" })),
    el("label", { for: `${prefix}-start` }, "Start (empty: now)", el("input", { id: `${prefix}-start`, type: "datetime-local" })),
    el("label", { for: `${prefix}-minutes` }, "Duration, minutes", el("input", { id: `${prefix}-minutes`, type: "number", min: 1, max: 43200, value: 60, required: true })),
    el("label", { class: "inline", for: `${prefix}-event` }, el("input", { id: `${prefix}-event`, type: "checkbox" }), "Event mode (full light)"),
    el("label", { for: `${prefix}-reason` }, "Reason", el("input", { id: `${prefix}-reason`, maxlength: 300 })),
  );
  $(`#${prefix}-event`).addEventListener("change", (e) => {
    $(`#${prefix}-level`).disabled = e.target.checked;
  });
}

function overrideBody(prefix) {
  const event = $(`#${prefix}-event`).checked;
  const body = {
    level: event ? 1 : Number($(`#${prefix}-level`).value) / 100,
    duration_s: Math.round(Number($(`#${prefix}-minutes`).value) * 60),
    mode: event ? "event" : "normal",
    reason: $(`#${prefix}-reason`).value,
  };
  const st = $(`#${prefix}-start`).value;
  if (st) body.start = Math.floor(new Date(st).getTime() / 1000);
  return body;
}

async function submitOverride(body, msg) {
  try {
    const ov = await post("/api/overrides", body);
    say(msg, `Override sent to ${ov.nodes} node(s), level ${pct(ov.level)}${ov.mode === "event" ? " (event mode)" : ""}.`, "ok");
    return ov;
  } catch (e) {
    say(msg, `Not sent: ${e.message}`, "error");
    return null;
  } finally {
    // the message is under the button: bring it into view and read it out
    msg.scrollIntoView({ block: "nearest" });
    announce(msg.textContent);
  }
}

// ---- pole page -------------------------------------------------------------------------------
async function renderPole(id) {
  const p = await get(`/api/poles/${encodeURIComponent(id)}`);
  const was = S.selected;
  S.selected = p.id;
  if (was && was !== p.id && S.poles.has(was)) S.map.update(S.poles.get(was));
  S.poles.set(p.id, { ...(S.poles.get(p.id) || {}), ...p });
  $("#pole-h").textContent = `Pole ${p.id}${p.name ? ` – ${p.name}` : ""}`;
  document.title = `Pole ${p.id} – Streetpole operations`;
  const owner = (oid) => S.owners.find((o) => o.id === oid)?.name || `owner ${oid}`;
  const groups = S.groups.filter((g) => (g.poles || []).includes(p.id)).map((g) => g.name);
  $("#pole-facts").replaceChildren(
    ...[["Owner", owner(p.owner_id)], ["District", p.district || "–"], ["Address", p.address || "–"],
      ["Position", `${p.lat.toFixed(5)}, ${p.lon.toFixed(5)}`], ["Groups", groups.join(", ") || "–"]]
      .flatMap(([k, v]) => [el("dt", {}, k), el("dd", {}, v)]),
  );
  $("#pole-modules").replaceChildren(p.modules.length ? stacked(table(
    ["Type", "Owner", "Purpose", "Openness", "Personal data", "Node/source"],
    p.modules.map((m) => [m.type, owner(m.owner_id), m.purpose || "–", badge(m.openness), m.personal_data ? "yes" : "no", `${m.node || "–"}/${m.src || "–"}`]),
    "Modules",
  )) : el("p", { class: "muted" }, "No modules registered."));
  renderPoleNodes(S.poles.get(p.id));
  S.map.update(S.poles.get(p.id));
  const [latest] = await Promise.all([get(`/api/dashboard/poles/${encodeURIComponent(id)}/latest`), renderPoleAlarms(id), renderPoleAudit(id)]);
  $("#pole-latest").replaceChildren(latest.value.length ? latestTable(latest.value, p.modules) : el("p", { class: "muted" }, "No readings yet."));
  await renderCharts();
}

function renderPoleNodes(p) {
  if (!p || $("#view-pole").hidden) return;
  $("#pole-nodes").replaceChildren(stacked(table(
    ["Node", "State", LIGHT_COMMANDED, "Firmware", "Last seen", "Config"],
    (p.nodes || []).map((n) => el("tr", { dataset: { node: n.id } },
      el("td", {}, n.node), el("td", {}, badge(n.status)), el("td", { class: "level" }, pct(n.level)),
      el("td", {}, n.firmware_version || "–"), el("td", {}, fmtTime(n.last_seen)), el("td", {}, `v${n.config_version}`))),
    "Nodes",
  )));
}

async function renderPoleAlarms(id) {
  const list = await get(`/api/alarms?pole=${encodeURIComponent(id)}&limit=50`);
  $("#pole-alarms").replaceChildren(list.length ? stacked(alarmTable(list)) : el("p", { class: "muted" }, "No alarms."));
}

async function renderPoleAudit(id) {
  const [own, alarms] = await Promise.all([
    get(`/api/audit?target_id=${encodeURIComponent(id)}&limit=100`),
    get("/api/audit?target_type=alarm&limit=300"),
  ]);
  const rows = [...own, ...alarms.filter((a) => a.detail?.pole === id)].sort((a, b) => b.ts - a.ts).slice(0, 100);
  $("#pole-audit").replaceChildren(rows.length ? stacked(table(
    ["When", "Who", "What", "Detail"],
    rows.map((a) => [fmtTime(a.ts), a.actor, `${a.action} ${a.target_type} ${a.target_id}`, auditDetail(a.detail, { owner_id: (v) => S.owners.find((o) => o.id === v)?.name || `owner ${v}` })]),
    "Audit trail",
  )) : el("p", { class: "muted" }, "Nothing recorded."));
}

async function renderCharts() {
  const r = chartRange($("#range").value, $("#range-start").value, $("#range-end").value);
  const err = $("#range-msg");
  for (const f of [$("#range-start"), $("#range-end")]) f.removeAttribute("aria-invalid");
  if (r.error) {
    say(err, r.error, "error");
    $(r.error.startsWith("To") ? "#range-end" : "#range-start").setAttribute("aria-invalid", "true");
    $("#charts").replaceChildren();
    return;
  }
  const { start, end } = r;
  const win = windowFor(end - start);
  const res = await get(`/api/dashboard/poles/${encodeURIComponent(S.pole)}/series?start=${start}&end=${end}&window=${win}`);
  const [from, to] = dataSpan(res.value, start, end);
  const per = { raw: "", minute: " per minute", hour: " per hour", day: " per day" }[win];
  say(err, from > start ? `This pole has data from ${fmtTime(from)} on: the charts show that part of the range.` : "");
  const box = $("#charts");
  box.replaceChildren();
  for (const g of CHART_GROUPS) {
    const streams = res.value.filter((s) => g.qs.includes(s.q));
    if (!streams.length) continue;
    const div = el("div", { class: "chart", id: `chart-${g.id}`, dataset: { points: streams.reduce((n, s) => n + s.points.length, 0), from, to } });
    box.append(div);
    const label = (s) => `${s.q === "illuminanceLevel" ? LIGHT_MEASURED : qName(s.q)}${streams.filter((x) => x.q === s.q).length > 1 ? ` (${s.node}/${s.src})` : ""}`;
    // counts and energy are summed per window (series.py), the others averaged
    const title = `${g.id === "light" ? LIGHT_MEASURED : g.title}${per && (g.bars ? per : `, mean${per}`)}`;
    timeChart(div, title, g.unit, streams.map((s) => ({ label: label(s), points: s.points })), { scale: g.scale || 1, bars: g.bars, range: [from, to], yRange: g.id === "light" ? [0, 100] : null, ticks: isoTicks, live: false });
  }
  if (!box.children.length) box.append(el("p", { class: "muted" }, "This pole measures none of the charted quantities in this range."));
}

// ---- alarms ----------------------------------------------------------------------------------
function alarmTable(list) {
  const op = can("operator");
  return table(
    ["Pole", "Alarm", "Severity", "State", "Raised", "Count", "Detail", "Actions"],
    list.map((a) => el("tr", { dataset: { alarm: a.id } },
      el("td", {}, el("a", { href: `#/pole/${encodeURIComponent(a.pole_id)}` }, a.pole_id)),
      el("td", {}, `${a.code}${a.src ? ` (${a.src})` : ""}`),
      el("td", {}, badge(a.severity)),
      el("td", {}, badge(a.state), a.acknowledged_by ? el("span", { class: "muted" }, ` by ${a.acknowledged_by}`) : ""),
      el("td", {}, fmtTime(a.raised_at)),
      el("td", {}, a.count),
      el("td", {}, a.detail || ""),
      el("td", {},
        a.state === "active" ? el("button", { type: "button", class: "secondary", disabled: !op, "aria-label": `Acknowledge ${a.code} on ${a.pole_id}`, onclick: () => alarmAction(a, "acknowledge") }, "Acknowledge") : "",
        " ",
        a.state !== "cleared" ? el("button", { type: "button", class: "secondary", disabled: !op, "aria-label": `Clear ${a.code} on ${a.pole_id}`, onclick: () => alarmAction(a, "clear") }, "Clear") : ""),
    )),
    "Alarms",
  );
}

async function alarmAction(a, what) {
  const msg = $("#alarm-msg");
  try {
    const got = await post(`/api/alarms/${a.id}/${what}`);
    onAlarm(got);
    say(msg, `Alarm ${a.code} on ${a.pole_id}: ${got.state}.`, "ok");
  } catch (e) {
    say(msg, `Could not ${what}: ${e.message}`, "error");
  }
  if (!$("#view-alarms").hidden) await renderAlarms();
  else if (S.pole) await renderPoleAlarms(S.pole);
}

async function renderAlarms() {
  const st = $("#alarm-state").value;
  const list = await get(`/api/alarms?limit=500${st ? `&state=${st}` : ""}`);
  $("#alarm-list").replaceChildren(list.length ? alarmTable(list) : el("p", { class: "muted" }, "No alarms."));
}

// ---- overrides -------------------------------------------------------------------------------
async function renderOverrides() {
  const gsel = $("#go-group");
  const cur = gsel.value;
  gsel.replaceChildren(...(S.groups.length ? S.groups.map((g) => el("option", { value: g.id }, `${g.name} (${g.poles.length} poles)`))
    : [el("option", { value: "" }, "No groups yet: make one under Groups")]));
  if (cur) gsel.value = cur;
  const list = await get(`/api/overrides${$("#ov-active").checked ? "?active=true" : ""}`);
  const groupName = (id) => S.groups.find((g) => g.id === id)?.name ?? `group ${id}`;
  const target = (o) => o.target_kind === "area" ? `area ${o.target.bbox ? o.target.bbox.map((x) => x.toFixed(5)).join(", ") : "polygon"}`
    : o.target_kind === "group" ? `group ${groupName(o.target.group)}` : `${o.target_kind} ${Object.values(o.target)[0]}`;
  $("#ov-list").replaceChildren(list.length ? table(
    [...OV_HEAD, "Actions"],
    list.map((o) => el("tr", {}, ...[target(o), pct(o.level), o.mode, fmtTime(o.start), fmtTime(o.expiry), o.nodes, o.created_by,
      o.reverted_at ? "reverted" : o.active ? "active" : "ended"].map((c, i) => el("td", { "data-label": OV_HEAD[i] }, c)),
      el("td", {}, o.active ? el("button", { type: "button", class: "danger", disabled: !can("operator"), onclick: () => revert(o, target(o)) }, "Revert") : ""))),
    "Overrides",
  ) : el("p", { class: "muted" }, "No overrides."));
}

const OV_HEAD = ["Target", "Level", "Mode", "From", "Until", "Nodes", "By", "State"];

async function revert(o, what) {
  if (!window.confirm(`Revert the override of ${what} (${pct(o.level)}, ${o.nodes} node(s))? The lights go back to their program now.`)) return;
  try {
    await post(`/api/overrides/${o.id}/revert`);
    say($("#ov-msg"), `Override of ${what} reverted.`, "ok");
    announce($("#ov-msg").textContent);
  } catch (e) {
    say($("#ov-msg"), `Not reverted: ${e.message}`, "error");
  }
  await renderOverrides();
}

// ---- programs and profiles -------------------------------------------------------------------
let PROGRAMS = [];
let PROFILES = [];

function stepRow(step = { at: "sunset", offset_min: 0, level: 1 }) {
  const i = $$("#pg-steps .steps-row").length + 1;
  const row = el("div", { class: "steps-row" },
    el("label", {}, `Step ${i} at`, el("input", { class: "st-at", value: step.at, required: true, pattern: "sunrise|sunset|([01][0-9]|2[0-3]):[0-5][0-9]", size: 7 })),
    el("label", {}, "Offset min", el("input", { class: "st-off", type: "number", min: -720, max: 720, value: step.offset_min || 0 })),
    el("label", {}, "Level %", el("input", { class: "st-level", type: "number", min: 0, max: 100, value: Math.round(step.level * 100), required: true })),
    el("button", { type: "button", class: "secondary", "aria-label": `Remove step ${i}`, onclick: (e) => e.target.closest(".steps-row").remove() }, "Remove"),
  );
  $("#pg-steps").append(row);
}

async function renderPrograms() {
  [PROGRAMS, PROFILES] = await Promise.all([get("/api/programs"), get("/api/profiles")]);
  $("#program-list").replaceChildren(table(["Name", "Steps"], PROGRAMS.map((p) => [p.name, p.steps.map((s) => `${s.at}${s.offset_min ? `${s.offset_min > 0 ? "+" : ""}${s.offset_min}m` : ""} → ${pct(s.level)}`).join("; ")]), "Programs"));
  const pfHead = ["Name", "Program", "Levels", "Presence", "Report", "Used by"];
  $("#profile-list").replaceChildren(table(pfHead, PROFILES.map((p) => [p.name, p.default_program, `${pct(p.min_level)}–${pct(p.max_level)}`, p.presence ? `${pct(p.presence.level)} for ${p.presence.hold_s} s` : "off", `${p.report_period_s} s`, usedBy(p.id, S.groups, S.poles)]), "Profiles"));
  labelCells($("#profile-list"), pfHead);
  await idRule();
  const pick = $("#pg-pick");
  pick.replaceChildren(el("option", { value: "" }, "New program"), ...PROGRAMS.map((p) => el("option", { value: p.id }, p.name)));
  const fpick = $("#pf-pick");
  fpick.replaceChildren(el("option", { value: "" }, "New profile"), ...PROFILES.map((p) => el("option", { value: p.id }, p.name)));
  $("#pf-program").replaceChildren(...PROGRAMS.map((p) => el("option", { value: p.name }, p.name)));
  if (!$$("#pg-steps .steps-row").length) { stepRow(); stepRow({ at: "sunrise", level: 0 }); }
  applyRole();
}

function editProgram() {
  say($("#pg-msg"), "");
  const p = PROGRAMS.find((x) => String(x.id) === $("#pg-pick").value);
  $("#pg-name").value = p ? p.name : "";
  $("#pg-name").readOnly = !!p;
  $("#pg-steps").replaceChildren();
  for (const s of p ? p.steps : [{ at: "sunset", level: 1 }, { at: "sunrise", level: 0 }]) stepRow(s);
  applyRole();
}

// The server's id rule (pattern and words) from its OpenAPI schema: one rule, not a copy here.
async function idRule() {
  if (idRule.done) return;
  const schema = await get("/openapi.json");
  const name = schema.components.schemas.ProgramIn.properties.name;
  for (const id of ["pg-name", "pf-name"]) {
    $(`#${id}`).pattern = name.pattern;
    $(`#${id}`).title = name.description;
    $(`#${id}-rule`).textContent = `Name: ${name.description}.`;
  }
  idRule.done = true;
}

async function saveProgram(e) {
  e.preventDefault();
  say($("#pg-msg"), "");
  const body = {
    name: $("#pg-name").value.trim(),
    steps: $$("#pg-steps .steps-row").map((r) => ({ at: $(".st-at", r).value.trim(), offset_min: Number($(".st-off", r).value || 0), level: Number($(".st-level", r).value) / 100 })),
  };
  const id = $("#pg-pick").value;
  try {
    await (id ? put(`/api/programs/${id}`, body) : post("/api/programs", body));
    say($("#pg-msg"), `Program ${body.name} saved; nodes using it get a new config.`, "ok");
    await renderPrograms();
  } catch (err) {
    say($("#pg-msg"), `Not saved: ${err.message}`, "error");
  }
}

function editProfile() {
  say($("#pf-msg"), "");
  const p = PROFILES.find((x) => String(x.id) === $("#pf-pick").value);
  $("#pf-name").value = p ? p.name : "";
  $("#pf-name").readOnly = !!p;
  if (p) $("#pf-program").value = p.default_program;
  $("#pf-min").value = Math.round((p ? p.min_level : 0) * 100);
  $("#pf-max").value = Math.round((p ? p.max_level : 1) * 100);
  $("#pf-period").value = p ? p.report_period_s : 60;
  $("#pf-pres-level").value = p?.presence ? Math.round(p.presence.level * 100) : "";
  $("#pf-pres-hold").value = p?.presence ? p.presence.hold_s : 60;
  $("#pf-calendar").value = JSON.stringify(p ? p.calendar : [], null, 1);
}

async function saveProfile(e) {
  e.preventDefault();
  say($("#pf-msg"), "");
  const id = $("#pf-pick").value;
  const old = PROFILES.find((x) => String(x.id) === id) || {};
  let calendar;
  try {
    calendar = JSON.parse($("#pf-calendar").value || "[]");
  } catch (err) {
    say($("#pf-msg"), `Calendar is not valid JSON: ${err.message}`, "error");
    $("#pf-calendar").focus();
    return;
  }
  const pres = $("#pf-pres-level").value;
  const body = {
    ...Object.fromEntries(Object.entries(old).filter(([k]) => !["id", "created_at"].includes(k))),
    name: $("#pf-name").value.trim(),
    default_program: $("#pf-program").value,
    min_level: Number($("#pf-min").value) / 100,
    max_level: Number($("#pf-max").value) / 100,
    report_period_s: Number($("#pf-period").value),
    presence: pres === "" ? null : { ...(old.presence || {}), level: Number(pres) / 100, hold_s: Number($("#pf-pres-hold").value) },
    calendar,
  };
  try {
    await (id ? put(`/api/profiles/${id}`, body) : post("/api/profiles", body));
    say($("#pf-msg"), `Profile ${body.name} saved; its poles get a new config.`, "ok");
    await renderPrograms();
  } catch (err) {
    say($("#pf-msg"), `Not saved: ${err.message}`, "error");
  }
}

// ---- campaigns -------------------------------------------------------------------------------
function progress(counts) {
  const total = Object.values(counts).reduce((a, b) => a + b, 0) || 1;
  const done = counts.updated || 0;
  const fail = (counts.failed || 0) + (counts.rolled_back || 0);
  const busy = (counts.downloading || 0) + (counts.verified || 0);
  return el("div", { class: "progress", role: "img", "aria-label": `${done} updated, ${fail} failed, ${busy} in progress of ${total}` },
    el("span", { class: "p-done", style: `width:${(100 * done) / total}%` }),
    el("span", { class: "p-fail", style: `width:${(100 * fail) / total}%` }),
    el("span", { class: "p-busy", style: `width:${(100 * busy) / total}%` }));
}

async function renderCampaigns(id) {
  const list = await get("/api/campaigns");
  const group = (gid) => S.groups.find((g) => g.id === gid)?.name || `group ${gid}`;
  $("#campaign-list").replaceChildren(list.length ? table(
    ["Campaign", "Group", "State", "Progress", "Counts", "Created", "Actions"],
    list.map((c) => [el("a", { href: `#/campaigns/${c.id}` }, `#${c.id}`), group(c.group_id), badge(c.state), progress(c.nodes),
      Object.entries(c.nodes).map(([k, v]) => `${k} ${v}`).join(", "), fmtTime(c.created_at),
      c.state === "running" || c.state === "halted" ? el("button", { type: "button", class: c.state === "running" ? "danger" : "secondary", disabled: !can("operator"),
        onclick: () => campaignAction(c, c.state === "running" ? "halt" : "resume", CTX) }, c.state === "running" ? "Halt" : "Resume") : ""]),
    "Campaigns",
  ) : el("p", { class: "muted" }, "No campaigns."));
  $("#campaign-h").hidden = !id;
  if (!id) return $("#campaign-nodes").replaceChildren();
  $("#campaign-h").textContent = `Progress per node, campaign #${id}`;
  const nodes = await get(`/api/campaigns/${encodeURIComponent(id)}/nodes`);
  const byId = new Map([...S.poles.values()].flatMap((p) => (p.nodes || []).map((n) => [n.id, `${p.id}/${n.node}`])));
  $("#campaign-nodes").replaceChildren(table(["Node", "State", "Reason", "Updated"],
    nodes.map((n) => [byId.get(n.node_id) || `node ${n.node_id}`, badge(n.state), n.reason || "", fmtTime(n.updated_at)]), "Campaign nodes"));
}

// ---- the views in their own modules get the dashboard's state through this ----------------
const CTX = {
  groups: () => S.groups,
  poles: () => S.poles,
  applyRole,
  announce,
  reloadGroups: async () => { S.groups = await get("/api/groups"); fillFilters(); },
  reloadPoles: loadPoles,
  rerender: () => route(),
};

// ---- wiring ----------------------------------------------------------------------------------
function wire() {
  const rs = $("#range");
  rs.append(...RANGES.map((r) => el("option", { value: r.id }, r.label)), el("option", { value: "custom" }, "Custom (from / to)"));
  rs.value = "24h";
  const now = Math.floor(Date.now() / 1000);
  $("#range-start").value = fmtTime(now - 86400);
  $("#range-end").value = fmtTime(now);
  for (const id of ["area", "pole", "group"]) overrideFields($(`[data-override-fields='${id}']`), `${id}o`);
  for (const f of $$("input[type='datetime-local'], input[type='date']")) isoInput(f, f.type !== "date");
  for (const id of ["#pg-pick", "#pf-pick"]) $(id).setAttribute("data-look", ""); // they pick what to show

  $("#login-form").addEventListener("submit", async (e) => {
    e.preventDefault();
    try {
      await login($("#login-user").value, $("#login-pass").value);
      $("#login-pass").value = "";
      route.moved = true;
      location.hash = "#/map";
      await route();
    } catch (err) {
      say($("#login-msg"), err.status === 401 ? "User name or password not right." : err.message, "error");
    }
  });
  $("#logout").addEventListener("click", async () => {
    S.live?.stop();
    auth.token = null;
    location.hash = "";
    showLogin();
  });
  window.addEventListener("sp-logged-out", () => showLogin("Your session ended; log in again."));
  window.addEventListener("hashchange", route);
  $("#filters").addEventListener("change", () => applyFilters(true));
  $("#alarm-state").addEventListener("change", renderAlarms);
  $("#ov-active").addEventListener("change", renderOverrides);
  $("#range-form").addEventListener("submit", (e) => { e.preventDefault(); renderCharts(); });
  rs.addEventListener("change", () => { if (rs.value !== "custom") renderCharts(); });
  for (const f of [$("#range-start"), $("#range-end")]) f.addEventListener("input", () => { rs.value = "custom"; });

  const bbox = () => ["a-west", "a-south", "a-east", "a-north"].map((id) => Number($(`#${id}`).value));
  const setBbox = (b) => ["a-west", "a-south", "a-east", "a-north"].forEach((id, i) => { $(`#${id}`).value = b[i].toFixed(6); });
  // drawn, taken from the map view (keyboard: zoom with + and -, pan with the arrows) or typed:
  // each way says how many poles the area holds
  const chosen = (b, how) => {
    const [w, s, ea, n] = [Math.min(b[0], b[2]), Math.min(b[1], b[3]), Math.max(b[0], b[2]), Math.max(b[1], b[3])];
    const inside = S.shown.filter((p) => p.lon >= w && p.lon <= ea && p.lat >= s && p.lat <= n);
    say($("#area-msg"), `${how}: ${inside.length} pole(s) inside (${inside.map((p) => p.id).join(", ")}).`);
  };
  $("#draw-area").addEventListener("click", async (e) => {
    const btn = e.currentTarget;
    btn.setAttribute("aria-pressed", "true");
    say($("#area-msg"), "Drag a rectangle on the map (Escape cancels). Without a mouse: zoom the map onto the area and use the map view.");
    const b = await S.map.drawRectangle();
    btn.setAttribute("aria-pressed", "false");
    if (!b) return say($("#area-msg"), "Drawing cancelled.");
    setBbox(b);
    chosen(b, "Area drawn");
  });
  $("#view-area").addEventListener("click", () => { const b = S.map.viewBbox(); setBbox(b); S.map.showArea(b); chosen(b, "Area of the map view"); });
  for (const id of ["a-west", "a-south", "a-east", "a-north"]) $(`#${id}`).addEventListener("change", () => { const b = bbox(); if (b.every(Number.isFinite)) { S.map.showArea(b); chosen(b, "Area typed"); } });
  $("#area-form").addEventListener("submit", async (e) => {
    e.preventDefault();
    const [w, s, ea, n] = bbox();
    const box = [Math.min(w, ea), Math.min(s, n), Math.max(w, ea), Math.max(s, n)];
    await submitOverride({ area: { bbox: box }, ...overrideBody("areao") }, $("#area-msg"));
  });
  $("#pole-override-form").addEventListener("submit", async (e) => {
    e.preventDefault();
    await submitOverride({ pole: S.pole, ...overrideBody("poleo") }, $("#pole-override-msg"));
  });
  $("#group-override-form").addEventListener("submit", async (e) => {
    e.preventDefault();
    if (await submitOverride({ group: Number($("#go-group").value), ...overrideBody("groupo") }, $("#group-override-msg"))) {
      await renderOverrides(); // the list above grows: bring the message back into view
      $("#group-override-msg").scrollIntoView({ block: "nearest" });
    }
  });
  $("#pg-pick").addEventListener("change", editProgram);
  $("#program-form").addEventListener("input", () => say($("#pg-msg"), ""));
  $("#profile-form").addEventListener("input", () => say($("#pf-msg"), ""));
  $("#pg-add").addEventListener("click", () => stepRow());
  $("#program-form").addEventListener("submit", saveProgram);
  $("#pf-pick").addEventListener("change", editProfile);
  $("#profile-form").addEventListener("submit", saveProfile);
  $("#energy-form").addEventListener("submit", (e) => { e.preventDefault(); renderEnergy(); });
  wireGroups(CTX);
  wireCampaigns(CTX);

  S.map = new PoleMap($("#map"), { onOpen: (id) => { location.hash = `#/pole/${encodeURIComponent(id)}`; }, describe });
}

wire();
route();
