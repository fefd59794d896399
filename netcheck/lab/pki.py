"""A small certificate authority for the lab: the seeds' demoCA, made in Python.

The lab's TLS servers need certificates that are valid, expired, not yet valid, expiring,
self-signed, for the wrong name, or that demand a client certificate. Everything is made
with ``cryptography`` into a folder the lab owns; nothing is installed system-wide.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional, Sequence

from netcheck.safefile import open_for_write


@dataclass(frozen=True)
class Issued:
    """Paths of one certificate and its key (PEM)."""

    cert: Path
    key: Path


def _key() -> Any:
    from cryptography.hazmat.primitives.asymmetric import ec

    return ec.generate_private_key(ec.SECP256R1())


def _write(folder: Path, stem: str, cert: Any, key: Any) -> Issued:
    from cryptography.hazmat.primitives import serialization

    folder.mkdir(parents=True, exist_ok=True)
    cert_path, key_path = folder / f"{stem}.crt", folder / f"{stem}.key"
    # As root, in the lab's directory: never through a link; the key never readable by others,
    # not even for a moment.
    with open_for_write(cert_path, 0o644) as fh:
        fh.write(cert.public_bytes(serialization.Encoding.PEM))
    with open_for_write(key_path, 0o600) as fh:
        fh.write(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                   serialization.NoEncryption()))
    key_path.chmod(0o600)
    return Issued(cert_path, key_path)


def _name(common_name: str) -> Any:
    from cryptography import x509
    from cryptography.x509.oid import NameOID

    return x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "netcheck lab"),
                      x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


class LabCA:
    """The lab's root CA; issues server and client certificates."""

    def __init__(self, folder: Path, common_name: str = "netcheck lab CA") -> None:
        from cryptography import x509
        from cryptography.hazmat.primitives import hashes

        self.folder = folder
        self.key = _key()
        now = dt.datetime.now(dt.timezone.utc)
        name = _name(common_name)
        self.cert = (
            x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(self.key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(days=1))
            .not_valid_after(now + dt.timedelta(days=3650))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True,
                                         crl_sign=True, content_commitment=False,
                                         key_encipherment=False, data_encipherment=False,
                                         key_agreement=False, encipher_only=False,
                                         decipher_only=False), critical=True)
            .sign(self.key, hashes.SHA256())
        )
        self.files = _write(folder, "ca", self.cert, self.key)

    def issue(self, stem: str, names: Sequence[str], *, days_valid: float = 365,
              starts_in_days: float = -1, client: bool = False,
              self_signed: bool = False, common_name: Optional[str] = None) -> Issued:
        """A certificate for ``names`` (DNS names or IP addresses), signed by this CA.

        ``starts_in_days`` > 0 makes it not yet valid; ``days_valid`` < 0 together with
        a negative start makes it expired; ``self_signed`` signs it with its own key.
        """
        from cryptography import x509
        from cryptography.hazmat.primitives import hashes
        from cryptography.x509.oid import ExtendedKeyUsageOID

        key = _key()
        now = dt.datetime.now(dt.timezone.utc)
        start = now + dt.timedelta(days=starts_in_days)
        subject = _name(common_name or (names[0] if names else stem))
        sans: list[Any] = []
        for n in names:
            try:
                sans.append(x509.IPAddress(ipaddress.ip_address(n)))
            except ValueError:
                sans.append(x509.DNSName(n))
        usage = ExtendedKeyUsageOID.CLIENT_AUTH if client else ExtendedKeyUsageOID.SERVER_AUTH
        builder = (
            x509.CertificateBuilder().subject_name(subject)
            .issuer_name(subject if self_signed else self.cert.subject)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(start).not_valid_after(start + dt.timedelta(days=days_valid))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
        )
        if sans:
            builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
        cert = builder.sign(key if self_signed else self.key, hashes.SHA256())
        return _write(self.folder, stem, cert, key)
