"""The lab network's plan: its roles, the addresses netcheck, tests and students refer to, the
veth pairs, every namespace's addresses, default routes and sysctls, the client's resolv.conf
and hosts.
"""

from __future__ import annotations

ROLES = ("client", "router", "server", "dns", "stub")

# Addresses netcheck, tests and students refer to.
CLIENT_V4, CLIENT_V6 = "198.18.1.2", "2001:db8:1::2"
GATEWAY_V4, GATEWAY_V6 = "198.18.1.1", "2001:db8:1::1"
SERVER_V4, SERVER_V6 = "198.18.2.10", "2001:db8:2::10"
DNS_V4, DNS_V6 = "198.18.3.53", "2001:db8:3::53"
STUB_V4 = "198.18.4.1"
SERVER_PORTS = (22, 80, 443)

# veth pairs: (namespace that creates it, its end, peer namespace, peer end).
VETHS: tuple[tuple[str, str, str, str], ...] = (
    ("client", "eth0", "router", "r-client"),
    ("client", "eth1", "stub", "eth0"),
    ("server", "eth0", "router", "r-server"),
    ("dns", "eth0", "router", "r-dns"),
)
ADDRESSES: dict[str, tuple[tuple[str, str], ...]] = {
    "client": (("eth0", "198.18.1.2/24"), ("eth0", "2001:db8:1::2/64"), ("eth1", "198.18.4.2/24")),
    "router": (
        ("r-client", "198.18.1.1/24"), ("r-client", "2001:db8:1::1/64"),
        ("r-server", "198.18.2.1/24"), ("r-server", "2001:db8:2::1/64"),
        ("r-dns", "198.18.3.1/24"), ("r-dns", "2001:db8:3::1/64"),
    ),
    "server": (("eth0", "198.18.2.10/24"), ("eth0", "2001:db8:2::10/64")),
    "dns": (("eth0", "198.18.3.53/24"), ("eth0", "2001:db8:3::53/64")),
    "stub": (("eth0", "198.18.4.1/24"),),
}
# Batch lines cannot carry -4/-6, so defaults are spelled 0.0.0.0/0 and ::/0.
DEFAULT_ROUTES: dict[str, tuple[str, ...]] = {
    "client": ("route add 0.0.0.0/0 via 198.18.1.1 dev eth0",
               "route add ::/0 via 2001:db8:1::1 dev eth0"),
    "server": ("route add 0.0.0.0/0 via 198.18.2.1 dev eth0",
               "route add ::/0 via 2001:db8:2::1 dev eth0"),
    "dns": ("route add 0.0.0.0/0 via 198.18.3.1 dev eth0",
            "route add ::/0 via 2001:db8:3::1 dev eth0"),
}
COMMON_SYSCTLS = (
    # Addresses usable at once: no IPv6 duplicate address detection delay.
    "net.ipv6.conf.all.accept_dad=0",
    "net.ipv6.conf.default.accept_dad=0",
    # The router and servers answer every probe with an ICMP error, not one a second:
    # tests and netcheck retry quickly, and a rate-limited error looks like a drop.
    "net.ipv4.icmp_ratelimit=0",
    "net.ipv6.icmp.ratelimit=0",
)
ROLE_SYSCTLS: dict[str, tuple[str, ...]] = {
    "router": ("net.ipv4.ip_forward=1", "net.ipv6.conf.all.forwarding=1"),
    # What systemd sets on most distributions: unprivileged ICMP echo sockets allowed.
    "client": ("net.ipv4.ping_group_range=0 2147483647",),
}
CLIENT_RESOLV_CONF = "search lab.test\nnameserver 198.18.3.53\n"
CLIENT_HOSTS = "127.0.0.1 localhost\n::1 localhost\n"
