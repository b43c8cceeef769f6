"""Node credentials and the broker ACL, against a real mosquitto with the files MqttAccounts writes.

"No node may speak for another" (issue 6) is checked on the broker itself: what a node may publish,
what it can receive, who may connect after a reload, and the TLS listener with a throwaway CA.
Negative checks ("not delivered") use a sentinel: the forbidden message is sent first and an allowed
one after it on the same connection; mosquitto delivers one client's messages in order, so once the
sentinel is in, the forbidden one would have been too.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import re
import ssl
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import paho.mqtt.client as paho
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.reasoncodes import ReasonCode

from controller.broker import Broker, BrokerConfig, free_port
from controller.mqtt_auth import (
    ROLE_CONTROLLER,
    ROLE_READER,
    InvalidAccount,
    MqttAccounts,
    generate_secret,
    hash_password,
    node_username,
    verify_password,
)
from tests.harness.wait import wait_for

NOT_AUTHORIZED = 0x87
POLE = "RTD-0001"


def topic(node: str, channel: str, pole: str = POLE) -> str:
    return f"streetpole/v1/{pole}/{node}/{channel}"


@dataclass
class Conn:
    """A paho client made synchronous enough for tests: connect result, acks and messages."""

    client: paho.Client
    connack: ReasonCode | None = None
    connected: threading.Event = field(default_factory=threading.Event)
    disconnected: threading.Event = field(default_factory=threading.Event)
    messages: list[tuple[str, bytes]] = field(default_factory=list)
    acks: dict[int, ReasonCode] = field(default_factory=dict)
    subacks: dict[int, list[ReasonCode]] = field(default_factory=dict)

    def wait_message(self, wanted: str, timeout: float = 5.0) -> None:
        deadline = time.monotonic() + timeout
        while not any(t == wanted for t, _ in self.messages):
            assert time.monotonic() < deadline, f"{wanted} not received; got {self.messages}"
            time.sleep(0.005)

    def publish(self, topic: str, payload: bytes, qos: int = 1, retain: bool = False) -> ReasonCode:
        """Publish with QoS 1 and return the PUBACK reason code."""
        info = self.client.publish(topic, payload, qos=qos, retain=retain)
        deadline = time.monotonic() + 5
        while info.mid not in self.acks:
            assert time.monotonic() < deadline, "no PUBACK"
            time.sleep(0.005)
        return self.acks[info.mid]

    def subscribe(self, filter_: str, qos: int = 1) -> ReasonCode:
        _rc, mid = self.client.subscribe(filter_, qos=qos)
        deadline = time.monotonic() + 5
        while mid not in self.subacks:
            assert time.monotonic() < deadline, "no SUBACK"
            time.sleep(0.005)
        return self.subacks[mid][0]

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def connect(
    port: int,
    username: str | None,
    password: str | None,
    *,
    v5: bool = True,
    client_id: str = "",
    tls: ssl.SSLContext | None = None,
    will: tuple[str, bytes] | None = None,
) -> Conn:
    """Connect and wait for the CONNACK (or a TLS/socket failure, which is raised)."""
    client = paho.Client(
        CallbackAPIVersion.VERSION2,
        client_id=client_id or f"t-{generate_secret()[:12]}",
        protocol=paho.MQTTv5 if v5 else paho.MQTTv311,
    )
    conn = Conn(client)
    if username is not None:
        client.username_pw_set(username, password)
    if tls is not None:
        client.tls_set_context(tls)
    if will is not None:
        client.will_set(will[0], will[1], qos=1, retain=True)

    def on_connect(_c: object, _u: object, _f: object, rc: ReasonCode, _p: object) -> None:
        conn.connack = rc
        conn.connected.set()

    def on_disconnect(_c: object, _u: object, _f: object, rc: ReasonCode, _p: object) -> None:
        conn.connack = conn.connack or rc
        conn.connected.set()
        conn.disconnected.set()

    def on_publish(_c: object, _u: object, mid: int, rc: ReasonCode, _p: object) -> None:
        conn.acks[mid] = rc

    def on_subscribe(_c: object, _u: object, mid: int, rcs: list[ReasonCode], _p: object) -> None:
        conn.subacks[mid] = rcs

    client.on_connect = on_connect
    client.on_disconnect = on_disconnect
    client.on_publish = on_publish
    client.on_subscribe = on_subscribe
    client.on_message = lambda _c, _u, m: conn.messages.append((m.topic, bytes(m.payload)))
    client.connect("127.0.0.1", port)
    client.loop_start()
    assert conn.connected.wait(5), "no CONNACK"
    return conn


def ok(rc: ReasonCode) -> bool:
    """A PUBACK or SUBACK that is not a refusal (0x10 "no matching subscribers" is fine)."""
    return not rc.is_failure


def accepted(conn: Conn) -> bool:
    return conn.connack is not None and not conn.connack.is_failure


@dataclass
class Street:
    accounts: MqttAccounts
    broker: Broker
    secrets: dict[str, str]
    conns: list[Conn] = field(default_factory=list)

    def node(self, node: str, *, v5: bool = True, **kw: object) -> Conn:
        user = node_username(POLE, node)
        conn = connect(self.broker.port, user, self.secrets[user], v5=v5, **kw)  # type: ignore[arg-type]
        self.conns.append(conn)
        return conn

    def service(self, name: str) -> Conn:
        conn = connect(self.broker.port, name, self.secrets[name])
        self.conns.append(conn)
        return conn


def provision(accounts: MqttAccounts, secrets: dict[str, str]) -> None:
    for node in ("n1", "n2", "n3"):
        secret = generate_secret()
        secrets[accounts.set_node(POLE, node, hash_password(secret))] = secret
    for name, role in (("controller", ROLE_CONTROLLER), ("dashboard", ROLE_READER)):
        secrets[name] = generate_secret()
        accounts.set_service(name, hash_password(secrets[name]), role)


@pytest.fixture
def street(tmp_path: Path) -> Iterator[Street]:
    """Three nodes on one pole, a controller and a read-only dashboard account."""
    accounts = MqttAccounts(tmp_path / "auth")
    secrets: dict[str, str] = {}
    provision(accounts, secrets)
    assert accounts.write()
    config = BrokerConfig(
        port=free_port(), password_file=accounts.password_file, acl_file=accounts.acl_file
    )
    broker = Broker(tmp_path / "broker", config)
    broker.start()
    s = Street(accounts, broker, secrets)
    try:
        yield s
    finally:
        for conn in s.conns:
            conn.close()
        broker.stop()


# -- password hashes ---------------------------------------------------------------------------


def test_hash_matches_mosquitto_passwd_byte_for_byte(tmp_path: Path) -> None:
    """Same salt, same output as mosquitto_passwd 2.0; and we verify what it wrote."""
    tool = Path("/usr/bin/mosquitto_passwd")
    assert tool.exists(), "Debian package mosquitto ships mosquitto_passwd"
    pwfile = tmp_path / "pw"
    pwfile.touch()
    secret = generate_secret()
    subprocess.run([str(tool), "-b", str(pwfile), "someone", secret], check=True)
    line = pwfile.read_text().strip()
    user, theirs = line.split(":", 1)
    assert user == "someone"
    m = re.fullmatch(r"\$7\$101\$([^$]+)\$([^$]+)", theirs)
    assert m, theirs
    import base64

    assert hash_password(secret, salt=base64.b64decode(m.group(1))) == theirs
    assert verify_password(secret, theirs)
    assert not verify_password(secret + "x", theirs)
    ours = hash_password(secret)
    assert ours != hash_password(secret), "a fresh salt every time"
    assert verify_password(secret, ours)


def test_secrets_are_long_and_url_safe() -> None:
    s = {generate_secret() for _ in range(100)}
    assert len(s) == 100
    assert all(re.fullmatch(r"[A-Za-z0-9_-]{32}", x) for x in s)  # 32 * 6 = 192 bits


# -- what may reach the files ------------------------------------------------------------------


@pytest.mark.parametrize(
    "bad", ["", "+", "#", "a+", "a/b", "$SYS", "a b", "a\tb", "a\nb", "x" * 33]
)
def test_ids_that_could_widen_a_topic_are_refused(tmp_path: Path, bad: str) -> None:
    accounts = MqttAccounts(tmp_path)
    h = hash_password("x")
    with pytest.raises(InvalidAccount):
        accounts.set_node(bad, "n1", h)
    with pytest.raises(InvalidAccount):
        accounts.set_node(POLE, bad, h)
    with pytest.raises(InvalidAccount):
        accounts.set_service(bad, h, ROLE_CONTROLLER)
    with pytest.raises(InvalidAccount):
        accounts.replace_nodes({(POLE, bad): h})
    assert not list(accounts.nodes())


def test_malformed_hashes_and_roles_are_refused(tmp_path: Path) -> None:
    accounts = MqttAccounts(tmp_path)
    good = hash_password("x")
    for bad in ["", "secret", good + "\nevil:" + good, good + ":x", "$7$101$abc", "$1$a$b"]:
        with pytest.raises(InvalidAccount):
            accounts.set_node(POLE, "n1", bad)
    with pytest.raises(InvalidAccount):
        accounts.set_service("svc", good, "admin")


def test_write_is_atomic_private_and_reports_changes(tmp_path: Path) -> None:
    accounts = MqttAccounts(tmp_path / "auth")
    accounts.set_node(POLE, "n1", hash_password("x"))
    assert accounts.write()
    assert not accounts.write(), "nothing changed, nothing to reload"
    for f in (accounts.password_file, accounts.acl_file):
        assert f.stat().st_mode & 0o777 == 0o600
    assert accounts.password_file.read_text().startswith(f"{POLE}/n1:$7$101$")
    assert not accounts.remove_node(POLE, "n9")
    assert accounts.remove_node(POLE, "n1")
    assert accounts.write()
    assert accounts.password_file.read_text() == ""
    assert sorted(p.name for p in (tmp_path / "auth").iterdir()) == [
        "mosquitto.acl",
        "mosquitto.passwd",
    ], "no temp files left behind"


# -- against mosquitto -------------------------------------------------------------------------


def test_node_publishes_own_meas_to_the_controller(street: Street) -> None:
    ctl = street.service("controller")
    # how ingest workers subscribe: a shared subscription, checked without the $share prefix
    assert ok(ctl.subscribe("$share/ingest/streetpole/v1/+/+/meas"))
    n1 = street.node("n1")
    assert ok(n1.publish(topic("n1", "meas"), b"m1"))
    ctl.wait_message(topic("n1", "meas"))


def test_node_cannot_publish_as_another_node_mqtt5(street: Street) -> None:
    """MQTT 5, QoS 1: the broker says 0x87 Not authorized in the PUBACK and drops it."""
    ctl = street.service("controller")
    assert ok(ctl.subscribe("streetpole/v1/#"))
    n1 = street.node("n1")
    for channel in ("meas", "event", "state", "ack", "presence"):
        assert n1.publish(topic("n2", channel), b"forged").value == NOT_AUTHORIZED, channel
    for forbidden in (topic("n1", "config"), topic("n1", "cmd"), "streetpole/v1/x", "other/t"):
        assert n1.publish(forbidden, b"forged").value == NOT_AUTHORIZED, forbidden
    assert ok(n1.publish(topic("n1", "meas"), b"sentinel"))
    ctl.wait_message(topic("n1", "meas"))
    assert [t for t, _ in ctl.messages] == [topic("n1", "meas")]


def test_node_cannot_publish_as_another_node_mqtt311(street: Street) -> None:
    """MQTT 3.1.1 has no reason codes: mosquitto acknowledges and silently drops."""
    ctl = street.service("controller")
    assert ok(ctl.subscribe("streetpole/v1/#"))
    n1 = street.node("n1", v5=False)
    n1.publish(topic("n2", "meas"), b"forged")
    n1.publish(topic("n1", "meas"), b"sentinel")
    ctl.wait_message(topic("n1", "meas"))
    assert [t for t, _ in ctl.messages] == [topic("n1", "meas")]


def test_node_cannot_read_another_nodes_commands_or_config(street: Street) -> None:
    """Only its own config and cmd, and everybody's presence, reach a node.

    mosquitto 2.0.11's acl_file does not refuse a SUBSCRIBE (the SUBACK grants it); it checks
    read access per message at delivery. So the proof is what is delivered, including through a
    subscription to the whole tree and including retained config.
    """
    ctl = street.service("controller")
    assert ok(ctl.publish(topic("n2", "config"), b"cfg2", retain=True))
    assert ok(ctl.publish(topic("n1", "config"), b"cfg1", retain=True))
    n1 = street.node("n1")
    rc = n1.subscribe(topic("n2", "cmd"))
    assert rc.is_failure or rc.value == 1  # refused, or granted and then filtered per message
    assert ok(n1.subscribe("streetpole/v1/#"))
    assert ok(n1.subscribe("$share/sneak/streetpole/v1/+/+/cmd"))  # filtered per message too
    n1.wait_message(topic("n1", "config"))
    n3 = street.node("n3")
    assert ok(ctl.publish(topic("n2", "cmd"), b"reboot n2"))
    assert ok(n3.publish(topic("n3", "presence"), b"p", qos=1))
    assert ok(ctl.publish(topic("n1", "cmd"), b"for n1"))
    n1.wait_message(topic("n1", "cmd"))
    got = {t for t, _ in n1.messages}
    assert got == {topic("n1", "config"), topic("n3", "presence"), topic("n1", "cmd")}


def test_controller_may_steer_but_not_forge_node_data(street: Street) -> None:
    ctl = street.service("controller")
    assert ok(ctl.publish(topic("n1", "cmd"), b"c"))
    assert ok(ctl.publish(topic("n1", "state"), b"", retain=True))  # clear a retained state
    assert ctl.publish(topic("n1", "meas"), b"forged").value == NOT_AUTHORIZED
    dash = street.service("dashboard")
    assert dash.publish(topic("n1", "cmd"), b"c").value == NOT_AUTHORIZED
    assert ok(dash.subscribe("streetpole/v1/+/+/meas"))
    street.node("n2").publish(topic("n2", "meas"), b"m")
    dash.wait_message(topic("n2", "meas"))


def test_only_the_controller_confirms_and_only_to_the_node_itself(street: Street) -> None:
    """The controller's "stored" confirmations make a node free its batches: a node that could
    write them could make another node throw away what the controller never stored, and a node
    that could read another's would learn its traffic. The controller writes them, each node
    reads its own, nobody else does either."""
    ctl = street.service("controller")
    n1 = street.node("n1")
    assert ok(n1.subscribe("streetpole/v1/#"))
    n2 = street.node("n2")
    for target in ("n2", "n1"):  # forging for another node, or for itself
        assert n1.publish(topic(target, "stored"), b"forged").value == NOT_AUTHORIZED, target
    dash = street.service("dashboard")
    assert dash.publish(topic("n1", "stored"), b"forged").value == NOT_AUTHORIZED
    assert ok(ctl.publish(topic("n2", "stored"), b"for n2"))
    assert ok(ctl.publish(topic("n1", "stored"), b"for n1"))
    n1.wait_message(topic("n1", "stored"))
    assert ok(n2.publish(topic("n2", "presence"), b"sentinel", qos=1))
    n1.wait_message(topic("n2", "presence"))
    assert [(t, p) for t, p in n1.messages if t.endswith("/stored")] == [
        (topic("n1", "stored"), b"for n1")
    ]


def test_node_cannot_plant_a_last_will_for_another_node(street: Street) -> None:
    """mosquitto 2.0.11 accepts the CONNECT and drops the will when it fires; a node's will on
    its own state (the protocol's "offline") fires normally and serves as the sentinel."""
    ctl = street.service("controller")
    assert ok(ctl.subscribe("streetpole/v1/+/+/state"))
    n1 = street.node("n1", will=(topic("n2", "state"), b"offline"))
    n3 = street.node("n3", will=(topic("n3", "state"), b"offline"))
    for name, conn in (("n1", n1), ("n3", n3)):
        if accepted(conn):
            conn.client.loop_stop()
            sock = conn.client.socket()
            assert sock is not None
            sock.close()  # vanish without DISCONNECT: the will fires
            # mosquitto logs the loss, then fires the will, in one go: n1's goes first
            gone = f"Client {node_username(POLE, name)} closed its connection."
            wait_for(lambda gone=gone: gone in street.broker.log(), 10, gone)
    ctl.wait_message(topic("n3", "state"))
    assert [t for t, _ in ctl.messages] == [topic("n3", "state")]


def test_wrong_password_and_unknown_user_are_refused(street: Street) -> None:
    n1 = node_username(POLE, "n1")
    assert not accepted(connect(street.broker.port, n1, street.secrets[node_username(POLE, "n2")]))
    assert not accepted(connect(street.broker.port, n1, ""))
    assert not accepted(connect(street.broker.port, node_username(POLE, "n9"), "x"))
    assert not accepted(connect(street.broker.port, None, None))
    assert accepted(street.node("n1"))


def test_removed_node_is_disconnected_and_cannot_come_back(street: Street) -> None:
    n1 = street.node("n1")
    assert accepted(n1)
    street.accounts.remove_node(POLE, "n1")
    assert street.accounts.write()
    street.broker.reload()
    assert n1.disconnected.wait(5), "mosquitto drops a connected client whose user is gone"
    n1.client.loop_stop()
    assert not accepted(street.node("n1"))
    assert accepted(street.node("n2"))


def test_reprovisioned_node_needs_its_new_secret(street: Street) -> None:
    user = node_username(POLE, "n2")
    old = street.secrets[user]
    new = generate_secret()
    street.accounts.set_node(POLE, "n2", hash_password(new))
    assert street.accounts.write()
    street.broker.reload()
    assert not accepted(connect(street.broker.port, user, old))
    assert accepted(connect(street.broker.port, user, new))


def test_reload_reports_an_unreadable_file(street: Street) -> None:
    street.accounts.password_file.unlink()
    with pytest.raises(RuntimeError, match=r"(?i)error"):
        street.broker.reload()


# -- TLS ---------------------------------------------------------------------------------------


def _cert(
    subject: str,
    key: ec.EllipticCurvePrivateKey,
    issuer: tuple[x509.Name, ec.EllipticCurvePrivateKey] | None,
    *,
    ca: bool,
) -> x509.Certificate:
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)])
    issuer_name, issuer_key = issuer or (name, key)
    now = dt.datetime.now(dt.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(issuer_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if ca:
        builder = builder.add_extension(
            x509.KeyUsage(False, False, False, False, False, True, True, False, False), True
        )
    else:
        san = [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
        builder = builder.add_extension(x509.SubjectAlternativeName(san), critical=False)
    return builder.sign(issuer_key, hashes.SHA256())


def _write_pem(path: Path, cert: x509.Certificate, key: ec.EllipticCurvePrivateKey) -> Path:
    path.with_suffix(".key").write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return path


@dataclass
class Pki:
    ca: Path
    server: Path
    client: Path
    other_ca: Path


@pytest.fixture
def pki(tmp_path: Path) -> Pki:
    """A throwaway CA with a server and a client certificate, and an unrelated second CA."""
    d = tmp_path / "pki"
    d.mkdir()
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = _cert("Streetpole test CA", ca_key, None, ca=True)
    server_key = ec.generate_private_key(ec.SECP256R1())
    client_key = ec.generate_private_key(ec.SECP256R1())
    other_key = ec.generate_private_key(ec.SECP256R1())
    return Pki(
        ca=_write_pem(d / "ca.pem", ca, ca_key),
        server=_write_pem(
            d / "server.pem",
            _cert("broker", server_key, (ca.subject, ca_key), ca=False),
            server_key,
        ),
        client=_write_pem(
            d / "client.pem", _cert("node", client_key, (ca.subject, ca_key), ca=False), client_key
        ),
        other_ca=_write_pem(
            d / "other.pem", _cert("Other CA", other_key, None, ca=True), other_key
        ),
    )


def _tls_broker(tmp_path: Path, pki: Pki, *, require_certificate: bool) -> tuple[Broker, Street]:
    accounts = MqttAccounts(tmp_path / "auth")
    secrets: dict[str, str] = {}
    provision(accounts, secrets)
    accounts.write()
    config = BrokerConfig(
        port=free_port(),
        password_file=accounts.password_file,
        acl_file=accounts.acl_file,
        tls_port=free_port(),
        cafile=pki.ca,
        certfile=pki.server,
        keyfile=pki.server.with_suffix(".key"),
        require_certificate=require_certificate,
    )
    broker = Broker(tmp_path / "broker", config)
    broker.start()
    return broker, Street(accounts, broker, secrets)


def _context(ca: Path, client: Path | None = None) -> ssl.SSLContext:
    ctx = ssl.create_default_context(cafile=str(ca))
    if client is not None:
        ctx.load_cert_chain(str(client), str(client.with_suffix(".key")))
    return ctx


def test_tls_listener_with_operator_ca(tmp_path: Path, pki: Pki) -> None:
    broker, street = _tls_broker(tmp_path, pki, require_certificate=False)
    try:
        port = broker.config.tls_port
        assert port is not None
        user = node_username(POLE, "n1")
        good = connect(port, user, street.secrets[user], tls=_context(pki.ca))
        assert accepted(good)
        # same ACL over TLS
        assert good.publish(topic("n2", "meas"), b"x").value == NOT_AUTHORIZED
        assert ok(good.publish(topic("n1", "meas"), b"x"))
        good.close()
        # same password file over TLS
        assert not accepted(connect(port, user, "wrong", tls=_context(pki.ca)))
        # a client that does not trust the operator's CA refuses the broker
        with pytest.raises(ssl.SSLCertVerificationError):
            connect(port, user, street.secrets[user], tls=_context(pki.other_ca))
    finally:
        broker.stop()


def test_tls_listener_requiring_client_certificates(tmp_path: Path, pki: Pki) -> None:
    broker, street = _tls_broker(tmp_path, pki, require_certificate=True)
    try:
        port = broker.config.tls_port
        assert port is not None
        user = node_username(POLE, "n1")
        with_cert = connect(port, user, street.secrets[user], tls=_context(pki.ca, pki.client))
        assert accepted(with_cert)
        with_cert.close()
        with pytest.raises((ssl.SSLError, ConnectionError, AssertionError)):
            conn = connect(port, user, street.secrets[user], tls=_context(pki.ca))
            assert accepted(conn)  # TLS 1.3 may report the refused certificate only now
    finally:
        broker.stop()
