"""The run report: per pole and in total, energy against an always-on baseline, presence,
neighbour wakes, and how often someone walked past a pole whose light was below the presence
level while the sun was down ("walked in the dark")."""

from __future__ import annotations

from typing import Any

from simulator.street import Street


def _pct(used: float, base: float) -> str:
    return f"{100 * (1 - used / base):5.1f}%" if base > 0 else "    - "


def text(street: Street, per_pole: int = 50) -> str:
    t = street.totals()
    lines = [
        f"Streetpole simulation: {t['poles']} poles, {t['sim_s'] / 3600:.2f} simulated hours "
        f"in {t['real_s']:.0f} s, {t['trips']} trips",
        "",
        f"{'pole':<12} {'Wh used':>9} {'Wh always-on':>12} {'saved':>6} {'presence':>8} "
        f"{'nb wake':>7} {'passes':>6} {'dark':>5} {'in dark':>7}  faults",
    ]
    for vp in street.poles[:per_pole]:
        s = vp.stats
        lines.append(
            f"{vp.pole.id:<12} {s.energy_wh:9.1f} {s.baseline_wh:12.1f} "
            f"{_pct(s.energy_wh, s.baseline_wh):>6} {s.presence_events:8d} {s.neighbour_wakes:7d} "
            f"{s.passes:6d} {s.reaches_dark:5d} {s.walked_in_dark:7d}  {', '.join(s.faults)}"
        )
    if len(street.poles) > per_pole:
        lines.append(f"... and {len(street.poles) - per_pole} more poles")
    sl = t["service_level"]
    lines += [
        "",
        f"energy       {t['energy_wh'] / 1000:.3f} kWh used, {t['baseline_wh'] / 1000:.3f} kWh "
        f"always-on, saving {t['saving_pct'] if t['saving_pct'] is not None else '-'}%",
        f"presence     {t['presence_events']} events, {t['neighbour_wakes']} neighbour wakes, "
        f"{t['passes']} passes",
        f"in the dark  {t['walked_in_dark']} of {t['reaches_dark']} passes after dark found the "
        f"light below the presence level (service level "
        f"{'-' if sl is None else f'{100 * sl:.1f}%'})",
        f"messages     {t['batches']} batches, {t['buffered']} still buffered, {t['dropped']} "
        f"dropped, {t['lost']} lost; {t['connects']} connects",
        f"faults       {t['faults']} changes; tick lag p99 {t['tick_lag_p99_ms']} ms",
    ]
    return "\n".join(lines)


def data(street: Street) -> dict[str, Any]:
    return {
        "totals": street.totals(),
        "poles": {vp.pole.id: {k: v for k, v in vars(vp.stats).items()} for vp in street.poles},
        "faults": street.fault_log,
    }
