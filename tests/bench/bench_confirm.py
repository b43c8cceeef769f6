"""What the controller's ``stored`` confirmations cost (controller/ingest/confirm.py): CPU time
a message to build them after a commit, and their bytes on the wire, for an ingest batch of
``--messages`` measurement batches from ``--nodes`` nodes (one batch each, as in steady
operation at one a minute; or many each, as when a backlog comes in after an outage).

    python -m tests.bench.bench_confirm [--messages 10000] [--nodes 10000]

Last line: confirm_us_per_msg=... confirm_bytes_per_node=... confirm_msgs=...
"""

from __future__ import annotations

import argparse
import time

from controller.ingest.confirm import confirmations
from controller.ingest.decode import sort_messages
from protocols import mqtt_framing as mf
from tests.ingest_helpers import meas, meas_topic


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--messages", type=int, default=10_000)
    ap.add_argument("--nodes", type=int, default=10_000)
    ap.add_argument("--rounds", type=int, default=5)
    a = ap.parse_args()
    per_node = max(1, a.messages // a.nodes)
    msgs = [
        (meas_topic(f"p{i % a.nodes}"), meas(i // a.nodes % 60, boot=1 + i // (60 * a.nodes)))
        for i in range(a.nodes * per_node)
    ]
    s = sort_messages(msgs)
    best = float("inf")
    data = b""
    n = 0
    for _ in range(a.rounds):
        t0 = time.process_time()
        packets = [mf.send_publish(t, p) for t, p in confirmations(s)]
        data = b"".join(packets)
        best = min(best, time.process_time() - t0)
        n = len(packets)
    us = best / len(msgs) * 1e6
    print(f"{len(msgs)} batches from {a.nodes} nodes: {n} confirmations, {len(data)} bytes, "
          f"{us:.2f} us of CPU a batch (best of {a.rounds})")  # fmt: skip
    print(
        f"confirm_us_per_msg={us:.2f} confirm_bytes_per_node={len(data) / a.nodes:.1f} "
        f"confirm_msgs={n}"
    )


if __name__ == "__main__":
    main()
