"""The root cause lies below the symptom: the diagnosis must name the lower layer."""

from __future__ import annotations

from netcheck.lab.scenarios_path import SCENARIOS_LIST
from netcheck.lab.topology import Lab

from .conftest import run_netcheck

BY_NAME = {s.name: s for s in SCENARIOS_LIST}


def test_stalled_download_is_a_pmtu_black_hole_not_an_app_timeout(lab: Lab) -> None:
    scenario = BY_NAME["http_download_pmtu_blackhole"]
    scenario.apply(lab)
    run = run_netcheck(lab, *scenario.netcheck_argv())
    rc = run.root_cause
    assert rc is not None and (rc["code"], rc["layer"]) == ("PMTU_BLACKHOLE", 3), run.explain()
    assert "eth0" in " ".join(rc["hint"]["commands"])
    pmtu = run.check("network.pmtu")
    assert pmtu is not None and pmtu["evidence"]["small_mss"]["outcome"] == "ok"
    # The same stall seen from layer 7 is reported, but it is not the root cause.
    http = run.check("http.response")
    assert http is not None and http["code"] == "APP_TIMEOUT"
