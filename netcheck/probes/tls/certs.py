"""Certificates: one parsed from its DER or PEM into what a person needs to know
(:class:`CertSummary`), and whether it names a host (RFC 6125).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Optional

from netcheck.probes.tls.plaintext import _printable


@dataclass
class CertSummary:
    """What a person needs to know about one certificate (parsed from its DER)."""

    subject: str
    issuer: str
    san: list[str]
    not_before: str  # RFC 3339, UTC
    not_after: str
    days_left: int  # whole days until not_after (negative once expired)
    serial: str
    signature_algorithm: str
    self_signed: bool
    is_ca: bool
    key: str  # e.g. "EC secp256r1", "RSA 2048"
    sha256: str
    not_yet_valid: bool = False
    san_total: int = 0  # the SAN list is capped; this is how many there were

    @property
    def expired(self) -> bool:
        return self.days_left < 0  # floored: half a day past not_after is already -1

    def to_json(self) -> dict[str, Any]:
        out = dict(vars(self))
        if self.san_total <= len(self.san):
            out.pop("san_total")
        return out

    def brief(self) -> dict[str, Any]:
        """The fields a chain listing shows for each certificate."""
        return {"subject": self.subject, "issuer": self.issuer, "not_after": self.not_after,
                "days_left": self.days_left, "self_signed": self.self_signed}


def _utc(value: datetime) -> datetime:
    return value if value.tzinfo else value.replace(tzinfo=timezone.utc)


def _rfc3339(value: datetime) -> str:
    return _utc(value).strftime("%Y-%m-%dT%H:%M:%SZ")


def summarize_der(der: bytes, now: Optional[datetime] = None) -> CertSummary:
    """Parse one DER certificate into a :class:`CertSummary` (raises ValueError if broken)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec, rsa

    cert = x509.load_der_x509_certificate(der)
    now = now or datetime.now(timezone.utc)
    # cryptography >= 42 has the *_utc properties; older versions return naive UTC values.
    before = _utc(getattr(cert, "not_valid_before_utc", None) or cert.not_valid_before)
    after = _utc(getattr(cert, "not_valid_after_utc", None) or cert.not_valid_after)
    san: list[str] = []
    try:
        ext = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        san = [str(v) for v in ext.get_values_for_type(x509.DNSName)]
        san += [str(v) for v in ext.get_values_for_type(x509.IPAddress)]
    except x509.ExtensionNotFound:
        pass
    except ValueError:  # a malformed extension: show what else there is
        san = []
    is_ca = False
    try:
        is_ca = bool(cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca)
    except (x509.ExtensionNotFound, ValueError):
        pass
    public = cert.public_key()
    if isinstance(public, rsa.RSAPublicKey):
        key = f"RSA {public.key_size}"
    elif isinstance(public, ec.EllipticCurvePublicKey):
        key = f"EC {public.curve.name}"
    else:
        key = type(public).__name__.replace("PublicKey", "").lstrip("_")
    try:
        sig = cert.signature_algorithm_oid._name  # e.g. ecdsa-with-SHA256
    except AttributeError:
        sig = cert.signature_algorithm_oid.dotted_string
    subject, issuer = _name_text(cert.subject), _name_text(cert.issuer)
    return CertSummary(
        subject=subject,
        issuer=issuer,
        san=[_printable(s, 100) for s in san[:50]],
        san_total=len(san),
        not_before=_rfc3339(before),
        not_after=_rfc3339(after),
        days_left=math.floor((after - now).total_seconds() / 86400),
        not_yet_valid=before > now,
        serial=format(cert.serial_number, "x"),
        signature_algorithm=str(sig),
        self_signed=_self_signed(cert),
        is_ca=is_ca,
        key=key,
        sha256=cert.fingerprint(hashes.SHA256()).hex(),
    )


def summarize_pem(pem: bytes, now: Optional[datetime] = None) -> CertSummary:
    """Parse one PEM certificate (e.g. a file the lab CA wrote)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization

    cert = x509.load_pem_x509_certificate(pem)
    return summarize_der(cert.public_bytes(serialization.Encoding.DER), now)


def _name_text(name: Any) -> str:
    try:
        return _printable(name.rfc4514_string(), 300)
    except ValueError:
        return "(unreadable name)"


def _self_signed(cert: Any) -> bool:
    """Issued by itself: same name, and its own key verifies its signature."""
    if cert.subject != cert.issuer:
        return False
    verify = getattr(cert, "verify_directly_issued_by", None)  # cryptography >= 40
    if verify is None:
        return True
    try:
        verify(cert)
        return True
    except Exception:  # signature, algorithm or name mismatch: issued by another key
        return False


def hostname_matches(summary: CertSummary, host: str) -> bool:
    """Does the certificate name ``host`` (RFC 6125: SAN only, one left-most wildcard)?

    Used to say *also* "wrong name" when OpenSSL stopped at an earlier error (an untrusted
    chain is reported before the name is compared).
    """
    import ipaddress

    host = host.rstrip(".").lower()
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        ip = None
    for name in summary.san:
        if ip is not None:
            try:
                if ipaddress.ip_address(name) == ip:
                    return True
            except ValueError:
                continue
            continue
        name = name.rstrip(".").lower()
        if name == host:
            return True
        if name.startswith("*.") and "." in host:
            first, _, rest = host.partition(".")
            if rest == name[2:] and first and "." in rest:
                return True
    return False
