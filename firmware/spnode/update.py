"""Firmware update: authenticate, download, verify, stage, swap at boot, confirm or roll back.

The controller signs each update command with the node's own key (set at provisioning, in the
local config as ``update_key``; spnode.updsig.manifest has the exact bytes)::

    sig = HMAC-SHA256(key, "streetpole-fw-v2\\n<id>\\n<pole>/<node>\\n<ts>\\n<expiry>
                            \\n<rollback 0|1>\\n<version>\\n<size>\\n<sha256>\\n<url>")  # hex

so a spoofed command (from anyone who can publish to the broker) cannot reflash the node, a
signature for one node is worthless on another, and an old command cannot be replayed (the node
keeps what it accepted: spnode.updsig.check_fresh). ``sha256`` and ``size`` then bind the bytes.

The payload is a tiny archive of the application's files (the .mpy tree), ``SPA1``::

    b"SPA1" then per file: path length (1 byte, 1..255), path (UTF-8, relative, "/"-separated),
    data length (4 bytes, big endian), data; then one 0 byte; nothing after it.

Why not tar: 512-byte headers and padding per file (about 30 small .mpy files would grow by
~30 KB), octal text fields, and several dialects for long names; this format parses as a stream
in a dozen lines and any controller can write it (``pack``).

Flash layout under ``root``: ``app/`` is the running application, ``app.new/`` the staging dir,
``app.old/`` the previous app kept for rollback, ``update.json`` the state. ``boot()`` runs first
thing in boot.py, before the application is imported::

    up = Updater("/")
    mode = up.boot()      # "normal", "trial" (new version on probation), "rolled_back", "safe"
    ...
    up.confirm()          # once the node reported healthy (MQTT round trip, state published)

A staged update is swapped in at the next boot and runs on probation: each boot counts, and if it
is not confirmed within ``max_trial_boots`` boots (or within ``trial_s`` seconds, which the main
program checks with ``trial_expired`` and answers with a reboot) the old app is put back. Every
boot also counts as failed until ``healthy()`` (or ``confirm()``) says otherwise; after
``max_failed_boots`` in a row the node boots in safe mode (the main program then runs only what it
needs to keep the light on and take a new update). The swap and the rollback are ordered renames
and can be repeated, so a power cut at any point leaves something bootable.
"""

import hashlib
import json
import os
from binascii import hexlify

from spnode.flash import exists as _exists
from spnode.flash import write_atomic

# authentication is its own module, so that refusing a spoofed command loads only that one
from spnode.updsig import (  # noqa: F401  (sign, hmac_sha256, ...: for the controller and tests)
    UpdateError,
    accept,
    compare_digest,
    hmac_sha256,
    load_seen,
    manifest,
    save_seen,
    sign,
    verify_command,
    version_key,
)

MAGIC = b"SPA1"
_PATH_CHARS = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.-"


# ---- archive ----------------------------------------------------------------------------
def pack(files):
    """SPA1 archive bytes of [(path, data), ...] (for the controller and the tests)."""
    out = [MAGIC]
    for path, data in files:
        p = path.encode()
        out.append(bytes([len(p)]) + p + len(data).to_bytes(4, "big"))
        out.append(bytes(data))
    out.append(b"\x00")
    return b"".join(out)


def _check_path(path):
    parts = path.split("/")
    if len(parts) > 6:
        raise UpdateError("archive: path too deep: %r" % path)
    for part in parts:
        if part in ("", ".", ".."):
            raise UpdateError("archive: bad path %r" % path)
        for ch in part:
            if ch not in _PATH_CHARS:
                raise UpdateError("archive: bad character in %r" % path)
    return parts


def _mkdirs(base, parts):
    d = base
    for part in parts[:-1]:
        d = d + "/" + part
        if not _exists(d):
            os.mkdir(d)


class Unpacker:
    """Streams an SPA1 archive into a directory, chunk by chunk, never holding a whole file."""

    def __init__(self, dest):
        self.dest = dest
        self.files = 0
        self.done = False
        self._buf = b""
        self._need_magic = True
        self._left = 0  # data bytes still to write into _f
        self._f = None

    def feed(self, chunk):
        buf = self._buf + bytes(chunk) if self._buf else chunk  # no copy in the usual case
        mv = memoryview(buf)  # file writes take slices of it without copying them
        pos = 0
        n = len(buf)
        while pos < n:
            if self.done:
                raise UpdateError("archive: data after the end marker")
            if self._f is not None:
                take = min(self._left, n - pos)
                self._f.write(mv[pos : pos + take])
                pos += take
                self._left -= take
                if self._left == 0:
                    self._f.close()
                    self._f = None
                continue
            if self._need_magic:
                if n - pos < 4:
                    break
                if buf[pos : pos + 4] != MAGIC:
                    raise UpdateError("archive: not an SPA1 archive")
                pos += 4
                self._need_magic = False
                continue
            plen = buf[pos]
            if plen == 0:
                self.done = True
                pos += 1
                continue
            if n - pos < 1 + plen + 4:
                break
            try:
                path = buf[pos + 1 : pos + 1 + plen].decode()
            except UnicodeError:
                raise UpdateError("archive: path not UTF-8") from None
            parts = _check_path(path)
            self._left = int.from_bytes(buf[pos + 1 + plen : pos + 5 + plen], "big")
            pos += 5 + plen
            _mkdirs(self.dest, parts)
            self._f = open(self.dest + "/" + path, "wb")
            self.files += 1
            if self._left == 0:
                self._f.close()
                self._f = None
        self._buf = bytes(buf[pos:]) if pos < n else b""

    def close(self):
        if self._f is not None:
            self._f.close()
            self._f = None
        if not self.done or self._buf:
            raise UpdateError("archive: truncated")


def staged(data_dir, version):
    """Raise the highest version this node has taken (spnode.updsig.check_fresh): from now on
    one not above it needs a signed rollback. Here, not in updsig, since only a download that
    staged an image needs it."""
    seen = load_seen(data_dir)
    if (version_key(seen.get("v")) or ()) < (version_key(version) or ()):
        seen["v"] = version
        save_seen(data_dir, seen)


# ---- files ------------------------------------------------------------------------------
def _is_dir(path):
    return os.stat(path)[0] & 0x4000 != 0


def rmtree(path):
    if not _exists(path):
        return
    if not _is_dir(path):
        os.remove(path)
        return
    for name in os.listdir(path):
        rmtree(path + "/" + name)
    os.rmdir(path)


# ---- one download ------------------------------------------------------------------------
class Install:
    """A download in progress: hashes and unpacks into the staging dir as bytes arrive, so
    neither the archive nor a whole file is ever held in RAM. ``finish`` checks size and
    SHA-256 and marks the update staged; any failure leaves nothing staged."""

    def __init__(self, updater, cmd):
        self.updater = updater
        self.cmd = cmd
        self.got = 0
        self._h = hashlib.sha256()
        self._unpack = Unpacker(updater.new)

    def feed(self, data):
        if self.got + len(data) > self.cmd["size"]:
            raise UpdateError("size: more than %d bytes" % self.cmd["size"])
        self._h.update(data)
        self.got += len(data)
        self._unpack.feed(data)

    def finish(self):
        size = self.cmd["size"]
        if self.got != size:
            raise UpdateError("size: got %d of %d bytes" % (self.got, size))
        digest = hexlify(self._h.digest()).decode()
        if not compare_digest(digest.encode(), self.cmd["sha256"].encode()):
            raise UpdateError("sha256: download does not match")
        self._unpack.close()
        up = self.updater
        st = up.state()
        st["state"] = "staged"
        st["staged"] = self.cmd["version"]
        st["last"] = "staged %s (%d files)" % (self.cmd["version"], self._unpack.files)
        up._save()
        return self.cmd["version"]

    def abort(self):
        try:
            self._unpack.close()
        except UpdateError:
            pass
        rmtree(self.updater.new)


# ---- the updater ------------------------------------------------------------------------
class Updater:
    def __init__(
        self,
        root,
        version="0",
        app="app",
        max_trial_boots=3,
        max_failed_boots=5,
        trial_s=600,
    ):
        root = root.rstrip("/")
        self.app = root + "/" + app
        self.new = self.app + ".new"
        self.old = self.app + ".old"
        self.state_path = root + "/update.json"
        self.max_trial_boots = max_trial_boots
        self.max_failed_boots = max_failed_boots
        self.trial_s = trial_s
        self.default_version = version
        self.st = None

    # state
    def state(self):
        if self.st is None:
            st = None
            for p in (self.state_path, self.state_path + ".tmp"):
                try:
                    with open(p) as f:
                        st = json.loads(f.read())
                    break
                except (OSError, ValueError):
                    continue
            if not isinstance(st, dict):
                st = {}
            st.setdefault("state", "idle")  # idle | staged | trial
            st.setdefault("version", self.default_version)
            st.setdefault("trial_boots", 0)
            st.setdefault("failed_boots", 0)
            st.setdefault("safe", False)
            st.setdefault("last", "")
            self.st = st
        return self.st

    def _save(self):
        write_atomic(self.state_path, json.dumps(self.st).encode())

    @property
    def version(self):
        return self.state()["version"]

    @property
    def safe_mode(self):
        return self.state()["safe"]

    # download and stage
    def begin(self, cmd, key, target):
        """Authenticate an update command for ``target`` ("<pole>/<node>") and open the staging
        area; returns an ``Install`` to ``feed`` the downloaded bytes into and ``finish``.
        Raises UpdateError (bad signature, version already running) before anything is
        downloaded or written. (Expiry and replay were checked when the command came in.)"""
        verify_command(cmd, key, target)
        if cmd["version"] == self.state()["version"]:
            raise UpdateError("version: %s is already running" % cmd["version"])
        rmtree(self.new)
        os.mkdir(self.new)
        return Install(self, cmd)

    def install(self, cmd, key, target, fetch, chunk=4096, retries=3):
        """Verify an update command, download through ``fetch(url, offset, length) -> bytes``
        (fewer bytes only at the end; b"" past it; OSError is retried), check size and SHA-256,
        and stage it for the next boot. Raises UpdateError with the reason; returns the version.
        (Blocking; the node's main program streams with ``begin``/``feed``/``finish``.)"""
        inst = self.begin(cmd, key, target)
        size = cmd["size"]
        try:
            while inst.got < size:
                want = min(chunk, size - inst.got)
                data = self._fetch(fetch, cmd["url"], inst.got, want, retries)
                if not data:
                    break
                inst.feed(data)
            if inst.got == size and self._fetch(fetch, cmd["url"], size, 1, retries):
                raise UpdateError("size: more than %d bytes" % size)
            return inst.finish()
        except BaseException:
            inst.abort()
            raise

    def _fetch(self, fetch, url, offset, length, retries):
        for attempt in range(retries + 1):
            try:
                return fetch(url, offset, length)
            except OSError as e:
                if attempt == retries:
                    raise UpdateError("url: download failed at %d: %s" % (offset, e)) from None
        return b""

    # boot
    def boot(self):
        """Run once at boot before the app is imported. Returns "normal", "trial",
        "rolled_back" or "safe"."""
        st = self.state()
        result = "normal"
        if st["state"] == "staged":
            self._swap()
            st["state"] = "trial"
            st["previous"] = st["version"]
            st["version"] = st.pop("staged", st["version"])
            st["trial_boots"] = 0
            st["failed_boots"] = 0
            st["safe"] = False
        if st["state"] == "trial" and not _exists(self.app) and _exists(self.old):
            # a power cut in the middle of a rollback: finish it
            self.rollback("interrupted rollback completed")
        if st["state"] == "trial":
            st["trial_boots"] += 1
            if st["trial_boots"] > self.max_trial_boots:
                self.rollback("not confirmed healthy after %d boots" % self.max_trial_boots)
                result = "rolled_back"
            else:
                result = "trial"
        st["failed_boots"] += 1
        if st["failed_boots"] > self.max_failed_boots:
            st["safe"] = True
            st["last"] = "safe mode: %d boots without a healthy run" % (st["failed_boots"] - 1)
            result = "safe"
        self._save()
        return result

    def _swap(self):
        # each step can be repeated after a power cut: the state says "staged" until the end
        if _exists(self.new):
            if _exists(self.app):
                rmtree(self.old)
                os.rename(self.app, self.old)
            os.rename(self.new, self.app)

    def rollback(self, why):
        """Put the previous app back (takes effect at the next import, i.e. now at boot)."""
        st = self.state()
        if _exists(self.old):
            rmtree(self.app)
            os.rename(self.old, self.app)
        st["last"] = "rolled back %s to %s: %s" % (st["version"], st.get("previous"), why)
        st["version"] = st.get("previous", st["version"])
        st["state"] = "idle"
        st["trial_boots"] = 0
        st["failed_boots"] = 0
        self._save()

    def trial_expired(self, uptime_s):
        """True when a version on probation has run ``trial_s`` without confirmation: the main
        program should then call ``rollback`` and reboot."""
        return self.state()["state"] == "trial" and uptime_s >= self.trial_s

    def healthy(self):
        """This boot works (control loop and an MQTT round trip): confirms a trial version,
        ends safe mode, resets the failed-boot count."""
        st = self.state()
        if st["state"] == "trial":
            st["state"] = "idle"
            st["last"] = "confirmed %s" % st["version"]
            rmtree(self.old)
        st["failed_boots"] = 0
        st["trial_boots"] = 0
        st["safe"] = False
        self._save()

    confirm = healthy
