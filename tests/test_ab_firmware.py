"""The whole node firmware on A/B app slots: two different frozen 32-bit images, the node
updated from A to B through MQTT and HTTP as the controller would, against a real mosquitto.

The node is flashed with image A; each "boot" is the bootloader's pick (tests/harness/abnode.py)
running the binary in the slot it picked, and each end of that process is a reset. B is kept
after its probation (the node came online, marked it valid, and B boots again); a badly signed
command, one for another node and an image for another device are refused, A running on; a reset
in the middle of B's download boots A again and the download resumes where it was recorded; an
image that crashes at start and one that never comes online are both given up and B runs on.
"""

from __future__ import annotations

import hashlib
import http.server
import json
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from controller.broker import Broker
from protocols import topics
from spnode.board import simota
from spnode.imgupdate import BLOCK
from spnode.update import sign
from tests.harness import mpbuild
from tests.harness.abnode import boot_command, build_images, flash_slots
from tests.harness.paths import ROOT
from tests.test_node_firmware import CONFIG, EVERY_SENSOR, Observer

pytestmark = pytest.mark.slow

SCRIPT = ROOT / "tests" / "mp" / "node_run.py"
BOARD = ROOT / "hardware" / "boards" / "sim.json"
KEY = bytes(range(16, 48))
HEAP_KIB = 64  # a frozen image's node on 32 bits (issue #21)
SPEED = 20
TRIAL_S = 60  # node seconds: 3 s here


@pytest.fixture(scope="session")
def images() -> dict[str, bytes]:
    try:
        return {name: path.read_bytes() for name, path in build_images().items()}
    except mpbuild.Unavailable as e:
        pytest.skip(str(e))


class ImageServer:
    """Serves ``payload`` with Range requests (spnode.httpget resumes with them); with
    ``stall_at`` set, a response stops sending there and holds the connection until
    ``release`` (the test resets the node meanwhile)."""

    def __init__(self) -> None:
        outer = self
        self.payload = b""
        self.offsets: list[int] = []
        self.sent = 0  # the furthest byte sent
        self.stall_at: int | None = None
        self.released = threading.Event()

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                rng = self.headers.get("Range", "")
                start = int(rng[6:-1]) if rng.startswith("bytes=") else 0
                outer.offsets.append(start)
                body = outer.payload
                self.send_response(206 if start else 200)
                self.send_header("Content-Length", str(len(body) - start))
                self.end_headers()
                for i in range(start, len(body), 8192):
                    stall = outer.stall_at
                    if stall is not None and i >= stall:
                        outer.released.wait(30)
                        return
                    self.wfile.write(body[i : i + 8192])
                    outer.sent = max(outer.sent, min(i + 8192, len(body)))

            def log_message(self, *args: object) -> None:
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/fw.bin"

    def close(self) -> None:
        self.released.set()
        self.httpd.shutdown()


def update_cmd(ident: str, url: str, img: bytes, version: str, target: str,
               key: bytes = KEY) -> dict[str, Any]:  # fmt: skip
    now = int(time.time())
    digest = hashlib.sha256(img).hexdigest()
    cmd: dict[str, Any] = {"id": ident, "ts": now, "cmd": "update", "url": url,
                           "version": version, "size": len(img), "sha256": digest,
                           "expiry": now + 600}  # fmt: skip
    cmd["sig"] = sign(cmd, key, target)
    return cmd


@pytest.fixture
def observer(broker: Broker) -> Iterator[Observer]:
    obs = Observer(broker, f"P-{broker.port}")
    try:
        yield obs
    finally:
        obs.close()
    assert not obs.bad, obs.bad


def test_a_to_b_kept_bad_images_rolled_back_reset_mid_download(
    broker: Broker, observer: Observer, images: dict[str, bytes], tmp_path: Path
) -> None:
    obs, pole = observer, observer.pole
    me = f"{pole}/n1"
    ota, data = tmp_path / "ota", tmp_path / "data"
    data.mkdir()
    flash_slots(ota, images["A"])
    srv = ImageServer()
    obs.publish(topics.CONFIG, CONFIG, retain=True)
    args = [str(BOARD), broker.host, str(broker.port), pole, "n1", str(data), str(SPEED),
            KEY.hex(), EVERY_SENSOR, str(ota), str(TRIAL_S)]  # fmt: skip
    env = {"MICROPYPATH": ".frozen"}  # the code is the image's: nothing from files
    boots: list[tuple[str, dict[str, Any]]] = []  # (slot, first line it printed)
    node: subprocess.Popen[str] | None = None

    seen = 0  # state messages before the current boot
    retries: list[str] = []  # downloads tried again at the next boot, short of heap

    def boot() -> str:
        nonlocal node, seen
        seen = len(obs.messages(topics.STATE))
        cmd = boot_command(ota, SCRIPT, *args, heap_kib=HEAP_KIB)
        node = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                text=True)  # fmt: skip
        return Path(cmd[0]).name

    def online(version: str) -> dict[str, Any]:
        st = obs.wait(f"online with {version}", lambda: obs.states(seen, status="online"))[0]
        assert st["fw"] == version, st
        return st  # type: ignore[no-any-return]

    def ends(reason: str | None) -> None:
        """The run ends: asking for a reset (``reason``) or crashing (None)."""
        assert node is not None
        out, err = node.communicate(timeout=30)
        print("node output:", out[-1500:], err[-500:])
        lines = [json.loads(x) for x in out.splitlines() if x.startswith("{")]
        boots.append((simota.read_otadata(str(ota))["running"], lines[0] if lines else {}))
        if reason is None:
            assert node.returncode != 0 and "a bad image" in out + err, (node.returncode, out, err)
            return
        assert node.returncode == 0, err
        assert lines[-1]["exit"] == reason, lines

    def send(ident: str, cmd: dict[str, Any], status: str) -> dict[str, Any]:
        obs.publish(topics.CMD, cmd)
        ack = obs.wait(f"{ident} {status}", lambda: obs.ack(ident))
        assert ack["status"] == status, ack
        return ack  # type: ignore[no-any-return]

    def final(ident: str, timeout: float = 60) -> dict[str, Any]:
        """The download's verdict. A boot whose download ran out of heap reboots to try again
        (docs/firmware.md, step 3): the runner boots it again, as a board resets, twice at most."""
        for _ in range(3):
            assert node is not None
            got = obs.wait(
                f"{ident} done, or a reboot to try again",
                lambda p=node: ((a := obs.ack(ident)) and a["status"] != "accepted" and a)
                or p.poll() is not None,
                timeout=timeout,
            )  # fmt: skip
            if got is not True:
                return got  # type: ignore[no-any-return]
            ends("reboot")
            retries.append(ident)
            print(f"{ident}: the node rebooted to download it again")
            boot()
        raise AssertionError(f"{ident}: no verdict after three boots")

    try:
        assert boot() == "ota_0"
        online("0.1.0")
        assert obs.wait("config applied", lambda: obs.ack("1"))["status"] == "applied"

        # refused before anything is kept: a forged signature, a command for another node
        srv.payload = images["B"]
        send("f-1", update_cmd("f-1", srv.url, images["B"], "0.2.0", me, key=b"\1" * 32),
             "rejected")  # fmt: skip
        send("f-2", update_cmd("f-2", srv.url, images["B"], "0.2.0", pole + "x/n1"), "rejected")
        assert srv.offsets == [] and not (data / "update.cmd").exists()

        # an image for another device (an ARM binary's header): downloaded, refused, A runs on
        arm = bytearray(images["B"])
        arm[18:20] = b"\x28\x00"
        srv.payload = bytes(arm)
        send("f-3", update_cmd("f-3", srv.url, srv.payload, "0.2.0", me), "accepted")
        ends("reboot")
        assert boot() == "ota_0"
        ack = final("f-3")
        assert (ack["status"], ack["reason"]) == ("failed", "image: not an image for this device")
        assert simota.read_otadata(str(ota))["boot"] == "ota_0"

        # B, with a reset in the middle of its download: A boots again and the download resumes
        srv.payload, srv.offsets = images["B"], []
        srv.stall_at = 40 * BLOCK
        send("up-b", update_cmd("up-b", srv.url, images["B"], "0.2.0", me), "accepted")
        ends("reboot")
        assert boot() == "ota_0"
        obs.wait("the download stalled", lambda: srv.sent >= 40 * BLOCK)
        recorded = obs.wait(
            "a progress record", lambda: (data / "image.part").exists() and json.loads(
                (data / "image.part").read_text())["blocks"] >= 32)  # fmt: skip
        assert node is not None
        node.kill()  # the reset
        node.communicate(timeout=10)
        boots.append(("ota_0", {}))
        srv.stall_at = None
        srv.released.set()
        assert simota.read_otadata(str(ota))["boot"] == "ota_0"
        assert boot() == "ota_0"  # A runs on, and resumes the download
        ack = final("up-b")
        assert ack["status"] == "applied", ack
        assert srv.offsets[0] == 0 and srv.offsets[-1] == 32 * BLOCK, (srv.offsets, recorded)
        ends("reboot")

        # B boots once on probation, comes online and keeps itself; it boots again after a reset
        assert boot() == "ota_1"
        online("0.2.0")
        obs.wait("B marked valid", lambda: simota.read_otadata(str(ota))["state"] == "valid")
        send("rb-1", {"id": "rb-1", "ts": int(time.time()), "cmd": "reboot"}, "applied")
        ends("reboot")
        assert boot() == "ota_1"
        online("0.2.0")

        # an image that crashes at start: given up at the next reset, B runs on
        srv.payload = images["crash"]
        send("up-c", update_cmd("up-c", srv.url, srv.payload, "0.3.0", me), "accepted")
        ends("reboot")
        assert boot() == "ota_1"
        assert final("up-c")["status"] == "applied"
        ends("reboot")
        assert boot() == "ota_0"
        ends(None)  # the crash
        assert boot() == "ota_1"
        online("0.2.0")
        st = json.loads((data / "image.json").read_text())
        assert st["last"].startswith("rolled back 0.3.0 to 0.2.0"), st

        # an image that never comes online: not healthy within its probation, B again
        srv.payload = images["offline"]
        send("up-d", update_cmd("up-d", srv.url, srv.payload, "0.3.1", me), "accepted")
        ends("reboot")
        assert boot() == "ota_1"
        assert final("up-d")["status"] == "applied"
        ends("reboot")
        assert boot() == "ota_0"
        ends("reboot")  # its probation ran out: the previous image set to boot
        assert boot() == "ota_1"
        online("0.2.0")
        st = json.loads((data / "image.json").read_text())
        assert "not healthy within 60 s" in st["last"], st
        ends_at = len(boots)
        send("rb-2", {"id": "rb-2", "ts": int(time.time()), "cmd": "reboot"}, "applied")
        ends("reboot")
        assert len(boots) == ends_at + 1
        print("boots (slot, heap after boot):", boots, "downloads tried again:", retries)
    finally:
        if node is not None and node.poll() is None:
            node.kill()
            out, err = node.communicate()
            print("the node's last output:", out[-2000:], err[-2000:])
        srv.close()
