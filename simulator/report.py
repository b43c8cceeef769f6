"""The run report: per pole and in total, messages (sent, buffered, dropped), energy against an
always-on baseline, presence events and neighbour wakes, and the service level: the share of
pedestrians and cyclists who, passing a pole after dark, found its light at the target level,
and the longest anyone waited for it. ``text`` for the terminal, ``data`` as JSON, ``html`` a
self-contained page (inline SVG chart of light level and presence over the run, no scripts or
CDN) for people who would rather look than read."""

from __future__ import annotations

import datetime as dt
import html as _html
from typing import Any

from simulator.street import Street


def _pct(used: float, base: float) -> str:
    # rounded first, + 0.0: a saving of -0.0001 % reads "0.0%", not "-0.0%"
    return f"{round(100 * (1 - used / base), 1) + 0.0:5.1f}%" if base > 0 else "    - "


def _saving(t: dict[str, Any]) -> str:
    return "-" if t["saving_pct"] is None else f"{round(t['saving_pct'], 1) + 0.0:g}"


def _sl(t: dict[str, Any]) -> str:
    sl = t["service_level"]
    if sl is None:
        return "- (no one passed a pole after dark)"
    ok = "met" if t["service_ok"] else "NOT met"
    return f"{100 * sl:.1f}% (target {100 * t['service_target']:.0f}%: {ok})"


def text(street: Street, per_pole: int = 50) -> str:
    """The terminal report: the first ``per_pole`` poles' lines, then the totals."""
    t = street.totals()
    lines = [
        f"Streetpole simulation: {t['poles']} poles, {t['sim_s'] / 3600:.2f} simulated hours "
        f"in {t['real_s']:.0f} s ({t['speed']}x), {t['trips']} trips",
        "",
        f"{'pole':<12} {'kWh used':>9} {'always-on':>9} {'saved':>6} {'sent':>5} {'resent':>6} "
        f"{'buf':>4} {'presence':>8} {'nb wake':>7} {'dark':>5} {'in dark':>7} {'wait s':>6}"
        "  faults",
    ]
    for vp in street.poles[:per_pole]:
        s = vp.stats
        buffered = len(vp.node.buffer)
        sent = s.batches - buffered
        lines.append(
            f"{vp.pole.id:<12} {s.energy_wh / 1000:9.3f} {s.baseline_wh / 1000:9.3f} "
            f"{_pct(s.energy_wh, s.baseline_wh):>6} {sent:5d} {max(0, s.meas_publishes - sent):6d} "
            f"{buffered:4d} {s.presence_events:8d} {s.neighbour_wakes:7d} {s.reaches_dark:5d} "
            f"{s.walked_in_dark:7d} {s.worst_wait_s:6.1f}  {', '.join(s.faults)}"
        )
    if len(street.poles) > per_pole:
        lines.append(f"... and {len(street.poles) - per_pole} more poles (all in --json/--html)")
    return "\n".join([*lines, "", *summary(t)])


def summary(t: dict[str, Any]) -> list[str]:
    """The totals, one topic a line (``street.totals()``)."""
    lines = [
        f"energy       {t['energy_wh'] / 1000:.3f} kWh used, {t['baseline_wh'] / 1000:.3f} kWh "
        f"always-on, saving {_saving(t)}%",
        f"presence     {t['presence_events']} events, {t['neighbour_wakes']} neighbour wakes, "
        f"{t['passes']} passes",
        f"service      {t['reaches_dark'] - t['walked_in_dark']} of {t['reaches_dark']} "
        f"pedestrians and cyclists after dark found their pole at level >= "
        f"{t['target_level']:g}: service level {_sl(t)}; worst wait {t['worst_wait_s']} s",
        f"messages     {t['batches']} batches made, {t['batches'] - t['buffered']} sent "
        f"({t['meas_publishes']} publishes, {t['acks_lost']} PUBACKs lost), "
        f"{t['buffered']} still buffered, {t['dropped']} dropped, {t['power_lost']} lost "
        f"in power cuts; {t['lost']} events/commands lost; {t['connects']} connects",
        f"nodes        {t['boots']} boots, {t['crashes']} crashed boots; {t['faults']} fault "
        f"changes; tick lag p99 {t['tick_lag_p99_ms']} ms",
    ]
    for mp in t["micropython_poles"]:  # not in the figures above: their own process, own report
        heap = f"{mp['heap_peak'] / 1024:.1f} KiB" if mp["heap_peak"] is not None else "-"
        lines.append(
            f"micropython  {mp['pole']}: {'running' if mp['booted'] else 'did not boot'}, "
            f"heap peak {heap}, batch seq {mp['batches']}"
            + (f", errors: {'; '.join(mp['errors'])}" if mp["errors"] else "")
        )
    return lines


def data(street: Street) -> dict[str, Any]:
    return {
        "totals": street.totals(),
        "poles": {vp.pole.id: dict(vars(vp.stats)) for vp in street.poles},
        "faults": street.fault_log,
        "samples": [vars(s) for s in street.samples],
    }


def _clock(t: float, seconds: bool = False) -> str:
    return dt.datetime.fromtimestamp(t, dt.UTC).strftime("%H:%M:%S" if seconds else "%H:%M")


def chart(street: Street, width: int = 900, height: int = 260) -> str:
    """Inline SVG: mean light level (line, left axis 0..1), presence events per sample (bars,
    right axis), dark periods shaded."""
    s = street.samples
    if len(s) < 2:
        return "<p>(run too short for a chart)</p>"
    left, right, top, bottom = 64, 64, 12, 46
    w, h = width - left - right, height - top - bottom
    t0, t1 = s[0].t, s[-1].t
    span = max(t1 - t0, 1.0)
    pmax = max(max(x.presence for x in s), 1)

    def x(t: float) -> float:
        return left + (t - t0) / span * w

    def y(v: float) -> float:
        return top + (1 - v) * h

    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" role="img" aria-label="light level and presence" '
        'style="max-width: 100%; height: auto">',
        f'<rect x="{left}" y="{top}" width="{w}" height="{h}" fill="#fafafa" stroke="#ccc"/>',
    ]
    bw = max(w / len(s) - 1, 1)
    for a in s:
        if a.dark:
            parts.append(
                f'<rect x="{x(a.t) - bw:.1f}" y="{top}" width="{bw + 1:.1f}" height="{h}" '
                'fill="#e6e9f2"/>'
            )
    for a in s:
        if a.presence:
            bh = a.presence / pmax * h * 0.9
            parts.append(
                f'<rect x="{x(a.t) - bw:.1f}" y="{top + h - bh:.1f}" width="{bw:.1f}" '
                f'height="{bh:.1f}" fill="#f0a030" opacity="0.7"/>'
            )
    pts = " ".join(f"{x(a.t):.1f},{y(a.level):.1f}" for a in s)
    low = " ".join(f"{x(a.t):.1f},{y(a.level_min):.1f}" for a in s)
    parts.append(f'<polyline points="{low}" fill="none" stroke="#8aa" stroke-dasharray="3 3"/>')
    parts.append(f'<polyline points="{pts}" fill="none" stroke="#1d4f91" stroke-width="2"/>')
    for v in (0, 0.25, 0.5, 0.75, 1.0):
        parts.append(
            f'<text x="{left - 6}" y="{y(v) + 4:.1f}" font-size="11" text-anchor="end">{v:g}</text>'
        )
    for v, label in ((0.0, "0"), (0.9, f"{pmax}")):  # presence bars reach 0.9 h at pmax
        ty = top + (1 - v) * h + 4
        parts.append(f'<text x="{left + w + 6}" y="{ty:.1f}" font-size="11">{label}</text>')
    mid = top + h / 2
    parts += [  # axis titles
        f'<text x="16" y="{mid:.1f}" font-size="12" text-anchor="middle" '
        f'transform="rotate(-90 16 {mid:.1f})">mean light level (0 off, 1 full)</text>',
        f'<text x="{width - 12}" y="{mid:.1f}" font-size="12" text-anchor="middle" '
        f'transform="rotate(90 {width - 12} {mid:.1f})">presence events per sample</text>',
        f'<text x="{left + w / 2:.1f}" y="{height - 4}" font-size="12" text-anchor="middle">'
        "simulated time (UTC)</text>",
    ]
    ticks = 8
    seconds = span / ticks < 60  # a short run: minutes alone would repeat
    for i in range(ticks + 1):
        t = t0 + span * i / ticks
        parts.append(
            f'<text x="{x(t):.1f}" y="{top + h + 16}" font-size="11" text-anchor="middle">'
            f"{_clock(t, seconds)}</text>"
        )
    parts.append("</svg>")
    return "\n".join(parts)


def html(street: Street) -> str:
    t = street.totals()
    esc = _html.escape
    rows = []
    for vp in street.poles:
        s = vp.stats
        rows.append(
            "<tr>"
            + "".join(
                f"<td>{esc(str(c))}</td>"
                for c in (
                    vp.pole.id,
                    f"{s.energy_wh / 1000:.3f}",
                    f"{s.baseline_wh / 1000:.3f}",
                    _pct(s.energy_wh, s.baseline_wh).strip(),
                    s.batches - len(vp.node.buffer),
                    len(vp.node.buffer),
                    s.presence_events,
                    s.neighbour_wakes,
                    s.reaches_dark,
                    s.walked_in_dark,
                    f"{s.worst_wait_s:.1f}",
                    ", ".join(s.faults),
                )
            )
            + "</tr>"
        )
    head = (
        "pole",
        "kWh used",
        "kWh always-on",
        "saved",
        "batches sent",
        "buffered",
        "presence",
        "neighbour wakes",
        "passes after dark",
        "found it dim",
        "worst wait s",
        "faults",
    )
    totals = esc("\n".join(summary(t)))
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Streetpole simulation report</title>
<style>
body {{ font: 14px system-ui, sans-serif; margin: 24px; color: #222; }}
pre {{ background: #f4f4f4; padding: 12px; white-space: pre-wrap; }}
table {{ border-collapse: collapse; font-size: 12px; }}
td, th {{ border: 1px solid #ddd; padding: 2px 6px; text-align: right; }}
td:first-child, td:last-child {{ text-align: left; }}
.wide {{ overflow-x: auto; }}
.key span {{ display: inline-block; width: 12px; height: 12px; margin: 0 4px 0 12px; }}
</style></head><body>
<h1>Streetpole simulation</h1>
<p>{t["poles"]} poles, {t["sim_s"] / 3600:.2f} simulated hours; energy saving
<b>{_saving(t)}%</b> against always-on; service level <b>{esc(_sl(t))}</b>.</p>
<h2>Light and presence</h2>
<p class="key"><span style="background:#1d4f91"></span>mean light level
<span style="background:#8aa"></span>lowest pole
<span style="background:#f0a030"></span>presence events
<span style="background:#e6e9f2"></span>sun down</p>
{chart(street)}
<h2>Summary</h2>
<pre>{totals}</pre>
<h2>Per pole</h2>
<div class="wide"><table><tr>{"".join(f'<th scope="col">{h}</th>' for h in head)}</tr>
{"".join(rows)}
</table></div>
</body></html>
"""
