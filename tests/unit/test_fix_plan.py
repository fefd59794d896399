"""``netcheck fix`` without a network: report in, plan (or advice) out; the proofs' packets; the
owners' argv (NetworkManager, systemd-networkd, systemd-resolved, resolvconf — none of which
runs in the lab); the journal and its watchdog with real processes and files.

The reports are the shapes the lab's diagnoses give (tests/lab/test_fix.py runs the same
repairs for real).
"""

from __future__ import annotations

import json
import os
import signal
import socket
import struct
import subprocess
import sys
import time
from io import StringIO
from pathlib import Path
from typing import Any, Optional

import pytest

from netcheck.cli import run
from netcheck.fix import actions, journal, owners, plan, prove
from netcheck.fix.command import Output, Session, show_plan
from netcheck.fix.owners import DnsOwner, Owner
from netcheck.fix.plan import Advice, Host, Plan, Proofs
from netcheck.fix.prove import GatewayProof, ResolverProof
from tests.fix_schema import validate_fix

IFACE = "eth0"


def report(code: Optional[str], check_id: str, layer: int, evidence: dict[str, Any],
           status: str = "fail", summary: str = "the summary", verdict: str = "broken",
           target: Optional[dict[str, Any]] = None,
           others: Optional[list[dict[str, Any]]] = None) -> dict[str, Any]:
    """A netcheck/1 document whose root cause is one check."""
    check = {"id": check_id, "layer": layer, "title": "t", "status": status, "code": code,
             "summary": summary, "evidence": evidence, "hint": None, "blocked_by": None,
             "duration_ms": 1.0}
    return {
        "schema": "netcheck/1", "tool": {"name": "netcheck", "version": "0.1.0"},
        "mode": "diagnose",
        "target": target or {"input": "tcp://198.18.2.10:22", "scheme": "tcp",
                             "host": "198.18.2.10", "port": 22, "addresses": ["198.18.2.10"]},
        "host": {"hostname": "vm", "privileged": True, "egress_interface": IFACE},
        "verdict": verdict,
        "root_cause": None if code is None else {"check": check_id, "layer": layer,
                                                 "code": code, "summary": summary,
                                                 "hint": None},
        "checks": [*(others or []), check], "started_at": "2026-12-07T10:00:00Z",
        "duration_ms": 10.0}


def argvs(made: Any) -> list[list[str]]:
    assert isinstance(made, Plan), made
    return [a.argv for s in made.steps for a in s.do]


def undo_argvs(made: Any) -> list[list[str]]:
    assert isinstance(made, Plan), made
    return [a.argv for s in made.steps for a in s.undo]


NM_OWNER = Owner(owners.NM, running=True, connection="Wired 1",
                 values={"ipv4.gateway": "198.18.1.99", "ipv4.dns": "",
                         "802-3-ethernet.mtu": "auto"})
ND_OWNER = Owner(owners.NETWORKD, running=True, network_file="/etc/systemd/network/10-eth0.network")
PROVEN = GatewayProof("198.18.1.1", "the DHCP lease /run/systemd/netif/leases/2",
                      "0a:df:cd:01:dd:91", "SYN-ACK from 198.18.2.10 port 22")
SILENT = GatewayProof("198.18.1.254", "the first or last address of 198.18.1.0/24",
                      why_not="nothing answers ARP/NDP for it")


# -- the link and the loopback --------------------------------------------------------------------

LINK_DOWN = report("LINK_ADMIN_DOWN", "link.admin_up", 2,
                   {"manager": "none", "interface": IFACE, "operstate": "DOWN",
                    "flags": ["BROADCAST", "MULTICAST"]})


@pytest.mark.parametrize("owner,do,undo", [
    (Owner(), ["ip", "link", "set", "dev", IFACE, "up"], ["ip", "link", "set", "dev", IFACE,
                                                          "down"]),
    (NM_OWNER, ["nmcli", "device", "connect", IFACE], ["nmcli", "device", "disconnect", IFACE]),
    (ND_OWNER, ["networkctl", "up", IFACE], ["networkctl", "down", IFACE]),
], ids=["nobody", "NetworkManager", "networkd"])
def test_link_is_brought_up_by_its_owner(owner: Owner, do: list[str], undo: list[str]) -> None:
    made = plan.build(LINK_DOWN, Host(owners={IFACE: owner}), Proofs())
    assert argvs(made) == [do] and undo_argvs(made) == [undo]


def test_link_up_by_hand_says_it_is_not_persistent() -> None:
    made = plan.build(LINK_DOWN, Host(owners={IFACE: Owner(owners.IFUPDOWN, True)}), Proofs())
    assert isinstance(made, Plan)
    assert "/etc/network/interfaces" in (made.steps[0].note or "")


def test_loopback_without_its_address_gets_both() -> None:
    doc = report("LOOPBACK_DOWN", "network.loopback", 3,
                 {"interface": "lo", "flags": ["LOOPBACK"], "addresses": []}, status="warn",
                 verdict="degraded")
    made = plan.build(doc, Host(), Proofs())
    assert argvs(made) == [["ip", "link", "set", "dev", "lo", "up"],
                           ["ip", "addr", "add", "127.0.0.1/8", "dev", "lo"]]
    assert undo_argvs(made)[1] == ["ip", "addr", "del", "127.0.0.1/8", "dev", "lo"]


# -- gateways and routes --------------------------------------------------------------------------

def gateway_report(gateway: str = "198.18.1.99", code: str = "GATEWAY_UNREACHABLE",
                   **extra: Any) -> dict[str, Any]:
    ev = {"gateway": gateway, "interface": IFACE, "on_link": True,
          "prefixes": ["198.18.1.0/24"], "neighbour": {"address": gateway, "ifindex": 2,
                                                        "state": "INCOMPLETE"},
          "ping": {"address": gateway, "state": "timeout"}, "arp_probe": "no answer",
          "family": "ipv4", **extra}
    return report(code, "network.gateway", 3, ev)


WRONG_DEFAULT = {4: [{"dst": "default", "gateway": "198.18.1.99", "dev": IFACE,
                      "protocol": "dhcp", "metric": 100, "flags": ["onlink"]}]}


def test_failing_gateway_is_replaced_by_the_proven_one_and_put_back_exactly() -> None:
    made = plan.build(gateway_report(), Host(defaults=WRONG_DEFAULT),
                      Proofs(gateways={4: [SILENT, PROVEN]}))
    assert argvs(made) == [["ip", "-4", "route", "replace", "default", "via", "198.18.1.1",
                            "dev", IFACE, "metric", "100", "proto", "dhcp"]]
    assert undo_argvs(made) == [["ip", "-4", "route", "replace", "default", "via",
                                 "198.18.1.99", "dev", IFACE, "metric", "100", "proto", "dhcp",
                                 "onlink"]]
    assert isinstance(made, Plan)
    why = made.steps[0].why
    assert "198.18.1.1" in why and "SYN-ACK from 198.18.2.10 port 22" in why and "lease" in why


def test_no_gateway_is_guessed() -> None:
    made = plan.build(gateway_report(), Host(defaults=WRONG_DEFAULT),
                      Proofs(gateways={4: [SILENT]}))
    assert isinstance(made, Advice)
    assert "does not guess" in made.reason and "198.18.1.254" in made.reason
    made = plan.build(gateway_report(), Host(defaults=WRONG_DEFAULT), Proofs())
    assert isinstance(made, Advice) and "does not guess" in made.reason


def test_unprivileged_plan_says_root_is_needed_to_prove_a_gateway() -> None:
    tried = [GatewayProof(a, "s", why_not=f"cannot send ARP/NDP here ({prove.NEEDS_ROOT})")
             for a in ("198.18.1.1", "198.18.1.254")]
    made = plan.build(gateway_report(), Host(defaults=WRONG_DEFAULT), Proofs(gateways={4: tried}))
    assert isinstance(made, Advice) and "run netcheck fix as root" in made.reason
    assert made.whom is not None and made.whom.startswith("this host's administrator")


def test_gateway_of_a_network_manager_profile_goes_through_nmcli() -> None:
    made = plan.build(gateway_report(), Host(owners={IFACE: NM_OWNER}, defaults=WRONG_DEFAULT),
                      Proofs(gateways={4: [PROVEN]}))
    assert argvs(made) == [["nmcli", "connection", "modify", "Wired 1", "ipv4.gateway",
                            "198.18.1.1"], ["nmcli", "device", "reapply", IFACE]]
    assert undo_argvs(made) == [["nmcli", "connection", "modify", "Wired 1", "ipv4.gateway",
                                 "198.18.1.99"], ["nmcli", "device", "reapply", IFACE]]
    assert isinstance(made, Plan) and made.steps[0].persistent


ROUTE_NONE = report("ROUTE_NO_DEFAULT", "network.route", 3, {
    "path": {"interface": IFACE, "gateway": None, "basis": "target",
             "lookups": [{"destination": "198.18.2.10", "type": "none"}]}, "family": "ipv4"})


def test_missing_default_route_is_added_and_removed_again() -> None:
    made = plan.build(ROUTE_NONE, Host(), Proofs(gateways={4: [PROVEN]}))
    assert argvs(made) == [["ip", "-4", "route", "add", "default", "via", "198.18.1.1", "dev",
                            IFACE]]
    assert undo_argvs(made) == [["ip", "-4", "route", "del", "default", "via", "198.18.1.1",
                                 "dev", IFACE]]
    assert plan.needs(ROUTE_NONE) == {"gateway": (4, IFACE, None)}


def test_missing_default_route_under_networkd_is_a_drop_in() -> None:
    made = plan.build(ROUTE_NONE, Host(owners={IFACE: ND_OWNER}), Proofs(gateways={4: [PROVEN]}))
    assert isinstance(made, Plan)
    write, reload, reconfigure = made.steps[0].do
    assert write.kind == "write"
    assert write.path == "/etc/systemd/network/10-eth0.network.d/netcheck-fix.conf"
    assert "[Route]\nGateway=198.18.1.1\n" in (write.content or "")
    assert write.expect == [actions.ABSENT]
    assert (reload.argv, reconfigure.argv) == (["networkctl", "reload"],
                                               ["networkctl", "reconfigure", IFACE])
    assert made.steps[0].undo[0].kind == "remove"


def test_default_route_in_another_table_is_not_guessed_at() -> None:
    doc = report("ROUTE_NO_DEFAULT", "network.route", 3, {
        "path": {"interface": IFACE, "lookups": []}, "rules": ["0: from all lookup local"]})
    assert plan.needs(doc) == {}
    assert isinstance(plan.build(doc, Host(), Proofs(gateways={4: [PROVEN]})), Advice)


def test_static_neighbour_is_pinned_to_the_mac_that_answers_and_forwards() -> None:
    doc = gateway_report("198.18.1.1", neighbour={"address": "198.18.1.1", "state": "PERMANENT",
                                                   "lladdr": "02:00:5e:10:00:01"},
                         arp_probe="0a:df:cd:01:dd:91", state="link_only")
    assert plan.needs(doc) == {"neighbour": (4, IFACE, "198.18.1.1", "0a:df:cd:01:dd:91")}
    proven = GatewayProof("198.18.1.1", "the MAC address that answers ARP",
                          "0a:df:cd:01:dd:91", "echo reply from 198.18.2.10")
    made = plan.build(doc, Host(), Proofs(neighbour=proven))
    assert argvs(made) == [["ip", "-4", "neigh", "replace", "198.18.1.1", "lladdr",
                            "0a:df:cd:01:dd:91", "dev", IFACE, "nud", "permanent"]]
    assert undo_argvs(made) == [["ip", "-4", "neigh", "replace", "198.18.1.1", "lladdr",
                                 "02:00:5e:10:00:01", "dev", IFACE, "nud", "permanent"]]
    unproven = GatewayProof("198.18.1.1", "s", "0a:df:cd:01:dd:91", None, "nothing came back")
    assert isinstance(plan.build(doc, Host(), Proofs(neighbour=unproven)), Advice)


def test_strict_reverse_path_filter_is_loosened_on_the_interfaces_only() -> None:
    doc = gateway_report("198.18.1.1", arp_probe="0a:df:cd:01:dd:91", state="link_only",
                         rp_filter={"dropped": 72, "strict": ["eth0", "eth1"]})
    host = Host(sysctls={"net.ipv4.conf.all.rp_filter": "1",
                         "net.ipv4.conf.eth0.rp_filter": "1",
                         "net.ipv4.conf.eth1.rp_filter": "0"})
    made = plan.build(doc, host, Proofs())
    assert argvs(made) == [["sysctl", "-q", "-w", "net.ipv4.conf.eth0.rp_filter=2"],
                           ["sysctl", "-q", "-w", "net.ipv4.conf.eth1.rp_filter=2"]]
    assert undo_argvs(made)[1] == ["sysctl", "-q", "-w", "net.ipv4.conf.eth1.rp_filter=0"]


def test_gateway_candidates_come_from_what_the_host_knows_in_order() -> None:
    import ipaddress

    nets = [ipaddress.ip_network("198.18.1.0/24"), ipaddress.ip_network("fe80::/64")]
    found = prove.gateway_candidates(
        4, nets, {"198.18.1.2"},
        [("lease", ["198.18.1.1", "203.0.113.1"]), ("neighbours", ["198.18.1.2", "198.18.1.7"])],
        {"198.18.1.99"})
    # off-link and our own address never; the usual addresses come last, without repeats
    assert found == [("198.18.1.1", "lease"), ("198.18.1.7", "neighbours"),
                     ("198.18.1.254", "the first or last address of 198.18.1.0/24")]


def test_leases_of_networkd_and_dhclient_are_read() -> None:
    assert prove.parse_key_value_lease("ADDRESS=198.18.1.2\nROUTER=198.18.1.1\n"
                                       "DNS=198.18.3.53 2001:db8:3::53\n") == (
        ["198.18.1.1"], ["198.18.3.53", "2001:db8:3::53"])
    text = ('lease {\n  interface "eth1";\n  option routers 198.18.4.1;\n}\n'
            'lease {\n  interface "eth0";\n  option routers 198.18.1.1;\n'
            '  option domain-name-servers 198.18.3.53, 198.18.3.54;\n}\n')
    assert prove.parse_dhclient_leases(text, "eth0") == (["198.18.1.1"],
                                                         ["198.18.3.53", "198.18.3.54"])


# -- the forwarding probe's packets ---------------------------------------------------------------

ME, DEST, ROUTER = "198.18.1.2", "198.18.2.10", "198.18.1.1"


def _ip4(src: str, dst: str, proto: int, payload: bytes) -> bytes:
    return prove._ip_packet(socket.inet_aton(src), socket.inet_aton(dst), proto, payload)


def test_syn_and_echo_carry_valid_checksums() -> None:
    src, dst = socket.inet_aton(ME), socket.inet_aton(DEST)
    seg = prove.syn_segment(src, dst, 40000, 22, 1)
    assert prove._checksum(prove._pseudo(src, dst, 6, len(seg)) + seg) == 0
    packet = _ip4(ME, DEST, 6, seg)
    assert prove._checksum(packet[:20]) == 0 and packet[9] == 6
    six = socket.inet_pton(socket.AF_INET6, "2001:db8:1::2"), \
        socket.inet_pton(socket.AF_INET6, "2001:db8:2::10")
    echo = prove.echo_message(*six, 7, 1)
    assert echo[0] == 128 and prove._checksum(prove._pseudo(*six, 58, len(echo)) + echo) == 0


def test_only_an_answer_from_the_destination_proves_forwarding() -> None:
    probe = prove.Probe(DEST, 22, 40000, 1, 7)
    own = socket.inet_aton(ME)
    synack = struct.pack("!HHIIBBHHH", 22, 40000, 5, 2, 5 << 4, 0x12, 1000, 0, 0)
    rst = struct.pack("!HHIIBBHHH", 22, 40000, 0, 2, 5 << 4, 0x14, 0, 0, 0)
    echo_reply = struct.pack("!BBHHH", 0, 0, 0, 7, 1)
    unreachable = struct.pack("!BBHI", 3, 0, 0, 0)
    assert prove.match_reply(_ip4(DEST, ME, 6, synack), [probe], own) == \
        "SYN-ACK from 198.18.2.10 port 22"
    assert prove.match_reply(_ip4(DEST, ME, 6, rst), [probe], own) == \
        "RST from 198.18.2.10 port 22"
    assert prove.match_reply(_ip4(DEST, ME, 1, echo_reply), [probe], own) == \
        "echo reply from 198.18.2.10"
    # the candidate saying "net unreachable" proves it refuses, not that it forwards
    assert prove.match_reply(_ip4(ROUTER, ME, 1, unreachable), [probe], own) is None
    # for another port, another host, or another identifier: not ours
    other = struct.pack("!HHIIBBHHH", 22, 40001, 5, 2, 5 << 4, 0x12, 1000, 0, 0)
    assert prove.match_reply(_ip4(DEST, ME, 6, other), [probe], own) is None
    assert prove.match_reply(_ip4(DEST, "198.18.1.3", 6, synack), [probe], own) is None


# -- name servers ---------------------------------------------------------------------------------

NO_RESOLVER = report("DNS_NO_RESOLVER", "dns.config", 3,
                     {"file": "/etc/resolv.conf", "nameservers": [], "search": ["lab.test"]},
                     target={"input": "tcp://www.lab.test:22", "scheme": "tcp",
                             "host": "www.lab.test", "port": 22, "addresses": []})
DEAD_RESOLVER = report("DNS_RESOLVER_UNREACHABLE", "dns.servers", 3,
                       {"servers": {"198.18.3.99": "DNS_RESOLVER_UNREACHABLE"}},
                       target=NO_RESOLVER["target"])
ANSWERED = ResolverProof("198.18.3.53", "the DHCP lease", "NOERROR", ("198.18.2.10",))


def test_resolver_is_added_to_a_plain_resolv_conf() -> None:
    text = "# written by hand\nsearch lab.test\nnameserver 198.18.3.99\noptions ndots:1\n"
    made = plan.build(DEAD_RESOLVER, Host(dns=DnsOwner("file", "/etc/resolv.conf", text)),
                      Proofs(resolvers=[ResolverProof("198.18.1.1", "gw", "REFUSED"), ANSWERED]))
    assert isinstance(made, Plan)
    (write,), (back,) = made.steps[0].do, made.steps[0].undo
    assert write.content == ("# written by hand\nsearch lab.test\nnameserver 198.18.3.53\n"
                             "# netcheck fix: no answer: nameserver 198.18.3.99\n"
                             "options ndots:1\n")
    assert write.expect == [actions.digest(text)] and back.content == text
    assert "198.18.3.53" in made.steps[0].why and "REFUSED" not in made.steps[0].why
    assert plan.resolv_conf_with("search x\n", ["198.18.3.53"], []) == \
        "search x\nnameserver 198.18.3.53\n"


def test_resolver_goes_through_the_owner_of_resolv_conf() -> None:
    proofs = Proofs(resolvers=[ANSWERED])
    resolved = Host(dns=DnsOwner("systemd-resolved", link="../run/systemd/resolve/stub-resolv.conf",
                                 resolved_servers=["198.18.3.99"]))
    made = plan.build(DEAD_RESOLVER, resolved, proofs)
    assert argvs(made) == [["resolvectl", "dns", IFACE, "198.18.3.53"]]
    assert undo_argvs(made) == [["resolvectl", "dns", IFACE, "198.18.3.99"]]
    made = plan.build(NO_RESOLVER, Host(dns=DnsOwner("systemd-resolved")), proofs)
    assert undo_argvs(made) == [["resolvectl", "revert", IFACE]]
    made = plan.build(NO_RESOLVER, Host(dns=DnsOwner("resolvconf")), proofs)
    assert isinstance(made, Plan)
    assert made.steps[0].do[0].argv == ["resolvconf", "-a", "eth0.netcheck"]
    assert made.steps[0].do[0].input == "nameserver 198.18.3.53\n"
    made = plan.build(NO_RESOLVER, Host(dns=DnsOwner(owners.NM), owners={IFACE: NM_OWNER}),
                      proofs)
    assert argvs(made)[0] == ["nmcli", "connection", "modify", "Wired 1", "ipv4.dns",
                              "198.18.3.53"]
    assert isinstance(plan.build(NO_RESOLVER, Host(dns=DnsOwner("unknown", link="/x")), proofs),
                      Advice)


def test_local_causes_of_silent_names_are_said_not_papered_over() -> None:
    """nsswitch without dns, or a local stub that is down: adding a name server would not
    help (the lab's nsswitch_without_dns, resolved_stub_down); this host's administrator is
    told what to do."""
    doc = json.loads(json.dumps(NO_RESOLVER))
    doc["checks"][0]["evidence"].update(nameservers=["198.18.3.53"],
                                        nsswitch={"hosts": "files", "sources": ["files"]})
    made = plan.build(doc, Host(dns=DnsOwner("file", text="")), Proofs(resolvers=[ANSWERED]))
    assert isinstance(made, Advice) and "add dns to it" in made.reason
    assert made.whom is not None and made.whom.startswith("this host's administrator")
    stub = report("DNS_RESOLVER_UNREACHABLE", "dns.servers", 3,
                  {"servers": {"127.0.0.53": "DNS_RESOLVER_UNREACHABLE"}},
                  target=NO_RESOLVER["target"])
    made = plan.build(stub, Host(dns=DnsOwner("systemd-resolved"), systemd=True),
                      Proofs(resolvers=[ANSWERED]))
    assert isinstance(made, Advice) and "systemctl restart systemd-resolved" in made.reason


def test_no_resolver_is_guessed() -> None:
    made = plan.build(DEAD_RESOLVER, Host(dns=DnsOwner("file", text="")),
                      Proofs(resolvers=[ResolverProof("198.18.1.1", "the gateway", None,
                                                      error="timeout")]))
    assert isinstance(made, Advice) and "does not guess" in made.reason


def test_hosts_line_is_commented_out() -> None:
    text = "127.0.0.1 localhost\n# old\n198.18.2.99 www.lab.test www\n198.18.2.99 other\n"
    doc = report("DNS_HOSTS_OVERRIDE", "dns.hosts_file", 3,
                 {"file": "/etc/hosts", "hosts": ["198.18.2.99"], "dns": ["198.18.2.10"]},
                 target=NO_RESOLVER["target"])
    made = plan.build(doc, Host(hosts_text=text), Proofs())
    assert isinstance(made, Plan)
    assert made.steps[0].do[0].content == ("127.0.0.1 localhost\n# old\n# netcheck fix: "
                                           "198.18.2.99 www.lab.test www\n198.18.2.99 other\n")
    assert made.steps[0].undo[0].content == text
    doc["checks"][0]["status"] = "warn"  # the hosts address works: a choice, not a fault
    assert isinstance(plan.build(doc, Host(hosts_text=text), Proofs()), Advice)


# -- firewalls ------------------------------------------------------------------------------------

def fw_report(rule: dict[str, Any], flow: str = "tcp port 22 to 198.18.2.10") -> dict[str, Any]:
    fw = {"id": "transport.firewall", "layer": 4, "title": "t", "status": "fail",
          "code": "FW_LOCAL_OUTPUT_BLOCK", "summary": "drops", "evidence": {
              "flows": [{"flow": flow, "verdict": "drop", "certain": True, "rule": rule},
                        {"flow": "IPv4 ping to 198.18.2.10", "verdict": "no rule matches",
                         "certain": True}]},
          "hint": None, "blocked_by": None, "duration_ms": 1.0}
    return report("FW_LOCAL_OUTPUT_BLOCK", "transport.tcp", 4, {"port": 22}, others=[fw])


NFT_RULE = {"family": "inet", "table": "t", "chain": "output",
            "rule": "ip daddr 198.18.2.10 tcp dport 22 counter packets 1 bytes 60 drop",
            "source": "nft", "handle": 2}


def test_output_block_gets_an_accept_before_the_quoted_rule_by_handle() -> None:
    live = {("inet", "t", "output", 2): "ip daddr 198.18.2.10 tcp dport 22 counter packets 9 "
                                        "bytes 540 drop"}
    made = plan.build(fw_report(NFT_RULE), Host(nft_rules=live, tag="netcheck-fix-ab"), Proofs())
    assert argvs(made) == [["nft", "insert", "rule", "inet", "t", "output", "position", "2",
                            "ip", "daddr", "198.18.2.10", "tcp", "dport", "22", "accept",
                            "comment", '"netcheck-fix-ab-1-1"']]
    assert isinstance(made, Plan)
    undo = made.steps[0].undo[0]
    assert (undo.kind, undo.chain, undo.tag) == ("nft-delete-tagged", ["inet", "t", "output"],
                                                 "netcheck-fix-ab-1-1")


def test_output_block_is_not_touched_when_the_handle_now_holds_another_rule() -> None:
    live = {("inet", "t", "output", 2): "tcp dport 80 accept"}
    made = plan.build(fw_report(NFT_RULE), Host(nft_rules=live), Proofs())
    assert isinstance(made, Advice) and "not the rule the diagnosis quoted" in made.reason
    assert isinstance(plan.build(fw_report(NFT_RULE), Host(), Proofs()), Advice)


def test_iptables_rule_gets_an_iptables_accept_with_its_exact_delete() -> None:
    rule = {"family": "ip", "table": "filter", "chain": "OUTPUT", "source": "iptables-nft",
            "rule": "-A OUTPUT -d 198.18.2.10/32 -p tcp -j REJECT", "position": 1, "handle": 2}
    made = plan.build(fw_report(rule), Host(tag="tag"), Proofs())
    spec = ["-d", "198.18.2.10", "-p", "tcp", "--dport", "22", "-m", "comment", "--comment",
            "tag-1-1", "-j", "ACCEPT"]
    assert argvs(made) == [["iptables", "-I", "OUTPUT", "1", *spec]]
    assert undo_argvs(made) == [["iptables", "-D", "OUTPUT", *spec]]


def test_input_policy_drop_lets_in_the_replies_on_the_path_interface() -> None:
    ev = {"silent": ["gateway 198.18.1.1 icmp", "gateway 2001:db8:1::1 icmp"], "answered": [],
          "dropped": [{"flow": f"IPv{v} ping reply from {a}", "verdict": "drop",
                       "certain": True, "policy": {"chain": "inet h input", "policy": "drop"}}
                      for v, a in ((4, "198.18.1.1"), (6, "2001:db8:1::1"))]}
    doc = report("FW_LOCAL_INPUT_BLOCK", "transport.input_firewall", 4, ev)
    made = plan.build(doc, Host(tag="t"), Proofs())
    assert argvs(made) == [
        ["nft", "add", "rule", "inet", "h", "input", "iifname", '"eth0"', "ct", "state",
         "established,related", "accept", "comment", '"t-1-1"'],
        ["nft", "add", "rule", "inet", "h", "input", "iifname", '"eth0"', "icmpv6", "type", "{",
         "nd-neighbor-solicit,", "nd-neighbor-advert", "}", "accept", "comment", '"t-1-2"']]


def test_server_port_is_opened_for_the_client_before_the_blocking_rule() -> None:
    rule = {"family": "inet", "table": "s", "chain": "input", "source": "nft", "handle": 2,
            "rule": 'iifname "eth0" tcp dport 22 counter packets 0 bytes 0 drop'}
    doc = report("SRV_FW_INPUT_BLOCK", "transport.inbound_firewall", 4,
                 {"flows": [{"flow": "tcp port 22 to 198.18.2.10", "verdict": "drop",
                             "certain": True, "rule": rule}]})
    live = {("inet", "s", "input", 2): 'iifname "eth0" tcp dport 22 counter packets 3 bytes 180 '
                                       "drop"}
    host = Host(nft_rules=live, tag="t", server={"port": 22, "proto": "tcp",
                                                 "client": "198.18.1.2"})
    assert argvs(plan.build(doc, host, Proofs())) == [
        ["nft", "insert", "rule", "inet", "s", "input", "position", "2", "ip", "saddr",
         "198.18.1.2", "tcp", "dport", "22", "accept", "comment", '"t-1-1"']]


# -- services and the MTU -------------------------------------------------------------------------

def test_network_manager_is_started_only_where_systemd_runs() -> None:
    doc = report("NET_SERVICE_INACTIVE", "network.service", 3, {"manager": {
        "name": "NetworkManager", "unit": "NetworkManager.service", "enabled": True,
        "running": False, "systemd_pid1": True}})
    made = plan.build(doc, Host(systemd=True), Proofs())
    assert argvs(made) == [["systemctl", "start", "NetworkManager.service"]]
    assert undo_argvs(made) == [["systemctl", "stop", "NetworkManager.service"]]
    assert isinstance(plan.build(doc, Host(systemd=False), Proofs()), Advice)


def test_service_unit_is_started_unless_masked() -> None:
    doc = report("SRV_SERVICE_INACTIVE", "app.service_unit", 7, {"unit": "nginx.service"},
                 summary="nginx.service is inactive (dead)")
    doc["mode"] = "server"
    assert argvs(plan.build(doc, Host(systemd=True), Proofs())) == [
        ["systemctl", "start", "nginx.service"]]
    doc["checks"][0]["summary"] = "nginx.service is masked: it cannot be started"
    assert isinstance(plan.build(doc, Host(systemd=True), Proofs()), Advice)


MTU = report("MTU_MISMATCH", "network.pmtu", 3, {"interface": IFACE, "local_mtu": 1500,
                                                  "path_mtu": 1280}, status="warn",
             verdict="degraded")


def test_mtu_is_set_to_the_measured_path_mtu() -> None:
    made = plan.build(MTU, Host(mtus={IFACE: 1500}), Proofs())
    assert argvs(made) == [["ip", "link", "set", "dev", IFACE, "mtu", "1280"]]
    assert undo_argvs(made) == [["ip", "link", "set", "dev", IFACE, "mtu", "1500"]]
    made = plan.build(MTU, Host(owners={IFACE: NM_OWNER}), Proofs())
    assert argvs(made)[0] == ["nmcli", "connection", "modify", "Wired 1", "802-3-ethernet.mtu",
                              "1280"]
    assert undo_argvs(made)[0][-1] == "auto"
    unmeasured = json.loads(json.dumps(MTU))
    del unmeasured["checks"][0]["evidence"]["path_mtu"]
    assert isinstance(plan.build(unmeasured, Host(), Proofs()), Advice)


# -- no plan: whom to ask -------------------------------------------------------------------------

def test_fault_beyond_this_host_says_whom_to_ask_and_what_to_tell_them() -> None:
    doc = report("TCP_FILTERED", "transport.tcp", 4, {"port": 22, "failing": ["198.18.2.10"]},
                 summary="198.18.2.10 port 22: no answer to SYN")
    made = plan.build(doc, Host(), Proofs())
    assert isinstance(made, Advice)
    assert "netcheck server --port 22 --fix" in (made.whom or "")
    assert made.ticket is not None
    for part in ("TCP_FILTERED", "transport.tcp", "198.18.2.10 port 22: no answer to SYN",
                 '"failing": ["198.18.2.10"]', "vm", "2026-12-07T10:00:00Z"):
        assert part in made.ticket


def test_a_healthy_report_has_nothing_to_repair() -> None:
    doc = report(None, "link.carrier", 2, {}, status="pass", verdict="ok")
    made = plan.build(doc, Host(), Proofs())
    assert isinstance(made, Advice) and made.code is None


@pytest.mark.parametrize("before,after,repaired,better", [
    (("broken", "GATEWAY_UNREACHABLE", 3, 4), ("ok", None, None, 0), "GATEWAY_UNREACHABLE", True),
    (("degraded", "LOOPBACK_DOWN", 3, 2), ("ok", None, None, 0), "LOOPBACK_DOWN", True),
    # the same verdict, the fault gone and the next one higher up the ladder: progress
    (("broken", "LINK_ADMIN_DOWN", 2, 1), ("broken", "ROUTE_NO_DEFAULT", 3, 3),
     "LINK_ADMIN_DOWN", True),
    # the same fault again (another rule of the same kind): no progress
    (("broken", "FW_LOCAL_OUTPUT_BLOCK", 4, 9), ("broken", "FW_LOCAL_OUTPUT_BLOCK", 4, 9),
     "FW_LOCAL_OUTPUT_BLOCK", False),
    # worse, or the next fault lower down: no
    (("degraded", "MTU_MISMATCH", 3, 6), ("broken", "TARGET_UNREACHABLE", 3, 5), "MTU_MISMATCH",
     False),
    (("broken", "DNS_HOSTS_OVERRIDE", 3, 6), ("broken", "GATEWAY_UNREACHABLE", 3, 4),
     "DNS_HOSTS_OVERRIDE", False),
])
def test_improvement_is_a_better_verdict_or_progress_up_the_ladder(
        before: tuple[Any, ...], after: tuple[Any, ...], repaired: str, better: bool) -> None:
    def doc(verdict: str, code: Optional[str], layer: Optional[int], at: int) -> dict[str, Any]:
        checks = [{"id": f"c{i}", "code": None, "status": "pass"} for i in range(10)]
        if code is not None:
            checks[at] = {"id": f"c{at}", "code": code, "status": "fail"}
        return {"verdict": verdict, "checks": checks, "root_cause": None if code is None else {
            "check": f"c{at}", "layer": layer, "code": code}}

    assert plan.improved(doc(*before), doc(*after), repaired) is better


# -- owners' outputs ------------------------------------------------------------------------------

def test_nmcli_terse_values_are_unescaped() -> None:
    got = owners.parse_nmcli_terse("manual\n198.18.1.1\n2001\\:db8\\:3\\:\\:53\n",
                                   ("ipv4.method", "ipv4.gateway", "ipv6.dns"))
    assert got == {"ipv4.method": "manual", "ipv4.gateway": "198.18.1.1",
                   "ipv6.dns": "2001:db8:3::53"}


def test_networkctl_status_fields() -> None:
    text = ("● 2: eth0\n                     Link File: /usr/lib/systemd/network/99-default.link\n"
            "                  Network File: /etc/systemd/network/10-eth0.network\n"
            "                         State: routable (configured)\n"
            "                       Gateway: 198.18.1.1\n"
            "                           DNS: 198.18.3.53\n"
            "                                2001:db8:3::53\n")
    fields = owners.parse_networkctl_status(text)
    assert fields["Network File"] == ["/etc/systemd/network/10-eth0.network"]
    assert fields["DNS"] == ["198.18.3.53", "2001:db8:3::53"]


def test_who_writes_resolv_conf(tmp_path: Path) -> None:
    stub = tmp_path / "run" / "systemd" / "resolve" / "stub-resolv.conf"
    stub.parent.mkdir(parents=True)
    stub.write_text("nameserver 127.0.0.53\n")
    link = tmp_path / "resolv.conf"
    link.symlink_to(stub)
    assert owners.detect_dns(str(link)).kind == "systemd-resolved"
    plain = tmp_path / "plain.conf"
    plain.write_text("# Generated by NetworkManager\nnameserver 198.18.3.53\n")
    assert owners.detect_dns(str(plain)).kind == owners.NM
    plain.write_text("nameserver 198.18.3.53\n")
    found = owners.detect_dns(str(plain))
    assert (found.kind, found.text) == ("file", "nameserver 198.18.3.53\n")


# -- actions --------------------------------------------------------------------------------------

def test_actions_survive_the_journal_and_refuse_what_they_did_not_read(tmp_path: Path) -> None:
    path = tmp_path / "hosts"
    path.write_text("old\n")
    os.chmod(path, 0o640)
    do = actions.write(str(path), "new\n", "old\n")
    again = actions.Action.from_json(json.loads(json.dumps(do.to_json())))
    assert again == actions.Action(**{**do.__dict__, "shown": do.text()})
    assert actions.execute(again).ok and path.read_text() == "new\n"
    assert os.stat(path).st_mode & 0o777 == 0o640  # the file's permissions kept
    assert actions.execute(again).already  # idempotent
    path.write_text("someone else's\n")
    outcome = actions.execute(actions.write(str(path), "old\n", "new\n"))
    assert not outcome.ok and path.read_text() == "someone else's\n"
    with pytest.raises(ValueError):
        actions.Action.from_json({"kind": "shell", "argv": ["rm"]})


def test_write_never_follows_a_link(tmp_path: Path) -> None:
    victim = tmp_path / "victim"
    victim.write_text("precious\n")
    link = tmp_path / "resolv.conf"
    link.symlink_to(victim)
    outcome = actions.execute(actions.write(str(link), "x\n", "precious\n"))
    assert not outcome.ok and victim.read_text() == "precious\n"


def test_run_tolerates_what_means_already_done() -> None:
    assert actions.execute(actions.run(["false"])).ok is False
    gone = actions.execute(actions.run(["ls", "/nonexistent-netcheck"],
                                       tolerate=["No such file or directory"]))
    assert gone.ok and gone.already
    assert actions.run_argv(["no-such-program-netcheck"])[0] == 127


# -- the journal, its rollback and its watchdog ---------------------------------------------------

@pytest.fixture
def fix_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("NETCHECK_FIX_DIR", str(tmp_path / "fix"))
    return tmp_path / "fix"


def _journal_with_two_writes(tmp: Path) -> tuple[journal.Journal, Path, Path]:
    a, b = tmp / "a", tmp / "b"
    a.write_text("a1\n")
    b.write_text("b1\n")
    j = journal.Journal.create({"target": "t", "code": "X"})
    for n, (path, old, new) in enumerate(((a, "a1\n", "a2\n"), (b, "b1\n", "b2\n")), 1):
        j.add({"type": "undo", "step": n, "runtime": False, "text": f"edit {path.name}",
               "actions": [actions.write(str(path), old, new).to_json()]})
        assert actions.execute(actions.write(str(path), new, old)).ok
        j.add({"type": "done", "step": n, "ok": True})
    return j, a, b


def test_rollback_undoes_last_step_first_and_only_once(fix_dir: Path, tmp_path: Path) -> None:
    j, a, b = _journal_with_two_writes(tmp_path)
    assert j.pending and [s for s, *_rest in j.undos()] == [2, 1]
    order: list[int] = []
    assert journal.roll_back(j, lambda step, text, outcome: order.append(step))
    assert order == [2, 1] and (a.read_text(), b.read_text()) == ("a1\n", "b1\n")
    again = journal.Journal.open(j.path)
    assert again.state == "rolled_back" and not again.pending and again.undos() == []


def test_a_journal_locked_by_a_repair_cannot_be_taken(fix_dir: Path, tmp_path: Path) -> None:
    j, _a, _b = _journal_with_two_writes(tmp_path)
    other = journal.Journal(j.path)
    assert other.lock() is False
    j.unlock()
    assert other.lock() is True
    other.unlock()


def test_journal_of_another_namespace_is_never_replayed(fix_dir: Path, tmp_path: Path) -> None:
    j, a, _b = _journal_with_two_writes(tmp_path)
    j.unlock()
    lines = [json.loads(x) for x in j.path.read_text().splitlines()]
    lines[0]["netns"] = 1  # written elsewhere
    j.path.write_text("".join(json.dumps(x) + "\n" for x in lines))
    assert journal.left_behind() == []
    assert journal.Journal.open(j.path).belongs_here()[:2] == (False, False)
    lines[0]["boot_id"] = "another boot"
    lines[0]["initial_netns"] = lines[0]["initial_netns"] = True
    j.path.write_text("".join(json.dumps(x) + "\n" for x in lines))
    if journal.here()["initial_netns"]:  # after a reboot only what survives it is undone
        assert journal.Journal.open(j.path).belongs_here()[:2] == (True, False)
    assert a.read_text() == "a2\n"


def test_a_journal_others_may_write_is_never_replayed(fix_dir: Path, tmp_path: Path) -> None:
    """Undos run as root: a journal anyone could have written (or planted in a directory
    others may write) is refused, never replayed."""
    j, a, _b = _journal_with_two_writes(tmp_path)
    j.unlock()
    os.chmod(j.path, 0o666)
    assert journal.left_behind() == []
    out, err = StringIO(), StringIO()
    assert run(["fix", "--rollback"], out, err) == 1
    assert a.read_text() == "a2\n"
    os.chmod(j.path, 0o600)
    os.chmod(fix_dir, 0o777)
    assert run(["fix", "--rollback"], StringIO(), err) == 3
    assert "only it may write" in err.getvalue() and a.read_text() == "a2\n"
    os.chmod(fix_dir, 0o700)


def test_journal_directory_must_be_ours_alone(tmp_path: Path) -> None:
    loose = tmp_path / "loose"
    loose.mkdir(mode=0o777)
    os.chmod(loose, 0o777)
    with pytest.raises(journal.JournalError):
        journal.ensure_directory(loose)
    target = tmp_path / "elsewhere"
    target.mkdir(mode=0o700)
    (tmp_path / "link").symlink_to(target)
    with pytest.raises(journal.JournalError):
        journal.ensure_directory(tmp_path / "link")


REPAIRER = """
import os, sys, time
from netcheck.fix import actions, journal
from netcheck.fix.command import start_watchdog
path, old, new = sys.argv[1], sys.argv[2], sys.argv[3]
j = journal.Journal.create({"target": "t", "code": "X"})
j.add({"type": "undo", "step": 1, "runtime": True, "text": "edit",
       "actions": [actions.write(path, old, new).to_json()]})
actions.execute(actions.write(path, new, old))
print(start_watchdog(j), flush=True)
time.sleep(60)
"""


def test_watchdog_rolls_back_a_killed_repair(fix_dir: Path, tmp_path: Path) -> None:
    target = tmp_path / "resolv.conf"
    target.write_text("nameserver 198.18.3.99\n")
    proc = subprocess.Popen([sys.executable, "-c", REPAIRER, str(target),
                             "nameserver 198.18.3.99\n", "nameserver 198.18.3.53\n"],
                            stdout=subprocess.PIPE, text=True, env={**os.environ})
    try:
        assert proc.stdout is not None
        watchdog = int(proc.stdout.readline())
        assert target.read_text() == "nameserver 198.18.3.53\n"
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        (path,) = journal.journals(fix_dir)
        deadline = time.monotonic() + 10
        while journal.Journal.open(path).state != "rolled_back" and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert journal.Journal.open(path).state == "rolled_back"
    assert target.read_text() == "nameserver 198.18.3.99\n"
    deadline = time.monotonic() + 5
    while os.path.exists(f"/proc/{watchdog}") and time.monotonic() < deadline:
        time.sleep(0.05)  # it leaves once done
    assert not Path(f"/proc/{watchdog}/cmdline").exists() or \
        b"watchdog" not in Path(f"/proc/{watchdog}/cmdline").read_bytes()


def test_rollback_command_replays_what_was_left_behind(fix_dir: Path, tmp_path: Path) -> None:
    j, a, b = _journal_with_two_writes(tmp_path)
    j.unlock()  # its process is gone
    out, err = StringIO(), StringIO()
    assert run(["fix", "--rollback", "--format", "json"], out, err) == 0
    doc = json.loads(out.getvalue())
    validate_fix(doc)
    assert (doc["outcome"], [u["step"] for u in doc["undone"]]) == ("rolled_back", [2, 1])
    assert (a.read_text(), b.read_text()) == ("a1\n", "b1\n")
    out = StringIO()
    assert run(["fix", "--rollback"], out, StringIO()) == 1
    assert "Nothing to roll back" in out.getvalue()


@pytest.mark.parametrize("argv,message", [
    (["fix"], "give a TARGET"),
    (["fix", "--rollback", "tcp://198.18.2.10:22"], "--rollback takes no TARGET"),
    (["fix", "tcp://198.18.2.10:22", "--format", "nagios"], "text or json"),
    (["fix", "tcp://198.18.2.10:22", "--confirm-timeout", "0"], "between 1 and 3600"),
])
def test_bad_input_is_one_line_and_exit_3(argv: list[str], message: str) -> None:
    out, err = StringIO(), StringIO()
    assert run(argv, out, err) == 3
    assert message in err.getvalue() and err.getvalue().count("\n") == 1


def test_bad_input_in_json_is_one_fix_document() -> None:
    out = StringIO()
    assert run(["fix", "--format", "json"], out, StringIO()) == 3
    doc = json.loads(out.getvalue())
    validate_fix(doc)
    assert (doc["outcome"], doc["applied"], doc["before"]) == ("refused", False, None)


# -- what a person sees ---------------------------------------------------------------------------

def test_plan_is_a_checklist_and_the_document_is_valid() -> None:
    made = plan.build(gateway_report(), Host(defaults=WRONG_DEFAULT),
                      Proofs(gateways={4: [PROVEN]}))
    assert isinstance(made, Plan)
    out = StringIO()
    show_plan(Output("text", out, StringIO()), made)
    lines = out.getvalue().splitlines()
    assert lines[0] == "Repair plan for GATEWAY_UNREACHABLE (network.gateway), 1 step(s):"
    assert lines[1] == ("  [ ] 1. ip -4 route replace default via 198.18.1.1 dev eth0 metric 100 "
                        "proto dhcp")
    assert lines[2].startswith("        why:  the gateway 198.18.1.99 does not work")
    assert lines[3] == ("        undo: ip -4 route replace default via 198.18.1.99 dev eth0 "
                        "metric 100 proto dhcp onlink")
    assert lines[4].startswith("        note: not persistent")
    session = Session(before=gateway_report(), plans=[made], outcome="planned")
    doc = session.document()
    validate_fix(doc)
    assert doc["plan"][0]["do"] == ("ip -4 route replace default via 198.18.1.1 dev eth0 metric "
                                    "100 proto dhcp")
    assert doc["repairs"][0]["proofs"][0]["answer"] == "SYN-ACK from 198.18.2.10 port 22"
