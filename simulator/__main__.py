"""``python -m simulator``: provision a street through the operator API and run it.

    STREETPOLE_TOKEN=T python -m simulator --poles 50 --broker mqtt://127.0.0.1:1883 \\
        --api http://127.0.0.1:8000 --speed 60 --seed 1 --scenario simulator/scenarios/night.json

The API token comes from the environment (``STREETPOLE_TOKEN``) or a file (``--token-file``),
never from the command line, where every user of the machine can read it (``ps``).

Without ``--api`` nothing is provisioned: the nodes connect without credentials (an anonymous
broker) and, having no config, run fail-safe at full light; useful for load figures only.
On an ``mqtts://`` broker the poles trust only the CA that provisioning hands out (or ``--ca``).
Ctrl-C (or ``--duration``/the scenario's ``duration_s`` in simulated seconds) ends the run and
prints the report. A street none of whose nodes has connected by ``--connect-timeout`` real
seconds ends with exit code 1 and says so: a report of nothing would read as a success.
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
from simulator.provision import ApiError, profile_body, provision
from simulator.scenario import Scenario, ScenarioError
from simulator.scenario import load as load_scenario
from simulator.street import SENSORS, Street, connect_spread_s
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
        "--origin",
        type=_latlon,
        default=layouts.ORIGIN,
        metavar="LAT,LON",
        help="where the generated grid street starts (default: %(default)s)",
    )
    ap.add_argument(
        "--sensors", default=",".join(SENSORS), help="sensors per node (pir,pm,climate)"
    )
    ap.add_argument("--duration", type=float, default=None, help="simulated seconds to run")
    ap.add_argument(
        "--connect-timeout",
        type=float,
        default=30.0,
        metavar="S",
        help="real seconds (after the street's connection spread) for a first node to connect, "
        "else exit 1 (default: %(default)s)",
    )
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


def _latlon(text: str) -> tuple[float, float]:
    try:
        lat, lon = (float(v) for v in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError("LAT,LON in degrees, e.g. 51.895,4.470") from None
    return lat, lon


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
        n = a.poles if a.poles or a.layout != "grid" else 10
        lay = layouts.load(a.layout, n, a.prefix, a.origin)
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
        if not token.isascii() or not token.isprintable():
            print(
                "simulator: the API token is not a token (spt_...); make one with "
                "`.venv/bin/streetpole create-token admin`",
                file=sys.stderr,
            )
            return 2
        log(f"provisioning {len(lay.poles)} poles at {a.api}")
        try:
            with httpx.Client(base_url=a.api, timeout=30) as http:
                creds = provision(http, token, lay, sc.profile, log=log)
        except httpx.HTTPError as e:
            print(
                f"simulator: no controller at {a.api} ({e}); is `make run` running, "
                "and on that PORT?",
                file=sys.stderr,
            )
            return 1
        except ApiError as e:
            print(f"simulator: provisioning refused: {e}", file=sys.stderr)
            return 1
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
    # real seconds until a first connection is overdue: the street spreads its first connects
    deadline = connect_spread_s(len(lay.poles)) + a.connect_timeout

    async def nobody_connected() -> bool:
        """True (and the street stopped) when none of the in-process nodes connected by the
        deadline (MicroPython poles, in processes of their own, report no connects)."""
        await asyncio.sleep(deadline)
        if not street.poles or street.totals()["connects"]:
            return False
        street.stop()
        return True

    async def run() -> bool:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, street.stop)
        log(f"{len(lay.poles)} poles running at {a.speed:g}x on {a.broker}; Ctrl-C for the report")
        watch = asyncio.create_task(nobody_connected())
        await street.run(duration)
        if not watch.done():
            watch.cancel()
            return False
        return watch.result()

    if asyncio.run(run()):
        print(
            f"simulator: no node connected to {a.broker} within {deadline:.0f} s; is the broker "
            "running (`make run`), on that port (MQTT_PORT, MQTTS_PORT), and do the nodes' "
            "credentials match it (provisioned by this controller)?",
            file=sys.stderr,
        )
        return 1
    print(report.text(street), flush=True)
    for out in (a.json, a.html):
        if out is not None:
            out.parent.mkdir(parents=True, exist_ok=True)
    if a.json:
        a.json.write_text(json.dumps(report.data(street), indent=1, default=str))
    if a.html:
        a.html.write_text(report.html(street))
        log(f"report with chart: {a.html}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
