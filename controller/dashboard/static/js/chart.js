// Time charts with uPlot (loaded as a classic script from /ui/vendor: global uPlot).
import { el, fmtNum } from "./util.js";

const COLOURS = ["#0b5cad", "#a4161a", "#1d6b2f", "#8a5300"];

/**
 * A chart in `box` for series [{label, points: [[ts, v], ...]}]; returns the uPlot or null.
 * A text summary goes with it (screen readers and people who prefer numbers).
 */
// heading: the chart title's level under the page's headings (h4 under an h3, h3 under an h2)
export function timeChart(box, title, unit, series, { scale = 1, bars = false, range = null, heading = "h4" } = {}) {
  box.replaceChildren();
  const head = el(heading, {}, `${title} (${unit})`);
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
  const summary = withData
    .map((s) => {
      const vs = s.points.map((p) => p[1] * scale);
      const last = vs[vs.length - 1];
      return `${s.label}: ${vs.length} points, last ${fmtNum(last)} ${unit}, min ${fmtNum(Math.min(...vs))}, max ${fmtNum(Math.max(...vs))}`;
    })
    .join("; ");
  const plotBox = el("div", { role: "img", "aria-label": `${title} chart. ${summary}` });
  box.append(plotBox, el("p", { class: "muted visually-hidden" }, summary));
  const width = Math.max(260, box.clientWidth - 20);
  const opts = {
    width,
    height: 200,
    legend: { show: true },
    cursor: { drag: { x: true, y: false } },
    scales: { x: range ? { time: true, range: () => range } : { time: true } },
    axes: [{ stroke: "#1b1f24" }, { stroke: "#1b1f24", label: unit, size: 55 }],
    series: [
      {},
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
  // eslint-disable-next-line no-undef
  return new uPlot(opts, data, plotBox);
}
