"""The socket table of server mode, on real loopback sockets: addresses, IPv4 / IPv6 /
dual-stack told apart, owners by inode, the /proc fallback, docker-proxy, the handshake."""

from __future__ import annotations

import os
import socket
from typing import Iterator

import pytest

from netcheck.server import handshake as hs
from netcheck.server import listeners as ls


def _listen(family: int, host: str, v6only: int | None = None) -> socket.socket:
    s = socket.socket(family, socket.SOCK_STREAM)
    if v6only is not None:
        s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, v6only)
    s.bind((host, 0))
    s.listen(8)
    return s


@pytest.fixture
def sockets() -> Iterator[dict[str, socket.socket]]:
    found = {
        "v4_loopback": _listen(socket.AF_INET, "127.0.0.1"),
        "v6_loopback": _listen(socket.AF_INET6, "::1", 1),
        "dual": _listen(socket.AF_INET6, "::", 0),
        "v6only": _listen(socket.AF_INET6, "::", 1),
    }
    yield found
    for s in found.values():
        s.close()


def _mine(table: ls.ListenTable, sock: socket.socket) -> ls.Listener:
    port = sock.getsockname()[1]
    found = table.on_port(port)
    assert len(found) == 1, found
    return found[0]


def test_sock_diag_tells_the_families_apart(sockets: dict[str, socket.socket]) -> None:
    table = ls.read_table("tcp")
    assert table.source == "sock_diag" and table.error is None
    v4 = _mine(table, sockets["v4_loopback"])
    assert (v4.family, v4.address, v4.loopback, v4.wildcard) == (4, "127.0.0.1", True, False)
    assert v4.kind() == "loopback only"
    dual = _mine(table, sockets["dual"])
    assert dual.dual_stack and dual.families_served == (4, 6)
    assert dual.kind() == "every IPv6 and IPv4 address (dual-stack)"
    v6only = _mine(table, sockets["v6only"])
    assert v6only.v6only is True and not v6only.dual_stack and v6only.families_served == (6,)
    assert v6only.ss_line().endswith("v6only:1")
    assert _mine(table, sockets["v6_loopback"]).loopback


def test_owners_are_this_process_with_its_fd(sockets: dict[str, socket.socket]) -> None:
    table = ls.read_table("tcp")
    mine = _mine(table, sockets["v4_loopback"])
    assert [(o.pid, o.fd) for o in mine.owners] == [(os.getpid(), sockets["v4_loopback"].fileno())]
    assert f'pid={os.getpid()}' in mine.ss_line()


def test_backlog_and_queue_come_from_sock_diag(sockets: dict[str, socket.socket]) -> None:
    mine = _mine(ls.read_table("tcp"), sockets["v4_loopback"])
    assert mine.send_q == 8 and mine.recv_q == 0 and not mine.backlog_full


def test_proc_net_fallback_reads_the_same_sockets(sockets: dict[str, socket.socket],
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    def no_diag(*args: object, **kwargs: object) -> None:
        raise OSError(93, "Protocol not supported")

    monkeypatch.setattr(ls, "diag_dump", no_diag)
    table = ls.read_table("tcp")
    assert table.source == "/proc/net"
    dual = _mine(table, sockets["dual"])
    assert dual.address == "::" and dual.v6only is None  # not knowable from /proc
    assert _mine(table, sockets["v4_loopback"]).owners[0].pid == os.getpid()


def test_proc_net_line_parsing() -> None:
    text = ("  sl  local_address                         remote_address                        "
            "st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n"
            "   0: 00000000000000000000000000000000:01BB 00000000000000000000000000000000:0000 "
            "0A 00000000:00000000 00:00000000 00000000     0        0 4242 1 0 100 0 0 10 0\n"
            "   1: 0000000000000000FFFF00000100007F:1F90 00000000000000000000000000000000:0000 "
            "0A 00000000:00000002 00:00000000 00000000    33        0 4243 1 0 100 0 0 10 0\n")
    found = ls.parse_proc_net(text, "tcp", 6)
    assert [(s.address, s.port, s.inode, s.uid) for s in found] == [
        ("::", 443, 4242, 0), ("::ffff:127.0.0.1", 8080, 4243, 33)]
    assert found[1].loopback and found[1].recv_q == 2


def test_udp_sockets_bound_and_unconnected_are_listeners() -> None:
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("127.0.0.1", 0))
    try:
        table = ls.read_table("udp")
        mine = table.on_port(s.getsockname()[1])
        assert len(mine) == 1 and mine[0].proto == "udp"
        assert mine[0].ss_line().startswith("UNCONN")
    finally:
        s.close()


def test_docker_proxy_arguments_name_the_container() -> None:
    argv = ["/usr/bin/docker-proxy", "-proto", "tcp", "-host-ip", "0.0.0.0", "-host-port",
            "443", "-container-ip", "198.19.0.3", "-container-port", "443"]
    proxy = ls.container_proxy("docker-proxy", argv)
    assert proxy is not None and proxy["container_ip"] == "198.19.0.3"
    assert proxy["container_port"] == 443 and "Docker" in proxy["what"]
    assert ls.container_proxy("nginx", argv) is None


def test_this_process_is_found_by_name() -> None:
    me = ls.process_info(os.getpid())
    found = ls.matching_processes(me.name)
    assert found == [] or all(p.pid != os.getpid() for p in found)  # never itself
    assert me.user and me.uptime_s is not None and me.argv


def test_human_durations() -> None:
    assert ls.human_duration(5) == "5 s"
    assert ls.human_duration(250) == "4 min 10 s"
    assert ls.human_duration(3 * 86400 + 7200) == "3 days 2 h"


# -- the handshake -------------------------------------------------------------------------------

def test_handshake_measures_the_kernel_rtt(sockets: dict[str, socket.socket]) -> None:
    port = sockets["v4_loopback"].getsockname()[1]
    result = hs.handshake("127.0.0.1", port, 1.0)
    assert result.state == "open" and result.rtt_ms is not None and result.rtt_ms < 50
    assert result.wall_ms is not None


def test_handshake_to_a_closed_port_is_refused() -> None:
    s = _listen(socket.AF_INET, "127.0.0.1")
    port = s.getsockname()[1]
    s.close()
    assert hs.handshake("127.0.0.1", port, 1.0).state == "refused"


def test_handshake_over_ipv4_reaches_a_dual_stack_socket(
        sockets: dict[str, socket.socket]) -> None:
    port = sockets["dual"].getsockname()[1]
    assert hs.handshake("127.0.0.1", port, 1.0).state == "open"
    assert hs.handshake("127.0.0.1", sockets["v6only"].getsockname()[1], 1.0).state == "refused"
