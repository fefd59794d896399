"""What the three application rungs share: the schemes each applies to and the
protocols' names, what a port was heard to speak (in words), a command to run on the
server, the address the transport rung found open, the time left, the server that
resets before its first byte, and TLS failing under the application.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable, Optional, Union

from netcheck import hints
from netcheck.hints import server_side_command
from netcheck.i18n import N_, _
from netcheck.model import Hint, Result, Status, failed, skipped

if TYPE_CHECKING:
    from netcheck.probes.tcp import TcpResult
    from netcheck.runner import Context

HTTP_SCHEMES = ("http", "https")
GREETING_SCHEMES = ("smtp", "submission", "pop3", "pop3s", "imap", "imaps", "ssh")
PROTOCOL_SCHEMES = (*GREETING_SCHEMES, "dns")
TLS_SCHEMES = ("https", "pop3s", "imaps")
PROTOCOL_OF = {"smtp": "smtp", "submission": "smtp", "pop3": "pop3", "pop3s": "pop3",
               "imap": "imap", "imaps": "imap", "ssh": "ssh"}
NAMES = {"smtp": "SMTP", "pop3": "POP3", "imap": "IMAP", "ssh": "SSH", "dns": "DNS"}
REJECTED = {"smtp": "SMTP_REJECTED", "pop3": "POP3_REJECTED", "imap": "IMAP_REJECTED"}
# Time kept back from the run's deadline for the report itself.
RESERVE = 0.4
# What a port was heard to speak: netcheck.probes.banner.classify()'s kinds (banner.KINDS),
# in words.
HEARD = {
    "ssh": N_("an SSH server"),
    "http": N_("an HTTP server"),
    "tls": N_("a TLS service (it expects a TLS handshake first)"),
    "smtp": N_("a mail (SMTP) or FTP server's greeting"),
    "pop3": N_("a POP3 server"),
    "imap": N_("an IMAP server"),
    "binary": N_("binary data (not a text protocol)"),
    "text": N_("an unknown text protocol"),
    "empty": N_("nothing"),
}


def _heard(kind: Optional[str], otherwise: str) -> str:
    """What the port speaks, in words (``otherwise``, already translated, when unknown)."""
    return _(HEARD[kind]) if kind in HEARD else otherwise


def _on_server(command: str, note: str = "") -> str:
    """A command to run on the server, with its comment in the reader's language."""
    return f"{command}   # " + (note or _("on the server"))


def _for(schemes: tuple[str, ...], why: str) -> Callable[[Context], Optional[str]]:
    """``applies`` for these schemes; ``why`` (marked with N_, formatted with ``scheme``)
    says why another target is skipped."""
    def applies(ctx: Context) -> Optional[str]:
        if ctx.target is None:
            return _("no target")
        if ctx.target.scheme not in schemes:
            return _(why).format(scheme=ctx.target.scheme)
        return None

    return applies


async def _open_address(ctx: Context) -> Optional[str]:
    """The first address the transport check connected to (no new connect for it)."""
    assert ctx.target is not None
    transport = ctx.result("transport.tcp")
    if transport is not None:
        for connect in transport.evidence.get("connects", []):
            if connect.get("state") == "open":
                return str(connect["address"])
    addrs = await ctx.addresses()
    if not addrs:
        return None
    from netcheck.probes import shared

    results = await shared.tcp_all(ctx, addrs, ctx.target.port)
    return next((r.address for r in results if r.state == "open"), None)


def _budget(ctx: Context) -> float:
    return max(0.2, ctx.time_left() - RESERVE)


# -- a server that resets before its first byte ---------------------------------------------

RESET = "APP_CONNECTION_RESET"
# How long a connection is watched again when the application saw it closed without a word:
# a block that resets only after a slow check (tcpd's reverse lookup) still shows.
REWATCH_S = 1.0


def _reset_result(ctx: Context, resets: list[TcpResult]) -> Result:
    """APP_CONNECTION_RESET for connections reset after the handshake, before any byte."""
    assert ctx.target is not None
    r = resets[0]
    host, port = ctx.target.host, ctx.target.port
    endpoint = f"[{r.address}]:{port}" if ":" in r.address else f"{r.address}:{port}"
    summary = _("{endpoint} accepts the connection, then resets it before sending a byte: "
                "the server refuses this client after the handshake").format(endpoint=endpoint)
    return failed(RESET, summary, Hint(
        _("The port completes the TCP handshake, so the network and the listening socket "
          "work; then the server side sends an RST before any answer. Something acting after "
          "accept() refuses this client: TCP wrappers (/etc/hosts.allow, /etc/hosts.deny), a "
          "fail2ban or firewall rule that resets established connections, a connection limit "
          "(sshd's MaxStartups), or a worker that crashes as it accepts. The server's log "
          "names it."),
        [hints.talk(host, port), f"tcpdump -ni any host {r.address} and port {port}",
         _on_server(f"ss -tlnp 'sport = :{port}'", _("on the server: which program listens")),
         server_side_command(port),
         _on_server("cat /etc/hosts.allow /etc/hosts.deny"),
         _on_server("fail2ban-client status"),
         _on_server("journalctl --since -10min -p warning")]),
        connects=[x.to_json() for x in resets])


async def _reset_before_a_byte(ctx: Context) -> Optional[Result]:
    """The finding when every handshake of this run was reset before the server said a thing.

    The transport rung watched each connection it opened (typed results, shared): a server
    that resets at once answers every protocol the same way, so nothing is sent to it.
    None when some address keeps its connection open (or none completed a handshake).
    """
    from netcheck.probes import shared

    assert ctx.target is not None
    addrs = await ctx.addresses()
    results = await shared.tcp_all(ctx, addrs, ctx.target.port) if addrs else []
    if any(r.state == "open" for r in results):
        return None
    resets = [r for r in results if r.state == "reset"]
    return _reset_result(ctx, resets) if resets else None


async def _talking_address(ctx: Context) -> Union[Result, str]:
    """The address to talk to (one the transport check found open), or the result that ends
    the check: every handshake reset before a byte, or no address accepted one."""
    reset = await _reset_before_a_byte(ctx)
    if reset is not None:
        return reset
    address = await _open_address(ctx)
    if address is None:
        return skipped(_("no address of the target accepted the TCP connection"))
    return address


async def _reset_on_second_look(ctx: Context, address: str) -> Optional[Result]:
    """The application saw the connection closed without a word: connect again, say nothing,
    and watch longer. A reset then is the server's refusal; a plain close (FIN) is not."""
    from netcheck.probes import tcp

    assert ctx.target is not None
    watch = max(0.05, min(ctx.timeout, REWATCH_S, _budget(ctx)))
    r = await tcp.connect(address, ctx.target.port, ctx.timeout, watch=watch)
    return _reset_result(ctx, [r]) if r.state == "reset" else None


def _tls_failure(ctx: Context, what: str, detail: str, commands: list[str],
                 **evidence: Any) -> Result:
    """TLS failed under us: the presentation layer's finding, not ours to code."""
    tls_check = ctx.result("tls.handshake")
    if tls_check is None:
        summary = _("{what}: TLS failed (no TLS check is loaded to diagnose it): {detail}")
    elif tls_check.status is Status.PASS:
        summary = _("{what}: TLS failed although tls.handshake passed: {detail}")
    else:
        summary = _("{what}: TLS failed (tls.handshake: {finding}): {detail}")
    finding = tls_check.summary if tls_check is not None else ""
    return Result(Status.ERROR, summary.format(what=what, finding=finding, detail=detail),
                  evidence=evidence,
                  hint=Hint(_("The application could not be reached over TLS; look at the "
                              "certificate and the handshake first."), commands))


# TLS schemes: after the handshake and the certificate (a certificate a browser would refuse
# blocks the request, as it would block the browser). Both skip for plain schemes.
TLS_REQUIRES = ("transport.tcp", "tls.handshake", "tls.certificate")
