// Time charts with uPlot (loaded as a classic script from /ui/vendor: global uPlot).
import { el, fmtNum } from "./util.js";

const COLOURS = ["#0b5cad", "#a4161a", "#1d6b2f", "#8a5300"];

const pad2 = (n) => String(n).padStart(2, "0");

/** Tick labels in the pages' one date format: 24 h "14:00", the date ("2026-12-04") under the
 * first tick and under each midnight, or only the date for ticks a day or more apart. */
export function isoTicks(u, splits, axisIdx, space, incr) {
  return splits.map((ts, i) => {
    const d = new Date(ts * 1000);
    const day = `${d.getFullYear()}-${pad2(d.getMonth() + 1)}-${pad2(d.getDate())}`;
    if (incr >= 86400) return day;
    const hm = `${pad2(d.getHours())}:${pad2(d.getMinutes())}`;
    return i === 0 || (d.getHours() === 0 && d.getMinutes() === 0) ? `${hm}\n${day}` : hm;
  });
}

/**
 * A chart in `box` for series [{label, points: [[ts, v], ...]}]; returns the uPlot or null.
 * A text summary goes with it (screen readers and people who prefer numbers).
 */
// heading: the chart title's level under the page's headings (h4 under an h3, h3 under an h2);
// ticks: x tick labels (uPlot axis `values`); live: false for a legend of names only (no
// "Time: --" cursor readout); yRange: a fixed y range
export function timeChart(box, title, unit, series, { scale = 1, bars = false, range = null, yRange = null, ticks = null, live = true, words = null, heading = "h4" } = {}) {
  box.replaceChildren();
  const head = el(heading, {}, unit ? `${title} (${unit})` : title);
  box.append(head);
  const withData = series.filter((s) => s.points.length);
  if (!withData.length) {
    box.append(el("p", { class: "muted" }, "No readings in this range."));
    return null;
  }
  const xs = [...new Set(withData.flatMap((s) => s.points.map((p) => p[0])))].sort((a, b) => a - b);
  const index = new Map(xs.map((x, i) => [x, i]));
  const data = [xs];
  for (const s of withData) {
    const ys = new Array(xs.length).fill(null);
    for (const [t, v] of s.points) ys[index.get(t)] = v * scale;
    data.push(ys);
  }
  // words: the portal's texts in its reader's language ({time, summary, image, fmtDate})
  const summary = withData
    .map((s) => {
      const vs = s.points.map((p) => p[1] * scale);
      if (words) return words.summary(s.label, vs);
      const last = vs[vs.length - 1];
      return `${s.label}: ${vs.length} points, last ${fmtNum(last)} ${unit}, min ${fmtNum(Math.min(...vs))}, max ${fmtNum(Math.max(...vs))}`;
    })
    .join("; ");
  const image = words ? words.image(title, summary) : `${title} chart. ${summary}`;
  const plotBox = el("div", { role: "img", "aria-label": image });
  box.append(plotBox, el("p", { class: "muted visually-hidden" }, summary));
  const width = Math.max(260, box.clientWidth - 20);
  const opts = {
    width,
    height: 200,
    legend: { show: true, live },
    cursor: { drag: { x: true, y: false } },
    // bars (counts, energy) stand on zero; a fixed range (light 0-100%) where one is given
    scales: {
      x: range ? { time: true, range: () => range } : { time: true },
      ...(yRange ? { y: { range: () => yRange } } : bars ? { y: { range: (u, min, max) => [0, max > 0 ? max * 1.1 : 1] } } : {}),
    },
    axes: [{ stroke: "#1b1f24", ...(ticks ? { values: ticks } : {}) }, { stroke: "#1b1f24", label: unit, size: 55 }],
    series: [
      words ? { label: words.time } : {},
      ...withData.map((s, i) => ({
        label: s.label,
        stroke: COLOURS[i % COLOURS.length],
        width: 2,
        fill: bars ? `${COLOURS[i % COLOURS.length]}33` : undefined,
        paths: bars && uPlot.paths.bars ? uPlot.paths.bars({ size: [0.8, 40] }) : undefined,
        points: { show: s.points.length < 60 },
        spanGaps: false,
      })),
    ],
  };
  if (words?.fmtDate) opts.fmtDate = words.fmtDate;
  // eslint-disable-next-line no-undef
  return new uPlot(opts, data, plotBox);
}
