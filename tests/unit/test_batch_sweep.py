"""The light sweep (``--only transport.tcp``): a handshake judged by the sweep is the report
the transport check itself gives for the same connect; anything else goes to the check; the
batched connects tell apart what the check's own probe tells apart.

The report comparisons send no packet: both probes are replaced by one that returns a given
result (the route lookups are netlink questions to this host's kernel, nothing sent). The
connects go to listeners this test owns on loopback.
"""

from __future__ import annotations

import asyncio
import io
import socket
import struct
import threading
from typing import Any, Optional

import pytest

from netcheck import registry
from netcheck.batch import driver, sweep
from netcheck.batch.profile import Entry, read_target_lines
from netcheck.batch.run import Settings, _options
from netcheck.facts import Facts
from netcheck.model import Report
from netcheck.probes import shared, tcp
from netcheck.probes.tcp import TcpResult
from netcheck.registry import Check
from netcheck.runner import diagnose
from tests.schema import validate_report

ADDRESS = "192.0.2.7"  # documentation range: only a route lookup ever asks about it


def tcp_check() -> Check:
    reg = registry.load(builtin=("netcheck.checks.transport",))
    return next(c for c in reg.checks if c.id == "transport.tcp")


def entry_of(text: str, **defaults: Any) -> Entry:
    return read_target_lines(io.StringIO(text + "\n"), defaults=defaults).entries[0]


def given_connect(monkeypatch: pytest.MonkeyPatch, result: TcpResult) -> None:
    """The check's probe and the sweep's batched one both meet ``result``."""
    async def connect(address: str, port: int, timeout: float, stagger: float = 0.25
                      ) -> TcpResult:
        return result

    def batched(self: sweep.Connects, address: str, port: int, timeout: float
                ) -> asyncio.Future[Optional[TcpResult]]:
        future: asyncio.Future[Optional[TcpResult]] = asyncio.get_running_loop().create_future()
        future.set_result(result if result.handshake else None)
        return future

    monkeypatch.setattr(shared, "connect_retrying", connect)
    monkeypatch.setattr(sweep.Connects, "connect", batched)


def comparable(report: Report) -> dict[str, Any]:
    doc = report.to_json()
    validate_report(doc)
    for key in ("started_at", "duration_ms"):
        doc.pop(key)
    for check in doc["checks"]:
        check.pop("duration_ms")
    return doc


def both(entry: Entry, check: Check) -> tuple[Optional[Report], Report]:
    """(the sweep's report, the check's own report through the runner) for one entry."""
    options = _options(entry, Settings(timeout=1, deadline=5))
    assert entry.target is not None

    async def go() -> tuple[Optional[Report], Report]:
        light = sweep.Sweep(check, state=None, facts=Facts())
        address = light.address(entry, options.family)
        assert address == ADDRESS
        swept = await light.report(entry, address, options)
        own = await diagnose(entry.target, options, [check], facts=Facts())
        return swept, own

    return asyncio.run(go())


@pytest.mark.parametrize("expect", ["open", "closed"])
@pytest.mark.parametrize("result", [
    TcpResult(ADDRESS, 9000, "open", rtt_ms=1.234, local="192.0.2.1", after="closed",
              watched_ms=15.0),
    TcpResult(ADDRESS, 9000, "open", rtt_ms=0.5, local="192.0.2.1", after="spoke",
              watched_ms=3.2),
    TcpResult(ADDRESS, 9000, "reset", rtt_ms=0.8, errno="ECONNRESET", after="reset",
              watched_ms=0.0),
], ids=["closed-at-once", "spoke", "reset"])
def test_a_handshake_gets_the_checks_own_report(monkeypatch: pytest.MonkeyPatch,
                                                result: TcpResult, expect: str) -> None:
    check = tcp_check()
    given_connect(monkeypatch, result)
    swept, own = both(entry_of(f"tcp://{ADDRESS}:9000", expect=expect), check)
    assert swept is not None
    assert comparable(swept) == comparable(own)
    assert swept.verdict.value == ("ok" if expect == "open" else "broken")


@pytest.mark.parametrize("state", ["refused", "timeout", "icmp", "local"])
def test_no_handshake_goes_to_the_check(monkeypatch: pytest.MonkeyPatch, state: str) -> None:
    given_connect(monkeypatch, TcpResult(ADDRESS, 9000, state))
    entry = entry_of(f"tcp://{ADDRESS}:9000")
    light = sweep.Sweep(tcp_check(), state=None, facts=Facts())
    options = _options(entry, Settings(timeout=1, deadline=5))
    assert asyncio.run(light.report(entry, ADDRESS, options)) is None


# -- the batched connects, against the check's own probe, on loopback -------------------------

def listener(mode: str) -> int:
    """A loopback port whose server closes at once, speaks first, resets, or stays quiet."""
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(512)
    held: list[socket.socket] = []

    def serve() -> None:
        while True:
            conn, _ = srv.accept()
            if mode == "quiet":
                held.append(conn)  # open and silent until the test ends
                continue
            if mode == "spoke":
                conn.sendall(b"SSH-2.0-lab\r\n")
            if mode == "reset":
                conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            conn.close()

    threading.Thread(target=serve, daemon=True).start()
    return int(srv.getsockname()[1])


def free_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = int(s.getsockname()[1])
    s.close()  # nothing listens: the kernel answers RST
    return port


@pytest.mark.parametrize("mode", ["closed", "spoke", "reset", "quiet"])
def test_batched_connects_tell_apart_what_the_probe_does(mode: str) -> None:
    port = listener(mode)

    async def go() -> tuple[Optional[TcpResult], TcpResult]:
        connects = sweep.Connects()
        try:
            return (await connects.connect("127.0.0.1", port, 2.0),
                    await tcp.connect("127.0.0.1", port, 2.0))
        finally:
            connects.close()

    # What comes after the handshake is watched for a few RTTs: on a loaded machine the
    # listener's thread may reset or speak after that window, for either probe. The same
    # stimulus, seen in time by both, must be told apart alike: up to five tries at that.
    for _ in range(5):
        batched, own = asyncio.run(go())
        assert batched is not None
        if batched.after == own.after == mode:
            break
    assert (batched.state, batched.after, batched.local) == (own.state, own.after, own.local)
    assert batched.after == mode
    assert batched.handshake and batched.rtt_ms is not None
    if mode == "quiet":  # watched as long as the probe watches: a few RTTs, at least 15 ms
        assert batched.watched_ms is not None and batched.watched_ms >= 14


def test_batched_connects_leave_a_refused_port_to_the_check() -> None:
    async def go() -> Optional[TcpResult]:
        connects = sweep.Connects()
        try:
            return await connects.connect("127.0.0.1", free_port(), 2.0)
        finally:
            connects.close()

    assert asyncio.run(go()) is None


def test_many_batched_connects_at_once() -> None:
    port = listener("closed")

    async def go() -> list[Optional[TcpResult]]:
        connects = sweep.Connects()
        try:
            return list(await asyncio.gather(*(connects.connect("127.0.0.1", port, 2.0)
                                               for _ in range(200))))
        finally:
            connects.close()

    results = asyncio.run(go())
    assert all(r is not None and (r.state, r.after) == ("open", "closed") for r in results)


def test_names_and_left_out_families_are_not_swept() -> None:
    light = sweep.Sweep(tcp_check(), state=None, facts=Facts())
    assert light.address(entry_of("tcp://www.example.test:22"), None) is None
    assert light.address(entry_of(f"tcp://{ADDRESS}:22"), 6) is None
    assert light.address(entry_of("tcp://[2001:db8::7]:22"), 4) is None
    assert light.address(entry_of(f"tcp://{ADDRESS}:22"), 4) == ADDRESS


def test_the_sweep_applies_to_the_transport_check_alone() -> None:
    reg = registry.load(builtin=("netcheck.checks.transport",))
    check = tcp_check()
    assert sweep.applies([check]) is check
    assert sweep.applies([c for c in reg.checks if c.id.startswith("transport.")]) is None
    assert sweep.applies([]) is None


def test_route_lookups_are_asked_in_rounds(monkeypatch: pytest.MonkeyPatch) -> None:
    rounds: list[list[str]] = []

    def route_get(destinations: list[str], oif: Any, names: Any) -> list[Any]:
        rounds.append(list(destinations))
        return []

    monkeypatch.setattr("netcheck.facts.route_get", route_get)

    async def go() -> list[Any]:
        routes = sweep.Routes({})
        return list(await asyncio.gather(*(routes.lookup(f"192.0.2.{i}") for i in range(1, 40))))

    assert asyncio.run(go()) == [None] * 39
    assert rounds == [[f"192.0.2.{i}" for i in range(1, 40)]]


# -- the driver: a sweep's entries from callbacks, in the batch's bounds ---------------------

def run_sweep(profile_text: str, concurrency: int, window: Any = None,
              on_done: Any = None) -> tuple[list[Any], list[int], int]:
    """run_profile with the light sweep over ``profile_text``: (done, start order, peak).

    Each start also asserts the window: an entry starts only fewer than ``window`` places
    after the first one not finished.
    """
    from netcheck.batch.run import run_profile

    profile = read_target_lines(io.StringIO(profile_text))
    done: list[Any] = []
    started: list[int] = []
    peak = [0]
    real_start = driver.Driver._start

    def counting_start(self: driver.Driver, index: int, entry: Entry) -> None:
        peak[0] = max(peak[0], self.in_flight)
        started.append(index)
        if window is not None:
            finished = {d.index for d in done}
            first_open = next(i for i in range(len(profile.entries)) if i not in finished)
            assert index < first_open + window
        real_start(self, index, entry)

    settings = Settings(concurrency=concurrency, timeout=1, deadline=5,
                        only=("transport.tcp",))
    mp = pytest.MonkeyPatch()
    mp.setattr(driver.Driver, "_start", counting_start)
    try:
        asyncio.run(run_profile(profile, settings, [tcp_check()], on_done or done.append,
                                window=window, facts=Facts()))
    finally:
        mp.undo()
    return done, started, peak[0]


def test_the_driver_sweeps_falls_back_and_keeps_its_bounds() -> None:
    port, refused = listener("closed"), free_port()
    lines = [f"tcp://127.0.0.1:{port}/{i}" for i in range(30)]
    lines[5] = f"tcp://127.0.0.1:{refused}"  # no handshake: the check itself judges it
    lines[9] = "not a target"  # a problem line: unknown, at its place
    done, started, peak = run_sweep("\n".join(lines) + "\n", concurrency=4, window=6)
    by_index = {d.index: d.report for d in done}
    assert sorted(by_index) == list(range(30)) and len(done) == 30  # every entry, once
    assert started == list(range(30))
    assert peak <= 4
    assert by_index[5].root_cause is not None
    assert by_index[5].root_cause.result.code == "TCP_REFUSED"
    assert by_index[9].verdict.value == "unknown"
    for i, report in by_index.items():
        if i not in (5, 9):
            assert report.verdict.value == "ok", report.to_json()
            assert [c.id for c in report.checks] == ["transport.tcp"]
            validate_report(report.to_json())


def test_an_output_that_fails_ends_the_sweep_with_its_error() -> None:
    port = listener("closed")

    def broken_pipe(done: Any) -> None:
        raise BrokenPipeError("stdout closed")

    text = "".join(f"tcp://127.0.0.1:{port}/{i}\n" for i in range(10))
    with pytest.raises(BrokenPipeError):
        run_sweep(text, concurrency=4, on_done=broken_pipe)
