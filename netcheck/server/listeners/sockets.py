"""A listening socket as ``ss -tlnpe`` shows it (:class:`Listener`), the processes that hold
it (:class:`Owner`), and the table of one protocol's sockets (:class:`ListenTable`).
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Optional


@dataclass
class Owner:
    """A process holding a listening socket: ``users:(("nginx",pid=812,fd=6))``."""

    pid: int
    name: str
    fd: int

    def to_json(self) -> dict[str, Any]:
        return {"pid": self.pid, "process": self.name, "fd": self.fd}


@dataclass
class Listener:
    """One socket waiting for clients on the port."""

    proto: str  # tcp | udp
    family: int  # 4 | 6
    address: str
    port: int
    inode: int = 0
    uid: Optional[int] = None
    v6only: Optional[bool] = None  # None: not known (no sock_diag)
    recv_q: Optional[int] = None  # TCP: connections waiting for accept()
    send_q: Optional[int] = None  # TCP: the accept queue's limit (listen backlog)
    device: Optional[str] = None  # SO_BINDTODEVICE
    owners: list[Owner] = field(default_factory=list)

    @property
    def wildcard(self) -> bool:
        """Bound to 0.0.0.0 or :: (every address of its family)."""
        return self.address in ("0.0.0.0", "::")

    @property
    def loopback(self) -> bool:
        """Bound to 127.0.0.0/8, ::1 or ::ffff:127.x: only this host can connect."""
        try:
            ip = ipaddress.ip_address(self.address)
        except ValueError:
            return False
        mapped = getattr(ip, "ipv4_mapped", None)
        return bool(ip.is_loopback or (mapped is not None and mapped.is_loopback))

    @property
    def dual_stack(self) -> bool:
        """An IPv6 wildcard that takes IPv4 clients too (IPV6_V6ONLY off)."""
        return self.family == 6 and self.address == "::" and self.v6only is False

    @property
    def endpoint(self) -> str:
        """``198.18.2.10:443`` / ``[::]:443``, as ``ss`` writes it."""
        host = f"[{self.address}]" if self.family == 6 else self.address
        return f"{host}:{self.port}"

    @property
    def families_served(self) -> tuple[int, ...]:
        """The address families whose clients this socket accepts."""
        if self.dual_stack:
            return (4, 6)
        return (self.family,)

    @property
    def backlog_full(self) -> bool:
        """More connections wait than the backlog admits: the program stopped accepting."""
        return (self.proto == "tcp" and self.recv_q is not None and self.send_q is not None
                and self.send_q > 0 and self.recv_q > self.send_q)

    def kind(self) -> str:
        """In words: which clients this socket can take (English, for the evidence)."""
        return self._kind(lambda text: text)

    def kind_text(self) -> str:
        """:meth:`kind` in the reader's language, for a summary."""
        from netcheck.i18n import _

        return self._kind(_)

    def _kind(self, say: Callable[[str], str]) -> str:
        from netcheck.i18n import N_

        if self.wildcard and self.family == 4:
            what = say(N_("every IPv4 address"))
        elif self.wildcard and self.dual_stack:
            what = say(N_("every IPv6 and IPv4 address (dual-stack)"))
        elif self.wildcard and self.v6only:
            what = say(N_("every IPv6 address (IPv6 only)"))
        elif self.wildcard:
            what = say(N_("every IPv6 address"))
        elif self.loopback:
            what = say(N_("loopback only"))
        else:
            what = say(N_("this address only"))
        if self.device:
            what += say(N_(", bound to device {device}")).format(device=self.device)
        return what

    def ss_line(self) -> str:
        """The line ``ss -tlnp`` (``-ulnp``) prints for this socket."""
        state = "LISTEN" if self.proto == "tcp" else "UNCONN"
        peer = "[::]:*" if self.family == 6 else "0.0.0.0:*"
        users = ",".join(f'("{o.name}",pid={o.pid},fd={o.fd})' for o in self.owners)
        local = self.endpoint if not self.device else (
            f"{self.endpoint.rsplit(':', 1)[0]}%{self.device}:{self.port}")
        line = (f"{state:<7}{self.recv_q if self.recv_q is not None else 0:<7}"
                f"{self.send_q if self.send_q is not None else 0:<7}{local:<24}{peer:<14}")
        if users:
            line += f"users:({users})"
        if self.v6only and self.family == 6:
            line += " v6only:1"
        return line.rstrip()

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"proto": self.proto, "local": self.endpoint,
                               "address": self.address, "port": self.port,
                               "family": f"IPv{self.family}", "serves": self.kind()}
        if self.family == 6 and self.address == "::":
            out["v6only"] = self.v6only
        if self.recv_q is not None:
            out["recv_q"] = self.recv_q
        if self.send_q is not None:
            out["send_q"] = self.send_q
        if self.device:
            out["device"] = self.device
        if self.uid is not None:
            out["uid"] = self.uid
        out["owners"] = [o.to_json() for o in self.owners]
        return out


@dataclass
class ListenTable:
    """Every listening socket of one protocol in this network namespace."""

    proto: str
    listeners: list[Listener] = field(default_factory=list)
    source: str = ""  # sock_diag | /proc/net
    error: Optional[str] = None
    owners_visible: bool = True  # False: other users' processes could not be looked into
    owners_complete: bool = True  # False: the walk stopped at its time bound

    def on_port(self, port: int) -> list[Listener]:
        """The sockets bound to ``port``."""
        return [lst for lst in self.listeners if lst.port == port]

    def of_pids(self, pids: Iterable[int]) -> list[Listener]:
        """The sockets held by any of ``pids`` (whatever their port)."""
        wanted = set(pids)
        return [lst for lst in self.listeners if any(o.pid in wanted for o in lst.owners)]
