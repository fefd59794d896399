"""Lab networks composed from parts, for the fault campaigns (:mod:`netcheck.lab.campaign`).

:class:`netcheck.lab.topology.Lab` is one fixed network; a :class:`ComposedLab` is built from
:class:`Parts` — one or two routers, IPv4 and/or IPv6, one or two uplinks, a split-tunnel VPN
with policy routing, a local stub resolver, NAT, a firewall on either end — with the same
primitives, the same namespace names (``nc<pid>-<n>-<role>``, so ``cleanup_stale`` and
``netcheck lab down`` remove it) and only the servers a case needs (:class:`Services`)::

    client eth0 ──lan0 router [wan0 ──down0 core]   the router (or the core, with two routers)
    client eth1 ──lan0 backup wan0 ──bak0 edge      is the *edge*: it holds srv0 and dns0
                                     edge srv0 ──eth0 server
                                     edge dns0 ──eth0 dns

    subnet  link                    IPv4               IPv6
    1       client eth0 - router    198.18.1.0/24      2001:db8:1::/64   (.2 client, .1 router)
    5       client eth1 - backup    198.18.5.0/24      2001:db8:5::/64   (.2 client, .1 backup)
    6       router wan0 - core      198.18.6.0/24      2001:db8:6::/64   (.1 router, .2 core)
    7       backup wan0 - edge      198.18.7.0/24      2001:db8:7::/64   (.1 backup, .2 edge)
    2       edge srv0 - server      198.18.2.0/24      2001:db8:2::/64   (.1 edge, .10 server)
    3       edge dns0 - dns         198.18.3.0/24      2001:db8:3::/64   (.1 edge, .53 dns)
    VPN     client wg0 (tun)        198.18.100.2/32    2001:db8:100::2/128, corp 198.18.101.0/24

The client's defaults: via the router (metric 100) and, with two uplinks, via the backup
(metric 200). NAT masquerades IPv4 on the gateways' upstream side, as home and office routers
do, and then the core knows no route back to the client's IPv4 LANs (IPv6 stays routed).
Nothing here runs through a shell, and nothing is created in the root namespace.
"""

from __future__ import annotations

import fcntl
import os
import struct
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional, Sequence

from netcheck.lab.topology import (
    COMMON_SYSCTLS,
    Lab,
    LabError,
    _run,
    _run_all,
    _tool,
    python_argv,
)

FAMILIES: dict[str, tuple[int, ...]] = {"dual": (4, 6), "v4": (4,), "v6": (6,)}
VPN_TABLE = 51820  # wg-quick's table and fwmark
VPN_FWMARK = 0xCA6C
CORP_V4, CORP_V6 = "198.18.101.0/24", "2001:db8:101::/64"
SERVICE_PORTS = (22, 80)
STUB_ADDRESS = "127.0.0.53"
TUNSETIFF = 0x400454CA
IFF_TUN, IFF_NO_PI = 0x0001, 0x1000


def v4(subnet: int, host: int) -> str:
    """The lab's IPv4 address ``198.18.<subnet>.<host>``."""
    return f"198.18.{subnet}.{host}"


def v6(subnet: int, host: int) -> str:
    """The lab's IPv6 address ``2001:db8:<subnet>::<host>`` (host written in hex as in v4)."""
    return f"2001:db8:{subnet}::{host}"


def address(family: int, subnet: int, host: int) -> str:
    """The lab address of ``host`` on ``subnet`` in ``family`` (4 or 6)."""
    return v4(subnet, host) if family == 4 else v6(subnet, host)


SERVER = {4: v4(2, 10), 6: v6(2, 10)}
DNS = {4: v4(3, 53), 6: v6(3, 53)}


@dataclass(frozen=True)
class Parts:
    """What a composed network is made of (every field one independent choice)."""

    family: str = "dual"  # dual | v4 | v6: which families every host and router has
    routers: int = 1  # 1: the gateway is the edge; 2: a core router sits behind it
    uplinks: int = 1  # 2: a second client interface eth1 through a backup gateway (metric 200)
    vpn: bool = False  # a split-tunnel VPN: tun wg0, wg-quick's rules, corp routes in its table
    stub: bool = False  # dnsmasq on 127.0.0.53 in the client; resolv.conf names only the stub
    nat: bool = False  # the gateways masquerade IPv4; the core has no route back to the LANs
    client_fw: bool = False  # stateful firewall on the client's input (policy drop)
    server_fw: bool = False  # allow-list firewall on the server's input (policy drop)
    nameservers: tuple[int, ...] = (4,)  # families of the name servers resolv.conf lists

    @property
    def families(self) -> tuple[int, ...]:
        """The address families of this network: (4,), (6,) or (4, 6)."""
        return FAMILIES[self.family]

    def roles(self) -> tuple[str, ...]:
        """The namespaces this network needs."""
        roles = ["client", "router"]
        if self.routers == 2:
            roles.append("core")
        if self.uplinks == 2:
            roles.append("backup")
        return (*roles, "server", "dns")

    @property
    def edge(self) -> str:
        """The router that holds the server and DNS networks."""
        return "core" if self.routers == 2 else "router"

    def describe(self) -> str:
        """One line naming the parts, e.g. ``dual-stack, 2 routers, NAT, stub resolver``."""
        words = [{"dual": "dual-stack", "v4": "IPv4-only", "v6": "IPv6-only"}[self.family],
                 f"{self.routers} router{'s' if self.routers > 1 else ''}",
                 f"{self.uplinks} uplink{'s' if self.uplinks > 1 else ''}"]
        words += [name for flag, name in ((self.vpn, "VPN"), (self.stub, "stub resolver"),
                                          (self.nat, "NAT"), (self.client_fw, "client firewall"),
                                          (self.server_fw, "server firewall")) if flag]
        words.append("name servers " + "+".join(f"v{f}" for f in self.nameservers))
        return ", ".join(words)


@dataclass
class Services:
    """The servers a case runs (only those it needs: each costs a process start)."""

    tcp: bool = True  # the greeter on 22/80 (netcheck.lab.servers tcp)
    tcp_bind: Optional[tuple[str, ...]] = None  # addresses it binds; None: the server's own
    app_mode: Optional[str] = None  # an appserver mode (silent, ...) on 22/80 instead
    dns: bool = True  # the lab.test authoritative server (netcheck.lab.servers dns)
    dns_records: list[tuple[str, str, list[str]]] = field(default_factory=list)
    stub: bool = True  # dnsmasq, when the parts have a stub
    vpn_daemon: bool = True  # the process holding wg0, when the parts have a VPN


@dataclass(frozen=True)
class Link:
    """One veth pair on one subnet: (namespace, device, host number) at each end."""

    ns_a: str
    dev_a: str
    host_a: int
    ns_b: str
    dev_b: str
    host_b: int
    subnet: int


def links(parts: Parts) -> list[Link]:
    """The veth pairs of a network made of ``parts`` (the first namespace creates each)."""
    out = [Link("client", "eth0", 2, "router", "lan0", 1, 1)]
    if parts.uplinks == 2:
        out.append(Link("client", "eth1", 2, "backup", "lan0", 1, 5))
    if parts.routers == 2:
        out.append(Link("router", "wan0", 1, "core", "down0", 2, 6))
    if parts.uplinks == 2:
        out.append(Link("backup", "wan0", 1, parts.edge, "bak0", 2, 7))
    out.append(Link(parts.edge, "srv0", 1, "server", "eth0", 10, 2))
    out.append(Link(parts.edge, "dns0", 1, "dns", "eth0", 53, 3))
    return out


def routes(parts: Parts) -> dict[str, list[str]]:
    """``ip -batch`` route lines per namespace (defaults spelled 0.0.0.0/0 and ::/0)."""
    out: dict[str, list[str]] = {role: [] for role in parts.roles()}
    nat4 = parts.nat
    for fam in parts.families:
        default = "0.0.0.0/0" if fam == 4 else "::/0"

        def via(role: str, dst: str, subnet: int, host: int, extra: str = "",
                fam: int = fam) -> None:
            out[role].append(f"route add {dst} via {address(fam, subnet, host)}{extra}")

        via("client", default, 1, 1, " dev eth0 metric 100")
        if parts.uplinks == 2:
            via("client", default, 5, 1, " dev eth1 metric 200")
            via("backup", default, 7, 2)
        if parts.routers == 2:
            via("router", default, 6, 2)
            if not (nat4 and fam == 4):
                via("core", prefix(fam, 1), 6, 1)
        if parts.uplinks == 2 and not (nat4 and fam == 4):
            via(parts.edge, prefix(fam, 5), 7, 1)
        via("server", default, 2, 1)
        via("dns", default, 3, 1)
    return out


def prefix(family: int, subnet: int) -> str:
    """The /24 or /64 of a lab subnet."""
    return f"198.18.{subnet}.0/24" if family == 4 else f"2001:db8:{subnet}::/64"


def host_prefix(family: int) -> int:
    """Prefix length of a host address on a lab link: 24 or 64."""
    return 24 if family == 4 else 64


ROUTER_SYSCTLS = ("net.ipv4.ip_forward=1", "net.ipv6.conf.all.forwarding=1")
CLIENT_FW = """table inet host_fw {
  chain input {
    type filter hook input priority 0; policy drop;
    ct state established,related accept
    ct state invalid drop
    iifname "lo" accept
    meta l4proto { icmp, ipv6-icmp } accept
  }
}
"""
SERVER_FW = """table inet host_fw {
  chain input {
    type filter hook input priority 0; policy drop;
    ct state established,related accept
    iifname "lo" accept
    meta l4proto { icmp, ipv6-icmp } accept
    tcp dport { 22, 80 } accept
  }
}
"""


def nat_ruleset(upstream: str) -> str:
    """IPv4 masquerade for everything leaving through ``upstream`` (what home routers do)."""
    return ("table ip lab_nat {\n  chain post {\n"
            "    type nat hook postrouting priority srcnat; policy accept;\n"
            f'    oifname "{upstream}" masquerade\n  }}\n}}\n')


class ComposedLab(Lab):
    """A disposable network built from :class:`Parts`; torn down like a :class:`Lab`.

    >>> with ComposedLab(Parts(family="v6", routers=2)) as lab:     # doctest: +SKIP
    ...     lab.exec("client", ["ping", "-c1", "-W1", "2001:db8:2::10"]).returncode
    0
    """

    def __init__(self, parts: Parts, services: Optional[Services] = None, *,
                 keep: bool = False, keep_logs: bool = False) -> None:
        """Prepare names only; nothing touches the system before build()."""
        super().__init__(keep=keep, keep_logs=keep_logs, servers=False)
        self.parts = parts
        self.services = services or Services()
        self.namespaces = {role: f"{self.prefix}-{role}" for role in parts.roles()}

    # -- what the client sees -----------------------------------------------------------------

    def resolv_conf(self) -> str:
        """The client's resolv.conf for these parts (the stub's, or the name servers')."""
        if self.parts.stub:
            return f"nameserver {STUB_ADDRESS}\noptions edns0 trust-ad\nsearch lab.test\n"
        lines = [f"nameserver {DNS[f]}" for f in self.parts.nameservers]
        return "search lab.test\n" + "\n".join(lines) + "\n"

    # -- building -----------------------------------------------------------------------------

    def _build(self) -> None:
        ip = _tool("ip")
        self._create_namespaces()
        _run_all([(self._in(role, [_tool("sysctl"), "-q", "-w", *self._sysctls(role)]), None)
                  for role in self.namespaces])
        self._start_servers()  # they bind with FREEBIND: no need to wait for the links
        plan = links(self.parts)
        creators = sorted({link.ns_a for link in plan})
        _run_all([([ip, "-n", self.ns(role), "-batch", "-"],
                   "".join(f"link add {lk.dev_a} type veth peer name {lk.dev_b} "
                           f"netns {self.ns(lk.ns_b)}\n" for lk in plan if lk.ns_a == role))
                  for role in creators])
        _run_all([([ip, "-n", self.ns(role), "-batch", str(self._batch_file(role))], None)
                  for role in self.namespaces])
        if self.parts.vpn:
            self._vpn_rules()
        self._tune_veths(plan)
        self._rulesets()
        self.write_client_file("resolv.conf", self.resolv_conf())
        self.write_client_file("hosts", "127.0.0.1 localhost\n::1 localhost\n")
        self._start_client_daemons()
        self._wait_ready()

    def _sysctls(self, role: str) -> list[str]:
        values = list(COMMON_SYSCTLS)
        if role in ("router", "core", "backup"):
            values += ROUTER_SYSCTLS
        if role == "client":
            values.append("net.ipv4.ping_group_range=0 2147483647")
        return values

    def _batch_file(self, role: str) -> Path:
        """The iproute2 batch for one namespace (kept in state_dir: students can read it)."""
        parts = self.parts
        lines = ["link set lo up"]
        ends = [(lk.dev_a, lk.host_a, lk.subnet) for lk in links(parts) if lk.ns_a == role]
        ends += [(lk.dev_b, lk.host_b, lk.subnet) for lk in links(parts) if lk.ns_b == role]
        for dev, host, subnet in sorted(ends):
            lines.append(f"link set {dev} up")
            lines += [f"addr add {address(f, subnet, host)}/{host_prefix(f)} dev {dev}"
                      for f in parts.families]
        if role == "client" and parts.vpn:
            lines += self._vpn_lines()
        lines += routes(parts)[role]
        path = self.state_dir / f"{role}.batch"
        path.write_text("\n".join(lines) + "\n")
        return path

    def _vpn_lines(self) -> list[str]:
        # wg-quick's policy routing (its two rules and its table), as a split tunnel: the
        # VPN's table holds only the corporate prefix, so everything else falls through to
        # main. The tun is persistent: the VPN daemon attaches to it (then it has carrier).
        lines = ["tuntap add dev wg0 mode tun", "link set wg0 up"]
        for fam in self.parts.families:
            host = "198.18.100.2/32" if fam == 4 else "2001:db8:100::2/128"
            corp = CORP_V4 if fam == 4 else CORP_V6
            lines += [f"addr add {host} dev wg0", f"route add {corp} dev wg0 table {VPN_TABLE}"]
        return lines

    def _vpn_rules(self) -> None:
        # Rules carry no address, so their family is the command's (-4/-6), which a batch
        # line cannot carry: one small batch per family.
        ip = _tool("ip")
        rules = ("rule add pref 32764 table main suppress_prefixlength 0\n"
                 f"rule add pref 32765 not fwmark {VPN_FWMARK:#x} table {VPN_TABLE}\n")
        _run_all([([ip, f"-{fam}", "-n", self.ns("client"), "-batch", "-"], rules)
                  for fam in self.parts.families])

    def _tune_veths(self, plan: Sequence[Link]) -> None:
        # NAPI threads on every veth end: otherwise an ICMP error for a SYN arrives inside the
        # sender's own connect() call and is ignored until the SYN is retried (STYLE.md).
        ends: dict[str, list[str]] = {}
        for lk in plan:
            ends.setdefault(lk.ns_a, []).append(lk.dev_a)
            ends.setdefault(lk.ns_b, []).append(lk.dev_b)
        ethtool, tee = _tool("ethtool"), _tool("tee")
        _run_all([(self._in(role, [ethtool, "-K", dev, "tso", "off", "gro", "on"]), None)
                  for role, devs in ends.items() for dev in devs])
        _run_all([(self._in(role, [tee, *(f"/sys/class/net/{d}/threaded" for d in devs)]), "1\n")
                  for role, devs in ends.items()])

    def _rulesets(self) -> None:
        parts = self.parts
        loads: dict[str, str] = {}
        if parts.nat and 4 in parts.families:
            loads["router"] = nat_ruleset("wan0" if parts.routers == 2 else "srv0")
            if parts.routers == 1:  # the router is the edge: both upstream links
                loads["router"] += nat_ruleset("dns0").replace("lab_nat", "lab_nat_dns")
            if parts.uplinks == 2:
                loads["backup"] = nat_ruleset("wan0")
        if parts.client_fw:
            loads["client"] = CLIENT_FW
        if parts.server_fw:
            loads["server"] = SERVER_FW
        nft = _tool("nft")
        _run_all([(self._in(role, [nft, "-f", "-"]), text) for role, text in loads.items()])

    def _start_servers(self) -> None:
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        services = self.services
        for name in ("tcp", "dns"):
            (self.state_dir / f"{name}.ready").unlink(missing_ok=True)
        bind = services.tcp_bind or tuple(SERVER[f] for f in self.parts.families)
        if services.tcp and not services.app_mode:
            self.popen("server", python_argv("-m", "netcheck.lab.servers", "tcp",
                                         "--ports", ",".join(map(str, SERVICE_PORTS)),
                                         "--bind", ",".join(bind),
                                         "--ready", str(self.state_dir / "tcp.ready")),
                       name="tcp", env=env)
        if services.dns:
            self.set_dns_mode("normal")
            if services.dns_records:
                self.add_dns_records(*services.dns_records)
            self.popen("dns", python_argv("-m", "netcheck.lab.servers", "dns",
                                     "--control", str(self.dns_control),
                                     "--ready", str(self.state_dir / "dns.ready")),
                       name="dns", env=env)

    def _start_client_daemons(self) -> None:
        """The stub resolver, the VPN daemon and an appserver (they need the links to exist)."""
        services = self.services
        if services.tcp and services.app_mode:  # binds its addresses: they must exist
            bind = services.tcp_bind or tuple(SERVER[f] for f in self.parts.families)
            listen = ",".join(f"[{a}]:{p}" if ":" in a else f"{a}:{p}"
                              for a in bind for p in SERVICE_PORTS)
            self.popen("server", python_argv("-m", "netcheck.lab.appserver", "--listen", listen,
                                         "--mode", services.app_mode,
                                         "--ready", str(self.state_dir / "tcp.ready")),
                       name="tcp", env={**os.environ, "PYTHONUNBUFFERED": "1"})
        if self.parts.stub and self.services.stub:
            upstreams = [f"--server={DNS[f]}" for f in self.parts.nameservers]
            self.popen("client", [_tool("dnsmasq"), "--keep-in-foreground", "--no-resolv",
                                  "--no-hosts", "--bind-interfaces",
                                  f"--listen-address={STUB_ADDRESS}", "--port=53",
                                  "--pid-file", "--user=root", "--log-facility=-",
                                  *upstreams], name="stub")
        if self.parts.vpn and self.services.vpn_daemon:
            self.popen("client", python_argv("-m", "netcheck.lab.compose", "tun-hold", "wg0"),
                       name="vpn")

    def _wait_ready(self, timeout: float = 10.0) -> None:
        """Servers wrote their ready files; the stub answers on 53; wg0 has carrier."""
        super()._wait_ready(timeout)
        deadline = time.monotonic() + timeout
        checks = []
        if self.parts.stub and self.services.stub:
            checks.append(("stub", lambda: self._listening_udp(53)))
        if self.parts.vpn and self.services.vpn_daemon:
            checks.append(("vpn", lambda: "NO-CARRIER" not in
                           self.ip("client", "link", "show", "wg0").stdout))
        for name, ready in checks:
            proc = next(p for n, p, _ in self._procs if n == name)
            while not ready():
                if proc.poll() is not None:
                    raise LabError(f"{name} exited with {proc.returncode}:\n{self.log(name)}")
                if time.monotonic() > deadline:
                    raise LabError(f"{name} not ready after {timeout}s")
                time.sleep(0.01)

    def add_namespace(self, role: str) -> str:
        """One more namespace for a fault's own host (a rogue on the LAN); torn down with us."""
        if role in self.namespaces:
            raise LabError(f"role {role!r} exists already")
        name = f"{self.prefix}-{role}"
        self.namespaces[role] = name
        self._save_state()  # recorded before it exists, so a crash still cleans it
        _run([_tool("ip"), "netns", "add", name])
        _run(self._in(role, [_tool("sysctl"), "-q", "-w", *COMMON_SYSCTLS]))
        return name

    def _listening_udp(self, port: int) -> bool:
        table = self.exec("client", ["cat", "/proc/net/udp"]).stdout
        return f":{port:04X} " in table


def hold_tun(name: str) -> int:
    """Attach to tun device ``name`` and discard what it carries: a VPN whose peer is gone.

    While this runs the device has carrier (as with a live wireguard-go or openvpn); packets
    routed into it vanish, as they do when the far end of a tunnel stops answering.
    """
    fd = os.open("/dev/net/tun", os.O_RDWR)
    fcntl.ioctl(fd, TUNSETIFF, struct.pack("16sH", name.encode(), IFF_TUN | IFF_NO_PI))
    while True:
        os.read(fd, 65536)


def announce_arp(dev: str, ipv4: str, interval: float = 0.3) -> int:
    """Claim ``ipv4`` on ``dev`` with gratuitous ARP, again and again (a host that took it).

    What a second machine configured with the same address does when it boots and whenever
    its ARP cache is refreshed: every neighbour on the link learns its MAC for that address.
    """
    import socket

    sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(0x0806))
    sock.bind((dev, 0))
    mac = bytes.fromhex(Path(f"/sys/class/net/{dev}/address").read_text().strip()
                        .replace(":", ""))
    addr = socket.inet_aton(ipv4)
    broadcast = b"\xff" * 6
    # Ethernet header, then ARP: ethernet/IPv4, request, sender = target = the claimed address.
    frame = (broadcast + mac + b"\x08\x06" + b"\x00\x01\x08\x00\x06\x04\x00\x01"
             + mac + addr + b"\x00" * 6 + addr)
    while True:
        sock.send(frame)
        time.sleep(interval)


def main(argv: Optional[list[str]] = None) -> int:
    """``python -m netcheck.lab.compose tun-hold DEV | arp-announce DEV IPV4``.

    Both are started by the lab inside a lab namespace and ended by it, by PID.
    """
    args = sys.argv[1:] if argv is None else argv
    try:
        if len(args) == 2 and args[0] == "tun-hold":
            return hold_tun(args[1])
        if len(args) == 3 and args[0] == "arp-announce":
            return announce_arp(args[1], args[2])
    except KeyboardInterrupt:
        return 0
    print("usage: python -m netcheck.lab.compose tun-hold DEV | arp-announce DEV IPV4",
          file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
