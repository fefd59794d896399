"""Client contexts: system CAs (looked up lazily) plus a CA file and an optional client
certificate, and the contexts shared by a run's handshakes (reused while their files are
unchanged, for a minute at most).
"""

from __future__ import annotations

import os
import ssl
import sys
import time
from typing import Any, Optional, Sequence

from netcheck.probes.tls.conn import _dispatch_message


def client_context(cafile: Optional[str] = None, cert: Optional[str] = None,
                   key: Optional[str] = None, verify: bool = True,
                   alpn: Sequence[str] = ()) -> ssl.SSLContext:
    """A client context: system CAs plus ``cafile``, an optional client certificate.

    With ``verify=False`` the handshake completes whatever the certificate is, so that a
    failing certificate can still be read and shown exactly (and the system CAs, ~30 ms
    to load, are not loaded). ``SSLKEYLOGFILE`` is honoured as by
    ``ssl.create_default_context``, so a capture of the run can be decrypted in Wireshark.
    """
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)  # hostname checked, CERT_REQUIRED
    if verify:
        _load_system_cas(ctx)
        if cafile:
            ctx.load_verify_locations(cafile=cafile)
    else:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    keylog = os.environ.get("SSLKEYLOGFILE")
    if keylog and not sys.flags.ignore_environment and hasattr(ctx, "keylog_filename"):
        ctx.keylog_filename = keylog
    if cert:
        ctx.load_cert_chain(cert, key)
    if alpn:
        ctx.set_alpn_protocols(list(alpn))
    return ctx


def _load_system_cas(ctx: ssl.SSLContext) -> None:
    """The system's trusted CAs, looked up lazily where the system keeps a hashed directory.

    Loading the whole bundle parses every CA (~30 ms); OpenSSL's hashed directory
    (/etc/ssl/certs on Debian, kept in step with the bundle by update-ca-certificates)
    yields the one CA a chain needs, when it needs it (~1 ms). An SSL_CERT_FILE or
    SSL_CERT_DIR in the environment is honoured through the default loading.
    """
    paths = ssl.get_default_verify_paths()
    custom = os.environ.get(paths.openssl_cafile_env) or os.environ.get(paths.openssl_capath_env)
    capath = paths.capath
    if not custom and capath and os.path.isdir(capath) and any(
            name.endswith(".0") for name in os.listdir(capath)[:400]):
        ctx.load_verify_locations(capath=capath)
    else:
        ctx.load_default_certs(ssl.Purpose.SERVER_AUTH)


# Reused for a minute at most, and only while the files named are unchanged: a long-lived
# process (batch, the exporter) must see a renewed CA bundle or client certificate.
CONTEXT_TTL = 60.0
_contexts: dict[tuple[Any, ...], tuple[float, ssl.SSLContext]] = {}


def _file_stamp(path: Optional[str]) -> Optional[tuple[str, int]]:
    if not path:
        return None
    try:
        return path, os.stat(path).st_mtime_ns
    except OSError:
        return path, -1


def shared_context(cafile: Optional[str], cert: Optional[str], key: Optional[str],
                    verify: bool, alpn: Sequence[str]) -> ssl.SSLContext:
    """One context per settings, shared by every address and attempt of a run, and by the
    runs of a batch or an exporter (loading the system CAs costs ~30 ms each time where the
    whole bundle is read). Its message callback dispatches to the attempt that
    owns each connection."""
    settings = (_file_stamp(cafile), _file_stamp(cert), _file_stamp(key), verify, tuple(alpn))
    now = time.monotonic()
    cached = _contexts.get(settings)
    if cached is not None and now - cached[0] < CONTEXT_TTL:
        return cached[1]
    ctx = client_context(cafile, cert, key, verify, alpn)
    if hasattr(ctx, "_msg_callback"):
        ctx._msg_callback = _dispatch_message
    for stale in [k for k, (made, _) in _contexts.items() if now - made >= CONTEXT_TTL]:
        del _contexts[stale]
    _contexts[settings] = (now, ctx)
    return ctx
