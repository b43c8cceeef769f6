"""How long mosquitto takes to re-read the node credentials (SIGHUP), by street size and ACL layout.

`.venv/bin/python -m tests.bench.bench_mqtt_auth_reload [--nodes 10000 ...] [--connected N]`

Layouts compared, same password file (one $7$ line per node):
- patterns: what controller/mqtt_auth.py writes; username <pole>/<node>, eight %u pattern lines
  for all nodes, so the ACL file does not grow;
- user-blocks: the alternative, one "user" block with eight "topic" lines per node.
Figures: MqttAccounts.write() time, broker start time, and reload time (SIGHUP until a CONNECT
sent after mosquitto logged the reload is answered, see Broker.reload), median of --repeat runs.
With --connected N, N nodes hold open connections during the reload (mosquitto re-checks each).
"""

from __future__ import annotations

import argparse
import socket
import statistics
import tempfile
import time
from pathlib import Path

from controller.broker import Broker, BrokerConfig, free_port
from controller.mqtt_auth import (
    NODE_READ_CHANNELS,
    NODE_WRITE_CHANNELS,
    MqttAccounts,
    generate_secret,
    hash_password,
    node_username,
)
from protocols.topics import PREFIX, PRESENCE


def user_block_acl(nodes: list[tuple[str, str]]) -> str:
    out = []
    for pole, node in nodes:
        own = f"{PREFIX}/{pole}/{node}"
        out.append(f"user {pole}/{node}")
        out += [f"topic write {own}/{ch}" for ch in NODE_WRITE_CHANNELS]
        out += [f"topic read {own}/{ch}" for ch in NODE_READ_CHANNELS]
        out.append(f"topic read {PREFIX}/+/+/{PRESENCE}")
    return "\n".join(out) + "\n"


def connect_raw(port: int, username: str, password: str) -> socket.socket:
    """An MQTT 3.1.1 CONNECT with credentials over a plain socket; returns the open socket."""

    def s(b: bytes) -> bytes:
        return len(b).to_bytes(2, "big") + b

    cid = username.replace("/", "-").encode()
    body = b"\x00\x04MQTT\x04\xc2\x02\x58" + s(cid) + s(username.encode()) + s(password.encode())
    rem = len(body)
    enc = bytearray()
    while True:
        d, rem = rem % 128, rem // 128
        enc.append(d | (0x80 if rem else 0))
        if not rem:
            break
    sock = socket.create_connection(("127.0.0.1", port))
    sock.sendall(b"\x10" + bytes(enc) + body)
    reply = sock.recv(4)
    if reply != b"\x20\x02\x00\x00":
        raise RuntimeError(f"{username} refused: {reply!r}")
    return sock


def run(n: int, layout: str, repeat: int, connected: int) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp)
        accounts = MqttAccounts(d / "auth")
        nodes = [(f"P{i // 4:06d}", f"n{i % 4}") for i in range(n)]
        secret = generate_secret()
        h = hash_password(secret)  # one hash for all: hashing is the registry's cost, not ours
        t0 = time.perf_counter()
        accounts.replace_nodes({node: h for node in nodes})
        accounts.write()
        write_s = time.perf_counter() - t0
        if layout == "user-blocks":
            accounts.acl_file.write_text(user_block_acl(nodes))
        size = accounts.acl_file.stat().st_size + accounts.password_file.stat().st_size
        broker = Broker(
            d / "broker",
            BrokerConfig(
                port=free_port(),
                password_file=accounts.password_file,
                acl_file=accounts.acl_file,
            ),
        )
        t0 = time.perf_counter()
        broker.start(timeout=600)
        # start() returns when the port accepts; the files are read before listening
        start_s = time.perf_counter() - t0
        socks = [connect_raw(broker.port, node_username(*nd), secret) for nd in nodes[:connected]]
        try:
            times = [broker.reload(timeout=600) for _ in range(repeat)]
            connect_raw(broker.port, node_username(*nodes[-1]), secret).close()
        finally:
            for sock in socks:
                sock.close()
            broker.stop()
        return {
            "write_s": write_s,
            "start_s": start_s,
            "reload_s": statistics.median(times),
            "files_mb": size / 1e6,
        }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nodes", type=int, nargs="+", default=[1000, 10_000])
    parser.add_argument("--layout", nargs="+", default=["patterns", "user-blocks"])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--connected", type=int, default=0)
    args = parser.parse_args()
    for layout in args.layout:
        for n in args.nodes:
            r = run(n, layout, args.repeat, min(args.connected, n))
            print(
                f"layout={layout} nodes={n} connected={min(args.connected, n)} "
                f"files_mb={r['files_mb']:.1f} write_s={r['write_s']:.3f} "
                f"start_s={r['start_s']:.3f} reload_s={r['reload_s']:.3f}",
                flush=True,
            )


if __name__ == "__main__":
    main()
