"""Layer 3 on the host itself: the network manager runs (``network.service``) and the
loopback interface works (``network.loopback``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from netcheck.checks.network.common import _manager

from netcheck import hints
from netcheck.i18n import _
from netcheck.lazy import lazy
from netcheck.model import Hint, Layer, Result, failed, passed, skipped
from netcheck.registry import RECIPROCAL, check

if TYPE_CHECKING:
    from netcheck.probes import shared
    from netcheck.runner import Context
else:  # imported at first use: `netcheck checks` lists the checks without the probes
    shared = lazy("netcheck.probes.shared")


# -- the host itself -----------------------------------------------------------------

@check("network.service", Layer.NETWORK, codes=("NET_SERVICE_INACTIVE",), scope="host",
       modes=RECIPROCAL)
async def network_service(ctx: Context) -> Result:
    """Network manager is running.

    The manager that is enabled at boot (NetworkManager, systemd-networkd, ifupdown) must
    be running, or addresses and routes are not kept up to date.
    """
    mgr = await _manager(ctx)
    if mgr.name == hints.NO_MANAGER:
        return skipped(_("no network manager in use (interfaces configured by hand)"),
                       manager=mgr.to_json())
    if mgr.name == hints.IFUPDOWN:
        return passed(_("ifupdown configures the interfaces (no daemon to run)"),
                      manager=mgr.to_json())
    if mgr.running:
        return passed(_("{manager} is running").format(manager=mgr.name), manager=mgr.to_json())
    if not mgr.systemd:
        return skipped(_("{manager} is not running, but systemd is not PID 1 here "
                         "(a container or a chroot): not judged").format(manager=mgr.name),
                       manager=mgr.to_json())
    return failed("NET_SERVICE_INACTIVE",
                  _("{manager} is enabled but not running").format(manager=mgr.name),
                  Hint(_("Start {manager} again and look at why it stopped.").format(
                      manager=mgr.name),
                       [*hints.restart_manager(mgr), f"journalctl -u {mgr.unit} -n 50"]),
                  manager=mgr.to_json())


@check("network.loopback", Layer.NETWORK, codes=("LOOPBACK_DOWN",), scope="host",
       modes=RECIPROCAL)
async def loopback(ctx: Context) -> Result:
    """Loopback interface works.

    ``lo`` must be up with 127.0.0.1: local resolvers (127.0.0.53) and many services
    talk to themselves through it. A TCP connect to 127.0.0.1 proves it: refused or
    accepted means the stack answered.
    """
    lo = next((lk for lk in ctx.facts.links if lk.is_loopback), None)
    if lo is None:
        return failed("LOOPBACK_DOWN", _("there is no loopback interface"),
                      Hint(_("Create and bring up lo."), ["ip link set dev lo up"]))
    probe = await shared.tcp_connect(ctx, "127.0.0.1", 9)
    addrs = [a.address for a in ctx.facts.addrs_of(lo.index)]
    evidence = {"interface": lo.name, "flags": lo.flag_names, "addresses": addrs,
                "probe": probe.to_json()}
    if not lo.admin_up or probe.state not in ("open", "refused"):
        why = (_("{ifname} is down") if not lo.admin_up
               else _("{ifname} does not answer on 127.0.0.1"))
        return failed("LOOPBACK_DOWN", why.format(ifname=lo.name),
                      Hint(_("Bring the loopback interface up (and give it 127.0.0.1/8)."),
                           [f"ip link set dev {lo.name} up",
                            f"ip addr add 127.0.0.1/8 dev {lo.name}"]), **evidence)
    return passed(_("{ifname} is up, 127.0.0.1 answers").format(ifname=lo.name), **evidence)
