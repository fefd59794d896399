"""Noisy paths and real resolver shapes: loss, a local stub resolver, search lists, nsswitch.

Loss is made the only way this kernel allows (no ``tc netem``): an nft rule on the router,
``numgen random mod 100 < N drop``, in the chains both directions pass through. The
resolver shapes are built the way a real host gets them: systemd-resolved's files
(``/etc/resolv.conf`` naming the stub 127.0.0.53, ``/run/systemd/resolve/resolv.conf``
naming the upstream) with a small stub forwarder listening on 127.0.0.53 inside the client;
a dnsmasq-like stub on 127.0.0.1 with its ``/etc/dnsmasq.conf``; a short name resolved
through the search list; nsswitch.conf's ``hosts:`` line. Files outside ``/etc`` are shown
to the client's commands through :mod:`netcheck.lab.view`.
"""

from __future__ import annotations

import sys
import time
from typing import Callable

from netcheck.lab import view
from netcheck.lab.scenarios import Expect, Scenario
from netcheck.lab.topology import DNS_V4, Lab, LabError

TABLE = "netcheck_noise"
NAMED = "tcp://www.lab.test:22"
RESOLVED_STUB = "127.0.0.53"
LOCAL_STUB = "127.0.0.1"
# What systemd-resolved writes (the comment lines are its own, shortened).
STUB_RESOLV_CONF = (
    "# This is /run/systemd/resolve/stub-resolv.conf managed by man:systemd-resolved(8).\n"
    "# Do not edit.\n"
    "nameserver 127.0.0.53\noptions edns0 trust-ad\nsearch lab.test\n")
UPSTREAM_RESOLV_CONF = (
    "# This is /run/systemd/resolve/resolv.conf managed by man:systemd-resolved(8).\n"
    "# Do not edit.\n"
    "# Third party programs should typically not access this file directly, but only\n"
    "# through the symlink at /etc/resolv.conf.\n"
    f"nameserver {DNS_V4}\nsearch lab.test\n")


def random_loss(percent: int, where: str = "forward") -> Callable[[Lab], None]:
    """Lose ``percent`` % of the packets at random on the router, in both directions.

    ``forward``: packets the router forwards (beyond the gateway, as seen from the client);
    ``link``: everything that crosses the client's link (r-client), to the router and through
    it — the gateway itself is then behind the loss.
    """
    def apply(lab: Lab) -> None:
        drop = f"numgen random mod 100 < {int(percent)} drop"
        if where == "forward":
            chains = (f"  chain forward {{\n    type filter hook forward priority 0;\n"
                      f"    {drop}\n  }}\n")
        else:
            chains = (f"  chain pre {{\n    type filter hook prerouting priority 0;\n"
                      f"    iifname \"r-client\" {drop}\n  }}\n"
                      f"  chain post {{\n    type filter hook postrouting priority 0;\n"
                      f"    oifname \"r-client\" {drop}\n  }}\n")
        lab.nft("router", f"table inet {TABLE} {{\n{chains}}}\n")

    return apply


def delayed(ms: int, jitter_ms: int) -> Callable[[Lab], None]:
    """Hold the traffic between the client's and the server's networks for ``ms`` ± ``jitter_ms``
    on the router, both ways (a queue that fills up, a long or congested path).

    No ``tc netem`` here: policy routing sends what crosses between 198.18.1.0/24 and
    198.18.2.0/24 into a tun device whose process holds each packet, then hands it back to
    be forwarded. The gateway itself and the name server's network are not delayed.
    """
    def apply(lab: Lab) -> None:
        ready = lab.state_dir / "delay.ready"
        ready.unlink(missing_ok=True)
        lab.popen("router", [sys.executable, "-m", "netcheck.lab.servers", "delay",
                             "--dev", "tdelay", "--ms", str(ms), "--jitter-ms", str(jitter_ms),
                             "--ready", str(ready)], name="delay")
        _wait_ready(lab, ready, "delay")
        for args in (("link", "set", "tdelay", "up"),
                     ("route", "add", "198.18.2.0/24", "dev", "tdelay", "table", "100"),
                     ("route", "add", "198.18.1.0/24", "dev", "tdelay", "table", "101"),
                     ("rule", "add", "iif", "r-client", "to", "198.18.2.0/24", "lookup", "100"),
                     ("rule", "add", "iif", "r-server", "to", "198.18.1.0/24", "lookup", "101")):
            lab.ip("router", *args)
        lab.exec("router", ["sysctl", "-q", "-w", "net.ipv4.conf.tdelay.rp_filter=0",
                            "net.ipv4.conf.all.rp_filter=0"], check=True)

    return apply


def _wait_ready(lab: Lab, ready: object, name: str) -> None:
    deadline = time.monotonic() + 10
    while not ready.exists():  # type: ignore[attr-defined]
        if time.monotonic() > deadline:
            raise LabError(f"{name} not ready:\n{lab.log(name)}")
        time.sleep(0.01)


def start_stub(lab: Lab, listen: str, *args: str, name: str) -> None:
    """Run the lab's stub forwarder in the client on ``listen``:53 and wait until it answers."""
    ready = lab.state_dir / f"{name}.ready"
    ready.unlink(missing_ok=True)
    lab.popen("client", [sys.executable, "-m", "netcheck.lab.servers", "forward",
                         "--listen", listen, "--ready", str(ready), *args], name=name)
    _wait_ready(lab, ready, f"stub forwarder {name}")


def resolved_files(lab: Lab) -> None:
    """resolv.conf and /run/systemd/resolve/resolv.conf as systemd-resolved writes them."""
    lab.write_client_file("resolv.conf", STUB_RESOLV_CONF)
    view.write_file(lab, "client", "/run/systemd/resolve/resolv.conf", UPSTREAM_RESOLV_CONF)
    view.write_file(lab, "client", "/run/systemd/resolve/stub-resolv.conf", STUB_RESOLV_CONF)


def _resolved_stub(lab: Lab) -> None:
    resolved_files(lab)
    start_stub(lab, RESOLVED_STUB, "--upstream", DNS_V4, name="resolved-stub")


def _resolved_stub_down(lab: Lab) -> None:
    resolved_files(lab)  # ...and nothing listens on 127.0.0.53: the daemon is stopped


def _resolved_upstream_dead(lab: Lab) -> None:
    _resolved_stub(lab)
    lab.nft("dns", f"table inet {TABLE} {{\n  chain input {{\n"
                   "    type filter hook input priority 0;\n"
                   "    udp dport 53 drop\n    tcp dport 53 drop\n  }\n}\n")


def _dnsmasq_files(lab: Lab) -> None:
    lab.write_client_file("resolv.conf", f"search lab.test\nnameserver {LOCAL_STUB}\n")
    view.write_file(lab, "client", "/etc/dnsmasq.conf",
                    "# a caching forwarder for this host\nlisten-address=127.0.0.1\n"
                    f"bind-interfaces\nno-resolv\nserver={DNS_V4}\ncache-size=1000\n")


def _local_stub(lab: Lab) -> None:
    _dnsmasq_files(lab)
    start_stub(lab, LOCAL_STUB, "--conf-file", "/etc/dnsmasq.conf", name="local-stub")


def _local_stub_servfail(lab: Lab) -> None:
    _dnsmasq_files(lab)
    start_stub(lab, LOCAL_STUB, "--conf-file", "/etc/dnsmasq.conf", "--mode", "servfail",
               name="local-stub")


def _nsswitch_without_dns(lab: Lab) -> None:
    lab.write_client_file("nsswitch.conf", "passwd: files\ngroup: files\nhosts: files\n"
                                           "networks: files\n")


def _s(name: str, description: str, symptom: str, target: str, apply: Callable[[Lab], None],
       verdict: str, code: str | None = None, layer: int | None = None,
       args: tuple[str, ...] = ()) -> Scenario:
    return Scenario(name, description, symptom, target, apply, Expect(verdict, code, layer), args)


SCENARIOS_LIST: list[Scenario] = [
    _s("path_loss_40",
       "The router loses 40 % of the packets it forwards, at random, in both directions.",
       "Pages load after a pause or a retry; ping shows most replies missing.",
       NAMED, random_loss(40), "degraded", "PATH_LOSS", 3),
    _s("link_loss_20",
       "20 % of the packets on the client's own link are lost, to the gateway and through it.",
       "Everything works but stutters; even the gateway misses some pings.",
       NAMED, random_loss(20, "link"), "degraded", "PATH_LOSS", 3),
    _s("path_jitter",
       "The path beyond the router holds every packet 150 ms ± 120 ms (a queue that fills and "
       "drains), both ways; the gateway answers at once.",
       "Everything works, but calls stutter and pages hesitate; ping times jump around.",
       NAMED, delayed(150, 120), "degraded", "PATH_LATENCY", 3, ("-4",)),
    _s("resolved_stub_ok",
       "systemd-resolved's stub on 127.0.0.53 forwards to the lab's name server (healthy).",
       "Nothing: names resolve through the stub.",
       NAMED, _resolved_stub, "ok"),
    _s("resolved_stub_down",
       "resolv.conf names systemd-resolved's stub 127.0.0.53, but the stub is not running; "
       "its upstream server works.",
       "Every name fails at once ('Temporary failure in name resolution'); dig @198.18.3.53 "
       "works.",
       NAMED, _resolved_stub_down, "broken", "DNS_RESOLVER_UNREACHABLE", 3),
    _s("resolved_upstream_dead",
       "systemd-resolved's stub runs, but its upstream server drops every query.",
       "Names fail after a pause; the stub answers SERVFAIL.",
       NAMED, _resolved_upstream_dead, "broken", "DNS_RESOLVER_UNREACHABLE", 3),
    _s("local_stub_ok",
       "A dnsmasq-like caching stub on 127.0.0.1 forwards to the lab's name server (healthy).",
       "Nothing: names resolve through the stub.",
       NAMED, _local_stub, "ok"),
    _s("local_stub_servfail",
       "The dnsmasq-like stub on 127.0.0.1 answers SERVFAIL to everything; the server it "
       "forwards to works.",
       "Every name fails; dig @127.0.0.1 says SERVFAIL, dig @198.18.3.53 works.",
       NAMED, _local_stub_servfail, "broken", "DNS_SERVFAIL", 3),
    _s("search_short_name",
       "A short name (www) resolves through resolv.conf's search list (lab.test) (healthy).",
       "Nothing: ssh www works.",
       "tcp://www:22", lambda lab: None, "ok"),
    _s("nsswitch_without_dns",
       "nsswitch.conf's hosts: line is 'files' without dns: programs never ask a name server.",
       "Every name not in /etc/hosts fails, although dig resolves it.",
       NAMED, _nsswitch_without_dns, "broken", "DNS_NO_RESOLVER", 3),
]
