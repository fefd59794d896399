"""What several layer-4 rungs share: their codes, and this host's firewall in words."""

from __future__ import annotations

from typing import TYPE_CHECKING, Optional

from netcheck.i18n import N_, _

if TYPE_CHECKING:
    from netcheck.probes import firewall
    from netcheck.runner import Context

FW_CODE = "FW_LOCAL_OUTPUT_BLOCK"
# expect = "closed": a port that must stay shut accepts connections.
OPEN_UNEXPECTED = "TCP_OPEN_UNEXPECTED"
# What "this port takes no connections from here" looks like: what expect = "closed" wants.
CLOSED_CODES = ("TCP_REFUSED", "TCP_FILTERED", "TCP_ADMIN_PROHIBITED", FW_CODE)


def _flow(flow: firewall.Flow) -> str:
    """``Flow.describe()`` in the reader's language (the same words in English)."""
    if flow.protocol == "icmp":
        return _("{family} ping to {address}").format(
            family="IPv6" if flow.family == 6 else "IPv4", address=flow.daddr)
    return _("{protocol} port {port} to {address}").format(
        protocol=flow.protocol, port=flow.dport, address=flow.daddr)


def firewall_unreadable(reason: Optional[str], english: bool = False) -> str:
    """Why the rules could not be read, in the reader's language (``english``: as the JSON
    evidence keeps it): the firewall probe's reason code, or the tools' own words."""
    from netcheck.probes import firewall

    words = {firewall.NEEDS_ROOT: N_("needs root (CAP_NET_ADMIN) to read the firewall rules"),
             firewall.NO_TOOL: N_("neither nft nor iptables-save is installed"),
             firewall.NO_TARGET: N_("no target")}
    text = words.get(reason or "")
    if text is None:
        return reason or ""
    return text if english else _(text)


def remedy_commands(v: firewall.Verdict) -> list[str]:
    """The commands that remove the blocking rule or let the flow through before it; for a rule
    iptables-nft made, also its deletion through nft, said to be the same rule."""
    from netcheck.probes import firewall

    commands = firewall.remedy_commands(v)
    same = firewall.nft_delete_command(v)
    if same is not None:
        commands.append(same + "   # " + _("the same rule, through nft"))
    return commands


def _own_addresses(ctx: Context) -> set[str]:
    """This host's addresses: an ICMP error "from" one of them was made by this host."""
    return {a.address.split("%")[0] for a in ctx.facts.addresses if getattr(a, "address", None)}
