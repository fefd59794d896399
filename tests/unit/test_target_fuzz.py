"""Property tests for parse_target: whatever the text, a valid Target or one clear TargetError."""

from __future__ import annotations

import ipaddress
from typing import Optional

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from netcheck.target import DEFAULT_PORTS, TargetError, parse_target

# No example database: the suite must not write files into the repository.
FUZZ = settings(max_examples=300, deadline=None, database=None,
                suppress_health_check=[HealthCheck.too_slow])

# Characters that matter to the parser, mixed with anything at all.
_SYNTAX = st.sampled_from(list(":/[]@%.?#-_ ;|&$`()\\'\"") + ["://", "::", "xn--", "ü", "\x00",
                                                               "\n", "\x1b", "\u2028", "٣"])
_WORDS = st.sampled_from(["http", "https", "tcp", "ssh", "dns", "ftp", "host", "example", "a",
                          "1", "255", "256", "0", "65535", "65536", "fe80", "2001", "db8",
                          "user", "secret", "localhost", "eth0"])
_PIECES = st.lists(st.one_of(_SYNTAX, _WORDS, st.text(max_size=4)), max_size=12).map("".join)
ANY_TEXT = st.one_of(st.text(max_size=300), _PIECES)

_LABEL = st.from_regex(r"[a-z0-9]([a-z0-9-]{0,20}[a-z0-9])?", fullmatch=True)
_TLD = st.from_regex(r"[a-z]{2,10}", fullmatch=True)
HOSTNAMES = st.builds(lambda labels, tld: ".".join([*labels, tld]),
                      st.lists(_LABEL, min_size=1, max_size=4), _TLD)
PORTS = st.integers(min_value=1, max_value=65535)
URL_SCHEMES = st.sampled_from(sorted(DEFAULT_PORTS))


def _check_outcome(text: str, port: Optional[int] = None) -> None:
    try:
        target = parse_target(text, port)
    except TargetError as exc:
        message = str(exc)
        assert message, "empty message"
        assert "\n" not in message and "\r" not in message, repr(message)
        assert message.isprintable(), repr(message)
        assert len(message) < 400, (len(message), message[:80])
        return
    assert target.host, target
    assert target.host.isascii(), target
    assert 1 <= target.port <= 65535, target
    assert target.scheme in DEFAULT_PORTS, target


@FUZZ
@given(ANY_TEXT)
@example("http://[::1")
@example("a;rm -rf /")
@example("\x1b[31m")
@example("[")
@example("http://user:secret@")
def test_any_text_gives_a_target_or_one_clear_error(text: str) -> None:
    _check_outcome(text)


@FUZZ
@given(ANY_TEXT, st.integers(min_value=-5, max_value=70000))
def test_any_text_with_port_option_gives_a_target_or_one_clear_error(text: str, port: int) -> None:
    _check_outcome(text, port)


@FUZZ
@given(HOSTNAMES, PORTS)
def test_host_and_port_survive_the_round_trip(host: str, port: int) -> None:
    t = parse_target(f"{host}:{port}")
    assert (t.host, t.port) == (host, port)
    assert parse_target(host).host == host
    assert parse_target(host.upper()).host == host


@FUZZ
@given(URL_SCHEMES, HOSTNAMES, PORTS)
def test_url_round_trip_keeps_scheme_host_and_port(scheme: str, host: str, port: int) -> None:
    t = parse_target(f"{scheme}://{host}:{port}/")
    assert (t.scheme, t.host, t.port) == (scheme, host, port)
    again = parse_target(t.url)
    assert (again.scheme, again.host, again.port) == (scheme, host, port)


@FUZZ
@given(HOSTNAMES, PORTS, PORTS)
def test_port_option_wins(host: str, given_port: int, option: int) -> None:
    assert parse_target(f"{host}:{given_port}", port=option).port == option


@FUZZ
@given(st.ip_addresses(v=6), PORTS)
def test_ipv6_with_port_round_trip(addr: ipaddress.IPv6Address, port: int) -> None:
    t = parse_target(f"[{addr.exploded.upper()}]:{port}")
    assert (t.host, t.port) == (addr.compressed, port)
    assert parse_target(str(addr)).host == addr.compressed


@FUZZ
@given(st.ip_addresses(v=4), PORTS)
def test_ipv4_with_port_round_trip(addr: ipaddress.IPv4Address, port: int) -> None:
    t = parse_target(f"{addr}:{port}")
    assert (t.host, t.port) == (str(addr), port)
