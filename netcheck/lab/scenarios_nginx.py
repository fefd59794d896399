"""Scenarios with a real web server: Debian's nginx, started by the lab (:mod:`netcheck.lab.nginx`).

The same faults as the Python servers of scenarios_tls and scenarios_app, served the way a
production server serves them — nginx's own status pages, its TLS stack, its way of refusing a
missing client certificate (a 400 page after the handshake, not a TLS alert), its access log
with the request id netcheck sends.

=======================  ==================  ==============================================
host                     address             nginx
=======================  ==================  ==============================================
``site.lab.test``        198.18.2.50 / ::50  http 80 + https 443, valid certificate
``nginx-expired``        198.18.2.51 / ::51  https, certificate expired ten days ago
``nginx-wrongname``      198.18.2.52 / ::52  https, certificate for www-other.lab.test
``nginx-selfsigned``     198.18.2.53 / ::53  https, self-signed certificate
``nginx-mtls``           198.18.2.54 / ::54  https, ``ssl_verify_client on``
``nginx-plain443``       198.18.2.55 / ::55  plain HTTP on port 443
=======================  ==================  ==============================================

Certificates come from the lab's nginx CA in ``<lab.state_dir>/pki-nginx/``; arguments hold
the placeholders ``{nginx_ca}``, ``{nginx_client_cert}`` and ``{nginx_client_key}``, which
:meth:`NginxScenario.netcheck_argv` resolves for the lab the scenario was last applied to (or
the lab, or state directory, passed in). Sites are started once per lab, so every scenario but
the path-MTU one only adds to a lab and any number of them can share one;
``needs_own_lab`` marks the one that breaks the network itself.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Callable, Optional, Union

from netcheck.lab.nginx import Site, client_certificate, nginx_ca, pki_dir, start_nginx
from netcheck.lab.scenarios import Expect, Scenario
from netcheck.lab.topology import Lab

TABLE = "netcheck_nginx"
PLACEHOLDERS = {"{nginx_ca}": "ca.crt", "{nginx_client_cert}": "client.crt",
                "{nginx_client_key}": "client.key"}
CAFILE = ("--cafile", "{nginx_ca}")
CLIENT_CERT = ("--cert", "{nginx_client_cert}", "--key", "{nginx_client_key}")

SITE = Site("site", 0)
EXPIRED = Site("nginx-expired", 1, http=False, certificate="expired")
WRONG_NAME = Site("nginx-wrongname", 2, http=False, certificate="wrong_name")
SELF_SIGNED = Site("nginx-selfsigned", 3, http=False, certificate="self_signed")
MUTUAL_TLS = Site("nginx-mtls", 4, http=False, client_cert_required=True)
PLAIN_ON_443 = Site("nginx-plain443", 5, http=False, https=False, plain_on_443=True)


def resolve_args(args: tuple[str, ...], state_dir: Optional[str]) -> list[str]:
    """Replace the ``{nginx_*}`` placeholders by the files of the lab in ``state_dir``."""
    out = []
    for arg in args:
        for marker, filename in PLACEHOLDERS.items():
            if marker in arg and state_dir:
                arg = arg.replace(marker, str(pki_dir(SimpleNamespace(state_dir=state_dir))
                                              / filename))
        out.append(arg)
    return out


@dataclass(frozen=True)
class NginxScenario(Scenario):
    """A scenario served by nginx; its arguments may name the lab's nginx CA and client files."""

    needs_own_lab: bool = False  # it breaks the path itself: never share its lab
    applied: dict[str, str] = field(default_factory=dict, compare=False, hash=False,
                                    repr=False)

    def netcheck_argv(self, lab: Union[Lab, str, Path, None] = None  # type: ignore[override]
                      ) -> list[str]:
        """Arguments for netcheck with the placeholders resolved for ``lab`` (a Lab, anything
        with a ``state_dir``, or the state directory itself), by default the lab this
        scenario was last applied to in this process."""
        if lab is None:
            state_dir = self.applied.get("state_dir")
        else:
            state_dir = str(lab if isinstance(lab, (str, Path)) else lab.state_dir)
        return [self.target, *resolve_args(self.args, state_dir)]


def _serve(*sites: Site) -> Callable[[Lab], None]:
    """Start nginx for each site (once per lab); the CA and client files always exist, so
    ``--cafile``/``--cert``/``--key`` name real files in every scenario."""

    def apply(lab: Lab) -> None:
        nginx_ca(lab)
        client_certificate(lab)
        for site in sites:
            start_nginx(lab, site)

    return apply


def _big_download_blackhole(lab: Lab) -> None:
    # As scenarios_path does for the Python server: the router's client-facing link is
    # narrower, the router drops its own "too big" errors, and the web host does not answer
    # ping, so only the download itself can show the black hole. The server's full-size
    # segments vanish on the way back; the request and the handshake are small and pass.
    _serve(SITE)(lab)
    v4, v6 = SITE.addresses
    lab.ip("router", "link", "set", "r-client", "mtu", "1280")
    lab.nft("router", f"table inet {TABLE} {{\n chain out {{\n"
                      "  type filter hook output priority 0;\n"
                      "  icmp type destination-unreachable icmp code frag-needed drop\n"
                      "  icmpv6 type packet-too-big drop\n }\n}\n")
    lab.nft("server", f"table inet {TABLE} {{\n chain in {{\n"
                      "  type filter hook input priority 0;\n"
                      f"  ip daddr {v4} icmp type echo-request drop\n"
                      f"  ip6 daddr {v6} icmpv6 type echo-request drop\n }}\n}}\n")
    # Real full-size frames leave the server, not offloaded super-frames that skip the
    # router's MTU check (STYLE.md: a veth lab's path-MTU black hole).
    lab.exec("server", ["ethtool", "-K", "eth0", "tso", "off", "gso", "off"], check=True)


def _s(name: str, description: str, symptom: str, target: str, apply: Callable[[Lab], None],
       verdict: str, code: Optional[str] = None, layer: Optional[int] = None,
       args: tuple[str, ...] = (), needs_own_lab: bool = False) -> NginxScenario:
    applied: dict[str, str] = {}

    def record_and_apply(lab: Lab) -> None:
        applied["state_dir"] = str(lab.state_dir)
        apply(lab)

    return NginxScenario(name, description, symptom, target, record_and_apply,
                         Expect(verdict, code, layer), args, needs_own_lab=needs_own_lab,
                         applied=applied)


SCENARIOS_LIST: list[Scenario] = [
    _s("nginx_https_ok",
       "nginx redirects http://site.lab.test/to-https to https://site.lab.test/, whose "
       "certificate comes from the lab's nginx CA (given with --cafile).",
       "Nothing: wget follows http -> https and saves the page.",
       "http://site.lab.test/to-https", _serve(SITE), "ok", args=CAFILE),
    _s("nginx_expired",
       "nginx presents a certificate that expired ten days ago.",
       "Browsers show NET::ERR_CERT_DATE_INVALID; curl says 'certificate has expired'.",
       "https://nginx-expired.lab.test/", _serve(EXPIRED), "broken", "TLS_CERT_EXPIRED", 6,
       CAFILE),
    _s("nginx_wrong_name",
       "nginx presents the certificate of another site (www-other.lab.test).",
       "Browsers show NET::ERR_CERT_COMMON_NAME_INVALID; curl says 'no alternative "
       "certificate subject name matches'.",
       "https://nginx-wrongname.lab.test/", _serve(WRONG_NAME), "broken",
       "TLS_CERT_HOSTNAME_MISMATCH", 6, CAFILE),
    _s("nginx_untrusted",
       "nginx presents a self-signed certificate that no CA vouches for.",
       "Browsers warn 'not private'; curl says 'self-signed certificate'.",
       "https://nginx-selfsigned.lab.test/", _serve(SELF_SIGNED), "broken",
       "TLS_CERT_UNTRUSTED", 6),
    _s("nginx_client_cert_required",
       "nginx demands a client certificate from the lab's nginx CA (ssl_verify_client on) "
       "and netcheck is run without one.",
       "The browser shows nginx's '400 No required SSL certificate was sent'.",
       "https://nginx-mtls.lab.test/", _serve(MUTUAL_TLS), "broken",
       "TLS_CLIENT_CERT_REQUIRED", 6, CAFILE),
    _s("nginx_client_cert_given",
       "The same mutual-TLS nginx, and netcheck is given a client certificate from the "
       "nginx CA with --cert/--key (no fault).",
       "Nothing: the page loads with the client certificate.",
       "https://nginx-mtls.lab.test/", _serve(MUTUAL_TLS), "ok",
       args=(*CAFILE, *CLIENT_CERT)),
    _s("nginx_plain_on_443",
       "nginx listens on port 443 without 'ssl': it speaks plain HTTP there.",
       "Browsers say SSL_ERROR_RX_RECORD_TOO_LONG; curl says 'wrong version number'.",
       "https://nginx-plain443.lab.test/", _serve(PLAIN_ON_443), "broken",
       "TLS_PROTOCOL_MISMATCH", 6),
    _s("nginx_503",
       "nginx answers 503 for /broken: the application behind it is down.",
       "The browser shows nginx's '503 Service Temporarily Unavailable' page.",
       "http://site.lab.test/broken", _serve(SITE), "broken", "HTTP_SERVER_ERROR", 7),
    _s("nginx_404",
       "The page asked for does not exist in nginx's document root.",
       "The browser shows nginx's '404 Not Found' page.",
       "http://site.lab.test/missing", _serve(SITE), "broken", "HTTP_CLIENT_ERROR", 7),
    _s("nginx_redirect_loop",
       "nginx redirects /loop to /loop-again and /loop-again back to /loop.",
       "The browser gives up with ERR_TOO_MANY_REDIRECTS.",
       "http://site.lab.test/loop", _serve(SITE), "broken", "HTTP_REDIRECT_LOOP", 7),
    _s("nginx_big_pmtu_blackhole",
       "The router's link towards the client has MTU 1280 and the router drops its own "
       "ICMP 'fragmentation needed'; the web host does not answer ping.",
       "Small pages load; the 2 MiB /big starts and never arrives.",
       "http://site.lab.test/big", _big_download_blackhole, "broken", "PMTU_BLACKHOLE", 3,
       needs_own_lab=True),
]


def _register_late() -> None:
    """Add these scenarios to the library if it was gathered before this module finished
    (when this module is imported first, the gathering saw it half-initialised)."""
    base = sys.modules.get("netcheck.lab.scenarios")
    table = getattr(base, "SCENARIOS", None)
    if isinstance(table, dict):
        for scenario in SCENARIOS_LIST:
            table.setdefault(scenario.name, scenario)


_register_late()

