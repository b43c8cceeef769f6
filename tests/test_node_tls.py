"""TLS that verifies: the whole node firmware on the MicroPython unix port (and the same code on
CPython, as the simulator runs it) connects only to a broker whose certificate chains to the CA
in its node.json and names the broker it meant to reach.

Attacks, each against real parts: a fake broker (a plain TLS server that records what arrives)
with a certificate from another CA gets nothing after the handshake, the password least of all;
a real mosquitto with such a certificate, or with a certificate of the right CA for another name,
is refused and never sees a CONNECT; the right CA and name connect. A node.json that names an
mqtts:// broker without a CA is refused before anything is sent.
"""

from __future__ import annotations

import asyncio
import hashlib
import http.server
import json
import re
import socket
import ssl
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from controller.broker import Broker, BrokerConfig, free_port
from controller.devpki import Authority, ServerFiles, write_server_files
from fieldtools.unixport import ESP32_HEAP_KIB, TLS_HEAP_KIB
from spnode.mqtt_client import MQTTClient
from spnode.nodeconfig import ConfigError, NodeConfig
from tests.harness.micropython import (
    NODE_HEAP_KIB,
    micropython_env,
    node_command,
    run_micropython,
)
from tests.harness.paths import ROOT

SCRIPT = ROOT / "tests" / "mp" / "node_tls.py"
BOARD = ROOT / "hardware" / "boards" / "sim.json"
PASSWORD = "pole-secret-7f3a"
WAIT_MS = 8000


@dataclass
class Pki:
    ca: Authority
    good: ServerFiles  # the street's CA, for 127.0.0.1 and localhost
    evil: ServerFiles  # another CA, for the same names
    other_name: ServerFiles  # the street's CA, for another server's name


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    d = tmp_path_factory.mktemp("pki")
    ca = Authority("Streetpole test CA")
    return Pki(
        ca=ca,
        good=write_server_files(d / "good", ca),
        evil=write_server_files(d / "evil", Authority("evil.example CA")),
        other_name=write_server_files(d / "other", ca, ("files.example.org",)),
    )


def _tls_broker(tmp_path: Path, files: ServerFiles) -> Broker:
    config = BrokerConfig(
        port=free_port(),
        tls_port=free_port(),
        cafile=files.ca,
        certfile=files.cert,
        keyfile=files.key,
    )
    return Broker(tmp_path / "broker", config)


@pytest.fixture
def tls_broker(tmp_path: Path, request: pytest.FixtureRequest, pki: Pki) -> Iterator[Broker]:
    """mosquitto with a TLS listener whose certificate is ``pki.<param>``."""
    b = _tls_broker(tmp_path, getattr(pki, request.param))
    b.start()
    try:
        yield b
    finally:
        b.stop()


class RecordingServer:
    """A fake broker: accepts TLS with ``files``' certificate and records every byte the client
    sends after the handshake, until the client closes or a deadline passes."""

    def __init__(self, files: ServerFiles) -> None:
        self.ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.ctx.load_cert_chain(files.cert, files.key)
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port: int = self.sock.getsockname()[1]
        self.received = b""
        self.handshakes = 0
        self.errors: list[str] = []
        self.accepted = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        self.sock.settimeout(30)
        try:
            conn, _ = self.sock.accept()
        except OSError as e:
            self.errors.append(repr(e))
            return
        self.accepted.set()
        conn.settimeout(10)
        try:
            with self.ctx.wrap_socket(conn, server_side=True) as tls:
                self.handshakes += 1
                while data := tls.recv(4096):
                    self.received += data
        except (OSError, ssl.SSLError) as e:
            self.errors.append(repr(e))

    def close(self) -> None:
        self._thread.join(15)
        self.sock.close()


def _node_json(path: Path, port: int, ca_pem: bytes | None, **extra: Any) -> Path:
    local: dict[str, Any] = {
        "pole": "TLS-1",
        "node": "n1",
        "wifi": {"ssid": "sim"},
        "broker": f"mqtts://127.0.0.1:{port}",
        "username": "TLS-1-n1",
        "password": PASSWORD,
        "update_key": "11" * 16,
        **extra,
    }
    if ca_pem is not None:
        local["ca"] = ca_pem.decode()
    path.write_text(json.dumps(local))
    return path


def node_proc(
    tmp_path: Path,
    node_json: Path,
    rom: Path,
    wait_ms: int = WAIT_MS,
    heap_kib: int = NODE_HEAP_KIB + TLS_HEAP_KIB,
) -> subprocess.CompletedProcess[str]:
    """The firmware's Node on MicroPython, from its ROMFS image in an ESP32's heap plus what a
    node on TLS holds more (fieldtools/unixport.TLS_HEAP_KIB: with the update checks and the
    delivery confirmations merged, the TLS node ran out of heap in 96 KiB at its start),
    started from ``node_json``."""
    data = tmp_path / "data"
    data.mkdir(exist_ok=True)
    cmd = node_command(SCRIPT, str(BOARD), str(node_json), str(data), str(wait_ms),
                       heap=f"{heap_kib}k", rom=rom)  # fmt: skip
    return subprocess.run(cmd, capture_output=True, text=True, timeout=60,
                          env=micropython_env(rom=True))  # fmt: skip


def run_node(tmp_path: Path, node_json: Path, rom: Path) -> dict[str, Any]:
    """node_proc's JSON report, with what it printed as ``log``."""
    proc = node_proc(tmp_path, node_json, rom)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    report: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    report["log"] = proc.stdout
    return report


# ---- on MicroPython ------------------------------------------------------------------------------


def test_fake_broker_with_another_cas_certificate_gets_nothing(
    tmp_path: Path, pki: Pki, node_rom: Path
) -> None:
    """Attack (a): someone on the street Wi-Fi answers as the broker with a certificate of their
    own CA. The node refuses it in the handshake: not one byte of MQTT, no password."""
    fake = RecordingServer(pki.evil)
    try:
        node_json = _node_json(tmp_path / "node.json", fake.port, pki.ca.cert_pem)
        out = run_node(tmp_path, node_json, node_rom)
    finally:
        fake.close()
    assert fake.accepted.is_set(), fake.errors  # the node did try this broker
    assert fake.received == b"", fake.received
    assert fake.handshakes == 0, "the handshake must fail at the node"
    assert out["connects"] == 0
    assert "not correctly signed by the trusted CA" in out["refused"], out
    assert f"mqtt: certificate of 127.0.0.1:{fake.port} refused: " in out["log"]


def test_node_json_with_mqtts_but_no_ca_is_refused(
    tmp_path: Path, pki: Pki, node_rom: Path
) -> None:
    """Attack (a) as the old firmware met it: mqtts:// with no CA to check against used to trust
    any certificate and send the password. Now the node refuses the file; nothing is sent."""
    fake = RecordingServer(pki.evil)
    try:
        # heap to spare: the old firmware's TLS (micropython-lib's ssl) ran out of 96 KiB
        # before it sent anything; what is tested here is what the config lets through
        node_json = _node_json(tmp_path / "n.json", fake.port, None)
        proc = node_proc(tmp_path, node_json, node_rom, 3000, heap_kib=160)
    finally:
        socket.create_connection(("127.0.0.1", fake.port)).close()  # end the accept
        fake.close()
    assert PASSWORD.encode() not in fake.received
    assert fake.received == b""
    assert proc.returncode != 0
    assert "ConfigError: ('ca'" in proc.stdout and "mqtts:// needs the PEM" in proc.stdout


@pytest.mark.parametrize("tls_broker", ["evil"], indirect=True)
def test_mosquitto_with_another_cas_certificate_is_refused(
    tmp_path: Path, tls_broker: Broker, pki: Pki, node_rom: Path
) -> None:
    """Attack (a) against a real mosquitto: it never sees a CONNECT from the node."""
    port = tls_broker.config.tls_port
    assert port is not None
    out = run_node(tmp_path, _node_json(tmp_path / "node.json", port, pki.ca.cert_pem), node_rom)
    assert out["connects"] == 0
    assert "not correctly signed by the trusted CA" in out["refused"], out
    assert "New connection from 127.0.0.1" in tls_broker.log()  # it was reached ...
    assert "TLS-1-n1" not in tls_broker.log()  # ... but no client ever connected


@pytest.mark.parametrize("tls_broker", ["other_name"], indirect=True)
def test_right_ca_but_another_servers_name_is_refused(
    tmp_path: Path, tls_broker: Broker, pki: Pki, node_rom: Path
) -> None:
    """Attack (b): a certificate the street's CA issued to another server (files.example.org)
    does not make that server the broker."""
    port = tls_broker.config.tls_port
    assert port is not None
    out = run_node(tmp_path, _node_json(tmp_path / "node.json", port, pki.ca.cert_pem), node_rom)
    assert out["connects"] == 0
    assert "CN" in out["refused"] and "not match" in out["refused"], out
    assert "TLS-1-n1" not in tls_broker.log()


@pytest.mark.parametrize("tls_broker", ["good"], indirect=True)
def test_right_ca_and_name_connect_from_the_rom_in_the_nodes_heap(
    tmp_path: Path, tls_broker: Broker, pki: Pki, node_rom: Path
) -> None:
    """(c) The street's CA and the broker's name: the node connects, from its ROMFS image in an
    ESP32's heap with its TLS context and socket in it (mbedTLS's record buffers are in the C
    heap, as on the ESP32). Also by the name in server_name."""
    port = tls_broker.config.tls_port
    assert port is not None
    out = run_node(tmp_path, _node_json(tmp_path / "a.json", port, pki.ca.cert_pem), node_rom)
    assert out["connects"] == 1 and out["refused"] is None, out
    assert "New client connected from 127.0.0.1" in tls_broker.log()
    named = _node_json(tmp_path / "b.json", port, pki.ca.cert_pem, server_name="localhost")
    (tmp_path / "b").mkdir()
    out = run_node(tmp_path / "b", named, node_rom)
    assert out["connects"] == 1 and out["refused"] is None, out


# ---- the same firmware on CPython (the simulator's poles) ------------------------------------


def refused(client: MQTTClient) -> str | None:
    """Why the client refused the broker's certificate (its last error says so), or None."""
    e = client.last_error
    return e if isinstance(e, str) and e.startswith("mqtt: certificate") else None


async def _cpython_connect(cfg: NodeConfig) -> MQTTClient:
    client = MQTTClient(
        f"{cfg.pole}-{cfg.node}", cfg.host, cfg.port, username=cfg.username, password=cfg.password,
        ssl=cfg.tls_context, server_hostname=cfg.server_name, backoff_ms=(50, 100),
    )  # fmt: skip
    task = asyncio.create_task(client.run())
    for _ in range(200):
        if client.connects or refused(client):
            break
        await asyncio.sleep(0.02)
    await client.stop()
    task.cancel()
    return client


@pytest.mark.parametrize(
    ("tls_broker", "reason"),
    [("good", None), ("evil", "(self-signed|local issuer)"), ("other_name", "mismatch")],
    indirect=["tls_broker"],
)
def test_cpython_node_verifies_the_same_way(
    tls_broker: Broker, pki: Pki, reason: str | None
) -> None:
    port = tls_broker.config.tls_port
    assert port is not None
    local = {
        "pole": "TLS-1", "node": "n1", "wifi": {"ssid": "sim"},
        "broker": f"mqtts://127.0.0.1:{port}", "username": "TLS-1-n1", "password": PASSWORD,
        "update_key": "11" * 16, "ca": pki.ca.cert_pem.decode(),
    }  # fmt: skip
    client = asyncio.run(_cpython_connect(NodeConfig(local)))
    if reason is None:
        assert client.connects == 1 and refused(client) is None, client.last_error
    else:
        assert client.connects == 0
        why = refused(client)
        assert why is not None and re.search(reason, why), why
        assert "TLS-1-n1" not in tls_broker.log()


def test_node_config_checks_the_ca() -> None:
    base = {"pole": "P", "node": "n1", "wifi": {"ssid": "s"}, "update_key": "11" * 16}
    with pytest.raises(ConfigError, match="mqtts:// needs"):
        NodeConfig({**base, "broker": "mqtts://b:8883"})
    with pytest.raises(ConfigError, match="PEM"):
        NodeConfig({**base, "broker": "mqtts://b:8883", "ca": "not a certificate"})
    bad = "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"
    with pytest.raises(ConfigError, match="CA certificate"):
        NodeConfig({**base, "broker": "mqtts://b:8883", "ca": bad})
    assert NodeConfig({**base, "broker": "mqtt://b"}).tls_context is None
    from spnode import boarddef
    from spnode.app import Node
    from spnode.board.sim import SimBoard

    with pytest.raises(ValueError, match="verifies"):  # asyncio's own context trusts anyone
        Node(SimBoard(boarddef.load(str(BOARD))), {**base, "broker": "mqtt://b"}, ssl=True)


@pytest.mark.slow
@pytest.mark.parametrize("tls_broker", ["good"], indirect=True)
def test_street_over_tls_with_a_micropython_pole(
    tls_broker: Broker, pki: Pki, tmp_path: Path
) -> None:
    """`make run`'s street on an mqtts:// broker: the in-process poles (this firmware on
    CPython) and a MicroPython pole trust the street's CA and all report; the observer listens
    on the plaintext loopback listener, as the controller does in `make run`."""
    import paho.mqtt.client as paho

    from protocols import topics
    from simulator.layout import grid
    from simulator.street import Street
    from simulator.world import World

    lay = grid(3, prefix=f"TLS{tls_broker.port}-")
    seen: set[str] = set()
    obs = paho.Client(paho.CallbackAPIVersion.VERSION2)
    obs.on_message = lambda _c, _u, m: seen.add(m.topic.split("/")[2])
    obs.connect(tls_broker.host, tls_broker.port)
    obs.subscribe(f"{topics.PREFIX}/+/n1/meas", qos=1)
    obs.loop_start()
    world = World(lay, seed=1, start=time.time())
    url = f"mqtts://127.0.0.1:{tls_broker.config.tls_port}"
    street = Street(lay, world, url, speed=20, sensors=("pir",), micropython=1,
                    report_period_s=10, ca=pki.ca.cert_pem.decode())  # fmt: skip
    try:
        asyncio.run(street.run(sim_seconds=200))
        deadline = time.monotonic() + 20
        while not seen >= {p.id for p in lay.poles} and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        obs.loop_stop()
        obs.disconnect()
    assert seen == {p.id for p in lay.poles}
    (mp,) = street.totals()["micropython_poles"]
    assert mp["booted"] and not mp["errors"], mp
    assert not [line for line in street.mp_poles[0].output if "mqtt: certificate" in line]


@pytest.mark.slow
@pytest.mark.parametrize("tls_broker", ["good"], indirect=True)
def test_micropython_pole_over_tls_applies_config_and_reports(
    tls_broker: Broker, pki: Pki, tmp_path: Path
) -> None:
    """The street's MicroPython pole (simulator/mpnodes.py, from ROMFS) over TLS does what it does
    in plaintext: takes its config, acknowledges it, reports batches and the config's level,
    with the TLS context and connection in its heap (96 KiB + TLS_HEAP_KIB: in 96 KiB it ran out
    checking the config)."""
    import paho.mqtt.client as paho

    from protocols import topics
    from simulator.mpnodes import MicroPythonPole, build_node_rom
    from tests.harness.api import wait_for
    from tests.test_simulator_mp import CONFIG

    pole = f"TLSMP{tls_broker.port}"
    got: list[tuple[str, dict[str, Any]]] = []
    obs = paho.Client(paho.CallbackAPIVersion.VERSION2)
    obs.on_message = lambda _c, _u, m: got.append(
        (m.topic.rsplit("/", 1)[1], json.loads(m.payload))
    )
    obs.connect(tls_broker.host, tls_broker.port)
    obs.subscribe(f"{topics.PREFIX}/{pole}/#", qos=1)
    obs.loop_start()
    t = topics.Topic(pole, "n1", topics.CONFIG)
    obs.publish(str(t), json.dumps(CONFIG), qos=1, retain=True).wait_for_publish()
    local = {"pole": pole, "node": "n1", "wifi": {"ssid": "sim"},
             "broker": f"mqtts://127.0.0.1:{tls_broker.config.tls_port}",
             "location": {"lat": 51.9, "lon": 4.5}, "sensors": ["pir"], "update_key": "00" * 16,
             "ca": pki.ca.cert_pem.decode()}  # fmt: skip
    image = build_node_rom(tmp_path / "build")
    mp = MicroPythonPole(local, tmp_path / "flash", image, speed=20, start=time.time())
    mp.start()
    try:
        wait_for(lambda: [m for c, m in got if c == "ack" and m["id"] == "1"], 30, "config ack")
        wait_for(lambda: len([m for c, m in got if c == "meas"]) >= 2, 30, "two batches")
        wait_for(lambda: [m for c, m in got if c == "state" and m.get("level") == 0.3], 30,
                 "the config's level")  # fmt: skip
    finally:
        mp.stop()
        obs.loop_stop()
        obs.disconnect()
    acks = [m for c, m in got if c == "ack" and m["id"] == "1"]
    assert acks[0]["status"] == "applied", acks
    assert not [x for x in mp.output if "Error" in x], mp.output
    assert mp.budget_kib == ESP32_HEAP_KIB + TLS_HEAP_KIB


# ---- firmware downloads over https -------------------------------------------------------------


class HttpsServer:
    """An https server for one file, recording each request line it was sent."""

    def __init__(self, files: ServerFiles, body: bytes) -> None:
        requests: list[str] = []
        self.requests = requests

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                requests.append(self.requestline)
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *_: object) -> None:
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(files.cert, files.key)
        self.httpd.socket = ctx.wrap_socket(self.httpd.socket, server_side=True)
        self.url = f"https://127.0.0.1:{self.httpd.server_address[1]}/fw/0.2.0.spa"
        self._thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self._thread.start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.mark.parametrize(
    ("server", "error"),
    [
        ("good", None),
        ("evil", "not correctly signed by the trusted CA"),
        ("other_name", "CN"),
        ("no_context", "https needs the CA from node.json"),
    ],
)
def test_firmware_download_over_https_verifies_on_micropython(
    pki: Pki, tmp_path: Path, mpy_tree: Path, server: str, error: str | None
) -> None:
    """A firmware server with another CA's certificate, or the street CA's certificate for
    another name, is refused before the request is sent; so is https without the node's CA."""
    body = bytes(range(256)) * 40
    srv = HttpsServer(getattr(pki, "good" if server == "no_context" else server), body)
    ca = tmp_path / "ca.pem"
    ca.write_bytes(pki.ca.cert_pem)
    try:
        proc = run_micropython(
            ROOT / "tests" / "mp" / "https_get.py", srv.url,
            "-" if server == "no_context" else str(ca), mpy_root=mpy_tree, timeout=60,
        )  # fmt: skip
    finally:
        srv.close()
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    if error is None:
        assert out == {"got": len(body), "sha": hashlib.sha256(body).hexdigest()}, out
        assert srv.requests == ["GET /fw/0.2.0.spa HTTP/1.1"]
    else:
        assert error in out["error"], out
        assert srv.requests == []


@pytest.mark.parametrize(("server", "error"), [("good", None), ("evil", "certificate verify")])
def test_firmware_download_over_https_verifies_on_cpython(
    pki: Pki, server: str, error: str | None
) -> None:
    from spnode import httpget
    from spnode.tlsctx import client_context

    body = b"firmware" * 100
    srv = HttpsServer(getattr(pki, server), body)
    got: list[bytes] = []
    try:
        ctx = client_context(pki.ca.cert_pem.decode())
        n = asyncio.run(httpget.get(srv.url, got.append, ssl=ctx, timeout_s=5))
        assert error is None and n == len(body) and b"".join(got) == body
    except ssl.SSLCertVerificationError as e:
        assert error is not None and error in str(e)
        assert srv.requests == [] and got == []
    finally:
        srv.close()


# ---- provisioning ------------------------------------------------------------------------------


@pytest.mark.parametrize("tls_broker", ["good"], indirect=True)
def test_provisioning_hands_out_the_ca_and_the_node_connects_with_it(
    tls_broker: Broker, pki: Pki, tmp_path: Path
) -> None:
    """The controller (on the plaintext listener, as in `make run`) provisions a node for the
    mqtts:// listener: the credentials carry the CA and server name, node.json made from them
    passes the node's own check, and the node connects with it."""
    from tests.harness.api import running_api
    from tests.test_operator_api import setup_street

    url = f"mqtts://127.0.0.1:{tls_broker.config.tls_port}"
    with running_api(
        tmp_path / "ctl", mqtt_url=tls_broker.url, node_mqtt_url=url,
        node_ca_file=pki.good.ca, node_tls_server_name="localhost",
    ) as api:  # fmt: skip
        setup_street(api)
        cred = api.ok("admin", "POST", "/api/nodes", json={"pole": "RTD-0001", "node": "n1"})
    assert cred["broker_url"] == url and cred["broker_server_name"] == "localhost"
    assert cred["broker_ca"] == pki.ca.cert_pem.decode()
    cfg = NodeConfig({
        "pole": "RTD-0001", "node": "n1", "wifi": {"ssid": "s"}, "broker": cred["broker_url"],
        "username": cred["mqtt_username"], "password": cred["mqtt_password"],
        "update_key": cred["update_key"], "ca": cred["broker_ca"],
        "server_name": cred["broker_server_name"],
    })  # fmt: skip
    client = asyncio.run(_cpython_connect(cfg))
    assert client.connects == 1 and refused(client) is None, client.last_error


def test_a_node_ca_file_without_a_certificate_stops_the_controller(tmp_path: Path) -> None:
    from pydantic import ValidationError

    from controller.settings import Settings

    bad = tmp_path / "ca.pem"
    bad.write_text("not a certificate")
    for path in (bad, tmp_path / "missing.pem"):
        with pytest.raises(ValidationError, match="node_ca_file"):
            Settings(node_ca_file=path, _env_file=None)  # type: ignore[call-arg]


@pytest.mark.slow
def test_field_tools_write_the_ca_into_node_json(tmp_path: Path, pki: Pki) -> None:
    """`streetpole node provision` against a controller whose nodes use mqtts://: node.json on
    the node (a virtual node, MicroPython) gets the broker's CA and name, and the node's own
    check of node.json (its TLS context made from that CA) accepts it."""
    import httpx
    from typer.testing import CliRunner

    from controller.app import create_app
    from controller.registry.accounts import create_token, create_user
    from controller.registry.db import Registry
    from controller.settings import Settings
    from fieldtools.snippets import SIM_RIG, rig_json
    from fieldtools.virtual_node import VirtualNode
    from streetpole.cli import app
    from tests.harness.server import serve

    def cli(*args: str) -> tuple[int, str]:
        r = CliRunner().invoke(app, ["node", *args])
        return r.exit_code, r.output

    url = f"sqlite:///{tmp_path / 'registry.db'}"
    reg = Registry(url)
    create_user(reg, "admin", "correct horse battery", "admin")
    token = create_token(reg, "admin", "test")
    reg.close()
    node_url = "mqtts://broker.example.org:8883"
    settings = Settings(
        data_dir=tmp_path, database_url=url, mqtt_url="mqtt://127.0.0.1:1", _env_file=None,
        dispatch_enabled=False, ingest_enabled=False, node_mqtt_url=node_url,
        node_ca_file=pki.good.ca, node_tls_server_name="broker.example.org",
    )  # type: ignore[call-arg]  # fmt: skip
    flash = tmp_path / "flash"
    flash.mkdir()
    (flash / "sim_rig.py").write_text(SIM_RIG)
    (flash / "rig.json").write_bytes(rig_json(hardware_id="sim-tls001"))
    with serve(create_app(settings)) as base, VirtualNode(flash, heap="256k") as vnode:
        auth = {"Authorization": f"Bearer {token}"}
        owner = httpx.post(base + "/api/owners", json={"name": "R", "slug": "r"}, headers=auth)
        pole = {"id": "TLS-0001", "lat": 51.9, "lon": 4.48, "owner_id": owner.json()["id"]}
        assert httpx.post(base + "/api/poles", json=pole, headers=auth).status_code == 201
        port = str(vnode.tty)
        code, out = cli("deploy", "--port", port, "--board", "sim")
        assert code == 0, out
        code, out = cli("provision", "--pole", "TLS-0001", "--wifi-ssid", "s", "--port", port,
                        "--controller", base, "--token", token)  # fmt: skip
        assert code == 0, out
    local = json.loads((flash / "node.json").read_text())
    assert local["broker"] == node_url and local["server_name"] == "broker.example.org"
    assert local["ca"] == pki.ca.cert_pem.decode()
