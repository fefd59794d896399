"""Layer 1: is there a network device, and does it have a driver?

The slides' first rung (``lspci``/``lsusb``, ``lsmod``/``modinfo``). A device without a
driver only breaks the path when the host has no interface at all: one that is off the
path is reported in the evidence, never made the root cause.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any, Optional

from netcheck.i18n import _, ngettext
from netcheck.lazy import lazy
from netcheck.model import Hint, Layer, Result, failed, passed, skipped
from netcheck.registry import RECIPROCAL, check

if TYPE_CHECKING:
    from netcheck.probes import hardware
    from netcheck.probes.hardware import NetDevice
    from netcheck.runner import Context
else:  # imported at first use: `netcheck checks` lists the checks without the probes
    hardware = lazy("netcheck.probes.hardware")


def _interface_names(ctx: Context) -> list[str]:
    """Non-loopback interfaces, from netlink or, when netlink failed, from sysfs."""
    facts = ctx.facts
    if facts.links or not facts.netlink_error:
        return [lk.name for lk in facts.links if not lk.is_loopback]
    try:
        return sorted(n for n in os.listdir(facts.sys("sys/class/net")) if n != "lo")
    except OSError:
        return []


def _no_driver_hint(dev: NetDevice, release: str) -> Hint:
    what = f"{dev.address} ({dev.ids}, {dev.kind})"
    show = (f"lspci -nnk -s {dev.address}" if dev.bus == "pci" else f"lsusb -d {dev.ids}")
    commands = [show]
    if dev.candidate_modules and dev.blacklisted_in:
        module = dev.candidate_modules[0]
        text = _("{device} has no driver: module {module} claims it but is blacklisted in "
                 "{file}; remove the 'blacklist {module}' line and load it.").format(
                     device=what, module=module, file=dev.blacklisted_in)
        commands += [f"nano {dev.blacklisted_in}", f"modprobe {module}", "ip -br link"]
    elif dev.candidate_modules:
        module = dev.candidate_modules[0]
        text = _("{device} has no driver: module {module} claims it but is not bound "
                 "(not loaded, or its firmware is missing); load it and read the kernel "
                 "log.").format(device=what, module=module)
        commands += [f"modprobe {module}", f"dmesg | grep -i -e {module} -e firmware"]
        if dev.firmware_package:
            commands.append(f"apt install {dev.firmware_package}")
        commands.append("ip -br link")
    else:
        text = _("{device} has no driver, and no module of the running kernel ({release}) "
                 "claims it: install a driver for it.").format(device=what, release=release)
        if dev.firmware_package:
            commands.append(f"apt install {dev.firmware_package}")
        commands.append("ip -br link")
    return Hint(text, commands)


async def _stays_on_host(ctx: Context) -> Optional[str]:
    """The loopback interface the packets to the target stay on, or None when they leave.

    A target that is this host (127.0.0.1, ::1, or one of its own addresses: the route
    lookup says ``local``) is reached through ``lo``: no network device is on the way.
    """
    if ctx.target is None:
        return None
    path = await ctx.path()
    link = ctx.facts.link(index=path.ifindex) if path.ifindex is not None else None
    if link is not None and link.is_loopback:
        return link.name
    if path.lookups and all(lk.type == "local" for lk in path.lookups):
        return path.interface or "lo"
    return None


@check("physical.nic", Layer.PHYSICAL, codes=("NIC_MISSING", "NIC_NO_DRIVER"), scope="host",
       modes=RECIPROCAL)
async def nic_present(ctx: Context) -> Result:
    """Network device present with a driver.

    PCI and USB network devices and their bound drivers, as ``lspci -nnk`` and ``lsusb``
    show them; fails only when the host has no interface but loopback and the packets to
    the target would have to leave it (a loopback target needs no device: it is skipped).
    """
    devices = await _network_devices(ctx)
    interfaces = _interface_names(ctx)
    physical = hardware.physical_interfaces(ctx.facts)
    unbound = [d for d in devices if d.driver is None]
    evidence = {
        "interfaces": interfaces,
        "physical_interfaces": physical,
        "devices": [d.to_json() for d in devices],
        "without_driver": [d.label for d in unbound],
    }
    if not interfaces:
        return await _no_interface(ctx, devices, unbound, evidence)
    return passed(_devices_summary(interfaces, physical, devices, unbound), **evidence)


async def _network_devices(ctx: Context) -> list[NetDevice]:
    """The PCI and USB network devices, each with its driver module's description."""
    facts = ctx.facts
    # The hardware does not change between the runs of a batch: looked at once.
    devices = await ctx.memo_shared("hardware", lambda: ctx.blocking(
        hardware.network_devices, facts))
    modules = [d.module or d.driver for d in devices if d.driver]
    descriptions = await ctx.memo_shared(("modinfo", tuple(modules)), lambda: ctx.blocking(
        hardware.module_descriptions, modules, facts.sysroot, min(ctx.timeout, 2.0)))
    for dev in devices:
        dev.description = descriptions.get(dev.module or dev.driver or "")
    return devices


async def _no_interface(ctx: Context, devices: list[NetDevice], unbound: list[NetDevice],
                        evidence: dict[str, Any]) -> Result:
    """No interface but loopback: skipped when the packets stay on this host, else
    NIC_NO_DRIVER (a device without its driver) or NIC_MISSING."""
    loopback = await _stays_on_host(ctx)
    if loopback is not None:
        return skipped(_("the target is on this host: its packets stay on {ifname} "
                         "(loopback), no network device is needed (there is none but "
                         "{ifname})").format(ifname=loopback), **evidence)
    if unbound:
        first = unbound[0]
        release = ctx.facts.read_sys("proc/sys/kernel/osrelease") or "?"
        return failed(
            "NIC_NO_DRIVER",
            _("no network interface but loopback: {kind} device {device} "
              "has no driver").format(kind=first.kind, device=first.label),
            _no_driver_hint(first, release), **evidence)
    bound = ", ".join(f"{d.label} ({d.driver})" for d in devices)
    summary = _("no network device other than loopback")
    if bound:
        summary += " " + _("(devices bound without an interface: {devices})").format(
            devices=bound)
    return failed("NIC_MISSING", summary, Hint(
        _("This host has no network device: add (or enable) a network adapter, e.g. in "
          "the virtual machine's settings, then look again."),
        ["lspci -nnk", "lsusb", "ip -br link"]), **evidence)


def _devices_summary(interfaces: list[str], physical: list[str], devices: list[NetDevice],
                     unbound: list[NetDevice]) -> str:
    """The interfaces (physical ones with their drivers) and the devices without a driver."""
    if not physical:
        n = len(interfaces)
        summary = ngettext("{n} interface, no physical NIC (virtual)",
                           "{n} interfaces, no physical NIC (virtual)", n).format(n=n)
    else:
        drivers = sorted({d.driver for d in devices if d.driver})
        n = len(physical)
        summary = ngettext("{n} physical interface ({names})", "{n} physical interfaces ({names})",
                           n).format(n=n, names=", ".join(physical))
        if drivers:
            summary += ", " + _("drivers {drivers}").format(drivers=", ".join(drivers))
    if unbound:
        labels = ", ".join(d.label for d in unbound)
        n = len(unbound)
        summary += "; " + ngettext("also: {n} network device without a driver ({devices})",
                                   "also: {n} network devices without a driver ({devices})",
                                   n).format(n=n, devices=labels)
    return summary
