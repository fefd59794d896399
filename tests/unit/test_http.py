"""The HTTP probe: parsing (status line, headers, chunked bodies, redirects, proxies) and real
fetches against the lab's application server on loopback, hostile routes included.

Everything talks to 127.0.0.1 only; proxy variables come from dicts built here, never from
the environment of the machine running the tests.
"""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from pathlib import Path
from typing import Any, Iterator, Optional

import pytest

from netcheck.lab.appserver import AppServer
from netcheck.probes import http
from netcheck.probes.http import (
    ChunkedDecoder,
    Headers,
    ProtocolError,
    UrlError,
    body_framing,
    bypass_proxy,
    could_be_http,
    mask_credentials,
    parse_head,
    parse_proxy,
    parse_status_line,
    proxy_for,
    resolve_location,
    split_url,
)

# -- status line and headers ------------------------------------------------------------------

@pytest.mark.parametrize("line, expected", [
    (b"HTTP/1.1 200 OK", ("1.1", 200, "OK")),
    (b"HTTP/1.0 404 Not Found\r", ("1.0", 404, "Not Found")),
    (b"HTTP/1.1 204", ("1.1", 204, "")),
    (b"HTTP/1.1 503 Service Temporarily Unavailable ", ("1.1", 503,
                                                       "Service Temporarily Unavailable")),
])
def test_status_lines_that_parse(line: bytes, expected: tuple[str, int, str]) -> None:
    assert parse_status_line(line) == expected


@pytest.mark.parametrize("line", [b"SSH-2.0-OpenSSH_9.2", b"HTTP/1.1 2000 OK", b"HTTP/1.1 099 x",
                                  b"http/1.1 200 OK", b"220 mail ESMTP", b"", b"HTTP/1.1 OK"])
def test_status_lines_that_do_not(line: bytes) -> None:
    with pytest.raises(ProtocolError):
        parse_status_line(line)


def test_headers_are_case_insensitive_repeatable_and_folded() -> None:
    head = parse_head(b"\r\nHTTP/1.1 301 Moved\r\nLocation: /a\r\nset-cookie: a=1\r\n"
                      b"Set-Cookie: b=2\r\nX-Long: one\r\n two\r\nthis line is junk\r\n"
                      b"Bad Name: x\r\nServer:  nginx/1.22 ")
    assert (head.status, head.reason, head.status_line) == (301, "Moved", "HTTP/1.1 301 Moved")
    assert head.headers.get("LOCATION") == "/a"
    assert head.headers.get_all("set-cookie") == ["a=1", "b=2"]
    assert head.headers.get("x-long") == "one two"
    assert head.headers.get("server") == "nginx/1.22"
    assert "Bad Name" not in head.headers and len(head.headers) == 5


@pytest.mark.parametrize("prefix, maybe", [
    (b"", True), (b"H", True), (b"HTT", True), (b"HTTP/1.1 2", True), (b"\r\nHTTP/1.", True),
    (b"HTTP/1.1 200 OK\r\n", True), (b"SSH-", False), (b"HTTP/x", False), (b"\x00\xff", False),
    (b"220 ", False), (b"HTTP/1.1 abc\r\n", False), (b"<html>", False),
])
def test_could_be_http_decides_on_the_first_bytes(prefix: bytes, maybe: bool) -> None:
    assert could_be_http(prefix) is maybe


@pytest.mark.parametrize("status, headers, expected", [
    (200, [("Transfer-Encoding", "chunked")], ("chunked", None)),
    (200, [("Transfer-Encoding", "gzip, chunked")], ("chunked", None)),
    (200, [("Transfer-Encoding", "gzip")], ("close", None)),
    (200, [("Content-Length", "42")], ("length", 42)),
    (200, [("Content-Length", "42, 42")], ("length", 42)),
    (200, [("Transfer-Encoding", "chunked"), ("Content-Length", "9")], ("chunked", None)),
    (204, [("Content-Length", "10")], ("none", 0)),
    (304, [], ("none", 0)),
    (200, [], ("close", None)),
])
def test_body_framing_follows_rfc_9112(status: int, headers: list[tuple[str, str]],
                                       expected: tuple[str, Optional[int]]) -> None:
    assert body_framing(status, Headers(headers)) == expected


@pytest.mark.parametrize("lengths", [["1", "2"], ["-1"], ["abc"]])
def test_bad_content_length_is_a_protocol_error(lengths: list[str]) -> None:
    with pytest.raises(ProtocolError):
        body_framing(200, Headers([("Content-Length", v) for v in lengths]))


# -- chunked bodies ----------------------------------------------------------------------------

CHUNKED = b"5\r\nhello\r\n7;ext=1\r\n, world\r\n0\r\nX-Trailer: yes\r\n\r\nNEXT"


def test_chunked_body_decodes_with_extensions_trailers_and_leftover() -> None:
    decoder = ChunkedDecoder()
    body = b"".join(decoder.feed(CHUNKED))
    assert body == b"hello, world" and decoder.done and decoder.leftover == b"NEXT"


def test_chunked_body_fed_byte_by_byte_gives_the_same() -> None:
    decoder = ChunkedDecoder()
    pieces = [p for i in range(len(CHUNKED)) for p in decoder.feed(CHUNKED[i:i + 1])]
    assert b"".join(pieces) == b"hello, world" and decoder.done


@pytest.mark.parametrize("data", [b"zz\r\n", b"5\r\nhelloXX\r\n", b"1" * 20 + b"\r\n",
                                  b"5" + b" " * 5000])
def test_malformed_chunking_raises(data: bytes) -> None:
    with pytest.raises(ProtocolError):
        ChunkedDecoder().feed(data)


def test_chunk_trailer_is_bounded() -> None:
    decoder = ChunkedDecoder(max_trailer=100)
    with pytest.raises(ProtocolError):
        decoder.feed(b"0\r\n" + b"X-A: b\r\n" * 50)


# -- URLs and redirects --------------------------------------------------------------------------

@pytest.mark.parametrize("base, location, expected", [
    ("http://web.lab.test/a/b", "/c", "http://web.lab.test/c"),
    ("http://web.lab.test/a/b", "c?x=1", "http://web.lab.test/a/c?x=1"),
    ("http://web.lab.test/a/b", "?q", "http://web.lab.test/a/b?q"),
    ("http://web.lab.test/a", "//other.lab.test/x", "http://other.lab.test/x"),
    ("http://web.lab.test/", "https://web.lab.test/old", "https://web.lab.test/old"),
    ("https://web.lab.test:8443/", "/x", "https://web.lab.test:8443/x"),
    ("http://web.lab.test/", "file:///etc/passwd", "file:///etc/passwd"),
])
def test_redirects_resolve_as_rfc_3986_says(base: str, location: str, expected: str) -> None:
    assert resolve_location(split_url(base), location) == expected


def test_split_url_normalises_host_port_and_path() -> None:
    parts = split_url("HTTP://user:secret@Web.Lab.Test:80/caf\u00e9?a=b#frag")
    assert (parts.scheme, parts.host, parts.port) == ("http", "web.lab.test", 80)
    assert parts.path == "/caf%C3%A9?a=b"
    assert parts.url == "http://web.lab.test/caf%C3%A9?a=b"  # no credentials, no fragment
    v6 = split_url("https://[2001:db8::1]:8443")
    assert (v6.host, v6.port, v6.path, v6.authority) == ("2001:db8::1", 8443, "/",
                                                         "[2001:db8::1]:8443")
    assert split_url("http://b\u00fccher.lab.test/").host == "xn--bcher-kva.lab.test"


@pytest.mark.parametrize("url", ["ftp://web.lab.test/", "file:///etc/passwd", "http:///x",
                                 "http://web.lab.test/a b", "http://web.lab.test:99999/",
                                 "http://we\nb/", "javascript:alert(1)"])
def test_unusable_urls_raise_url_error(url: str) -> None:
    with pytest.raises(UrlError):
        split_url(url)


def test_credentials_are_masked_wherever_they_are() -> None:
    assert mask_credentials("http://u:p@ss@proxy:3128/x") == "http://u:***@proxy:3128/x"
    assert mask_credentials("http://u@proxy/") == "http://u@proxy/"
    assert mask_credentials("proxy:3128") == "proxy:3128"


# -- proxies -----------------------------------------------------------------------------------

def test_proxy_variables_choose_by_scheme_lower_case_first() -> None:
    env = {"http_proxy": "http://198.18.0.8:3128", "HTTP_PROXY": "http://198.18.0.9:1",
           "HTTPS_PROXY": "198.18.0.7:8080"}
    p = proxy_for("http", "web.lab.test", 80, env)
    assert p is not None and (p.host, p.port, p.source) == ("198.18.0.8", 3128, "http_proxy")
    p = proxy_for("https", "web.lab.test", 443, env)
    assert p is not None and (p.host, p.port, p.source) == ("198.18.0.7", 8080, "HTTPS_PROXY")
    assert proxy_for("https", "web.lab.test", 443, {}) is None


@pytest.mark.parametrize("no_proxy, host, port, bypass", [
    ("*", "web.lab.test", 80, True),
    ("lab.test", "web.lab.test", 80, True),
    (".lab.test", "web.lab.test", 80, True),
    ("lab.test", "lab.test", 80, True),
    ("b.test", "lab.test", 80, False),  # a suffix of the text, not of the labels
    ("web.lab.test:8080", "web.lab.test", 80, False),
    ("web.lab.test:8080", "web.lab.test", 8080, True),
    ("198.18.0.0/15", "198.19.4.4", 80, True),
    ("198.18.0.0/16", "198.19.0.1", 80, False),
    ("2001:db8::/32", "2001:db8:2::30", 80, True),
    ("[2001:db8::1]:80", "2001:db8::1", 80, True),
    ("lab.test", "198.18.2.30", 80, False),  # names never match addresses
    ("  other.test , lab.test ", "web.lab.test", 80, True),
    ("", "web.lab.test", 80, False),
])
def test_no_proxy_as_curl_reads_it(no_proxy: str, host: str, port: int, bypass: bool) -> None:
    assert bypass_proxy(host, port, no_proxy) is bypass


def test_no_proxy_variable_exempts_and_upper_case_works() -> None:
    env = {"http_proxy": "198.18.0.8:3128", "NO_PROXY": "lab.test"}
    assert proxy_for("http", "web.lab.test", 80, env) is None
    assert proxy_for("http", "example.invalid", 80, env) is not None


def test_proxy_credentials_are_used_but_never_shown() -> None:
    p = parse_proxy("http://alice:s%40cret@198.18.0.8:3128", "https_proxy")
    assert p.display == "http://alice:***@198.18.0.8:3128"
    assert "cret" not in repr(p)
    assert p.authorization() == "Basic YWxpY2U6c0BjcmV0"  # alice:s@cret
    assert parse_proxy("198.18.0.8").port == 1080  # curl's default proxy port


@pytest.mark.parametrize("text", ["socks5://bob:hunter2@198.18.0.8:1080",
                                  "ftp://bob:hunter2@198.18.0.8", "http://bob:hunter2@:80",
                                  "http://bob:hunter2@198.18.0.8:99999"])
def test_unusable_proxy_is_an_error_without_its_password(text: str) -> None:
    with pytest.raises(UrlError) as info:
        parse_proxy(text, "http_proxy")
    assert "hunter2" not in str(info.value) and "http_proxy" in str(info.value)


def test_requests_origin_form_and_absolute_form() -> None:
    parts = split_url("http://web.lab.test:8080/a?b")
    plain = http.build_request(parts, "netcheck/1 (+id)")
    assert plain.startswith(b"GET /a?b HTTP/1.1\r\nHost: web.lab.test:8080\r\n")
    assert b"User-Agent: netcheck/1 (+id)\r\n" in plain and plain.endswith(b"\r\n\r\n")
    proxied = http.build_request(parts, "x", absolute=True, proxy_authorization="Basic Zm9v")
    assert proxied.startswith(b"GET http://web.lab.test:8080/a?b HTTP/1.1\r\n")
    assert b"Proxy-Authorization: Basic Zm9v\r\n" in proxied


def test_user_agent_carries_the_request_id() -> None:
    assert http.user_agent_for("c0ffee").endswith(" (+c0ffee)")
    assert http.user_agent_for("c0ffee").startswith("netcheck/")


def test_page_title_of_an_error_page() -> None:
    assert http.page_title(b"<html><head><TITLE>\n 503 Service\n Unavailable</TITLE>") == (
        "503 Service Unavailable")
    assert http.page_title(b"no title") is None


# -- real fetches on loopback --------------------------------------------------------------------

def _serve(server: AppServer) -> Iterator[int]:
    (_, port), = server.bind()
    stop = threading.Event()
    thread = threading.Thread(target=server.serve_forever, args=(stop,), daemon=True)
    thread.start()
    try:
        yield port
    finally:
        stop.set()
        thread.join(2)


@pytest.fixture(scope="module")
def web() -> Iterator[int]:
    """The lab's HTTP application server on a loopback port."""
    yield from _serve(AppServer("http", [("127.0.0.1", 0)], "127.0.0.1"))


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Any:
    from netcheck.lab.pki import LabCA

    ca = LabCA(Path(tmp_path_factory.mktemp("pki")))
    return ca, ca.issue("server", ["localhost", "127.0.0.1"])


@pytest.fixture(scope="module")
def web_tls(pki: Any) -> Iterator[int]:
    _, issued = pki
    yield from _serve(AppServer("http", [("127.0.0.1", 0)], "127.0.0.1", str(issued.cert),
                                str(issued.key)))


def fetch(url: str, **kw: Any) -> http.HttpResult:
    kw.setdefault("timeout", 1.0)
    kw.setdefault("deadline", 5.0)
    return asyncio.run(http.fetch(url, **kw))


def test_a_page_with_its_timings_and_server(web: int) -> None:
    r = fetch(f"http://127.0.0.1:{web}/", request_id="abc123")
    assert (r.outcome, r.status, r.reason) == ("ok", 200, "OK")
    assert r.server == "netcheck-lab-app/1.0" and r.size > 0 and not r.truncated
    hop = r.hops[0]
    assert {"connect_ms", "ttfb_ms", "transfer_ms", "total_ms"} <= set(hop.timings)
    assert r.user_agent.endswith("(+abc123)")
    assert r.to_json()["hops"][0]["status_line"] == "HTTP/1.1 200 OK"


def test_redirect_on_the_same_server_reuses_the_connection(web: int) -> None:
    r = fetch(f"http://127.0.0.1:{web}/old")
    assert [(h.status, h.connection) for h in r.hops] == [(301, "new"), (200, "reused")]
    assert r.hops[0].location == "/" and r.hops[0].next_url == f"http://127.0.0.1:{web}/"
    assert r.hops[1].address == "127.0.0.1" and "connect_ms" not in r.hops[1].timings
    assert "reused connection" in r.hops[1].wget_line()


def test_http_to_https_is_followed_and_named(web: int, web_tls: int, pki: Any) -> None:
    # The loopback https server is on another port than the redirect names: ask it directly
    # for /old (301 to /) and check the TLS phase and the reuse over TLS.
    ca, _ = pki
    r = fetch(f"https://127.0.0.1:{web_tls}/old", cafile=str(ca.files.cert))
    assert r.outcome == "ok" and [h.status for h in r.hops] == [301, 200]
    assert r.hops[0].tls and r.hops[0].tls["version"].startswith("TLS")
    assert "tls_ms" in r.hops[0].timings and r.hops[1].connection == "reused"


def test_untrusted_certificate_is_a_tls_failure(web_tls: int) -> None:
    r = fetch(f"https://127.0.0.1:{web_tls}/")
    assert r.outcome == "tls_failed" and "verify" in (r.detail or "")


def test_certificate_judged_elsewhere_can_be_left_unverified(web_tls: int) -> None:
    r = fetch(f"https://127.0.0.1:{web_tls}/", unverified_hosts=["127.0.0.1"])
    assert (r.outcome, r.status) == ("ok", 200)


def test_status_and_title_of_an_error_page(web: int) -> None:
    r = fetch(f"http://127.0.0.1:{web}/broken")
    assert (r.outcome, r.status) == ("ok", 503)
    assert r.hops[-1].title == "503 Service Temporarily Unavailable"


def test_redirect_loop_is_found_by_the_url_seen_twice(web: int) -> None:
    r = fetch(f"http://127.0.0.1:{web}/loop")
    assert r.outcome == "redirect_loop" and [h.status for h in r.hops] == [302, 302]
    assert r.hops[-1].next_url == f"http://127.0.0.1:{web}/loop"


def test_too_many_redirects(web: int) -> None:
    r = fetch(f"http://127.0.0.1:{web}/old", max_redirects=0)
    assert r.outcome == "too_many_redirects" and r.status == 301


def test_redirect_to_another_scheme_is_never_followed(web: int) -> None:
    r = fetch(f"http://127.0.0.1:{web}/to-file")
    assert r.outcome == "redirect_refused" and r.status == 302
    assert r.hops[-1].next_url == "file:///etc/passwd" and len(r.hops) == 1


def test_redirect_to_another_host_resolves_it(web: int) -> None:
    asked: list[str] = []

    async def resolve(name: str) -> list[str]:
        asked.append(name)
        return ["127.0.0.1"]

    # /elsewhere points to http://www.lab.test/ (port 80): resolved through our resolver;
    # nothing listens on 127.0.0.1:80 in the test, so the hop fails to connect.
    r = fetch(f"http://127.0.0.1:{web}/elsewhere", resolve=resolve)
    assert asked == ["www.lab.test"]
    assert r.hops[1].dns_ms is not None and r.hops[1].url == "http://www.lab.test/"
    assert r.outcome in ("connect_failed", "ok")


def test_chunked_response(web: int) -> None:
    r = fetch(f"http://127.0.0.1:{web}/chunked")
    assert (r.outcome, r.size, r.truncated) == ("ok", 12, False)
    assert r.hops[0].keep_alive


def test_one_mebibyte_body_is_read_whole(web: int) -> None:
    r = fetch(f"http://127.0.0.1:{web}/big")
    assert (r.size, r.truncated) == (1 << 20, False)


def test_endless_body_stops_at_the_byte_limit(web: int) -> None:
    start = time.monotonic()
    r = fetch(f"http://127.0.0.1:{web}/endless", max_body_bytes=200_000)
    assert r.outcome == "ok" and r.truncated_reason == "size"
    assert 200_000 <= r.size < 200_000 + 70_000 and time.monotonic() - start < 2


def test_huge_headers_stop_at_the_header_limit(web: int) -> None:
    start = time.monotonic()
    r = fetch(f"http://127.0.0.1:{web}/hugeheaders")
    assert r.outcome == "header_too_large" and r.bytes_received > http.MAX_HEADER_BYTES
    assert r.bytes_received < http.MAX_HEADER_BYTES + 70_000
    assert time.monotonic() - start < 2


def test_silent_application_times_out_before_any_byte(web: int) -> None:
    start = time.monotonic()
    r = fetch(f"http://127.0.0.1:{web}/slow", timeout=0.5)
    assert r.outcome == "timeout" and r.bytes_received == 0
    assert 0.45 < time.monotonic() - start < 1.5


def test_a_byte_a_second_is_a_stall_with_the_bytes_counted(web: int) -> None:
    start = time.monotonic()
    r = fetch(f"http://127.0.0.1:{web}/drip", timeout=1.2)
    assert r.outcome == "stall" and 1 <= r.bytes_received <= 3
    assert r.first_line is not None and r.first_line.startswith("HT")
    assert time.monotonic() - start < 2


def test_deadline_bounds_the_whole_fetch(web: int) -> None:
    start = time.monotonic()
    r = fetch(f"http://127.0.0.1:{web}/slow", timeout=5, deadline=0.4)
    assert r.outcome == "timeout" and time.monotonic() - start < 1


def test_mss_is_set_before_connect(web: int) -> None:
    r = fetch(f"http://127.0.0.1:{web}/big", mss=536)
    assert r.outcome == "ok" and r.size == 1 << 20


# -- servers that are not HTTP --------------------------------------------------------------

@pytest.fixture
def raw_server() -> Iterator[Any]:
    """A one-shot TCP server on loopback that sends ``payload`` on connect (then waits)."""
    sockets: list[socket.socket] = []

    def start(payload: bytes, close: bool = False) -> int:
        listener = socket.socket()
        listener.bind(("127.0.0.1", 0))
        listener.listen(4)
        sockets.append(listener)

        def serve() -> None:
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            sockets.append(conn)
            conn.sendall(payload)
            if close:
                conn.close()

        threading.Thread(target=serve, daemon=True).start()
        return int(listener.getsockname()[1])

    yield start
    for s in sockets:
        s.close()


@pytest.mark.parametrize("payload, heard", [
    (b"SSH-2.0-OpenSSH_9.2p1\r\n", "ssh"),
    (b"220 mail.lab.test ESMTP\r\n", "smtp"),
    (b"\x00\xff\xfe\x01garbage", "binary"),
    (b"\x15\x03\x03\x00\x02\x02\x46", "tls"),
])
def test_an_answer_that_is_not_http_is_named(raw_server: Any, payload: bytes, heard: str) -> None:
    port = raw_server(payload)
    r = fetch(f"http://127.0.0.1:{port}/")
    assert (r.outcome, r.heard) == ("protocol_mismatch", heard)
    assert r.first_line and "\x00" not in r.first_line


def test_interim_100_continue_is_skipped(raw_server: Any) -> None:
    port = raw_server(b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n"
                      b"\r\nok")
    r = fetch(f"http://127.0.0.1:{port}/")
    assert (r.outcome, r.status, r.size) == ("ok", 200, 2)


def test_body_ending_at_close(raw_server: Any) -> None:
    port = raw_server(b"HTTP/1.0 200 OK\r\nServer: old\r\n\r\nhello", close=True)
    r = fetch(f"http://127.0.0.1:{port}/")
    assert (r.outcome, r.size, r.truncated, r.server) == ("ok", 5, False, "old")


def test_body_that_stalls_after_the_headers(raw_server: Any) -> None:
    port = raw_server(b"HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n" + b"x" * 1000)
    start = time.monotonic()
    r = fetch(f"http://127.0.0.1:{port}/", timeout=0.4)
    assert (r.outcome, r.status, r.size, r.truncated_reason) == ("body_stall", 200, 1000, "stall")
    assert time.monotonic() - start < 1.5


def test_body_closed_before_its_length_is_truncated(raw_server: Any) -> None:
    port = raw_server(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc", close=True)
    r = fetch(f"http://127.0.0.1:{port}/")
    assert (r.outcome, r.size, r.truncated_reason) == ("ok", 3, "closed")


def test_headers_in_tiny_pieces_are_read_without_quadratic_cost() -> None:
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)

    def serve() -> None:
        conn, _ = listener.accept()
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        try:
            conn.sendall(b"HTTP/1.1 200 OK\r\n")
            for _ in range(20000):
                conn.send(b"X-A: b\r\n")
        except OSError:
            pass
        finally:
            conn.close()

    threading.Thread(target=serve, daemon=True).start()
    start = time.monotonic()
    # Bounds with room for a loaded machine (make test runs three files at once); a read
    # that copied the whole head again for every piece takes far longer than these.
    r = fetch(f"http://127.0.0.1:{listener.getsockname()[1]}/", timeout=6)
    listener.close()
    assert r.outcome == "header_too_large" and time.monotonic() - start < 5


def test_empty_reply(raw_server: Any) -> None:
    port = raw_server(b"", close=True)
    r = fetch(f"http://127.0.0.1:{port}/")
    assert r.outcome == "closed" and "empty reply" in (r.detail or "")


def test_connection_refused_is_a_connect_failure() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # bound, not listening: RST
    r = fetch(f"http://127.0.0.1:{port}/")
    assert r.outcome == "connect_failed" and "ECONNREFUSED" in (r.detail or "")


# -- through a proxy ----------------------------------------------------------------------------

class Proxy:
    """A tiny HTTP proxy on loopback: absolute-form GETs answered itself, CONNECT spliced."""

    def __init__(self, connect_status: int = 200) -> None:
        self.listener = socket.socket()
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(8)
        self.port = self.listener.getsockname()[1]
        self.requests: list[bytes] = []
        self.connect_status = connect_status
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            threading.Thread(target=self._handle, args=(conn,), daemon=True).start()

    def _handle(self, conn: socket.socket) -> None:
        conn.settimeout(3)
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = conn.recv(4096)
            if not chunk:
                return
            data += chunk
        self.requests.append(data)
        first = data.split(b"\r\n", 1)[0].split()
        if first[0] == b"CONNECT":
            if self.connect_status != 200:
                conn.sendall(b"HTTP/1.1 %d Nope\r\nContent-Length: 0\r\n\r\n" % self.connect_status)
                conn.close()
                return
            host, _, port = first[1].decode().rpartition(":")
            upstream = socket.create_connection(("127.0.0.1", int(port)), timeout=3)
            conn.sendall(b"HTTP/1.1 200 Connection established\r\n\r\n")
            _splice(conn, upstream)
            return
        body = b"via proxy"
        conn.sendall(b"HTTP/1.1 200 OK\r\nServer: tiny-proxy\r\nContent-Length: %d\r\n"
                     b"Connection: close\r\n\r\n%s" % (len(body), body))
        conn.close()

    def close(self) -> None:
        self.listener.close()


def _splice(a: socket.socket, b: socket.socket) -> None:
    def pump(src: socket.socket, dst: socket.socket) -> None:
        try:
            while True:
                data = src.recv(65536)
                if not data:
                    break
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    threading.Thread(target=pump, args=(a, b), daemon=True).start()
    pump(b, a)


def test_http_through_a_proxy_uses_absolute_form_and_credentials() -> None:
    proxy = Proxy()
    try:
        env = {"http_proxy": f"http://alice:secret@127.0.0.1:{proxy.port}"}
        r = fetch("http://web.lab.test/page", env=env)
    finally:
        proxy.close()
    assert (r.outcome, r.status, r.server) == ("ok", 200, "tiny-proxy")
    assert r.proxy == f"http://alice:***@127.0.0.1:{proxy.port}"
    sent = proxy.requests[0]
    assert sent.startswith(b"GET http://web.lab.test/page HTTP/1.1\r\n")
    assert b"Proxy-Authorization: Basic YWxpY2U6c2VjcmV0\r\n" in sent
    assert "secret" not in str(r.to_json())


def test_https_through_a_proxy_tunnels_with_connect(web_tls: int, pki: Any) -> None:
    ca, _ = pki
    proxy = Proxy()
    try:
        env = {"https_proxy": f"127.0.0.1:{proxy.port}"}
        r = fetch(f"https://127.0.0.1:{web_tls}/", env=env, cafile=str(ca.files.cert))
    finally:
        proxy.close()
    assert (r.outcome, r.status) == ("ok", 200), r.detail
    assert proxy.requests[0].startswith(f"CONNECT 127.0.0.1:{web_tls} HTTP/1.1".encode())
    hop = r.hops[0]
    assert hop.proxy is not None and "tunnel_ms" in hop.timings and hop.tls


def test_proxy_refusing_connect_gives_its_status() -> None:
    proxy = Proxy(connect_status=407)
    try:
        r = fetch("https://web.lab.test/", env={"HTTPS_PROXY": f"127.0.0.1:{proxy.port}"})
    finally:
        proxy.close()
    assert (r.outcome, r.status) == ("ok", 407) and r.hops[0].from_proxy


def test_no_proxy_goes_direct(web: int) -> None:
    env = {"http_proxy": "http://127.0.0.1:9", "no_proxy": "127.0.0.0/8"}
    r = fetch(f"http://127.0.0.1:{web}/", env=env)
    assert r.outcome == "ok" and r.proxy is None


def test_dead_proxy_is_a_proxy_failure() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    r = fetch("http://web.lab.test/", env={"http_proxy": f"http://u:pw123@127.0.0.1:{port}"})
    assert r.outcome == "proxy_failed" and "pw123" not in (r.detail or "")


def test_bad_url_is_an_error_result_not_an_exception() -> None:
    r = fetch("gopher://web.lab.test/")
    assert r.outcome == "error" and "gopher" in (r.detail or "")
