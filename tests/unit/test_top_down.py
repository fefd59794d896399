"""Top-down sanity in the runner: when an exchange that proves the flow worked, a failure below
it about the host as a whole (not the flow's path) is a warning, never the root cause of a
failure. Synthetic checks; the engine is told only what the declarations say.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

from netcheck import registry
from netcheck.model import Layer, Status, failed, passed, warned
from netcheck.registry import Check
from tests.unit.test_runner import diagnose_now, make, outcome


def prover(layer: Layer, result: Any = None, name: str = "proof") -> Check:
    return replace(make(name, layer, result), proves_flow=True)


def host_check(name: str, layer: Layer, code: str) -> Check:
    return replace(make(name, layer, failed(code, f"{code} here")), scope="host")


def test_host_finding_below_a_working_connect_is_a_warning_not_the_cause() -> None:
    report = diagnose_now([host_check("nic", Layer.PHYSICAL, "NIC_MISSING"),
                           prover(Layer.TRANSPORT)])
    nic = outcome(report, "physical.nic")
    assert nic.status is Status.WARN and nic.result.code == "NIC_MISSING"
    assert nic.result.evidence["top_down"] == {"was": "fail", "proved_by": "transport.proof"}
    assert "transport.proof proved it works" in nic.result.summary
    assert report.verdict.value == "degraded"
    assert report.root_cause is not None and report.root_cause.id == "physical.nic"


def test_without_proof_the_host_finding_stays_the_root_cause() -> None:
    report = diagnose_now([host_check("nic", Layer.PHYSICAL, "NIC_MISSING"),
                           prover(Layer.TRANSPORT, failed("TCP_REFUSED", "refused"))])
    assert report.verdict.value == "broken"
    assert report.root_cause is not None and report.root_cause.id == "physical.nic"
    assert outcome(report, "physical.nic").status is Status.FAIL


def test_a_finding_about_the_path_survives_a_handshake() -> None:
    # Full-size packets vanishing is not disproved by a handshake that works.
    pmtu = make("pmtu", Layer.NETWORK, failed("PMTU_BLACKHOLE", "big packets vanish"))
    report = diagnose_now([pmtu, prover(Layer.TRANSPORT)])
    assert outcome(report, "network.pmtu").status is Status.FAIL
    assert report.verdict.value == "broken"


def test_a_proof_with_one_family_failing_still_proves_the_flow() -> None:
    report = diagnose_now([host_check("loopback", Layer.NETWORK, "LOOPBACK_DOWN"),
                           prover(Layer.TRANSPORT, warned("TCP_FILTERED", "IPv6 fails"))])
    assert outcome(report, "network.loopback").status is Status.WARN
    assert report.verdict.value == "degraded"


def test_the_highest_proof_is_named_and_findings_above_it_are_untouched() -> None:
    report = diagnose_now([
        host_check("service", Layer.NETWORK, "NET_SERVICE_INACTIVE"),
        prover(Layer.TRANSPORT),
        prover(Layer.APPLICATION, passed("200 OK"), name="http"),
        host_check("server", Layer.APPLICATION, "SRV_LOG_ERRORS")])
    service = outcome(report, "network.service")
    assert service.result.evidence["top_down"]["proved_by"] == "app.http"
    assert outcome(report, "app.server").status is Status.FAIL  # not below the proof
    assert report.root_cause is not None and report.root_cause.id == "app.server"


def test_an_application_failure_above_a_working_connect_is_the_root_cause() -> None:
    # A container with only loopback and a 503 on it: the 503, not "no NIC".
    report = diagnose_now([host_check("nic", Layer.PHYSICAL, "NIC_MISSING"),
                           prover(Layer.TRANSPORT),
                           prover(Layer.APPLICATION, failed("HTTP_SERVER_ERROR", "503"),
                                  name="http")])
    assert report.root_cause is not None and report.root_cause.result.code == \
        "HTTP_SERVER_ERROR"


def test_through_a_working_proxy_the_direct_rungs_are_off_the_path() -> None:
    # Only the proxy may reach out: the direct connect to the target is filtered, the
    # request goes through the proxy. The gateway's rung is the path both share: kept.
    gateway = replace(make("gateway", Layer.NETWORK, failed("GATEWAY_UNREACHABLE", "v6 gw")),
                      path_part="gateway")
    direct = make("tcp", Layer.TRANSPORT, failed("TCP_FILTERED", "no answer to SYN"))
    via = prover(Layer.APPLICATION, passed("carried", proxy="http://198.18.2.70:3128"),
                 name="proxy")
    report = diagnose_now([gateway, direct, via])
    tcp = outcome(report, "transport.tcp")
    assert tcp.status is Status.WARN and "through the proxy http://198.18.2.70:3128" in \
        tcp.result.summary
    assert outcome(report, "network.gateway").status is Status.FAIL


def test_without_a_proxy_a_direct_failure_below_a_proof_stays() -> None:
    direct = make("tcp", Layer.TRANSPORT, failed("TCP_FILTERED", "no answer to SYN"))
    report = diagnose_now([direct, prover(Layer.APPLICATION, passed("200"), name="http")])
    assert outcome(report, "transport.tcp").status is Status.FAIL


def test_scope_is_declared_from_a_known_set() -> None:
    with pytest.raises(ValueError, match="scope"):
        registry.check("x.y", Layer.LINK, scope="elsewhere")


def test_builtin_declarations() -> None:
    checks = registry.load(third_party=False).by_id()
    assert {c for c, k in checks.items() if k.proves_flow} == {
        "transport.tcp", "http.proxy", "http.response", "app.protocol"}
    hosts = {c for c, k in checks.items() if k.scope == "host"}
    assert {"physical.nic", "network.service", "network.loopback", "link.others"} <= hosts
    assert not hosts & {"network.pmtu", "network.gateway", "link.carrier", "network.route"}


def test_what_the_deadline_cut_short_below_a_proof_is_a_skip_only_where_the_proof_covers_it(
        ) -> None:
    from netcheck.model import CheckOutcome, Result
    from netcheck.runner import top_down
    from netcheck.runner.schedule import UNFINISHED

    def cut(chk: Check) -> CheckOutcome:
        return CheckOutcome(chk.id, chk.layer, chk.title, Result(
            Status.ERROR, "not finished within the deadline (2 s)", evidence={UNFINISHED: 2.0}))

    gateway = replace(make("gateway", Layer.NETWORK), path_part="gateway")
    pmtu = make("pmtu", Layer.NETWORK)  # measures the path: a handshake does not prove it
    banner = make("banner", Layer.APPLICATION)  # above the proof: the exchange is not done
    proof = prover(Layer.TRANSPORT)
    checks = [gateway, pmtu, proof, banner]
    proved = CheckOutcome(proof.id, proof.layer, proof.title, passed("connected"))
    out = {o.id: o for o in top_down([cut(gateway), cut(pmtu), proved, cut(banner)], checks)}
    assert out[gateway.id].status is Status.SKIP
    assert "transport.proof proved the flow works" in out[gateway.id].result.summary
    assert out[pmtu.id].status is Status.ERROR
    assert out[banner.id].status is Status.ERROR
    # Without a proof, nothing changes.
    alone = top_down([cut(gateway), cut(pmtu)], [gateway, pmtu])
    assert [o.status for o in alone] == [Status.ERROR, Status.ERROR]


def test_the_probe_timeout_leaves_half_the_time_left() -> None:
    from netcheck.facts import Facts
    from netcheck.runner import Context, Options

    ctx = Context(None, Options(timeout=2.0, deadline=2.0), Facts())
    assert ctx.timeout <= (2.0 - 0.25) / 2 + 0.01
    roomy = Context(None, Options(timeout=2.0, deadline=15.0), Facts())
    assert roomy.timeout == 2.0
