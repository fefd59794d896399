"""Property tests for ``--filter``: whatever the text, a working filter or one clear error."""

from __future__ import annotations

import ipaddress

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from netcheck.pcap.filters import MAX_DEPTH, MAX_LENGTH, Filter

# No example database: the suite must not write files into the repository.
FUZZ = settings(max_examples=400, deadline=None, database=None,
                suppress_health_check=[HealthCheck.too_slow])

_WORDS = st.sampled_from(["host", "net", "port", "src", "dst", "tcp", "udp", "icmp", "and",
                          "or", "not", "!", "&&", "||", "(", ")", "198.18.1.2", "2001:db8::1",
                          "198.18.0.0/15", "2001:db8::/32", "80", "0", "65536", "²", "٣",
                          "0x50", "-1", "1e3", "fe80::1%eth0", "198.18.1.2/99"])
_NOISE = st.sampled_from(["\x00", "\n", "\x1b[31m", "\u2028", "\u202e", "é", " ", "(("])
# Sequences of real filter words (deep nesting included) mixed with anything at all.
_PIECES = st.lists(st.one_of(_WORDS, _NOISE, st.text(max_size=6)), max_size=40).map(" ".join)
ANY_TEXT = st.one_of(st.text(max_size=300), _PIECES)

PACKETS = [(6, bytes([198, 18, 1, 2]), bytes([198, 18, 2, 10]), 40000, 80),
           (17, ipaddress.ip_address("2001:db8::1").packed,
            ipaddress.ip_address("2001:db8::2").packed, 53, 5353),
           (1, bytes(4), bytes(4), 0, 0)]


def _check_outcome(text: str) -> None:
    try:
        flt = Filter(text)
    except ValueError as exc:
        message = str(exc)
        assert message, "empty message"
        assert message.isprintable(), repr(message)  # no newline, escape or bidi control
        assert len(message) < 200, (len(message), message[:80])
        return
    for packet in PACKETS:
        assert flt.match(*packet) in (True, False)


@FUZZ
@given(ANY_TEXT)
@example("(" * 10_000 + "tcp" + ")" * 10_000)
@example("not " * 100_000 + "tcp")
# Found by this fuzz target: escapes of unprintable astral characters made the message long.
@example("0000000000\x1b\x1b\x08\x08\U00010756\U00011747\U00012544\U00014647\U00018cd6"
         "\U00018cd6\U0001b2fc\U0001e2fa\U0002ebe1")
@example("(" * (MAX_DEPTH + 1) + "tcp" + ")" * (MAX_DEPTH + 1))
@example(" and ".join(["tcp"] * 300))
@example("x" * 100_000)
@example("port ²")
@example("host \x1b]0;owned\x07")
def test_any_text_gives_a_filter_or_one_clear_error(text: str) -> None:
    _check_outcome(text)


@FUZZ
@given(st.lists(st.sampled_from(["tcp", "udp", "icmp", "port 80", "host 198.18.1.2",
                                 "src port 40000", "not udp"]), min_size=1, max_size=200),
       st.sampled_from([" and ", " or "]))
def test_long_flat_chains_match_without_deep_calls(terms: list[str], joiner: str) -> None:
    text = joiner.join(terms)
    if len(text) > MAX_LENGTH:
        text = text[:MAX_LENGTH].rsplit(joiner, 1)[0]
    flt = Filter(text)
    for packet in PACKETS:
        assert flt.match(*packet) in (True, False)


def test_nesting_up_to_the_limit_still_works() -> None:
    flt = Filter("(" * MAX_DEPTH + "tcp" + ")" * MAX_DEPTH)
    assert flt.match(*PACKETS[0]) and not flt.match(*PACKETS[1])
    flt = Filter("not " * MAX_DEPTH + "tcp")  # an even number of nots
    assert flt.match(*PACKETS[0])
