"""``app.banner``: a tcp:// port identifies itself (what it says first, or
its silence).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Optional

from netcheck.checks.application.common import (
    RESET,
    _for,
    _heard,
    _reset_on_second_look,
    _talking_address,
)

from netcheck.i18n import N_, _
from netcheck.model import Layer, Result, passed, skipped
from netcheck.registry import check

if TYPE_CHECKING:
    from netcheck.runner import Context


async def _client_first_and_quiet(ctx: Context, address: str) -> Optional[Result]:
    """A pass with no greeting waited for, when the port's protocol has the client speak
    first and the transport rung's watch of this address's connection saw nothing come.

    A server that spoke (binary on port 80) or closed is read as any other: None.
    """
    from netcheck.probes import banner, shared

    assert ctx.target is not None
    port = ctx.target.port
    protocol = banner.client_speaks_first(port)
    if protocol is None:
        return None
    seen = await shared.tcp_connect(ctx, address, port)
    if seen.state != "open" or seen.after != "quiet" or seen.watched_ms is None:
        return None
    evidence = banner.BannerResult(address, port, "generic", state="silent").to_json()
    evidence.update(client_first=protocol, waited_ms=0, watched_ms=round(seen.watched_ms, 1))
    return passed(_("{address} port {port} waits for the client: {protocol} has the client "
                    "speak first, and nothing came in the {ms} ms the connection was watched "
                    "(no greeting waited for)").format(
                        address=address, port=port, protocol=protocol,
                        ms=f"{seen.watched_ms:.0f}"), **evidence)


@check("app.banner", Layer.APPLICATION, requires=("transport.tcp",), codes=(RESET,),
       applies=_for(("tcp",), N_("not a tcp:// target ({scheme}://)")))
async def app_banner(ctx: Context) -> Result:
    """Service identifies itself.

    Many services speak first (SSH, SMTP, FTP, POP3, IMAP, some databases): what the port
    says within half a second is shown and recognised. Silence is not a fault: HTTP, TLS
    and many others wait for the client. A server that resets the connection before any
    byte refuses this client (APP_CONNECTION_RESET).
    """
    from netcheck.probes import banner

    assert ctx.target is not None
    address = await _talking_address(ctx)
    if isinstance(address, Result):
        return address
    port = ctx.target.port
    quiet = await _client_first_and_quiet(ctx, address)
    if quiet is not None:
        return quiet
    r = await banner.probe("generic", address, port, timeout=ctx.timeout)
    if r.state == "closed" and r.bytes_received == 0:
        reset = await _reset_on_second_look(ctx, address)
        if reset is not None:
            return reset
    evidence = r.to_json()
    where = {"address": address, "port": port}
    if r.state == "answered":
        what = _heard(r.heard, _("something"))
        return passed(_("{address} port {port} says {greeting}: {heard}").format(
            greeting=repr(r.greeting[:100]), heard=what, **where) if r.greeting
            else _("{address} port {port}: {heard}").format(heard=what, **where), **evidence)
    if r.state == "silent":
        return passed(_("{address} port {port} says nothing within {seconds} s: it waits for "
                        "the client (HTTP, TLS and many others do)").format(
                            seconds=f"{min(ctx.timeout, banner.GENERIC_WAIT):g}", **where),
                      **evidence)
    if r.state == "closed":
        return passed(_("{address} port {port} closes the connection without a word").format(
            **where), **evidence)
    return skipped(_("could not connect to {address} port {port} again: {error}").format(
        error=r.error, **where), **evidence)
