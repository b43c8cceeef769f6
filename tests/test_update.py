"""Firmware update: HMAC authentication of the command, streamed download with size and SHA-256
checks, the SPA1 archive, staging, swap at boot, confirmation, rollback, safe mode and power cuts
at every step; the key cases on MicroPython."""

from __future__ import annotations

import hashlib
import hmac
import json
from pathlib import Path

import pytest

from protocols import codec
from spnode import update
from spnode.update import UpdateError, Updater, pack, sign
from tests.harness.micropython import run_micropython
from tests.harness.paths import ROOT

SCRIPT = ROOT / "tests" / "mp" / "update_check.py"
KEY = bytes(range(32))
FILES = [("main.py", b"print('v2')\n"), ("spnode/app.mpy", bytes(range(256)) * 20)]


def command(archive: bytes, key: bytes = KEY, version: str = "0.2.0", **over: object) -> dict:
    cmd: dict[str, object] = {
        "id": "c-1",
        "ts": 1795582800,
        "cmd": "update",
        "url": "http://fw.example.org/0.2.0.spa",
        "version": version,
        "size": len(archive),
        "sha256": hashlib.sha256(archive).hexdigest(),
    }
    cmd["sig"] = sign(cmd, key)
    cmd.update(over)
    codec.encode("cmd", cmd)  # what the controller sends is a valid command
    return cmd


class Server:
    """fetch(url, offset, length) over an archive held in memory, counting calls."""

    def __init__(self, data: bytes, fail_times: int = 0) -> None:
        self.data = data
        self.calls = 0
        self.fail_times = fail_times

    def __call__(self, url: str, offset: int, length: int) -> bytes:
        self.calls += 1
        if self.fail_times:
            self.fail_times -= 1
            raise OSError(104, "connection reset")
        return self.data[offset : offset + length]


def make_root(tmp_path: Path) -> Path:
    root = tmp_path / "flash"
    (root / "app").mkdir(parents=True)
    (root / "app" / "main.py").write_text("print('v1')\n")
    return root


def test_hmac_matches_the_standard_library() -> None:
    for key in (b"k" * 16, bytes(range(64)), bytes(range(100))):
        msg = b"streetpole-fw-v1\n0.2.0\n10\n" + b"ab" * 40
        assert update.hmac_sha256(key, msg) == hmac.new(key, msg, hashlib.sha256).digest()


def test_signature_binds_every_field_and_the_key() -> None:
    archive = pack(FILES)
    cmd = command(archive)
    update.verify_command(cmd, KEY)
    for field, value in (("version", "0.2.1"), ("size", 1), ("url", "http://evil/x"),
                         ("sha256", "0" * 64)):  # fmt: skip
        with pytest.raises(UpdateError, match=r"^sig: signature does not match$"):
            update.verify_command(dict(cmd, **{field: value}), KEY)
    with pytest.raises(UpdateError, match=r"^sig: "):
        update.verify_command(cmd, bytes(32))  # another node's key
    with pytest.raises(UpdateError, match="no update key"):
        update.verify_command(cmd, b"")


def test_good_update_is_staged_then_swapped_and_confirmed(tmp_path: Path) -> None:
    root = make_root(tmp_path)
    archive = pack(FILES)
    up = Updater(str(root), version="0.1.0")
    assert up.install(command(archive), KEY, Server(archive), chunk=1000) == "0.2.0"
    assert (root / "app.new" / "spnode" / "app.mpy").read_bytes() == FILES[1][1]
    assert json.loads((root / "update.json").read_text())["state"] == "staged"
    up2 = Updater(str(root), version="0.1.0")  # reboot
    assert up2.boot() == "trial" and up2.version == "0.2.0"
    assert (root / "app" / "main.py").read_bytes() == FILES[0][1]
    assert (root / "app.old" / "main.py").read_text() == "print('v1')\n"
    up2.healthy()
    assert not (root / "app.old").exists()
    up3 = Updater(str(root), version="0.1.0")
    assert up3.boot() == "normal" and up3.version == "0.2.0"


def test_bad_signature_downloads_nothing(tmp_path: Path) -> None:
    root = make_root(tmp_path)
    archive = pack(FILES)
    server = Server(archive)
    up = Updater(str(root), version="0.1.0")
    cmd = command(archive, key=b"x" * 32)
    with pytest.raises(UpdateError, match=r"^sig: signature does not match$"):
        up.install(cmd, KEY, server)
    assert server.calls == 0 and not (root / "app.new").exists()
    assert Updater(str(root), version="0.1.0").boot() == "normal"
    assert (root / "app" / "main.py").read_text() == "print('v1')\n"


def test_bad_hash_is_refused_and_nothing_staged(tmp_path: Path) -> None:
    root = make_root(tmp_path)
    archive = pack(FILES)
    evil = pack([("main.py", b"print('evil')\n"), ("spnode/app.mpy", b"x" * 5118)])
    assert len(evil) == len(archive)
    up = Updater(str(root), version="0.1.0")
    with pytest.raises(UpdateError, match=r"^sha256: download does not match$"):
        up.install(command(archive), KEY, Server(evil))  # the server swapped the image
    assert not (root / "app.new").exists() and up.state()["state"] == "idle"
    assert Updater(str(root), version="0.1.0").boot() == "normal"


@pytest.mark.parametrize(
    ("served", "reason"),
    [
        (lambda a: a[:-10], "^size: got"),
        (lambda a: a + b"extra", "^size: more than"),
    ],
)
def test_wrong_size_is_refused(tmp_path: Path, served: object, reason: str) -> None:
    root = make_root(tmp_path)
    archive = pack(FILES)
    up = Updater(str(root), version="0.1.0")
    with pytest.raises(UpdateError, match=reason):
        up.install(command(archive), KEY, Server(served(archive)))  # type: ignore[operator]
    assert not (root / "app.new").exists()


@pytest.mark.parametrize("path", ["../boot.py", "/etc/x", "a//b", "a/./b", "sp ace.py"])
def test_archive_paths_cannot_escape(tmp_path: Path, path: str) -> None:
    root = make_root(tmp_path)
    archive = pack([(path, b"x")])
    up = Updater(str(root), version="0.1.0")
    with pytest.raises(UpdateError, match=r"^archive: "):
        up.install(command(archive), KEY, Server(archive))
    assert not (root / "app.new").exists() and not (tmp_path / "boot.py").exists()


def test_truncated_archive_with_matching_hash_is_refused(tmp_path: Path) -> None:
    root = make_root(tmp_path)
    archive = pack(FILES)[:-1]  # no end marker; signed and hashed as it is
    up = Updater(str(root), version="0.1.0")
    with pytest.raises(UpdateError, match=r"^archive: truncated$"):
        up.install(command(archive), KEY, Server(archive))


def test_download_errors_are_retried_then_reported(tmp_path: Path) -> None:
    root = make_root(tmp_path)
    archive = pack(FILES)
    up = Updater(str(root), version="0.1.0")
    assert up.install(command(archive), KEY, Server(archive, fail_times=2), retries=3) == "0.2.0"
    up = Updater(str(make_root(tmp_path / "b")), version="0.1.0")
    with pytest.raises(UpdateError, match=r"^url: download failed at 0"):
        up.install(command(archive), KEY, Server(archive, fail_times=9), retries=2)


def test_running_version_is_refused(tmp_path: Path) -> None:
    archive = pack(FILES)
    up = Updater(str(make_root(tmp_path)), version="0.2.0")
    with pytest.raises(UpdateError, match=r"^version: 0\.2\.0 is already running$"):
        up.install(command(archive), KEY, Server(archive))


def test_unconfirmed_version_is_rolled_back(tmp_path: Path) -> None:
    root = make_root(tmp_path)
    archive = pack(FILES)
    Updater(str(root), version="0.1.0").install(command(archive), KEY, Server(archive))
    modes = [Updater(str(root), version="0.1.0", max_trial_boots=3).boot() for _ in range(4)]
    assert modes == ["trial", "trial", "trial", "rolled_back"]
    assert (root / "app" / "main.py").read_text() == "print('v1')\n"
    up = Updater(str(root), version="0.1.0")
    assert up.version == "0.1.0" and "rolled back 0.2.0 to 0.1.0" in up.state()["last"]


def test_trial_expires_after_trial_s(tmp_path: Path) -> None:
    root = make_root(tmp_path)
    archive = pack(FILES)
    Updater(str(root), version="0.1.0").install(command(archive), KEY, Server(archive))
    up = Updater(str(root), version="0.1.0", trial_s=600)
    up.boot()
    assert not up.trial_expired(599) and up.trial_expired(600)
    up.rollback("not healthy within 600 s")
    assert (root / "app" / "main.py").read_text() == "print('v1')\n"
    assert not up.trial_expired(10_000)


def test_safe_mode_after_repeated_failed_boots(tmp_path: Path) -> None:
    root = make_root(tmp_path)
    modes = [Updater(str(root), max_failed_boots=3).boot() for _ in range(5)]
    assert modes == ["normal", "normal", "normal", "safe", "safe"]
    up = Updater(str(root), max_failed_boots=3)
    assert up.safe_mode
    up.healthy()
    assert Updater(str(root), max_failed_boots=3).boot() == "normal"


def test_power_cut_in_the_middle_of_the_swap(tmp_path: Path) -> None:
    root = make_root(tmp_path)
    archive = pack(FILES)
    Updater(str(root), version="0.1.0").install(command(archive), KEY, Server(archive))
    (root / "app").rename(root / "app.old")  # first rename done, then the power went
    up = Updater(str(root), version="0.1.0")
    assert up.boot() == "trial"
    assert (root / "app" / "main.py").read_bytes() == FILES[0][1]
    assert (root / "app.old" / "main.py").read_text() == "print('v1')\n"


def test_power_cut_in_the_middle_of_a_rollback(tmp_path: Path) -> None:
    root = make_root(tmp_path)
    archive = pack(FILES)
    Updater(str(root), version="0.1.0").install(command(archive), KEY, Server(archive))
    Updater(str(root), version="0.1.0").boot()
    update.rmtree(str(root / "app"))  # rollback removed the new app, then the power went
    up = Updater(str(root), version="0.1.0")
    assert up.boot() == "normal" and up.version == "0.1.0"
    assert (root / "app" / "main.py").read_text() == "print('v1')\n"


def test_update_on_micropython(tmp_path: Path, mpy_tree: Path) -> None:
    archive = pack(FILES)
    cmd = command(archive)
    (tmp_path / "archive.spa").write_bytes(archive)
    (tmp_path / "cmd.json").write_text(json.dumps(cmd))
    out = run_micropython(SCRIPT, str(tmp_path), KEY.hex(), mpy_root=mpy_tree).stdout
    assert out.strip().splitlines()[-1] == "OK", out
