"""Network hardware as sysfs shows it: PCI and USB network devices and their drivers.

What ``lspci -nnk`` and ``lsusb`` show on the slides, read straight from sysfs under the
facts' sysroot (``/`` on a live host, a recorded tree in tests). Nothing here judges: the
physical check decides what a device without a driver means for the path to the target.
"""

from __future__ import annotations

import fnmatch
import os
import shutil
import subprocess
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Optional

if TYPE_CHECKING:
    from netcheck.facts import Facts

# PCI base class 0x02 is "network controller"; the subclass says which kind.
PCI_NETWORK_SUBCLASSES = {
    0x00: "ethernet", 0x01: "token-ring", 0x02: "fddi", 0x03: "atm", 0x04: "isdn",
    0x07: "infiniband", 0x80: "wireless",  # 0x0280: "Network controller", Wi-Fi in practice
}

# USB interfaces that carry a network link by their class alone (class, subclass, protocol);
# None matches any value. Class e0/01/01 is Bluetooth, which is not a network device here.
USB_NETWORK_CLASSES: tuple[tuple[str, Optional[str], Optional[str], str], ...] = (
    ("02", "06", None, "ethernet (CDC ECM)"),
    ("02", "0c", None, "ethernet (CDC EEM)"),
    ("02", "0d", None, "ethernet (CDC NCM)"),
    ("02", "0e", None, "mobile broadband (CDC MBIM)"),
    ("e0", "01", "03", "ethernet (RNDIS)"),
    ("ef", "04", "01", "ethernet (RNDIS)"),
)

# Vendor-specific (class ff) USB network chips seen in labs, with the in-kernel driver that
# claims them and, where the driver needs firmware, the Debian package that ships it.
# Kept short on purpose: a chip missing here is simply not recognised as a NIC.
KNOWN_USB_NICS: dict[str, tuple[str, str, Optional[str]]] = {
    "0b05:17d1": ("wireless", "mt76x0u", "firmware-misc-nonfree"),  # ASUS USB-AC51, MT7610U
    "0bda:8187": ("wireless", "rtl8187", None),  # Realtek RTL8187
    "148f:5370": ("wireless", "rt2800usb", "firmware-misc-nonfree"),  # Ralink RT5370
    "0cf3:9271": ("wireless", "ath9k_htc", "firmware-atheros"),  # Atheros AR9271
    "0bda:8179": ("wireless", "rtl8xxxu", "firmware-realtek"),  # Realtek RTL8188EUS
    "0bda:8152": ("ethernet", "r8152", None),  # Realtek RTL8152
    "0bda:8153": ("ethernet", "r8152", None),  # Realtek RTL8153
    "0b95:1790": ("ethernet", "ax88179_178a", None),  # ASIX AX88179
}


@dataclass
class NetDevice:
    """One network device on a bus, with the driver bound to it (None when unbound)."""

    bus: str  # "pci" or "usb"
    address: str  # 0000:00:03.0, or a USB interface like 1-1:1.0
    kind: str
    vendor_id: str
    device_id: str
    driver: Optional[str] = None
    module: Optional[str] = None
    description: Optional[str] = None
    device_class: str = ""
    interfaces: list[str] = field(default_factory=list)
    candidate_modules: list[str] = field(default_factory=list)
    blacklisted_in: Optional[str] = None
    firmware_package: Optional[str] = None

    @property
    def ids(self) -> str:
        return f"{self.vendor_id}:{self.device_id}"

    @property
    def label(self) -> str:
        """How a person names it: ``0000:00:0a.0 8086:100e``."""
        return f"{self.address} {self.ids}"

    def to_json(self) -> dict[str, Any]:
        doc = asdict(self)
        doc["ids"] = self.ids
        return {k: v for k, v in doc.items() if v not in (None, [], "")}


def _read(path: Path) -> Optional[str]:
    try:
        return path.read_text(errors="replace").strip()
    except OSError:
        return None


def _link_name(path: Path) -> Optional[str]:
    """Basename of a symlink's target (``driver -> ../../bus/pci/drivers/e1000``)."""
    try:
        return os.path.basename(os.readlink(path))
    except OSError:
        return None


def _bound(dev_dir: Path) -> tuple[Optional[str], Optional[str]]:
    """The driver bound to a device and the kernel module that provides it."""
    driver = _link_name(dev_dir / "driver")
    if driver is None:
        return None, None
    # No module link: the driver is built into the kernel.
    return driver, _link_name(dev_dir / "driver" / "module")


def _interfaces(dev_dir: Path) -> list[str]:
    """Interfaces of a device: ``net/IF``, or one level down (virtio: ``virtio2/net/IF``)."""
    found = {p.name for p in dev_dir.glob("net/*")} | {p.name for p in dev_dir.glob("*/net/*")}
    return sorted(found)


def _hex_id(text: Optional[str]) -> str:
    return (text or "").lower().removeprefix("0x").zfill(4)


def pci_devices(facts: Facts) -> list[NetDevice]:
    """PCI functions whose class is 0x02xxxx (network controller)."""
    found = []
    base = facts.sys("sys/bus/pci/devices")
    try:
        names = sorted(os.listdir(base))
    except OSError:
        return found
    for name in names:
        dev = base / name
        klass = _read(dev / "class")
        if not klass:
            continue
        try:
            value = int(klass, 16)
        except ValueError:
            continue
        if value >> 16 != 0x02:
            continue
        driver, module = _bound(dev)
        found.append(NetDevice(
            bus="pci", address=name,
            kind=PCI_NETWORK_SUBCLASSES.get((value >> 8) & 0xFF, "network"),
            vendor_id=_hex_id(_read(dev / "vendor")), device_id=_hex_id(_read(dev / "device")),
            driver=driver, module=module, device_class=f"0x{value:06x}",
            interfaces=_interfaces(dev),
        ))
    return found


def _usb_kind(cls: str, sub: str, proto: str) -> Optional[str]:
    for want_cls, want_sub, want_proto, kind in USB_NETWORK_CLASSES:
        if cls == want_cls and want_sub in (None, sub) and want_proto in (None, proto):
            return kind
    return None


def usb_devices(facts: Facts) -> list[NetDevice]:
    """USB interfaces that are network links, by class or by a known vendor:product id."""
    found = []
    base = facts.sys("sys/bus/usb/devices")
    try:
        names = sorted(n for n in os.listdir(base) if ":" in n)  # interfaces, not devices
    except OSError:
        return found
    seen_known: set[str] = set()
    for name in names:
        iface = base / name
        parent = base / name.split(":")[0]
        vendor = _hex_id(_read(parent / "idVendor"))
        product = _hex_id(_read(parent / "idProduct"))
        cls = (_read(iface / "bInterfaceClass") or "").lower()
        sub = (_read(iface / "bInterfaceSubClass") or "").lower()
        proto = (_read(iface / "bInterfaceProtocol") or "").lower()
        ids = f"{vendor}:{product}"
        kind = _usb_kind(cls, sub, proto)
        package = None
        if kind is None and cls == "ff" and ids in KNOWN_USB_NICS:
            if parent.name in seen_known:  # one vendor-specific interface per known chip
                continue
            seen_known.add(parent.name)
            kind, _, package = KNOWN_USB_NICS[ids]
        if kind is None:
            continue
        driver, module = _bound(iface)
        found.append(NetDevice(
            bus="usb", address=name, kind=kind, vendor_id=vendor, device_id=product,
            driver=driver, module=module, device_class=f"{cls}/{sub}/{proto}",
            interfaces=_interfaces(iface), firmware_package=package,
        ))
    return found


def _kernel_release(facts: Facts) -> Optional[str]:
    return facts.read_sys("proc/sys/kernel/osrelease")


def modules_for(facts: Facts, modalias: str) -> list[str]:
    """Modules of the running kernel that claim a device (``modules.alias``), like modprobe."""
    release = _kernel_release(facts)
    if not release or not modalias:
        return []
    text = facts.read_sys("lib/modules", release, "modules.alias")
    if text is None:
        text = facts.read_sys("usr/lib/modules", release, "modules.alias") or ""
    found: list[str] = []
    for line in text.splitlines():
        parts = line.split()
        if len(parts) == 3 and parts[0] == "alias" and fnmatch.fnmatchcase(modalias, parts[1]):
            if parts[2] not in found:
                found.append(parts[2])
    return found


def blacklisted_in(facts: Facts, module: str) -> Optional[str]:
    """The modprobe.d file that blacklists a module, if any (path as on the host)."""
    wanted = {module, module.replace("-", "_")}
    for folder in ("etc/modprobe.d", "lib/modprobe.d", "usr/lib/modprobe.d"):
        try:
            names = sorted(os.listdir(facts.sys(folder)))
        except OSError:
            continue
        for name in names:
            if not name.endswith(".conf"):
                continue
            for line in (facts.read_sys(folder, name) or "").splitlines():
                words = line.split("#")[0].split()
                if words[:1] == ["blacklist"] and len(words) > 1 and words[1] in wanted:
                    return f"/{folder}/{name}"
    return None


def _explain_unbound(facts: Facts, dev: NetDevice) -> None:
    """For a device without a driver: which module should claim it, and what stops it."""
    sub = "sys/bus/pci/devices" if dev.bus == "pci" else "sys/bus/usb/devices"
    modalias = facts.read_sys(sub, dev.address, "modalias") or ""
    dev.candidate_modules = modules_for(facts, modalias)
    if not dev.candidate_modules and dev.bus == "usb" and dev.ids in KNOWN_USB_NICS:
        dev.candidate_modules = [KNOWN_USB_NICS[dev.ids][1]]
    for module in dev.candidate_modules:
        where = blacklisted_in(facts, module)
        if where:
            dev.blacklisted_in = where
            break


def network_devices(facts: Facts) -> list[NetDevice]:
    """Every PCI and USB network device, with its driver (or why it has none)."""
    devices = pci_devices(facts) + usb_devices(facts)
    for dev in devices:
        if dev.driver is None:
            _explain_unbound(facts, dev)
    return devices


def physical_interfaces(facts: Facts) -> list[str]:
    """Interfaces backed by a device: their sysfs node is not under ``devices/virtual``.

    lo, veth, bridges, tun/tap and WireGuard live in ``/sys/devices/virtual/net/``; a NIC's
    node sits under its bus device (``/sys/devices/pci0000:00/0000:00:03.0/net/enp0s3``).
    """
    found = []
    for link in facts.links:
        node = facts.sys("sys/class/net", link.name)
        if link.is_loopback or not node.exists():
            continue
        if "/devices/virtual/" not in os.path.realpath(node) + "/":
            found.append(link.name)
    return found


def _modinfo_binary() -> Optional[str]:
    # Debian keeps modinfo in /sbin, which an unprivileged PATH often lacks.
    path = os.environ.get("PATH", "") + ":/usr/sbin:/sbin"
    return shutil.which("modinfo", path=path)


def module_descriptions(modules: list[str], sysroot: str, timeout: float) -> dict[str, str]:
    """``modinfo -F description MODULE`` for each module, on a live host only (no shell)."""
    binary = _modinfo_binary()
    if sysroot != "/" or binary is None:
        return {}
    found: dict[str, str] = {}
    for module in dict.fromkeys(modules):
        try:
            out = subprocess.run([binary, "-F", "description", module], capture_output=True,
                                 text=True, timeout=timeout, check=False)
        except (OSError, subprocess.SubprocessError):
            continue
        text = out.stdout.strip().splitlines()
        if out.returncode == 0 and text:
            found[module] = text[0]
    return found
