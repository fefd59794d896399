"""network.address_conflict's ARP probes, sent from the moment the target is known.

An RFC 5227 probe proves that nobody else holds an address by waiting for an answer that does
not come (0.2-0.3 s, :func:`probe_wait`); on a healthy run nothing else is left to do by then,
so the wait sets the run's end. The console diagnosis calls :func:`start` once it has parsed
and checked its arguments, before asyncio and the checks are imported and the snapshot is
taken (50-150 ms): a daemon thread asks the kernel which interface the packets leave by (the
target's route; for a name, not yet resolved, the default route's, which the name's route
almost always shares) and probes that interface's IPv4 addresses as the check would.

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
from typing import Optional

IFF_NOARP = 0x80
IFA_F_DADFAILED = 0x08
RTM_F_LOOKUP_TABLE = 0x1000
READY_WAIT = 1.0  # seconds a check waits at most for the early lookups to say what they probe


def probe_wait(timeout: float) -> float:
    """How long one probe listens for an answer.

    RFC 5227 waits a second before *using* an address; a host on the link that holds it
    answers the probe in milliseconds, and every healthy run would wait out that second.
    """
    return max(0.2, min(timeout / 4, 0.3))


class _Probe:
    """One ARP probe in a daemon thread: the MAC that claims the address, None when nobody."""

    def __init__(self, ifname: str, mac: str, address: str, wait: float) -> None:
        self.key = (ifname, mac, address)
        self.wait = wait
        self.done = threading.Event()
        self.value: Optional[str] = None
        self.error: Optional[BaseException] = None

    def run(self) -> None:
        from netcheck.probes import neighbour

        try:
            self.value = neighbour.arp_conflict_probe(*self.key, self.wait)
        except BaseException as exc:  # handed to the check that takes it, as its own would
            self.error = exc
        finally:
            self.done.set()

    def result(self) -> Optional[str]:
        self.done.wait()
        if self.error is not None:
            raise self.error
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
            for ifname, mac, address in _probed(destination, interface):
                probe = _Probe(ifname, mac, address, wait)
                with self.lock:
                    self.probes[probe.key] = probe
                threading.Thread(target=probe.run, daemon=True, name="arp-conflict").start()
        except Exception:  # no netlink, no route: the check looks for itself, as before
            pass
        finally:
            self.ready.set()


def _probed(destination: str, interface: Optional[str]) -> list[tuple[str, str, str]]:
    """(interface, its MAC, address) for each IPv4 address the check would probe there."""
    from netcheck.rtnl import IPRoute

    with IPRoute() as ipr:
        if interface is not None:
            links = [m for m in ipr.get_links() if m.get_attr("IFLA_IFNAME") == interface]
        else:
            routes = ipr.route("get", dst=destination, flags=RTM_F_LOOKUP_TABLE)
            oif = routes[0].get_attr("RTA_OIF") if routes else None
            links = ipr.get_links(oif) if oif is not None else []
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
            found.append((ifname, mac, address))
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


def claimed(early: Optional[Early], ifname: str, mac: str, address: str,
            wait: float) -> Optional[str]:
    """Blocking: the MAC of another host that claims ``address``, None when nobody does —
    the early probe's answer when one was sent for this interface and address, else a probe
    sent now. Raises OSError when it cannot be sent (no CAP_NET_RAW)."""
    probe = early.take(ifname, mac, address) if early is not None else None
    if probe is not None:
        return probe.result()
    from netcheck.probes import neighbour

    return neighbour.arp_conflict_probe(ifname, mac, address, wait)
