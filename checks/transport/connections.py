"""``transport.sockets``: the connections this host has to the target now."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from netcheck import i18n
from netcheck.i18n import _
from netcheck.model import Layer, Result, passed, skipped
from netcheck.registry import check

if TYPE_CHECKING:
    from netcheck.probes import sockets
    from netcheck.runner import Context


def _owners_error(snap: sockets.Snapshot) -> str:
    """Why the sockets' owners are not named (``sockets.Snapshot.error``), in words."""
    from netcheck.probes import sockets

    if snap.error == sockets.OWNERS_UNREADABLE:
        return _("cannot map sockets to processes: {error}").format(error=snap.error_detail)
    return _("install psutil to name the processes that own these sockets")


@check("transport.sockets", Layer.TRANSPORT)
async def current_sockets(ctx: Context) -> Result:
    """Connections this host has to the target now.

    What ``ss -tunap`` shows for the target's addresses: state, local and remote address,
    and the owning process. The socket tables are copied when the run starts, before
    netcheck's own probes; without root, other users' processes are not named.
    """
    from netcheck.probes import sockets

    # Copied now, before this run's probes open sockets of their own (no parsing yet).
    raw = ctx.value_shared(("sockets", "tables"), sockets.read_tables)
    assert ctx.target is not None
    addrs = await ctx.addresses()
    if raw is None:
        return skipped(_("the kernel's socket tables (/proc/net/tcp) are not readable here"))
    if not addrs:
        return skipped(_("the target has no address: no connection to look for"))
    found = sockets.towards(raw, addrs)
    # psutil (slow: every process's descriptors) only when there is something to name.
    # Owners come from psutil (slow: every process's descriptors); a socket in TIME_WAIT
    # belongs to no process any more, so only live ones make it worth asking.
    live = [s for s in found if s.state != "TIME_WAIT"]
    snap = await ctx.blocking(sockets.with_owners, found) if live else sockets.Snapshot()
    on_port = [s for s in found if s.peer_port == ctx.target.port]
    live = [s for s in found if s.state not in ("TIME_WAIT", "CLOSE")]
    evidence: dict[str, Any] = {
        "sockets": [s.to_json() for s in found[:sockets.MAX_LISTED]],
        "total": len(found), "on_port": len(on_port),
        "owners_visible": snap.owners_visible,
    }
    if len(found) > sockets.MAX_LISTED:
        evidence["truncated"] = True
    if snap.error:
        with i18n.language("en"):  # evidence is never translated (netcheck.i18n)
            evidence["error"] = _owners_error(snap)
    if not snap.owners_visible:
        evidence["note"] = ("without root, the processes of other users are not visible "
                            "(their sockets are listed without pid)")
    if not found:
        return passed(_("no connection to {addresses} right now").format(
            addresses=", ".join(addrs[:2])), **evidence)
    head = (live or found)[0]
    summary = _("{open} open, {closing} closing: {socket}").format(
        open=len(live), closing=len(found) - len(live), socket=head.describe())
    if len(found) > 1:
        summary += " " + _("(+{n} more)").format(n=len(found) - 1)
    return passed(summary, **evidence)
