"""network.address_conflict's early ARP probes (netcheck.probes.conflict): the check takes
the probe the process started for its interface and address, once; for any other it sends
its own. The packet probe itself is replaced: nothing is sent."""

from __future__ import annotations

import threading
from typing import Optional

import pytest

from netcheck.probes import conflict, neighbour


class _Wire:
    """Stands in for neighbour.arp_conflict_probe: who answers, and what was sent."""

    def __init__(self, answers: dict[str, str]) -> None:
        self.answers = answers
        self.sent: list[tuple[str, str, str, float]] = []
        self.references: list[Optional[str]] = []
        self.lock = threading.Lock()

    def __call__(self, ifname: str, mac: str, address: str, wait: float,
                 reference: Optional[str] = None) -> neighbour.ConflictWatch:
        with self.lock:
            self.sent.append((ifname, mac, address, wait))
            self.references.append(reference)
        if address == "error":
            raise OSError(1, "Operation not permitted")
        return neighbour.ConflictWatch(self.answers.get(address), wait, 2, reference)


def _early(monkeypatch: pytest.MonkeyPatch, wire: _Wire,
           probed: list[tuple[str, str, str, Optional[str]]]) -> conflict.Early:
    monkeypatch.setattr(neighbour, "arp_conflict_probe", wire)
    monkeypatch.setattr(conflict, "_probed", lambda destination, interface: probed)
    early = conflict.Early()
    early.launch("198.18.2.10", None, 0.3)
    return early


MAC = "02:00:00:00:00:01"


def test_the_check_takes_the_early_probe_once(monkeypatch: pytest.MonkeyPatch) -> None:
    wire = _Wire({"198.18.1.2": "02:00:00:00:00:99"})
    early = _early(monkeypatch, wire, [("eth0", MAC, "198.18.1.2", "198.18.1.1")])
    assert conflict.claimed(early, "eth0", MAC, "198.18.1.2", 0.3).claimed_by == "02:00:00:00:00:99"
    assert len(wire.sent) == 1  # the early one: the check sent nothing more
    assert wire.references == ["198.18.1.1"]  # its wait sized by the route's first neighbour
    # A second run of the process (--watch) sends its own.
    assert conflict.claimed(early, "eth0", MAC, "198.18.1.2", 0.2).claimed_by == "02:00:00:00:00:99"
    assert wire.sent[-1] == ("eth0", MAC, "198.18.1.2", 0.2) and len(wire.sent) == 2


def test_another_interface_or_address_is_probed_by_the_check(
        monkeypatch: pytest.MonkeyPatch) -> None:
    wire = _Wire({})
    early = _early(monkeypatch, wire, [("eth0", MAC, "198.18.1.2", "198.18.1.1")])
    assert conflict.claimed(early, "eth1", MAC, "198.18.1.2", 0.3).claimed_by is None
    assert conflict.claimed(early, "eth0", MAC, "198.18.1.3", 0.3).claimed_by is None
    assert sorted(s[:3] for s in wire.sent) == [("eth0", MAC, "198.18.1.2"),
                                                ("eth0", MAC, "198.18.1.3"),
                                                ("eth1", MAC, "198.18.1.2")]


def test_an_early_probe_that_could_not_be_sent_fails_as_the_checks_own(
        monkeypatch: pytest.MonkeyPatch) -> None:
    early = _early(monkeypatch, _Wire({}), [("eth0", MAC, "error", None)])
    with pytest.raises(OSError):
        conflict.claimed(early, "eth0", MAC, "error", 0.3)


def test_without_early_probes_the_check_sends_its_own(monkeypatch: pytest.MonkeyPatch) -> None:
    wire = _Wire({})
    monkeypatch.setattr(neighbour, "arp_conflict_probe", wire)
    assert conflict.claimed(None, "eth0", MAC, "198.18.1.2", 0.25).claimed_by is None
    assert wire.sent == [("eth0", MAC, "198.18.1.2", 0.25)]


def test_a_failed_lookup_leaves_the_probing_to_the_check(monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(destination: str, interface: Optional[str]) -> list[tuple[str, str, str, str]]:
        raise OSError(97, "Address family not supported by protocol")

    monkeypatch.setattr(conflict, "_probed", broken)
    wire = _Wire({})
    monkeypatch.setattr(neighbour, "arp_conflict_probe", wire)
    early = conflict.Early()
    early.launch("198.18.2.10", None, 0.3)
    assert early.ready.is_set()
    assert conflict.claimed(early, "eth0", MAC, "198.18.1.2", 0.3).claimed_by is None
    assert len(wire.sent) == 1


@pytest.mark.parametrize(("timeout", "wait"), [(5.0, 0.3), (1.0, 0.25), (0.4, 0.2)])
def test_probe_wait(timeout: float, wait: float) -> None:
    assert conflict.probe_wait(timeout) == wait


def test_the_first_neighbour_sizes_the_wait() -> None:
    # The gateway when there is one (IPv4 only); an on-link unicast destination itself.
    assert conflict.on_link_neighbour("198.18.1.1", "198.18.2.10", True) == "198.18.1.1"
    assert conflict.on_link_neighbour(None, "198.18.1.7", True) == "198.18.1.7"
    assert conflict.on_link_neighbour(None, "198.18.1.2", False) is None  # local route
    assert conflict.on_link_neighbour("fe80::1", "198.18.2.10", True) is None
