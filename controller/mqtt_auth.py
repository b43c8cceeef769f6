"""mosquitto's password and ACL files, kept in step with the registry.

Why this exists: no node may speak for another (issue 6). Each node gets its own MQTT credentials
and the broker's ACL lets it write only under its own topics and read only its own ``config`` and
``cmd`` and the controller's confirmations of what it stored (``stored``), plus every node's
``presence``, for neighbour wake. mosquitto 2.0 reads both files at
start and again on SIGHUP, so the controller writes them whole and then signals the broker.

This module holds no credentials table of its own: the registry stores each node's password hash
(the secret itself is shown once at provisioning and never stored) and hands the hashes in here.
The files are derived data, rewritten from the registry whenever it changes.

Layout choice, for 100,000 nodes: a node's username is ``<pole>/<node>``, exactly its place in the
topic tree, so one set of ``pattern`` lines with ``%u`` covers every node and the ACL file does not
grow with the street. The alternative, a ``user`` block per node, costs mosquitto 2.0.11 a linear
search of its user list for every ``topic`` line it reads, which makes a reload quadratic in the
number of nodes (see ``tests/bench/bench_mqtt_auth_reload.py`` for the figures measured here).
Pole and node ids can never contain ``/``, ``+``, ``#`` or ``$`` (``protocols.topics.check_id``),
so ``<pole>/<node>`` is unambiguous, cannot widen a pattern, and can never equal a service
username (service names are ids too, so they contain no ``/``).

Identity (issue 18): every listener with accounts sets ``use_username_as_clientid`` (broker.py),
so the broker replaces whatever client id a client sends with its username. Nobody can take over
another's session, a node's or the controller's, and one account holds at most one session: a
second connection takes over the first, so a flood with one node's stolen credentials leaves one
live session and harms only that node. Each of the controller's processes has its own account
for the same reason (``process_identity``). Chosen over mosquitto's dynamic security plugin by
measurement (``tests/bench/bench_mqtt_dynsec.py`` against ``bench_mqtt_auth_reload.py``): the
plugin rewrites its whole JSON file inside the single-threaded broker on every single change, so
each provisioning stalls every client for a time that grows with the street, and a batch costs
that once per change; its 2.0.11 ACLs take no ``%u``, so every node would need a role of its own.
Here a batch costs one file write in the controller and one reload.

Retained messages: mosquitto 2.0.11 cannot forbid them per client. ``retain_available`` is
global (the controller needs retained configs) and neither acl_file nor the plugin's ACLs look at
the retain flag; nodes also retain their state and last will by design. So the controller must
not trust a retained message from a node (ingest ignores them).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import re
import secrets
import tempfile
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Final

from protocols.errors import ProtocolError
from protocols.topics import (
    ACK,
    CMD,
    CONFIG,
    EVENT,
    MEAS,
    PREFIX,
    PRESENCE,
    STATE,
    STORED,
    check_id,
)

# mosquitto_passwd (2.0) writes "$7$<iterations>$<base64 salt>$<base64 hash>": PBKDF2-HMAC-SHA512
# over a 12-byte random salt, 101 iterations, 64-byte output, standard base64 with padding.
# 101 iterations is weak against an offline attack on a stolen file, but our secrets are random
# 192-bit strings (generate_secret), not passwords people chose, so no dictionary applies; and
# the broker pays the iterations on every CONNECT, which matters when a whole street reconnects.
PBKDF2_ITERATIONS: Final = 101
SALT_BYTES: Final = 12
_HASH_BYTES: Final = 64
_B64: Final = r"[A-Za-z0-9+/]+={0,2}"
# $7$ is what mosquitto_passwd 2.0 writes; $6$ (one salted SHA-512) is what 1.x wrote and 2.0 still
# reads. Anything else, and above all anything with a newline or a colon, is refused so a hash from
# the registry can never inject a line into the password file.
_HASH_RE: Final = re.compile(rf"\$7\$[1-9][0-9]{{0,8}}\${_B64}\${_B64}|\$6\${_B64}\${_B64}")

ROLE_CONTROLLER: Final = "controller"
ROLE_READER: Final = "reader"
# The controller's proof that mosquitto has read the files it wrote (controller/mqtt_sync.py):
# a fresh password per write; it may connect and nothing else.
ROLE_PROBE: Final = "probe"
ROLES: Final = (ROLE_CONTROLLER, ROLE_READER, ROLE_PROBE)

NODE_WRITE_CHANNELS: Final = (MEAS, EVENT, STATE, ACK, PRESENCE)
NODE_READ_CHANNELS: Final = (CONFIG, CMD, STORED)

# What each service role may do, as mosquitto ACL lines inside its "user" block.
# controller: reads the whole tree (including through "$share/<group>/..." subscriptions, which
# mosquitto checks against the filter without the prefix), writes config, cmd and the
# confirmations of what it stored (stored) to any node, and writes state so it can clear the
# retained state of a node that was removed (empty retained).
# reader: a read-only tap (dashboard, open-data export, debugging); writes nothing.
_ROLE_ACL: Final[dict[str, tuple[str, ...]]] = {
    ROLE_CONTROLLER: (
        f"topic read {PREFIX}/#",
        f"topic write {PREFIX}/+/+/{CONFIG}",
        f"topic write {PREFIX}/+/+/{CMD}",
        f"topic write {PREFIX}/+/+/{STORED}",
        f"topic write {PREFIX}/+/+/{STATE}",
    ),
    ROLE_READER: (f"topic read {PREFIX}/#",),
    ROLE_PROBE: (),
}


class InvalidAccount(ValueError):
    """A username, id, role or password hash that must not reach the broker's files."""


def hash_password(
    password: str, *, salt: bytes | None = None, iterations: int = PBKDF2_ITERATIONS
) -> str:
    """Hash ``password`` as mosquitto_passwd 2.0 does, so mosquitto accepts it in password_file.

    Pure Python (hashlib) so provisioning needs no mosquitto tools on the controller's machine.
    ``salt`` is for tests that compare against known output; leave it out otherwise.
    """
    if salt is None:
        salt = secrets.token_bytes(SALT_BYTES)
    if iterations < 1:
        raise InvalidAccount("iterations must be at least 1")
    digest = hashlib.pbkdf2_hmac("sha512", password.encode(), salt, iterations, _HASH_BYTES)
    b64 = base64.b64encode
    return f"$7${iterations}${b64(salt).decode()}${b64(digest).decode()}"


def verify_password(password: str, password_hash: str) -> bool:
    """True when ``password`` matches a ``$7$`` or ``$6$`` hash; the same check mosquitto makes.

    For tests and for a registry that wants to check a secret without a broker round trip.
    """
    check_hash(password_hash)
    parts = password_hash.split("$")
    if parts[1] == "7":
        iterations, salt, expected = int(parts[2]), parts[3], parts[4]
        got = hashlib.pbkdf2_hmac(
            "sha512", password.encode(), base64.b64decode(salt), iterations, _HASH_BYTES
        )
    else:
        salt, expected = parts[2], parts[3]
        got = hashlib.sha512(password.encode() + base64.b64decode(salt)).digest()
    return hmac.compare_digest(got, base64.b64decode(expected))


def check_hash(password_hash: str) -> str:
    """Raise InvalidAccount unless ``password_hash`` is a hash mosquitto reads; return it."""
    if not isinstance(password_hash, str) or not _HASH_RE.fullmatch(password_hash):
        raise InvalidAccount("password hash is not in mosquitto's $7$ (or $6$) format")
    return password_hash


def generate_secret() -> str:
    """A new node or service secret: 192 random bits, URL-safe base64 (32 characters).

    URL-safe so it survives a provisioning URL, a QR code or a serial console without quoting, and
    contains no ``:`` (which the password file format reserves).
    """
    return secrets.token_urlsafe(24)


def _id(value: str, field: str) -> str:
    try:
        result: str = check_id(value, field)
    except ProtocolError as exc:
        raise InvalidAccount(str(exc)) from None
    return result


def node_username(pole: str, node: str) -> str:
    """The MQTT username of a node: ``<pole>/<node>``, its own place in the topic tree.

    The registry gives this to the node together with its secret; the ACL patterns rely on it.
    """
    return f"{_id(pole, 'pole')}/{_id(node, 'node')}"


def render_acl(services: Mapping[str, str]) -> str:
    """The ACL file: node patterns (same for 1 or 100,000 nodes) and one block per service.

    ``pattern`` lines apply to every authenticated client. For a service the substituted topic has
    four levels (``streetpole/v1/<service>/meas``), which no node topic ever has, so the node
    patterns grant services nothing of use.
    """
    own = f"{PREFIX}/%u"
    lines = [
        "# generated by controller/mqtt_auth.py from the registry; edits here are overwritten",
        "# nodes: username <pole>/<node>, so %u is the node's own place in the topic tree",
    ]
    lines += [f"pattern write {own}/{ch}" for ch in NODE_WRITE_CHANNELS]
    lines += [f"pattern read {own}/{ch}" for ch in NODE_READ_CHANNELS]
    lines.append("# neighbour wake: any node may read any node's presence (counts, no identities)")
    lines.append(f"pattern read {PREFIX}/+/+/{PRESENCE}")
    for username in sorted(services):
        lines.append("")
        lines.append(f"# role {services[username]}")
        lines.append(f"user {username}")
        lines.extend(_ROLE_ACL[services[username]])
    return "\n".join(lines) + "\n"


def _write_atomically(path: Path, text: str) -> bool:
    """Replace ``path`` with ``text`` (mode 0600) unless it already holds exactly that.

    Temp file in the same directory, fsync, then rename: mosquitto re-reading the file on SIGHUP
    sees either the old or the new file, never half of one.
    """
    data = text.encode()
    try:
        if path.read_bytes() == data and (path.stat().st_mode & 0o777) == 0o600:
            return False
    except FileNotFoundError:
        pass
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, 0o600)
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return True


class MqttAccounts:
    """The broker's password file and ACL file in ``directory``, built from registry data.

    Changes are made in memory (``set_node``, ``remove_node``, ``set_service``, ...) and reach the
    disk only with ``write()``, so a batch of provisioning changes costs one rewrite and one broker
    reload. The caller reloads the broker when ``write()`` returns True. Not thread-safe: the
    registry serialises changes (one writer) and then calls ``write()``.
    """

    def __init__(
        self,
        directory: Path,
        *,
        password_name: str = "mosquitto.passwd",
        acl_name: str = "mosquitto.acl",
    ) -> None:
        self.directory = Path(directory)
        self.password_file = self.directory / password_name
        self.acl_file = self.directory / acl_name
        self._nodes: dict[tuple[str, str], str] = {}
        self._services: dict[str, tuple[str, str]] = {}

    def set_node(self, pole: str, node: str, password_hash: str) -> str:
        """Add a node or replace its hash (re-provisioning); return its MQTT username."""
        username = node_username(pole, node)
        self._nodes[(pole, node)] = check_hash(password_hash)
        return username

    def remove_node(self, pole: str, node: str) -> bool:
        """Forget a node; True if it was there. After write() and a reload it cannot connect."""
        return self._nodes.pop((pole, node), None) is not None

    def replace_nodes(self, nodes: Mapping[tuple[str, str], str]) -> None:
        """Set the whole node table at once, e.g. from the registry at controller start."""
        fresh = {}
        for (pole, node), password_hash in nodes.items():
            node_username(pole, node)
            fresh[(pole, node)] = check_hash(password_hash)
        self._nodes = fresh

    def set_service(self, username: str, password_hash: str, role: str) -> None:
        """Add or replace a service account (controller, reader) with the given role."""
        _id(username, "username")
        if role not in _ROLE_ACL:
            raise InvalidAccount(f"unknown role {role!r} (one of {', '.join(ROLES)})")
        self._services[username] = (check_hash(password_hash), role)

    def nodes(self) -> Iterable[tuple[str, str]]:
        """The (pole, node) pairs that have credentials."""
        return list(self._nodes)

    def render_passwords(self) -> str:
        """The password file: services first, then nodes, each sorted (stable output, no churn)."""
        lines = [f"{u}:{h}" for u, (h, _role) in sorted(self._services.items())]
        lines += [f"{p}/{n}:{h}" for (p, n), h in sorted(self._nodes.items())]
        return "".join(line + "\n" for line in lines)

    def render_acl(self) -> str:
        """The ACL file for the current service accounts (nodes are covered by patterns)."""
        return render_acl({u: role for u, (_h, role) in self._services.items()})

    def write(self) -> bool:
        """Write both files atomically (mode 0600); True if either changed (then reload)."""
        return self.write_files(self.render_acl(), self.render_passwords())

    def write_files(self, acl: str, passwords: str) -> bool:
        """Write what ``render_acl`` and ``render_passwords`` returned, perhaps a little earlier
        (so a caller can render under its lock and write outside it); True if either changed.

        The ACL file goes first: it never names nodes, so a new node appears in the broker's view
        only when its password line does, and a removed node's line disappears in one step.
        """
        self.directory.mkdir(parents=True, exist_ok=True)
        acl_changed = _write_atomically(self.acl_file, acl)
        pw_changed = _write_atomically(self.password_file, passwords)
        return acl_changed or pw_changed


DISPATCH: Final = "dispatch"
PROBE: Final = "probe"


def process_identity(
    username: str | None, client_id: str, part: str = ""
) -> tuple[str | None, str]:
    """(username, client id) one of the controller's processes connects with.

    ``part`` names the process: "" the main ingest, "1", "2", ... the ingest children
    (controller/ingest/children.py), DISPATCH the dispatcher. With an account (``username``, the
    setting ``mqtt_username``) each process has its own, ``<username>-<part>``, and uses it as its
    client id too: the broker forces the client id to the username, and two processes sharing one
    account would take each other's session. Without one (an anonymous development broker) the
    client id is ``<client_id>-<part>``, as before.
    """
    suffix = f"-{part}" if part else ""
    if username is None:
        return None, client_id + suffix
    return username + suffix, username + suffix


def controller_usernames(base: str, ingest_processes: int = 1) -> list[str]:
    """The accounts of all the controller's processes (see process_identity); the broker's
    password file needs each, all with the controller's secret."""
    parts = ["", *(str(i) for i in range(1, ingest_processes)), DISPATCH]
    return [_id(f"{base}-{p}" if p else base, "username") for p in parts]
