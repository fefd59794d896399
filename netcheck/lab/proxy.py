"""Real proxies for the lab: Debian's tinyproxy, one process per proxy host, each with its own
configuration, log and PID inside the lab's state directory, started in the server namespace
(never as the system's service: the package's own service is never started, see
tools/ensure_debs.py).

=====================  ==========================  ========================================
host                   address (port 3128)         what it is
=====================  ==========================  ========================================
``proxy.lab.test``     198.18.2.70 / ::70          an open proxy: CONNECT to 443 allowed
``proxy-auth.lab.test``  198.18.2.71 / ::71        wants Basic credentials (alice / s3cret)
``proxy-strict.lab.test``  198.18.2.72 / ::72      CONNECT only to 8443 (ConnectPort)
``proxy-cut.lab.test``   198.18.2.73 / ::73        its parent proxy (proxy-down) is down
``proxy-down.lab.test``  198.18.2.74 / ::74        the address answers, no proxy runs
=====================  ==========================  ========================================
"""

from __future__ import annotations

import shutil
import subprocess
import time
import weakref
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from netcheck.lab.topology import CLIENT_RESOLV_CONF, ETC_NETNS, Lab, LabError

PROXY_PORT = 3128
READY_TIMEOUT = 10.0
AUTH_USER, AUTH_PASSWORD = "alice", "s3cret"


@dataclass(frozen=True)
class ProxyHost:
    """One proxy of the lab: its name, address slot and tinyproxy settings."""

    name: str
    slot: int
    auth: bool = False
    connect_ports: tuple[int, ...] = (443,)
    running: bool = True
    upstream: Optional[str] = None  # host:port of a parent proxy every request goes through

    @property
    def addresses(self) -> tuple[str, str]:
        return f"198.18.2.{self.slot}", f"2001:db8:2::{self.slot}"

    @property
    def fqdn(self) -> str:
        return f"{self.name}.lab.test"

    def url(self, credentials: Optional[tuple[str, str]] = None) -> str:
        """The proxy URL curl (and netcheck's --proxy) takes."""
        cred = f"{credentials[0]}:{credentials[1]}@" if credentials else ""
        return f"http://{cred}{self.fqdn}:{PROXY_PORT}"


PROXIES = {p.name: p for p in (
    ProxyHost("proxy", 70),
    ProxyHost("proxy-auth", 71, auth=True),
    ProxyHost("proxy-strict", 72, connect_ports=(8443,)),
    # Its parent proxy is down: it answers its clients, but cannot reach any target.
    ProxyHost("proxy-cut", 73, upstream=f"198.18.2.74:{PROXY_PORT}"),
    ProxyHost("proxy-down", 74, running=False),
)}

_STARTED: weakref.WeakKeyDictionary[Lab, set[str]] = weakref.WeakKeyDictionary()


def tinyproxy_problem() -> Optional[str]:
    """Why no tinyproxy can run here, or None."""
    if shutil.which("tinyproxy", path="/usr/bin:/usr/sbin:/bin:/sbin") is None:
        return "tinyproxy is not installed (Debian: apt-get install tinyproxy; make deps)"
    return None


def config(host: ProxyHost, state_dir: Path) -> str:
    """tinyproxy.conf for one proxy of the lab (foreground, its own log and PID file)."""
    v4, v6 = host.addresses
    lines = [f"Port {PROXY_PORT}", "Timeout 5", "MaxClients 32",
             f'LogFile "{state_dir / f"tinyproxy-{host.name}.access"}"', "LogLevel Info",
             f'PidFile "{state_dir / f"tinyproxy-{host.name}.pid"}"',
             "Allow 198.18.0.0/15", "Allow 2001:db8::/32", "DisableViaHeader No",
             *(f"ConnectPort {p}" for p in host.connect_ports)]
    if host.auth:
        lines.append(f"BasicAuth {AUTH_USER} {AUTH_PASSWORD}")
    if host.upstream is not None:
        lines.append(f"Upstream http {host.upstream}")
    # Every proxy shares port 3128 of the server namespace: each listens on its own
    # addresses only (tinyproxy takes one Listen line per address).
    lines += [f"Listen {v4}", f"Listen {v6}"]
    return "\n".join(lines) + "\n"


def _listening(pid: int, address: str, port: int) -> bool:
    """Whether the process's namespace listens on IPv4 ``address:port`` (/proc/PID/net/tcp
    writes the address as a little-endian word)."""
    import socket

    local = f"{int.from_bytes(socket.inet_aton(address), 'little'):08X}:{port:04X}"
    try:
        with open(f"/proc/{pid}/net/tcp", encoding="ascii") as fh:
            rows = [row.split() for row in fh.read().splitlines()[1:]]
    except OSError:
        return False
    return any(len(row) > 3 and row[1] == local and row[3] == "0A" for row in rows)


def _server_resolver(lab: Lab) -> None:
    """The proxies resolve the names they are asked for with the lab's name server, as the
    client does (``ip netns exec`` lays /etc/netns/<ns>/resolv.conf over /etc/resolv.conf;
    the lab's teardown removes the folder)."""
    from netcheck.safefile import open_for_write

    folder = ETC_NETNS / lab.ns("server")
    folder.mkdir(parents=True, exist_ok=True)
    with open_for_write(folder / "resolv.conf", 0o644) as fh:
        fh.write(CLIENT_RESOLV_CONF.encode())


def start_proxies(lab: Lab, *names: str) -> None:
    """Give these proxy hosts their addresses and names, and start the tinyproxy of each one
    that runs; waits until they listen."""
    started = _STARTED.setdefault(lab, set())
    pending = []
    for name in names:
        host = PROXIES[name]
        if name in started:
            continue
        started.add(name)
        v4, v6 = host.addresses
        lab.add_server_address(v4)
        lab.add_server_address(v6)
        lab.add_dns_records((host.fqdn + ".", "A", [v4]), (host.fqdn + ".", "AAAA", [v6]))
        if not host.running:
            continue
        problem = tinyproxy_problem()
        if problem:
            raise LabError(problem)
        _server_resolver(lab)
        conf = Path(lab.state_dir) / f"tinyproxy-{name}.conf"
        conf.write_text(config(host, Path(lab.state_dir)), encoding="utf-8")
        proc = lab.popen("server", ["tinyproxy", "-d", "-c", str(conf)],
                         name=f"tinyproxy-{name}")
        pending.append((host, proc))
    for host, proc in pending:
        wait_listening(lab, f"tinyproxy-{host.name}", proc, host.addresses[0], PROXY_PORT)


def wait_listening(lab: Lab, label: str, proc: subprocess.Popen, address: str,
                   port: int) -> None:
    """Wait until the process ``label`` listens on ``address:port`` (or say why not)."""
    deadline = time.monotonic() + READY_TIMEOUT
    while not _listening(proc.pid, address, port):
        if proc.poll() is not None:
            raise LabError(f"{label} exited with {proc.returncode}:\n{lab.log(label)}")
        if time.monotonic() > deadline:
            raise LabError(f"{label} not listening on {address}:{port} after "
                           f"{READY_TIMEOUT:g} s:\n{lab.log(label)}")
        time.sleep(0.01)
