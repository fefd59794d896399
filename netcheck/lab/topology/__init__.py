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
"""

from __future__ import annotations

import atexit
import itertools
import json
import os
import re
import shutil
import signal
import stat
import subprocess
import sys
import time
import weakref
from pathlib import Path
from typing import Any, Optional, Sequence

from netcheck.lab.servers import DEFAULT_SLOW_MS, DNS_MODES  # noqa: F401 - DNS_MODES re-exported
from netcheck.safefile import open_for_write

ROLES = ("client", "router", "server", "dns", "stub")
STATE_ROOT = Path(os.environ.get("NETCHECK_LAB_DIR", "/run/netcheck-lab"))
ETC_NETNS = Path("/etc/netns")
NETNS_RUN = Path("/run/netns")
# nc<creator pid>-<counter>-<role>; the pid is what cleanup_stale() checks for liveness.
NS_PATTERN = re.compile(r"^nc(?P<pid>[0-9]+)-(?P<n>[0-9]+)-(?P<role>[a-z]+)$")
PREFIX_PATTERN = re.compile(r"^nc(?P<pid>[0-9]+)-(?P<n>[0-9]+)$")

# Addresses netcheck, tests and students refer to.
CLIENT_V4, CLIENT_V6 = "198.18.1.2", "2001:db8:1::2"
GATEWAY_V4, GATEWAY_V6 = "198.18.1.1", "2001:db8:1::1"
SERVER_V4, SERVER_V6 = "198.18.2.10", "2001:db8:2::10"
DNS_V4, DNS_V6 = "198.18.3.53", "2001:db8:3::53"
STUB_V4 = "198.18.4.1"
SERVER_PORTS = (22, 80, 443)

# veth pairs: (namespace that creates it, its end, peer namespace, peer end).
VETHS: tuple[tuple[str, str, str, str], ...] = (
    ("client", "eth0", "router", "r-client"),
    ("client", "eth1", "stub", "eth0"),
    ("server", "eth0", "router", "r-server"),
    ("dns", "eth0", "router", "r-dns"),
)
ADDRESSES: dict[str, tuple[tuple[str, str], ...]] = {
    "client": (("eth0", "198.18.1.2/24"), ("eth0", "2001:db8:1::2/64"), ("eth1", "198.18.4.2/24")),
    "router": (
        ("r-client", "198.18.1.1/24"), ("r-client", "2001:db8:1::1/64"),
        ("r-server", "198.18.2.1/24"), ("r-server", "2001:db8:2::1/64"),
        ("r-dns", "198.18.3.1/24"), ("r-dns", "2001:db8:3::1/64"),
    ),
    "server": (("eth0", "198.18.2.10/24"), ("eth0", "2001:db8:2::10/64")),
    "dns": (("eth0", "198.18.3.53/24"), ("eth0", "2001:db8:3::53/64")),
    "stub": (("eth0", "198.18.4.1/24"),),
}
# Batch lines cannot carry -4/-6, so defaults are spelled 0.0.0.0/0 and ::/0.
DEFAULT_ROUTES: dict[str, tuple[str, ...]] = {
    "client": ("route add 0.0.0.0/0 via 198.18.1.1 dev eth0",
               "route add ::/0 via 2001:db8:1::1 dev eth0"),
    "server": ("route add 0.0.0.0/0 via 198.18.2.1 dev eth0",
               "route add ::/0 via 2001:db8:2::1 dev eth0"),
    "dns": ("route add 0.0.0.0/0 via 198.18.3.1 dev eth0",
            "route add ::/0 via 2001:db8:3::1 dev eth0"),
}
COMMON_SYSCTLS = (
    # Addresses usable at once: no IPv6 duplicate address detection delay.
    "net.ipv6.conf.all.accept_dad=0",
    "net.ipv6.conf.default.accept_dad=0",
    # The router and servers answer every probe with an ICMP error, not one a second:
    # tests and netcheck retry quickly, and a rate-limited error looks like a drop.
    "net.ipv4.icmp_ratelimit=0",
    "net.ipv6.icmp.ratelimit=0",
)
ROLE_SYSCTLS: dict[str, tuple[str, ...]] = {
    "router": ("net.ipv4.ip_forward=1", "net.ipv6.conf.all.forwarding=1"),
    # What systemd sets on most distributions: unprivileged ICMP echo sockets allowed.
    "client": ("net.ipv4.ping_group_range=0 2147483647",),
}
CLIENT_RESOLV_CONF = "search lab.test\nnameserver 198.18.3.53\n"
CLIENT_HOSTS = "127.0.0.1 localhost\n::1 localhost\n"

_counter = itertools.count(1)
_live_labs: weakref.WeakSet[Lab] = weakref.WeakSet()


class LabError(RuntimeError):
    """A lab command failed; the message carries the command and its stderr."""


def _tool(name: str) -> str:
    """Absolute path of a system tool (sbin may be missing from PATH under sudo/cron)."""
    found = shutil.which(name) or shutil.which(name, path="/usr/sbin:/sbin:/usr/bin:/bin")
    if not found:
        raise LabError(f"{name} not found: install it (Debian: apt-get install "
                       "iproute2 nftables iputils-ping ethtool dnsutils)")
    return found


def python_argv(*args: str) -> list[str]:
    """``[this interpreter, "-I", *args]``: how the lab starts a Python helper (as root).

    Without ``-I`` Python puts the current directory first on ``sys.path`` for ``-m`` and
    ``-c``, and reads PYTHONPATH, PYTHONSTARTUP and the user's site-packages: a ``netcheck/``
    (or a ``socket.py``) planted in a directory others can write would run as root. In
    isolated mode none of those count; netcheck is found where it is installed (the venv's
    site-packages, an editable install included). ``-u`` because isolated mode also ignores
    PYTHONUNBUFFERED, which the servers are started with so a log is whole when one dies.
    """
    return [sys.executable, "-I", "-u", *args]


# This interpreter, however it is named (the venv's python is a link; a helper may be started
# through a link with another name, as docker-proxy is).
_PYTHON = os.path.realpath(sys.executable)
_PYTHON_NAME = re.compile(r"^python[0-9.]*$")


def _is_python(arg: str) -> bool:
    if arg == sys.executable or _PYTHON_NAME.match(os.path.basename(arg)):
        return True
    return arg.startswith("/") and os.path.realpath(arg) == _PYTHON


def isolated(argv: Sequence[str]) -> list[str]:
    """``argv`` with ``-I`` after every Python interpreter in it that runs ``-m`` or ``-c``.

    The safety net under :func:`python_argv`: every command the lab runs in a namespace passes
    here, so a helper written as ``[sys.executable, "-m", ...]`` (or a wrapper that starts one
    before the real command) never takes its modules from the current directory either.
    """
    out = list(argv)
    i = 0
    while i < len(out):
        flags = []
        for arg in out[i + 1:]:
            if not arg.startswith("-"):
                break
            flags.append(arg)
            if arg in ("-m", "-c"):
                break
        if flags and flags[-1] in ("-m", "-c") and "-I" not in flags and _is_python(out[i]):
            out.insert(i + 1, "-I")
            i += len(flags) + 1
        i += 1
    return out


def _run(argv: Sequence[str], *, input: Optional[str] = None, timeout: float = 10.0,
         check: bool = True) -> subprocess.CompletedProcess[str]:
    """Run one command (argv list, never a shell) and raise LabError if it fails and ``check``."""
    proc = subprocess.run(isolated(argv), input=input, capture_output=True, text=True,
                          timeout=timeout, stdin=None if input is not None else subprocess.DEVNULL)
    if check and proc.returncode != 0:
        raise LabError(f"{' '.join(argv)} -> exit {proc.returncode}: {proc.stderr.strip()}")
    return proc


def _run_all(commands: Sequence[tuple[Sequence[str], Optional[str]]],
             timeout: float = 10.0) -> None:
    """Run independent commands concurrently; raise LabError naming every one that failed."""
    procs = []
    for argv, stdin in commands:
        procs.append((argv, stdin, subprocess.Popen(
            isolated(argv), text=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            stdin=subprocess.PIPE if stdin is not None else subprocess.DEVNULL)))
    failures = []
    for argv, stdin, proc in procs:
        try:
            _, err = proc.communicate(stdin, timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.communicate()
            failures.append(f"{' '.join(argv)} -> timed out")
            continue
        if proc.returncode != 0:
            failures.append(f"{' '.join(argv)} -> exit {proc.returncode}: {err.strip()}")
    if failures:
        raise LabError("; ".join(failures))


def list_namespaces() -> list[str]:
    """Names of all named network namespaces (what ``ip netns list`` shows)."""
    try:
        return sorted(os.listdir(NETNS_RUN))
    except FileNotFoundError:
        return []


def _proc_start_time(pid: int) -> Optional[int]:
    """Start time of ``pid`` in clock ticks since boot, or None if there is no such process.

    Stored next to every PID the lab records, so a PID reused by an unrelated process after a
    crash is never mistaken for ours.
    """
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name (field 2) may contain spaces and parentheses: split after the last ')'.
    fields = stat.rsplit(")", 1)[1].split()
    return int(fields[19])


def _pid_alive(pid: int, start_time: Optional[int] = None) -> bool:
    """True if ``pid`` runs (and, when given, is the same process that started at start_time)."""
    now = _proc_start_time(pid)
    if now is None:
        return False
    return start_time is None or now == start_time


def _pid_netns_names(pid: int) -> list[str]:
    """Named namespaces ``pid`` is in (``ip netns identify``), empty if none or gone."""
    proc = _run([_tool("ip"), "netns", "identify", str(pid)], check=False, timeout=5)
    return proc.stdout.split() if proc.returncode == 0 else []


def _stop_recorded_pid(pid: int, start_time: Optional[int], namespaces: Sequence[str]) -> None:
    """End a server the lab started, by PID, only if it is still that process in a lab namespace."""
    if not _pid_alive(pid, start_time):
        return
    if not set(_pid_netns_names(pid)) & set(namespaces):
        return  # not ours (any more): never signal it
    for sig, wait in ((signal.SIGTERM, 2.0), (signal.SIGKILL, 2.0)):
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            return
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            if not _pid_alive(pid, start_time) or _is_zombie(pid):
                return
            time.sleep(0.02)


def _is_zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except OSError:
        return False


def _rmtree(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)


def _rmdir_if_empty(path: Path) -> None:
    try:
        path.rmdir()
    except OSError:
        pass  # not empty (another lab uses it) or already gone


def _destroy(prefix: str, namespaces: Sequence[str], pids: Sequence[tuple[int, Optional[int]]],
             keep_logs: bool = False) -> list[str]:
    """Stop recorded processes, delete namespaces and their /etc/netns files; return errors."""
    from netcheck.lab import docker  # a Docker engine of the lab goes first, with its containers

    errors: list[str] = docker.destroy(STATE_ROOT / prefix, namespaces)
    for pid, start in pids:
        try:
            _stop_recorded_pid(pid, start, namespaces)
        except Exception as exc:  # keep tearing down whatever else exists
            errors.append(f"stopping pid {pid}: {exc}")
    existing = set(list_namespaces())
    for name in namespaces:
        if not NS_PATTERN.match(name) or not name.startswith(prefix + "-"):
            continue  # paranoia: only ever delete our own names
        if name in existing:
            proc = _run([_tool("ip"), "netns", "del", name], check=False)
            if proc.returncode != 0:
                errors.append(f"ip netns del {name}: {proc.stderr.strip()}")
        _rmtree(ETC_NETNS / name)
    _rmdir_if_empty(ETC_NETNS)
    if not keep_logs:
        _rmtree(STATE_ROOT / prefix)
        _rmdir_if_empty(STATE_ROOT)
    return errors


def _read_state(prefix: str) -> Optional[dict[str, Any]]:
    try:
        return json.loads((STATE_ROOT / prefix / "state.json").read_text())
    except (OSError, ValueError):
        return None


def cleanup_stale(include_kept: bool = False) -> list[str]:
    """Remove labs left behind by processes that no longer exist; return the namespaces removed.

    Only namespaces named ``nc<pid>-<n>-<role>`` are considered, and only when process ``pid``
    (the lab's creator) is dead. A lab brought up with ``keep=True`` (``python -m netcheck.lab
    up``) outlives its creator on purpose and is removed only with ``include_kept=True``.
    Processes are ended only if recorded in the lab's state file and still inside its namespaces.
    """
    groups: dict[str, list[str]] = {}
    for name in list_namespaces():
        match = NS_PATTERN.match(name)
        if match:
            groups.setdefault(f"nc{match['pid']}-{match['n']}", []).append(name)
    # Half-built labs may have a state dir or /etc/netns files but no namespace left.
    for root in (STATE_ROOT, ETC_NETNS):
        if root.is_dir():
            for entry in os.listdir(root):
                match = PREFIX_PATTERN.match(entry) or NS_PATTERN.match(entry)
                if match:
                    groups.setdefault(f"nc{match['pid']}-{match['n']}", [])
                    if NS_PATTERN.match(entry) and root == ETC_NETNS:
                        groups[f"nc{match['pid']}-{match['n']}"].append(entry)
    removed: list[str] = []
    for prefix, names in sorted(groups.items()):
        pid = int(PREFIX_PATTERN.match(prefix)["pid"])  # type: ignore[index]
        state = _read_state(prefix) or {}
        if state.get("keep") and not include_kept:
            continue
        if not state.get("keep") and _pid_alive(pid, state.get("creator_start")):
            continue
        namespaces = sorted(set(names) | set(state.get("namespaces", [])))
        pids = [(int(p), s) for p, s in state.get("pids", [])]
        _destroy(prefix, namespaces, pids)
        removed.extend(n for n in namespaces if n in names)
    return removed


def lab_support_problem() -> Optional[str]:
    """Why a lab cannot be built here (not root, tool missing, no netns), or None if it can."""
    if os.geteuid() != 0:
        return "the lab needs root (network namespaces, veth, nft)"
    for tool in ("ip", "nft", "ethtool", "ping", "dig"):
        try:
            _tool(tool)
        except LabError as exc:
            return str(exc)
    probe = f"nc{os.getpid()}-0-probe"
    try:
        proc = _run([_tool("ip"), "netns", "add", probe], check=False)
        if proc.returncode != 0:
            return f"`ip netns add` failed: {proc.stderr.strip()}"
        proc = _run([_tool("ip"), "-n", probe, "link", "add", "eth0", "type", "veth",
                     "peer", "name", "eth1"], check=False)
        if proc.returncode != 0:
            return f"cannot create a veth pair in a namespace: {proc.stderr.strip()}"
    finally:
        if probe in list_namespaces():
            _run([_tool("ip"), "netns", "del", probe], check=False)
    return None


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
