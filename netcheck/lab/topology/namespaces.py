"""The lab's namespaces and what a lab leaves behind: the names (``nc<pid>-<n>-<role>``), its
state directory, recorded processes stopped only while they are still ours, labs of processes
that no longer exist removed (:func:`cleanup_stale`), and whether a lab can be built here at all
(:func:`lab_support_problem`).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import time
from pathlib import Path
from typing import Any, Optional, Sequence

from netcheck.lab.topology.commands import LabError, _run, _tool

STATE_ROOT = Path(os.environ.get("NETCHECK_LAB_DIR", "/run/netcheck-lab"))
ETC_NETNS = Path("/etc/netns")
NETNS_RUN = Path("/run/netns")
# nc<creator pid>-<counter>-<role>; the pid is what cleanup_stale() checks for liveness.
NS_PATTERN = re.compile(r"^nc(?P<pid>[0-9]+)-(?P<n>[0-9]+)-(?P<role>[a-z]+)$")
PREFIX_PATTERN = re.compile(r"^nc(?P<pid>[0-9]+)-(?P<n>[0-9]+)$")


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
