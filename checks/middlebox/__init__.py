"""Layer 7: what stands between this host and the server — a proxy, a captive portal.

The ladder to a proxy as curl would use it (``--proxy``, else ``http_proxy`` /
``https_proxy`` / ``all_proxy`` with ``no_proxy``): the proxy's name, its port, TLS for an
``https://`` proxy, then through it — ``CONNECT`` to the target's port for https, the request
itself for http. Every finding names the variable that set the proxy; credentials are ``***``.

A captive portal (hotel, airport, guest Wi-Fi) intercepts plain HTTP and sends it to a
sign-in page, and resets or spoofs what it cannot intercept: the TCP, TLS and DNS failures it
causes are its symptoms, and CAPTIVE_PORTAL outranks them (runner.EXPLAINS_BELOW).

The modules are imported below in declaration order, each importing only those before it:

- ``common``: the web schemes and the proxy a request goes through (also http.response's);
- ``proxy``: ``http.proxy``;
- ``portal``: ``app.portal``.

Importing this package declares both rungs; the names others use are re-exported here, and so
are the old module's private helpers.
"""

from __future__ import annotations

# Each module imports only those above it: the rungs are declared in this order.
# isort: off
from netcheck.checks.middlebox.common import HTTP_SCHEMES, proxy_choice
from netcheck.checks.middlebox.common import _q as _q
from netcheck.checks.middlebox.proxy import (
    AUTH,
    MAX_PROXY_ADDRESSES,
    REFUSED,
    UNREACHABLE,
    http_proxy,
    proxy_answer_problem,
)
from netcheck.checks.middlebox.proxy import _auth_scheme as _auth_scheme
from netcheck.checks.middlebox.proxy import _direct_reason as _direct_reason
from netcheck.checks.middlebox.proxy import _http_target as _http_target
from netcheck.checks.middlebox.proxy import _proxy_addresses as _proxy_addresses
from netcheck.checks.middlebox.proxy import _proxy_commands as _proxy_commands
from netcheck.checks.middlebox.proxy import _refused as _refused
from netcheck.checks.middlebox.proxy import _tcp_failure as _tcp_failure
from netcheck.checks.middlebox.proxy import _unreachable as _unreachable
from netcheck.checks.middlebox.portal import (
    HOSTNAME_MISMATCH,
    PORTAL,
    PORTAL_TEXTS,
    RESERVE,
    captive_portal,
)
from netcheck.checks.middlebox.portal import _parts as _parts
from netcheck.checks.middlebox.portal import _plain_get as _plain_get
from netcheck.checks.middlebox.portal import _portal_addresses as _portal_addresses
from netcheck.checks.middlebox.portal import _portal_applies as _portal_applies
from netcheck.checks.middlebox.portal import _portal_facts as _portal_facts
from netcheck.checks.middlebox.portal import _portal_result as _portal_result
from netcheck.checks.middlebox.portal import _resolve as _resolve
from netcheck.checks.middlebox.portal import _tls_on_443 as _tls_on_443
from netcheck.checks.middlebox.portal import _tls_state as _tls_state
# isort: on

__all__ = [
    "HTTP_SCHEMES", "proxy_choice", "AUTH", "MAX_PROXY_ADDRESSES", "REFUSED", "UNREACHABLE",
    "http_proxy", "proxy_answer_problem", "HOSTNAME_MISMATCH", "PORTAL", "PORTAL_TEXTS",
    "RESERVE", "captive_portal",
]
