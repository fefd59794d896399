"""Captive portals for real: the router DNATs port 80 to a sign-in server and resets the rest
(a hotel), or DNS sends a name to the portal, which answers TLS with its own certificate.
netcheck must name the portal above the TCP, TLS and DNS failures it causes, give its URL to
open in a browser, and keep a free network ok.

Two labs: one with the hotel portal (it intercepts everything), one without router rules.
"""

from __future__ import annotations

from typing import Iterator

import pytest

from netcheck.lab.scenarios import SCENARIOS
from netcheck.lab.scenarios_portal import PORTAL_HOST, SCENARIOS_LIST
from netcheck.lab.topology import Lab

from .conftest import NetcheckRun, lab_with, run_netcheck
from .test_proxy import healthy

HOTEL = [s for s in SCENARIOS_LIST if s.name.startswith("portal_hotel_")]
SPOOFED = SCENARIOS["portal_spoofed_tls"]
OTHERS = [SCENARIOS["portal_dns_rewritten"], SCENARIOS["portal_free_network"]]
# What the portal causes below layer 7, scenario by scenario: the finding it outranks.
CAUSED = {"portal_hotel_https": ("transport.tcp", "TCP_REFUSED"),
          "portal_hotel_ssh": ("transport.tcp", "TCP_REFUSED"),
          "portal_dns_rewritten": ("tls.certificate", "TLS_CERT_HOSTNAME_MISMATCH"),
          "portal_spoofed_tls": ("tls.certificate", "TLS_CERT_HOSTNAME_MISMATCH")}


@pytest.fixture(scope="module")
def hotel_lab(lab_support: None) -> Iterator[Lab]:
    yield from lab_with(HOTEL)


@pytest.fixture(scope="module")
def plain_lab(lab_support: None) -> Iterator[Lab]:
    yield from lab_with(OTHERS)


def diagnose(lab: Lab, name: str) -> NetcheckRun:
    r = run_netcheck(lab, *SCENARIOS[name].netcheck_argv(lab))
    assert "Traceback" not in r.stderr, r.explain()
    return r


def _assert_portal(r: NetcheckRun, name: str) -> None:
    rc = r.root_cause or {}
    assert (r.verdict, rc.get("code"), rc.get("layer"), rc.get("check")) == (
        "broken", "CAPTIVE_PORTAL", 7, "app.portal"), r.explain()
    hint = rc.get("hint") or {}
    assert f"http://{PORTAL_HOST}/login" in hint["text"], r.explain()  # open it in a browser
    if name in CAUSED:  # the failure the portal causes is still reported, below it
        check_id, code = CAUSED[name]
        caused = r.check(check_id) or {}
        assert (caused.get("status"), caused.get("code")) == ("fail", code), r.explain()


@pytest.mark.parametrize("name", [s.name for s in HOTEL])
def test_hotel_portal_is_named_above_what_it_breaks(hotel_lab: Lab, name: str) -> None:
    _assert_portal(diagnose(hotel_lab, name), name)


def test_portal_that_spoofs_tls_is_named_above_the_certificate(lab: Lab) -> None:
    SPOOFED.apply(lab)
    r = diagnose(lab, SPOOFED.name)
    _assert_portal(r, SPOOFED.name)
    assert (r.check("app.portal") or {})["evidence"]["how"] == "tls_other_name", r.explain()


def test_portal_that_rewrites_dns_is_named_above_the_certificate(plain_lab: Lab) -> None:
    r = diagnose(plain_lab, "portal_dns_rewritten")
    _assert_portal(r, "portal_dns_rewritten")
    assert (r.check("app.portal") or {})["evidence"]["how"] == "dns_rewritten", r.explain()


def test_free_network_with_a_check_url_is_ok(plain_lab: Lab) -> None:
    r = diagnose(plain_lab, "portal_free_network")
    assert healthy(r), r.explain()
    portal = r.check("app.portal") or {}
    assert portal["status"] == "pass" and "204" in portal["summary"], r.explain()


def test_text_report_says_portal_and_its_url(hotel_lab: Lab) -> None:
    r = run_netcheck(hotel_lab, *SCENARIOS["portal_hotel_https"].netcheck_argv(hotel_lab),
                     fmt="text")
    assert "CAPTIVE_PORTAL" in r.stdout and f"http://{PORTAL_HOST}/login" in r.stdout, r.stdout


def test_portal_is_named_in_spanish_and_catalan(hotel_lab: Lab) -> None:
    for lang, word in (("es", "portal cautivo"), ("ca", "portal captiu")):
        r = run_netcheck(hotel_lab, *SCENARIOS["portal_hotel_https"].netcheck_argv(hotel_lab),
                         "--lang", lang)
        rc = r.root_cause or {}
        assert rc.get("code") == "CAPTIVE_PORTAL" and word in rc["summary"], r.explain()
