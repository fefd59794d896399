"""Who holds each socket: its inode among the file descriptors of the processes
(/proc/PID/fd), as ``ss -p`` finds them, every holder listed, the walk bounded in time.
"""

from __future__ import annotations

import os
import time
from typing import Iterable

from netcheck.server.listeners.sockets import Owner

OWNER_BUDGET_S = 1.5  # walking every process's descriptors: a bound, not a target
MAX_OWNERS = 32


# -- owners ----------------------------------------------------------------------------------

def find_owners(inodes: Iterable[int], procfs: str = "/proc", budget: float = OWNER_BUDGET_S
                ) -> tuple[dict[int, list[Owner]], bool, bool]:
    """Which processes hold each socket inode: (owners by inode, all visible, complete)."""
    wanted = {f"socket:[{i}]": i for i in inodes if i}
    owners: dict[int, list[Owner]] = {}
    visible, complete = True, True
    if not wanted:
        return owners, visible, complete
    deadline = time.monotonic() + budget
    try:
        pids = [int(p) for p in os.listdir(procfs) if p.isdigit()]
    except OSError:
        return owners, False, False
    for pid in sorted(pids):
        if time.monotonic() > deadline:
            complete = False
            break
        fd_dir = os.path.join(procfs, str(pid), "fd")
        try:
            fds = os.listdir(fd_dir)
        except PermissionError:
            visible = False
            continue
        except OSError:
            continue  # the process ended meanwhile
        name = None
        for fd in fds:
            try:
                link = os.readlink(os.path.join(fd_dir, fd))
            except OSError:
                continue
            inode = wanted.get(link)
            if inode is None:
                continue
            if name is None:
                name = _comm(procfs, pid)
            holders = owners.setdefault(inode, [])
            if len(holders) < MAX_OWNERS:
                holders.append(Owner(pid, name, int(fd)))
    return owners, visible, complete


def _comm(procfs: str, pid: int) -> str:
    try:
        with open(os.path.join(procfs, str(pid), "comm"), encoding="utf-8",
                  errors="replace") as fh:
            return fh.read().strip() or "?"
    except OSError:
        return "?"
