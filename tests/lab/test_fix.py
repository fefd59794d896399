"""``netcheck fix`` for real, inside the lab: each repair heals its fault and is kept; every way
of not keeping it puts the host back exactly as it was.

"Exactly" is compared, before and after, in the namespace netcheck ran in: interfaces (state,
MTU), addresses, routes of every table, policy rules, static neighbour entries, the nft
ruleset (iptables-nft rules included; counters are not configuration), the reverse-path
filter settings, resolv.conf and hosts. The neighbour *cache* (REACHABLE, STALE...) is not
configuration and changes with any packet, so only static entries count.

The client's DHCP lease (systemd-networkd's format, /run/systemd/netif/leases/2) names the
lab's router and name server, as a real lease would: the repairs of the gateway and the
resolver must still prove them before using them. NetworkManager and systemd-networkd are
not run in the lab (systemd is not PID 1 here); their argv are covered by
tests/unit/test_fix_plan.py.
"""

from __future__ import annotations

import json
import os
import pty
import re
import select
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Iterator, Optional

import pytest

from netcheck.lab import view
from netcheck.lab.scenarios import SCENARIOS
from netcheck.lab.topology import Lab, isolated
from tests.fix_schema import validate_fix

LEASE = "ADDRESS=198.18.1.2\nNETMASK=255.255.255.0\nROUTER=198.18.1.1\nDNS=198.18.3.53\n"
LITERAL = "tcp://198.18.2.10:22"
NAMED = "tcp://www.lab.test:22"
COUNTERS = re.compile(r"counter packets \d+ bytes \d+")


@pytest.fixture
def fix_dir(tmp_path: Path) -> Path:
    """A journal directory of the test's own (NETCHECK_FIX_DIR), not /var/lib/netcheck."""
    return tmp_path / "fix"


def _env(fix_dir: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.lower().endswith("_proxy")}
    env["NETCHECK_FIX_DIR"] = str(fix_dir)
    return env


def run_fix(lab: Lab, fix_dir: Path, *args: str, role: str = "client",
            timeout: float = 120) -> tuple[int, dict[str, Any], str]:
    """``netcheck fix ARGS --format json`` (server mode: ``netcheck server ... --fix``) in the
    lab; (exit status, the validated netcheck-fix/1 document, stderr)."""
    words = ["fix", *args] if role == "client" else [*args, "--fix"]
    proc = lab.exec(role, [sys.executable, "-m", "netcheck", *words, "--format", "json"],
                    timeout=timeout, env=_env(fix_dir))
    try:
        doc = json.loads(proc.stdout)
    except ValueError:
        pytest.fail(f"stdout is not one JSON document (rc {proc.returncode}):\n{proc.stdout}\n"
                    f"--- stderr\n{proc.stderr}")
    validate_fix(doc)
    return proc.returncode, doc, proc.stderr


def state(lab: Lab, role: str = "client") -> dict[str, Any]:
    """The network configuration of a namespace, as the rollback tests compare it."""
    def out(*argv: str) -> str:
        return lab.exec(role, list(argv), check=True).stdout

    links = [{k: link.get(k) for k in ("ifname", "flags", "mtu", "address")}
             for link in json.loads(out("ip", "-j", "link", "show"))]
    return {
        "links": links,
        "addresses": out("ip", "-o", "addr", "show"),
        "routes": out("ip", "-4", "route", "show", "table", "all")
        + out("ip", "-6", "route", "show", "table", "all"),
        "rules": out("ip", "-4", "rule", "show") + out("ip", "-6", "rule", "show"),
        "neighbours": _static_neighbours(out("ip", "neigh", "show", "nud", "permanent")
                                         + out("ip", "neigh", "show", "nud", "noarp")),
        "nft": COUNTERS.sub("counter", out("nft", "list", "ruleset")),
        "rp_filter": out("sysctl", "-a", "--pattern", r"^net\.ipv4\.conf\..*\.rp_filter$"),
        "resolv.conf": out("cat", "/etc/resolv.conf"),
        "hosts": out("cat", "/etc/hosts"),
    }


def _static_neighbours(text: str) -> list[str]:
    """Entries someone set: the kernel's own NOARP ones (multicast groups, lo) are left out."""
    kept = []
    for line in text.splitlines():
        words = line.split()
        if not words or words[0].startswith(("ff", "224.", "239.", "0.0.0.0")):
            continue
        if "dev" in words and words[words.index("dev") + 1] == "lo":
            continue
        kept.append(line)
    return sorted(kept)


def assert_same(before: dict[str, Any], after: dict[str, Any]) -> None:
    for key in before:
        assert after[key] == before[key], f"{key} differs after the rollback"


def with_lease(lab: Lab) -> None:
    view.write_file(lab, "client", "/run/systemd/netif/leases/2", LEASE)


def _resolver_moved(lab: Lab) -> None:
    # The name server was renumbered; this host's hand-written resolv.conf still names the
    # old address, the lease has the new one.
    lab.write_client_file("resolv.conf", "search lab.test\nnameserver 198.18.3.99\n")


def _wrong_gateway_v6(lab: Lab) -> None:
    lab.ip("client", "-6", "route", "replace", "default", "via", "2001:db8:1::99", "dev", "eth0")


def _output_blocked_twice(lab: Lab) -> None:
    # Two tables drop port 22: an accept before the first rule still meets the second.
    for table in ("fw_a", "fw_b"):
        lab.nft("client", f"table inet {table} {{\n  chain output {{\n"
                          "    type filter hook output priority 0; policy accept;\n"
                          "    ip daddr 198.18.2.10 tcp dport 22 drop\n  }\n}\n")


# (scenario, netcheck arguments (None: the scenario's), the code repaired, with the lease)
KEPT = [
    ("client_interface_down", (NAMED, "-4"), "LINK_ADMIN_DOWN", True),
    ("loopback_down", None, "LOOPBACK_DOWN", False),
    ("no_default_route", None, "ROUTE_NO_DEFAULT", True),
    ("wrong_gateway", None, "GATEWAY_UNREACHABLE", True),
    ("gateway_off_link", None, "GATEWAY_NOT_ON_LINK", True),
    ("wrong_gateway_v6", ("tcp://[2001:db8:2::10]:22", "-6"), "GATEWAY_UNREACHABLE", False),
    ("gateway_static_neighbour", None, "GATEWAY_UNREACHABLE", False),
    ("reverse_path_filtered", None, "GATEWAY_UNREACHABLE", False),
    ("resolver_config_empty", None, "DNS_NO_RESOLVER", True),
    ("resolver_moved", (NAMED,), "DNS_RESOLVER_UNREACHABLE", True),
    ("hosts_override", None, "DNS_HOSTS_OVERRIDE", False),
    ("local_output_drop_port", None, "FW_LOCAL_OUTPUT_BLOCK", False),
    ("local_rule_in_jumped_chain", None, "FW_LOCAL_OUTPUT_BLOCK", False),
    ("local_iptables_rule", None, "FW_LOCAL_OUTPUT_BLOCK", False),
    ("input_chain_drops_replies", None, "FW_LOCAL_INPUT_BLOCK", False),
    ("narrow_link_pmtud_works", None, "MTU_MISMATCH", False),
    ("pmtu_blackhole", None, "PMTU_BLACKHOLE", False),
    ("server_input_drop", None, "SRV_FW_INPUT_BLOCK", False),
]
CUSTOM = {"resolver_moved": _resolver_moved, "wrong_gateway_v6": _wrong_gateway_v6}


@pytest.mark.parametrize("name,args,code,lease", KEPT, ids=[k[0] for k in KEPT])
def test_repair_heals_the_fault_and_is_kept(lab: Lab, fix_dir: Path, name: str,
                                            args: Optional[tuple[str, ...]], code: str,
                                            lease: bool) -> None:
    scenario = SCENARIOS.get(name)
    role = getattr(scenario, "role", "client")
    if lease:
        with_lease(lab)
    (CUSTOM[name] if name in CUSTOM else scenario.apply)(lab)  # type: ignore[union-attr]
    words = list(args) if args is not None else scenario.netcheck_argv(lab)  # type: ignore
    rc, doc, err = run_fix(lab, fix_dir, *words, "--yes", role=role)
    assert doc["before"]["root_cause"]["code"] == code, err
    assert (rc, doc["outcome"], doc["applied"], doc["kept"]) == (0, "repaired", True, True), \
        json.dumps(doc, indent=1)[:6000]
    assert doc["after"]["verdict"] == "ok", json.dumps(doc["after"]["root_cause"])
    assert doc["plan"] and all(s["do"] and s["undo"] and s["why"] for s in doc["plan"])
    # The journal says kept, so nothing (no watchdog, no --rollback) will undo it.
    lines = [json.loads(x) for x in Path(doc["journal"]).read_text().splitlines()]
    assert lines[-1] == {"type": "state", "state": "kept"}
    # Idempotent: run again, there is nothing left to repair.
    rc, again, _err = run_fix(lab, fix_dir, *words, "--yes", role=role)
    assert (rc, again["outcome"], again["applied"]) == (1, "nothing_to_repair", False)


def test_gateway_is_proved_without_a_lease(lab: Lab, fix_dir: Path) -> None:
    """No lease, no manager: the prefix's first address is only a candidate, used because
    it answered ARP and forwarded a SYN that the server answered."""
    SCENARIOS["no_default_route"].apply(lab)
    rc, doc, _err = run_fix(lab, fix_dir, LITERAL, "-4", "--yes")
    assert rc == 0, json.dumps(doc, indent=1)[:4000]
    proof = next(p for r in doc["repairs"] for p in r["proofs"] if p["proven"])
    assert proof["address"] == "198.18.1.1" and "198.18.1.0/24" in proof["source"]
    assert "SYN-ACK from 198.18.2.10 port 22" in proof["answer"]


def test_fault_beyond_this_host_changes_nothing(lab: Lab, fix_dir: Path) -> None:
    SCENARIOS["port_dropped"].apply(lab)
    before = state(lab)
    rc, doc, _err = run_fix(lab, fix_dir, LITERAL, "--yes")
    assert (rc, doc["outcome"], doc["applied"], doc["plan"]) == (1, "no_plan", False, [])
    assert doc["advice"]["code"] == "TCP_FILTERED"
    assert "netcheck server --port 22 --fix" in doc["advice"]["whom"]
    assert "TCP_FILTERED" in doc["advice"]["ticket"] and "198.18.2.10" in doc["advice"]["ticket"]
    assert_same(before, state(lab))
    assert not fix_dir.exists() or not list(fix_dir.glob("*.jsonl"))


def test_no_resolver_is_guessed(lab: Lab, fix_dir: Path) -> None:
    """The only name server the lease knows is the one that does not answer: no plan."""
    with_lease(lab)
    SCENARIOS["resolver_dropped"].apply(lab)
    before = state(lab)
    rc, doc, _err = run_fix(lab, fix_dir, NAMED, "--yes")
    assert (rc, doc["outcome"], doc["applied"]) == (1, "no_plan", False)
    assert doc["before"]["root_cause"]["code"] == "DNS_RESOLVER_UNREACHABLE"
    assert "does not guess" in doc["advice"]["reason"]
    assert_same(before, state(lab))


def test_plan_only_changes_nothing(lab: Lab, fix_dir: Path) -> None:
    with_lease(lab)
    SCENARIOS["wrong_gateway"].apply(lab)
    before = state(lab)
    rc, doc, _err = run_fix(lab, fix_dir, LITERAL, "-4", "--plan")
    assert (rc, doc["outcome"], doc["applied"]) == (1, "planned", False)
    assert doc["plan"][0]["do"] == "ip -4 route replace default via 198.18.1.1 dev eth0"
    assert doc["plan"][0]["undo"] == "ip -4 route replace default via 198.18.1.99 dev eth0"
    assert_same(before, state(lab))


def test_without_terminal_or_yes_nothing_is_applied(lab: Lab, fix_dir: Path) -> None:
    with_lease(lab)
    SCENARIOS["wrong_gateway"].apply(lab)
    before = state(lab)
    rc, doc, err = run_fix(lab, fix_dir, LITERAL, "-4")
    assert (rc, doc["outcome"], doc["applied"]) == (1, "declined", False)
    assert "no terminal to ask and no --yes" in err
    assert_same(before, state(lab))


def test_refuses_without_root_in_one_line(lab: Lab, fix_dir: Path) -> None:
    proc = lab.exec("client", ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups",
                               sys.executable, "-m", "netcheck", "fix", LITERAL],
                    env={**_env(fix_dir), "PYTHONDONTWRITEBYTECODE": "1"}, timeout=30)
    assert proc.returncode == 3
    assert proc.stderr.count("\n") == 1 and "needs root" in proc.stderr
    assert proc.stdout == ""


def test_repair_that_does_not_help_is_rolled_back(lab: Lab, fix_dir: Path) -> None:
    _output_blocked_twice(lab)
    before = state(lab)
    rc, doc, _err = run_fix(lab, fix_dir, LITERAL, "--yes")
    assert (rc, doc["outcome"], doc["applied"], doc["kept"], doc["rolled_back"]) == \
        (2, "rolled_back", True, False, True)
    assert doc["after"]["root_cause"]["code"] == "FW_LOCAL_OUTPUT_BLOCK"
    assert all(u["ok"] for u in doc["undone"]) and doc["undone"]
    assert_same(before, state(lab))


# -- a terminal: confirmation that does not come, and a netcheck that is killed ---------------

class Terminal:
    """``netcheck fix`` with a pseudo-terminal as stdin and stderr (the prompts), JSON on
    stdout."""

    def __init__(self, lab: Lab, fix_dir: Path, *args: str) -> None:
        master, slave = pty.openpty()
        argv = isolated(lab._in("client", [sys.executable, "-m", "netcheck", "fix", *args,
                                           "--format", "json"]))
        self.proc = subprocess.Popen(argv, stdin=slave, stderr=slave, stdout=subprocess.PIPE,
                                     env=_env(fix_dir), start_new_session=True)
        os.close(slave)
        self.master = master
        self.seen = ""

    def wait_for(self, text: str, timeout: float = 60, count: int = 1) -> str:
        """Read the terminal until ``text`` was shown ``count`` times."""
        deadline = time.monotonic() + timeout
        while self.seen.count(text) < count:
            left = deadline - time.monotonic()
            if left <= 0 or self.proc.poll() is not None and not select.select(
                    [self.master], [], [], 0)[0]:
                pytest.fail(f"never saw {text!r}; the terminal shows:\n{self.seen}")
            if select.select([self.master], [], [], min(left, 0.2))[0]:
                try:
                    self.seen += os.read(self.master, 4096).decode(errors="replace")
                except OSError:
                    continue
        return self.seen

    def type(self, text: str) -> None:
        os.write(self.master, text.encode())

    def finish(self, timeout: float = 90) -> tuple[int, dict[str, Any]]:
        out, _ = self.proc.communicate(timeout=timeout)
        os.close(self.master)
        doc = json.loads(out)
        validate_fix(doc)
        return self.proc.returncode, doc

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        try:
            os.close(self.master)
        except OSError:
            pass


@pytest.fixture
def broken_gateway(lab: Lab) -> Iterator[tuple[Lab, dict[str, Any]]]:
    with_lease(lab)
    SCENARIOS["wrong_gateway"].apply(lab)
    yield lab, state(lab)


def test_confirmation_that_does_not_come_rolls_back(broken_gateway: tuple[Lab, dict[str, Any]],
                                                    fix_dir: Path) -> None:
    lab, before = broken_gateway
    term = Terminal(lab, fix_dir, LITERAL, "-4", "--confirm-timeout", "2")
    try:
        term.wait_for("Apply these 1 step(s)? [y/N]")
        term.type("y\n")
        term.wait_for("Keep the change? [y/N] (undone in 2 s otherwise)")
        assert state(lab)["routes"] != before["routes"]  # applied, waiting
        rc, doc = term.finish()  # nobody answers
    finally:
        term.close()
    assert (rc, doc["outcome"], doc["applied"], doc["kept"]) == (2, "rolled_back", True, False)
    assert doc["after"]["verdict"] == "ok"  # it did help; it was not confirmed
    assert_same(before, state(lab))


def test_confirmed_on_the_terminal_is_kept(broken_gateway: tuple[Lab, dict[str, Any]],
                                           fix_dir: Path) -> None:
    lab, before = broken_gateway
    term = Terminal(lab, fix_dir, LITERAL, "-4")
    try:
        term.wait_for("Apply these 1 step(s)? [y/N]")
        term.type("y\n")
        term.wait_for("Keep the change? [y/N]")
        term.type("y\n")
        rc, doc = term.finish()
    finally:
        term.close()
    assert (rc, doc["outcome"], doc["kept"]) == (0, "repaired", True)
    assert "default via 198.18.1.1 dev eth0" in state(lab)["routes"]


def _watchdog_pid(seen: str) -> int:
    found = re.search(r"watchdog pid (\d+)", seen)
    assert found, seen
    return int(found.group(1))


def _until(predicate: Any, timeout: float = 20) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.1)
    return False


def test_killed_netcheck_is_rolled_back_by_its_watchdog(
        broken_gateway: tuple[Lab, dict[str, Any]], fix_dir: Path) -> None:
    lab, before = broken_gateway
    term = Terminal(lab, fix_dir, LITERAL, "-4", "--confirm-timeout", "120")
    try:
        term.wait_for("Apply these 1 step(s)? [y/N]")
        term.type("y\n")
        term.wait_for("Keep the change? [y/N]")
        assert state(lab)["routes"] != before["routes"]
        term.proc.send_signal(signal.SIGKILL)
        term.proc.wait()
    finally:
        term.close()
    journal = next(fix_dir.glob("*.jsonl"))

    def last_line() -> dict[str, Any]:
        return json.loads(journal.read_text().splitlines()[-1])

    assert _until(lambda: last_line() == {"type": "state", "state": "rolled_back"}), \
        "the watchdog did not roll back"
    assert_same(before, state(lab))
    rc, doc, _err = run_fix(lab, fix_dir, "--rollback")
    assert (rc, doc["outcome"]) == (1, "nothing_to_roll_back")


def test_killed_with_its_watchdog_then_rollback_replays_the_journal(
        lab: Lab, fix_dir: Path) -> None:
    """Two rounds (the hosts line, then this host's output rule), then netcheck and its
    watchdog are killed: the changes stay, a new repair refuses, --rollback undoes both."""
    SCENARIOS["hosts_override"].apply(lab)
    SCENARIOS["local_output_drop_port"].apply(lab)
    before = state(lab)
    term = Terminal(lab, fix_dir, NAMED, "-4", "--confirm-timeout", "120")
    try:
        term.wait_for("Apply these 1 step(s)? [y/N]")
        term.type("y\n")
        term.wait_for("Apply these 1 step(s)? [y/N]", count=2)
        term.type("y\n")
        seen = term.wait_for("Keep the change? [y/N]")
        os.kill(_watchdog_pid(seen), signal.SIGKILL)
        term.proc.send_signal(signal.SIGKILL)
        term.proc.wait()
    finally:
        term.close()
    left = state(lab)
    assert left["nft"] != before["nft"] and left["hosts"] != before["hosts"]
    # A new repair refuses while this one is left behind.
    rc, doc, _err = run_fix(lab, fix_dir, NAMED, "-4", "--yes")
    assert (rc, doc["outcome"]) == (3, "refused") and "--rollback" in doc["error"]
    rc, doc, _err = run_fix(lab, fix_dir, "--rollback")
    assert (rc, doc["outcome"], doc["rolled_back"]) == (0, "rolled_back", True)
    assert [u["step"] for u in doc["undone"]] == [2, 1]
    assert_same(before, state(lab))
    # The journal kept the old hosts file beside it, as the plan said.
    assert any(p.read_text() == before["hosts"] for p in fix_dir.glob("*.hosts.orig"))


def test_server_repair_that_does_not_help_is_rolled_back(lab: Lab, fix_dir: Path) -> None:
    """Server side: two tables drop port 22 inbound; the accept before the first rule meets
    the second, so the server's namespace is put back as it was."""
    for table in ("in_a", "in_b"):
        lab.nft("server", f"table inet {table} {{\n  chain input {{\n"
                          "    type filter hook input priority 0; policy accept;\n"
                          '    iifname "eth0" tcp dport 22 drop\n  }\n}\n')
    before = state(lab, "server")
    rc, doc, _err = run_fix(lab, fix_dir, "server", "--port", "22", "--client", "198.18.1.2",
                            "--yes", role="server")
    assert doc["before"]["mode"] == "server"
    assert doc["before"]["root_cause"]["code"] == "SRV_FW_INPUT_BLOCK"
    assert (rc, doc["outcome"], doc["applied"], doc["kept"]) == (2, "rolled_back", True, False)
    assert_same(before, state(lab, "server"))
