"""Provisioning many nodes one after another through the API, into a street of --existing nodes.

`.venv/bin/python -m tests.bench.bench_provision [--existing 10000] [--nodes 500]`

The controller in-process (TestClient), a real mosquitto with accounts, and --existing nodes
already in the registry (inserted directly, all with one password hash). Times --nodes
``POST /api/nodes`` one after another (as the simulator does) or --concurrency at once, counts
the broker's reloads (its log), and how long until the last new node's credentials work on the
broker (each request returns once they do: controller/mqtt_sync.py).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from controller.broker import RELOAD_LOG_LINE, Broker
from tests.bench.bench_mqtt_auth_reload import connect_raw
from tests.harness.api import kept_accounts, prefill_nodes, running_api


def run(existing: int, nodes: int, concurrency: int = 1) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp)
        kept = kept_accounts(d)
        broker = Broker(d / "broker", kept.config)
        broker.start()
        url = f"sqlite:///{d / 'registry.db'}"
        prefill_nodes(url, existing)
        try:
            with running_api(
                d / "ctl",
                database_url=url,
                ingest_enabled=False,
                dispatch_enabled=False,
                **kept.settings(broker.url),
            ) as api:
                owner = api.ok("admin", "GET", "/api/owners")[0]["id"]
                for i in range(nodes):
                    api.ok(
                        "admin",
                        "POST",
                        "/api/poles",
                        json={"id": f"N{i:06d}", "lat": 51.9, "lon": 4.48, "owner_id": owner},
                    )
                reloads_before = broker.log().count(RELOAD_LOG_LINE)
                t0 = time.perf_counter()

                def one(i: int) -> Any:
                    return api.ok("admin", "POST", "/api/nodes", json={"pole": f"N{i:06d}"})

                with ThreadPoolExecutor(concurrency) as pool:
                    cred = list(pool.map(one, range(nodes)))[-1]
                api_s = time.perf_counter() - t0
                while True:
                    try:
                        connect_raw(
                            broker.port, cred["mqtt_username"], cred["mqtt_password"]
                        ).close()
                        break
                    except RuntimeError:
                        time.sleep(0.01)
                usable_s = time.perf_counter() - t0
                reloads = broker.log().count(RELOAD_LOG_LINE) - reloads_before
        finally:
            broker.stop()
        return {"api_s": api_s, "usable_s": usable_s, "reloads": reloads}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--existing", type=int, nargs="+", default=[10_000])
    parser.add_argument("--nodes", type=int, default=500)
    parser.add_argument("--concurrency", type=int, default=1, help="requests at once")
    args = parser.parse_args()
    for existing in args.existing:
        r = run(existing, args.nodes, args.concurrency)
        print(
            f"existing={existing} provisioned={args.nodes} concurrency={args.concurrency} "
            f"api_s={r['api_s']:.1f} "
            f"per_node_ms={1000 * r['api_s'] / args.nodes:.1f} last_usable_s={r['usable_s']:.1f} "
            f"reloads={r['reloads']}",
            flush=True,
        )


if __name__ == "__main__":
    main()
