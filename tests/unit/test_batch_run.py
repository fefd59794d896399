"""Batch runs: concurrency bound, one resolver cache, expectations, outputs, exit status.

The engine parts run on stand-in checks; the end-to-end runs use the real checks against
loopback only (a listener this test owns and a port nobody listens on).
"""

from __future__ import annotations

import asyncio
import io
import json
import socket
import threading
import time
from typing import Any, Iterator

import pytest
from netcheck.checks.transport import judge_expectation

from netcheck import cli
from netcheck.batch import run as batch_run
from netcheck.batch.outputs import JsonOutput
from netcheck.batch.profile import Profile, read_target_lines
from netcheck.batch.run import Settings, Summary, run_profile, select_checks
from netcheck.facts import Facts
from netcheck.model import (
    Layer,
    Report,
    Result,
    Status,
    Verdict,
    failed,
    passed,
)
from netcheck.registry import Check
from netcheck.runner import Context, Options, diagnose
from netcheck.target import parse_target
from tests.schema import validate_report


def fake_check(fn: Any, check_id: str = "fake.check", layer: Layer = Layer.TRANSPORT) -> Check:
    return Check(id=check_id, layer=layer, run=fn)


def profile_of(*targets: str) -> Profile:
    return read_target_lines(io.StringIO("\n".join(targets)))


def run(profile: Profile, checks: list[Check], **kw: Any) -> tuple[Summary, list[Any]]:
    done: list[Any] = []
    settings = Settings(concurrency=kw.pop("concurrency", 4), timeout=1, deadline=5)
    summary = asyncio.run(run_profile(profile, settings, checks, done.append, facts=Facts(),
                                      **kw))
    return summary, done


# -- engine ---------------------------------------------------------------------------------

def test_at_most_concurrency_targets_run_at_once() -> None:
    running = peak = 0

    async def slow(ctx: Any) -> Result:
        nonlocal running, peak
        running += 1
        peak = max(peak, running)
        await asyncio.sleep(0.05)
        running -= 1
        return passed("fine")

    profile = profile_of(*(f"tcp://198.18.2.10:{p}" for p in range(1, 21)))
    start = time.monotonic()
    summary, done = run(profile, [fake_check(slow)], concurrency=4)
    assert peak == 4
    assert len(done) == 20 and summary.counts["ok"] == 20 and summary.exit_code == 0
    assert time.monotonic() - start < 1.0  # 5 rounds of 50 ms, not 20


def test_targets_on_one_name_share_one_resolution(monkeypatch: pytest.MonkeyPatch) -> None:
    from netcheck.probes import dns

    calls: list[str] = []

    async def resolve(name: str, *args: Any) -> Any:
        calls.append(name)
        await asyncio.sleep(0.02)
        return dns.Resolution(name=name, config=dns.ResolverConfig("x"),
                              addresses=["198.18.2.10"], source="dns")

    monkeypatch.setattr(dns, "resolve_like_system", resolve)

    async def needs_name(ctx: Any) -> Result:
        return passed(", ".join(await ctx.addresses()))

    profile = profile_of(*(f"tcp://www.lab.test:{p}" for p in range(1, 11)),
                         "tcp://other.lab.test:22")
    summary, done = run(profile, [fake_check(needs_name)], concurrency=5)
    assert sorted(calls) == ["other.lab.test", "www.lab.test"]  # 11 targets, 2 lookups
    assert all(d.report.target["addresses"] == ["198.18.2.10"] for d in done)


def test_a_profile_problem_is_an_unknown_result_at_its_place() -> None:
    async def ok(ctx: Any) -> Result:
        return passed("fine")

    profile = profile_of("tcp://198.18.2.10:22", "not a target", "tcp://198.18.2.10:23")
    summary, done = run(profile, [fake_check(ok)])
    by_index = {d.index: d.report for d in done}
    assert by_index[1].verdict is Verdict.UNKNOWN
    assert by_index[1].error is not None and "<stdin>:2:" in by_index[1].error
    validate_report(by_index[1].to_json())
    assert summary.counts == {"ok": 2, "degraded": 0, "broken": 0, "unknown": 1}
    assert summary.exit_code == 3


def test_json_output_keeps_profile_order_with_a_slow_first_target() -> None:
    async def first_is_slow(ctx: Any) -> Result:
        await asyncio.sleep(0.2 if ctx.target.port == 1 else 0.0)
        return passed("fine")

    profile = profile_of(*(f"tcp://198.18.2.10:{p}" for p in range(1, 31)))
    out = io.StringIO()
    output = JsonOutput(out, io.StringIO())
    output.begin(profile, None)
    started: list[int] = []
    summary = Summary()
    settings = Settings(concurrency=4, timeout=1, deadline=5)
    asyncio.run(run_profile(profile, settings, [fake_check(first_is_slow)], output.done,
                            on_start=lambda e: started.append(e.target.port),  # type: ignore
                            window=8, facts=Facts(), summary=summary))
    output.finish(summary)
    doc = json.loads(out.getvalue())
    assert doc["schema"] == "netcheck-batch/1"
    assert [r["target"]["port"] for r in doc["results"]] == list(range(1, 31))
    assert doc["summary"]["ok"] == 30 and doc["summary"]["duration_ms"] > 0
    for r in doc["results"]:
        validate_report(r)
    # The window: nothing past index 8 started before the slow first target was done.
    assert max(started[:started.index(1) + 1]) <= 9


def test_select_checks_by_layer_name_id_and_prefix() -> None:
    async def nothing(ctx: Any) -> Result:
        return passed("")

    checks = [fake_check(nothing, "dns.config", Layer.NETWORK),
              fake_check(nothing, "dns.servers", Layer.NETWORK),
              fake_check(nothing, "network.target", Layer.NETWORK),
              fake_check(nothing, "transport.tcp", Layer.TRANSPORT)]
    ids = lambda cs: [c.id for c in cs]  # noqa: E731
    assert ids(select_checks(checks, ["4"])) == ["transport.tcp"]
    assert ids(select_checks(checks, ["transport"])) == ["transport.tcp"]
    assert ids(select_checks(checks, ["dns"])) == ["dns.config", "dns.servers"]
    assert ids(select_checks(checks, ["transport.tcp,network.target"])) == [
        "network.target", "transport.tcp"]
    assert ids(select_checks(checks, [])) == ids(checks)
    with pytest.raises(ValueError, match="matches no check"):
        select_checks(checks, ["tls"])


def test_the_worst_verdict_follows_the_plugin_order() -> None:
    def worst(*verdicts: Verdict) -> int:
        s = Summary()
        for v in verdicts:
            s.add(v)
        return s.exit_code

    assert worst(Verdict.OK, Verdict.UNKNOWN) == 3
    assert worst(Verdict.UNKNOWN, Verdict.DEGRADED) == 1
    assert worst(Verdict.UNKNOWN, Verdict.BROKEN, Verdict.DEGRADED) == 2
    assert worst(Verdict.OK) == 0


# -- expect = "closed" ----------------------------------------------------------------------
# The transport check judges the expectation (checks.transport.judge_expectation) and the
# runner draws the verdict: stand-in checks around a recorded connect, through the runner.

SHUT = parse_target("tcp://198.18.2.10:23")


def _ladder(tcp_result: Result, ran: list[str], host_fault: bool = False) -> list[Check]:
    """network.target passes; transport.tcp met ``tcp_result`` and judges it against the run's
    expectation; TLS above it (two rungs) records whether it ran; with ``host_fault`` a
    host-scope L3 finding fails (off the flow's path when the connect proves the flow)."""

    async def target(ctx: Any) -> Result:
        return passed("pings")

    async def tcp(ctx: Context) -> Result:
        return judge_expectation(tcp_result, ctx.options.expect, SHUT)

    def above(check_id: str) -> Any:
        async def run_(ctx: Any) -> Result:
            ran.append(check_id)
            return passed(f"{check_id} fine")
        return run_

    checks = [Check(id="network.target", layer=Layer.NETWORK, run=target),
              Check(id="transport.tcp", layer=Layer.TRANSPORT, run=tcp,
                    requires=("network.target",), proves_flow=True),
              Check(id="tls.handshake", layer=Layer.PRESENTATION, run=above("tls.handshake"),
                    requires=("transport.tcp",)),
              Check(id="tls.certificate", layer=Layer.PRESENTATION,
                    run=above("tls.certificate"), requires=("tls.handshake",), order=1)]
    if host_fault:
        async def manager(ctx: Any) -> Result:
            return failed("NET_SERVICE_INACTIVE", "the network manager is not running")
        checks.insert(0, Check(id="network.service", layer=Layer.NETWORK, run=manager,
                               scope="host", order=-1))
    return checks


def _diagnose(checks: list[Check], expect: str, lang: str = "en") -> Any:
    return asyncio.run(diagnose(SHUT, Options(deadline=5, expect=expect, lang=lang), checks,
                                facts=Facts()))


def _outcome(report: Any, check_id: str) -> Any:
    return next(o for o in report.checks if o.id == check_id)


@pytest.mark.parametrize("code", ["TCP_REFUSED", "TCP_FILTERED", "TCP_ADMIN_PROHIBITED",
                                  "FW_LOCAL_OUTPUT_BLOCK"])
def test_a_shut_port_is_ok_when_expected_closed(code: str) -> None:
    ran: list[str] = []
    report = _diagnose(_ladder(failed(code, "port 23 says no"), ran), "closed")
    assert report.verdict is Verdict.OK and report.root_cause is None
    tcp = _outcome(report, "transport.tcp")
    assert tcp.status is Status.PASS
    assert tcp.result.evidence == {"expected": "closed", "observed": code}
    for check_id in ("tls.handshake", "tls.certificate"):  # nothing above it to look at
        above = _outcome(report, check_id)
        assert above.status is Status.SKIP
        assert above.result.blocked_by is None  # its blocker is no failure
        assert "port 23 says no" in above.result.summary
    assert ran == []
    validate_report(report.to_json())
    # Expected open (the default), the same connect is the failure it is.
    report = _diagnose(_ladder(failed(code, "port 23 says no"), ran), "open")
    assert report.verdict is Verdict.BROKEN and report.root_cause.result.code == code
    assert _outcome(report, "tls.handshake").result.blocked_by == "transport.tcp"


def test_an_open_port_is_broken_when_expected_closed() -> None:
    ran: list[str] = []
    report = _diagnose(_ladder(passed("port 23 open (0.2 ms)"), ran), "closed")
    assert report.verdict is Verdict.BROKEN
    assert report.root_cause is not None and report.root_cause.result.code == "TCP_OPEN_UNEXPECTED"
    assert report.root_cause.result.hint is not None
    assert "port 23 open (0.2 ms), but port 23 should be closed" in report.root_cause.result.summary
    assert report.root_cause.result.evidence["expected"] == "closed"
    assert ran == ["tls.handshake", "tls.certificate"]  # what listens is still looked at
    validate_report(report.to_json())


def test_an_open_port_still_proves_the_flow_and_a_shut_one_does_not() -> None:
    # A host-scope finding below the connect is off the flow's path when the connect got
    # through (top_down): the open port stays the root cause. A port shut as expected proves
    # no flow: the host's finding stays a failure.
    report = _diagnose(_ladder(passed("port 23 open (0.2 ms)"), [], host_fault=True), "closed")
    assert report.root_cause.result.code == "TCP_OPEN_UNEXPECTED"
    assert _outcome(report, "network.service").status is Status.WARN
    report = _diagnose(_ladder(failed("TCP_REFUSED", "refused"), [], host_fault=True), "closed")
    assert report.verdict is Verdict.BROKEN
    assert report.root_cause.result.code == "NET_SERVICE_INACTIVE"


def test_the_expectation_speaks_the_run_language() -> None:
    report = _diagnose(_ladder(passed("abierto"), []), "closed", lang="es")
    rc = report.root_cause.result
    assert rc.code == "TCP_OPEN_UNEXPECTED"
    assert "should be closed" not in rc.summary and "abierto" in rc.summary
    assert "Something listens" not in rc.hint.text


def test_a_lower_layer_failure_says_nothing_about_the_port() -> None:
    skip = Result(Status.SKIP, "blocked", blocked_by="network.target")
    assert judge_expectation(skip, "closed", SHUT) is skip
    assert judge_expectation(passed("open"), "open", SHUT).status is Status.PASS

    async def silent(ctx: Any) -> Result:
        return failed("TARGET_UNREACHABLE", "silent")

    ran: list[str] = []
    checks = _ladder(passed("never measured"), ran)
    checks[0] = Check(id="network.target", layer=Layer.NETWORK, run=silent)
    report = _diagnose(checks, "closed")
    assert report.verdict is Verdict.BROKEN
    assert report.root_cause.result.code == "TARGET_UNREACHABLE"
    assert _outcome(report, "transport.tcp").result.blocked_by == "network.target"


# -- the command, end to end on loopback ----------------------------------------------------

@pytest.fixture
def listener() -> Iterator[int]:
    """A loopback TCP server this test owns (accepts and closes)."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(64)
    sock.settimeout(0.2)
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                conn, _ = sock.accept()
                conn.close()
            except OSError:
                continue

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield sock.getsockname()[1]
    stop.set()
    thread.join(2)
    sock.close()


def closed_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()  # bound once, never listened on: the kernel answers RST
    return port


def batch(monkeypatch: pytest.MonkeyPatch, stdin: str, *args: str) -> tuple[int, str, str]:
    monkeypatch.setattr("sys.stdin", io.StringIO(stdin))
    out, err = io.StringIO(), io.StringIO()
    rc = cli.run(["batch", *args], out, err)
    return rc, out.getvalue(), err.getvalue()


def test_batch_json_from_stdin_on_loopback(monkeypatch: pytest.MonkeyPatch,
                                           listener: int) -> None:
    shut = closed_port()
    rc, out, err = batch(monkeypatch, f"tcp://127.0.0.1:{listener}\ntcp://127.0.0.1:{shut}\n"
                         "bad target\n", "-", "--format", "json", "--timeout", "1")
    doc = json.loads(out)
    assert rc == 2, err
    assert [r["verdict"] for r in doc["results"]] == ["ok", "broken", "unknown"]
    assert doc["results"][1]["root_cause"]["code"] == "TCP_REFUSED"
    assert "<stdin>:3:" in doc["results"][2]["error"]
    assert doc["summary"]["broken"] == 1 and doc["summary"]["unknown"] == 1
    for r in doc["results"]:
        validate_report(r)
    assert "<stdin>:3: white space" in err.replace("target contains ", "")


def test_batch_profile_expect_closed_and_ndjson(monkeypatch: pytest.MonkeyPatch, listener: int,
                                                tmp_path: Any) -> None:
    shut = closed_port()
    path = tmp_path / "lo.toml"
    path.write_text(f'[defaults]\ntimeout = 1\n[lo]\nup = "tcp://127.0.0.1:{listener}"\n'
                    f'shut = {{ target = "127.0.0.1", port = {shut}, scheme = "tcp", '
                    'expect = "closed" }\n')
    rc, out, err = batch(monkeypatch, "", str(path), "--format", "ndjson",
                         "--only", "transport.tcp")
    lines = out.splitlines()
    assert rc == 0, err
    assert len(lines) == 2
    docs = [json.loads(line) for line in lines]
    for d in docs:
        validate_report(d)
        assert [c["id"] for c in d["checks"]] == ["transport.tcp"]
    assert {d["verdict"] for d in docs} == {"ok"}


def test_batch_expect_closed_through_the_whole_ladder(monkeypatch: pytest.MonkeyPatch,
                                                     listener: int, tmp_path: Any) -> None:
    # The real transport check judges the expectation; the runner draws verdict and root cause.
    shut = closed_port()
    path = tmp_path / "lo.toml"
    path.write_text('[defaults]\ntimeout = 1\nexpect = "closed"\nscheme = "tcp"\n'
                    f'[lo]\nshut = {{ target = "127.0.0.1", port = {shut} }}\n'
                    f'open = {{ target = "127.0.0.1", port = {listener} }}\n')
    rc, out, err = batch(monkeypatch, "", str(path), "--format", "json")
    assert rc == 2, err
    shut_doc, open_doc = json.loads(out)["results"]
    for d in (shut_doc, open_doc):
        validate_report(d)
    assert (shut_doc["verdict"], shut_doc["root_cause"]) == ("ok", None)
    tcp = next(c for c in shut_doc["checks"] if c["id"] == "transport.tcp")
    assert tcp["status"] == "pass" and tcp["summary"].startswith("closed, as expected: ")
    assert (tcp["evidence"]["expected"], tcp["evidence"]["observed"]) == ("closed", "TCP_REFUSED")
    above = [c for c in shut_doc["checks"] if c["id"] == "app.banner"]
    assert above and above[0]["status"] == "skip" and above[0]["blocked_by"] is None
    assert open_doc["verdict"] == "broken"
    assert open_doc["root_cause"]["code"] == "TCP_OPEN_UNEXPECTED"
    assert open_doc["root_cause"]["hint"]["commands"]


def test_batch_text_table_has_no_progress_bar_when_piped(monkeypatch: pytest.MonkeyPatch,
                                                        listener: int) -> None:
    rc, out, err = batch(monkeypatch, f"tcp://127.0.0.1:{listener}\n", "-",
                         "--only", "transport")
    assert rc == 0, err
    assert "\x1b" not in out and "\r" not in out
    assert "target" in out and "verdict" in out and "root cause" in out
    assert "1 target: 1 ok, 0 degraded, 0 broken, 0 unknown" in out


@pytest.mark.parametrize("fmt", ["json", "ndjson", "junit", "nagios", "prometheus", "text"])
def test_bad_input_gives_a_document_of_the_format_and_exit_3(monkeypatch: pytest.MonkeyPatch,
                                                            fmt: str, tmp_path: Any) -> None:
    rc, out, err = batch(monkeypatch, "", str(tmp_path / "missing.toml"), "--format", fmt)
    assert rc == 3
    assert "No such file" in err
    if fmt == "json":
        doc = json.loads(out)
        assert doc["schema"] == "netcheck-batch/1" and doc["summary"]["unknown"] == 1
        validate_report(doc["results"][0])
    elif fmt == "ndjson":
        validate_report(json.loads(out))
    elif fmt == "junit":
        assert "<error" in out
    elif fmt == "nagios":
        assert out.startswith("NETCHECK UNKNOWN - ")
    elif fmt == "prometheus":
        assert "probe_success" in out
    else:
        assert out == ""


def test_bad_concurrency_and_only_are_usage_errors(monkeypatch: pytest.MonkeyPatch) -> None:
    rc, out, err = batch(monkeypatch, "tcp://127.0.0.1:1\n", "-", "--concurrency", "0",
                         "--format", "json")
    assert rc == 3 and "concurrency" in json.loads(out)["results"][0]["error"]
    rc, out, err = batch(monkeypatch, "tcp://127.0.0.1:1\n", "-", "--only", "nothing.here")
    assert rc == 3 and "matches no check" in err


def test_a_crashing_diagnosis_is_one_unknown_result(monkeypatch: pytest.MonkeyPatch) -> None:
    async def boom(*args: Any, **kw: Any) -> Report:
        raise RuntimeError("kaboom")

    monkeypatch.setattr("netcheck.runner.diagnose", boom)
    summary, done = run(profile_of("tcp://198.18.2.10:22"), [])
    assert done[0].report.verdict is Verdict.UNKNOWN
    assert "kaboom" in (done[0].report.error or "")
    assert summary.exit_code == 3
    assert batch_run.SEVERITY[Verdict.BROKEN] > batch_run.SEVERITY[Verdict.UNKNOWN]


def test_a_narrow_run_imports_only_the_modules_it_needs() -> None:
    from netcheck.batch.run import _modules_for

    assert _modules_for(["4"]) == ("netcheck.checks.transport",)
    assert _modules_for(["dns,tls.handshake"]) == ("netcheck.checks.network",
                                                   "netcheck.checks.presentation")
    assert _modules_for([]) is None and _modules_for(["session"]) is None
    assert _modules_for(["thirdparty.check"]) is None  # unknown: every module is loaded
