"""A tcp:// port whose protocol has the client speak first costs no banner wait (issue 17).

The lab's silent web server on port 80 accepts and waits for a request, as HTTP servers do;
a port-80 server that talks first (binary) is still read and named. Real namespaces, the CLI
in the client, the application scenarios' servers.
"""

from __future__ import annotations

from typing import Iterator

import pytest

from netcheck.lab.scenarios import SCENARIOS  # noqa: F401  (first: gathers scenarios_app)
from netcheck.lab.scenarios_app import BINARY_80, SCENARIOS_LIST, SILENT_80, start_services
from netcheck.lab.topology import Lab
from netcheck.probes.banner import GENERIC_WAIT

from .conftest import lab_with, run_netcheck


@pytest.fixture(scope="module")
def app_lab(lab_support: None) -> Iterator[Lab]:
    """One lab with the application scenarios' hosts and the two port-80 servers."""
    for lab in lab_with(SCENARIOS_LIST):
        start_services(lab, SILENT_80, BINARY_80)
        yield lab


def test_silent_http_port_is_not_waited_on(app_lab: Lab) -> None:
    r = run_netcheck(app_lab, "tcp://silent.lab.test:80")
    banner = r.check("app.banner")
    assert r.verdict == "ok" and banner is not None and banner["status"] == "pass", r.explain()
    assert banner["evidence"]["client_first"] == "HTTP"
    assert banner["evidence"]["waited_ms"] == 0 and banner["evidence"]["heard"] == "empty"
    assert "waits for the client" in banner["summary"]
    # Before: the rung sat GENERIC_WAIT (0.5 s) on a greeting that never comes.
    assert banner["duration_ms"] < GENERIC_WAIT * 1000 / 2, banner


def test_port_80_that_talks_first_is_still_read(app_lab: Lab) -> None:
    r = run_netcheck(app_lab, "tcp://binary.lab.test:80")
    banner = r.check("app.banner")
    assert banner is not None and banner["status"] == "pass", r.explain()
    assert banner["evidence"]["heard"] == "binary" and "client_first" not in banner["evidence"]
