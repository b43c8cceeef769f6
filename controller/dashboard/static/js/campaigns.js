// Starting and halting firmware campaigns (the list itself is drawn by dashboard.js). A list of
// poles as the target becomes a group of its own first, as `streetpole firmware campaign start
// --poles` does: the API rolls out to groups.
import { get, post } from "./api.js";
import { $, $$, el, say } from "./util.js";

/** ctx: { groups(), reloadGroups(), rerender(), announce(text) } */
export function wireCampaigns(ctx) {
  for (const r of $$("input[name='cp-target']")) r.addEventListener("change", targetShown);
  $("#campaign-form").addEventListener("input", () => say($("#cp-msg"), ""));
  $("#campaign-form").addEventListener("submit", (e) => { e.preventDefault(); start(ctx); });
}

const size = (n) => (n < 10240 ? `${n} B` : `${Math.round(n / 1024)} KiB`);

function targetShown() {
  const poles = $("#cp-to-poles").checked;
  $("label[for='cp-group']").hidden = poles;
  $("label[for='cp-poles']").hidden = !poles;
  $("#cp-group").required = !poles;
  $("#cp-poles").required = poles;
}

export async function renderCampaignForm(ctx) {
  const pkgs = await get("/api/firmware");
  const sel = $("#cp-package");
  const cur = sel.value;
  sel.replaceChildren(...(pkgs.length ? pkgs.map((p) => el("option", { value: p.id }, `${p.version} (${p.kind}, ${size(p.size)}, by ${p.uploaded_by})`))
    : [el("option", { value: "" }, "No packages uploaded yet")]));
  if (cur) sel.value = cur;
  const gsel = $("#cp-group");
  const gcur = gsel.value;
  gsel.replaceChildren(...ctx.groups().map((g) => el("option", { value: g.id }, `${g.name} (${g.poles.length} poles)`)));
  if (gcur) gsel.value = gcur;
  targetShown();
}

async function start(ctx) {
  const msg = $("#cp-msg");
  say(msg, "");
  try {
    let group = Number($("#cp-group").value);
    if ($("#cp-to-poles").checked) {
      const poles = $("#cp-poles").value.split(/[\s,]+/).filter(Boolean);
      const stamp = new Date().toISOString().slice(0, 19).replace("T", " ");
      const g = await post("/api/groups", { name: `rollout ${stamp}`, poles });
      await ctx.reloadGroups();
      group = g.id;
    }
    const c = await post("/api/campaigns", {
      package_id: Number($("#cp-package").value),
      group_id: group,
      nodes_per_minute: Number($("#cp-batch").value),
      failure_threshold: Number($("#cp-threshold").value) / 100,
      timeout_s: Math.round(Number($("#cp-timeout").value) * 60),
    });
    const n = Object.values(c.nodes).reduce((a, b) => a + b, 0);
    await ctx.rerender();
    say(msg, `Campaign #${c.id} started for ${n} node(s).`, "ok");
    ctx.announce(msg.textContent);
  } catch (e) {
    say(msg, `Not started: ${e.message}`, "error");
  }
}

/** Halt (or resume) a campaign from the list, after a confirmation. */
export async function campaignAction(c, what, ctx) {
  const text = what === "halt" ? `Halt campaign #${c.id}? Nodes already updating finish; no more start.` : `Resume campaign #${c.id}?`;
  if (!window.confirm(text)) return;
  const msg = $("#campaign-msg");
  try {
    const got = await post(`/api/campaigns/${c.id}/${what}`);
    say(msg, `Campaign #${c.id}: ${got.state}.`, "ok");
    ctx.announce(msg.textContent);
  } catch (e) {
    say(msg, `Could not ${what}: ${e.message}`, "error");
  }
  await ctx.rerender();
}
