"""systemd, asked what ``systemctl status UNIT`` tells a person: the unit's state, whether it
starts at boot, its last log lines, and which unit a process belongs to.

A unit name never reaches a shell, and is checked against systemd's own grammar first
(``unit_name_is_valid()`` in src/basic/unit-name.c: at most 255 characters of
``[A-Za-z0-9:_.\\-]`` plus one ``@``, a known type suffix); a name without a suffix gets
``.service`` as systemctl gives it. systemctl and journalctl run as argv lists with ``--``
before the unit, a timeout and a cap on their output (``firewall.run_bounded``).

Where systemd is not PID 1 (a container, a chroot, these lab machines) there is no manager
to ask: :func:`not_running_reason` says why (a code and PID 1's name; the words are the
checks') and the checks skip. The parser is tested on
``systemctl show`` outputs recorded from a real systemd 252 (tests/fixtures/systemd/).
"""

from __future__ import annotations

import os
import re
import shutil
from dataclasses import dataclass, field
from typing import Any, Optional

SBIN = "/usr/bin:/bin:/usr/sbin:/sbin"
UNIT_NAME_MAX = 255
UNIT_SUFFIXES = (".service", ".socket", ".target", ".device", ".mount", ".automount",
                 ".swap", ".timer", ".path", ".slice", ".scope")
# systemd's VALID_CHARS ("[A-Za-z0-9:_.\\-]") plus the single "@" of a template instance.
_UNIT_CHARS = re.compile(r"^[A-Za-z0-9:_.\\@-]+$")
# What the checks read; `systemctl show` prints them in the unit's own order, not this one.
SHOW_PROPERTIES = (
    "Id", "Description", "LoadState", "LoadError", "ActiveState", "SubState", "Result",
    "UnitFileState", "UnitFilePreset", "FragmentPath", "MainPID", "ExecMainCode",
    "ExecMainStatus", "ActiveEnterTimestamp", "InactiveEnterTimestamp", "StateChangeTimestamp",
    "NRestarts", "StatusText", "ControlGroup", "TriggeredBy", "NeedDaemonReload",
)
MAX_OUTPUT = 1 << 20
# UnitFileState values that mean "starts by itself at boot" / "someone else starts it".
STARTS_AT_BOOT = ("enabled", "enabled-runtime", "alias")
STARTED_BY_OTHERS = ("static", "indirect", "generated", "transient")
# ExecMainCode is a CLD_* code from waitid(2).
_EXIT_CODES = {"1": "exited", "2": "killed", "3": "dumped", "0": None}
# Why systemd cannot be asked here (Unavailable.code); the words are where it is shown
# (netcheck.checks.server.common.systemd_unavailable).
NOT_INIT = "not_init"  # systemd is not PID 1 (a container, a chroot, another init)
NO_SYSTEMCTL = "no_systemctl"
NO_JOURNALCTL = "no_journalctl"


@dataclass(frozen=True)
class Unavailable:
    """Why there is no systemd (or no journal) to ask here: a code, and for ``NOT_INIT`` what
    PID 1 is instead (``/proc/1/comm``, ``?`` when empty, None when it cannot be read)."""

    code: str
    pid1: Optional[str] = None


class UnitNameError(ValueError):
    """A unit name systemd would refuse; the message is one line for the user."""


class SystemdError(RuntimeError):
    """systemctl or journalctl could not answer; the message is their own first line."""


def normalise_unit(name: str) -> str:
    """The unit name systemctl would use, or :class:`UnitNameError`.

    ``nginx`` -> ``nginx.service``. Shell metacharacters, spaces, a leading ``-`` (it would
    read as an option), empty parts and over-long names are refused, never passed on.
    """
    shown = name if len(name) <= 40 else name[:37] + "..."
    if not name or len(name) > UNIT_NAME_MAX:
        raise UnitNameError(f"unit name {shown!r}: 1 to {UNIT_NAME_MAX} characters")
    if not _UNIT_CHARS.match(name):
        raise UnitNameError(f"unit name {shown!r}: only letters, digits and ':_.\\-@' are "
                            "allowed in a systemd unit name")
    if name.startswith("-"):
        raise UnitNameError(f"unit name {shown!r} must not start with '-'")
    if not name.endswith(UNIT_SUFFIXES):
        name += ".service"
        if len(name) > UNIT_NAME_MAX:
            raise UnitNameError(f"unit name {shown!r} is too long")
    prefix, _dot, _suffix = name.rpartition(".")
    if not prefix or prefix.startswith(".") or prefix.count("@") > 1:
        raise UnitNameError(f"unit name {shown!r} is not a valid systemd unit name")
    if "@" in prefix and prefix.startswith("@"):
        raise UnitNameError(f"unit name {shown!r} is not a valid systemd unit name")
    return name


def _tool(name: str) -> Optional[str]:
    return shutil.which(name) or shutil.which(name, path=SBIN)


def not_running_reason(procfs: str = "/proc", runtime_dir: str = "/run/systemd/system"
                       ) -> Optional[Unavailable]:
    """Why there is no systemd to ask here, or None when systemd is the init system.

    sd_booted()'s test (``/run/systemd/system`` exists), plus systemctl being installed.
    """
    if not os.path.isdir(runtime_dir):
        pid1: Optional[str]
        try:
            with open(os.path.join(procfs, "1", "comm"), encoding="utf-8",
                      errors="replace") as fh:
                pid1 = fh.read().strip() or "?"
        except OSError:
            pid1 = None
        return Unavailable(NOT_INIT, pid1)
    if _tool("systemctl") is None:
        return Unavailable(NO_SYSTEMCTL)
    return None


def parse_show(text: str) -> dict[str, str]:
    """``Key=Value`` lines of ``systemctl show`` (the first unit's block; first value wins)."""
    props: dict[str, str] = {}
    for line in text.splitlines():
        if not line.strip():
            if props:
                break  # a blank line ends one unit's block
            continue
        key, sep, value = line.partition("=")
        if sep and key and key not in props:
            props[key] = value
    return props


@dataclass
class UnitState:
    """One unit as ``systemctl show`` describes it."""

    unit: str
    load_state: str = ""
    active_state: str = ""
    sub_state: str = ""
    result: str = ""
    unit_file_state: str = ""
    preset: str = ""
    fragment: str = ""
    description: str = ""
    load_error: str = ""
    main_pid: int = 0
    exit_code: Optional[str] = None  # exited | killed | dumped
    exit_status: Optional[int] = None
    active_since: str = ""
    inactive_since: str = ""
    changed_at: str = ""
    restarts: int = 0
    status_text: str = ""
    control_group: str = ""
    triggered_by: str = ""
    needs_reload: bool = False
    log: list[str] = field(default_factory=list)  # the last journal lines, when read
    log_note: Optional[str] = None  # why there are none

    @property
    def active(self) -> bool:
        """Running (or reloading): it serves."""
        return self.active_state in ("active", "reloading")

    @property
    def exists(self) -> bool:
        """The unit is installed (not ``not-found``)."""
        return self.load_state not in ("not-found", "")

    @property
    def masked(self) -> bool:
        """Masked: linked to /dev/null, it cannot be started."""
        return self.load_state == "masked" or self.unit_file_state.startswith("masked")

    @property
    def boot(self) -> str:
        """enabled | disabled | masked | static... (``systemctl is-enabled``'s words)."""
        return self.unit_file_state or "unknown"

    @property
    def starts_at_boot(self) -> Optional[bool]:
        """True/False from ``UnitFileState``; None when another unit starts it."""
        if self.unit_file_state in STARTS_AT_BOOT:
            return True
        if self.unit_file_state in STARTED_BY_OTHERS or not self.unit_file_state:
            return None  # another unit (a socket, a target) decides
        return False

    def active_line(self) -> str:
        """What ``systemctl status`` prints after ``Active:``."""
        text = f"{self.active_state or 'unknown'} ({self.sub_state or '?'})"
        since = self.active_since if self.active else (self.inactive_since or self.changed_at)
        if since and since != "n/a":
            text += f" since {since}"
        return text

    def loaded_line(self) -> str:
        """What ``systemctl status`` prints after ``Loaded:``."""
        if self.load_state == "not-found":
            return "not-found (the unit is not installed)"
        parts = [p for p in (self.fragment, self.unit_file_state) if p]
        if self.preset:
            parts.append(f"preset: {self.preset}")
        return f"{self.load_state or 'unknown'} ({'; '.join(parts)})" if parts else \
            self.load_state or "unknown"

    def failure(self) -> Optional[str]:
        """How the main process ended, when it did not succeed (``code=exited, status=1``)."""
        if self.result in ("", "success"):
            return None
        words = f"result {self.result}"
        if self.exit_code:
            words += f", main process {self.exit_code}"
            if self.exit_status is not None:
                words += f" with status {self.exit_status}"
        return words

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "unit": self.unit, "description": self.description, "loaded": self.loaded_line(),
            "active": self.active_line(), "load_state": self.load_state,
            "active_state": self.active_state, "sub_state": self.sub_state,
            "boot": self.boot, "result": self.result,
        }
        if self.main_pid:
            out["main_pid"] = self.main_pid
        if self.failure():
            out["failure"] = self.failure()
        for key, value in (("restarts", self.restarts), ("status_text", self.status_text),
                           ("load_error", self.load_error), ("cgroup", self.control_group),
                           ("triggered_by", self.triggered_by)):
            if value:
                out[key] = value
        if self.needs_reload:
            out["needs_daemon_reload"] = True
        if self.log:
            out["log"] = list(self.log)
        if self.log_note:
            out["log_note"] = self.log_note
        return out


def _int(text: str, default: int = 0) -> int:
    try:
        return int(text)
    except ValueError:
        return default


def unit_state(unit: str, props: dict[str, str]) -> UnitState:
    """A :class:`UnitState` from parsed ``systemctl show`` properties."""
    status = props.get("ExecMainStatus", "")
    code = _EXIT_CODES.get(props.get("ExecMainCode", ""))
    return UnitState(
        unit=props.get("Id") or unit,
        load_state=props.get("LoadState", ""),
        active_state=props.get("ActiveState", ""),
        sub_state=props.get("SubState", ""),
        result=props.get("Result", ""),
        unit_file_state=props.get("UnitFileState", ""),
        preset=props.get("UnitFilePreset", ""),
        fragment=props.get("FragmentPath", ""),
        description=props.get("Description", ""),
        load_error=_load_error(props.get("LoadError", "")),
        main_pid=_int(props.get("MainPID", "0")),
        exit_code=code,
        exit_status=_int(status) if code and status.lstrip("-").isdigit() else None,
        active_since=props.get("ActiveEnterTimestamp", ""),
        inactive_since=props.get("InactiveEnterTimestamp", ""),
        changed_at=props.get("StateChangeTimestamp", ""),
        restarts=_int(props.get("NRestarts", "0")),
        status_text=props.get("StatusText", ""),
        control_group=props.get("ControlGroup", ""),
        triggered_by=props.get("TriggeredBy", ""),
        needs_reload=props.get("NeedDaemonReload", "no") == "yes",
    )


def _load_error(text: str) -> str:
    """``org.freedesktop.systemd1.NoSuchUnit "Unit x not found."`` -> ``Unit x not found.``"""
    if '"' in text:
        return text.split('"', 1)[1].rstrip('"')
    return text


def show(unit: str, timeout: float = 2.0, user: bool = False) -> UnitState:
    """``systemctl show --property=... -- UNIT`` parsed; :class:`SystemdError` if it fails.

    ``unit`` must come from :func:`normalise_unit`.
    """
    from netcheck.probes.firewall import run_bounded

    systemctl = _tool("systemctl")
    if systemctl is None:
        raise SystemdError("systemctl is not installed")
    argv = [systemctl, *(["--user"] if user else []), "show", "--no-pager",
            f"--property={','.join(SHOW_PROPERTIES)}", "--", unit]
    rc, out, err = run_bounded(argv, timeout, MAX_OUTPUT)
    if rc != 0:
        first = next((ln.strip() for ln in (err or out).splitlines() if ln.strip()), "")
        raise SystemdError(first or f"systemctl show exited with {rc}")
    return unit_state(unit, parse_show(out))


def journal_reason(procfs: str = "/proc") -> Optional[Unavailable]:
    """Why the journal cannot be read here (:func:`not_running_reason`'s reasons, or
    ``NO_JOURNALCTL``), or None."""
    reason = not_running_reason(procfs)
    if reason:
        return reason
    if _tool("journalctl") is None:
        return Unavailable(NO_JOURNALCTL)
    return None


def journal(unit: str, since: Optional[str] = None, lines: int = 10, timeout: float = 2.0,
            priority: Optional[str] = None, max_bytes: int = MAX_OUTPUT) -> list[str]:
    """The unit's journal lines, oldest first (``journalctl -u UNIT -o short-iso``).

    ``since``: a time journalctl understands (``2025-10-10 13:55:36``); ``lines``: the last
    N; ``priority``: ``err`` for errors and worse. :class:`SystemdError` when it fails.
    """
    from netcheck.probes.firewall import run_bounded

    journalctl = _tool("journalctl")
    if journalctl is None:
        raise SystemdError("journalctl is not installed")
    argv = [journalctl, "--no-pager", "-q", "-o", "short-iso", "-n", str(int(lines))]
    if since:
        argv += ["--since", since]
    if priority:
        argv += ["-p", priority]
    argv += ["-u", unit]
    rc, out, err = run_bounded(argv, timeout, max_bytes)
    if rc != 0:
        first = next((ln.strip() for ln in (err or out).splitlines() if ln.strip()), "")
        raise SystemdError(first or f"journalctl exited with {rc}")
    return [ln for ln in out.splitlines() if ln.strip() and not ln.startswith("-- ")]


# -- which unit a process belongs to ----------------------------------------------------------

@dataclass(frozen=True)
class UnitRef:
    """The unit whose cgroup holds a process (a user's own unit when ``user`` is set)."""

    unit: str
    user: Optional[int] = None  # uid of a user manager's unit (systemctl --user)
    cgroup: str = ""

    def describe(self) -> str:
        """The unit, and whose it is when not a system service."""
        if self.user is not None:
            return f"{self.unit} (a unit of user {self.user}'s own manager: systemctl --user)"
        if self.unit.endswith(".scope"):
            return f"{self.unit} (started from a session or by a container runtime, " \
                   "not by a service unit)"
        return self.unit


_USER_MANAGER = re.compile(r"^user@(\d+)\.service$")


def unit_of_cgroup(text: str) -> Optional[UnitRef]:
    """The unit named by a ``/proc/PID/cgroup`` file, or None (no systemd cgroup).

    cgroup v2 (``0::/system.slice/nginx.service``) or v1's ``name=systemd`` hierarchy. The
    innermost ``.service`` or ``.scope`` is the one; below ``user@UID.service`` it is one of
    that user's own units.
    """
    path = None
    for line in text.splitlines():
        parts = line.split(":", 2)
        if len(parts) != 3:
            continue
        if parts[0] == "0" and parts[1] == "":
            path = parts[2]
            break
        if parts[1] == "name=systemd":
            path = parts[2]
    if not path:
        return None
    components = [c for c in path.strip().split("/") if c]
    user: Optional[int] = None
    found: Optional[str] = None
    for comp in components:
        m = _USER_MANAGER.match(comp)
        if m:
            user = int(m.group(1))
            found = None
            continue
        if comp.endswith((".service", ".scope")) and _UNIT_CHARS.match(comp):
            found = comp
    if found is None:
        return None
    return UnitRef(found, user, path.strip())


def unit_of_pid(pid: int, procfs: str = "/proc") -> Optional[UnitRef]:
    """The unit a running process belongs to, from ``/proc/PID/cgroup`` (None if unknown)."""
    try:
        with open(os.path.join(procfs, str(int(pid)), "cgroup"), encoding="utf-8",
                  errors="replace") as fh:
            return unit_of_cgroup(fh.read(64 << 10))
    except (OSError, ValueError):
        return None


# Units that usually serve a well-known port: a guess when nothing listens to ask.
PORT_UNITS: dict[int, tuple[str, ...]] = {
    22: ("ssh.service", "sshd.service"),
    25: ("postfix.service", "exim4.service"),
    53: ("named.service", "bind9.service", "unbound.service", "dnsmasq.service"),
    80: ("nginx.service", "apache2.service", "httpd.service", "lighttpd.service",
         "caddy.service"),
    110: ("dovecot.service",),
    143: ("dovecot.service",),
    443: ("nginx.service", "apache2.service", "httpd.service", "lighttpd.service",
          "caddy.service"),
    587: ("postfix.service", "exim4.service"),
    993: ("dovecot.service",),
    995: ("dovecot.service",),
    3306: ("mariadb.service", "mysql.service"),
    5432: ("postgresql.service",),
}
UNIT_DIRS = ("etc/systemd/system", "lib/systemd/system", "usr/lib/systemd/system")


def installed_units_for_port(port: int, root: str = "/") -> list[str]:
    """Units of :data:`PORT_UNITS` whose unit file exists on this host."""
    found = []
    for unit in PORT_UNITS.get(port, ()):
        if any(os.path.exists(os.path.join(root, d, unit)) for d in UNIT_DIRS):
            if unit not in found:
                found.append(unit)
    return found
