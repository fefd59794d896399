"""Captive portals judged from facts: one row per way a portal shows itself (and per way a
site that merely redirects does not), and NetworkManager's connectivity URL read as it
reads its files."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import pytest

from netcheck.probes.portal import CheckUrl, PortalFacts, Probe, check_url, judge

SIGN_IN = "http://portal.lab.test/login?url=x"
NM = CheckUrl("http://check.lab.test/", "/etc/NetworkManager/NetworkManager.conf",
              "NetworkManager is online")
MINE = CheckUrl("http://check.lab.test/generate_204", "--portal-url")


def probe(status: Optional[int], location: Optional[str] = None, body: str = "",
          outcome: str = "ok") -> Probe:
    host = location.split("/")[2] if location else None
    return Probe("http://web.lab.test/", outcome, status, location, host, body_start=body)


@pytest.mark.parametrize("facts, how", [
    # the connectivity check
    (PortalFacts("web.lab.test", NM, probe(302, SIGN_IN)), "check_redirect"),
    (PortalFacts("web.lab.test", MINE, probe(302, SIGN_IN)), "check_redirect"),
    (PortalFacts("web.lab.test", NM, probe(511)), "check_511"),
    (PortalFacts("web.lab.test", NM, probe(200, body="<html>Welcome, sign in")),
     "check_content"),
    (PortalFacts("web.lab.test", NM, probe(200, body="NetworkManager is online\\n")), None),
    (PortalFacts("web.lab.test", MINE, probe(204)), None),
    (PortalFacts("web.lab.test", MINE, probe(200, body="<html>anything")), None),  # unknown
    (PortalFacts("web.lab.test", CheckUrl("http://c/", "x", ""), probe(200)), "check_content"),
    (PortalFacts("web.lab.test", NM, probe(None, outcome="connect_failed")), None),
    # the target's own host
    (PortalFacts("web.lab.test", target_probe=probe(511)), "target_511"),
    (PortalFacts("web.lab.test", target_probe=probe(302, SIGN_IN), target_tls="reset"),
     "tls_reset"),
    (PortalFacts("web.lab.test", target_probe=probe(302, SIGN_IN), target_tls="silent"),
     "tls_silent"),
    (PortalFacts("web.lab.test", target_probe=probe(302, SIGN_IN), target_tls="other_name"),
     "tls_other_name"),
    (PortalFacts("news.lab.test", target_probe=probe(302, SIGN_IN), target_tls="other_name",
                 target_addresses=["198.18.2.80"], portal_addresses=["198.18.2.80"]),
     "dns_rewritten"),
    # a site's own redirects are not a portal
    (PortalFacts("web.lab.test", target_probe=probe(302, SIGN_IN), target_tls="ok"), None),
    # a private CA without --cafile, and port 80 sends to the single sign-on page
    (PortalFacts("web.lab.test", target_probe=probe(302, SIGN_IN), target_tls="untrusted"),
     None),
    (PortalFacts("web.lab.test", target_probe=probe(302, SIGN_IN)), None),
    (PortalFacts("web.lab.test", target_probe=probe(301, "https://web.lab.test/"),
                 target_tls="reset"), None),
    (PortalFacts("web.lab.test", target_probe=probe(200), target_tls="reset"), None),
    (PortalFacts("web.lab.test"), None),
])
def test_portal_judgement(facts: PortalFacts, how: Optional[str]) -> None:
    found = judge(facts)
    assert (found.how if found else None) == how


def test_the_portal_url_is_where_the_redirect_points() -> None:
    found = judge(PortalFacts("web.lab.test", target_probe=probe(302, SIGN_IN),
                              target_tls="reset"))
    assert found is not None and found.portal_url == SIGN_IN


def _write(root: Path, rel: str, text: str) -> None:
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def test_network_manager_url_snippets_override_the_main_file(tmp_path: Path) -> None:
    _write(tmp_path, "etc/NetworkManager/NetworkManager.conf",
           "[main]\nplugins=ifupdown\n[connectivity]\nuri=http://a.test/\n")
    _write(tmp_path, "usr/lib/NetworkManager/conf.d/20-connectivity.conf",
           "[connectivity]\nuri=http://b.test/check\nresponse=OK\n")
    found = check_url("http://mine.test/", str(tmp_path))
    assert found is not None
    assert (found.url, found.response) == ("http://b.test/check", "OK")
    assert found.source == "/usr/lib/NetworkManager/conf.d/20-connectivity.conf"


def test_a_snippet_in_etc_hides_the_same_name_elsewhere(tmp_path: Path) -> None:
    _write(tmp_path, "usr/lib/NetworkManager/conf.d/20-connectivity.conf",
           "[connectivity]\nuri=http://b.test/\n")
    _write(tmp_path, "etc/NetworkManager/conf.d/20-connectivity.conf",
           "# turned off here\n[connectivity]\nenabled=false\n")
    assert check_url(None, str(tmp_path)) is None


def test_without_network_manager_the_option_is_used(tmp_path: Path) -> None:
    found = check_url("http://mine.test/gen_204", str(tmp_path))
    assert found is not None and (found.url, found.source, found.response) == (
        "http://mine.test/gen_204", "--portal-url", None)
    assert check_url(None, str(tmp_path)) is None


def test_default_response_and_interval_zero(tmp_path: Path) -> None:
    _write(tmp_path, "etc/NetworkManager/NetworkManager.conf",
           "[connectivity]\nuri=http://a.test/\n")
    found = check_url(None, str(tmp_path))
    assert found is not None and found.response == "NetworkManager is online"
    _write(tmp_path, "etc/NetworkManager/conf.d/99-off.conf", "[connectivity]\ninterval=0\n")
    assert check_url(None, str(tmp_path)) is None
