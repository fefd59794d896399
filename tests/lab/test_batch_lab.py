"""``netcheck batch`` in the lab's client: a helpdesk profile over working, closed, dropped
and misspelt targets, every result a valid netcheck/1 report, one resolver query per name.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any, Optional

import pytest

from netcheck.lab.topology import Lab
from tests.schema import validate_report

pytestmark = pytest.mark.lab

JUNIT_XSD = Path(__file__).resolve().parents[1] / "fixtures" / "junit" / "junit-10.xsd"

PROFILE = """\
# The lab room's view of the campus, as a helpdesk would write it.
[defaults]
timeout = 1
deadline = 8

[web]
ssh      = "tcp://www.lab.test:22"
http     = "tcp://www.lab.test:80"
alt      = "tcp://www.lab.test:2222"          # nothing listens: refused
firewall = "tcp://198.18.2.10:8443"           # the server's firewall drops it
missing  = "tcp://missing.lab.test:22"        # no such name

[policy]
telnet   = { target = "198.18.2.10", port = 23, scheme = "tcp", expect = "closed" }
smtp     = { target = "198.18.2.10", port = 22, scheme = "tcp", expect = "closed" }

[typos]
bad      = "exa mple"
odd      = { target = "198.18.2.10", prot = 22 }
"""

EXPECTED = {
    "web/ssh": ("ok", None), "web/http": ("ok", None),
    "web/alt": ("broken", "TCP_REFUSED"), "web/firewall": ("broken", "TCP_FILTERED"),
    "web/missing": ("broken", "DNS_NXDOMAIN"),
    "policy/telnet": ("ok", None), "policy/smtp": ("broken", "TCP_OPEN_UNEXPECTED"),
    "typos/bad": ("unknown", None), "typos/odd": ("unknown", None),
}


def write_profile(lab: Lab, text: str, name: str = "profile.toml") -> str:
    path = lab.state_dir / name
    path.write_text(text)
    return str(path)


def batch(lab: Lab, *args: str, stdin: Optional[str] = None,
          timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return lab.exec("client", [sys.executable, "-m", "netcheck", "batch", *args],
                    timeout=timeout, input=stdin)


def _code(result: dict[str, Any]) -> Optional[str]:
    rc = result.get("root_cause")
    return rc["code"] if rc else None


def test_helpdesk_profile_gives_each_target_its_verdict_and_root_cause(lab: Lab) -> None:
    lab.nft("server", "table inet batch {\n chain input {\n type filter hook input priority 0;"
            "\n tcp dport 8443 drop\n }\n}\n")
    path = write_profile(lab, PROFILE)
    proc = batch(lab, path, "--format", "json", "--concurrency", "8", "-4")
    doc = json.loads(proc.stdout)
    assert doc["schema"] == "netcheck-batch/1"
    names = ["web/ssh", "web/http", "web/alt", "web/firewall", "web/missing", "policy/telnet",
             "policy/smtp", "typos/bad", "typos/odd"]
    assert len(doc["results"]) == len(names)
    got = {}
    for name, result in zip(names, doc["results"]):
        validate_report(result)
        got[name] = (result["verdict"], _code(result))
    assert got == EXPECTED, proc.stderr
    assert proc.returncode == 2  # broken beats unknown (monitoring-plugins order)
    assert doc["summary"] == {**doc["summary"], "ok": 3, "broken": 4, "unknown": 2}
    assert f"{path}:18:" in proc.stderr and f"{path}:19:" in proc.stderr  # bad lines, by number
    telnet = doc["results"][5]
    tcp = next(c for c in telnet["checks"] if c["id"] == "transport.tcp")
    assert tcp["status"] == "pass" and tcp["evidence"]["observed"] == "TCP_REFUSED"


def test_targets_on_one_name_ask_the_resolver_once(lab: Lab) -> None:
    path = write_profile(lab, '[web]\n' + "".join(
        f'p{port} = "tcp://www.lab.test:{port}"\n' for port in (22, 80, 443, 2222, 2223)))
    proc = batch(lab, path, "--format", "ndjson", "--timeout", "1")
    docs = [json.loads(line) for line in proc.stdout.splitlines()]
    assert len(docs) == 5
    assert all(d["target"]["addresses"] for d in docs), proc.stderr
    queries = [line for line in lab.log("dns").splitlines() if "dns www.lab.test. A " in line]
    assert len(queries) == 1, queries


def test_junit_and_nagios_outputs_from_stdin(lab: Lab) -> None:
    import xmlschema

    stdin = "tcp://198.18.2.10:22\ntcp://198.18.2.10:2222\n# a comment\nnot a target\n"
    junit = batch(lab, "-", "--format", "junit", "--timeout", "1", stdin=stdin)
    xmlschema.XMLSchema(str(JUNIT_XSD)).validate(junit.stdout)
    root = ET.fromstring(junit.stdout)
    assert (root.get("tests"), root.get("failures"), root.get("errors")) == ("3", "1", "1")
    failure = root.find(".//failure")
    assert failure is not None and failure.get("type") == "TCP_REFUSED"
    assert "ss -tlnp" in (failure.text or "")  # the hint's commands travel with the failure
    nagios = batch(lab, "-", "--format", "nagios", "--timeout", "1", stdin=stdin)
    assert nagios.returncode == 2
    assert nagios.stdout.startswith("NETCHECK CRITICAL - 1 broken, 1 unknown of 3: ")
    assert "| ok=1;;;0 degraded=0;;;0 broken=1;;;0 unknown=1;;;0 time=" in nagios.stdout


def test_connect_sweep_of_many_addresses(lab: Lab) -> None:
    # The light mode (--only transport.tcp) over 50 server addresses, one listener for all.
    for i in range(1, 51):
        lab.add_server_address(f"198.18.2.{100 + i}")
    ready = lab.state_dir / "sweep.ready"
    lab.popen("server", [sys.executable, "-m", "netcheck.lab.servers", "tcp", "--ports", "8080",
                         "--bind", "0.0.0.0", "--ready", str(ready)], name="sweep")
    deadline = time.monotonic() + 10
    while not ready.exists():
        assert time.monotonic() < deadline, lab.log("sweep")
        time.sleep(0.02)
    stdin = "".join(f"tcp://198.18.2.{100 + i}:8080\n" for i in range(1, 51))
    proc = batch(lab, "-", "--format", "json", "--only", "transport.tcp", "--concurrency", "64",
                 stdin=stdin)
    doc = json.loads(proc.stdout)
    assert doc["summary"]["ok"] == 50, proc.stderr
    assert proc.returncode == 0
    for result in doc["results"]:
        assert [c["id"] for c in result["checks"]] == ["transport.tcp"]
