"""`make bench-sim`: how many virtual poles one process runs in real time.

Each pole is the firmware's Node on a simulated board with its own MQTT connection to a local
mosquitto, reporting every 10 s (set as a config would; no controller runs, so nodes are
anonymous and keep the fail-safe program), with the control loop at its configured rate (every
100 ms, driven by the street's shared ticker) and the world moving people past them. A run
counts if the lag of control ticks (how late each round of control steps ran against its due
time) stays under one second at p99 after a warm-up. Street sizes grow until one fails.
Last line: sim_poles=<largest size that kept up> tick_lag_p99_ms=<its p99>.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing as mp
import resource
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from controller.broker import Broker, BrokerConfig, free_port

LIMIT_MS = 1000.0


def run_street(url: str, n: int, warmup: float, seconds: float, out: Any) -> None:
    from simulator.layout import grid
    from simulator.street import Street, connect_spread_s
    from simulator.world import World

    # the measurement starts once the whole street has had its first connection (the street
    # spreads them, as poles powered on at different moments) and 10 s more have passed
    warmup = max(warmup, connect_spread_s(n) + 10)

    lay = grid(n, prefix="B-")
    street = Street(
        lay,
        World(lay, start=time.time(), traffic=1.0),
        url,
        speed=1.0,
        sensors=("pir", "pm", "climate"),
        report_period_s=10,
    )

    async def main() -> dict[str, Any]:
        run = asyncio.create_task(street.run(warmup + seconds))
        await asyncio.sleep(warmup)
        mark = len(street.lag_ms)
        cpu0 = resource.getrusage(resource.RUSAGE_SELF)
        t0 = time.monotonic()
        await run
        cpu1 = resource.getrusage(resource.RUSAGE_SELF)
        wall = time.monotonic() - t0
        lag = sorted(street.lag_ms[mark:])
        t = street.totals()
        cpu = (cpu1.ru_utime - cpu0.ru_utime + cpu1.ru_stime - cpu0.ru_stime) / wall
        return {
            "poles": n,
            "p99": lag[int(len(lag) * 0.99)] if lag else float("inf"),
            "cpu_pct": round(100 * cpu),
            "batches": t["batches"],
            "buffered": t["buffered"],
            "connects": t["connects"],
        }

    out.put(asyncio.run(main()))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="200,500,1000,1500,2000,3000,4000,5000,6000,7500,10000")
    ap.add_argument("--warmup", type=float, default=20.0, help="seconds before measuring")
    ap.add_argument("--seconds", type=float, default=30.0, help="seconds measured per size")
    a = ap.parse_args(argv)
    ctx = mp.get_context("spawn")
    best: dict[str, Any] | None = None
    with tempfile.TemporaryDirectory() as d:
        broker = Broker(Path(d), BrokerConfig(port=free_port()))
        broker.start()
        try:
            for n in (int(x) for x in a.sizes.split(",")):
                q = ctx.Queue()
                p = ctx.Process(target=run_street, args=(broker.url, n, a.warmup, a.seconds, q))
                p.start()
                r = q.get(timeout=a.warmup + a.seconds + 360)
                p.join(60)
                ok = r["p99"] < LIMIT_MS and r["connects"] >= n
                print(
                    f"{n:6d} poles: tick lag p99 {r['p99']:8.1f} ms, CPU {r['cpu_pct']:3d}%, "
                    f"{r['batches']} batches, {r['buffered']} buffered, {r['connects']} connects"
                    f" {'ok' if ok else 'too slow'}",
                    flush=True,
                )
                if not ok:
                    break
                best = r
        finally:
            broker.stop()
    if best is None:
        print("sim_poles=0 tick_lag_p99_ms=-1")
        return 1
    print(f"sim_poles={best['poles']} tick_lag_p99_ms={round(best['p99'])}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
