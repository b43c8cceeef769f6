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
from spnode import update, updsig
from spnode.update import UpdateError, Updater, pack, sign
from tests.harness.micropython import run_micropython
from tests.harness.paths import ROOT

SCRIPT = ROOT / "tests" / "mp" / "update_check.py"
KEY = bytes(range(32))
TARGET = "RTD-0001/n1"
TS = 1795582800
FILES = [("main.py", b"print('v2')\n"), ("spnode/app.mpy", bytes(range(256)) * 20)]


def command(
    archive: bytes, key: bytes = KEY, version: str = "0.2.0", target: str = TARGET, **over: object
) -> dict:
    """A command signed for ``target``; ``over`` changes fields before signing, so the
    signature covers them (tampering after signing is done by the tests themselves)."""
    cmd: dict[str, object] = {
        "id": "c-1",
        "ts": TS,
        "cmd": "update",
        "url": "http://fw.example.org/0.2.0.spa",
        "version": version,
        "size": len(archive),
        "sha256": hashlib.sha256(archive).hexdigest(),
        "expiry": TS + 1800,
    }
    cmd.update(over)
    cmd["sig"] = sign(cmd, key, target)
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
        msg = b"streetpole-fw-v2\n0.2.0\n10\n" + b"ab" * 40
        assert update.hmac_sha256(key, msg) == hmac.new(key, msg, hashlib.sha256).digest()


def test_signature_binds_every_field_the_target_and_the_key() -> None:
    archive = pack(FILES)
    cmd = command(archive)
    update.verify_command(cmd, KEY, TARGET)
    for field, value in (("version", "0.2.1"), ("size", 1), ("url", "http://evil/x"),
                         ("sha256", "0" * 64), ("id", "c-2"), ("ts", TS + 60),
                         ("expiry", TS + 86400), ("rollback", True)):  # fmt: skip
        with pytest.raises(UpdateError, match=r"^sig: signature does not match$"):
            update.verify_command(dict(cmd, **{field: value}), KEY, TARGET)
    with pytest.raises(UpdateError, match=r"^sig: "):
        update.verify_command(cmd, KEY, "RTD-0002/n1")  # another node, even with the same key
    with pytest.raises(UpdateError, match=r"^sig: "):
        update.verify_command(cmd, bytes(32), TARGET)  # another node's key
    with pytest.raises(UpdateError, match="no update key"):
        update.verify_command(cmd, b"", TARGET)
    old = {k: v for k, v in cmd.items() if k != "expiry"}  # an old controller's command
    with pytest.raises(UpdateError, match=r"^expiry: missing"):
        update.verify_command(old, KEY, TARGET)


NOW = TS + 60


@pytest.mark.parametrize(
    ("over", "now", "running", "seen", "reason"),
    [
        ({}, None, "0.1.0", {}, r"^expiry: the node's clock is not set"),
        ({}, TS + 1800, "0.1.0", {}, r"^expiry: the command expired at"),
        ({}, NOW, "0.1.0", {"ts": TS, "id": "c-1"}, r"^ts: not newer .* \(a replay\)$"),
        ({}, NOW, "0.1.0", {"ts": TS + 1, "id": "c-9"}, r"^ts: not newer"),
        ({}, NOW, "0.2.0", {}, r"^version: 0\.2\.0 is already running$"),
        ({"version": "0.1.0"}, NOW, "0.3.0", {}, r"^version: 0\.1\.0 is not above 0\.3\.0 "),
        ({}, NOW, "0.1.0", {"v": "0.2.0"}, r"^version: 0\.2\.0 is not above 0\.2\.0 "),
        ({"version": "0.2.0-rc.1"}, NOW, "0.2.0", {}, r"^version: 0\.2\.0-rc\.1 is not above"),
        ({"version": "latest"}, NOW, "0.1.0", {}, r"^version: latest is not a semantic"),
        ({"version": "0.1.0", "rollback": True}, NOW, "0.1.0", {}, r"already running$"),
    ],
)
def test_stale_replayed_and_downgrading_commands_are_refused(
    over: dict[str, object], now: int | None, running: str, seen: dict[str, object], reason: str
) -> None:
    cmd = command(pack(FILES), **over)
    with pytest.raises(UpdateError, match=reason):
        updsig.check_fresh(cmd, now, running, seen)


@pytest.mark.parametrize(
    ("over", "running", "seen"),
    [
        ({}, "0.1.0", {}),
        ({}, "0.1.0", {"ts": TS, "id": "c-0", "v": "0.1.5"}),  # same second, another command
        ({"version": "0.10.0"}, "0.9.1", {"v": "0.9.2"}),  # numbers, not text
        ({"version": "0.2.0"}, "0.2.0-rc.1", {}),  # the release after its candidate
        ({"version": "0.1.0", "rollback": True}, "0.3.0", {"v": "0.3.0", "ts": TS - 1}),
        ({}, "0", {}),  # an Updater that never knew its version
    ],
)
def test_fresh_upgrades_and_signed_rollbacks_are_accepted(
    over: dict[str, object], running: str, seen: dict[str, object]
) -> None:
    updsig.check_fresh(command(pack(FILES), **over), NOW, running, seen)


def test_good_update_is_staged_then_swapped_and_confirmed(tmp_path: Path) -> None:
    root = make_root(tmp_path)
    archive = pack(FILES)
    up = Updater(str(root), version="0.1.0")
    assert up.install(command(archive), KEY, TARGET, Server(archive), chunk=1000) == "0.2.0"
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
        up.install(cmd, KEY, TARGET, server)
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
        up.install(command(archive), KEY, TARGET, Server(evil))  # the server swapped the image
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
        up.install(command(archive), KEY, TARGET, Server(served(archive)))  # type: ignore[operator]
    assert not (root / "app.new").exists()


@pytest.mark.parametrize("path", ["../boot.py", "/etc/x", "a//b", "a/./b", "sp ace.py"])
def test_archive_paths_cannot_escape(tmp_path: Path, path: str) -> None:
    root = make_root(tmp_path)
    archive = pack([(path, b"x")])
    up = Updater(str(root), version="0.1.0")
    with pytest.raises(UpdateError, match=r"^archive: "):
        up.install(command(archive), KEY, TARGET, Server(archive))
    assert not (root / "app.new").exists() and not (tmp_path / "boot.py").exists()


def test_truncated_archive_with_matching_hash_is_refused(tmp_path: Path) -> None:
    root = make_root(tmp_path)
    archive = pack(FILES)[:-1]  # no end marker; signed and hashed as it is
    up = Updater(str(root), version="0.1.0")
    with pytest.raises(UpdateError, match=r"^archive: truncated$"):
        up.install(command(archive), KEY, TARGET, Server(archive))


def test_download_errors_are_retried_then_reported(tmp_path: Path) -> None:
    root = make_root(tmp_path)
    archive = pack(FILES)
    up = Updater(str(root), version="0.1.0")
    assert (
        up.install(command(archive), KEY, TARGET, Server(archive, fail_times=2), retries=3)
        == "0.2.0"
    )
    up = Updater(str(make_root(tmp_path / "b")), version="0.1.0")
    with pytest.raises(UpdateError, match=r"^url: download failed at 0"):
        up.install(command(archive), KEY, TARGET, Server(archive, fail_times=9), retries=2)


def test_running_version_is_refused(tmp_path: Path) -> None:
    archive = pack(FILES)
    up = Updater(str(make_root(tmp_path)), version="0.2.0")
    with pytest.raises(UpdateError, match=r"^version: 0\.2\.0 is already running$"):
        up.install(command(archive), KEY, TARGET, Server(archive))


def test_unconfirmed_version_is_rolled_back(tmp_path: Path) -> None:
    root = make_root(tmp_path)
    archive = pack(FILES)
    Updater(str(root), version="0.1.0").install(command(archive), KEY, TARGET, Server(archive))
    modes = [Updater(str(root), version="0.1.0", max_trial_boots=3).boot() for _ in range(4)]
    assert modes == ["trial", "trial", "trial", "rolled_back"]
    assert (root / "app" / "main.py").read_text() == "print('v1')\n"
    up = Updater(str(root), version="0.1.0")
    assert up.version == "0.1.0" and "rolled back 0.2.0 to 0.1.0" in up.state()["last"]


def test_trial_expires_after_trial_s(tmp_path: Path) -> None:
    root = make_root(tmp_path)
    archive = pack(FILES)
    Updater(str(root), version="0.1.0").install(command(archive), KEY, TARGET, Server(archive))
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
    Updater(str(root), version="0.1.0").install(command(archive), KEY, TARGET, Server(archive))
    (root / "app").rename(root / "app.old")  # first rename done, then the power went
    up = Updater(str(root), version="0.1.0")
    assert up.boot() == "trial"
    assert (root / "app" / "main.py").read_bytes() == FILES[0][1]
    assert (root / "app.old" / "main.py").read_text() == "print('v1')\n"


def test_power_cut_in_the_middle_of_a_rollback(tmp_path: Path) -> None:
    root = make_root(tmp_path)
    archive = pack(FILES)
    Updater(str(root), version="0.1.0").install(command(archive), KEY, TARGET, Server(archive))
    Updater(str(root), version="0.1.0").boot()
    update.rmtree(str(root / "app"))  # rollback removed the new app, then the power went
    up = Updater(str(root), version="0.1.0")
    assert up.boot() == "normal" and up.version == "0.1.0"
    assert (root / "app" / "main.py").read_text() == "print('v1')\n"


def test_update_on_micropython(tmp_path: Path, mpy_tree: Path) -> None:
    """The attacks on a node's acceptance of update commands, on the MicroPython unix port."""
    archive = pack(FILES)
    cmd = command(archive)
    good = command(archive, id="c-10", ts=TS + 10)
    new_id = dict(good, id="c-11")  # the same signature under another command id
    expired = command(archive, id="c-12", ts=TS + 12, expiry=TS + 40)
    other = command(archive, id="c-13", ts=TS + 13, target="RTD-0002/n1")  # same key
    down = command(archive, id="c-14", ts=TS + 14, version="0.1.5")
    old_signed = command(archive, id="c-15", ts=TS + 15, version="0.1.0")
    rollback = command(archive, id="c-16", ts=TS + 16, version="0.1.5", rollback=True)
    older = command(archive, id="c-17", ts=TS + 5, version="0.3.0")  # issued before c-16
    attacks = [
        ["good", good, NOW, "0.1.0", "staged"],
        ["same command twice", good, NOW, "0.1.0", "ts: not newer"],
        ["signature replayed with a new id", new_id, NOW, "0.1.0", "sig: signature does not"],
        ["expired", expired, NOW, "0.1.0", "expiry: the command expired"],
        ["for another node", other, NOW, "0.1.0", "sig: signature does not"],
        ["downgrade", down, NOW, "0.2.0", "version: 0.1.5 is not above 0.2.0"],
        ["old signed 0.1.0 on 0.3.0", old_signed, NOW, "0.3.0", "version: 0.1.0 is not above"],
        ["signed rollback", rollback, NOW, "0.2.0", "staged"],
        ["rollback replayed", rollback, NOW, "0.1.5", "ts: not newer"],
        ["an older command", older, NOW, "0.1.5", "ts: not newer"],
        ["no clock", command(archive, id="c-18", ts=TS + 18), None, "0.1.5", "expiry: the node"],
    ]
    (tmp_path / "archive.spa").write_bytes(archive)
    (tmp_path / "cmd.json").write_text(json.dumps(cmd))
    (tmp_path / "attacks.json").write_text(json.dumps(attacks))
    out = run_micropython(SCRIPT, str(tmp_path), KEY.hex(), TARGET, mpy_root=mpy_tree).stdout
    assert out.strip().splitlines()[-1] == "OK", out
    seen = json.loads((tmp_path / "data" / "update.seen").read_text())
    assert seen == {"v": "0.2.0", "ts": TS + 16, "id": "c-16"}, seen
