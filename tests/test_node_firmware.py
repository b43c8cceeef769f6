"""The whole node firmware (spnode.app.Node) on the MicroPython unix port, from the .mpy tree, on
the simulated board, against a real mosquitto: boot and birth, measurement batches, remote
config applied and rejected, override, neighbour wake, a broker restart without losing buffered
batches, and refused updates. The node's clock runs 20x real time (reporting every 10 node
seconds = 0.5 s); the test observes through MQTT only, as the controller would."""

from __future__ import annotations

import hashlib
import http.server
import json
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import paho.mqtt.client as paho
import pytest

from controller.broker import Broker, BrokerConfig, free_port
from protocols import codec, topics
from simulator.mpnodes import MP_SENSORS
from simulator.unixport import FROZEN_HEAP_KIB, interpreter_info, pypi_binary
from spnode.sim.fitted import MIC_DB
from spnode.update import pack, sign
from tests.conftest import Trees
from tests.harness.micropython import NODE_HEAP_KIB, micropython_env, node_command
from tests.harness.paths import ROOT

SCRIPT = ROOT / "tests" / "mp" / "node_run.py"
BOARD = ROOT / "hardware" / "boards" / "sim.json"
KEY = bytes(range(16, 48))
SPEED = 20
EVERY_SENSOR = ",".join(MP_SENSORS)  # PM, climate, NO2, noise (a tone at the mic), PIR, radar

CONFIG: dict[str, Any] = {
    "version": 1,
    "report_period_s": 10,
    "tz": "UTC0",
    "neighbours": [{"pole": "P-nb", "node": "n1"}],
    "dimming": {
        "programs": {"low": {"steps": [{"at": "00:00", "level": 0.2}]}},
        "default_program": "low",
        "min_level": 0.1,
        "presence": {"level": 1.0, "hold_s": 120, "ramp_up_s": 1, "ramp_down_s": 5,
                     "neighbour_level": 0.7},
    },
}  # fmt: skip


@dataclass
class NodeBuild:
    """An interpreter the node runs on, where its code comes from, and the heap it is held to."""

    interpreter: str
    rom: Path | None  # a ROMFS image of the code; None: frozen into the interpreter
    heap_kib: int

    def command(self, *args: str, sensors: str = EVERY_SENSOR) -> list[str]:
        return node_command(SCRIPT, *args, sensors, heap=f"{self.heap_kib}k", rom=self.rom,
                            interpreter=self.interpreter)  # fmt: skip


@pytest.fixture(params=["32-bit", "frozen"])
def node_build(request: pytest.FixtureRequest, mpy_trees: Trees) -> NodeBuild:
    """The node as an ESP32 runs it, every sensor attached: the 32-bit port with the code in a
    ROMFS image, in an ESP32's 96 KiB besides it; or frozen in, in 64 KiB (docs/firmware.md)."""
    if request.param == "32-bit":
        unix32: str = request.getfixturevalue("unix32")
        return NodeBuild(unix32, mpy_trees.rom(interpreter_info(unix32).march), NODE_HEAP_KIB)
    frozen32: str = request.getfixturevalue("frozen32")
    return NodeBuild(frozen32, None, FROZEN_HEAP_KIB)


@pytest.fixture
def pbroker(tmp_path: Path) -> Iterator[Broker]:
    """A mosquitto with persistence, so a restart keeps retained messages and the observer's
    session (whatever the node sends while the observer reconnects is queued, not lost)."""
    work = tmp_path / "broker"
    b = Broker(work, BrokerConfig(port=free_port(), persistence_dir=work))
    b.start()
    try:
        yield b
    finally:
        b.stop()
    assert not b.dropped_messages_logged(), b.log()


class Observer:
    """The controller's view: every message under the pole, decoded and validated."""

    def __init__(self, broker: Broker, pole: str) -> None:
        self.pole = pole
        self.got: list[tuple[str, dict[str, Any], bool]] = []
        self.bad: list[str] = []
        self.lock = threading.Lock()
        self.c = paho.Client(
            paho.CallbackAPIVersion.VERSION2, client_id="observer-" + pole, clean_session=False
        )
        self.c.reconnect_delay_set(0.05, 0.2)
        self.c.on_connect = lambda c, *_: c.subscribe(topics.PREFIX + "/" + pole + "/#", qos=1)
        self.c.on_message = self._on_message
        self.c.connect(broker.host, broker.port, keepalive=10)
        self.c.loop_start()

    def _on_message(self, _c: paho.Client, _u: object, m: paho.MQTTMessage) -> None:
        t = topics.Topic.parse(m.topic)
        if t.channel in (topics.CONFIG, topics.CMD):
            return  # ours
        try:
            _, msg = codec.parse(m.topic, m.payload)
        except Exception as e:  # anything the node sends must pass the codec
            self.bad.append(f"{m.topic}: {e}: {m.payload!r}")
            return
        with self.lock:
            self.got.append((t.channel, msg, bool(m.retain)))

    def publish(self, channel: str, msg: dict[str, Any], node: str = "n1", **kw: Any) -> None:
        t = str(topics.Topic(self.pole, node, channel))
        self.c.publish(t, json.dumps(msg).encode(), qos=1, **kw).wait_for_publish(5)

    def messages(self, channel: str) -> list[dict[str, Any]]:
        with self.lock:
            return [m for ch, m, _ in self.got if ch == channel]

    def wait(self, what: str, cond: Callable[[], Any], timeout: float = 20.0) -> Any:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = cond()
            if found:
                return found
            time.sleep(0.02)
        raise AssertionError(f"not seen: {what}; bad={self.bad}; got={self.got[-8:]}")

    def states(self, since: int = 0, **match: Any) -> list[dict[str, Any]]:
        """State messages from the ``since``-th on whose fields equal ``match``."""
        got = self.messages(topics.STATE)[since:]
        return [m for m in got if all(m.get(k) == v for k, v in match.items())]

    def ack(self, ident: str) -> dict[str, Any] | None:
        final = [a for a in self.messages(topics.ACK) if a["id"] == ident]
        return final[-1] if final else None

    def close(self) -> None:
        self.c.loop_stop()
        self.c.disconnect()


class FirmwareServer:
    """An HTTP server handing out whatever bytes the test puts in ``payload``."""

    def __init__(self) -> None:
        outer = self
        self.payload = b""

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                self.send_response(200)
                self.send_header("Content-Length", str(len(outer.payload)))
                self.end_headers()
                self.wfile.write(outer.payload)

            def log_message(self, *args: object) -> None:
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/fw.spa"

    def close(self) -> None:
        self.httpd.shutdown()


def update_cmd(
    ident: str, url: str, archive: bytes, key: bytes, target: str, **over: Any
) -> dict[str, Any]:
    now = int(time.time())
    cmd: dict[str, Any] = {"id": ident, "ts": now, "cmd": "update", "url": url,
                           "version": "0.2.0", "size": len(archive),
                           "sha256": hashlib.sha256(archive).hexdigest(), "expiry": now + 600,
                           **over}  # fmt: skip
    cmd["sig"] = sign(cmd, key, target)
    return cmd


def test_whole_firmware_on_micropython(
    pbroker: Broker, node_build: NodeBuild, tmp_path: Path
) -> None:
    pole = f"P-{pbroker.port}"
    obs = Observer(pbroker, pole)
    fw = FirmwareServer()
    flash = tmp_path / "flash"
    flash.mkdir()
    obs.publish(topics.CONFIG, CONFIG, retain=True)
    args = [str(BOARD), pbroker.host, str(pbroker.port), pole, "n1", str(flash), str(SPEED),
            KEY.hex()]  # fmt: skip
    cmd = node_build.command(*args)
    env = micropython_env(rom=True)  # nothing on the path: the code is in the image or frozen

    def boot() -> subprocess.Popen[str]:
        return subprocess.Popen(
            cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )

    def ends(node: subprocess.Popen[str], reason: str) -> None:
        """The node's run ends (asking its runner to reset it) and the process exits cleanly."""
        out, err = node.communicate(timeout=20)
        assert node.returncode == 0, err
        lines = [json.loads(x) for x in out.splitlines() if x.startswith("{")]
        assert lines[-1]["exit"] == reason and lines[-1]["dropped"] == 0, lines[-1]
        print("node heap after boot", lines[0], "at exit", lines[-1])

    node = boot()
    try:
        # boot: birth state, retained, then the retained config taken and acknowledged
        births = obs.wait("birth", lambda: obs.states(status="online"))
        assert births[0]["boot"] == 1 and births[0]["reset_cause"] == "power_on"
        assert obs.wait("config ack", lambda: obs.ack("1")) == {
            "id": "1", "kind": "config", "ts": obs.ack("1")["ts"], "status": "applied"}  # fmt: skip
        late = Observer(pbroker, pole + "x")  # a newcomer sees the retained state
        late.c.subscribe(str(topics.Topic(pole, "n1", topics.STATE)), qos=1)
        obs.wait(
            "retained state", lambda: [r for ch, m, r in late.got if r and m["status"] == "online"]
        )
        late.close()

        # measurement batches, with the lamp's readings, seq counting up
        batches = obs.wait(
            "3 batches", lambda: len(obs.messages("meas")) >= 3 and obs.messages("meas")
        )
        qs = {r["q"] for r in batches[0]["readings"]}
        assert {"illuminanceLevel", "powerConsumption", "energyConsumed", "presenceCount"} <= qs
        assert [b["seq"] for b in batches[:3]] == [0, 1, 2]
        # every sensor reports (the PM after its warm-up): the climate, the NO2 cell, the radar,
        # and the microphone its 1 kHz tone at the level it is played (A-weighting: 0 dB there)
        want = {"pm25", "temperature", "no2", "LAeq", "presenceCount", "illuminanceLevel"}
        full = obs.wait("a batch from every sensor", lambda: [
            b for b in obs.messages("meas") if want <= {r["q"] for r in b["readings"]}
        ])[0]  # fmt: skip
        assert {r["src"] for r in full["readings"]} >= {"pm", "climate", "no2", "noise", "radar"}
        laeq = next(r["v"] for r in full["readings"] if r["q"] == "LAeq")
        assert abs(laeq - MIC_DB) < 0.5, full
        # the controller's confirmation (played here): the node frees the first two; seq 2 and
        # the later ones it keeps, and sends again after the broker restart below
        obs.publish(topics.STORED, {"batches": [[1, 0, 1]]})
        obs.wait("program level 0.2", lambda: obs.messages("state")[-1]["level"] == 0.2)

        # a bad config is rejected with the codec's reason; the old one stays in force
        bad = json.loads(json.dumps(CONFIG))
        bad["version"] = 2
        bad["dimming"]["default_program"] = "bright"
        obs.publish(topics.CONFIG, bad, retain=True)
        ack = obs.wait("config 2 rejected", lambda: obs.ack("2"))
        assert ack["status"] == "rejected"
        assert ack["reason"] == "dimming.default_program: names no program in dimming.programs"

        # override: acknowledged, the light goes to the level; revert: back to config 1's program
        n_states = len(obs.messages(topics.STATE))
        obs.publish(
            topics.CMD, {"id": "ov-1", "ts": int(time.time()), "cmd": "override", "level": 1.0}
        )
        assert obs.wait("override ack", lambda: obs.ack("ov-1"))["status"] == "applied"
        st = obs.wait("level 1.0", lambda: obs.states(n_states, level=1.0))[-1]
        assert st["config_version"] == 1  # the rejected version 2 did not replace it
        n_states = len(obs.messages("state"))
        obs.publish(topics.CMD, {"id": "rv-1", "ts": int(time.time()), "cmd": "revert"})
        assert obs.wait("revert ack", lambda: obs.ack("rv-1"))["status"] == "applied"
        obs.wait("back to 0.2", lambda: obs.states(n_states, level=0.2))

        # a configured neighbour reports presence: the light runs ahead to neighbour_level
        n_states = len(obs.messages("state"))
        obs.publish(topics.PRESENCE, {"ts": int(time.time()), "src": "motion"}, node="n1")
        nb = str(topics.Topic("P-nb", "n1", topics.PRESENCE))
        obs.c.publish(nb, json.dumps({"ts": int(time.time()), "src": "motion"}), qos=0)
        obs.wait("neighbour wake 0.7", lambda: obs.states(n_states, level=0.7))

        # broker restart: the node buffers while it is away and sends everything afterwards
        seq_before = max(b["seq"] for b in obs.messages("meas"))
        n_states = len(obs.messages("state"))
        pbroker.stop()
        time.sleep(2.0)  # 40 node seconds: four reporting periods with no broker
        pbroker.start()
        rebirth = obs.wait("rebirth", lambda: obs.states(n_states, status="online"))[0]
        assert rebirth["buffered"] >= 2, rebirth  # batches waited in the node's buffer
        target = seq_before + 4 + rebirth["buffered"]

        def all_seqs() -> set[int]:
            return {b["seq"] for b in obs.messages("meas")}

        obs.wait("every batch after the restart", lambda: max(all_seqs()) >= target)
        seqs = all_seqs()
        assert seqs == set(range(max(seqs) + 1)), sorted(set(range(max(seqs) + 1)) - seqs)
        assert rebirth["dropped"] == 0
        sent = [b["seq"] for b in obs.messages("meas")]
        assert [sent.count(q) for q in (0, 1)] == [1, 1], sent  # confirmed: freed
        assert sent.count(2) >= 2, sent  # sent, not confirmed: kept, sent again

        # updates: a spoofed signature is refused before anything is kept or downloaded
        archive = pack([("spnode/hello.py", b"print('hi')\n")])
        fw.payload = archive
        me = f"{pole}/n1"
        spoofed = update_cmd("up-1", fw.url, archive, b"\x01" * 32, me)
        obs.publish(topics.CMD, spoofed)
        ack = obs.wait("update up-1 refused", lambda: obs.ack("up-1"))
        assert (ack["status"], ack["reason"]) == ("rejected", "sig: signature does not match")
        # replays and forgeries with the right key: each refused with its reason, nothing kept
        t0 = int(time.time())
        attacks = {
            "up-a": (update_cmd("up-a", fw.url, archive, KEY, pole + "x/n1"), "sig: signature"),
            "up-b": (dict(update_cmd("up-z", fw.url, archive, KEY, me), id="up-b"), "sig: sig"),
            "up-c": (update_cmd("up-c", fw.url, archive, KEY, me, expiry=t0 - 1), "expiry: "),
            "up-d": (update_cmd("up-d", fw.url, archive, KEY, me, version="0.0.9"), "version: "),
        }
        for forged, _ in attacks.values():
            obs.publish(topics.CMD, forged)
        for ident, (_, reason) in attacks.items():
            ack = obs.wait(f"update {ident} refused", lambda i=ident: obs.ack(i))
            assert ack["status"] == "rejected" and ack["reason"].startswith(reason), ack
        assert not (flash / "update.cmd").exists()

        boots = 1
        sent: dict[str, dict[str, Any]] = {}

        def update(ident: str, **over: Any) -> dict[str, Any]:
            """Send an authentic update: accepted, the node reboots, and the next boot downloads
            it; the final ack. A boot whose download ran out of heap reboots to try again
            (docs/firmware.md, "The margin at 96 KiB"): the runner is started again, as a board
            resets, at most twice."""
            nonlocal node, boots
            sent[ident] = update_cmd(ident, fw.url, archive, KEY, me, **over)
            obs.publish(topics.CMD, sent[ident])
            ack = obs.wait(f"update {ident} accepted", lambda: obs.ack(ident))
            assert ack["status"] == "accepted", ack
            for _ in range(3):
                ends(node, "reboot")
                node, boots = boot(), boots + 1
                final = obs.wait(
                    f"update {ident} done, or a reboot to try again",
                    lambda p=node: (
                        ((a := obs.ack(ident)) and a["status"] != "accepted" and a)
                        or p.poll() is not None
                    ),
                )
                if final is not True:
                    return final  # type: ignore[no-any-return]
                print(f"update {ident}: the node rebooted to download it again")
            raise AssertionError(f"update {ident}: no verdict after three boots")

        # an authentic one is downloaded at the boot after it is accepted, with the heap whole:
        # a swapped image fails its hash, nothing is staged, the node carries on
        fw.payload = pack([("spnode/hello.py", b"print('XX')\n")])  # same size, other bytes
        ack = update("up-2")
        assert (ack["status"], ack["reason"]) == ("failed", "sha256: download does not match")
        assert [a["status"] for a in obs.messages("ack") if a["id"] == "up-2"] == [
            "accepted",
            "failed",
        ]
        assert not (flash / "app.new").exists() and not (flash / "update.cmd").exists()
        # the same command again (it failed, and was accepted once): refused as a replay
        obs.publish(topics.CMD, dict(sent["up-2"], id="up-2"))
        obs.wait("up-2 refused", lambda: [a for a in obs.messages("ack") if a["id"] == "up-2"
                                          and a["status"] == "rejected"])  # fmt: skip
        rej = [a for a in obs.messages("ack") if a["id"] == "up-2"][-1]
        assert rej["reason"].startswith("ts: not newer"), rej

        # reboot: acknowledged, then the node ends its run
        obs.publish(topics.CMD, {"id": "rb-1", "ts": int(time.time()), "cmd": "reboot"})
        assert obs.wait("reboot ack", lambda: obs.ack("rb-1"))["status"] == "applied"
        ends(node, "reboot")

        # a good image: accepted, downloaded at the next boot, staged, and the node reboots to
        # swap it in (spnode.update's tests cover the swap, probation and rollback)
        node, boots = boot(), boots + 1
        obs.wait(f"boot {boots} online", lambda: obs.states(status="online", boot=boots))
        fw.payload = archive
        ack = update("up-3")
        assert ack["status"] == "applied", ack
        ends(node, "reboot")
        assert (flash / "app.new" / "spnode" / "hello.py").read_bytes() == b"print('hi')\n"
        assert json.loads((flash / "update.json").read_text())["staged"] == "0.2.0"
        assert json.loads((flash / "update.seen").read_text())["v"] == "0.2.0"

        # 0.2.0 is now the highest it took: 0.2.0 again is refused, a signed rollback is taken
        node, boots = boot(), boots + 1
        obs.wait(f"boot {boots} online", lambda: obs.states(status="online", boot=boots))
        obs.publish(topics.CMD, update_cmd("up-4", fw.url, archive, KEY, me))
        ack = obs.wait("up-4 refused", lambda: obs.ack("up-4"))
        assert ack["reason"].startswith("version: 0.2.0 is not above 0.2.0"), ack
        obs.publish(topics.CMD, update_cmd("up-5", fw.url, archive, KEY, me, rollback=True))
        assert obs.wait("rollback accepted", lambda: obs.ack("up-5"))["status"] == "accepted"
        ends(node, "reboot")
    finally:
        if node.poll() is None:
            node.kill()
            out, err = node.communicate()
            print("the node's last output:", out[-2000:], err[-2000:])
        obs.close()
        fw.close()
    assert not obs.bad, obs.bad


def test_the_node_boots_and_reports_on_the_64bit_port(
    broker: Broker, mpy_trees: Trees, tmp_path: Path
) -> None:
    """A smoke test on the PyPI port (64-bit, twice the heap per object): lamp and PIR boot,
    report and take a reboot command in 96 KiB besides the image."""
    pypi = pypi_binary()
    build = NodeBuild(pypi, mpy_trees.rom(interpreter_info(pypi).march), NODE_HEAP_KIB)
    pole = f"S-{broker.port}"
    obs = Observer(broker, pole)
    obs.publish(topics.CONFIG, CONFIG, retain=True)
    args = [str(BOARD), broker.host, str(broker.port), pole, "n1", str(tmp_path), str(SPEED),
            KEY.hex()]  # fmt: skip
    node = subprocess.Popen(build.command(*args, sensors="pir"), env=micropython_env(rom=True),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)  # fmt: skip
    try:
        obs.wait("birth", lambda: obs.states(status="online"))
        assert obs.wait("config ack", lambda: obs.ack("1"))["status"] == "applied"
        batches = obs.wait(
            "2 batches", lambda: len(obs.messages("meas")) >= 2 and obs.messages("meas")
        )
        assert "presenceCount" in {r["q"] for r in batches[0]["readings"]}
        obs.publish(topics.CMD, {"id": "rb-1", "ts": int(time.time()), "cmd": "reboot"})
        out, err = node.communicate(timeout=20)
    finally:
        if node.poll() is None:
            node.kill()
            out, err = node.communicate()
        obs.close()
    assert node.returncode == 0, err
    assert json.loads(out.splitlines()[-1])["exit"] == "reboot"
    assert not obs.bad, obs.bad


def test_many_nodes_in_one_cpython_loop(broker: Broker, tmp_path: Path) -> None:
    """The simulator's way: several Node instances share one asyncio loop and a fast clock.
    Walking past pole A's PIR lights pole B (its configured neighbour) ahead of the walker."""
    import asyncio

    from spnode import boarddef
    from spnode.app import Node
    from spnode.board.sim import SimBoard
    from spnode.clock import ScaledClock

    pole = f"M-{broker.port}"
    bdef = boarddef.load(str(BOARD))

    def local(node: str) -> dict[str, Any]:
        return {"pole": pole, "node": node, "wifi": {"ssid": "sim"},
                "broker": f"mqtt://{broker.host}:{broker.port}", "sensors": ["pir"],
                "update_key": KEY.hex()}  # fmt: skip

    obs = Observer(broker, pole)
    cfg = json.loads(json.dumps(CONFIG))
    cfg["neighbours"] = [{"pole": pole, "node": "a"}]
    obs.publish(topics.CONFIG, cfg, node="b", retain=True)
    obs.publish(topics.CONFIG, dict(CONFIG, neighbours=[]), node="a", retain=True)

    async def main() -> None:
        boards = {n: SimBoard(bdef) for n in ("a", "b", "c")}
        nodes = {n: Node(b, local(n), clock=ScaledClock(SPEED)) for n, b in boards.items()}
        for n in nodes.values():
            n.start()
        loop = asyncio.get_running_loop()

        async def until(what: str, cond: Callable[[], bool], timeout: float = 15) -> None:
            deadline = loop.time() + timeout
            while not cond():
                assert loop.time() < deadline, what
                await asyncio.sleep(0.02)

        await until("configs", lambda: nodes["a"].remote.version == 1 == nodes["b"].remote.version)
        await until("program level", lambda: nodes["b"].level == 0.2 and nodes["a"].level == 0.2)
        pir = boards["a"].pin("pir")
        pir.set(1)  # someone walks past pole A
        pir.set(0)
        await until("A at presence level", lambda: nodes["a"].level == 1.0)
        await until("B woken by neighbour A", lambda: nodes["b"].level == 0.7)
        assert nodes["c"].level == 1.0  # no config for c: fail-safe full light
        await until("batches", lambda: all(n.seq >= 2 for n in nodes.values()))
        for n in nodes.values():
            n.stop()
            await n.shutdown()

    try:
        asyncio.run(main())
    finally:
        obs.close()
    events = [m for m in obs.messages(topics.EVENT) if m["kind"] == "presence"]
    assert events and events[0]["src"] == "pir"
    assert not obs.bad, obs.bad


def test_a_message_that_runs_out_of_heap_is_tried_again_not_lost() -> None:
    """A config or command whose handling raises MemoryError is handled again after a pause
    (what other tasks held may be gone); after the last try it counts as lost. Any other error
    is not tried again."""
    import asyncio

    from spnode import boarddef
    from spnode.app import RETRY_MS, Node
    from spnode.board.sim import SimBoard
    from spnode.clock import ScaledClock

    local = {"pole": "R-1", "node": "n1", "wifi": {"ssid": "sim"}, "sensors": ["pir"],
             "broker": "mqtt://127.0.0.1:1", "update_key": KEY.hex()}  # fmt: skip
    node = Node(SimBoard(boarddef.load(str(BOARD))), local, clock=ScaledClock(10_000))
    calls: list[bytes] = []

    def failing(times: int, error: Exception) -> Callable[[str, bytes], Any]:
        async def handle(topic: str, payload: bytes) -> None:
            calls.append(payload)
            if len(calls) <= times:
                raise error

        return handle

    async def run(times: int, error: Exception) -> int:
        """Calls of the handler for one message whose first ``times`` calls raise."""
        calls.clear()
        node._handle = failing(times, error)  # type: ignore[method-assign]
        node.inbox.append((node.t_cmd, b"x"))
        node._work.set()
        task = asyncio.create_task(node._commands())
        await asyncio.sleep(0.2)  # the pauses: 5 s at 10,000 times real time, and more
        task.cancel()
        return len(calls)

    assert asyncio.run(run(len(RETRY_MS) - 1, MemoryError())) == len(RETRY_MS)
    assert node.lost == 0  # the last try got through
    assert asyncio.run(run(len(RETRY_MS), MemoryError())) == len(RETRY_MS)
    assert node.lost == 1  # every try ran out: lost
    assert asyncio.run(run(1, ValueError("bad"))) == 1
    assert node.lost == 2  # not a heap shortage: not tried again
