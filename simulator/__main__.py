"""``python -m simulator``: provision a street through the operator API and run it.

    STREETPOLE_TOKEN=T python -m simulator --poles 50 --broker mqtt://127.0.0.1:1883 \\
        --api http://127.0.0.1:8000 --speed 60 --seed 1 --scenario simulator/scenarios/night.json

The API token comes from the environment (``STREETPOLE_TOKEN``) or a file (``--token-file``),
never from the command line, where every user of the machine can read it (``ps``).

Without ``--api`` nothing is provisioned: the nodes connect without credentials (an anonymous
broker) and, having no config, run fail-safe at full light; useful for load figures only.
On an ``mqtts://`` broker the poles trust only the CA that provisioning hands out (or ``--ca``).
Ctrl-C (or ``--duration``/the scenario's ``duration_s`` in simulated seconds) ends the run and
prints the report.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import sys
import time
from pathlib import Path

import httpx

from simulator import layout as layouts
from simulator import report
from simulator.provision import profile_body, provision
from simulator.scenario import Scenario, ScenarioError
from simulator.scenario import load as load_scenario
from simulator.street import SENSORS, Street
from simulator.world import World


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(
        prog="python -m simulator", description=__doc__.split("\n")[0], allow_abbrev=False
    )
    ap.add_argument(
        "--poles", type=int, default=None, help="how many poles (default: 10, or all of a GeoJSON)"
    )
    ap.add_argument("--broker", default="mqtt://127.0.0.1:1883")
    ap.add_argument(
        "--ca",
        type=Path,
        default=None,
        help="PEM file of the CA the poles trust on an mqtts:// broker (default: provisioning's)",
    )
    ap.add_argument("--api", default=None, help="controller base URL, to provision the street")
    ap.add_argument(
        "--token-file",
        type=Path,
        default=None,
        help="file holding the operator API token (default: $STREETPOLE_TOKEN)",
    )
    ap.add_argument("--speed", type=float, default=1.0, help="simulated seconds per real second")
    ap.add_argument(
        "--seed", type=int, default=None, help="world and faults seed (default: scenario's, else 1)"
    )
    ap.add_argument(
        "--scenario", type=Path, default=None, help="a scenario file (.json, or .yaml with PyYAML)"
    )
    ap.add_argument("--layout", default="grid", help="grid, or a GeoJSON file of streets")
    ap.add_argument("--prefix", default="SIM-", help="pole id prefix for generated poles")
    ap.add_argument(
        "--sensors", default=",".join(SENSORS), help="sensors per node (pir,pm,climate)"
    )
    ap.add_argument("--duration", type=float, default=None, help="simulated seconds to run")
    ap.add_argument("--traffic", type=float, default=None, help="multiply the number of trips")
    ap.add_argument("--json", type=Path, default=None, help="also write the report as JSON here")
    ap.add_argument(
        "--html", type=Path, default=None, help="also write the report with its chart (HTML)"
    )
    ap.add_argument(
        "--micropython",
        type=int,
        default=0,
        metavar="N",
        help="run the last N poles as real MicroPython processes (96 KiB heap each)",
    )
    ap.add_argument(
        "--flash-dir",
        type=Path,
        default=None,
        help="give each node a flash directory here (buffer, config, firmware updates)",
    )
    return ap.parse_args(argv)


def api_token(token_file: Path | None) -> str:
    """The operator API token: from the file when given, else $STREETPOLE_TOKEN ("" if none)."""
    if token_file is not None:
        return token_file.read_text().strip()
    return os.environ.get("STREETPOLE_TOKEN", "").strip()


def main(argv: list[str] | None = None) -> int:
    a = parse(argv)

    def log(msg: str) -> None:
        print(f"[sim] {msg}", file=sys.stderr, flush=True)

    try:
        sc = load_scenario(a.scenario) if a.scenario else Scenario()
        lay = layouts.load(a.layout, a.poles if a.poles or a.layout != "grid" else 10, a.prefix)
        faults = sc.resolve([p.id for p in lay.poles])
    except (OSError, ValueError, ScenarioError) as e:
        print(f"simulator: {e}", file=sys.stderr)
        return 2
    seed = a.seed if a.seed is not None else sc.seed
    start = sc.start if sc.start is not None else time.time()
    traffic = a.traffic if a.traffic is not None else sc.traffic
    body = profile_body(sc.profile)
    try:
        ca = a.ca.read_text() if a.ca is not None else None
    except OSError as e:
        print(f"simulator: --ca: {e}", file=sys.stderr)
        return 2
    creds = None
    if a.api:
        try:
            token = api_token(a.token_file)
        except OSError as e:
            print(f"simulator: --token-file: {e}", file=sys.stderr)
            return 2
        if not token:
            print("simulator: --api needs STREETPOLE_TOKEN or --token-file", file=sys.stderr)
            return 2
        log(f"provisioning {len(lay.poles)} poles at {a.api}")
        with httpx.Client(base_url=a.api, timeout=30) as http:
            creds = provision(http, token, lay, sc.profile, log=log)
    world = World(lay, seed=seed, start=start, traffic=traffic)
    street = Street(
        lay,
        world,
        a.broker,
        creds,
        speed=a.speed,
        faults=faults,
        sensors=tuple(s for s in a.sensors.split(",") if s),
        presence_level=float(body.get("presence", {}).get("level", 1.0)),
        log=log,
        flash_dir=a.flash_dir,
        service_level=sc.service_level,
        service_target=sc.service_target,
        micropython=a.micropython,
        ca=ca,
    )
    duration = a.duration if a.duration is not None else sc.duration_s

    async def run() -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, street.stop)
        log(f"{len(lay.poles)} poles running at {a.speed:g}x on {a.broker}; Ctrl-C for the report")
        await street.run(duration)

    asyncio.run(run())
    print(report.text(street), flush=True)
    if a.json:
        a.json.write_text(json.dumps(report.data(street), indent=1, default=str))
    if a.html:
        a.html.write_text(report.html(street))
        log(f"report with chart: {a.html}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
