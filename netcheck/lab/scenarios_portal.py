"""Captive portals and proxies: what stands between the client and the web.

The portal is made the way hotels make it: the router DNATs port 80 of any destination to a
small sign-in server (:mod:`netcheck.lab.portalserver` on ``portal.lab.test``, 198.18.2.80),
which answers ``302`` to its ``/login`` page, and resets every other new TCP connection from
the client (``tcp flags syn reject with tcp reset``): HTTPS, SSH… fail until a sign-in. One
scenario rewrites DNS instead: a name resolves to the portal, which also answers TLS with its
own certificate. ``check.lab.test`` (198.18.2.81) is a connectivity-check endpoint (204), the
kind NetworkManager's ``[connectivity] uri`` names; ``--portal-url`` points netcheck at it.

Proxies are Debian's tinyproxy (:mod:`netcheck.lab.proxy`): open, wanting credentials,
refusing CONNECT to 443, cut off from the server, and one whose address answers while no
proxy runs. Scenarios give the proxy with ``--proxy``; the lab tests also set the variables.
"""

from __future__ import annotations

import os
import weakref
from typing import Callable, Optional

from netcheck.lab import proxy as proxies
from netcheck.lab.scenarios import Expect, Scenario
from netcheck.lab.scenarios_app import (
    CAFILE,
    WEB_HTTP,
    WEB_HTTPS,
    WEB_SSH,
    AppScenario,
    app_ca,
    start_services,
)
from netcheck.lab.topology import Lab, python_argv

PORTAL_V4, PORTAL_V6 = "198.18.2.80", "2001:db8:2::80"
CHECK_V4, CHECK_V6 = "198.18.2.81", "2001:db8:2::81"
PORTAL_HOST, CHECK_HOST, REWRITTEN_HOST = "portal.lab.test", "check.lab.test", "news.lab.test"
CHECK_URL = f"http://{CHECK_HOST}/generate_204"
PORTAL_TABLE = "netcheck_lab_portal"

_DONE: weakref.WeakKeyDictionary[Lab, set[str]] = weakref.WeakKeyDictionary()


def _once(lab: Lab, what: str) -> bool:
    """True the first time ``what`` is asked for in this lab."""
    done = _DONE.setdefault(lab, set())
    if what in done:
        return False
    done.add(what)
    return True


def _host(lab: Lab, name: str, v4: str, v6: str) -> None:
    if _once(lab, f"host:{name}"):
        lab.add_server_address(v4)
        lab.add_server_address(v6)
        lab.add_dns_records((name + ".", "A", [v4]), (name + ".", "AAAA", [v6]))


def _serve(lab: Lab, label: str, mode: str, name: str, v4: str, v6: str, port: int,
           tls: bool = False) -> None:
    """Start one portalserver process in the server namespace and wait until it listens."""
    if not _once(lab, f"server:{label}"):
        return
    argv = python_argv("-m", "netcheck.lab.portalserver", "--listen", f"{v4}:{port},[{v6}]:{port}",
                       "--mode", mode, "--name", name)
    if tls:
        issued = app_ca(lab).issue(f"server-{label}", [name])
        argv += ["--tls-cert", str(issued.cert), "--tls-key", str(issued.key)]
    proc = lab.popen("server", argv, name=label, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    proxies.wait_listening(lab, label, proc, v4, port)


def start_portal_server(lab: Lab, tls: bool = False) -> None:
    """The sign-in server on portal.lab.test port 80 (and 443 with its own certificate)."""
    _host(lab, PORTAL_HOST, PORTAL_V4, PORTAL_V6)
    _serve(lab, "portal-http", "portal", PORTAL_HOST, PORTAL_V4, PORTAL_V6, 80)
    if tls:
        _serve(lab, "portal-https", "portal", PORTAL_HOST, PORTAL_V4, PORTAL_V6, 443, tls=True)


def start_check_server(lab: Lab) -> None:
    """check.lab.test: a connectivity-check endpoint answering 204, as on a free network."""
    _host(lab, CHECK_HOST, CHECK_V4, CHECK_V6)
    _serve(lab, "check-http", "check", CHECK_HOST, CHECK_V4, CHECK_V6, 80)


def hotel_portal(lab: Lab) -> None:
    """The router sends port 80 of every destination to the portal and resets the rest."""
    start_portal_server(lab)
    _portal_rules(lab, (80,))


def spoofing_portal(lab: Lab) -> None:
    """The router sends ports 80 and 443 of every destination to the portal, which answers
    TLS with its own certificate (one the lab's CA issued, for portal.lab.test)."""
    start_portal_server(lab, tls=True)
    _portal_rules(lab, (80, 443))


def _portal_rules(lab: Lab, ports: tuple[int, ...]) -> None:
    """DNAT of these ports (any destination) to the portal; every other new TCP reset."""
    dnat = "".join(
        f"    iifname \"r-client\" ip daddr != {PORTAL_V4} tcp dport {port} "
        f"dnat ip to {PORTAL_V4}:{port}\n"
        f"    iifname \"r-client\" ip6 daddr != {PORTAL_V6} tcp dport {port} "
        f"dnat ip6 to [{PORTAL_V6}]:{port}\n" for port in ports)
    allowed = ", ".join(str(p) for p in ports)
    lab.nft("router", (
        f"table inet {PORTAL_TABLE} {{\n"
        "  chain prerouting {\n"
        "    type nat hook prerouting priority dstnat; policy accept;\n"
        f"{dnat}"
        "  }\n"
        "  chain forward {\n"
        "    type filter hook forward priority 0; policy accept;\n"
        f"    iifname \"r-client\" tcp dport != {{ {allowed} }} tcp flags syn "
        "reject with tcp reset\n"
        "  }\n"
        "}\n"))


ROUTER_PORTAL_PORT = 8080


def router_portal(lab: Lab, lan: str) -> None:
    """The router itself is the portal (the campaign's fault): a sign-in server on the router,
    port 80 of whatever arrives on ``lan`` redirected to it, every other new TCP connection
    from ``lan`` reset."""
    label = "portal-router"
    if _once(lab, f"server:{label}"):
        argv = python_argv("-m", "netcheck.lab.portalserver", "--listen",
                           f"0.0.0.0:{ROUTER_PORTAL_PORT},[::]:{ROUTER_PORTAL_PORT}",
                           "--mode", "portal", "--name", PORTAL_HOST)
        proc = lab.popen("router", argv, name=label,
                         env={**os.environ, "PYTHONUNBUFFERED": "1"})
        proxies.wait_listening(lab, label, proc, "0.0.0.0", ROUTER_PORTAL_PORT)
    lab.nft("router", (
        f"table inet {PORTAL_TABLE} {{\n"
        "  chain prerouting {\n"
        "    type nat hook prerouting priority dstnat; policy accept;\n"
        f"    iifname \"{lan}\" tcp dport 80 redirect to :{ROUTER_PORTAL_PORT}\n"
        "  }\n"
        "  chain forward {\n"
        "    type filter hook forward priority 0; policy accept;\n"
        f"    iifname \"{lan}\" tcp flags syn reject with tcp reset\n"
        "  }\n"
        "}\n"))


def rewritten_dns(lab: Lab) -> None:
    """news.lab.test resolves to the portal, which answers TLS with its own certificate."""
    start_portal_server(lab, tls=True)
    if _once(lab, "dns:rewritten"):
        lab.add_dns_records((REWRITTEN_HOST + ".", "A", [PORTAL_V4]),
                            (REWRITTEN_HOST + ".", "AAAA", [PORTAL_V6]))


def _with(*steps: Callable[[Lab], None]) -> Callable[[Lab], None]:
    def apply(lab: Lab) -> None:
        for step in steps:
            step(lab)

    return apply


def _web(lab: Lab) -> None:
    start_services(lab, WEB_HTTP, WEB_HTTPS, WEB_SSH)


def _proxy(*names: str) -> Callable[[Lab], None]:
    def apply(lab: Lab) -> None:
        proxies.start_proxies(lab, *names)

    return apply


def _s(name: str, description: str, symptom: str, target: str,
       apply: Callable[[Lab], None], verdict: str, code: Optional[str] = None,
       args: tuple[str, ...] = ()) -> AppScenario:
    applied: dict[str, str] = {}

    def run(lab: Lab) -> None:
        applied["state_dir"] = str(lab.state_dir)
        app_ca(lab)  # --cafile must name a file whatever the scenario starts
        apply(lab)

    return AppScenario(name, description, symptom, target, run,
                       Expect(verdict, code, 7 if code else None), args, applied=applied)


P = proxies.PROXIES
PROXY_OPEN = ("--proxy", P["proxy"].url())
SCENARIOS_LIST: list[Scenario] = [
    _s("portal_hotel_https",
       "A hotel-style captive portal: the router sends port 80 to a sign-in page and resets "
       "every other connection until the guest signs in.",
       "The browser shows 'connection reset' for https sites; http sites show a sign-in page.",
       "https://web.lab.test/", _with(_web, hotel_portal), "broken", "CAPTIVE_PORTAL", CAFILE),
    _s("portal_hotel_http",
       "The same hotel portal, seen from a plain http:// URL: the page that answers is the "
       "portal's sign-in page, not the site.",
       "http://web.lab.test/ shows 'Welcome - please sign in' instead of the site.",
       "http://web.lab.test/", _with(_web, hotel_portal), "broken", "CAPTIVE_PORTAL", CAFILE),
    _s("portal_hotel_ssh",
       "The hotel portal resets SSH too; the connectivity-check URL (--portal-url) is "
       "redirected to the sign-in page.",
       "ssh web.lab.test: 'Connection refused', though the server runs sshd.",
       "ssh://web.lab.test", _with(_web, start_check_server, hotel_portal), "broken",
       "CAPTIVE_PORTAL", ("--portal-url", CHECK_URL)),
    _s("portal_spoofed_tls",
       "A portal that intercepts HTTPS too: the router sends ports 80 and 443 to the sign-in "
       "server, which answers TLS with its own certificate.",
       "The browser warns that the certificate of web.lab.test is for portal.lab.test.",
       "https://web.lab.test/", _with(_web, spoofing_portal), "broken", "CAPTIVE_PORTAL",
       CAFILE),
    _s("portal_dns_rewritten",
       "A portal that rewrites DNS: news.lab.test resolves to the portal, which answers TLS "
       "with its own certificate and HTTP with a redirect to its sign-in page.",
       "The browser warns that the certificate is for portal.lab.test.",
       f"https://{REWRITTEN_HOST}/", rewritten_dns, "broken", "CAPTIVE_PORTAL", CAFILE),
    _s("portal_free_network",
       "No portal: the connectivity check answers 204 and the site answers itself (no fault).",
       "Nothing: pages load.",
       "http://web.lab.test/", _with(_web, start_check_server), "ok",
       args=("--portal-url", CHECK_URL)),
    _s("proxy_ok", "HTTPS through an open tinyproxy (CONNECT to 443) works (no fault).",
       "Nothing: curl --proxy http://proxy.lab.test:3128 https://web.lab.test/ works.",
       "https://web.lab.test/", _with(_web, _proxy("proxy")), "ok",
       args=(*PROXY_OPEN, *CAFILE)),
    _s("proxy_http_ok", "Plain HTTP through an open tinyproxy works (no fault).",
       "Nothing: the page loads through the proxy.",
       "http://web.lab.test/", _with(_web, _proxy("proxy")), "ok", args=PROXY_OPEN),
    _s("proxy_auth_required", "The proxy wants a user name and password (Basic), and none is "
       "given.", "curl says 'Received HTTP code 407 from proxy after CONNECT'.",
       "https://web.lab.test/", _with(_web, _proxy("proxy-auth")), "broken",
       "PROXY_AUTH_REQUIRED", ("--proxy", P["proxy-auth"].url(), *CAFILE)),
    _s("proxy_auth_ok", "The proxy wants credentials and the proxy URL carries them (no "
       "fault).", "Nothing: the page loads through the proxy.",
       "https://web.lab.test/", _with(_web, _proxy("proxy-auth")), "ok",
       args=("--proxy", P["proxy-auth"].url((proxies.AUTH_USER, proxies.AUTH_PASSWORD)),
             *CAFILE)),
    _s("proxy_down", "The proxy's host is up but no proxy runs on it.",
       "curl: 'Failed to connect to proxy-down.lab.test port 3128: Connection refused'.",
       "https://web.lab.test/", _with(_web, _proxy("proxy-down")), "broken",
       "PROXY_UNREACHABLE", ("--proxy", P["proxy-down"].url(), *CAFILE)),
    _s("proxy_connect_refused", "The proxy allows CONNECT only to port 8443 (ConnectPort), "
       "so HTTPS to port 443 is refused.",
       "curl says 'Received HTTP code 403 from proxy after CONNECT'.",
       "https://web.lab.test/", _with(_web, _proxy("proxy-strict")), "broken",
       "PROXY_REFUSED", ("--proxy", P["proxy-strict"].url(), *CAFILE)),
    _s("proxy_cut_off", "The proxy answers, but the parent proxy it sends everything to is "
       "down: it cannot reach the target.",
       "curl says 'Received HTTP code 502 from proxy after CONNECT'; without the proxy the "
       "site works.",
       "https://web.lab.test/", _with(_web, _proxy("proxy-down", "proxy-cut")), "broken",
       "PROXY_REFUSED", ("--proxy", P["proxy-cut"].url(), *CAFILE)),
]
