"""Node side of the round-trip test, on MicroPython: publish a measurement batch encoded by the
codec, receive the retained config and print what the codec decoded.

    micropython roundtrip_node.py HOST PORT POLE NODE
"""

import asyncio
import json
import sys

from protocols import codec, topics
from spnode.mqtt_client import MQTTClient

host, port, pole, node = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
received = []


def on_message(topic, payload, retained):
    t, msg = codec.parse(topic, payload)
    received.append((t.channel, msg, retained))


async def main():
    client = MQTTClient(pole + "-" + node, host, port, on_message=on_message, keepalive=30)
    client.subscribe(str(topics.Topic(pole, node, topics.CONFIG)), 1)
    task = asyncio.create_task(client.run())
    await asyncio.wait_for(client.up.wait(), 10)
    batch = {
        "boot": 1,
        "seq": 7,
        "readings": [
            {"ts": 1795582800, "q": "pm25", "v": 12.5, "dur": 60, "src": "air"},
            {
                "ts": 1795582800,
                "q": "LAeq",
                "v": 54.25,
                "dur": 60,
                "src": "noise",
                "flags": ["indicative"],
            },
        ],
    }
    meas_topic = topics.Topic(pole, node, topics.MEAS)
    acked = await client.publish(str(meas_topic), codec.encode(topics.MEAS, batch), qos=1)
    for _ in range(100):
        if received:
            break
        await asyncio.sleep(0.1)
    print(json.dumps({"acked": acked, "received": received}))
    await client.stop()
    task.cancel()


asyncio.run(main())
