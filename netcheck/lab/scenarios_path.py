"""Faults of the path that only show above layer 3: the root cause is below the symptom.

A download that stalls looks like an application that hangs (layer 7), but the cause is
a router with a smaller MTU whose ICMP "fragmentation needed" is dropped (layer 3). These
scenarios break the network itself, so each needs a lab of its own.
"""

from __future__ import annotations

from netcheck.lab.scenarios import Expect, Scenario
from netcheck.lab.scenarios_app import WEB_HTTP, start_services
from netcheck.lab.topology import Lab

TABLE = "netcheck_path"


def _download_blackhole(lab: Lab) -> None:
    # The client-facing link of the router is narrower than the server's; the router's
    # "too big" answers are dropped, and the web host does not answer ping, so only a
    # transfer can show it: big segments from the server vanish, small ones pass.
    start_services(lab, WEB_HTTP)
    lab.ip("router", "link", "set", "r-client", "mtu", "1280")
    lab.nft("router", f"table inet {TABLE} {{\n chain out {{\n"
                      "  type filter hook output priority 0;\n"
                      "  icmp type destination-unreachable icmp code frag-needed drop\n"
                      "  icmpv6 type packet-too-big drop\n }\n}\n")
    lab.nft("server", f"table inet {TABLE} {{\n chain in {{\n"
                      "  type filter hook input priority 0;\n"
                      "  icmp type echo-request drop\n  icmpv6 type echo-request drop\n }\n}\n")
    # Real full-size frames, not offloaded super-frames that skip the MTU check.
    lab.exec("server", ["ethtool", "-K", "eth0", "tso", "off", "gso", "off"], check=True)


SCENARIOS_LIST: list[Scenario] = [
    Scenario("http_download_pmtu_blackhole",
             "A router on the way has a smaller MTU and drops its own ICMP 'fragmentation "
             "needed'; the web server does not answer ping.",
             "The connection opens and the request goes out, but the download never arrives.",
             "http://web.lab.test/big", _download_blackhole,
             Expect("broken", "PMTU_BLACKHOLE", 3), ("-4",)),
]
