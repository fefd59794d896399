"""Docker's chains, as iptables-save prints them on a Docker host (recorded in the lab).

Docker sets the FORWARD policy to drop and lets published ports in through its own chains,
after a DNAT in nat PREROUTING: a walk that starts at the input chains, or that does not
know which interface the container's bridge is, sees "policy drop" on a healthy host.
"""

from __future__ import annotations

import json

import pytest

from netcheck.probes import firewall as fw

CLIENT, HOST, CONTAINER = "198.18.1.2", "198.18.2.10", "198.19.0.2"

DOCKER_SAVE = """\
*filter
:INPUT ACCEPT [0:0]
:FORWARD DROP [0:0]
:OUTPUT ACCEPT [0:0]
:DOCKER - [0:0]
:DOCKER-ISOLATION-STAGE-1 - [0:0]
:DOCKER-ISOLATION-STAGE-2 - [0:0]
:DOCKER-USER - [0:0]
-A FORWARD -j DOCKER-USER
-A FORWARD -j DOCKER-ISOLATION-STAGE-1
-A FORWARD -o docker0 -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT
-A FORWARD -o docker0 -j DOCKER
-A FORWARD -i docker0 ! -o docker0 -j ACCEPT
-A FORWARD -i docker0 -o docker0 -j ACCEPT
-A DOCKER -d 198.19.0.2/32 ! -i docker0 -o docker0 -p tcp -m tcp --dport 80 -j ACCEPT
-A DOCKER-ISOLATION-STAGE-1 -i docker0 ! -o docker0 -j DOCKER-ISOLATION-STAGE-2
-A DOCKER-ISOLATION-STAGE-1 -j RETURN
-A DOCKER-ISOLATION-STAGE-2 -o docker0 -j DROP
-A DOCKER-ISOLATION-STAGE-2 -j RETURN
{user}-A DOCKER-USER -j RETURN
COMMIT
*nat
:PREROUTING ACCEPT [0:0]
:INPUT ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
:POSTROUTING ACCEPT [0:0]
:DOCKER - [0:0]
-A PREROUTING -m addrtype --dst-type LOCAL -j DOCKER
-A OUTPUT ! -d 127.0.0.0/8 -m addrtype --dst-type LOCAL -j DOCKER
-A POSTROUTING -s 198.19.0.0/24 ! -o docker0 -j MASQUERADE
-A DOCKER -i docker0 -j RETURN
-A DOCKER ! -i docker0 -p tcp -m tcp --dport 8081 -j DNAT --to-destination 198.19.0.2:80
{local}
COMMIT
"""


# -p 127.0.0.1:8086:80 (a line too long for this file's width)
LOCAL_ONLY = ("-A DOCKER -d 127.0.0.1/32 ! -i docker0 -p tcp -m tcp --dport 8086 -j DNAT "
              "--to-destination 198.19.0.5:80")


def ruleset(user_rules: str = "") -> fw.Ruleset:
    rs = fw.Ruleset()
    text = DOCKER_SAVE.replace("{user}", user_rules).replace("{local}", LOCAL_ONLY)
    for chain in fw.parse_iptables_save(text, 4, source="iptables-nft"):
        rs.add_chain(chain)
    return rs


def arriving(port: int, local: bool = True, daddr: str = HOST) -> fw.Flow:
    return fw.Flow(4, "tcp", daddr, port, saddr=CLIENT, sport=(1024, 65535), iifname="eth0",
                   hook="input", local_daddr=local)


def forward(oifname: str | None = "docker0") -> fw.Flow:
    return fw.Flow(4, "tcp", CONTAINER, 80, saddr=CLIENT, sport=(1024, 65535),
                   iifname="eth0", oifname=oifname, hook="forward")


def test_published_port_is_dnat_to_the_container() -> None:
    nat = fw.dnat_of(ruleset(), arriving(8081))
    assert nat is not None and (nat.addr, nat.port) == (CONTAINER, 80)
    assert nat.rule.chain == "DOCKER" and "--to-destination 198.19.0.2:80" in nat.rule.quoted


@pytest.mark.parametrize("flow", [arriving(8082), arriving(8081, local=False),
                                  arriving(8086)],
                         ids=["another port", "not a local address", "published on 127.0.0.1"])
def test_no_dnat(flow: fw.Flow) -> None:
    assert fw.dnat_of(ruleset(), flow) is None


def test_forward_walk_follows_dockers_chains_to_an_accept() -> None:
    verdict = fw.evaluate(ruleset(), forward())
    assert verdict.action == "accept" and verdict.certain
    assert verdict.rule is not None and verdict.rule.chain == "DOCKER"


def test_without_the_bridge_the_walk_is_uncertain_not_a_block() -> None:
    """What netcheck did before it looked the container's route up: the -o docker0 rules
    cannot be judged, and Docker's drop policy was taken for the answer."""
    verdict = fw.evaluate(ruleset(), forward(oifname=None))
    assert not verdict.certain


def test_docker_user_rule_drops_the_client() -> None:
    rs = ruleset(f"-A DOCKER-USER -s {CLIENT}/32 -d {CONTAINER}/32 -p tcp -j DROP\n")
    verdict = fw.evaluate(rs, forward())
    assert verdict.action == "drop" and verdict.certain
    assert verdict.rule is not None and verdict.rule.chain == "DOCKER-USER"
    assert fw.remedy_commands(verdict)[0] == (
        f"iptables -D DOCKER-USER -s {CLIENT}/32 -d {CONTAINER}/32 -p tcp -j DROP")
    # Another client is not concerned.
    other = fw.evaluate(rs, fw.Flow(4, "tcp", CONTAINER, 80, saddr="198.18.4.1",
                                    sport=(1024, 65535), iifname="eth0", oifname="docker0",
                                    hook="forward"))
    assert other.action == "accept"


def test_nft_native_dnat_and_fib() -> None:
    """The same in nft's own words: ``fib daddr type local`` and ``dnat to``."""
    doc = {"nftables": [
        {"chain": {"family": "ip", "table": "nat", "name": "prerouting", "type": "nat",
                   "hook": "prerouting", "prio": -100, "policy": "accept"}},
        {"rule": {"family": "ip", "table": "nat", "chain": "prerouting", "handle": 4, "expr": [
            {"match": {"op": "==", "left": {"fib": {"result": "type", "flags": ["daddr"]}},
                       "right": "local"}},
            {"match": {"op": "==", "left": {"payload": {"protocol": "tcp", "field": "dport"}},
                       "right": 8081}},
            {"dnat": {"addr": CONTAINER, "port": 80}}]}}]}
    rs = fw.parse_nft_json(json.dumps(doc))
    nat = fw.dnat_of(rs, arriving(8081))
    assert nat is not None and (nat.addr, nat.port, nat.rule.handle) == (CONTAINER, 80, 4)
    assert fw.dnat_of(rs, arriving(8081, local=False)) is None
    # Whether the address is local not known: the rule is not guessed.
    assert fw.dnat_of(rs, arriving(8081, local=None)) is None  # type: ignore[arg-type]


@pytest.mark.parametrize("target,addr,port", [
    ("DNAT --to-destination 198.19.0.2:80", "198.19.0.2", 80),
    ("DNAT --to-destination 198.19.0.2", "198.19.0.2", None),
    ("DNAT --to-destination [2001:db8:9::2]:8080", "2001:db8:9::2", 8080),
])
def test_dnat_targets_parsed(target: str, addr: str, port: int | None) -> None:
    exprs = fw._iptables_exprs(f"-p tcp --dport 1 -j {target}".split(), "ip", set())
    assert exprs[-1] == {"dnat": {"addr": addr, **({"port": port} if port else {})}}
