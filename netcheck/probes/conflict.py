"""network.address_conflict's ARP probes, sent from the moment the target is known.

An RFC 5227 probe proves that nobody else holds an address by waiting for an answer that does
not come: at most 0.2-0.3 s (:func:`probe_wait`), less once a neighbour on the link (the
gateway, or the on-link target) has answered the same kind of probe for its own address and
so shown how fast this link answers (``neighbour.arp_conflict_probe``). On a healthy run that
wait is what is left at the end, so it starts as early as it can. The console diagnosis
calls :func:`start` once it has parsed and checked its arguments, before asyncio and the
checks are imported and the snapshot is taken (50-150 ms): a daemon thread asks the kernel
which interface the packets leave by (the target's route; for a name, not yet resolved, the
default route's, which the name's route almost always shares) and probes that interface's IPv4
addresses as the check would.

``network.address_conflict`` then takes (:func:`claimed`) the probe already under way for its
own interface and address — the same probe with the same wait, only started sooner — and
sends its own for any other: a path that turns out to leave by another interface is probed
there as before, and the early probe will have been two ARP probes for this host's own
address on the default route's link. Each early probe is taken once: a later run of the same
process (``--watch``) sends its own.
"""

from __future__ import annotations

import ipaddress
import socket
import threading
from typing import TYPE_CHECKING, Optional

if TYPE_CHECKING:
    from netcheck.probes.neighbour import ConflictWatch

IFF_NOARP = 0x80
IFA_F_DADFAILED = 0x08
RTM_F_LOOKUP_TABLE = 0x1000
RTN_UNICAST = 1
READY_WAIT = 1.0  # seconds a check waits at most for the early lookups to say what they probe


def probe_wait(timeout: float) -> float:
    """How long one probe listens for an answer.

    RFC 5227 waits a second before *using* an address; a host on the link that holds it
    answers the probe in milliseconds, and every healthy run would wait out that second.
    """
    return max(0.2, min(timeout / 4, 0.3))


class _Probe:
    """One ARP probe in a daemon thread: the MAC that claims the address, None when nobody."""

    def __init__(self, ifname: str, mac: str, address: str, wait: float,
                 reference: Optional[str]) -> None:
        self.key = (ifname, mac, address)
        self.wait = wait
        self.reference = reference
        self.done = threading.Event()
        self.value: Optional[ConflictWatch] = None
        self.error: Optional[BaseException] = None

    def run(self) -> None:
        from netcheck.probes import neighbour

        try:
            self.value = neighbour.arp_conflict_probe(*self.key, self.wait,
                                                      reference=self.reference)
        except BaseException as exc:  # handed to the check that takes it, as its own would
            self.error = exc
        finally:
            self.done.set()

    def result(self) -> ConflictWatch:
        self.done.wait()
        if self.error is not None:
            raise self.error
        assert self.value is not None
        return self.value


class Early:
    """The probes one process start sent; each is taken once."""

    def __init__(self) -> None:
        self.ready = threading.Event()  # the lookups are done: every probe there is, is known
        self.lock = threading.Lock()
        self.probes: dict[tuple[str, str, str], _Probe] = {}

    def take(self, ifname: str, mac: str, address: str) -> Optional[_Probe]:
        """The early probe of this interface and address (None: none; send one)."""
        self.ready.wait(READY_WAIT)
        with self.lock:
            return self.probes.pop((ifname, mac, address), None)

    def launch(self, destination: str, interface: Optional[str], wait: float) -> None:
        """Find the egress interface and its IPv4 addresses; start a probe for each."""
        try:
            for ifname, mac, address, reference in _probed(destination, interface):
                probe = _Probe(ifname, mac, address, wait, reference)
                with self.lock:
                    self.probes[probe.key] = probe
                threading.Thread(target=probe.run, daemon=True, name="arp-conflict").start()
        except Exception:  # no netlink, no route: the check looks for itself, as before
            pass
        finally:
            self.ready.set()


def _probed(destination: str,
            interface: Optional[str]) -> list[tuple[str, str, str, Optional[str]]]:
    """(interface, its MAC, address, the neighbour that sizes the wait) for each IPv4 address
    the check would probe there."""
    from netcheck.rtnl import IPRoute

    reference: Optional[str] = None
    with IPRoute() as ipr:
        if interface is not None:
            links = [m for m in ipr.get_links() if m.get_attr("IFLA_IFNAME") == interface]
        else:
            routes = ipr.route("get", dst=destination, flags=RTM_F_LOOKUP_TABLE)
            oif = routes[0].get_attr("RTA_OIF") if routes else None
            links = ipr.get_links(oif) if oif is not None else []
            if routes:
                reference = on_link_neighbour(routes[0].get_attr("RTA_GATEWAY"), destination,
                                              routes[0]["type"] == RTN_UNICAST)
        if not links:
            return []
        link = links[0]
        ifname, mac = link.get_attr("IFLA_IFNAME"), link.get_attr("IFLA_ADDRESS")
        if not ifname or not mac or mac == "00:00:00:00:00:00" or link["flags"] & IFF_NOARP:
            return []
        found = []
        for msg in ipr.get_addr(socket.AF_INET):
            address = msg.get_attr("IFA_LOCAL") or msg.get_attr("IFA_ADDRESS")
            flags = msg.get_attr("IFA_FLAGS", msg["flags"])
            if msg["index"] != link["index"] or address is None or flags & IFA_F_DADFAILED \
                    or ipaddress.ip_address(address).is_link_local:
                continue
            found.append((ifname, mac, address, reference))
        return found


def start(host: str, is_address: bool, family: Optional[int], interface: Optional[str],
          timeout: float) -> Optional[Early]:
    """Send the probes of the interface packets to ``host`` leave by (``interface`` when the
    run is told one), in the background; None when this process may not (no CAP_NET_RAW:
    the check is skipped)."""
    from netcheck.facts import has_net_raw

    if not has_net_raw():
        return None
    from netcheck import family as addrfam

    if is_address:
        destination = host.split("%")[0]
    else:  # the name is not resolved yet: the default route's interface
        destination = addrfam.default_probe_address(addrfam.V6 if family == 6 else addrfam.V4)
    early = Early()
    threading.Thread(target=early.launch, args=(destination, interface, probe_wait(timeout)),
                     daemon=True, name="arp-conflict-early").start()
    return early


def on_link_neighbour(gateway: Optional[str], destination: str,
                      unicast: bool) -> Optional[str]:
    """The IPv4 neighbour a route's packets go to first, to size the probe's wait: its
    gateway, or an on-link destination itself; None for a local or unusable route."""
    if gateway is not None:
        return gateway if ":" not in gateway else None
    if not unicast or ":" in destination:
        return None
    return destination


def claimed(early: Optional[Early], ifname: str, mac: str, address: str, wait: float,
            reference: Optional[str] = None) -> ConflictWatch:
    """Blocking: whether another host claims ``address`` (its MAC), and how long the probe
    listened — the early probe when one was sent for this interface and address, else a probe
    sent now, its wait sized by ``reference``. Raises OSError when it cannot be sent (no
    CAP_NET_RAW)."""
    probe = early.take(ifname, mac, address) if early is not None else None
    if probe is not None:
        return probe.result()
    from netcheck.probes import neighbour

    return neighbour.arp_conflict_probe(ifname, mac, address, wait, reference=reference)
