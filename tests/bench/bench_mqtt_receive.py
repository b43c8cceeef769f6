"""What receiving costs ingest, in CPU a message: the framing alone (protocols/mqtt_framing.py
cutting a stream of realistic measurement publishes read 64 KiB at a time), and the ingest
subscriber (controller/ingest/subscriber.py) draining a QoS 1 backlog from mosquitto and
acknowledging it in batches, without a store.

    python -m tests.bench.bench_mqtt_receive [--messages 60000] [--rounds 5]

Last line: framing_us_per_msg=... subscriber_us_per_msg=... (the best of the rounds)
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing as mp
import tempfile
import time
from pathlib import Path

from controller.broker import Broker, BrokerConfig, free_port
from controller.ingest.subscriber import Publish, Session, Subscriber
from protocols import mqtt_framing as mf
from tests.ingest_helpers import meas, meas_topic, publish_all

FILTER = "streetpole/v1/+/+/meas"
BATCH = 2000  # PUBACKs written together, as after a commit


def framing(messages: list[tuple[str, bytes]]) -> float:
    stream = b"".join(
        mf.send_publish(t, p, 1, False, False, i % 65535 + 1) for i, (t, p) in enumerate(messages)
    )
    reads = [stream[k : k + 65536] for k in range(0, len(stream), 65536)]
    rx = mf.Receiver(65536)
    started = time.process_time()
    got = 0
    for data in reads:
        got += len(list(rx.receive_data(data)))
    assert got == len(messages)
    return time.process_time() - started


async def drain(broker: Broker, client_id: str, n: int) -> float:
    """CPU time from connecting to the last PUBACK written, for a backlog of ``n``."""
    got: list[Publish] = []
    ready = asyncio.Event()

    def keep(publishes: list[Publish]) -> None:
        got.extend(publishes)
        ready.set()

    started = time.process_time()
    sub = await Subscriber.connect(Session(broker.host, broker.port, client_id), keep)
    await sub.subscribe([(FILTER, 1)])
    acked = 0
    while acked < n:
        await ready.wait()
        ready.clear()
        if len(got) - acked >= BATCH or len(got) == n:
            sub.ack([p[2] for p in got[acked:]])
            acked = len(got)
    cpu = time.process_time() - started
    sub.close()
    return cpu


async def register(broker: Broker, client_id: str) -> None:
    """A persistent session with the subscription, so the broker queues the backlog for it."""
    sub = await Subscriber.connect(Session(broker.host, broker.port, client_id), lambda ps: None)
    await sub.subscribe([(FILTER, 1)])
    sub.close()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--messages", type=int, default=60_000)  # publish_all keeps 65,535 in flight
    ap.add_argument("--rounds", type=int, default=5)
    a = ap.parse_args()
    messages = [(meas_topic(f"p{i % 600}"), meas(i % 5000)) for i in range(a.messages)]
    framing_best = min(framing(messages) for _ in range(a.rounds)) / a.messages * 1e6
    print(f"framing: {framing_best:.2f} us of CPU a message (best of {a.rounds})")
    with tempfile.TemporaryDirectory() as tmp:
        broker = Broker(Path(tmp), BrokerConfig(port=free_port()))
        broker.start()
        try:
            best = float("inf")
            for r in range(a.rounds):
                client_id = f"bench-receive-{r}"
                asyncio.run(register(broker, client_id))
                # published from another process, so that its CPU is not counted here
                pub = mp.get_context("fork").Process(target=publish_all, args=(broker, messages))
                pub.start()
                pub.join()
                best = min(best, asyncio.run(drain(broker, client_id, a.messages)))
        finally:
            broker.stop()
    sub_us = best / a.messages * 1e6
    print(f"subscriber: {sub_us:.2f} us of CPU a message, receiving and acknowledging")
    print(f"framing_us_per_msg={framing_best:.2f} subscriber_us_per_msg={sub_us:.2f}")


if __name__ == "__main__":
    main()
