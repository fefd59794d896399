"""Proxies the way curl reads them: which variable (or option) sets the proxy for a URL, what
exempts it, what is ignored; which of a proxy's answers are its own refusals; and an https://
proxy for real on loopback (TLS to the proxy, then TLS to the server inside it).

Variables come from dicts built here, never from this process's environment.
"""

from __future__ import annotations

import asyncio
import socket
import ssl
from typing import Any, Iterator, Optional

import pytest
from netcheck.checks.middlebox import proxy_answer_problem

from netcheck.probes import http
from netcheck.probes.http import Hop, HttpResult, choose_proxy
from tests.unit import test_http
from tests.unit.test_http import Proxy

DEAD = "http://198.18.0.9:3128"


@pytest.mark.parametrize("scheme, env, source", [
    # http_proxy exists in lower case only: curl ignores HTTP_PROXY (httpoxy)
    ("http", {"http_proxy": DEAD}, "http_proxy"),
    ("http", {"HTTP_PROXY": DEAD}, None),
    ("http", {"HTTP_PROXY": DEAD, "all_proxy": DEAD}, "all_proxy"),
    ("https", {"https_proxy": DEAD, "HTTPS_PROXY": DEAD}, "https_proxy"),
    ("https", {"HTTPS_PROXY": DEAD}, "HTTPS_PROXY"),
    ("https", {"http_proxy": DEAD}, None),  # the http one is for http URLs only
    ("https", {"ALL_PROXY": DEAD}, "ALL_PROXY"),
    ("https", {"all_proxy": DEAD, "https_proxy": DEAD}, "https_proxy"),  # own scheme first
    ("https", {"https_proxy": "  "}, None),  # set but empty: unset
])
def test_the_variable_curl_would_read(scheme: str, env: dict[str, str],
                                      source: Optional[str]) -> None:
    choice = choose_proxy(scheme, "web.lab.test", 443, env)
    assert choice.source == source
    assert (choice.proxy is not None) is (source is not None)


def test_upper_case_http_proxy_is_said_to_be_ignored() -> None:
    choice = choose_proxy("http", "web.lab.test", 80, {"HTTP_PROXY": DEAD})
    assert choice.proxy is None and choice.ignored == ("HTTP_PROXY",)


def test_option_wins_over_variables_but_no_proxy_still_exempts() -> None:
    env = {"https_proxy": DEAD, "no_proxy": ".lab.test"}
    choice = choose_proxy("https", "web.example", 443, env, explicit="198.18.0.7:8080")
    assert choice.proxy is not None and (choice.source, choice.proxy.port) == ("--proxy", 8080)
    exempt = choose_proxy("https", "web.lab.test", 443, env, explicit="198.18.0.7:8080")
    assert exempt.proxy is None and exempt.bypass == "no_proxy"


def test_no_proxy_option_goes_direct_whatever_is_set() -> None:
    choice = choose_proxy("https", "web.lab.test", 443, {"https_proxy": DEAD},
                          explicit="198.18.0.7:8080", disabled=True)
    assert choice.proxy is None and choice.bypass == "--no-proxy"


def test_upper_case_no_proxy_names_itself() -> None:
    choice = choose_proxy("https", "web.lab.test", 443, {"ALL_PROXY": DEAD,
                                                         "NO_PROXY": "lab.test"})
    assert (choice.proxy, choice.source, choice.bypass) == (None, "ALL_PROXY", "NO_PROXY")


@pytest.mark.parametrize("value, socks", [
    ("socks5://bob:hunter2@198.18.0.8:1080", True),
    ("ftp://bob:hunter2@198.18.0.8", False),
    ("http://bob:hunter2@198.18.0.8:99999", False),
])
def test_an_unusable_setting_is_an_error_without_its_password(value: str, socks: bool) -> None:
    choice = choose_proxy("https", "web.lab.test", 443, {"https_proxy": value})
    assert choice.proxy is None and choice.error is not None
    assert "hunter2" not in choice.error and "hunter2" not in str(choice.to_json())
    assert ("SOCKS" in choice.error) is socks


def test_https_proxy_defaults_to_port_443_and_says_its_scheme() -> None:
    p = http.parse_proxy("https://alice:pw@198.18.0.8", "https_proxy")
    assert (p.scheme, p.port, p.display) == ("https", 443, "https://alice:***@198.18.0.8:443")


def _answer(status: Optional[int], *, from_proxy: bool = False, via: Optional[str] = None,
            proxy_status: Optional[str] = None) -> HttpResult:
    hop = Hop("https://web.lab.test/", status=status, from_proxy=from_proxy, via=via,
              proxy_status=proxy_status)
    return HttpResult("https://web.lab.test/", "ok", hops=[hop], status=status)


@pytest.mark.parametrize("scheme, answer, problem", [
    # CONNECT: anything but 2xx is the proxy's own answer
    ("https", _answer(407, from_proxy=True), ("PROXY_AUTH_REQUIRED", "auth")),
    ("https", _answer(403, from_proxy=True), ("PROXY_REFUSED", "forbidden")),
    ("https", _answer(502, from_proxy=True), ("PROXY_REFUSED", "upstream")),
    ("https", _answer(504, from_proxy=True), ("PROXY_REFUSED", "upstream")),
    ("https", _answer(405, from_proxy=True), ("PROXY_REFUSED", "refused")),
    ("https", _answer(403), None),  # through the tunnel: the server's 403
    # plain http: 407 is always the proxy's; 403/5xx only when the proxy made them itself
    ("http", _answer(407), ("PROXY_AUTH_REQUIRED", "auth")),
    ("http", _answer(502), ("PROXY_REFUSED", "upstream")),
    ("http", _answer(502, via="1.1 tinyproxy"), None),  # forwarded: the server's 502
    ("http", _answer(503, via="1.1 squid", proxy_status="ERR_CONNECT_FAIL 111"),
     ("PROXY_REFUSED", "upstream")),
    ("http", _answer(403, via="1.1 tinyproxy"), None),
    ("http", _answer(404), None),
    ("http", _answer(200), None),
    ("http", _answer(None), None),
])
def test_which_answers_are_the_proxys_own(scheme: str, answer: HttpResult,
                                          problem: Optional[tuple[str, str]]) -> None:
    assert proxy_answer_problem(answer, scheme) == problem


# -- an https:// proxy for real ------------------------------------------------------------------

class TlsProxy(Proxy):
    """The loopback proxy of test_http, spoken to over TLS (curl's HTTPS proxy)."""

    def __init__(self, context: ssl.SSLContext) -> None:
        self.context = context
        super().__init__()

    def _handle(self, conn: socket.socket) -> None:
        try:
            conn = self.context.wrap_socket(conn, server_side=True)
        except (OSError, ssl.SSLError):
            conn.close()
            return
        super()._handle(conn)


@pytest.fixture(scope="module")
def tls_proxy(pki: Any) -> Iterator[TlsProxy]:
    _, issued = pki
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(str(issued.cert), str(issued.key))
    proxy = TlsProxy(context)
    yield proxy
    proxy.close()


# The same lab CA and TLS application server as test_http's (fixtures, per module).
pki = test_http.pki
web_tls = test_http.web_tls


def _fetch(url: str, **kw: Any) -> HttpResult:
    return asyncio.run(http.fetch(url, timeout=1.0, deadline=5.0, **kw))


def test_https_through_an_https_proxy_is_tls_inside_tls(tls_proxy: TlsProxy, web_tls: int,
                                                         pki: Any) -> None:
    ca, _ = pki
    r = _fetch(f"https://127.0.0.1:{web_tls}/", cafile=str(ca.files.cert),
               env={"https_proxy": f"https://127.0.0.1:{tls_proxy.port}"})
    assert (r.outcome, r.status) == ("ok", 200), r.detail
    assert tls_proxy.requests[-1].startswith(f"CONNECT 127.0.0.1:{web_tls} ".encode())
    assert r.hops[0].tls and r.proxy == f"https://127.0.0.1:{tls_proxy.port}"


def test_an_https_proxy_whose_certificate_does_not_verify_is_a_proxy_failure(
        tls_proxy: TlsProxy, web_tls: int) -> None:
    r = _fetch(f"https://127.0.0.1:{web_tls}/",
               env={"https_proxy": f"https://127.0.0.1:{tls_proxy.port}"})  # no lab CA
    assert r.outcome == "proxy_failed" and "certificate of proxy" in (r.detail or "")


def test_a_proxy_silent_after_connect_is_a_proxy_failure() -> None:
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)  # accepts (the kernel does), never answers CONNECT
    try:
        r = _fetch("https://web.lab.test/",
                   env={"https_proxy": f"http://127.0.0.1:{listener.getsockname()[1]}"})
    finally:
        listener.close()
    assert r.outcome == "proxy_failed" and "CONNECT" in (r.detail or "")
