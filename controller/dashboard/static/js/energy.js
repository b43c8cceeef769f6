// The Energy view: a group's energy per day against the always-on baseline, for the hours the
// lamps reported (controller/energy.py), with the period the figures cover said in words.
// The chart is drawn here rather than by chart.js's time chart: daily bars need one tick per
// day and room for the first and last bar, which a time axis of readings does not give.
import { get } from "./api.js";
import { labelCells } from "./cards.js";
import { $, el, fmtNum, fmtTime, say, table } from "./util.js";

const DAY = 86400;
const day = (d) => Date.parse(`${d}T00:00:00Z`) / 1000;
const dayLabel = (ts) => new Date(ts * 1000).toLocaleDateString("en-GB", { day: "numeric", month: "short", timeZone: "UTC" });

/** ctx: { groups() } */
export async function renderEnergyForm(ctx) {
  const g = $("#en-group");
  if (!g.options.length) {
    g.append(...ctx.groups().map((x) => el("option", { value: x.id }, x.name)));
    const today = new Date().toISOString().slice(0, 10);
    const week = new Date(Date.now() - 6 * 86400000).toISOString().slice(0, 10);
    $("#en-start").value = week;
    $("#en-end").value = today;
  }
  if (g.value) await renderEnergy();
  else say($("#en-msg"), "No groups yet: make a group of poles under Groups to see its energy.");
}

export async function renderEnergy() {
  const gid = $("#en-group").value;
  say($("#en-msg"), "");
  try {
    const r = await get(`/api/energy/groups/${gid}?start=${$("#en-start").value}&end=${$("#en-end").value}`);
    $("#en-summary").replaceChildren(el("p", {}, `${r.poles} poles: used ${fmtNum(r.energy_wh / 1000, 2)} kWh against ${fmtNum(r.baseline_wh / 1000, 2)} kWh always-on, saving ${fmtNum(r.saving_wh / 1000, 2)} kWh${r.saving_pct === null ? "" : ` (${fmtNum(r.saving_pct)}%)`}.`));
    $("#en-period").textContent = r.covered_from
      ? `These figures cover the ${fmtNum(r.covered_h, 1)} hours the lamps reported for, from ${fmtTime(Date.parse(r.covered_from) / 1000)} to ${fmtTime(Date.parse(r.covered_to) / 1000)}. Hours without reports count neither as use nor as saving.`
      : "No lamp of this group reported energy in these days, so there is nothing to compare.";
    energyChart($("#en-chart"), r.days);
    const head = ["Day", "Used kWh", "Always-on kWh", "Saving kWh", "Saving %", "Hours reported", "Dark hours"];
    $("#en-table").replaceChildren(table(head,
      r.days.map((d) => [d.day, fmtNum(d.energy_wh / 1000, 3), fmtNum(d.baseline_wh / 1000, 3), fmtNum((d.baseline_wh - d.energy_wh) / 1000, 3),
        d.baseline_wh ? fmtNum((100 * (d.baseline_wh - d.energy_wh)) / d.baseline_wh) : "–", fmtNum(d.covered_h, 1), fmtNum(d.dark_h, 1)]), "Energy per day"));
    labelCells($("#en-table"), head);
  } catch (e) {
    say($("#en-msg"), `Could not load: ${e.message}`, "error");
  }
}

function energyChart(box, days) {
  box.replaceChildren(el("h3", {}, "Energy per day (kWh)"));
  if (!days.some((d) => d.energy_wh || d.baseline_wh)) {
    box.append(el("p", { class: "muted" }, "No energy reported in these days."));
    return;
  }
  const xs = days.map((d) => day(d.day) + DAY / 2); // a bar in the middle of its day
  const used = days.map((d) => d.energy_wh / 1000);
  const base = days.map((d) => d.baseline_wh / 1000);
  const summary = days.map((d, i) => `${dayLabel(xs[i])}: used ${fmtNum(used[i], 2)}, always-on ${fmtNum(base[i], 2)}`).join("; ");
  const plot = el("div", { role: "img", "aria-label": `Energy per day, kWh. ${summary}` });
  box.append(plot);
  const every = Math.ceil(days.length / Math.max(1, Math.floor((box.clientWidth - 80) / 60))); // labels that fit
  const bars = (align) => uPlot.paths.bars({ size: [0.4, 48], align }); // eslint-disable-line no-undef
  const opts = {
    width: Math.max(260, box.clientWidth - 20),
    height: 220,
    legend: { show: true, live: false }, // names only: no "Day: --" readout
    cursor: { drag: { x: false, y: false } },
    scales: { x: { time: true, range: () => [xs[0] - DAY / 2, xs[xs.length - 1] + DAY / 2] }, y: { range: (u, lo, hi) => [0, Math.max(hi, 0.001) * 1.1] } },
    axes: [
      { stroke: "#1b1f24", splits: () => xs.filter((_, i) => i % every === 0), values: (u, splits) => splits.map(dayLabel) },
      { stroke: "#1b1f24", label: "kWh", size: 55 },
    ],
    series: [
      { label: "Day", value: (u, v) => (v === null ? "–" : dayLabel(v)) },
      { label: "used", stroke: "#0b5cad", fill: "#0b5cad99", width: 1, paths: bars(-1), points: { show: false } },
      { label: "always-on", stroke: "#8a5300", fill: "#8a530055", width: 1, paths: bars(1), points: { show: false } },
    ],
  };
  // eslint-disable-next-line no-undef
  new uPlot(opts, [xs, used, base], plot);
}
