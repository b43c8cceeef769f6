// The Groups view: make a group of poles, change its poles and profile, remove it, and set the
// profile of a single pole. The dashboard's state comes in as `ctx` (no import of dashboard.js).
import { api, get, post } from "./api.js";
import { $, $$, el, say, table } from "./util.js";

const patch = (p, b) => api("PATCH", p, b);

/** ctx: { groups(), poles(), applyRole(), reloadGroups(), reloadPoles(), announce(text) } */
export function wireGroups(ctx) {
  $("#gr-pick").addEventListener("change", () => editGroup(ctx));
  $("#gr-filter").addEventListener("input", () => filterPoles());
  $("#group-form").addEventListener("input", () => say($("#gr-form-msg"), ""));
  $("#group-form").addEventListener("submit", (e) => { e.preventDefault(); saveGroup(ctx); });
  $("#gr-delete").addEventListener("click", () => deleteGroup(ctx));
  $("#pole-profile-form").addEventListener("change", () => say($("#pp-msg"), ""));
  $("#pole-profile-form").addEventListener("submit", (e) => { e.preventDefault(); savePoleProfile(ctx); });
  $("#pp-pole").addEventListener("change", () => {
    const p = ctx.poles().get($("#pp-pole").value);
    $("#pp-profile").value = p?.profile_id ?? "";
  });
}

let PROFILES = [];

const profileName = (id) => PROFILES.find((p) => p.id === id)?.name ?? "–";

/** reset: load the picked group into the editor (else what the operator typed stays). */
export async function renderGroups(ctx, { reset = false } = {}) {
  PROFILES = await get("/api/profiles");
  const first = !$("#gr-poles input");
  const kept = { name: $("#gr-name").value, profile: $("#gr-profile").value, poles: new Set($$("#gr-poles input").filter((b) => b.checked).map((b) => b.value)) };
  const groups = ctx.groups();
  const poles = [...ctx.poles().values()].sort((a, b) => a.id.localeCompare(b.id));
  $("#group-list").replaceChildren(groups.length ? table(
    ["Group", "Poles", "Profile"],
    groups.map((g) => [g.name, `${g.poles.length}: ${g.poles.slice(0, 6).join(", ")}${g.poles.length > 6 ? ", …" : ""}`, profileName(g.profile_id)]),
    "Groups",
  ) : el("p", { class: "muted" }, "No groups yet: make one with the editor."));
  const profileOptions = (none) => [el("option", { value: "" }, none), ...PROFILES.map((p) => el("option", { value: p.id }, p.name))];
  const pick = $("#gr-pick");
  const cur = pick.value;
  pick.replaceChildren(el("option", { value: "" }, "New group"), ...groups.map((g) => el("option", { value: g.id }, g.name)));
  pick.value = groups.some((g) => String(g.id) === cur) ? cur : "";
  $("#gr-profile").replaceChildren(...profileOptions("none"));
  $("#gr-poles").replaceChildren(...poles.map((p) => el("label", { class: "inline", for: `gr-p-${p.id}`, dataset: { pole: p.id } },
    el("input", { type: "checkbox", id: `gr-p-${p.id}`, value: p.id }), ` ${p.id}${p.name ? ` (${p.name})` : ""}`)));
  const ppPole = $("#pp-pole");
  const curPole = ppPole.value;
  ppPole.replaceChildren(...poles.map((p) => el("option", { value: p.id }, p.id)));
  if (curPole) ppPole.value = curPole;
  $("#pp-profile").replaceChildren(...profileOptions("none (the default program)"));
  $("#pp-profile").value = ctx.poles().get(ppPole.value)?.profile_id ?? "";
  if (first || reset) editGroup(ctx);
  else {
    $("#gr-name").value = kept.name;
    $("#gr-profile").value = kept.profile;
    for (const box of $$("#gr-poles input")) box.checked = kept.poles.has(box.value);
  }
  filterPoles();
  ctx.applyRole();
}

function editGroup(ctx) {
  const g = ctx.groups().find((x) => String(x.id) === $("#gr-pick").value);
  $("#gr-name").value = g ? g.name : "";
  $("#gr-name").readOnly = !!g; // the API renames nothing: the name is the group's key for people
  $("#gr-profile").value = g?.profile_id ?? "";
  const members = new Set(g ? g.poles : []);
  for (const box of $$("#gr-poles input")) box.checked = members.has(box.value);
  $("#gr-delete").hidden = !g;
  say($("#gr-form-msg"), "");
}

function filterPoles() {
  const q = $("#gr-filter").value.trim().toLowerCase();
  for (const row of $$("#gr-poles label")) row.hidden = !!q && !row.textContent.toLowerCase().includes(q);
}

async function saveGroup(ctx) {
  const msg = $("#gr-form-msg");
  say(msg, "");
  const id = $("#gr-pick").value;
  const prof = $("#gr-profile").value;
  const poles = $$("#gr-poles input").filter((b) => b.checked).map((b) => b.value);
  const body = { poles, profile_id: prof ? Number(prof) : null };
  try {
    const g = id ? await patch(`/api/groups/${id}`, body) : await post("/api/groups", { name: $("#gr-name").value.trim(), ...body });
    await ctx.reloadGroups();
    $("#gr-pick").value = String(g.id);
    await renderGroups(ctx, { reset: true });
    say(msg, `Group ${g.name} saved: ${g.poles.length} pole(s)${g.profile_id ? `, profile ${profileName(g.profile_id)}` : ""}.`, "ok");
    ctx.announce(msg.textContent);
  } catch (e) {
    say(msg, `Not saved: ${e.message}`, "error");
  }
}

async function deleteGroup(ctx) {
  const g = ctx.groups().find((x) => String(x.id) === $("#gr-pick").value);
  if (!g || !window.confirm(`Remove group ${g.name}? Its poles stay; they lose the group's profile.`)) return;
  const msg = $("#gr-form-msg");
  try {
    await api("DELETE", `/api/groups/${g.id}`);
    await ctx.reloadGroups();
    $("#gr-pick").value = "";
    await renderGroups(ctx, { reset: true });
    say(msg, `Group ${g.name} removed.`, "ok");
  } catch (e) {
    say(msg, `Not removed: ${e.message}`, "error");
  }
}

async function savePoleProfile(ctx) {
  const msg = $("#pp-msg");
  say(msg, "");
  const pole = $("#pp-pole").value;
  const prof = $("#pp-profile").value;
  try {
    await patch(`/api/poles/${encodeURIComponent(pole)}`, { profile_id: prof ? Number(prof) : null });
    await ctx.reloadPoles();
    say(msg, `Pole ${pole}: profile ${prof ? profileName(Number(prof)) : "none"}; its node gets a new config.`, "ok");
  } catch (e) {
    say(msg, `Not set: ${e.message}`, "error");
  }
}

/** "Used by" of a profile, for the profile list: its groups and the poles that name it. */
export function usedBy(profileId, groups, poles) {
  const gs = groups.filter((g) => g.profile_id === profileId).map((g) => g.name);
  const ps = [...poles.values()].filter((p) => p.profile_id === profileId).map((p) => p.id);
  const parts = [];
  if (gs.length) parts.push(`group${gs.length > 1 ? "s" : ""} ${gs.join(", ")}`);
  if (ps.length) parts.push(`${ps.length} pole${ps.length > 1 ? "s" : ""}${ps.length <= 4 ? ` (${ps.join(", ")})` : ""}`);
  return parts.join("; ") || "not used";
}
