"""What the transport rung sees, one server behaviour each, for tcp, http, https and smtp.

A SYN meets one of five fates, and each has its own host on the server (198.18.2.40-46 and
2001:db8:2::40-46, a name in lab.test), so any number of these scenarios can be applied to
one lab:

=======================  ===========  =======================================================
host                     address      behaviour
=======================  ===========  =======================================================
``l4-reset.lab.test``    .40 / ::40   accepts, then resets at once (SO_LINGER 0), before any
                                      byte: TCP wrappers, a fail2ban-style block
``l4-quiet.lab.test``    .41 / ::41   accepts, then says nothing, ever (a hung daemon)
``l4-closed.lab.test``   .42 / ::42   nothing listens: RST to the SYN
``l4-dropped.lab.test``  .43 / ::43   web and mail run, the server's input chain drops TCP
``l4-denied.lab.test``   .44 / ::44   web and mail run, the *router* rejects TCP to it with
                                      ICMP "administratively prohibited"
``l4-v4drop.lab.test``   .45 / ::45   web runs, the server's firewall drops IPv4 port 80 only
``l4-v6only.lab.test``   .46 / ::46   web bound to the IPv6 address only: IPv4 is refused
=======================  ===========  =======================================================

Ports 25 (smtp), 80 (http), 443 (https) and 7000 (tcp) where a server runs. Servers are
:mod:`netcheck.lab.appserver` processes; firewall rules live in tables of their own
(``netcheck_l4_<host>``) in the server's or the router's namespace.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Callable, Optional

from netcheck.lab import scenarios_app as app
from netcheck.lab.scenarios import Expect, Scenario
from netcheck.lab.topology import Lab, LabError, python_argv

SLOTS = {"l4-reset": 40, "l4-quiet": 41, "l4-closed": 42, "l4-dropped": 43, "l4-denied": 44,
         "l4-v4drop": 45, "l4-v6only": 46}
# One table of address slots for every application host: start_services() knows ours too.
app.HOSTS.update(SLOTS)
ALL_PORTS = (25, 80, 443, 7000)
ROUTER_V4, ROUTER_V6 = "198.18.1.1", "2001:db8:1::1"  # the router's side towards the client
QUICK = ("--timeout", "1")

RESET = app.Service("l4-reset", "reset", ALL_PORTS)
QUIET = app.Service("l4-quiet", "silent", ALL_PORTS)
DROPPED_WEB = app.Service("l4-dropped", "http", (80,))
DROPPED_MAIL = app.Service("l4-dropped", "smtp", (25,))
DENIED_WEB = app.Service("l4-denied", "http", (80, 7000))
DENIED_MAIL = app.Service("l4-denied", "smtp", (25,))
V4DROP_WEB = app.Service("l4-v4drop", "http", (80,))


def _services(*services: app.Service) -> Callable[[Lab], None]:
    def apply(lab: Lab) -> None:
        app.start_services(lab, *services)

    return apply


def _closed_host(lab: Lab) -> None:
    """Addresses and a name, and nothing listening on them."""
    app._ensure_host(lab, "l4-closed")


def _table(lab: Lab, role: str, host: str, hook: str, *rules: str) -> None:
    name = f"netcheck_l4_{host.replace('-', '_')}"
    body = "".join(f"    {rule}\n" for rule in rules)
    lab.nft(role, f"table inet {name} {{\n  chain {hook} {{\n"
                  f"    type filter hook {hook} priority 0; policy accept;\n{body}  }}\n}}\n")


def _dropped(lab: Lab) -> None:
    app.start_services(lab, DROPPED_WEB, DROPPED_MAIL)
    v4, v6 = app.addresses("l4-dropped")
    _table(lab, "server", "l4-dropped", "input", f"ip daddr {v4} meta l4proto tcp drop",
           f"ip6 daddr {v6} meta l4proto tcp drop")


def _denied_by_router(lab: Lab) -> None:
    app.start_services(lab, DENIED_WEB, DENIED_MAIL)
    v4, v6 = app.addresses("l4-denied")
    _table(lab, "router", "l4-denied", "forward",
           f"ip daddr {v4} meta l4proto tcp reject with icmp type admin-prohibited",
           f"ip6 daddr {v6} meta l4proto tcp reject with icmpv6 type admin-prohibited")


def _v4_dropped(lab: Lab) -> None:
    app.start_services(lab, V4DROP_WEB)
    v4, _ = app.addresses("l4-v4drop")
    _table(lab, "server", "l4-v4drop", "input", f"ip daddr {v4} tcp dport 80 drop")


def _v6_only(lab: Lab) -> None:
    """A web server bound to its IPv6 address alone (``listen [::46]:80``)."""
    app._ensure_host(lab, "l4-v6only")
    label = "l4-v6only-http-80"
    if f"server:{label}" in app._done(lab):
        return
    _, v6 = app.addresses("l4-v6only")
    ready = Path(lab.state_dir) / f"{label}.ready"
    ready.unlink(missing_ok=True)
    proc = lab.popen("server", python_argv("-m", "netcheck.lab.appserver", "--listen",
                                           f"[{v6}]:80", "--mode", "http",
                                           "--name", "l4-v6only.lab.test", "--ready", str(ready)),
                     name=label, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    app._done(lab).add(f"server:{label}")
    deadline = time.monotonic() + app.READY_TIMEOUT
    while not ready.exists():
        if proc.poll() is not None or time.monotonic() > deadline:
            raise LabError(f"{label} not listening:\n{lab.log(label)}")
        time.sleep(0.005)


def _s(name: str, description: str, symptom: str, target: str,
       apply: Callable[[Lab], None], verdict: str, code: Optional[str] = None,
       layer: Optional[int] = None, args: tuple[str, ...] = ()) -> Scenario:
    return Scenario(name, description, symptom, target, apply, Expect(verdict, code, layer),
                    args)


_RESET_WHY = ("The server accepts the connection and resets it at once, before any byte "
              "(a TCP-wrappers or fail2ban-style block after the handshake).")
_QUIET_WHY = "The server accepts the connection and then never says or answers anything."
_REFUSED_WHY = "The host is up but nothing listens on the port: it answers the SYN with RST."
_DROPPED_WHY = "The server's firewall silently drops every TCP segment to this address."
_DENIED_WHY = ("The router rejects every TCP connection to this server with ICMP "
               "'administratively prohibited' (the router sends it, not the server).")

SCENARIOS_LIST: list[Scenario] = [
    # -- handshake, then RST before any byte: the application rung's finding -----------------
    _s("l4_reset_tcp", _RESET_WHY, "nc connects and is thrown out at once: 'Connection reset "
       "by peer'.", "tcp://l4-reset.lab.test:7000", _services(RESET),
       "broken", "APP_CONNECTION_RESET", 7),
    _s("l4_reset_http", _RESET_WHY, "curl: (56) Recv failure: Connection reset by peer.",
       "http://l4-reset.lab.test/", _services(RESET), "broken", "APP_CONNECTION_RESET", 7),
    _s("l4_reset_https", _RESET_WHY, "curl: (35) OpenSSL SSL_connect: Connection reset by "
       "peer.", "https://l4-reset.lab.test/", _services(RESET),
       "broken", "APP_CONNECTION_RESET", 7),
    _s("l4_reset_smtp", _RESET_WHY, "The mail client says the connection was reset before the "
       "greeting.", "smtp://l4-reset.lab.test", _services(RESET),
       "broken", "APP_CONNECTION_RESET", 7),
    # -- handshake, then silence -------------------------------------------------------------
    _s("l4_quiet_http", _QUIET_WHY, "The browser waits for web and times out.",
       "http://l4-quiet.lab.test/", _services(QUIET), "broken", "APP_TIMEOUT", 7, QUICK),
    _s("l4_quiet_smtp", _QUIET_WHY, "The mail client waits for a 220 greeting that never comes.",
       "smtp://l4-quiet.lab.test", _services(QUIET), "broken", "APP_TIMEOUT", 7, QUICK),
    # The TLS handshake is the first thing that needs an answer: its rung says so (layer 6).
    _s("l4_quiet_https", _QUIET_WHY, "curl waits in the TLS handshake and times out.",
       "https://l4-quiet.lab.test/", _services(QUIET), "broken", "TLS_HANDSHAKE_FAILED", 6,
       QUICK),
    # A bare port owes nobody a greeting: silence is what HTTP, TLS and many others do.
    _s("l4_quiet_tcp_is_fine", _QUIET_WHY, "Nothing: nc connects and waits for input.",
       "tcp://l4-quiet.lab.test:7000", _services(QUIET), "ok", None, None, QUICK),
    # -- RST to the SYN ------------------------------------------------------------------------
    _s("l4_refused_http", _REFUSED_WHY, "curl: (7) Failed to connect: Connection refused.",
       "http://l4-closed.lab.test/", _closed_host, "broken", "TCP_REFUSED", 4),
    _s("l4_refused_https", _REFUSED_WHY, "curl: (7) Failed to connect: Connection refused.",
       "https://l4-closed.lab.test/", _closed_host, "broken", "TCP_REFUSED", 4),
    _s("l4_refused_smtp", _REFUSED_WHY, "The mail client: 'Connection refused'.",
       "smtp://l4-closed.lab.test", _closed_host, "broken", "TCP_REFUSED", 4),
    # -- silence to the SYN ----------------------------------------------------------------------
    _s("l4_filtered_http", _DROPPED_WHY, "The browser spins on 'Connecting...' and times out.",
       "http://l4-dropped.lab.test/", _dropped, "broken", "TCP_FILTERED", 4, QUICK),
    _s("l4_filtered_https", _DROPPED_WHY, "The browser spins on 'Connecting...' and times out.",
       "https://l4-dropped.lab.test/", _dropped, "broken", "TCP_FILTERED", 4, QUICK),
    _s("l4_filtered_smtp", _DROPPED_WHY, "The mail client times out connecting.",
       "smtp://l4-dropped.lab.test", _dropped, "broken", "TCP_FILTERED", 4, QUICK),
    # -- an ICMP error, and from whom ------------------------------------------------------------
    _s("l4_router_prohibits_tcp", _DENIED_WHY, "nc: 'No route to host' at once, though the "
       "server answers ping.", "tcp://l4-denied.lab.test:7000", _denied_by_router,
       "broken", "TCP_ADMIN_PROHIBITED", 4),
    _s("l4_router_prohibits_http", _DENIED_WHY, "curl: (7) Failed to connect: No route to "
       "host.", "http://l4-denied.lab.test/", _denied_by_router,
       "broken", "TCP_ADMIN_PROHIBITED", 4),
    _s("l4_router_prohibits_smtp", _DENIED_WHY, "The mail client: 'No route to host'.",
       "smtp://l4-denied.lab.test", _denied_by_router, "broken", "TCP_ADMIN_PROHIBITED", 4),
    # -- one family carries the flow ------------------------------------------------------------
    _s("l4_ipv4_port_dropped", "The server's firewall drops IPv4 connections to port 80; IPv6 "
       "works.", "Browsers that try IPv6 first load the page; IPv4-only clients time out.",
       "http://l4-v4drop.lab.test/", _v4_dropped, "degraded", "TCP_FILTERED", 4, QUICK),
    _s("l4_ipv4_refused_service_on_ipv6_only", "The web server listens on its IPv6 address "
       "only; IPv4 connections are refused.", "IPv4-only clients get 'Connection refused'; "
       "the others load the page.", "http://l4-v6only.lab.test/", _v6_only,
       "degraded", "TCP_REFUSED", 4),
]
