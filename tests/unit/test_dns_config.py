"""resolv.conf's options, nsswitch.conf's hosts: line and a local stub's upstreams, read the
way glibc, dnsmasq, unbound and systemd-resolved read them; dns.config judged on them."""

from __future__ import annotations

from pathlib import Path

import pytest
from netcheck.checks import network

from netcheck.model import Status
from netcheck.probes import dns


def _conf(tmp_path: Path, text: str, name: str = "resolv.conf") -> str:
    path = tmp_path / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return str(path)


@pytest.mark.parametrize(("options", "attempts", "timeout", "rotate", "ndots"), [
    ("", 2, 5, False, 1),  # glibc's defaults
    ("options attempts:4 timeout:1", 4, 1, False, 1),
    ("options attempts:9 timeout:99 ndots:30", 5, 30, False, 15),  # clamped as glibc does
    ("options attempts:0 timeout:0 rotate", 1, 1, True, 1),
    ("options timeout:x attempts: edns0 trust-ad", 2, 5, False, 1),  # ignored, not a crash
    ("options ndots:2\noptions rotate", 2, 5, True, 2),  # several options lines add up
])
def test_resolv_conf_options(tmp_path: Path, options: str, attempts: int, timeout: int,
                             rotate: bool, ndots: int) -> None:
    cfg = dns.parse_resolv_conf(_conf(tmp_path, f"nameserver 198.18.3.53\n{options}\n"))
    assert (cfg.attempts, cfg.timeout, cfg.rotate, cfg.ndots) == (attempts, timeout, rotate,
                                                                  ndots)


def test_retry_interval_sends_at_least_the_configured_attempts() -> None:
    cfg = dns.ResolverConfig("x", attempts=5)
    assert dns.retry_interval(2.0, cfg) == dns.RETRY_INTERVAL  # 10 sends in 2 s
    assert 0.5 / dns.retry_interval(0.5, cfg) >= 5  # a short deadline still fits 5
    assert dns.retry_interval(0.05, cfg) == dns.MIN_INTERVAL  # never a flood


@pytest.mark.parametrize(("line", "sources", "asks", "files_first"), [
    ("hosts: files dns", ["files", "dns"], True, True),
    ("hosts:          files mdns4_minimal [NOTFOUND=return] dns myhostname",
     ["files", "mdns4_minimal", "dns", "myhostname"], True, True),
    ("hosts: files", ["files"], False, True),
    ("hosts: files myhostname", ["files", "myhostname"], False, True),
    ("hosts: dns files", ["dns", "files"], True, False),
    ("hosts: files resolve [!UNAVAIL=return] dns", ["files", "resolve", "dns"], True, True),
    ("passwd: files", ["files", "dns"], True, True),  # no hosts: line: glibc's default order
])
def test_nsswitch_hosts_line(tmp_path: Path, line: str, sources: list[str], asks: bool,
                             files_first: bool) -> None:
    nss = dns.parse_nsswitch(_conf(tmp_path, f"# comment\n{line}\n", "nsswitch.conf"))
    assert nss.sources == sources
    assert nss.asks_dns("www.lab.test") is asks
    assert nss.files_first is files_first


def test_mdns_minimal_keeps_local_names_from_dns(tmp_path: Path) -> None:
    nss = dns.parse_nsswitch(_conf(tmp_path, "hosts: files mdns4_minimal [NOTFOUND=return] "
                                             "dns\n", "nsswitch.conf"))
    assert nss.dns_blocker("printer.local") == "mdns4_minimal"
    assert nss.asks_dns("printer.lab.test")


def test_missing_nsswitch_is_glibc_default(tmp_path: Path) -> None:
    nss = dns.parse_nsswitch(str(tmp_path / "missing"))
    assert nss.error and nss.sources == ["dns", "files"] and nss.asks_dns("www.lab.test")


def _point(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, **paths: str) -> None:
    """The stub configuration files live under tmp_path instead of / (nothing else moves)."""
    defaults = {"RESOLVED_UPSTREAMS": "run/systemd/resolve/resolv.conf",
                "DNSMASQ_CONF": "etc/dnsmasq.conf", "DNSMASQ_DIR": "etc/dnsmasq.d",
                "UNBOUND_CONF": "etc/unbound/unbound.conf"}
    for name, rel in defaults.items():
        monkeypatch.setattr(dns.resolvconf, name, str(tmp_path / paths.get(name, rel)))
    monkeypatch.setenv("PATH", str(tmp_path / "no-bin"))  # no resolvectl here


def test_resolved_stub_upstreams_from_its_own_file(tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    _point(monkeypatch, tmp_path)
    _conf(tmp_path, "# managed by systemd-resolved\nnameserver 198.18.3.53\n"
                    "nameserver 127.0.0.53\nnameserver 2001:db8:3::53\n",
          "run/systemd/resolve/resolv.conf")
    cfg = dns.parse_resolv_conf(_conf(tmp_path, "nameserver 127.0.0.53\noptions edns0\n"))
    assert cfg.stub == "127.0.0.53" and cfg.stub_kind == "systemd-resolved"
    assert cfg.upstreams == ["198.18.3.53", "2001:db8:3::53"]
    assert cfg.upstream_source == dns.resolvconf.RESOLVED_UPSTREAMS


def test_resolved_stub_without_its_files_has_no_upstreams(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _point(monkeypatch, tmp_path)
    cfg = dns.parse_resolv_conf(_conf(tmp_path, "nameserver 127.0.0.53\n"))
    assert cfg.uses_stub and cfg.upstreams == [] and cfg.upstream_source is None


def test_dnsmasq_stub_upstreams(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _point(monkeypatch, tmp_path)
    _conf(tmp_path, "listen-address=127.0.0.1\nno-resolv\nserver=198.18.3.53\n"
                    "server=/corp.test/198.18.9.9\nserver=127.0.0.1#5353\n", "etc/dnsmasq.conf")
    _conf(tmp_path, "server=2001:db8:3::53 # second\n", "etc/dnsmasq.d/v6.conf")
    cfg = dns.parse_resolv_conf(_conf(tmp_path, "nameserver 127.0.0.1\n"))
    assert cfg.stub_kind == "local"
    # The domain-only server and the loopback one are not this host's upstreams.
    assert cfg.upstreams == ["198.18.3.53", "2001:db8:3::53"]


def test_dnsmasq_reading_a_resolv_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _point(monkeypatch, tmp_path)
    upstream = _conf(tmp_path, "nameserver 198.18.3.53\n", "run/dnsmasq/resolv.conf")
    _conf(tmp_path, f"resolv-file={upstream}\n", "etc/dnsmasq.conf")
    cfg = dns.parse_resolv_conf(_conf(tmp_path, "nameserver 127.0.0.1\n"))
    assert cfg.upstreams == ["198.18.3.53"] and cfg.upstream_source == upstream


def test_unbound_forwarders_through_includes(tmp_path: Path,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    _point(monkeypatch, tmp_path)
    inc = tmp_path / "etc/unbound/unbound.conf.d"
    _conf(tmp_path, f'server:\n  interface: 127.0.0.1\ninclude: "{inc}/*.conf"\n',
          "etc/unbound/unbound.conf")
    _conf(tmp_path, 'forward-zone:\n  name: "."\n  forward-addr: 198.18.3.53@53#ns.lab.test\n',
          "etc/unbound/unbound.conf.d/forward.conf")
    cfg = dns.parse_resolv_conf(_conf(tmp_path, "nameserver ::1\n"))
    assert cfg.stub == "::1" and cfg.upstreams == ["198.18.3.53"]


def test_the_socket_a_stub_listens_on_names_its_process() -> None:
    # `ss -lunp` done by hand: /proc/net/udp's inode, then the process holding it.
    import os
    import socket

    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
        inode = dns._udp_inode("127.0.0.1", port)
        assert inode is not None and dns._socket_owner(inode) == os.getpid()
    assert dns._udp_inode("127.0.0.1", port) is None  # closed: nobody listens any more


def test_dnsmasq_upstreams_from_its_command_line(tmp_path: Path) -> None:
    conf = _conf(tmp_path, "server=198.18.3.54\nserver=/corp.test/198.18.9.9\n", "extra.conf")
    argv = ["/usr/sbin/dnsmasq", "--keep-in-foreground", "--no-resolv",
            "--listen-address=127.0.0.53", "--server=198.18.3.53", "-S", "2001:db8:3::53",
            "--server=/corp.test/198.18.9.9", f"--conf-file={conf}"]
    found, source = dns._listener_upstreams(4242, argv)
    assert found == ["198.18.3.53", "2001:db8:3::53", "198.18.3.54"]
    assert source is not None and "4242" in source
    # Another program on the stub's address says nothing of dnsmasq's options.
    assert dns._listener_upstreams(7, ["/lib/systemd/systemd-resolved"]) == ([], None)


def test_the_listener_decides_what_kind_of_stub_it_is() -> None:
    cfg = dns.ResolverConfig("/etc/resolv.conf", ["127.0.0.53"], stub_program="dnsmasq")
    assert cfg.stub_kind == "local"  # on systemd-resolved's address, but not resolved
    cfg.stub_program = "systemd-resolved"
    assert cfg.stub_kind == "systemd-resolved"


def _nss(tmp_path: Path, line: str) -> dns.NssHosts:
    return dns.parse_nsswitch(_conf(tmp_path, f"{line}\n", "nsswitch.conf"))


@pytest.mark.parametrize(("resolv", "nss_line", "name", "in_hosts", "status", "code", "words"), [
    ("nameserver 198.18.3.53", "hosts: files dns", "www.lab.test", False, Status.PASS, None,
     ["198.18.3.53"]),
    ("nameserver 198.18.3.53", "hosts: files", "www.lab.test", False, Status.FAIL,
     "DNS_NO_RESOLVER", ["hosts:", "without dns"]),
    ("nameserver 198.18.3.53", "hosts: files", "www.lab.test", True, Status.PASS, None,
     ["hosts file"]),
    ("nameserver 198.18.3.53", "hosts: files mdns4_minimal [NOTFOUND=return] dns",
     "printer.local", False, Status.FAIL, "DNS_NO_RESOLVER", ["mdns4_minimal", ".local"]),
    ("search lab.test", "hosts: files dns", "www.lab.test", False, Status.FAIL,
     "DNS_NO_RESOLVER", ["names no nameserver"]),
    ("search lab.test", "hosts: files dns", "www.lab.test", True, Status.PASS, None,
     ["hosts file"]),
    ("nameserver 127.0.0.53", "hosts: files dns", "www.lab.test", False, Status.PASS, None,
     ["systemd-resolved"]),
])
def test_judge_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, resolv: str,
                      nss_line: str, name: str, in_hosts: bool, status: Status,
                      code: str | None, words: list[str]) -> None:
    _point(monkeypatch, tmp_path)
    cfg = dns.parse_resolv_conf(_conf(tmp_path, resolv + "\n"))
    got = network.judge_config(cfg, _nss(tmp_path, nss_line), name, in_hosts)
    assert got[:2] == (status, code)
    for word in words:
        assert word in got[2]



def _proc(root: Path, processes: dict[int, list[str]]) -> str:
    root.mkdir(exist_ok=True)
    for pid, argv in processes.items():
        d = root / str(pid)
        d.mkdir()
        (d / "cmdline").write_bytes(b"\0".join(a.encode() for a in argv) + b"\0")
    (root / "self").mkdir()  # not a PID: skipped
    return str(root)


def test_without_root_the_stubs_dnsmasq_is_found_by_its_listen_address(tmp_path: Path) -> None:
    from netcheck.probes.dns.resolvconf import _dnsmasq_listening_on

    proc = _proc(tmp_path / "proc", {
        41: ["/usr/sbin/dnsmasq", "--listen-address=127.0.0.53", "--server=198.18.3.53"],
        42: ["/usr/sbin/dnsmasq", "-a", "198.18.122.1", "--server=198.18.3.9"],  # elsewhere
        43: ["/usr/bin/sleep", "100"],
    })
    found = _dnsmasq_listening_on("127.0.0.53", proc)
    assert found is not None and found[0] == 41
    assert _dnsmasq_listening_on("127.0.0.54", proc) is None


def test_dnsmasqs_on_the_same_address_that_disagree_give_no_upstreams(tmp_path: Path) -> None:
    # Two network namespaces, each with its stub on 127.0.0.53: which one is ours cannot be
    # told without root; forwarding to different servers, neither is taken.
    from netcheck.probes.dns.resolvconf import _dnsmasq_listening_on

    disagree = _proc(tmp_path / "a", {
        7: ["dnsmasq", "-a127.0.0.53", "-S", "198.18.3.53"],
        8: ["dnsmasq", "--listen-address", "127.0.0.1,127.0.0.53", "--server=198.18.4.5"],
    })
    assert _dnsmasq_listening_on("127.0.0.53", disagree) is None
    agree = _proc(tmp_path / "b", {
        7: ["dnsmasq", "-a127.0.0.53", "-S", "198.18.3.53"],
        8: ["dnsmasq", "--listen-address", "127.0.0.1,127.0.0.53", "--server=198.18.3.53"],
    })
    found = _dnsmasq_listening_on("127.0.0.53", agree)
    assert found is not None and found[0] in (7, 8)
