"""The lab network: client, router, server and DNS namespaces joined by veth pairs.

::

    stub ──eth0 ··· eth1── client ──eth0 ··· r-client── router ──r-server ··· eth0── server
                                                        r-dns
                                                          ·
                                                        eth0── dns

    client eth0  198.18.1.2/24  2001:db8:1::2/64   router r-client  198.18.1.1/24  2001:db8:1::1/64
    client eth1  198.18.4.2/24                     router r-server  198.18.2.1/24  2001:db8:2::1/64
    stub   eth0  198.18.4.1/24                     router r-dns     198.18.3.1/24  2001:db8:3::1/64
    server eth0  198.18.2.10/24 2001:db8:2::10/64  dns    eth0      198.18.3.53/24 2001:db8:3::53/64

Everything lives in namespaces the lab creates, named ``nc<pid>-<n>-<role>`` so that labs of
parallel or crashed processes never clash and :func:`cleanup_stale` can tell whose they are.
Every veth is created inside a lab namespace with its peer placed straight into another one, so
no interface, address or route ever appears in the root namespace. Addresses come only from
198.18.0.0/15 and 2001:db8::/32 (link-local only where a scenario needs it).

Nothing here runs through a shell: every command is an argv list.

The package, by concern: ``plan`` (roles, addresses, veth pairs, routes, sysctls, the client's
files), ``commands`` (tools, isolated Python helpers, commands run without a shell, LabError),
``namespaces`` (namespace names, the state directory, recorded processes, stale labs removed,
whether a lab can be built here). Here: :class:`Lab` itself, and every name importable from
``netcheck.lab.topology`` as before the split.
"""

from __future__ import annotations

import atexit
import itertools
import json
import os
import stat
import subprocess
import sys
import time
import weakref
from pathlib import Path
from typing import Any, Optional, Sequence

from netcheck.lab.servers import DEFAULT_SLOW_MS, DNS_MODES  # noqa: F401 - DNS_MODES re-exported
from netcheck.lab.topology.commands import (
    LabError,
    _run,
    _run_all,
    _tool,
    isolated,
    python_argv,
)
from netcheck.lab.topology.namespaces import (
    ETC_NETNS,
    NETNS_RUN,
    NS_PATTERN,
    PREFIX_PATTERN,
    STATE_ROOT,
    _destroy,
    _pid_alive,
    _proc_start_time,
    cleanup_stale,
    lab_support_problem,
    list_namespaces,
)
from netcheck.lab.topology.plan import (
    ADDRESSES,
    CLIENT_HOSTS,
    CLIENT_RESOLV_CONF,
    CLIENT_V4,
    CLIENT_V6,
    COMMON_SYSCTLS,
    DEFAULT_ROUTES,
    DNS_V4,
    DNS_V6,
    GATEWAY_V4,
    GATEWAY_V6,
    ROLE_SYSCTLS,
    ROLES,
    SERVER_PORTS,
    SERVER_V4,
    SERVER_V6,
    STUB_V4,
    VETHS,
)
from netcheck.safefile import open_for_write

# Every public name the module had before it became a package, and the private ones other
# modules and tests reach.
__all__ = [
    "ADDRESSES", "cleanup_stale", "CLIENT_HOSTS", "CLIENT_RESOLV_CONF", "CLIENT_V4", "CLIENT_V6",
    "COMMON_SYSCTLS", "DEFAULT_ROUTES", "describe", "DNS_V4", "DNS_V6", "ETC_NETNS", "GATEWAY_V4",
    "GATEWAY_V6", "isolated", "Lab", "lab_support_problem", "LabError", "list_namespaces",
    "NETNS_RUN", "NS_PATTERN", "PREFIX_PATTERN", "python_argv", "ROLE_SYSCTLS", "ROLES",
    "SERVER_PORTS", "SERVER_V4", "SERVER_V6", "STATE_ROOT", "STUB_V4", "VETHS",
    # private: compose, docker, campaign and tests use them
    "_pid_alive", "_proc_start_time", "_run", "_run_all", "_tool",
]

_counter = itertools.count(1)
_live_labs: weakref.WeakSet[Lab] = weakref.WeakSet()


class Lab:
    """A disposable lab network. Use as a context manager, or call build() and teardown().

    >>> with Lab() as lab:                                   # doctest: +SKIP
    ...     lab.exec("client", ["ping", "-c1", "-W1", "198.18.2.10"]).returncode
    0
    """

    def __init__(self, *, keep: bool = False, keep_logs: bool = False,
                 servers: bool = True) -> None:
        """Prepare names only; nothing touches the system before build().

        keep: the lab outlives this process (for the manual CLI); ``netcheck lab down``
        or ``cleanup_stale(include_kept=True)`` removes it.
        keep_logs: leave the state directory (server logs, batch files) after teardown.
        servers: start the TCP and DNS servers.
        """
        self.prefix = f"nc{os.getpid()}-{next(_counter)}"
        self.namespaces: dict[str, str] = {role: f"{self.prefix}-{role}" for role in ROLES}
        self.state_dir = STATE_ROOT / self.prefix
        self.dns_control = self.state_dir / "dns-mode.json"
        self.keep = keep
        self.keep_logs = keep_logs
        self.with_servers = servers
        self.build_seconds: Optional[float] = None
        self._procs: list[tuple[str, subprocess.Popen, Optional[int]]] = []
        self._built = False
        self._torn_down = False

    # -- naming -------------------------------------------------------------------------------

    def ns(self, role: str) -> str:
        """Full namespace name for a role (client, router, server, dns, stub)."""
        try:
            return self.namespaces[role]
        except KeyError:
            raise LabError(f"unknown lab role {role!r}; roles are {', '.join(ROLES)}") from None

    @property
    def pids(self) -> list[int]:
        """PIDs of every process the lab started (servers and popen())."""
        return [proc.pid for _, proc, _ in self._procs]

    def __repr__(self) -> str:
        return f"<Lab {self.prefix} built={self._built} torn_down={self._torn_down}>"

    # -- life cycle ---------------------------------------------------------------------------

    def __enter__(self) -> Lab:
        if not self._built:
            self.build()
        return self

    def __exit__(self, *exc: object) -> None:
        if not self.keep:
            self.teardown()

    def build(self) -> Lab:
        """Create namespaces, links, addresses, routes and servers; tear down again on failure."""
        if self._built:
            return self
        start = time.monotonic()
        self._built = True
        _live_labs.add(self)
        try:
            self._build()
        except BaseException:
            self.teardown()
            raise
        self.build_seconds = time.monotonic() - start
        return self

    def _create_namespaces(self) -> None:
        """The state directory, then every namespace of ``self.namespaces`` (one batch).

        Also the first step of labs built otherwise (netcheck.lab.compose).
        """
        for _ in range(3):  # another lab's teardown may remove an empty STATE_ROOT meanwhile
            try:
                self.state_dir.mkdir(parents=True, exist_ok=True)
                break
            except FileNotFoundError:
                continue
        _own_directory(self.state_dir)
        self._save_state()  # before anything exists, so a crash mid-build can be cleaned
        _run([_tool("ip"), "-batch", "-"],
             input="".join(f"netns add {name}\n" for name in self.namespaces.values()))

    def _build(self) -> None:
        ip = _tool("ip")
        self._create_namespaces()

        # sysctls first: interfaces created afterwards inherit the `default` DAD setting.
        _run_all([(self._in(role, [_tool("sysctl"), "-q", "-w", *COMMON_SYSCTLS,
                                   *ROLE_SYSCTLS.get(role, ())]), None) for role in ROLES])
        # The servers need nothing but the namespace (they bind wildcard addresses), so they
        # boot while the links are being made.
        if self.with_servers:
            self.set_dns_mode("normal")
            self._start_servers()

        # Creators of veth pairs first (peers land in router/stub), then router and stub.
        creators = {creator for creator, _, _, _ in VETHS}
        _run_all([([ip, "-n", self.ns(role), "-batch", str(self._batch_file(role))], None)
                  for role in ROLES if role in creators])
        _run_all([([ip, "-n", self.ns(role), "-batch", str(self._batch_file(role))], None)
                  for role in ROLES if role not in creators])

        # NAPI threads on every veth end: otherwise an ICMP error for a SYN arrives inside the
        # sender's own connect() call and is ignored until the SYN is retried (STYLE.md).
        ethtool, tee = _tool("ethtool"), _tool("tee")
        commands: list[tuple[Sequence[str], Optional[str]]] = []
        for role, devs in self._veth_ends().items():
            for dev in devs:
                commands.append((self._in(role, [ethtool, "-K", dev, "tso", "off", "gro", "on"]),
                                 None))
        _run_all(commands)
        _run_all([(self._in(role, [tee, *(f"/sys/class/net/{d}/threaded" for d in devs)]), "1\n")
                  for role, devs in self._veth_ends().items()])

        self.write_client_file("resolv.conf", CLIENT_RESOLV_CONF)
        self.write_client_file("hosts", CLIENT_HOSTS)
        if self.with_servers:
            self._wait_ready()

    def teardown(self) -> None:
        """Stop the lab's processes (by PID), delete its namespaces and files. Idempotent."""
        if self._torn_down or not self._built:
            return
        self._torn_down = True
        _live_labs.discard(self)
        errors: list[str] = []
        for name, proc, _ in reversed(self._procs):
            try:
                _stop_popen(proc)
            except Exception as exc:  # keep going: namespaces must go whatever happens
                errors.append(f"stopping {name} (pid {proc.pid}): {exc}")
        errors += _destroy(self.prefix, list(self.namespaces.values()), [],
                           keep_logs=self.keep_logs)
        if errors:
            raise LabError("teardown incomplete: " + "; ".join(errors))

    # -- helpers for scenarios and tests ------------------------------------------------------

    def _in(self, role: str, argv: Sequence[str]) -> list[str]:
        from netcheck.lab import view  # files outside /etc a scenario gave the role

        return [_tool("ip"), "netns", "exec", self.ns(role), *view.prefix(self, role), *argv]

    def exec(self, role: str, argv: Sequence[str], *, timeout: float = 10.0,
             check: bool = False, input: Optional[str] = None,
             env: Optional[dict[str, str]] = None) -> subprocess.CompletedProcess[str]:
        """Run ``argv`` inside the role's namespace; output captured as text, timeout enforced.

        With ``check=True`` a non-zero exit raises LabError. subprocess.TimeoutExpired is raised
        (after the process is killed) when ``timeout`` passes.
        """
        argv_full = isolated(self._in(role, argv))
        proc = subprocess.run(argv_full, input=input, capture_output=True, text=True,
                              timeout=timeout, env=env,
                              stdin=None if input is not None else subprocess.DEVNULL)
        if check and proc.returncode != 0:
            raise LabError(f"[{role}] {' '.join(argv)} -> exit {proc.returncode}: "
                           f"{(proc.stderr or proc.stdout).strip()}")
        return proc

    def ip(self, role: str, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        """``ip -n <namespace> ARGS`` (no netns exec needed for iproute2 itself)."""
        argv = [_tool("ip"), "-n", self.ns(role), *args]
        proc = _run(argv, check=False)
        if check and proc.returncode != 0:
            raise LabError(f"[{role}] ip {' '.join(args)} -> {proc.stderr.strip()}")
        return proc

    def popen(self, role: str, argv: Sequence[str], *, name: Optional[str] = None,
              env: Optional[dict[str, str]] = None) -> subprocess.Popen:
        """Start a long-running process in the role's namespace; teardown ends it by PID.

        stdout and stderr go to ``<state_dir>/<name>.log``. ``ip netns exec`` execs the program
        in place, so the Popen PID is the program's own PID.
        """
        if not self._built or self._torn_down:
            raise LabError("popen() needs a built lab")
        label = name or f"{role}-{Path(argv[0]).name}-{len(self._procs)}"
        # Appended to (a server started again keeps one log), never through a symbolic link.
        fd = os.open(self.state_dir / f"{label}.log",
                     os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644)
        log = os.fdopen(fd, "ab")
        try:
            proc = subprocess.Popen(isolated(self._in(role, argv)), stdin=subprocess.DEVNULL,
                                    stdout=log,
                                    stderr=subprocess.STDOUT, env=env,
                                    start_new_session=True)  # Ctrl-C in a terminal: we stop it
        finally:
            log.close()
        self._procs.append((label, proc, _proc_start_time(proc.pid)))
        self._save_state()
        return proc

    def nft(self, role: str, ruleset: str) -> None:
        """Load an nft ruleset into the role's namespace (``nft -f -``, fed on stdin)."""
        self.exec(role, [_tool("nft"), "-f", "-"], input=ruleset, check=True)

    def set_dns_mode(self, mode: str, delay_ms: int = DEFAULT_SLOW_MS) -> None:
        """Switch the DNS server: normal, refused, servfail or slow (answers after delay_ms)."""
        if mode not in DNS_MODES:
            raise LabError(f"unknown DNS mode {mode!r}; modes are {', '.join(DNS_MODES)}")
        self._write_dns_control(mode=mode, delay_ms=int(delay_ms))

    def add_dns_records(self, *rows: tuple[str, str, list[str]]) -> None:
        """Add records to the lab.test zone, e.g. ``("tls.lab.test.", "A", ["198.18.2.20"])``."""
        current = self._dns_control_data()
        self._write_dns_control(records=[*current.get("records", []),
                                         *[[n, t, list(v)] for n, t, v in rows]])

    def add_server_address(self, address: str) -> None:
        """Give the server namespace one more address on its eth0 (for another service)."""
        prefix = 64 if ":" in address else 24
        self.ip("server", "addr", "add", f"{address}/{prefix}", "dev", "eth0", "nodad")

    def _dns_control_data(self) -> dict[str, Any]:
        try:
            return dict(json.loads(self.dns_control.read_text()))
        except (OSError, ValueError):
            return {}

    def _write_dns_control(self, **changes: Any) -> None:
        data = {"mode": "normal", "delay_ms": DEFAULT_SLOW_MS, **self._dns_control_data(),
                **changes}
        # Written under a new name, then renamed: the server never reads half a file.
        with open_for_write(self.dns_control) as fh:
            fh.write(json.dumps(data).encode())

    def write_client_file(self, name: str, text: str) -> None:
        """Write /etc/netns/<client>/NAME, which ``ip netns exec`` bind-mounts over /etc/NAME.

        Typical names: resolv.conf, hosts. Applies to every later command run in the client.
        """
        if "/" in name or name in ("", ".", ".."):
            raise LabError(f"not a plain file name: {name!r}")
        if not (Path("/etc") / name).exists():
            # ip netns exec can only bind over an existing file; anything else would be ignored.
            raise LabError(f"/etc/{name} does not exist on this host; it cannot be overridden")
        directory = ETC_NETNS / self.ns("client")
        for _ in range(3):  # another lab's teardown may remove an empty /etc/netns meanwhile
            try:
                directory.mkdir(parents=True, exist_ok=True)
                with open_for_write(directory / name, 0o644) as fh:
                    fh.write(text.encode())
                return
            except FileNotFoundError:
                continue
        raise LabError(f"cannot write {directory / name}")

    def log(self, name: str) -> str:
        """Contents of a server log (``tcp``, ``dns`` or a popen() name), for failure messages."""
        try:
            return (self.state_dir / f"{name}.log").read_text(errors="replace")
        except OSError:
            return ""

    # -- internals ----------------------------------------------------------------------------

    def _veth_ends(self) -> dict[str, list[str]]:
        ends: dict[str, list[str]] = {}
        for ns_a, dev_a, ns_b, dev_b in VETHS:
            ends.setdefault(ns_a, []).append(dev_a)
            ends.setdefault(ns_b, []).append(dev_b)
        return ends

    def _batch_file(self, role: str) -> Path:
        """Write the iproute2 batch for one namespace (kept in state_dir: students can read it)."""
        lines = ["link set lo up"]
        for ns_a, dev_a, ns_b, dev_b in VETHS:
            if ns_a == role:
                lines.append(f"link add {dev_a} type veth peer name {dev_b} netns {self.ns(ns_b)}")
        devs = sorted({dev for dev, _ in ADDRESSES.get(role, ())})
        lines += [f"link set {dev} up" for dev in devs]
        lines += [f"addr add {cidr} dev {dev}" for dev, cidr in ADDRESSES.get(role, ())]
        lines += list(DEFAULT_ROUTES.get(role, ()))
        path = self.state_dir / f"{role}.batch"
        with open_for_write(path, 0o644) as fh:
            fh.write(("\n".join(lines) + "\n").encode())
        return path

    def _start_servers(self) -> None:
        for name in ("tcp", "dns"):
            (self.state_dir / f"{name}.ready").unlink(missing_ok=True)
        # Bound to www's own addresses, not the wildcards: scenarios add more addresses to
        # the server for their own services (TLS, HTTP, mail) on the same well-known ports.
        self.popen("server", python_argv("-m", "netcheck.lab.servers", "tcp",
                                         "--ports", ",".join(map(str, SERVER_PORTS)),
                                         "--bind", f"{SERVER_V4},{SERVER_V6}",
                                         "--ready", str(self.state_dir / "tcp.ready")),
                   name="tcp", env={**os.environ, "PYTHONUNBUFFERED": "1"})
        self.popen("dns", python_argv("-m", "netcheck.lab.servers", "dns",
                                      "--control", str(self.dns_control),
                                      "--ready", str(self.state_dir / "dns.ready")),
                   name="dns", env={**os.environ, "PYTHONUNBUFFERED": "1"})

    def _wait_ready(self, timeout: float = 10.0) -> None:
        """Wait until every server wrote its ready file (bound and listening)."""
        deadline = time.monotonic() + timeout
        pending = {name: proc for name, proc, _ in self._procs if name in ("tcp", "dns")}
        while pending:
            for name, proc in list(pending.items()):
                if (self.state_dir / f"{name}.ready").exists():
                    del pending[name]
                elif proc.poll() is not None:
                    raise LabError(f"{name} server exited with {proc.returncode}:\n"
                                   f"{self.log(name)}")
            if pending and time.monotonic() > deadline:
                raise LabError(f"servers not ready after {timeout}s: {sorted(pending)}")
            if pending:
                time.sleep(0.005)

    def _save_state(self) -> None:
        """Record what exists, so cleanup_stale() and `down` can remove it after a crash."""
        state = {
            "prefix": self.prefix,
            "creator_pid": os.getpid(),
            "creator_start": _proc_start_time(os.getpid()),
            "keep": self.keep,
            "namespaces": list(self.namespaces.values()),
            "pids": [[proc.pid, start] for _, proc, start in self._procs],
        }
        with open_for_write(self.state_dir / "state.json", 0o644) as fh:
            fh.write(json.dumps(state, indent=1).encode())


def _own_directory(path: Path) -> None:
    """Refuse a lab directory that is a symbolic link, or that another user owns or may write
    to: the lab writes its files there as root (NETCHECK_LAB_DIR may point anywhere)."""
    info = os.lstat(path)
    if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.geteuid() or info.st_mode & 0o022:
        raise LabError(f"{path} is not a directory of this user that only it may write to; "
                       "remove it or set NETCHECK_LAB_DIR elsewhere")


def _stop_popen(proc: subprocess.Popen, grace: float = 2.0) -> None:
    """SIGTERM, then SIGKILL, the one process we started (Popen signals its own PID only)."""
    if proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=grace)


@atexit.register
def _teardown_forgotten_labs() -> None:
    """Safety net: a lab a caller forgot to tear down still goes when the interpreter exits."""
    for lab in list(_live_labs):
        if not lab.keep:
            try:
                lab.teardown()
            except Exception as exc:
                print(f"netcheck.lab: teardown of {lab.prefix} failed: {exc}", file=sys.stderr)


def describe() -> str:
    """A one-screen text picture of the topology (for the CLI and students)."""
    return (__doc__ or "").split("::", 1)[1].split("Everything lives", 1)[0].rstrip() + "\n"
