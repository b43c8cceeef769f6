"""Whole-image A/B updates (spnode.imgupdate) on the file-backed slots (spnode.board.simota):
streamed into the other slot, verified, set to boot, booted once on probation by the bootloader
(tests/harness/abnode.py), kept when healthy, given up when not confirmed before a reset or
within its probation; refused when badly signed, for another node or device, or too big; a
download cut by a reset resumes. On CPython here, the same on MicroPython at the end; the
whole firmware on two frozen images: tests/test_ab_firmware.py."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import pytest

from spnode import boarddef
from spnode.board import simota
from spnode.board.sim import SimBoard
from spnode.imgupdate import BLOCK, ImageUpdater
from spnode.update import UpdateError, sign
from tests.harness.abnode import app_slot_bytes, flash_slots
from tests.harness.micropython import run_micropython
from tests.harness.paths import ROOT

BOARD = ROOT / "hardware" / "boards" / "sim.json"
KEY = bytes(range(32))
TARGET = "RTD-0001/n1"
TS = 1795582800
ELF32 = b"\x7fELF\x01\x01\x01" + bytes(11) + b"\x03\x00"  # magic, 32-bit LE, machine: x86


def image(tag: int, size: int = 20 * BLOCK + 123) -> bytes:
    body = hashlib.shake_256(bytes([tag])).digest(size - len(ELF32))
    return ELF32 + body


def command(img: bytes, version: str = "0.2.0", key: bytes = KEY, target: str = TARGET,
            **over: object) -> dict[str, object]:  # fmt: skip
    cmd: dict[str, object] = {"id": "c-" + version, "ts": TS, "cmd": "update",
                              "url": "http://fw.example.org/img", "version": version,
                              "size": len(img), "sha256": hashlib.sha256(img).hexdigest(),
                              "expiry": TS + 1800, **over}  # fmt: skip
    cmd["sig"] = sign(cmd, key, target)
    return cmd


class Node:
    """One boot of a node on A/B slots: the bootloader's pick, then the board and updater."""

    def __init__(self, tmp: Path, version: str) -> None:
        self.ota = tmp / "ota"
        self.data = tmp / "data"
        self.data.mkdir(exist_ok=True)
        self.slot = simota.select_boot(str(self.ota))
        self.board = SimBoard(boarddef.load(str(BOARD)), ota_dir=str(self.ota))
        self.up = ImageUpdater(self.board, str(self.data), version, trial_s=60)
        self.mode = self.up.boot()

    def install(self, cmd: dict[str, object], img: bytes, chunk: int = 700) -> str:
        inst = self.up.begin(cmd, KEY, TARGET)
        for i in range(inst.got, len(img), chunk):
            inst.feed(img[i : i + chunk])
        return str(inst.finish())


def slot_bytes(tmp: Path, label: str, n: int) -> bytes:
    return (tmp / "ota" / label).read_bytes()[:n]


@pytest.fixture
def flashed(tmp_path: Path) -> bytes:
    a = image(1)
    flash_slots(tmp_path / "ota", a)
    return a


def otadata(tmp: Path) -> dict[str, object]:
    return simota.read_otadata(str(tmp / "ota"))


def test_image_is_written_verified_booted_on_probation_and_kept(
    tmp_path: Path, flashed: bytes
) -> None:
    b = image(2)
    node = Node(tmp_path, "0.1.0")
    assert (node.slot, node.mode) == ("ota_0", "normal")
    assert node.install(command(b), b) == "0.2.0"
    assert slot_bytes(tmp_path, "ota_1", len(b)) == b
    assert otadata(tmp_path)["boot"] == "ota_1" and otadata(tmp_path)["state"] == "new"
    assert json.loads((tmp_path / "data" / "update.seen").read_text())["v"] == "0.2.0"
    # reset: the bootloader runs B once, pending; B comes online and keeps itself
    node = Node(tmp_path, "0.2.0")
    assert (node.slot, node.mode, otadata(tmp_path)["state"]) == ("ota_1", "trial", "pending")
    assert not node.up.trial_expired(59) and node.up.trial_expired(60)
    node.up.healthy()
    assert otadata(tmp_path)["state"] == "valid" and not node.up.trial_expired(600)
    node = Node(tmp_path, "0.2.0")
    assert (node.slot, node.mode) == ("ota_1", "normal")
    assert slot_bytes(tmp_path, "ota_0", len(flashed)) == flashed  # A stays, for the next one


def test_image_that_resets_before_it_is_confirmed_is_given_up(
    tmp_path: Path, flashed: bytes
) -> None:
    b = image(2)
    Node(tmp_path, "0.1.0").install(command(b), b)
    assert Node(tmp_path, "0.2.0").mode == "trial"  # then it crashed: no healthy()
    node = Node(tmp_path, "0.1.0")  # the bootloader went back to A
    assert (node.slot, node.mode) == ("ota_0", "rolled_back")
    assert "rolled back 0.2.0 to 0.1.0" in node.up.state()["last"]
    assert Node(tmp_path, "0.1.0").mode == "normal"


def test_image_not_healthy_within_its_probation_sets_the_previous_to_boot(
    tmp_path: Path, flashed: bytes
) -> None:
    b = image(2)
    Node(tmp_path, "0.1.0").install(command(b), b)
    node = Node(tmp_path, "0.2.0")
    assert node.up.trial_expired(60)
    node.up.rollback("not healthy within 60 s")  # spnode.app then resets the node
    assert otadata(tmp_path)["boot"] == "ota_0"
    node = Node(tmp_path, "0.1.0")
    assert (node.slot, node.mode) == ("ota_0", "normal")
    assert "not healthy within 60 s" in node.up.state()["last"]


def test_a_swapped_image_is_refused_and_nothing_boots_it(tmp_path: Path, flashed: bytes) -> None:
    b = image(2)
    evil = image(3, len(b))
    node = Node(tmp_path, "0.1.0")
    with pytest.raises(UpdateError, match=r"^sha256: download does not match$"):
        node.install(command(b), evil)
    assert otadata(tmp_path)["boot"] == "ota_0"
    assert Node(tmp_path, "0.1.0").slot == "ota_0"
    assert not (tmp_path / "data" / "update.seen").exists()


@pytest.mark.parametrize(
    ("cmd", "reason"),
    [
        (command(image(2), key=bytes(32)), r"^sig: signature does not match$"),
        (command(image(2), target="RTD-0002/n1"), r"^sig: signature does not match$"),
        (command(image(2), version="0.1.0"), r"^version: 0\.1\.0 is already running$"),
        (command(image(2), size=app_slot_bytes() + 1), r"^size: \d+ bytes do not fit the"),
    ],
)
def test_refused_before_anything_is_written(
    tmp_path: Path, flashed: bytes, cmd: dict[str, object], reason: str
) -> None:
    before = (tmp_path / "ota" / "ota_1").read_bytes()
    with pytest.raises(UpdateError, match=reason):
        Node(tmp_path, "0.1.0").up.begin(cmd, KEY, TARGET)
    assert (tmp_path / "ota" / "ota_1").read_bytes() == before


def test_an_image_for_another_device_is_refused(tmp_path: Path, flashed: bytes) -> None:
    arm = bytearray(image(2))
    arm[18:20] = b"\x28\x00"  # e_machine: ARM
    with pytest.raises(UpdateError, match=r"^image: not an image for this device$"):
        Node(tmp_path, "0.1.0").install(command(bytes(arm)), bytes(arm))
    assert otadata(tmp_path)["boot"] == "ota_0"


def test_a_reset_in_the_middle_of_the_download_resumes_it(tmp_path: Path, flashed: bytes) -> None:
    b = image(2, 40 * BLOCK + 5)
    cmd = command(b)
    inst = Node(tmp_path, "0.1.0").up.begin(cmd, KEY, TARGET)
    inst.feed(b[: 35 * BLOCK + 99])  # then the power went
    assert otadata(tmp_path)["boot"] == "ota_0"
    node = Node(tmp_path, "0.1.0")
    assert node.slot == "ota_0"  # A runs on
    inst = node.up.begin(cmd, KEY, TARGET)
    assert inst.got == 32 * BLOCK  # the last progress record: every 16 blocks
    inst.feed(b[inst.got :])
    assert inst.finish() == "0.2.0"
    assert slot_bytes(tmp_path, "ota_1", len(b)) == b
    assert not (tmp_path / "data" / "image.part").exists()
    # a record for another image does not resume: that one starts from 0
    c = image(4, 40 * BLOCK)
    node = Node(tmp_path, "0.2.0")
    node.up.healthy()
    inst = node.up.begin(command(c, version="0.3.0"), KEY, TARGET)
    inst.feed(c[: 17 * BLOCK])
    inst = Node(tmp_path, "0.2.0").up.begin(command(b, version="0.3.0"), KEY, TARGET)
    assert inst.got == 0


def test_a_staged_image_is_not_booted_while_another_overwrites_it(
    tmp_path: Path, flashed: bytes
) -> None:
    b, c = image(2), image(4)
    node = Node(tmp_path, "0.1.0")
    node.install(command(b), b)
    inst = node.up.begin(command(c, version="0.3.0"), KEY, TARGET)
    assert otadata(tmp_path)["boot"] == "ota_0"  # until c is whole and verified
    inst.feed(c[:BLOCK])
    assert Node(tmp_path, "0.1.0").slot == "ota_0"


def test_image_update_on_micropython(tmp_path: Path, flashed: bytes, mpy_tree: Path) -> None:
    """The same download on MicroPython, in 512-byte pieces as spnode.httpget hands them over:
    streamed into the slot with the heap it takes measured (docs/performance.md)."""
    b = image(2, 60 * BLOCK + 7)
    (tmp_path / "img.bin").write_bytes(b)
    (tmp_path / "cmd.json").write_text(json.dumps(command(b)))
    (tmp_path / "data").mkdir()
    script = ROOT / "tests" / "mp" / "imgupdate_check.py"
    out = run_micropython(
        script, str(tmp_path), KEY.hex(), TARGET, str(BOARD), mpy_root=mpy_tree
    ).stdout
    result = json.loads(out.strip().splitlines()[-1])
    assert result["version"] == "0.2.0", out
    assert slot_bytes(tmp_path, "ota_1", len(b)) == b
    assert otadata(tmp_path)["boot"] == "ota_1"
    assert result["heap_update_peak"] - result["heap_before"] < 6 * 1024, result
    print("heap of the image download (bytes):", result)
    assert os.path.getsize(tmp_path / "ota" / "ota_1") == app_slot_bytes()
