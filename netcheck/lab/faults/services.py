"""Catalogue entries 37-47: the service (stopped, elsewhere, resetting, silent) and the
firewalls of the server, the gateway and the client.
"""

from __future__ import annotations

from netcheck.lab.compose import prefix
from netcheck.lab.faults.helpers import (
    _client_fw_established_for,
    _filters_port,
    _filters_port_expect,
    _listener_elsewhere,
    _server_allow_list,
    chain,
    port_rule,
    set_services,
)
from netcheck.lab.faults.model import Fault, local, to_dns, to_target
from netcheck.lab.faults.shapes import each_family, each_family_or_all, with_parts

SERVICE_FAULTS: list[Fault] = [
    Fault("service_stopped", "service", "fault",
          "the service's daemon is not running on the server (the port answers RST)",
          to_target({"TCP_REFUSED"}), services=set_services(tcp=False)),
    Fault("listener_wrong_address", "service", "fault",
          "the daemon listens only on the other family's address (or on loopback)",
          to_target({"TCP_REFUSED"}), families=each_family, services=_listener_elsewhere),
    Fault("server_fw_stale_allow_list", "firewall", "fault",
          "the server's allow-list firewall (policy drop) lists other ports than the service's",
          to_target({"TCP_FILTERED"}), shape=with_parts(server_fw=True),
          apply=lambda case, lab: lab.nft("server", _server_allow_list("443, 8080"))),
    Fault("server_fw_resets", "firewall", "fault",
          "the server's firewall answers the port's SYNs with a TCP reset",
          to_target({"TCP_REFUSED"}), families=each_family_or_all,
          apply=port_rule("server", "input", "reject with tcp reset")),
    Fault("router_filters_port", "firewall", "fault",
          "the gateway's forward chain drops or rejects (admin-prohibited) the service's port",
          _filters_port_expect, apply=_filters_port, families=each_family_or_all,
          params=lambda rng, parts, fam: {"action": rng.choice(("drop", "reject"))}),
    Fault("reset_after_handshake", "service", "fault",
          "the server's firewall resets every connection to the port right after the "
          "handshake (fail2ban / TCP wrappers style)", to_target({"APP_CONNECTION_RESET"}),
          schemes=("ssh", "http"),
          apply=lambda case, lab: chain(lab, "server", "input",
                                        f"tcp dport {case.target.port} ct state established "
                                        "reject with tcp reset")),
    Fault("service_silent", "service", "fault",
          "the service accepts connections and never says a word",
          to_target({"APP_TIMEOUT"}), schemes=("ssh", "http"),
          services=set_services(app_mode="silent")),
    Fault("client_fw_established_other_family", "firewall", "fault",
          "the client's input firewall (policy drop) accepts established replies for one "
          "family only: replies of the other are dropped, ICMP passes",
          local({"FW_LOCAL_INPUT_BLOCK"}), families=each_family,
          shape=with_parts(client_fw=True),
          apply=lambda case, lab: lab.nft("client",
                                          _client_fw_established_for(case.family or 4))),
    Fault("client_fw_blocklist_too_wide", "firewall", "fault",
          "a blocklist entry in the client's input chain drops the whole server subnet",
          to_target({"FW_LOCAL_INPUT_BLOCK"}), families=each_family,
          apply=lambda case, lab: chain(lab, "client", "input", (
              f"ip saddr {prefix(4, 2)} drop" if case.family == 4
              else f"ip6 saddr {prefix(6, 2)} drop"))),
    Fault("client_output_rejects_dns", "firewall", "fault",
          "the client's output chain rejects DNS to anything but loopback (a policy meant to "
          "force DNS over HTTPS)", to_dns({"FW_LOCAL_OUTPUT_BLOCK", "DNS_RESOLVER_UNREACHABLE"}),
          named_share=1.0,
          apply=lambda case, lab: chain(lab, "client", "output",
                                        'oifname != "lo" meta l4proto { tcp, udp } th dport 53 '
                                        "reject")),
    Fault("client_output_drops_port", "firewall", "fault",
          "the client's output chain drops the service's port for one family",
          to_target({"FW_LOCAL_OUTPUT_BLOCK"}), families=each_family,
          apply=port_rule("client", "output", "drop")),
]
