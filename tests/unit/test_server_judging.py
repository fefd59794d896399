"""Server mode's judging as pure functions: recorded facts in, (status, code, text) out, one
row per state (as tests/unit/test_tls.py does for the TLS handshake). Nothing is probed."""

from __future__ import annotations

from typing import Any, Optional

import pytest
from netcheck.checks import server as srv

from netcheck.model import Status
from netcheck.server.handshake import Handshake

PORT = 8080


def hs(address: str, state: str, rtt_ms: Optional[float] = None,
       errno: Optional[str] = None) -> Handshake:
    return Handshake(address, PORT, state, rtt_ms=rtt_ms, errno=errno)


HANDSHAKES: dict[str, tuple[list[Handshake], set[str], dict[str, Any], Status, Optional[str],
                            tuple[str, ...]]] = {
    "every bound address opens": (
        [hs("127.0.0.1", "open", 0.05), hs("198.18.1.10", "open", 0.07)],
        {"127.0.0.1", "198.18.1.10"}, {}, Status.PASS, None,
        ("handshake completed with 127.0.0.1:8080 in 0.05 ms, 198.18.1.10:8080 in 0.07 ms",)),
    "an unbound address refuses": (
        [hs("127.0.0.1", "open", 0.05), hs("198.18.1.10", "refused")],
        {"127.0.0.1"}, {}, Status.PASS, None,
        ("127.0.0.1:8080 in 0.05 ms", "198.18.1.10:8080 refused (not bound there)")),
    "nothing bound": (
        [hs("127.0.0.1", "refused")], set(), {}, Status.PASS, None,
        ("no handshake expected",)),
    "input rule drops": (
        [hs("198.18.1.10", "timeout")], {"198.18.1.10"},
        {"block": ("drop", "tcp dport 8080 drop")}, Status.FAIL, "SRV_FW_INPUT_BLOCK",
        ("to 198.18.1.10:8080 timed out", "input chain drops it: tcp dport 8080 drop")),
    "input rule rejects": (
        [hs("::1", "refused")], {"::1"},
        {"block": ("reject", "tcp dport 8080 reject")}, Status.FAIL, "SRV_FW_INPUT_BLOCK",
        ("[::1]:8080 was refused", "rejects it: tcp dport 8080 reject")),
    "accept queue full": (
        [hs("127.0.0.1", "timeout")], {"127.0.0.1"}, {"backlog": (5, 4)}, Status.ERROR, None,
        ("timed out", "accept queue is full (5 waiting, limit 4)")),
    "socket that never completes": (
        [hs("127.0.0.1", "timeout")], {"127.0.0.1"}, {}, Status.ERROR, None,
        ("does not complete handshakes",)),
    "unreachable": (
        [hs("198.18.1.10", "unreachable", errno="EHOSTUNREACH")], {"198.18.1.10"}, {},
        Status.ERROR, None, ("answered 'unreachable' (EHOSTUNREACH)",)),
    "other error": (
        [hs("198.18.1.10", "error", errno="EPERM")], {"198.18.1.10"}, {},
        Status.ERROR, None, ("failed (EPERM)",)),
}


@pytest.mark.parametrize("name", list(HANDSHAKES))
def test_local_handshakes_are_judged(name: str) -> None:
    results, expected, extra, status, code, texts = HANDSHAKES[name]
    got_status, got_code, text = srv.judge_handshakes(PORT, results, expected, **extra)
    assert (got_status, got_code) == (status, code)
    for part in texts:
        assert part in text, (part, text)


def test_the_first_failure_is_the_first_bound_address_that_did_not_open() -> None:
    results = [hs("127.0.0.1", "open", 0.1), hs("198.18.9.9", "refused"),
               hs("198.18.1.10", "timeout"), hs("198.18.1.11", "refused")]
    first = srv.first_failed_handshake(results, {"127.0.0.1", "198.18.1.10", "198.18.1.11"})
    assert first is not None and first.address == "198.18.1.10"
