"""Families: what this host cannot use is not the target's failure, at L4 and L7 either.

An IPv4-only office PC (only fe80:: for IPv6, no IPv6 route) reaching names with AAAA records
over HTTP, HTTPS and TCP is healthy. A host whose IPv6 lost its address (SLAAC got nothing)
while its IPv6 default route stays has one finding, the address: the target's and the port's
IPv6 silence are that finding again, not TARGET_UNREACHABLE or a firewall.
"""

from __future__ import annotations

from typing import Any

import pytest

from netcheck.lab.scenarios import SCENARIOS
from netcheck.lab.scenarios_tls import lab_ca_path
from netcheck.lab.topology import Lab

from .conftest import NetcheckRun, run_netcheck


def _targets(lab: Lab) -> list[tuple[str, ...]]:
    return [("http://web.lab.test/",), ("tcp://www.lab.test:22",),
            ("https://tls-ok.lab.test/", "--cafile", str(lab_ca_path(lab)))]


def _serving(lab: Lab) -> None:
    for name in ("http_ok", "tls_ok"):
        SCENARIOS[name].apply(lab)


def _findings(run: NetcheckRun) -> list[tuple[Any, Any, Any]]:
    return [(c["id"], c["status"], c["code"]) for c in (run.doc or {}).get("checks", [])
            if c["status"] in ("warn", "fail")]


def test_ipv4_only_host_reaches_dual_stack_names_over_http_https_and_tcp(lab: Lab) -> None:
    _serving(lab)
    SCENARIOS["ipv4_only_host"].apply(lab)
    for args in _targets(lab):
        run = run_netcheck(lab, *args)
        assert run.doc is not None and len(run.doc["target"]["addresses"]) == 2, run.explain()
        assert run.verdict == "ok" and _findings(run) == [], run.explain()


@pytest.mark.parametrize("index", [0, 1, 2])
def test_lost_ipv6_address_is_one_finding_not_the_targets(lab: Lab, index: int) -> None:
    _serving(lab)
    # SLAAC got nothing: the global address is gone, the IPv6 default route is still there.
    lab.ip("client", "-6", "addr", "del", "2001:db8:1::2/64", "dev", "eth0")
    run = run_netcheck(lab, *_targets(lab)[index])
    rc = run.root_cause
    assert run.verdict == "degraded" and rc is not None, run.explain()
    assert (rc["check"], rc["code"]) == ("network.address", "ADDR_LINK_LOCAL_ONLY")
    assert _findings(run) == [("network.address", "warn", "ADDR_LINK_LOCAL_ONLY")], \
        run.explain()
