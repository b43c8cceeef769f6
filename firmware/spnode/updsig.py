"""Authentication of update commands (spnode.update has the rest): the HMAC-SHA256 of the
command's manifest under the node's own key, and the rules that stop a replay or a downgrade.
A module of its own so that checking, and refusing, a spoofed command loads only this, not the
download and install code.

The manifest binds the command's id, its target node, when it was issued and until when it
holds, whether it is a rollback, and the image (version, size, hash, url). So a signature is
worth one command, for one node, for a limited time. What the node accepted last is kept in
flash (``SEEN`` in the data dir: the highest version staged, the ts and id of the last command
accepted): an older or the same command again is refused, and so is a version not above the
highest, unless the controller signed the command as a rollback.
"""

import hashlib
import json
from binascii import hexlify

from spnode.flash import write_atomic

DOMAIN = "streetpole-fw-v2"
SEEN = "update.seen"


class UpdateError(Exception):
    """An update refused or failed; ``str()`` is the ack's reason ("field: what")."""


def hmac_sha256(key, msg):
    """RFC 2104 HMAC with SHA-256 (MicroPython has hashlib.sha256 but no hmac module)."""
    if len(key) > 64:
        key = hashlib.sha256(key).digest()
    key = key + bytes(64 - len(key))
    inner = hashlib.sha256(bytes(b ^ 0x36 for b in key))
    inner.update(msg)
    outer = hashlib.sha256(bytes(b ^ 0x5C for b in key))
    outer.update(inner.digest())
    return outer.digest()


def compare_digest(a, b):
    """Equality in time independent of where the inputs differ."""
    if len(a) != len(b):
        return False
    diff = 0
    for i in range(len(a)):
        diff |= a[i] ^ b[i]
    return diff == 0


def manifest(cmd, target):
    """The canonical bytes the signature covers; ``target`` is "<pole>/<node>"."""
    return (
        "%s\n%s\n%s\n%d\n%d\n%d\n%s\n%d\n%s\n%s"
        % (
            DOMAIN,
            cmd["id"],
            target,
            cmd["ts"],
            cmd["expiry"],
            1 if cmd.get("rollback") else 0,
            cmd["version"],
            cmd["size"],
            cmd["sha256"],
            cmd["url"],
        )
    ).encode()


def sign(cmd, key, target):
    """Hex signature of an update command for ``target`` (what the controller puts in ``sig``)."""
    return hexlify(hmac_sha256(key, manifest(cmd, target))).decode()


def verify_command(cmd, key, target):
    """Raise UpdateError unless ``sig`` is the HMAC of the manifest, for this node, under this
    node's key."""
    if not key:
        raise UpdateError("sig: no update key provisioned on this node")
    if "expiry" not in cmd:
        raise UpdateError("expiry: missing (an old controller's command)")
    if not compare_digest(sign(cmd, key, target).encode(), str(cmd.get("sig", "")).encode()):
        raise UpdateError("sig: signature does not match")


def version_key(v):
    """A semantic version ("1.2.3", "1.2.3-rc.1", "1.2.3+build") as a tuple that sorts like
    one (a pre-release before its release; build metadata ignored), or None."""
    core, _, pre = str(v).split("+")[0].partition("-")
    parts = core.split(".")
    if len(parts) != 3:
        return None
    try:
        nums = [int(p) for p in parts]
    except ValueError:
        return None
    return (nums[0], nums[1], nums[2], 0 if pre else 1, pre)


def load_seen(data_dir):
    try:
        with open(data_dir + "/" + SEEN) as f:
            seen = json.loads(f.read())
        if isinstance(seen, dict):
            return seen
    except (OSError, ValueError):
        pass
    return {}


def save_seen(data_dir, seen):
    write_atomic(data_dir + "/" + SEEN, json.dumps(seen).encode())


def check_fresh(cmd, now, running, seen):
    """Raise UpdateError unless an authentic command may be accepted: not expired (``now``: UTC
    seconds, None without a valid clock), newer than the last one accepted, and a version above
    both the running one and the highest staged, or a signed rollback to another version."""
    if now is None:
        raise UpdateError("expiry: the node's clock is not set, cannot check it")
    if now >= cmd["expiry"]:
        raise UpdateError("expiry: the command expired at %d" % cmd["expiry"])
    last = seen.get("ts", 0)
    if cmd["ts"] < last or (cmd["ts"] == last and cmd["id"] == seen.get("id")):
        raise UpdateError("ts: not newer than the last update accepted (a replay)")
    v = version_key(cmd["version"])
    if v is None:
        raise UpdateError("version: %s is not a semantic version" % cmd["version"])
    if v == version_key(running):
        raise UpdateError("version: %s is already running" % cmd["version"])
    if cmd.get("rollback"):
        return
    top = running
    high = seen.get("v")
    if high is not None and (version_key(top) or ()) < (version_key(high) or ()):
        top = high
    if v <= (version_key(top) or ()):
        raise UpdateError("version: %s is not above %s (a downgrade needs a signed rollback)"
                          % (cmd["version"], top))  # fmt: skip


def accept(cmd, key, target, now, running, data_dir):
    """Take an update command in, or raise UpdateError: authentic for this node (checked
    first, so a spoofed one costs nothing more) and fresh (``check_fresh``). Once taken, the
    same command or an older one is refused (the record is on flash before the ack)."""
    verify_command(cmd, key, target)
    seen = load_seen(data_dir)
    check_fresh(cmd, now, running, seen)
    seen["ts"], seen["id"] = cmd["ts"], cmd["id"]
    save_seen(data_dir, seen)
