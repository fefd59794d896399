"""resolv.conf and hosts-file reading, the way glibc reads them."""

from __future__ import annotations

import time
from pathlib import Path

from netcheck.probes import dns


def test_resolv_conf_servers_search_and_ndots(tmp_path: Path) -> None:
    conf = tmp_path / "resolv.conf"
    conf.write_text("# generated\nnameserver 198.18.3.53 # main\nnameserver not-an-ip\n"
                    "nameserver 2001:db8:3::53\nsearch lab.test. example.test\n"
                    "options ndots:2 timeout:1\n")
    cfg = dns.parse_resolv_conf(str(conf))
    assert cfg.nameservers == ["198.18.3.53", "2001:db8:3::53"]
    assert cfg.search == ["lab.test", "example.test"]
    assert cfg.ndots == 2
    assert dns._candidates("www", cfg) == ["www.lab.test", "www.example.test", "www"]
    assert dns._candidates("a.b.c", cfg)[0] == "a.b.c"


def test_unreadable_or_huge_resolv_conf_is_an_error_not_a_crash(tmp_path: Path) -> None:
    assert dns.parse_resolv_conf(str(tmp_path / "missing")).error
    huge = tmp_path / "huge"
    huge.write_bytes(b"nameserver 198.18.3.53\n" * 100_000)
    cfg = dns.parse_resolv_conf(str(huge))
    assert cfg.error and cfg.nameservers == []


def test_hosts_lookup_matches_whole_names_only(tmp_path: Path) -> None:
    hosts = tmp_path / "hosts"
    hosts.write_text("127.0.0.1 localhost\n198.18.2.99 www.lab.test # stale\n"
                     "198.18.2.98 WWW.LAB.TEST.\n#198.18.2.1 www.lab.test\n"
                     "198.18.2.97 xwww.lab.test\n198.18.2.96 www.lab.test.example")
    assert dns.hosts_lookup(str(hosts), "www.lab.test") == ["198.18.2.99", "198.18.2.98"]


def test_block_list_sized_hosts_file_is_fast(tmp_path: Path) -> None:
    hosts = tmp_path / "hosts"
    with hosts.open("w") as fh:
        for i in range(300_000):
            fh.write(f"0.0.0.0 ads{i}.example.test\n")
        fh.write("198.18.2.77 www.lab.test")  # last line, no newline
    start = time.perf_counter()
    assert dns.hosts_lookup(str(hosts), "www.lab.test") == ["198.18.2.77"]
    assert time.perf_counter() - start < 2.0  # generous: a line loop takes ~0.4 s here


def test_an_empty_answer_beside_a_lost_question_settles_nothing() -> None:
    # The A question lost on the way, the empty AAAA answer back: "no address" would be a
    # guess; the next server that answered both settles it.
    lost_a = dns.DnsAnswer("198.18.3.53", "www.lab.test", "A", error="timeout", sent=10)
    empty_aaaa = dns.DnsAnswer("198.18.3.53", "www.lab.test", "AAAA", "NOERROR")
    other = [dns.DnsAnswer("198.18.3.54", "www.lab.test", "A", "NOERROR", ["198.18.2.10"]),
             dns.DnsAnswer("198.18.3.54", "www.lab.test", "AAAA", "NOERROR")]
    servers = ["198.18.3.53", "198.18.3.54"]
    assert dns._settle([lost_a, empty_aaaa], servers) is None
    assert dns._settle([lost_a, empty_aaaa, *other], servers) == ["198.18.2.10"]
    # Both questions answered, neither with an address: that is an answer (DNS_NO_ADDRESS).
    empty_a = dns.DnsAnswer("198.18.3.53", "www.lab.test", "A", "NOERROR")
    assert dns._settle([empty_a, empty_aaaa], servers) == []
