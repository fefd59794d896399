"""The other end of a veth pair, as the kernel reports it: its interface and its namespace.

A veth end knows its peer's interface index (``IFLA_LINK``) and, when the peer lives in
another network namespace, that namespace's id as seen from here (``IFLA_LINK_NETNSID``).
``ip netns list`` names the namespaces under /run/netns with those ids, and the peer's name
is then read inside its namespace. ``ip`` does the reading (``-j``: JSON, argv lists, no
shell): entering another namespace is its job, not a thread of this process's.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from dataclasses import dataclass
from typing import Any, Optional


@dataclass(frozen=True)
class VethPeer:
    """Where the peer of a veth end is: ``namespace`` None when it is this namespace or has
    no name under /run/netns (a container's); ``ifname`` None when it could not be read."""

    ifindex: Optional[int]
    netnsid: Optional[int] = None
    namespace: Optional[str] = None
    ifname: Optional[str] = None


def _ip_json(args: list[str], timeout: float) -> Any:
    ip = shutil.which("ip") or shutil.which("ip", path="/usr/sbin:/sbin")
    if ip is None:
        return None
    try:
        proc = subprocess.run([ip, "-j", *args], capture_output=True, text=True,
                              timeout=timeout, check=False)
        return json.loads(proc.stdout) if proc.returncode == 0 and proc.stdout.strip() else None
    except (OSError, subprocess.TimeoutExpired, ValueError):
        return None


def peer_of(ifname: str, timeout: float = 2.0) -> Optional[VethPeer]:
    """Blocking: the peer of veth ``ifname`` (None when it is no veth or cannot be read)."""
    found = _ip_json(["-d", "link", "show", "dev", ifname], timeout)
    if not isinstance(found, list) or not found or not isinstance(found[0], dict):
        return None
    me = found[0]
    if (me.get("linkinfo") or {}).get("info_kind") != "veth":
        return None
    index = me.get("link_index")
    nsid = me.get("link_netnsid")
    if not isinstance(index, int):
        return VethPeer(None)
    if not isinstance(nsid, int):  # the peer is here, in this namespace
        names = _ip_json(["link", "show"], timeout) or []
        here = next((x.get("ifname") for x in names if isinstance(x, dict)
                     and x.get("ifindex") == index), None)
        return VethPeer(index, None, None, here if isinstance(here, str) else None)
    spaces = _ip_json(["netns", "list"], timeout) or []
    namespace = next((x.get("name") for x in spaces if isinstance(x, dict)
                      and x.get("id") == nsid), None)
    if not isinstance(namespace, str):
        return VethPeer(index, nsid)
    links = _ip_json(["-n", namespace, "link", "show"], timeout) or []
    peer = next((x.get("ifname") for x in links if isinstance(x, dict)
                 and x.get("ifindex") == index), None)
    return VethPeer(index, nsid, namespace, peer if isinstance(peer, str) else None)
