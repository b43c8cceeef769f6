"""A throwaway certificate authority for the broker's TLS listener: `make run` and the tests.

A production broker's certificate comes from the operator's own CA; for development `make run`
makes a fresh CA at every start, issues the broker a certificate for the names nodes use to reach
it (127.0.0.1 and localhost by default), and hands the CA certificate to provisioning, which
writes it into every node.json. Nothing here is secret beyond the run: the CA key is kept only
to issue the server certificate and is written 0600 next to it.

EC P-256 keys and ECDSA signatures: the node's mbedTLS verifies them with less code and heap than
RSA, and the certificate it keeps in node.json is about half the size.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

DEFAULT_NAMES = ("localhost", "127.0.0.1")


@dataclass(frozen=True)
class Issued:
    """A certificate and its private key, in PEM."""

    cert_pem: bytes
    key_pem: bytes


class Authority:
    """A self-signed CA that issues server certificates."""

    def __init__(self, name: str = "Streetpole development CA", days: int = 30) -> None:
        self.name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
        self.key = ec.generate_private_key(ec.SECP256R1())
        self.days = days
        self.cert = (
            self._builder(self.name, self.key.public_key())
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(
                x509.KeyUsage(False, False, False, False, False, True, True, False, False), True
            )
            .sign(self.key, hashes.SHA256())
        )

    @property
    def cert_pem(self) -> bytes:
        return self.cert.public_bytes(serialization.Encoding.PEM)

    def _builder(
        self, subject: x509.Name, public: ec.EllipticCurvePublicKey
    ) -> x509.CertificateBuilder:
        now = dt.datetime.now(dt.UTC)
        return (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(self.name)
            .public_key(public)
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(hours=1))
            .not_valid_after(now + dt.timedelta(days=self.days))
        )

    def issue(self, names: tuple[str, ...] = DEFAULT_NAMES) -> Issued:
        """A server certificate for ``names`` (DNS names or IP addresses, the first is the CN)."""
        key = ec.generate_private_key(ec.SECP256R1())
        subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[0])])
        cert = (
            self._builder(subject, key.public_key())
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.SubjectAlternativeName([_general_name(n) for n in names]), False)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), False)
            .sign(self.key, hashes.SHA256())
        )
        return Issued(
            cert.public_bytes(serialization.Encoding.PEM),
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            ),
        )


def _general_name(name: str) -> x509.GeneralName:
    try:
        return x509.IPAddress(ipaddress.ip_address(name))
    except ValueError:
        return x509.DNSName(name)


@dataclass(frozen=True)
class ServerFiles:
    """Where a broker's TLS files were written (the paths mosquitto's config names)."""

    ca: Path
    cert: Path
    key: Path


def write_server_files(
    directory: Path, ca: Authority, names: tuple[str, ...] = DEFAULT_NAMES
) -> ServerFiles:
    """Issue a server certificate for ``names`` and write it, its key (0600) and the CA."""
    directory.mkdir(parents=True, exist_ok=True)
    issued = ca.issue(names)
    files = ServerFiles(directory / "ca.pem", directory / "server.pem", directory / "server.key")
    files.ca.write_bytes(ca.cert_pem)
    files.cert.write_bytes(issued.cert_pem)
    files.key.touch(mode=0o600)
    files.key.chmod(0o600)
    files.key.write_bytes(issued.key_pem)
    return files
