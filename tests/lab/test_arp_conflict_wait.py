"""network.address_conflict's ARP probe, for real on the lab's client link: the wait that
proves nobody else holds the client's address is sized by how fast the gateway answers the
same probe for its own address, and still catches a claimant slower than the gateway.

The probe runs in the client namespace (neighbour.arp_conflict_probe, as the check calls it);
the claimant is a macvlan on the router's port moved into the stub namespace, without an
address (its kernel stays quiet), answered for by a small responder that waits first.
"""

from __future__ import annotations

import json
import sys
import time

import pytest

from netcheck.lab.topology import Lab
from netcheck.probes import neighbour

from .conftest import run_netcheck

CLIENT = "198.18.1.2"
GATEWAY = "198.18.1.1"
CAP = 0.3  # the longest wait (conflict.probe_wait for the default timeout)

PROBE = """
import json, sys
from netcheck.probes import neighbour
mac = open("/sys/class/net/eth0/address").read().strip()
watch = neighbour.arp_conflict_probe("eth0", mac, sys.argv[1], float(sys.argv[2]),
                                     reference=sys.argv[3] or None)
print(json.dumps({"claimed_by": watch.claimed_by, "waited": watch.waited,
                  "probes": watch.probes, "rtt": watch.reference_rtt}))
"""

# Answers "who has ADDRESS?" after DELAY seconds, as a slow host holding ADDRESS would.
RESPONDER = """
import socket, struct, sys, time
ifname, wanted, delay = sys.argv[1], socket.inet_aton(sys.argv[2]), float(sys.argv[3])
mac = bytes.fromhex(open(f"/sys/class/net/{ifname}/address").read().strip().replace(":", ""))
sock = socket.socket(socket.AF_PACKET, socket.SOCK_DGRAM, socket.htons(0x0806))
sock.bind((ifname, 0x0806))
print("ready", flush=True)
while True:
    data, where = sock.recvfrom(128)
    if len(data) < 28 or where[2] == socket.PACKET_OUTGOING:
        continue
    op, sha, spa, tpa = struct.unpack("!H", data[6:8])[0], data[8:14], data[14:18], data[24:28]
    if op == 1 and tpa == wanted:
        time.sleep(delay)
        reply = struct.pack("!HHBBH6s4s6s4s", 1, 0x0800, 6, 4, 2, mac, wanted, sha, spa)
        sock.sendto(reply, (ifname, 0x0806, 0, 0, sha))
"""


def _probe(lab: Lab, reference: str, timeout: float = CAP) -> dict[str, object]:
    proc = lab.exec("client", [sys.executable, "-c", PROBE, CLIENT, str(timeout), reference],
                    check=True)
    return json.loads(proc.stdout)


def _slow_claimant(lab: Lab, delay: float) -> str:
    """A second machine on the client's link that answers for the client's address after
    ``delay`` seconds; its MAC address."""
    lab.ip("router", "link", "add", "rogue", "link", "r-client", "type", "macvlan",
           "mode", "bridge")
    lab.ip("router", "link", "set", "rogue", "netns", lab.ns("stub"))
    lab.ip("stub", "link", "set", "rogue", "up")
    lab.popen("stub", [sys.executable, "-c", RESPONDER, "rogue", CLIENT, str(delay)],
              name="slow-claimant")
    mac = lab.exec("stub", ["cat", "/sys/class/net/rogue/address"], check=True).stdout.strip()
    log = lab.state_dir / "slow-claimant.log"
    for _ in range(100):  # the responder has bound its socket
        if log.exists() and "ready" in log.read_text():
            break
        time.sleep(0.05)
    return mac


def test_a_quiet_link_is_proven_in_the_time_its_gateway_sets(lab: Lab) -> None:
    watch = _probe(lab, GATEWAY)
    assert watch["claimed_by"] is None
    assert watch["rtt"] is not None, "the gateway answers an ARP probe for its own address"
    assert watch["probes"] == 2  # the retry left too
    assert neighbour.MIN_SETTLE - 0.01 <= float(watch["waited"]) < CAP - 0.05, watch


def test_without_a_neighbour_to_size_it_the_whole_wait_is_kept(lab: Lab) -> None:
    watch = _probe(lab, "")
    assert watch["claimed_by"] is None and watch["rtt"] is None
    assert float(watch["waited"]) >= CAP - 0.005


def test_a_gateway_deaf_to_probes_leaves_the_whole_wait(lab: Lab) -> None:
    lab.nft("router", "table arp deaf {\n chain input {\n"
                      "  type filter hook input priority 0;\n"
                      f"  arp saddr ip 0.0.0.0 arp daddr ip {GATEWAY} drop\n }}\n}}\n")
    watch = _probe(lab, GATEWAY)
    assert watch["claimed_by"] is None and watch["rtt"] is None
    assert float(watch["waited"]) >= CAP - 0.005


@pytest.mark.parametrize("delay", [0.0, 0.04])
def test_a_claimant_slower_than_the_gateway_is_still_caught(lab: Lab, delay: float) -> None:
    mac = _slow_claimant(lab, delay)
    watch = _probe(lab, GATEWAY)
    assert watch["claimed_by"] == mac, watch


def test_the_check_says_how_long_it_listened_and_why(lab: Lab) -> None:
    run = run_netcheck(lab, "tcp://198.18.2.10:22", "-4")
    assert run.verdict == "ok", run.explain()
    conflict = run.check("network.address_conflict")
    assert conflict["status"] == "pass"
    listened = conflict["evidence"]["listened"][CLIENT]
    assert listened["sized_by"] == GATEWAY and listened["probes"] == 2
    assert listened["waited_ms"] < CAP * 1000 - 50
