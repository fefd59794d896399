"""Service and version detection with the real nmap, through python-nmap.

What the slides do by hand with ``nmap -sS -A -p PORT HOST``, reduced to one port and the
version probes that are cheap (``-sV --version-light``): a SYN scan when this process may
send raw packets, a connect scan otherwise; ``-Pn -n`` because the earlier checks already
know the host is up and its address. nmap is run without a shell (python-nmap splits its
arguments itself), with ``--host-timeout`` and a process timeout inside the run's deadline.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass, field
from typing import Any, Optional

SEARCH_PATH = "/usr/bin:/usr/local/bin:/usr/sbin:/bin"

# ServiceScan.error: why there is no port line, as a code (checks/transport/service.py words it);
# the facts stay beside it: error_detail (nmap's own message) and time_limit_s.
NMAP_MISSING = "nmap_missing"  # no nmap binary
PYTHON_NMAP_MISSING = "python_nmap_missing"  # the python-nmap module is not installed
TIMED_OUT = "timed_out"  # nmap still ran after time_limit_s
NMAP_FAILED = "nmap_failed"  # nmap (or python-nmap) failed: error_detail
NO_RESULT = "no_result"  # no host in nmap's output (error_detail: nmap's errors, if any)
NO_STATE = "no_state"  # the host, but no state for the port (host timeout?)
# Facts for the wording only: not part of the evidence (to_json), which holds the words.
_WORDING_FACTS = ("error", "error_detail", "time_limit_s")


@dataclass
class ServiceScan:
    """What nmap found on one address:port."""

    address: str
    port: int
    state: Optional[str] = None  # open | closed | filtered | ...
    reason: Optional[str] = None  # syn-ack, conn-refused, no-response...
    name: Optional[str] = None  # service name (ssh, http...)
    product: Optional[str] = None
    version: Optional[str] = None
    extrainfo: Optional[str] = None
    cpe: Optional[str] = None
    conf: Optional[str] = None  # nmap's confidence, 0-10
    method: Optional[str] = None  # probed | table
    scan_type: str = "connect"  # syn | connect
    command: list[str] = field(default_factory=list)
    nmap_version: Optional[str] = None
    elapsed_s: Optional[float] = None
    error: Optional[str] = None  # one of the codes above
    error_detail: Optional[str] = None
    time_limit_s: Optional[float] = None

    @property
    def line(self) -> str:
        """nmap's port line: ``22/tcp open  ssh     OpenSSH 9.2p1 (protocol 2.0)``."""
        version = " ".join(p for p in (self.product, self.version) if p)
        if self.extrainfo:
            version = f"{version} ({self.extrainfo})".strip()
        port = f"{self.port}/tcp"
        return f"{port:<6} {self.state or '?':<5} {self.name or 'unknown':<7} {version}".rstrip()

    def to_json(self, error: Optional[str] = None) -> dict[str, Any]:
        """The evidence; ``error`` is the check's wording of the error code, if any."""
        out = {k: v for k, v in vars(self).items()
               if v not in (None, "", []) and k not in _WORDING_FACTS}
        if error:
            out["error"] = error
        out["line"] = self.line
        return out


def nmap_path() -> Optional[str]:
    """The nmap binary, or None when it is not installed."""
    return shutil.which("nmap") or shutil.which("nmap", path=SEARCH_PATH)


def arguments(address: str, privileged: bool, host_timeout: int) -> str:
    """nmap's options for one service probe (the port and host are passed apart)."""
    args = ["-sV", "-Pn", "-n", "--version-light", f"--host-timeout {max(1, host_timeout)}s",
            "-sS" if privileged else "-sT"]
    if ":" in address:
        args.append("-6")
    return " ".join(args)


def scan(address: str, port: int, privileged: bool, time_left: float) -> ServiceScan:
    """Run nmap -sV against address:port within ``time_left`` seconds (blocking)."""
    result = ServiceScan(address, port, scan_type="syn" if privileged else "connect")
    path = nmap_path()
    if path is None:
        result.error = NMAP_MISSING
        return result
    try:
        import nmap
    except ImportError:
        result.error = PYTHON_NMAP_MISSING
        return result
    host = address.split("%")[0]
    host_timeout = int(max(1.0, time_left - 0.5))
    args = arguments(host, privileged, host_timeout)
    result.command = ["nmap", "-p", str(port), *args.split(), host]
    try:
        scanner = nmap.PortScanner(nmap_search_path=(path,))
        data = scanner.scan(hosts=host, ports=str(port), arguments=args,
                            timeout=max(1, int(time_left)))
    except nmap.PortScannerTimeout:
        result.error, result.time_limit_s = TIMED_OUT, time_left
        return result
    except (nmap.PortScannerError, OSError, ValueError) as exc:
        result.error, result.error_detail = NMAP_FAILED, str(exc).strip()[:300]
        return result
    info = data.get("nmap", {}) if isinstance(data, dict) else {}
    result.nmap_version = ".".join(str(x) for x in scanner.nmap_version())
    stats = info.get("scanstats", {})
    try:
        result.elapsed_s = float(stats.get("elapsed", 0))
    except (TypeError, ValueError):
        pass
    errors = info.get("scaninfo", {}).get("error")
    hosts = data.get("scan", {}) if isinstance(data, dict) else {}
    entry = hosts.get(host) or (next(iter(hosts.values())) if hosts else None)
    if not entry:
        result.error = NO_RESULT
        result.error_detail = " ".join(errors).strip()[:300] if errors else None
        return result
    port_info = entry.get("tcp", {}).get(port) or {}
    for key in ("state", "reason", "name", "product", "version", "extrainfo", "cpe", "conf",
                "method"):
        value = port_info.get(key)
        if value not in (None, ""):
            setattr(result, key, str(value))
    if result.state is None:
        result.error = NO_STATE
    return result
