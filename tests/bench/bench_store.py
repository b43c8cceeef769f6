"""`make bench-store`: the SQLite store alone, what a message of ten readings costs to write
into ``recent`` (the open buckets) and later to move into ``readings``, against writing it into
``readings`` directly (the layout before ``recent``), for a street of 600 and of 6,000 nodes
whose streams already hold history (controller/store/sqlite.py says why this matters).

Each node reports once a minute; writes go in transactions of 8,000 messages, as ingest does.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from controller.store.base import Batch
from controller.store.sqlite import BUCKET, SqliteStore
from tests.ingest_helpers import QUANTITIES, write_history

H0 = 1_795_000_200 - 1_795_000_200 % BUCKET  # where the measured minutes start


def batches(nodes: int, minutes: range, seq0: int = 0) -> list[Batch]:
    """One message per node and minute, minute by minute."""
    return [
        Batch(
            f"p{n}",
            "n1",
            1,
            seq0 + m,
            [{"ts": H0 + 60 * m, "q": q, "v": 0.5, "dur": 60, "src": "air"} for q in QUANTITIES],
        )
        for m in minutes
        for n in range(nodes)
    ]


def run(tmp: Path, nodes: int, rows: int, messages: int, horizon: int) -> tuple[float, float]:
    """(us a message written, us a message moved) for a store whose ``recent`` starts at
    ``horizon`` (beyond every point: each is written into ``readings`` directly)."""
    store = SqliteStore(tmp / f"{nodes}-{horizon}.db", retention_raw_days=0, horizon=horizon)
    try:
        write_history(store, [f"p{n}" for n in range(nodes)], H0, rows)
        todo = batches(nodes, range(messages // nodes))
        t = time.perf_counter()
        for i in range(0, len(todo), 8000):
            store.write(todo[i : i + 8000])
        write = (time.perf_counter() - t) / len(todo) * 1e6
        t = time.perf_counter()
        store.compact(H0 + 60 * (messages // nodes) + BUCKET)
        move = (time.perf_counter() - t) / len(todo) * 1e6
        return write, move
    finally:
        store.close()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--history", type=int, default=120, help="readings per stream before")
    parser.add_argument("--messages", type=int, default=60_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as d:
        for nodes in (600, 6000):
            direct, _ = run(Path(d), nodes, args.history, args.messages, 2**40)
            write, move = run(Path(d), nodes, args.history, args.messages, H0)
            print(
                f"nodes={nodes} readings_direct_us={direct:.1f} recent_write_us={write:.1f} "
                f"recent_move_us={move:.1f} recent_total_us={write + move:.1f}"
            )


if __name__ == "__main__":
    main()
