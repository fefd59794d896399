"""TLS: contexts and handshakes. Measures only; the checks judge."""

from __future__ import annotations

import ssl
from typing import Optional, Sequence


def client_context(cafile: Optional[str] = None, cert: Optional[str] = None,
                   key: Optional[str] = None, verify: bool = True,
                   alpn: Sequence[str] = ()) -> ssl.SSLContext:
    """A client context: system CAs plus ``cafile``, an optional client certificate.

    With ``verify=False`` the handshake completes whatever the certificate is, so that a
    failing certificate can still be read and shown exactly.
    """
    ctx = ssl.create_default_context(cafile=None)
    if cafile:
        ctx.load_verify_locations(cafile=cafile)
    if not verify:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    if cert:
        ctx.load_cert_chain(cert, key)
    if alpn:
        ctx.set_alpn_protocols(list(alpn))
    return ctx
