"""Every lab scenario breaks the network for real — proven with plain tools, without netcheck.

Each check below runs ping, dig, ip and a Python socket connect inside the client namespace (or,
to show the cause, another lab namespace) and asserts what a person at that machine would see.
If one of these fails, the lab is wrong, not netcheck.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import pytest

from netcheck.lab.scenarios import BASE_SCENARIOS as SCENARIOS
from netcheck.lab.topology import (
    DNS_V4,
    DNS_V6,
    ETC_NETNS,
    GATEWAY_V4,
    SERVER_V4,
    SERVER_V6,
    Lab,
    cleanup_stale,
    list_namespaces,
)

pytestmark = pytest.mark.lab

# connect() from the client, printing the outcome as an errno name: "ok", "timeout",
# "ECONNREFUSED", "EHOSTUNREACH", ...; for port 22 also the first line the server sent.
CONNECT = r"""
import errno, json, socket, sys, time
host, port, timeout = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
sock.settimeout(timeout)
start = time.monotonic()
greeting = ""
try:
    sock.connect((host, port))
    result = "ok"
    if len(sys.argv) > 4:
        sock.sendall(sys.argv[4].encode())
        greeting = sock.recv(4096).decode("latin-1").splitlines()[0]
except socket.timeout:
    result = "timeout"
except OSError as exc:
    result = errno.errorcode.get(exc.errno, str(exc))
print(json.dumps({"result": result, "elapsed": time.monotonic() - start, "greeting": greeting}))
"""


@dataclass
class Connect:
    result: str
    elapsed: float
    greeting: str


@dataclass
class Dig:
    status: str  # NOERROR, NXDOMAIN, SERVFAIL, REFUSED, or TIMEOUT / CONN_REFUSED on no answer
    answers: list[str]
    elapsed: float


def connect(lab: Lab, host: str, port: int, timeout: float = 1.0, send: str = "") -> Connect:
    """TCP connect from the client namespace."""
    argv = [sys.executable, "-c", CONNECT, host, str(port), str(timeout)] + ([send] if send else [])
    proc = lab.exec("client", argv, timeout=timeout + 10, check=True)
    return Connect(**json.loads(proc.stdout))


def ping(lab: Lab, host: str, *options: str, role: str = "client") -> bool:
    """One echo request, one second to answer."""
    return lab.exec(role, ["ping", "-c1", "-W1", *options, host], timeout=5).returncode == 0


def dig(lab: Lab, name: str, rtype: str = "A", server: str = DNS_V4, wait: int = 1,
        *options: str) -> Dig:
    """Ask the lab's DNS server directly (not through resolv.conf), one try."""
    argv = ["dig", f"@{server}", f"+time={wait}", "+tries=1", "+noall", "+comments", "+answer",
            *options, name, rtype]
    start = time.monotonic()
    proc = lab.exec("client", argv, timeout=wait + 10)
    elapsed = time.monotonic() - start
    text = proc.stdout + proc.stderr
    match = re.search(r"status: ([A-Z]+)", text)
    if match:
        status = match.group(1)
    elif "timed out" in text:
        status = "TIMEOUT"
    elif "connection refused" in text:
        status = "CONN_REFUSED"
    else:
        status = f"rc={proc.returncode}: {text.strip()}"
    answers = [line.split()[-1] for line in proc.stdout.splitlines()
               if line and not line.startswith(";")]
    return Dig(status, answers, elapsed)


def getent(lab: Lab, name: str) -> list[str]:
    """Addresses the client's system resolver (hosts file, then resolv.conf) gives for name."""
    proc = lab.exec("client", ["getent", "ahosts", name], timeout=10)
    return sorted({line.split()[0] for line in proc.stdout.splitlines()})


def link(lab: Lab, dev: str, role: str = "client") -> dict:
    """`ip -j link show` for one interface."""
    return json.loads(lab.ip(role, "-j", "link", "show", "dev", dev).stdout)[0]


def addresses(lab: Lab, dev: str) -> list[str]:
    """Addresses on a client interface, as address/prefixlen."""
    data = json.loads(lab.ip("client", "-j", "addr", "show", "dev", dev).stdout)[0]
    return sorted(f"{a['local']}/{a['prefixlen']}" for a in data.get("addr_info", []))


def route_get(lab: Lab, dst: str) -> subprocess.CompletedProcess[str]:
    """`ip -j route get DST` in the client (may fail: that is the point of some scenarios)."""
    return lab.ip("client", "-j", "route", "get", dst, check=False)


# -- what each scenario looks like to a person at the client ------------------------------------

def check_healthy(lab: Lab) -> None:
    ssh = connect(lab, SERVER_V4, 22, send="SSH-2.0-probe\r\n")
    assert ssh.result == "ok" and ssh.greeting.startswith("SSH-2.0-")
    assert connect(lab, SERVER_V6, 22).result == "ok"
    http = connect(lab, SERVER_V4, 80, send="GET / HTTP/1.0\r\nHost: www.lab.test\r\n\r\n")
    assert http.greeting == "HTTP/1.1 200 OK"
    assert connect(lab, SERVER_V6, 443).result == "ok"
    assert ping(lab, SERVER_V4) and ping(lab, SERVER_V6)
    assert dig(lab, "www.lab.test").answers == [SERVER_V4]
    assert dig(lab, "www.lab.test", "AAAA", DNS_V6, 1, "+tcp").answers == [SERVER_V6]
    assert dig(lab, "alias.lab.test").answers == ["www.lab.test.", SERVER_V4]
    assert dig(lab, "example.org").status == "REFUSED"  # authoritative only, no recursion
    assert getent(lab, "www.lab.test") == sorted([SERVER_V4, SERVER_V6])  # via resolv.conf


def check_client_interface_down(lab: Lab) -> None:
    assert "UP" not in link(lab, "eth0")["flags"]
    assert connect(lab, SERVER_V4, 22).result == "ENETUNREACH"
    assert not ping(lab, GATEWAY_V4)


def check_carrier_lost(lab: Lab) -> None:
    flags = link(lab, "eth0")["flags"]
    assert "UP" in flags and "NO-CARRIER" in flags
    assert "UP" not in link(lab, "r-client", role="router")["flags"]
    assert not ping(lab, GATEWAY_V4)


def check_no_address(lab: Lab) -> None:
    assert addresses(lab, "eth0") == []
    assert "UP" in link(lab, "eth0")["flags"]
    assert connect(lab, SERVER_V4, 22).result == "ENETUNREACH"


def check_link_local_only(lab: Lab) -> None:
    assert addresses(lab, "eth0") == ["169.254.23.5/16", "fe80::23:5/64"]
    assert route_get(lab, SERVER_V4).returncode != 0
    assert connect(lab, SERVER_V4, 22).result == "ENETUNREACH"


def check_duplicate_address(lab: Lab) -> None:
    shown = lab.ip("client", "-6", "addr", "show", "dev", "eth0").stdout
    assert "2001:db8:1::1/64" in shown and "dadfailed" in shown
    assert connect(lab, SERVER_V6, 22).result != "ok"
    assert connect(lab, SERVER_V4, 22).result == "ok"  # IPv4 is unaffected


def check_no_default_route(lab: Lab) -> None:
    assert lab.ip("client", "-4", "route", "show", "default").stdout.strip() == ""
    assert lab.ip("client", "-6", "route", "show", "default").stdout.strip() == ""
    assert ping(lab, GATEWAY_V4)  # the subnet still works
    assert connect(lab, SERVER_V4, 22).result == "ENETUNREACH"


def check_wrong_gateway(lab: Lab) -> None:
    assert json.loads(route_get(lab, SERVER_V4).stdout)[0]["gateway"] == "198.18.1.99"
    assert not ping(lab, "198.18.1.99")
    assert not ping(lab, SERVER_V4)
    assert ping(lab, GATEWAY_V4)  # the real router is there, just not used


def check_gateway_off_link(lab: Lab) -> None:
    route = json.loads(route_get(lab, SERVER_V4).stdout)[0]
    assert route["gateway"] == "198.18.9.1" and route["dev"] == "eth0"
    assert not ping(lab, SERVER_V4)


def check_blackhole_route(lab: Lab) -> None:
    got = route_get(lab, SERVER_V4)
    assert got.returncode != 0 and "Invalid argument" in got.stderr
    assert json.loads(lab.ip("client", "-j", "route", "show", "198.18.2.0/24").stdout)[0][
        "type"] == "blackhole"
    outcome = connect(lab, SERVER_V4, 22)
    assert outcome.result == "EINVAL" and outcome.elapsed < 0.5


def check_unreachable_route(lab: Lab) -> None:
    got = route_get(lab, SERVER_V4)
    assert got.returncode != 0 and "No route to host" in got.stderr
    outcome = connect(lab, SERVER_V4, 22)
    assert outcome.result == "EHOSTUNREACH" and outcome.elapsed < 0.5


def check_nothing_beyond_gateway(lab: Lab) -> None:
    assert ping(lab, GATEWAY_V4)
    assert not ping(lab, SERVER_V4)
    assert connect(lab, SERVER_V4, 22).result == "timeout"
    assert dig(lab, "www.lab.test").answers == [SERVER_V4]  # other networks still work


def check_loopback_down(lab: Lab) -> None:
    assert "UP" not in link(lab, "lo")["flags"]
    assert not ping(lab, "127.0.0.1")
    assert connect(lab, SERVER_V4, 22).result == "ok"  # the path to the server is fine


def check_resolver_config_empty(lab: Lab) -> None:
    resolv = lab.exec("client", ["cat", "/etc/resolv.conf"], check=True).stdout
    assert "nameserver" not in resolv
    assert getent(lab, "www.lab.test") == []
    assert dig(lab, "www.lab.test").answers == [SERVER_V4]  # the server itself is fine


def check_resolver_dropped(lab: Lab) -> None:
    assert dig(lab, "www.lab.test").status == "TIMEOUT"
    assert dig(lab, "www.lab.test", "A", DNS_V4, 1, "+tcp").status == "TIMEOUT"
    assert ping(lab, DNS_V4)


def check_resolver_rejected(lab: Lab) -> None:
    answer = dig(lab, "www.lab.test")
    assert answer.status == "CONN_REFUSED" and answer.elapsed < 0.9
    assert dig(lab, "www.lab.test", "AAAA", DNS_V6).status == "CONN_REFUSED"
    assert ping(lab, DNS_V4)


def check_dns_refused(lab: Lab) -> None:
    assert dig(lab, "www.lab.test").status == "REFUSED"
    assert getent(lab, "www.lab.test") == []


def check_dns_servfail(lab: Lab) -> None:
    assert dig(lab, "www.lab.test").status == "SERVFAIL"
    assert dig(lab, "www.lab.test", "AAAA", DNS_V4, 1, "+tcp").status == "SERVFAIL"


def check_nxdomain(lab: Lab) -> None:
    assert dig(lab, "missing.lab.test").status == "NXDOMAIN"
    assert getent(lab, "missing.lab.test") == []


def check_name_without_address(lab: Lab) -> None:
    for rtype in ("A", "AAAA"):
        answer = dig(lab, "noaddr.lab.test", rtype)
        assert answer.status == "NOERROR" and answer.answers == []
    assert dig(lab, "noaddr.lab.test", "TXT").answers  # the name does exist
    assert getent(lab, "noaddr.lab.test") == []


def check_slow_resolver(lab: Lab) -> None:
    answer = dig(lab, "www.lab.test", "A", DNS_V4, 3)
    assert answer.answers == [SERVER_V4] and answer.elapsed >= 0.75


def check_hosts_override(lab: Lab) -> None:
    assert getent(lab, "www.lab.test") == ["198.18.2.99"]
    assert dig(lab, "www.lab.test").answers == [SERVER_V4]
    assert connect(lab, "198.18.2.99", 22).result != "ok"


def check_port_closed(lab: Lab) -> None:
    assert connect(lab, SERVER_V4, 2222).result == "ECONNREFUSED"
    assert connect(lab, SERVER_V4, 22).result == "ok"


def check_port_dropped(lab: Lab) -> None:
    assert connect(lab, SERVER_V4, 22).result == "timeout"
    assert connect(lab, SERVER_V4, 80).result == "ok"
    assert ping(lab, SERVER_V4)


def check_port_admin_prohibited(lab: Lab) -> None:
    # With NAPI threads on the veths the ICMP error reaches connect() at once (STYLE.md).
    outcome = connect(lab, SERVER_V4, 22, timeout=3.0)
    assert outcome.result == "EHOSTUNREACH" and outcome.elapsed < 0.5
    outcome = connect(lab, SERVER_V6, 22, timeout=3.0)
    assert outcome.result == "EACCES" and outcome.elapsed < 0.5  # Linux: ICMPv6 adm-prohibited
    assert connect(lab, SERVER_V4, 80).result == "ok"


def check_pmtu_blackhole(lab: Lab) -> None:
    assert ping(lab, SERVER_V4, "-M", "do", "-s", "1000")
    assert not ping(lab, SERVER_V4, "-M", "do", "-s", "1400")
    assert connect(lab, SERVER_V4, 22).result == "ok"


def check_narrow_link_pmtud_works(lab: Lab) -> None:
    assert ping(lab, SERVER_V4, "-M", "do", "-s", "1000")
    probe = lab.exec("client", ["ping", "-n", "-c", "1", "-W", "1", "-M", "do", "-s", "1400",
                                SERVER_V4])
    assert probe.returncode != 0 and "mtu = 1280" in probe.stdout + probe.stderr


def check_ping_dropped_port_open(lab: Lab) -> None:
    assert not ping(lab, SERVER_V4) and not ping(lab, SERVER_V6)
    assert connect(lab, SERVER_V4, 22).result == "ok"
    assert connect(lab, SERVER_V6, 22).result == "ok"


def check_second_interface_down(lab: Lab) -> None:
    assert "UP" not in link(lab, "eth1")["flags"]
    assert json.loads(route_get(lab, SERVER_V4).stdout)[0]["dev"] == "eth0"
    assert getent(lab, "www.lab.test") == sorted([SERVER_V4, SERVER_V6])
    assert connect(lab, SERVER_V4, 22).result == "ok"


TOOL_CHECKS: dict[str, Callable[[Lab], None]] = {
    name: globals()[f"check_{name}"] for name in SCENARIOS if f"check_{name}" in globals()
}


def test_every_scenario_has_a_tool_level_check() -> None:
    assert sorted(TOOL_CHECKS) == sorted(SCENARIOS)


def test_scenarios_are_complete() -> None:
    for scenario in SCENARIOS.values():
        assert scenario.description.endswith((".", "?")) and scenario.symptom
        assert scenario.fix.endswith(".")
        assert scenario.target.startswith("tcp://")
        verdict, code, layer = scenario.expect
        if verdict == "ok":
            assert code is None and layer is None
        else:
            assert verdict in ("degraded", "broken") and code and layer in range(1, 8)


@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_scenario_fault_is_real(lab: Lab, name: str) -> None:
    SCENARIOS[name].apply(lab)
    TOOL_CHECKS[name](lab)


def test_dns_mode_switches_at_run_time(lab: Lab) -> None:
    assert dig(lab, "www.lab.test").status == "NOERROR"
    lab.set_dns_mode("servfail")
    assert dig(lab, "www.lab.test").status == "SERVFAIL"
    lab.set_dns_mode("normal")
    assert dig(lab, "www.lab.test").answers == [SERVER_V4]


def _gone(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return True
    return state == "Z"  # ended; waiting for its (re-)parent to reap it


def test_teardown_leaves_no_namespace_file_or_process(lab_support: None) -> None:
    lab = Lab().build()
    lab.popen("client", ["sleep", "60"], name="sleeper")
    pids, prefix = lab.pids, lab.prefix
    assert len(pids) == 3 and (ETC_NETNS / lab.ns("client") / "resolv.conf").exists()
    lab.teardown()
    assert [n for n in list_namespaces() if n.startswith(prefix + "-")] == []
    assert all(_gone(pid) for pid in pids)
    assert not (ETC_NETNS / lab.ns("client")).exists()
    assert not lab.state_dir.exists()
    lab.teardown()  # idempotent


def test_cleanup_stale_removes_only_labs_of_dead_processes(lab: Lab) -> None:
    # A process that builds a lab and dies without tearing it down (os._exit skips atexit).
    code = ("import os; from netcheck.lab.topology import Lab; lab = Lab().build(); "
            "print(lab.prefix, *lab.pids, flush=True); os._exit(0)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=30, check=True).stdout.split()
    stale_prefix, stale_pids = out[0], [int(pid) for pid in out[1:]]
    assert any(n.startswith(stale_prefix + "-") for n in list_namespaces())
    removed = cleanup_stale()  # may also remove other dead processes' labs: that is its job
    assert sorted(n for n in removed if n.startswith(stale_prefix + "-")) == sorted(
        f"{stale_prefix}-{role}" for role in ("client", "router", "server", "dns", "stub"))
    assert not any(n.startswith(stale_prefix + "-") for n in list_namespaces())
    deadline = time.monotonic() + 3
    while not all(_gone(pid) for pid in stale_pids) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert all(_gone(pid) for pid in stale_pids)
    # This (live) process's lab is untouched and still works.
    assert set(lab.namespaces.values()) <= set(list_namespaces())
    assert connect(lab, SERVER_V4, 22).result == "ok"


def _root_snapshot() -> dict[str, object]:
    """The root namespace's links, addresses, routes, rules, firewall and a few sysctls."""
    def ip_json(*args: str) -> object:
        out = subprocess.run(["ip", "-j", *args], capture_output=True, text=True, check=True)
        data = json.loads(out.stdout or "[]")
        for entry in data:  # counters and timers that move on their own
            for key in ("expires", "stats", "stats64", "used"):
                entry.pop(key, None)
            for addr in entry.get("addr_info", []):
                addr.pop("valid_life_time", None)
                addr.pop("preferred_life_time", None)
        return data

    nft = subprocess.run(["nft", "-j", "list", "ruleset"], capture_output=True, text=True)
    sysctls = {key: Path("/proc/sys", key.replace(".", "/")).read_text()
               for key in ("net.ipv4.ip_forward", "net.ipv6.conf.all.forwarding",
                           "net.ipv6.conf.default.accept_dad", "net.ipv4.icmp_ratelimit",
                           "net.ipv4.ping_group_range")}
    return {
        "links": ip_json("link", "show"),
        "addresses": ip_json("addr", "show"),
        "routes4": ip_json("-4", "route", "show", "table", "all"),
        "routes6": ip_json("-6", "route", "show", "table", "all"),
        "rules": ip_json("rule", "show"),
        "nft": nft.stdout,
        "sysctls": sysctls,
        "etc": [Path("/etc/resolv.conf").read_text(), Path("/etc/hosts").read_text()],
    }


def test_root_namespace_is_unchanged_by_a_lab(lab_support: None) -> None:
    before = _root_snapshot()
    with Lab() as lab:
        # Faults that touch links, MTU, offloads, routes, nft, resolver files and DNS modes.
        for name in ("pmtu_blackhole", "blackhole_route", "hosts_override", "dns_servfail",
                     "nothing_beyond_gateway", "carrier_lost"):
            SCENARIOS[name].apply(lab)
        during = _root_snapshot()
    after = _root_snapshot()
    assert during == before  # nothing of the lab ever appears in the root namespace
    assert after == before
