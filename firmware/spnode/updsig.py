"""Authentication of update commands (spnode.update has the rest): the HMAC-SHA256 of the
command's manifest under the node's own key. A module of its own so that checking, and refusing,
a spoofed command loads only this, not the download and install code."""

import hashlib
from binascii import hexlify

DOMAIN = "streetpole-fw-v1"


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


def manifest(cmd):
    """The canonical string the signature covers, as bytes."""
    return (
        "%s\n%s\n%d\n%s\n%s" % (DOMAIN, cmd["version"], cmd["size"], cmd["sha256"], cmd["url"])
    ).encode()


def sign(cmd, key):
    """Hex signature of an update command (what the controller puts in ``sig``)."""
    return hexlify(hmac_sha256(key, manifest(cmd))).decode()


def verify_command(cmd, key):
    """Raise UpdateError unless ``sig`` is the HMAC of the manifest under this node's key."""
    if not key:
        raise UpdateError("sig: no update key provisioned on this node")
    if not compare_digest(sign(cmd, key).encode(), str(cmd.get("sig", "")).encode()):
        raise UpdateError("sig: signature does not match")
