"""The server checks on this host's loopback only: real listening sockets, a literal nft
ruleset, the recorded nginx log, and the whole run validated against the netcheck/1 schema.

The snapshot (Facts) holds only ``lo`` and one documentation address that no probe is sent
to, so nothing leaves the host.
"""

from __future__ import annotations

import asyncio
import json
import socket
import subprocess
import time
from pathlib import Path
from typing import Any, Iterator

import pytest
from netcheck.checks import server as srv

from netcheck import registry
from netcheck.facts import Addr, Facts, Link
from netcheck.model import Status
from netcheck.probes import firewall
from netcheck.probes.logs import access_time
from netcheck.runner import Context, diagnose
from netcheck.server.command import select_checks
from netcheck.server.options import ServerOptions
from tests.schema import validate_report

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "logs"
NGINX = FIXTURES / "nginx-access.log"
LO = Link(1, "lo", 0x49, "UNKNOWN", 65536)
ETH = Link(2, "eth0", 0x1043, "UP", 1500)
LOOPBACK_ONLY = Facts(links=[LO], addresses=[Addr(1, socket.AF_INET, "127.0.0.1", 8, 254, 0),
                                             Addr(1, socket.AF_INET6, "::1", 128, 254, 0)])
WITH_ETH = Facts(links=[LO, ETH], addresses=[*LOOPBACK_ONLY.addresses,
                                             Addr(2, socket.AF_INET, "198.18.2.10", 24, 0, 0)])


def free_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return int(port)


def listener(family: int, host: str, v6only: int | None = None) -> socket.socket:
    s = socket.socket(family, socket.SOCK_STREAM)
    if v6only is not None:
        s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, v6only)
    s.bind((host, 0))
    s.listen(4)
    return s


def run(check: Any, facts: Facts = LOOPBACK_ONLY, **options: Any) -> Any:
    ctx = Context(None, ServerOptions(**options), facts)

    async def go() -> Any:
        return await check(ctx)

    return asyncio.run(go())


@pytest.fixture
def loopback_listener() -> Iterator[socket.socket]:
    s = listener(socket.AF_INET, "127.0.0.1")
    yield s
    s.close()


# -- transport.listen ------------------------------------------------------------------------

def test_nothing_listening(monkeypatch: pytest.MonkeyPatch) -> None:
    result = run(srv.port_listening, port=free_port())
    assert result.status is Status.FAIL and result.code == "SRV_NOT_LISTENING"
    assert result.hint.commands[-1].startswith("ss -tlnp 'sport = :")


def test_loopback_only_listener(loopback_listener: socket.socket) -> None:
    port = loopback_listener.getsockname()[1]
    result = run(srv.port_listening, port=port)
    assert result.status is Status.FAIL and result.code == "SRV_LISTEN_LOOPBACK_ONLY"
    assert f"127.0.0.1:{port}" in result.summary and "python" in result.summary
    assert result.evidence["ss"][0].startswith("LISTEN")


def test_loopback_only_is_fine_for_a_local_client(loopback_listener: socket.socket) -> None:
    result = run(srv.port_listening, port=loopback_listener.getsockname()[1],
                 client="127.0.0.1")
    assert result.status is Status.PASS


def test_dual_stack_and_ipv6_only_wildcards_are_told_apart() -> None:
    dual = listener(socket.AF_INET6, "::", 0)
    v6 = listener(socket.AF_INET6, "::", 1)
    try:
        both = run(srv.port_listening, port=dual.getsockname()[1])
        assert both.status is Status.PASS and "dual-stack" in both.summary
        assert "refused" not in both.summary
        only6 = run(srv.port_listening, port=v6.getsockname()[1])
        assert "IPv6 only" in only6.summary and "IPv4 clients are refused" in only6.summary
        for_v4 = run(srv.port_listening, port=v6.getsockname()[1], client="198.18.1.2")
        assert for_v4.status is Status.FAIL and for_v4.code == "SRV_NOT_LISTENING"
        assert "IPv4" in for_v4.summary
    finally:
        dual.close()
        v6.close()


def test_udp_port(monkeypatch: pytest.MonkeyPatch) -> None:
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("127.0.0.1", 0))
    try:
        result = run(srv.port_listening, port=s.getsockname()[1], proto="udp")
        assert result.code == "SRV_LISTEN_LOOPBACK_ONLY"
        hs = run(srv.local_handshake, port=s.getsockname()[1], proto="udp")
        assert hs.status is Status.SKIP and "UDP" in hs.summary
    finally:
        s.close()


# -- transport.local_handshake ---------------------------------------------------------------

def test_local_handshake_reaches_each_bound_address_with_its_rtt() -> None:
    dual = listener(socket.AF_INET6, "::", 0)
    try:
        result = run(srv.local_handshake, port=dual.getsockname()[1])
        assert result.status is Status.PASS
        rows = {r["address"]: r for r in result.evidence["handshakes"]}
        assert rows["127.0.0.1"]["state"] == "open" and rows["::1"]["state"] == "open"
        assert result.evidence["rtt_ms"] < 50
    finally:
        dual.close()


def test_local_handshake_shows_the_addresses_that_refuse(
        loopback_listener: socket.socket) -> None:
    v6 = listener(socket.AF_INET6, "::1", 1)
    try:
        port = v6.getsockname()[1]
        result = run(srv.local_handshake, port=port)
        rows = {r["address"]: r for r in result.evidence["handshakes"]}
        assert rows["::1"]["state"] == "open" and rows["::1"]["expected"]
        assert rows["127.0.0.1"]["state"] == "refused" and not rows["127.0.0.1"]["expected"]
        assert result.status is Status.PASS and "refused (not bound there)" in result.summary
    finally:
        v6.close()


# -- transport.inbound_firewall (a literal ruleset; nothing is read from this host) ----------

def _ruleset(port: int, policy: str = "accept", rule: bool = True) -> firewall.Ruleset:
    doc: dict[str, Any] = {"nftables": [
        {"metainfo": {"version": "1.0.6", "json_schema_version": 1}},
        {"table": {"family": "inet", "name": "filter", "handle": 1}},
        {"chain": {"family": "inet", "table": "filter", "name": "input", "handle": 1,
                   "type": "filter", "hook": "input", "prio": 0, "policy": policy}},
    ]}
    if rule:
        doc["nftables"].append({"rule": {
            "family": "inet", "table": "filter", "chain": "input", "handle": 7,
            "expr": [{"match": {"op": "==", "left": {"meta": {"key": "iifname"}},
                                "right": "eth0"}},
                     {"match": {"op": "==", "left": {"payload": {"protocol": "tcp",
                                                                 "field": "dport"}},
                                "right": port}},
                     {"counter": {"packets": 0, "bytes": 0}}, {"drop": None}]}})
    return firewall.parse_nft_json(json.dumps(doc))


@pytest.fixture
def rules(monkeypatch: pytest.MonkeyPatch) -> Any:
    monkeypatch.setattr(firewall, "has_cap_net_admin", lambda: True)
    monkeypatch.setattr(firewall, "_rule_text_from_nft", lambda rule, timeout: None)

    def use(ruleset: firewall.Ruleset) -> None:
        monkeypatch.setattr(firewall, "read_ruleset", lambda timeout=3.0: ruleset)

    return use


def test_input_rule_that_drops_the_port_is_quoted(rules: Any) -> None:
    port = free_port()
    rules(_ruleset(port))
    result = run(srv.inbound_firewall, WITH_ETH, port=port, client="198.18.1.2")
    assert result.status is Status.FAIL and result.code == "SRV_FW_INPUT_BLOCK"
    assert 'iifname "eth0" tcp dport' in result.summary and "(handle 7)" in result.summary
    assert "nft delete rule inet filter input handle 7" in result.hint.commands
    assert (f"nft insert rule inet filter input position 7 ip daddr 198.18.2.10 tcp dport "
            f"{port} accept") in result.hint.commands


def test_input_policy_drop_without_an_accept(rules: Any) -> None:
    port = free_port()
    rules(_ruleset(port, policy="drop", rule=False))
    result = run(srv.inbound_firewall, WITH_ETH, port=port)
    assert result.code == "SRV_FW_INPUT_BLOCK" and "policy drop" in result.summary
    assert result.hint.commands == [
        f"nft add rule inet filter input ip daddr 198.18.2.10 tcp dport {port} accept"]


def test_input_rules_for_another_port_pass(rules: Any) -> None:
    port = free_port()
    rules(_ruleset(port + 1 if port < 65535 else port - 1))
    result = run(srv.inbound_firewall, WITH_ETH, port=port)
    assert result.status is Status.PASS and "198.18.2.10" in result.summary


def test_without_cap_net_admin_the_firewall_check_skips(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(firewall, "has_cap_net_admin", lambda: False)
    result = run(srv.inbound_firewall, WITH_ETH, port=443)
    assert result.status is Status.SKIP and "needs root" in result.summary


# -- app.process -------------------------------------------------------------------------------

def test_missing_process() -> None:
    result = run(srv.service_process, port=free_port(), process="php-fpm8.2")
    assert result.status is Status.FAIL and result.code == "SRV_PROCESS_MISSING"
    assert "pgrep -a php-fpm8.2" in result.hint.commands


def test_running_process_with_user_and_uptime() -> None:
    child = subprocess.Popen(["sleep", "30"])
    try:
        time.sleep(0.05)
        result = run(srv.service_process, port=free_port(), process="sleep")
        assert result.status is Status.PASS
        pids = [p["pid"] for p in result.evidence["running"]]
        assert child.pid in pids
        mine = next(p for p in result.evidence["running"] if p["pid"] == child.pid)
        assert mine["user"] and mine["uptime"]
    finally:
        child.kill()
        child.wait()


def test_the_owner_of_the_port_is_described(loopback_listener: socket.socket) -> None:
    result = run(srv.service_process, port=loopback_listener.getsockname()[1])
    assert result.status is Status.PASS and "user" in result.summary


# -- app.request_log (the recorded nginx log) --------------------------------------------------

def _log_run(**options: Any) -> Any:
    recorded = access_time(NGINX.read_bytes().splitlines()[0]) or 0.0
    since = time.time() - recorded + 3600
    return run(srv.request_log, port=free_port(), log=str(NGINX), since_s=since,
               since_text="long", **options)


def test_request_found_by_its_id() -> None:
    result = _log_run(search_id="5f2a9c1e7b30")
    assert result.status is Status.PASS and "found" in result.summary
    line = result.evidence["access"]["lines"][0]
    assert line["client"] == "198.18.1.2" and line["status"] == 200


def test_request_answered_503_is_srv_log_errors() -> None:
    result = _log_run(search_id="9c03e7d1aa42")
    assert result.status is Status.WARN and result.code == "SRV_LOG_ERRORS"
    assert "3 answered 5xx" in result.summary
    assert any(c.startswith("grep -F 9c03e7d1aa42 ") for c in result.hint.commands)


def test_request_never_seen() -> None:
    result = _log_run(search_id="ffffffffffff")
    assert result.status is Status.PASS and result.summary.startswith("NOT found")


def test_no_filter_counts_a_5xx_burst() -> None:
    result = _log_run()
    assert result.status is Status.WARN and result.code == "SRV_LOG_ERRORS"
    assert "3 of 9 requests" in result.summary


def test_the_units_journal_is_searched(monkeypatch: pytest.MonkeyPatch) -> None:
    from netcheck.probes import systemd

    monkeypatch.setattr(systemd, "not_running_reason", lambda procfs="/proc", **_: None)
    monkeypatch.setattr(systemd, "journal_reason", lambda procfs="/proc": None)
    monkeypatch.setattr(systemd, "show", lambda unit, timeout=2.0, user=False:
                        systemd.UnitState(unit, "loaded", "active", "running"))
    lines = ['2026-11-22T02:43:18+0000 www app[9]: 198.18.1.2 "GET / HTTP/1.1" 502 '
             '"netcheck/0.1.0 (+5f2a9c1e7b30)"']

    def journal(unit: str, since: Any = None, n: int = 10, timeout: float = 2.0,
                priority: Any = None, max_bytes: int = 0) -> list[str]:
        return [] if priority else lines

    monkeypatch.setattr(systemd, "journal", journal)
    result = run(srv.request_log, port=free_port(), log="journal", service="app.service",
                 search_id="5f2a9c1e7b30")
    assert result.status is Status.WARN and result.code == "SRV_LOG_ERRORS"
    assert "app.service's journal" in result.summary
    assert result.evidence["journal"]["matched"] == 1


def test_journal_without_systemd_is_a_skip() -> None:
    result = run(srv.request_log, port=free_port(), log="journal", service="app.service",
                 procfs="/nonexistent")
    assert result.status is Status.SKIP and "journal" in result.summary


def test_no_log_found_is_a_skip_that_says_how() -> None:
    result = run(srv.request_log, port=free_port(), search_id="abcd1234")
    assert result.status is Status.SKIP and "--log" in result.summary


# -- the whole server run ----------------------------------------------------------------------

def test_server_run_is_a_valid_netcheck_1_document(loopback_listener: socket.socket) -> None:
    reg = registry.load(third_party=False)
    checks = [c for c in select_checks(reg) if c.modes == ("server",)]  # server checks only
    port = loopback_listener.getsockname()[1]
    target = {"input": f"server --port {port}", "scheme": None, "host": None, "port": port,
              "addresses": []}
    report = asyncio.run(diagnose(None, ServerOptions(port=port, deadline=10), checks,
                                  mode="server", facts=LOOPBACK_ONLY, report_target=target))
    doc = report.to_json()
    validate_report(doc)
    assert doc["mode"] == "server" and doc["target"] == target
    assert doc["root_cause"]["code"] == "SRV_LISTEN_LOOPBACK_ONLY"
    assert report.verdict.exit_code == 2


def test_server_checks_run_only_in_server_mode() -> None:
    reg = registry.load(third_party=False)
    ids = {c.id for c in reg.for_mode("diagnose")}
    assert not ids & {"transport.listen", "transport.inbound_firewall",
                      "transport.local_handshake", "app.service_unit", "app.process",
                      "app.request_log"}
    chosen = [c.id for c in select_checks(reg)]
    assert "network.gateway" in chosen and "network.target" not in chosen
    assert "dns.resolution" not in chosen and "transport.tcp" not in chosen
