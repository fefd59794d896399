"""Catalogue entries 48-54: the path (loss, path MTU) and IPsec policies.
"""

from __future__ import annotations

from netcheck.lab.faults.helpers import (
    _ipsec_block_dns,
    _ipsec_no_sa,
    _loss,
    _pmtu_expect,
    _truthless_degraded,
    pmtu_narrow,
)
from netcheck.lab.faults.model import NOT_OK, Expectation, Fault, to_dns, to_target, trap
from netcheck.lab.faults.shapes import each_family, with_parts

PATH_FAULTS: list[Fault] = [
    Fault("heavy_loss", "path", "fault",
          "the gateway drops 55-70 % of forwarded packets at random (nft numgen)",
          lambda case: Expectation(NOT_OK, frozenset({"PATH_LOSS"})), apply=_loss,
          params=lambda rng, parts, fam: {"loss": rng.randint(55, 70)}, truth=False),
    Fault("light_loss", "trap", "trap",
          "the gateway drops 4-12 % of forwarded packets at random (under the threshold)",
          trap("PATH_LOSS"), apply=_loss,
          params=lambda rng, parts, fam: {"loss": rng.randint(4, 12)}, truth=False),
    Fault("pmtu_blackhole_transit", "path", "fault",
          "the link between the gateway and the core has MTU 1280 and the gateway drops its "
          "own 'fragmentation needed' / 'packet too big'", _pmtu_expect,
          apply=lambda case, lab: pmtu_narrow(case, lab, drop_too_big=True),
          families=each_family, shape=with_parts(routers=2), truth=False),
    Fault("lower_mtu_icmp_works", "trap", "trap",
          "the link between the gateway and the core has MTU 1280 and says so with ICMP",
          trap("MTU_MISMATCH"), apply=lambda case, lab: pmtu_narrow(case, lab, False),
          shape=with_parts(routers=2), truth=False),
    Fault("jumbo_client", "path", "fault",
          "the client's eth0 has MTU 9000 on a 1500-byte LAN: its full-size frames are "
          "dropped by the router's port, TCP works (the server's MSS)",
          _truthless_degraded("MTU_MISMATCH", "PMTU_BLACKHOLE"),
          apply=lambda case, lab: lab.ip("client", "link", "set", "eth0", "mtu", "9000"),
          truth=False),
    Fault("ipsec_policy_without_sa", "ipsec", "fault",
          "an IPsec tunnel policy covers the server's subnet, with no security association",
          to_target({"IPSEC_NO_SA"}), apply=_ipsec_no_sa, families=each_family),
    Fault("ipsec_block_dns", "ipsec", "fault",
          "an IPsec policy with action block covers the name servers' subnet",
          to_dns({"IPSEC_POLICY_BLOCK"}), apply=_ipsec_block_dns, families=each_family,
          named_share=0.9),
]
