"""Layers 1 and 2 against recorded machines: NICs and drivers, link state, rfkill,
Wi-Fi association and signal, counters, and interfaces off the path.

Each fixture under tests/fixtures/sysroot/<machine>/ is a sysfs/procfs tree in the shape of
a real machine plus ``facts.json`` (the netlink snapshot). The path to the target is given
to the checks the way the runner memoises it, so the checks run unchanged.
"""

from __future__ import annotations

import asyncio
import json
import socket
import struct
import subprocess
from pathlib import Path
from typing import Any, Optional

import pytest

from netcheck import registry, runner
from netcheck.facts import Facts, Link
from netcheck.model import Result, Status
from netcheck.probes import hardware, wireless
from netcheck.runner import Context, Options, PathInfo
from netcheck.target import parse_target

SYSROOT = Path(__file__).resolve().parent.parent / "fixtures" / "sysroot"
TARGET = "tcp://198.18.2.10:22"
REGISTRY = registry.load(builtin=("netcheck.checks.physical", "netcheck.checks.link"),
                         third_party=False)
CHECKS = REGISTRY.by_id()


def load_facts(machine: str) -> Facts:
    root = SYSROOT / machine
    return Facts.from_json(json.loads((root / "facts.json").read_text()), sysroot=str(root))


def make_context(facts: Facts, egress: Optional[str], interface: Optional[str] = None) -> Context:
    """A Context whose route lookup is already answered: packets leave by ``egress``."""
    ctx = Context(parse_target(TARGET), Options(sysroot=facts.sysroot, interface=interface,
                                                deadline=10.0), facts)
    known = facts.link(name=egress) if egress else None
    gateway = next((r.gateway for r in facts.routes
                    if known and r.oif == known.index and r.is_default), None)
    path: asyncio.Future[PathInfo] = asyncio.get_running_loop().create_future()
    path.set_result(PathInfo(interface=egress, ifindex=known.index if known else None,
                             gateway=gateway, family=socket.AF_INET, basis="target"))
    ctx._memo["path"] = path  # type: ignore[assignment]
    return ctx


def run(check_id: str, machine: str, egress: Optional[str] = None,
        interface: Optional[str] = None, facts: Optional[Facts] = None) -> Result:
    """Run one check's function on a machine, packets leaving by ``egress``."""
    async def go() -> Result:
        ctx = make_context(facts or load_facts(machine), egress, interface)
        return await CHECKS[check_id].run(ctx)

    return asyncio.run(go())


def run_all(machine: str, egress: str) -> list[Any]:
    """Every physical and link check through the runner, as a real run would."""
    async def go() -> list[Any]:
        ctx = make_context(load_facts(machine), egress)
        return await runner.run_checks(ctx, REGISTRY.checks)

    return asyncio.run(go())


def commands(result: Result) -> list[str]:
    assert result.hint is not None
    return result.hint.commands


# -- declarations ---------------------------------------------------------------------
def test_checks_are_declared_with_their_codes_and_titles() -> None:
    by_id = CHECKS
    assert by_id["physical.nic"].codes == ("NIC_MISSING", "NIC_NO_DRIVER")
    assert by_id["link.carrier"].title == "Interface has carrier"
    assert by_id["link.carrier"].requires == ("link.admin_up",)
    assert by_id["link.admin_up"].requires == ("link.exists",)
    assert set(by_id["link.wifi"].codes) == {"WIFI_RFKILL_SOFT", "WIFI_RFKILL_HARD",
                                             "WIFI_NOT_ASSOCIATED", "WIFI_WEAK_SIGNAL"}
    assert by_id["link.errors"].runs_last and by_id["link.errors"].codes == ("LINK_ERRORS",)
    assert by_id["link.others"].codes == ()
    ladder = [c.id for c in REGISTRY.checks]
    assert ladder.index("link.wifi") < ladder.index("link.admin_up")


# -- layer 1 ----------------------------------------------------------------------------
def test_vm_without_network_adapter_is_nic_missing() -> None:
    result = run("physical.nic", "vm-no-nic")
    assert result.status is Status.FAIL
    assert result.code == "NIC_MISSING"
    assert result.evidence["devices"] == []  # the USB tablet and the hub are not NICs


def test_blacklisted_e1000_is_nic_no_driver_with_the_fix() -> None:
    result = run("physical.nic", "desktop-nic-no-driver")
    assert result.status is Status.FAIL
    assert result.code == "NIC_NO_DRIVER"
    assert "0000:00:03.0 8086:100e" in result.summary
    assert result.hint is not None and "/etc/modprobe.d/blacklist-e1000.conf" in result.hint.text
    assert commands(result)[0] == "lspci -nnk -s 0000:00:03.0"
    assert "modprobe e1000" in commands(result)
    (nic,) = result.evidence["devices"]
    assert nic["ids"] == "8086:100e" and "driver" not in nic


def test_usb_wifi_without_firmware_names_module_and_package() -> None:
    facts = load_facts("debian-lab")
    facts.links = [lk for lk in facts.links if lk.is_loopback]  # as if nothing else worked
    result = run("physical.nic", "debian-lab", facts=facts)
    assert result.code == "NIC_NO_DRIVER"
    assert "1-1:1.0 0b05:17d1" in result.summary
    assert commands(result)[:2] == ["lsusb -d 0b05:17d1", "modprobe mt76x0u"]
    assert "apt install firmware-misc-nonfree" in commands(result)


def test_device_without_driver_off_the_path_still_passes() -> None:
    result = run("physical.nic", "debian-lab", egress="enp0s3")
    assert result.status is Status.PASS
    assert result.code is None
    assert "also: 1 network device without a driver (1-1:1.0 0b05:17d1)" in result.summary
    assert result.evidence["without_driver"] == ["1-1:1.0 0b05:17d1"]
    drivers = {d["address"]: d.get("driver") for d in result.evidence["devices"]}
    assert drivers["0000:00:03.0"] == "e1000" and drivers["1-2:1.0"] == "rtl8187"


def test_veth_only_namespace_passes_as_virtual() -> None:
    result = run("physical.nic", "container-veth", egress="eth0")
    assert result.status is Status.PASS
    assert result.summary.startswith("1 interface, no physical NIC (virtual)")


def test_bluetooth_usb_interface_is_not_a_nic() -> None:
    devices = hardware.network_devices(load_facts("laptop-wifi-weak"))
    assert [d.address for d in devices] == ["0000:00:1f.6", "0000:02:00.0"]
    assert devices[1].kind == "wireless" and devices[1].driver == "iwlwifi"


def test_modinfo_only_on_a_live_root_and_without_shell(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[tuple[Any, dict[str, Any]]] = []

    def fake_run(args: Any, **kwargs: Any) -> subprocess.CompletedProcess[str]:
        calls.append((args, kwargs))
        return subprocess.CompletedProcess(args, 0, "Intel(R) PRO/1000 Network Driver\n", "")

    monkeypatch.setattr(hardware.subprocess, "run", fake_run)
    monkeypatch.setattr(hardware, "_modinfo_binary", lambda: "/sbin/modinfo")
    assert hardware.module_descriptions(["e1000"], str(SYSROOT / "debian-lab"), 1.0) == {}
    assert calls == []
    found = hardware.module_descriptions(["e1000", "e1000"], "/", 1.0)
    assert found == {"e1000": "Intel(R) PRO/1000 Network Driver"}
    ((args, kwargs),) = calls
    assert args == ["/sbin/modinfo", "-F", "description", "e1000"]
    assert not kwargs.get("shell") and kwargs["timeout"] == 1.0


# -- layer 2: exists, up, carrier ---------------------------------------------------------
def test_interface_named_with_option_that_does_not_exist() -> None:
    result = run("link.exists", "debian-lab", egress="eth7", interface="eth7")
    assert result.code == "LINK_MISSING"
    assert "eth7" in result.summary and "--interface" in result.summary
    assert commands(result) == ["ip -br link"]
    assert "enp0s3" in result.evidence["interfaces"]


def test_admin_down_hint_uses_ifupdown_and_the_real_name() -> None:
    result = run("link.admin_up", "debian-lab", egress="enp0s10")
    assert result.status is Status.FAIL and result.code == "LINK_ADMIN_DOWN"
    # ifupdown may still count it configured (taken down with ip): down, then its stanza
    # again, which also puts back the routes the kernel removed
    assert commands(result) == ["ifdown --force enp0s10", "ifup enp0s10"]
    assert result.evidence["flags"] == ["BROADCAST", "MULTICAST"]


def test_up_interface_passes_admin_up() -> None:
    result = run("link.admin_up", "debian-lab", egress="enp0s9")
    assert result.status is Status.PASS


def test_unplugged_cable_is_no_carrier() -> None:
    result = run("link.carrier", "debian-lab", egress="enp0s9")
    assert result.status is Status.FAIL and result.code == "LINK_NO_CARRIER"
    assert result.evidence["operstate"] == "DOWN"
    assert result.evidence["flags"] == ["NO-CARRIER", "BROADCAST", "MULTICAST", "UP"]
    assert result.hint is not None and "cable" in result.hint.text
    assert all("enp0s9" in c for c in commands(result))


def test_veth_with_peer_down_says_so() -> None:
    result = run("link.carrier", "container-veth", egress="eth0")
    assert result.code == "LINK_NO_CARRIER"
    assert result.hint is not None and "peer" in result.hint.text and "eth0" in result.hint.text
    assert "ip -d link show dev eth0" in commands(result)


def test_interface_with_carrier_passes() -> None:
    result = run("link.carrier", "debian-lab", egress="enp0s3")
    assert result.status is Status.PASS
    assert result.summary == "enp0s3 is UP with carrier"


# -- layer 2: Wi-Fi -----------------------------------------------------------------------
def test_soft_rfkill_blocks_the_radio() -> None:
    result = run("link.wifi", "laptop-wifi-rfkill-soft", egress="wlp2s0")
    assert result.status is Status.FAIL and result.code == "WIFI_RFKILL_SOFT"
    assert commands(result)[0] == "rfkill unblock wlan"
    assert "nmcli radio wifi on" in commands(result)
    assert "nmcli device connect wlp2s0" in commands(result)
    assert result.evidence["phy"] == "phy0"


def test_soft_rfkill_admin_down_hint_unblocks_first() -> None:
    result = run("link.admin_up", "laptop-wifi-rfkill-soft", egress="wlp2s0")
    assert result.code == "LINK_ADMIN_DOWN"
    assert commands(result)[:2] == ["rfkill unblock wlan", "nmcli device connect wlp2s0"]


def test_hard_rfkill_needs_the_switch() -> None:
    result = run("link.wifi", "laptop-wifi-rfkill-hard", egress="wlp2s0")
    assert result.code == "WIFI_RFKILL_HARD"
    assert result.hint is not None and "hardware switch" in result.hint.text
    assert "wlp2s0" in result.hint.text
    assert "rfkill unblock wlan" not in commands(result)
    assert {s["name"] for s in result.evidence["rfkill"]} == {"phy0", "ideapad_wlan"}


def test_rfkill_of_another_phy_does_not_block_this_radio() -> None:
    switches = [wireless.RfkillSwitch(0, "phy0", "wlan", False, False),
                wireless.RfkillSwitch(1, "phy1", "wlan", True, False),
                wireless.RfkillSwitch(2, "hci0", "bluetooth", True, False),
                wireless.RfkillSwitch(3, "dell-wifi", "wlan", False, True)]
    assert [s.name for s in wireless.switches_for(switches, "phy0")] == ["phy0", "dell-wifi"]


def test_not_associated_lists_networks_and_nmcli_connect() -> None:
    result = run("link.wifi", "laptop-wifi-not-associated", egress="wlp2s0")
    assert result.status is Status.FAIL and result.code == "WIFI_NOT_ASSOCIATED"
    assert result.hint is not None and "seax (-48 dBm)" in result.hint.text
    assert "iw dev wlp2s0 link" in commands(result)
    assert "wpa_cli -i wlp2s0 status" in commands(result)
    assert "nmcli --ask device wifi connect SSID ifname wlp2s0" in commands(result)


def test_weak_signal_is_a_warning_with_the_access_point() -> None:
    result = run("link.wifi", "laptop-wifi-weak", egress="wlp2s0")
    assert result.status is Status.WARN and result.code == "WIFI_WEAK_SIGNAL"
    ev = result.evidence
    assert (ev["ssid"], ev["bssid"], ev["signal_dbm"], ev["freq_mhz"]) == (
        "eduroam", "f4:cf:e2:51:90:ae", -78.0, 5180)
    assert "-78 dBm" in result.summary
    assert "iw dev wlp2s0 link" in commands(result)


def test_good_signal_from_proc_net_wireless_when_nl80211_is_not_there() -> None:
    result = run("link.wifi", "laptop-wifi-ok", egress="wlp2s0")
    assert result.status is Status.PASS
    assert result.evidence["signal_dbm"] == -52.0
    assert result.evidence["source"] == "carrier+/proc/net/wireless"


def test_wifi_check_skips_a_wired_egress() -> None:
    result = run("link.wifi", "debian-lab", egress="enp0s3")
    assert result.status is Status.SKIP and "not wireless" in result.summary


def _nla(kind: int, payload: bytes) -> bytes:
    size = 4 + len(payload)
    return struct.pack("HH", size, kind) + payload + b"\0" * (-size % 4)


def _decoded(cmd: int, attrs: list[bytes]) -> dict[str, Any]:
    """A kernel-format nl80211 reply decoded by pyroute2 itself, as a live run sees it."""
    from pyroute2.netlink.nl80211 import nl80211cmd

    body = b"".join(attrs)
    raw = struct.pack("IHHII", 20 + len(body), 0x1C, 2, 1, 0) + struct.pack("BBH", cmd, 1, 0)
    msg = nl80211cmd(raw + body)
    msg.decode()
    return msg.dump()


def test_parser_reads_what_pyroute2_decodes() -> None:
    bssid = bytes.fromhex("b869f43a6e10")
    ies = bytes([0, 4]) + b"seax" + bytes([3, 1, 1])
    bss = b"".join([_nla(1, bssid), _nla(2, struct.pack("I", 2412)), _nla(6, ies),
                    _nla(7, struct.pack("i", -4800)), _nla(9, struct.pack("I", 1))])
    scan = _decoded(34, [_nla(3, struct.pack("I", 3)), _nla(47, bss)])
    sta = _decoded(19, [_nla(3, struct.pack("I", 3)), _nla(6, bssid),
                        _nla(21, _nla(7, struct.pack("b", -47)))])
    state = wireless.WirelessState(interface="wlan0")
    wireless.apply_nl80211(state, {wireless.GET_SCAN: [scan], wireless.GET_STATION: [sta]})
    assert (state.associated, state.ssid, state.bssid) == (True, "seax", "b8:69:f4:3a:6e:10")
    assert (state.signal_dbm, state.freq_mhz) == (-47.0, 2412)


def test_live_nl80211_failure_degrades_to_unknown(monkeypatch: pytest.MonkeyPatch) -> None:
    def no_nl80211(ifindex: int) -> dict[str, Any]:
        raise OSError("nl80211 family not found")

    monkeypatch.setattr(wireless, "live_nl80211", no_nl80211)
    facts = Facts(links=[Link(9, "wlnc9", 0x1003, "DOWN", 1500)], sysroot="/")
    state = wireless.read_wireless(facts, "wlnc9")
    assert state.error is not None and "nl80211 family not found" in state.error
    assert (state.associated, state.source) == (False, "carrier")
    facts.links[0].flags = 0x1002  # down: not even the carrier says anything
    assert wireless.read_wireless(facts, "wlnc9").associated is None


# -- layer 2: counters and other interfaces ---------------------------------------------
def test_growing_errors_on_the_egress_warn() -> None:
    result = run("link.errors", "debian-lab", egress="enp0s8")
    assert result.status is Status.WARN and result.code == "LINK_ERRORS"
    assert result.evidence["rx"]["delta"]["errors"] == 7
    assert result.evidence["rx"]["delta"]["dropped"] == 3
    assert "rx_errors +7" in result.summary and "rx_dropped +3" in result.summary
    assert "ip -s -h link show dev enp0s8" in commands(result)


def test_traffic_without_errors_passes() -> None:
    result = run("link.errors", "debian-lab", egress="enp0s3")
    assert result.status is Status.PASS
    assert result.evidence["rx"]["delta"]["bytes"] == 4410
    assert result.evidence["tx"]["delta"]["errors"] == 0


def test_broken_interfaces_off_the_path_are_reported_not_failed() -> None:
    result = run("link.others", "debian-lab", egress="enp0s3")
    assert result.status is Status.PASS and result.code is None
    problems = {i["name"]: i["problem"] for i in result.evidence["interfaces"]}
    assert problems == {"enp0s9": "LINK_NO_CARRIER", "enp0s10": "LINK_ADMIN_DOWN",
                        "wlx001aef0caebc": "WIFI_NOT_ASSOCIATED"}
    assert "enp0s10 is down" in result.summary
    assert result.summary.endswith("(not on the path to the target)")


def test_verdict_stays_ok_when_only_off_path_things_are_broken() -> None:
    outcomes = run_all("debian-lab", egress="enp0s3")
    assert runner.verdict_of(outcomes).value == "ok"
    assert runner.choose_root_cause(outcomes) is None


def test_rfkill_not_admin_down_is_the_root_cause() -> None:
    outcomes = run_all("laptop-wifi-rfkill-soft", egress="wlp2s0")
    status = {o.id: o.status for o in outcomes}
    assert status["link.admin_up"] is Status.FAIL
    assert status["link.carrier"] is Status.SKIP
    root = runner.choose_root_cause(outcomes)
    assert root is not None and (root.id, root.result.code) == ("link.wifi", "WIFI_RFKILL_SOFT")


def test_egress_with_errors_is_the_root_cause_warning() -> None:
    outcomes = run_all("debian-lab", egress="enp0s8")
    root = runner.choose_root_cause(outcomes)
    assert root is not None and root.result.code == "LINK_ERRORS"
    assert runner.verdict_of(outcomes).value == "degraded"


def test_the_broken_egress_is_not_reported_again_as_another_interface() -> None:
    result = run("link.others", "debian-lab", egress="enp0s9")
    names = [i["name"] for i in result.evidence["interfaces"]]
    assert names == ["enp0s10", "wlx001aef0caebc"]
