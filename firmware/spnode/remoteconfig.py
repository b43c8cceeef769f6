"""The remote config in force (the retained ``config`` topic): validate, persist, acknowledge.

The rules are described in spnode/nodeconfig.py, which re-exports everything here; this part is
its own module because the node keeps it loaded, while the local config's checks run once at boot.
"""

import hashlib
import json

from protocols.errors import ProtocolError
from spnode.flash import write_atomic


def check_remote(payload):
    """Validate remote config bytes: the protocol's checks, then what only the node checks."""
    from protocols.incoming import decode  # here: writing a file (write_atomic) needs none
    from spnode.tzrules import TZ

    msg = decode("config", payload)
    decode = None
    if "tz" in msg:
        try:
            TZ(msg["tz"])
        except ValueError as e:
            raise ProtocolError("tz", str(e)) from None
    return msg


def digest(payload):
    """What tells the config in force from another: the SHA-256 of its bytes as received."""
    return hashlib.sha256(payload).digest()


def _version_of(payload):
    """The version of a refused config, if it has a usable one, so the controller can match the
    ack to what it sent; None otherwise."""
    try:
        v = json.loads(payload)["version"]
    except Exception:
        return None
    if isinstance(v, int) and not isinstance(v, bool) and 0 < v < 4294967296:
        return v
    return None


class RemoteConfig:
    """The remote config in force, persisted at ``path`` (e.g. ``config.json``; None keeps it in
    RAM only, as the simulator's nodes do)."""

    def __init__(self, path):
        self.path = path
        self.config = None  # the dict in force, or None before the first one
        self.rejected = 0
        self.digest = None  # digest() of its bytes, as received and persisted

    @property
    def version(self):
        return self.config["version"] if self.config is not None else 0

    def load(self):
        """Read the persisted config at boot (falling back to a complete temporary file left
        by a power cut between write and rename); return it or None."""
        if self.path is None:
            return None
        for p in (self.path, self.path + ".tmp"):
            try:
                with open(p, "rb") as f:
                    data = f.read()
                self.config = check_remote(data)
                self.digest = digest(data)
                if p != self.path:
                    write_atomic(self.path, data)
                return self.config
            except (OSError, ProtocolError):
                continue
        return None

    def offer(self, payload, now):
        """Take a payload from the config topic; return (ack dict, changed)."""
        try:
            msg = check_remote(payload)
        except ProtocolError as e:
            self.rejected += 1
            return self._ack(_version_of(payload), now, "rejected", str(e)), False
        v = msg["version"]
        cur = self.version
        if v < cur:
            self.rejected += 1
            reason = "version: %d is older than version %d in force" % (v, cur)
            return self._ack(v, now, "rejected", reason), False
        if v == cur:
            if msg == self.config:
                return self._ack(v, now, "applied", None), False
            self.rejected += 1
            reason = "version: %d already applied with other content; raise the version" % v
            return self._ack(v, now, "rejected", reason), False
        if self.path is not None:
            try:  # the bytes as received and checked: serialising msg again took two copies
                # of it at the node's tightest moment (a 96 KiB node ran out of heap here)
                write_atomic(self.path, payload)
            except OSError as e:  # flash full or failing: keep running the old one
                self.rejected += 1
                return self._ack(v, now, "rejected", "storage: cannot persist (%s)" % e), False
        self.config = msg
        self.digest = digest(payload)
        return self._ack(v, now, "applied", None), True

    def reject(self, payload, now, reason):
        """The ack for a config that passed validation but the node could not apply (e.g. the
        dimmer refused it); the config in force is kept."""
        self.rejected += 1
        return self._ack(_version_of(payload), now, "rejected", reason)

    def _ack(self, version, now, status, reason):
        ack = {
            "id": str(version) if version is not None else "config",
            "kind": "config",
            "ts": int(now),
            "status": status,
        }
        if reason is not None:
            ack["reason"] = reason[:200]
        return ack
