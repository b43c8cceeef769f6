"""Whole-image updates, A/B, with rollback: how a production node (firmware frozen into the
image, spnode.board's ``ota_running``) takes a new version.

The command is the one spnode.update describes (signed manifest v2: id, target, ts, expiry,
rollback, version, size, sha256, url); here ``url`` serves the whole firmware image, the
bytes the node's app slot holds. Steps::

    up = ImageUpdater(board, "/data", VERSION)
    mode = up.boot()                 # "normal", "trial" (new image on probation), "rolled_back"
    inst = up.begin(cmd, key, target)          # signature, version, room: before any download
    inst.feed(chunk) ...                       # from byte inst.got: streamed into the other slot
    inst.finish()                    # size and SHA-256 over the image, then set_boot
    board.reset()                    # the bootloader runs the new image, once, on probation
    up.healthy()                     # it came online: mark_app_valid_cancel_rollback

The image goes to the slot the node does not run from, each piece straight to flash as it
arrives (no block buffer: the heap a download needs is its connection's), and boots only once
its hash matched. Until ``finish`` the
running image is untouched, so a reset in the middle of a download boots it again; the download
then resumes after the last blocks recorded in ``image.part`` (data dir), which are read back
from the slot into the hash. An image that crashes, or resets for any reason, before it marked
itself valid is given up by the bootloader, which boots the previous one (rollback enabled:
ESP-IDF's CONFIG_BOOTLOADER_APP_ROLLBACK_ENABLE, on in MicroPython's ESP32 builds); one that runs
but is not healthy within ``trial_s`` sets the previous slot to boot and asks for a reset
(spnode.app's health step). ``image.json`` (data dir) records the update for the next boot.
"""

import hashlib
import json
import os
from binascii import hexlify

from spnode.flash import write_atomic
from spnode.updsig import UpdateError, compare_digest, load_seen, save_seen, verify_command

BLOCK = 4096  # the ESP32's flash erase block; esp32.Partition's block size for app slots
STATE = "image.json"
PART = "image.part"
_SAVE_EVERY = 16  # blocks between progress records: a reset costs at most this much download
_HEAD = 36  # header bytes that say which device an image is for (board.image_id)


class ImageInstall:
    """A download in progress into ``part``: ``feed`` bytes from ``got`` on, then ``finish``.
    Each piece goes to flash as it comes, without a block buffer: the block is erased when the
    image reaches it, and writes are whole 16-byte units (flash encryption writes no less), the
    few bytes over carried to the next piece."""

    def __init__(self, updater, cmd, part, running):
        self.updater = updater
        self.cmd = cmd
        self.part = part
        self.running = running
        self.carry = bytearray(16)
        self.nc = 0  # bytes waiting in carry
        self.at = 0  # where the next write goes in the slot: got - nc
        self.got = 0
        self.head = bytearray(_HEAD)  # the image's header, until it is checked
        self._h = hashlib.sha256()
        self._resume()

    def _progress_path(self):
        return self.updater.data_dir + "/" + PART

    def _resume(self):
        """Blocks a download of the same image wrote before a reset: read back into the hash."""
        try:
            with open(self._progress_path()) as f:
                rec = json.loads(f.read())
            blocks = rec["blocks"] if rec["sha256"] == self.cmd["sha256"] else 0
        except (OSError, ValueError, KeyError, TypeError):
            blocks = 0
        blocks = min(blocks, self.cmd["size"] // BLOCK)
        if blocks:
            buf = bytearray(256)
            for b in range(blocks):
                for off in range(0, BLOCK, len(buf)):
                    self.part.readblocks(b, buf, off)
                    self._h.update(buf)
            self.head = None  # checked before block 0 was written
        self.at = self.got = blocks * BLOCK

    def _record(self, blocks):
        rec = {"sha256": self.cmd["sha256"], "blocks": blocks}
        write_atomic(self._progress_path(), json.dumps(rec).encode())

    def feed(self, data):
        n = len(data)
        if self.got + n > self.cmd["size"]:
            raise UpdateError("size: more than %d bytes" % self.cmd["size"])
        self._h.update(data)
        mv = memoryview(data)
        if self.head is not None:
            take = min(_HEAD - self.got, n)
            self.head[self.got : self.got + take] = mv[:take]
            if self.got + take == _HEAD:
                self._check_device()
        pos = 0
        if self.nc:
            pos = min(16 - self.nc, n)
            self.carry[self.nc : self.nc + pos] = mv[:pos]
            self.nc += pos
            if self.nc == 16:
                self._put(self.carry)
                self.nc = 0
        whole = (n - pos) & ~15
        if whole:
            self._put(mv[pos : pos + whole])
            pos += whole
        if pos < n:
            self.carry[: n - pos] = mv[pos:]
            self.nc = n - pos
        self.got += n

    def _put(self, buf):
        mv = memoryview(buf)
        i = 0
        n = len(buf)
        while i < n:
            block, off = divmod(self.at, BLOCK)
            if off == 0:
                if block and block % _SAVE_EVERY == 0:
                    self._record(block)  # the blocks before this one are whole
                self.part.ioctl(6, block)  # erase it
            take = min(BLOCK - off, n - i)
            self.part.writeblocks(block, mv[i : i + take], off)
            self.at += take
            i += take

    def _check_device(self):
        """The image's header names the device the running one names (board.image_id)."""
        mine = bytearray(_HEAD)
        self.running.readblocks(0, mine)
        for a, b in self.updater.board.image_id:
            if self.head[a:b] != mine[a:b]:
                raise UpdateError("image: not an image for this device")
        self.head = None

    def finish(self):
        size = self.cmd["size"]
        if self.got != size or self.head is not None:
            raise UpdateError("size: got %d of %d bytes" % (self.got, size))
        if self.nc:
            for i in range(self.nc, 16):  # erased flash after the image
                self.carry[i] = 0xFF
            self._put(self.carry)
            self.nc = 0
        self.abort()  # the progress record: nothing left to resume
        digest = hexlify(self._h.digest()).decode()
        if not compare_digest(digest.encode(), self.cmd["sha256"].encode()):
            raise UpdateError("sha256: download does not match")
        self.part.set_boot()
        up = self.updater
        up.st = {"state": "staged", "slot": self.part.info()[4], "version": self.cmd["version"],
                 "previous": up.version, "last": "staged %s" % self.cmd["version"]}  # fmt: skip
        up.save()
        seen = load_seen(up.data_dir)  # the highest version taken: spnode.update.staged
        seen["v"] = self.cmd["version"]
        save_seen(up.data_dir, seen)
        return self.cmd["version"]

    def abort(self):
        try:
            os.remove(self._progress_path())
        except OSError:
            pass


class ImageUpdater:
    whole_image = True  # spnode.nodecmd: the download goes here, not into spnode.update

    def __init__(self, board, data_dir, version, trial_s=600):
        self.board = board
        self.data_dir = data_dir
        self.version = version
        self.trial_s = trial_s
        self.st = None

    def state(self):
        if self.st is None:
            try:
                with open(self.data_dir + "/" + STATE) as f:
                    self.st = json.loads(f.read())
            except (OSError, ValueError):
                self.st = None
            if not isinstance(self.st, dict):
                self.st = {"state": "idle"}
        return self.st

    def save(self):
        write_atomic(self.data_dir + "/" + STATE, json.dumps(self.st).encode())

    def _running_label(self):
        return self.board.ota_running().info()[4]

    def boot(self):
        """At boot, before the node starts: "normal", "trial" or "rolled_back"."""
        st = self.state()
        if st["state"] not in ("staged", "trial"):
            return "normal"
        if self._running_label() == st["slot"] and self.version == st["version"]:
            st["state"] = "trial"
            self.save()
            return "trial"
        # the bootloader went back to the other slot: the new image did not mark itself valid
        st["last"] = "rolled back %s to %s: not confirmed before a reset" % (
            st["version"], self.version)  # fmt: skip
        st["state"] = "idle"
        self.save()
        return "rolled_back"

    def begin(self, cmd, key, target):
        """Authenticate the command and open the other slot; raises UpdateError before any
        download (bad signature, the running version, no room)."""
        verify_command(cmd, key, target)
        if cmd["version"] == self.version:
            raise UpdateError("version: %s is already running" % cmd["version"])
        running = self.board.ota_running()
        part = running.get_next_update()
        room = part.ioctl(4, 0) * part.ioctl(5, 0)
        if cmd["size"] > room:
            raise UpdateError("size: %d bytes do not fit the %d-byte slot" % (cmd["size"], room))
        st = self.state()
        if st["state"] == "staged":  # set to boot but not booted yet: about to be overwritten
            running.set_boot()
            st["state"] = "idle"
            self.save()
        return ImageInstall(self, cmd, part, running)

    def trial_expired(self, uptime_s):
        return self.state()["state"] == "trial" and uptime_s >= self.trial_s

    def rollback(self, why):
        """Boot the previous image at the next reset (the caller resets)."""
        st = self.state()
        self.board.ota_running().get_next_update().set_boot()
        st["last"] = "rolled back %s to %s: %s" % (self.version, st.get("previous"), why)
        st["state"] = "idle"
        self.save()

    def healthy(self):
        """This image works (control loop and an MQTT round trip): keep it."""
        self.board.ota_mark_valid()
        st = self.state()
        if st["state"] == "trial":
            st["state"] = "idle"
            st["last"] = "confirmed %s" % self.version
            self.save()

    confirm = healthy
