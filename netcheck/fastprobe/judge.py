"""The judgement: whether the exchange worked with nothing worth a warning (:func:`healthy`),
each part judged by the rung that owns it; a failure is never judged here, it is the
ladder's to explain.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Optional

if TYPE_CHECKING:
    from netcheck.fastprobe.probe import Exchange
    from netcheck.probes.tls import TlsResult


@dataclass(frozen=True)
class Health:
    """:func:`healthy`'s answer: the exchange worked with nothing worth a warning, or why not.

    ``rung``: the check whose judgement stands in the way (``dns.resolution``,
    ``transport.tcp``, ``tls.certificate``, ``http.response``), empty when healthy.
    """

    ok: bool
    rung: str = ""
    why: str = ""


def tls_result(ex: Exchange) -> Optional[TlsResult]:
    """The first hop's TLS as the TLS rungs see a handshake: completed and verified (the
    request could not have been made otherwise), with the chain the server sent."""
    from netcheck.probes.tls import TlsResult

    if ex.http is None or not ex.http.hops or not ex.chain:
        return None
    hop = ex.http.hops[0]
    if hop.tls is None or hop.address is None:
        return None
    return TlsResult(hop.address, hop.port or ex.target.port,
                     ex.target.host if ex.target.is_name else None, state="ok",
                     version=hop.tls.get("version"), cipher=hop.tls.get("cipher"),
                     alpn=hop.tls.get("alpn"), connect_ms=hop.connect_ms,
                     handshake_ms=hop.tls_ms, certificate=ex.chain[0], chain=list(ex.chain),
                     verified=True, handshakes=1)


def healthy(ex: Exchange) -> Health:
    """Whether the exchange worked with nothing in it worth a warning: facts in, answer out.

    Each part is judged by the rung that owns it: the resolution by ``judge_resolution``
    (a slow resolver, a first name server that fails are warnings), the connects by
    ``judge_connects`` (every family the host uses must complete its handshake), and for
    tcp:// no connection may be reset or broken after the handshake (the application rung's
    finding); the certificate by ``certificate_problems`` (nothing, not even "expires
    soon"); the HTTP answer as the HTTP rung takes it: a final status below 400, the body
    not stalled. Anything else — a refused hop included — is the ladder's.
    """
    from netcheck.model import Status

    target = ex.target
    if ex.resolution is not None:
        from netcheck.checks.network import judge_resolution

        status, code, text = judge_resolution(ex.resolution, ex.families)
        if status is not Status.PASS:
            return Health(False, "dns.resolution", f"{code or status.value}: {text}")
    if not ex.judged:
        return Health(False, "dns.resolution", "no address of the families asked for")
    if target.scheme == "tcp" or ex.connects:
        from netcheck.checks.transport import judge_connects

        judged = [r for r in ex.connects if r.address in ex.judged]
        if not judged:
            return Health(False, "transport.tcp", "no connect finished")
        verdict = judge_connects(judged)
        if verdict.status is not Status.PASS:
            return Health(False, "transport.tcp", f"{verdict.code}: {verdict.summary}")
        if target.scheme == "tcp":
            troubled = [r for r in judged if r.state != "open" or r.after in ("reset", "error")]
            if troubled:
                conn = troubled[0]
                return Health(False, "app.banner",
                              f"{conn.address}: {conn.state}, then {conn.after}")
    if target.scheme in ("http", "https"):
        r = ex.http
        if r is None:
            return Health(False, "http.response", "no request was made")
        if r.outcome != "ok" or r.status is None:
            return Health(False, "http.response", f"{r.outcome}: {r.detail}")
        if r.status >= 400 or (r.hops and r.hops[-1].from_proxy):
            return Health(False, "http.response", f"status {r.status}")
    if target.scheme == "https":
        from netcheck.checks.presentation import certificate_problems

        tls = tls_result(ex)
        if tls is None:
            return Health(False, "tls.certificate", ex.chain_error or "no certificate read")
        problems = certificate_problems(tls, target.host)
        if problems:
            code, text = problems[0]
            return Health(False, "tls.certificate", f"{code}: {text}")
    return Health(True)
