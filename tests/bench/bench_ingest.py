"""`make bench-ingest`: how fast the controller stores measurement batches, against the broker's
own ceiling on this machine.

Publishers run in separate processes, each with several connections, publishing pre-encoded
realistic batches (ten readings; every node once a minute, from the time the run starts) with
QoS 1. On two cores, Python publishers running at the same time as the controller took more than
a core themselves and became the limit of both figures; so each subscriber first registers its
persistent session and leaves, the publishers put the whole stream into the broker's queue for
it, and then the subscriber comes back and drains it: what is measured is the subscriber alone,
with the broker delivering as fast as it is asked (the controller acknowledges only after each
commit, so its inflight window is real).

The ceiling is the rate at which mosquitto delivers the stream to a subscriber that does nothing
(`mosquitto_sub -q 1`, output discarded). The controller figure is messages durably stored in
SQLite per second (committed, then acknowledged), from its first stored batch to its last.
The controller runs as ``STREETPOLE_INGEST_PROCESSES=2`` (``--ingest-processes``): two ingest
processes on two cores, sharing the stream through a shared subscription and one SQLite file.
Also printed: CPU time a message of the controller (all its processes) and of the broker, which
varies less than the rates when the machine is shared with other work.
Last line: ingest_ratio=... stored_msgs_per_s=... ceiling_msgs_per_s=... points_per_s=...

The default street has 600 nodes (6,000 streams) that already hold two hours of readings, as a
street in operation does (``--history 0`` starts from an empty database). SQLite's cost per message
grows with the number of streams a batch touches once each stream holds a page of history (one
B-tree leaf per stream and commit), so ``--poles`` and ``--history`` (readings per stream written
before the run, one a minute) show the figure for a larger or an older street.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import multiprocessing as mp
import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import paho.mqtt.client as paho

from controller.broker import Broker, BrokerConfig, free_port
from controller.store.base import TimeSeriesStore
from controller.store.sqlite import SqliteStore
from tests.harness import procs
from tests.harness.controller_proc import ControllerProcess
from tests.ingest_helpers import meas, meas_topic, register, write_history

# The street's clock: every node reports once a minute from here on, its history ends here.
# Half a day back, so that a run's reports (300 minutes each with the defaults) stay behind the
# controller's clock, as a real street's do (ingest refuses readings ahead of it).
# (Publishers are forked, so they share it.)
NOW0 = int(time.time()) // 60 * 60 - 12 * 3600


def pole_name(worker: int, connection: int, pole: int) -> str:
    return f"w{worker}c{connection}p{pole}"


def publisher(
    port: int, worker: int, count: int, connections: int, poles: int, start: mp.Event
) -> None:
    per = max(1, poles // connections)  # poles on each of this worker's connections
    msgs = [
        (
            meas_topic(pole_name(worker, i % connections, i // connections % per)),
            meas(i, ts=NOW0 + 60 * (i // (connections * per))),  # each node once a minute
        )
        for i in range(count)
    ]
    clients = []
    for c in range(connections):
        cl = paho.Client(paho.CallbackAPIVersion.VERSION2, client_id=f"bench-{worker}-{c}")
        cl.max_inflight_messages_set(500)
        cl.max_queued_messages_set(0)
        cl.connect("127.0.0.1", port)
        cl.loop_start()
        clients.append(cl)
    start.wait()
    infos = [clients[i % connections].publish(t, p, qos=1) for i, (t, p) in enumerate(msgs)]
    for info in infos:
        info.wait_for_publish(120)
    for cl in clients:
        cl.loop_stop()
        cl.disconnect()


def start_publishers(
    port: int, total: int, procs: int, connections: int, poles: int
) -> tuple[list[mp.Process], float]:
    """Start the publisher processes, let them connect and encode, then fire them together."""
    start = mp.Event()
    workers = [
        mp.Process(
            target=publisher,
            args=(port, w, total // procs, connections, poles // procs, start),
        )
        for w in range(procs)
    ]
    for w in workers:
        w.start()
    time.sleep(1.5)
    t0 = time.perf_counter()
    start.set()
    return workers, t0


def run_publishers(port: int, total: int, procs: int, connections: int, poles: int) -> float:
    workers, t0 = start_publishers(port, total, procs, connections, poles)
    for w in workers:
        w.join()
    return time.perf_counter() - t0


def ceiling(broker: Broker, total: int, procs: int, connections: int, poles: int) -> float:
    sub = [
        "mosquitto_sub", "-h", broker.host, "-p", str(broker.port), "-q", "1", "-c",
        "-i", "bench-ceiling", "-t", "streetpole/v1/+/+/meas",
    ]  # fmt: skip
    subprocess.run([*sub, "-W", "1"], capture_output=True, check=False)  # only the session
    run_publishers(broker.port, total, procs, connections, poles)
    t0 = time.perf_counter()
    subprocess.run([*sub, "-C", str(total)], stdout=subprocess.DEVNULL, timeout=300, check=True)
    return total / (time.perf_counter() - t0)


def stored_batches(db: Path) -> int:
    if not db.exists():
        return 0
    conn = sqlite3.connect(db)
    try:
        return int(conn.execute("SELECT count(*) FROM batches").fetchone()[0])
    except sqlite3.OperationalError:
        return 0
    finally:
        conn.close()


def cpu_seconds(pid: int) -> float:
    """User and system CPU time of a process and its children so far (Linux /proc)."""
    total = 0.0
    for p in (pid, *procs.children(pid)):
        with contextlib.suppress(OSError):
            fields = procs.stat(p)
            total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return total


def controller_rate(
    broker: Broker,
    tmp: Path,
    total: int,
    procs: int,
    connections: int,
    poles: int,
    history: int,
    ingest_processes: int,
    env: dict[str, str] | None = None,
    open_store: Callable[[], TimeSeriesStore] | None = None,
    stored: Callable[[], int] | None = None,
    cpu_of: dict[str, int] | None = None,
) -> float:
    """Messages stored per second by a controller draining the street's queued stream; by
    default into SQLite, else into the store ``env`` selects (``open_store`` opens it for the
    history, ``stored`` counts the batches in it; ``cpu_of``: more processes, by name, whose CPU
    a message is printed, e.g. the database server's)."""
    env = {
        "STREETPOLE_MQTT_URL": broker.url,
        "STREETPOLE_INGEST_PROCESSES": str(ingest_processes),
        **(env or {}),
    }
    ctl = ControllerProcess(tmp / "ctl", env)
    ctl.start()  # registers the persistent sessions and their subscriptions
    time.sleep(2)  # the ingest children's too
    ctl.stop()
    db = tmp / "ctl" / "streetpole.db"
    count = stored or functools.partial(stored_batches, db)
    per = max(1, poles // procs // connections)
    names = [
        pole_name(w, c, p) for w in range(procs) for c in range(connections) for p in range(per)
    ]
    register(f"sqlite:///{tmp / 'ctl' / 'registry.db'}", names)  # the modules ingest checks
    if history:
        t = time.perf_counter()
        store = open_store() if open_store is not None else SqliteStore(db)
        try:
            write_history(store, names, NOW0, history)
        finally:
            store.close()
        print(f"history: {history} readings per stream written in {time.perf_counter() - t:.0f} s")
    run_publishers(broker.port, total, procs, connections, poles)
    before = count()  # the history's
    ctl.start(wait_ready=False)
    try:
        while (first := count() - before) == 0:
            time.sleep(0.005)
        t0 = time.perf_counter()
        assert ctl.proc is not None and broker.pid is not None
        pids = {"controller": ctl.proc.pid, "broker": broker.pid, **(cpu_of or {})}
        cpu0 = {k: cpu_seconds(p) for k, p in pids.items()}
        while (n := count() - before) < total:
            if time.perf_counter() - t0 > 300:
                raise TimeoutError(f"only {n} of {total} stored")
            time.sleep(0.02)
        rate = (total - first) / (time.perf_counter() - t0)
        # CPU a message: steadier than the rate on a machine shared with other work
        cost = {k: (cpu_seconds(p) - cpu0[k]) / (total - first) * 1e6 for k, p in pids.items()}
        print(", ".join(f"{k} CPU {us:.1f} us/msg" for k, us in cost.items()))
        return rate
    finally:
        ctl.stop()


def main() -> None:
    parser = argparse.ArgumentParser()
    # 180,000: long enough for two ingest processes to reach their pace (with 60,000 each took
    # a batch and a quarter, and two measured no faster than one); under the broker's queue of
    # 200,000 per session (controller/broker.py), past which it drops messages
    parser.add_argument("--messages", type=int, default=180_000)
    parser.add_argument("--procs", type=int, default=3)
    parser.add_argument("--connections", type=int, default=4)
    parser.add_argument("--poles", type=int, default=600, help="nodes in the street")
    parser.add_argument(
        "--history", type=int, default=120, help="readings per stream before the run (minutes)"
    )
    parser.add_argument(
        "--ingest-processes", type=int, default=2, help="STREETPOLE_INGEST_PROCESSES (cores: 2)"
    )
    args = parser.parse_args()
    args.messages -= args.messages % args.procs  # every publisher sends the same number
    assert shutil.which("mosquitto_sub"), "mosquitto_sub missing: make deps"
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        broker = Broker(tmp / "broker", BrokerConfig(port=free_port()))
        broker.start()
        try:
            street = (args.procs, args.connections, args.poles)
            pub_s = run_publishers(broker.port, args.messages, *street)
            pub_rate = args.messages / pub_s
            print(f"publishers alone (broker acks, no subscriber): {pub_rate:,.0f} msgs/s")
            ceil_rate = ceiling(broker, args.messages, *street)
            print(f"ceiling (mosquitto_sub -q 1): {ceil_rate:,.0f} msgs/s")
            rate = controller_rate(
                broker, tmp, args.messages, *street, args.history, args.ingest_processes
            )
            print(f"controller stored: {rate:,.0f} msgs/s, {rate * 10:,.0f} points/s")
            if broker.dropped_messages_logged():
                print("WARNING: the broker logged dropped messages", file=sys.stderr)
        finally:
            broker.stop()
    print(
        f"ingest_ratio={rate / ceil_rate:.2f} stored_msgs_per_s={rate:.0f} "
        f"ceiling_msgs_per_s={ceil_rate:.0f} points_per_s={rate * 10:.0f}"
    )


if __name__ == "__main__":
    main()
