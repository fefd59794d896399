"""Transport scenarios: this host's own firewall, and one address family rejected.

Each fault is applied with ``nft`` or ``iptables`` inside a lab namespace (the client's own
output chain, or the server's input chain), never in the root namespace. The aggregator in
:mod:`netcheck.lab.scenarios` gathers ``SCENARIOS_LIST``; import that module, not this one,
to get the whole library.
"""

from __future__ import annotations

from typing import Callable

from netcheck.lab.scenarios import TABLE, Expect, Scenario
from netcheck.lab.topology import SERVER_V4, Lab

LITERAL = f"tcp://{SERVER_V4}:22"
NAMED = "tcp://www.lab.test:22"


def _ruleset(role: str, chains: str) -> Callable[[Lab], None]:
    """A fault made of whole nft chains (base and regular) in the lab's table."""

    def apply(lab: Lab) -> None:
        lab.nft(role, f"table inet {TABLE} {{\n{chains}}}\n")

    return apply


def _output(*rules: str) -> Callable[[Lab], None]:
    """Rules in the client's own output chain."""
    body = "".join(f"    {rule}\n" for rule in rules)
    return _ruleset("client", "  chain output {\n"
                              "    type filter hook output priority 0; policy accept;\n"
                              f"{body}  }}\n")


def _iptables_reject(lab: Lab) -> None:
    # As a person would type it; on Debian 12 iptables is the nf_tables backend.
    lab.exec("client", ["iptables", "-A", "OUTPUT", "-p", "tcp", "--dport", "22",
                        "-d", SERVER_V4, "-j", "REJECT"], check=True)


def _s(name: str, description: str, symptom: str, target: str, apply: Callable[[Lab], None],
       verdict: str, code: str | None = None, layer: int | None = None,
       args: tuple[str, ...] = ()) -> Scenario:
    return Scenario(name, description, symptom, target, apply, Expect(verdict, code, layer), args)


SCENARIOS_LIST = [
    _s("local_output_drop_port",
       "The client's own output chain drops TCP port 22 to the server (nft).",
       "ssh hangs and times out, though the server answers ping and its firewall is open.",
       LITERAL, _output(f"ip daddr {SERVER_V4} tcp dport 22 counter drop"),
       "broken", "FW_LOCAL_OUTPUT_BLOCK", 4),
    _s("local_output_reject",
       "The client's own output chain rejects port 22 to the server with ICMP "
       "'administratively prohibited'.",
       "ssh fails at once with 'No route to host', though the server works.",
       LITERAL, _output(f"ip daddr {SERVER_V4} tcp dport 22 "
                        "reject with icmp type admin-prohibited"),
       "broken", "FW_LOCAL_OUTPUT_BLOCK", 4),
    _s("local_output_drop_all",
       "The client's own output chain drops everything it sends to the server.",
       "ping says 'Operation not permitted' and every connection to the server hangs.",
       LITERAL, _output(f"ip daddr {SERVER_V4} drop"),
       "broken", "FW_LOCAL_OUTPUT_BLOCK", 4),
    _s("local_rule_in_jumped_chain",
       "A drop for port 22 hides in a regular chain the client's output chain jumps to.",
       "ssh to the server hangs; the output chain itself shows only a jump.",
       LITERAL, _ruleset("client",
                         "  chain output {\n"
                         "    type filter hook output priority 0; policy accept;\n"
                         "    ip daddr 198.18.2.0/24 jump blocklist\n"
                         "  }\n"
                         "  chain blocklist {\n"
                         "    tcp dport 22 counter drop\n"
                         "  }\n"),
       "broken", "FW_LOCAL_OUTPUT_BLOCK", 4),
    _s("local_iptables_rule",
       "`iptables -A OUTPUT -p tcp --dport 22 -d 198.18.2.10 -j REJECT` on the client.",
       "ssh fails at once with 'Connection refused', as if nothing listened on the server.",
       LITERAL, _iptables_reject, "broken", "FW_LOCAL_OUTPUT_BLOCK", 4),
    _s("local_rule_other_port",
       "The client's output chain drops port 2222 only; port 22 is not affected (no fault).",
       "Nothing: ssh to port 22 works; only connections to port 2222 would hang.",
       LITERAL, _output(f"ip daddr {SERVER_V4} tcp dport 2222 drop"), "ok"),
    _s("local_established_only",
       "The client's output chain lets out only established traffic and its own LAN: every "
       "new connection beyond it is dropped.",
       "Connections that were open keep working; every new one to the server hangs.",
       LITERAL, _output("ct state established,related accept",
                        'oifname "lo" accept',
                        "ip daddr 198.18.1.0/24 accept",
                        "ct state new drop"),
       "broken", "FW_LOCAL_OUTPUT_BLOCK", 4),
    _s("ipv6_only_rejected",
       "The server's firewall rejects IPv6 connections to port 22 (admin-prohibited); IPv4 "
       "works.",
       "ssh works over IPv4; clients that prefer IPv6 fail first with 'No route to host'.",
       NAMED, _ruleset("server",
                       "  chain input {\n"
                       "    type filter hook input priority 0; policy accept;\n"
                       "    meta nfproto ipv6 tcp dport 22 reject with icmpv6 type "
                       "admin-prohibited\n"
                       "  }\n"),
       "degraded", "TCP_ADMIN_PROHIBITED", 4),
]
