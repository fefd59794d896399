"""Layers 5-6: TLS, the handshake and the certificate.

Two rungs, in this order (the order is the root-cause tie-break): does the port speak TLS
and complete a handshake with us, then is the certificate it presents one we can trust for
this name. Both judge the same handshakes (``netcheck.probes.tls.shared_handshake``, one per
address that accepted the TCP connection), so the HTTP check can reuse them too.

``netcheck.probes.tls`` (and with it ssl, ~30 ms) is imported inside the checks: listing the
checks must stay fast.

The package, by concern, imported below in that order so the rungs are declared as they
always were: ``common`` (when the rungs apply, the handshakes they judge, openssl commands,
names read from certificates), ``handshake`` (``tls.handshake``), ``certificate``
(``tls.certificate``). Importing this package declares both rungs; every name importable
from ``netcheck.checks.presentation`` before the split is re-exported here.
"""

from __future__ import annotations

# Each module imports only those above it: the checks are declared in this order.
# isort: off
from netcheck.checks.presentation.common import (
    EXPIRING_DAYS,
    MAX_ADDRESSES,
    STARTTLS_SCHEMES,
    TLS_SCHEMES,
    _acme,
    _dn_parts,
    _endpoint,
    issuer_is_public,
    short_name,
)
from netcheck.checks.presentation.handshake import (
    ABOUT_OUR_CERT_ALERTS,
    CIPHER_REASONS,
    CLIENT_CERT_ALERTS,
    PROTOCOL_VERSION_REASONS,
    handshake_problem,
    tls_handshake,
)
from netcheck.checks.presentation.certificate import (
    VERIFY_EXPIRED,
    VERIFY_HOSTNAME,
    VERIFY_NOT_YET_VALID,
    VERIFY_SELF_SIGNED,
    _day,
    certificate_problems,
    tls_certificate,
    verify_kind,
)
# isort: on


# Every public name the module had before it became a package.
__all__ = [
    "ABOUT_OUR_CERT_ALERTS", "CIPHER_REASONS", "CLIENT_CERT_ALERTS", "EXPIRING_DAYS",
    "MAX_ADDRESSES", "PROTOCOL_VERSION_REASONS", "STARTTLS_SCHEMES", "TLS_SCHEMES",
    "VERIFY_EXPIRED", "VERIFY_HOSTNAME", "VERIFY_NOT_YET_VALID", "VERIFY_SELF_SIGNED",
    "certificate_problems", "handshake_problem", "issuer_is_public", "short_name",
    "tls_certificate", "tls_handshake", "verify_kind",
    # private, reached from outside (fastprobe reads _day and _endpoint; tests, _acme, _dn_parts)
    "_acme", "_day", "_dn_parts", "_endpoint",
]
