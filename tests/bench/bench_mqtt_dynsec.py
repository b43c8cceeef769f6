"""What mosquitto 2.0.11's dynamic security plugin costs per account change, by street size.

`.venv/bin/python -m tests.bench.bench_mqtt_dynsec [--nodes 1000 10000 100000] [--batch 10]`

The alternative to the password and ACL files of controller/mqtt_auth.py (compare with
tests/bench/bench_mqtt_auth_reload.py). For N nodes it writes the plugin's JSON file directly
(what provisioning N nodes one by one would leave: one client per node with its client id bound,
and one role per node, because 2.0.11's dynsec ACLs take no %u or %c), starts mosquitto with the
plugin and then, over $CONTROL/dynamic-security/v1, times: one createClient, one
setClientPassword (re-provisioning), one deleteClient, and --batch createClient commands in one
message. Meanwhile a prober sends a CONNECT every few ms; the longest wait for its CONNACK is how
long the single-threaded broker stood still for everybody. Also prints whether a role with a %u
topic lets a node publish to its own topic, and the file size and broker RSS afterwards.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import json
import os
import socket
import subprocess
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import paho.mqtt.client as paho

from controller.broker import find_mosquitto, free_port
from controller.mqtt_auth import NODE_READ_CHANNELS, NODE_WRITE_CHANNELS
from hostlib.process import terminate
from protocols.topics import PREFIX

PLUGIN = "/usr/lib/x86_64-linux-gnu/mosquitto_dynamic_security.so"
CONTROL = "$CONTROL/dynamic-security/v1"


def _hash(password: str, salt: bytes) -> str:
    return base64.b64encode(
        hashlib.pbkdf2_hmac("sha512", password.encode(), salt, 101, 64)
    ).decode()


def _acls(own: str) -> list[dict[str, Any]]:
    topic = f"{PREFIX}/{own}"
    out = [
        {"acltype": "publishClientSend", "topic": f"{topic}/{c}", "allow": True}
        for c in NODE_WRITE_CHANNELS
    ]
    for c in NODE_READ_CHANNELS:
        out.append({"acltype": "subscribePattern", "topic": f"{topic}/{c}", "allow": True})
        out.append({"acltype": "publishClientReceive", "topic": f"{topic}/{c}", "allow": True})
    return out


def dynsec_config(n: int) -> dict[str, Any]:
    salt = os.urandom(12)
    s64 = base64.b64encode(salt).decode()
    node_hash = _hash("secret", salt)
    admin_acls = [
        {"acltype": t, "topic": f"{CONTROL}/#", "allow": True}
        for t in ("publishClientSend", "publishClientReceive", "subscribePattern")
    ]
    clients: list[dict[str, Any]] = [
        {
            "username": "admin",
            "password": _hash("admin", salt),
            "salt": s64,
            "iterations": 101,
            "roles": [{"rolename": "admin"}],
        },
        {
            "username": "pattern/n0",
            "clientid": "pattern/n0",
            "password": node_hash,
            "salt": s64,
            "iterations": 101,
            "roles": [{"rolename": "pattern"}],
        },
    ]
    roles: list[dict[str, Any]] = [
        {"rolename": "admin", "acls": admin_acls},
        {"rolename": "pattern", "acls": _acls("%u")},
    ]
    for i in range(n):
        user = f"P{i // 4:06d}/n{i % 4}"
        clients.append(
            {
                "username": user,
                "clientid": user,
                "password": node_hash,
                "salt": s64,
                "iterations": 101,
                "roles": [{"rolename": user}],
            }
        )
        roles.append({"rolename": user, "acls": _acls(user)})
    default = {
        "publishClientSend": False,
        "publishClientReceive": False,
        "subscribe": False,
        "unsubscribe": True,
    }
    return {"clients": clients, "roles": roles, "groups": [], "defaultACLAccess": default}


def _client(port: int, user: str, password: str) -> paho.Client:
    c = paho.Client(paho.CallbackAPIVersion.VERSION2, client_id=user, protocol=paho.MQTTv5)
    c.username_pw_set(user, password)
    ready = threading.Event()
    c.on_connect = lambda *_a: ready.set()
    c.connect("127.0.0.1", port)
    c.loop_start()
    if not ready.wait(30):
        raise RuntimeError(f"{user} could not connect")
    return c


def _probe_connect(port: int) -> float:
    t0 = time.perf_counter()
    body = b"\x00\x04MQTT\x04\x02\x00\x0a\x00\x05probe"
    with socket.create_connection(("127.0.0.1", port), timeout=600) as sock:
        sock.sendall(bytes([0x10, len(body)]) + body)
        sock.recv(4)
    return time.perf_counter() - t0


def run(n: int, batch: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp)
        cfg_file = d / "dynsec.json"
        cfg_file.write_text(json.dumps(dynsec_config(n)))
        port = free_port()
        conf = d / "mosquitto.conf"
        conf.write_text(
            f"listener {port} 127.0.0.1\nallow_anonymous false\nplugin {PLUGIN}\n"
            f"plugin_opt_config_file {cfg_file}\nlog_dest file {d / 'log'}\n"
            + ("user root\n" if os.geteuid() == 0 else "")
        )
        t0 = time.perf_counter()
        proc = subprocess.Popen([find_mosquitto(), "-c", str(conf)], stderr=subprocess.DEVNULL)
        try:
            while True:
                try:
                    _probe_connect(port)
                    break
                except OSError:
                    time.sleep(0.02)
            out: dict[str, Any] = {"start_s": time.perf_counter() - t0}
            admin = _client(port, "admin", "admin")
            answers: list[bytes] = []
            got = threading.Event()
            admin.on_message = lambda _c, _u, m: (answers.append(m.payload), got.set())
            subscribed = threading.Event()
            admin.on_subscribe = lambda *_a: subscribed.set()
            admin.subscribe(f"{CONTROL}/response", 1)
            subscribed.wait(10)

            def command(*cmds: dict[str, Any]) -> float:
                got.clear()
                answers.clear()
                t = time.perf_counter()
                admin.publish(CONTROL, json.dumps({"commands": list(cmds)}), qos=1)
                if not got.wait(3600):
                    raise TimeoutError("no answer from the plugin")
                errors = [r["error"] for r in json.loads(answers[0])["responses"] if "error" in r]
                if errors:
                    raise RuntimeError(errors)
                return time.perf_counter() - t

            # a %u role: does the node get to publish on its own topic?
            node = _client(port, "pattern/n0", "secret")
            acks: dict[int, Any] = {}
            node.on_publish = lambda _c, _u, mid, rc, _p: acks.__setitem__(mid, rc)
            info = node.publish(f"{PREFIX}/pattern/n0/meas", b"x", qos=1)
            deadline = time.monotonic() + 10
            while info.mid not in acks and time.monotonic() < deadline:
                time.sleep(0.01)
            out["pattern_u_allowed"] = info.mid in acks and not acks[info.mid].is_failure
            node.loop_stop()
            node.disconnect()

            stalls: list[float] = []
            stop = threading.Event()

            def prober() -> None:
                while not stop.is_set():
                    stalls.append(_probe_connect(port))
                    time.sleep(0.005)

            th = threading.Thread(target=prober)
            th.start()
            try:
                new = {"username": "NEW/n0", "password": "pw", "clientid": "NEW/n0"}
                out["create_s"] = command({"command": "createClient", **new})
                out["password_s"] = command(
                    {"command": "setClientPassword", "username": "NEW/n0", "password": "pw2"}
                )
                out["delete_s"] = command({"command": "deleteClient", "username": "NEW/n0"})
                out["batch_s"] = command(
                    *(
                        {"command": "createClient", "username": f"B{k}/n0", "password": "pw"}
                        for k in range(batch)
                    )
                )
            finally:
                stop.set()
                th.join()
            out["stall_max_s"] = max(stalls)
            out["file_mb"] = cfg_file.stat().st_size / 1e6
            status = Path(f"/proc/{proc.pid}/status").read_text()
            out["rss_mb"] = int(status.split("VmRSS:")[1].split()[0]) / 1024
            admin.loop_stop()
            admin.disconnect()
            return out
        finally:
            terminate(proc)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nodes", type=int, nargs="+", default=[1000, 10_000])
    parser.add_argument("--batch", type=int, default=10)
    args = parser.parse_args()
    for n in args.nodes:
        r = run(n, args.batch)
        print(
            f"dynsec nodes={n} file_mb={r['file_mb']:.1f} rss_mb={r['rss_mb']:.0f} "
            f"start_s={r['start_s']:.2f} create_s={r['create_s']:.3f} "
            f"password_s={r['password_s']:.3f} delete_s={r['delete_s']:.3f} "
            f"batch{args.batch}_s={r['batch_s']:.3f} stall_max_s={r['stall_max_s']:.3f} "
            f"pattern_%u_allowed={r['pattern_u_allowed']}",
            flush=True,
        )


if __name__ == "__main__":
    main()
