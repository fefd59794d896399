"""Files a lab namespace sees outside ``/etc``, the way ``/etc/netns`` works for ``/etc``.

``ip netns exec NS`` shows ``/etc/netns/NS/FILE`` as ``/etc/FILE`` — only for files that
exist on the host, and only under /etc. A host shaped like a real one needs more: the
files systemd-resolved writes under ``/run/systemd/resolve``, a dnsmasq configuration in
``/etc``. A role's *view* is a directory tree in the lab's state directory
(``view/<role>/run/systemd/resolve/resolv.conf``); every command the lab runs in that role
starts through this module, which mounts the tree over the real directories with a
read-only overlay in the command's own mount namespace (``ip netns exec`` made it private:
nothing is seen outside that command) and then executes the command::

    ip netns exec NS python -m netcheck.lab.view VIEW NS -- COMMAND...

Nothing here runs through a shell.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any, Optional

ETC_NETNS = Path("/etc/netns")


def view_dir(lab: Any, role: str) -> Path:
    """Where the files of ``role``'s view live (they appear at the same path under /)."""
    return Path(lab.state_dir) / "view" / role


def write_file(lab: Any, role: str, path: str, text: str) -> None:
    """Make ``path`` (absolute) read ``text`` for every later command run in ``role``."""
    target = Path(path)
    if not target.is_absolute() or ".." in target.parts:
        raise ValueError(f"not an absolute plain path: {path!r}")
    local = view_dir(lab, role) / target.relative_to("/")
    local.parent.mkdir(parents=True, exist_ok=True)
    local.write_text(text)


def prefix(lab: Any, role: str) -> list[str]:
    """The argv to put before a command run in ``role`` (empty when it has no view)."""
    root = view_dir(lab, role)
    if not root.is_dir():
        return []
    return [sys.executable, "-m", "netcheck.lab.view", str(root), lab.ns(role), "--"]


def _mounts(root: Path) -> list[Path]:
    """The existing directories to lay the view over: for each file of the view, the
    deepest directory of its path that exists, none inside another one."""
    found: set[Path] = set()
    for dirpath, _dirs, files in os.walk(root):
        if not files:
            continue
        where = Path("/") / Path(dirpath).relative_to(root)
        while not where.is_dir():
            where = where.parent
        found.add(where)
    return [p for p in sorted(found) if not any(q != p and q in p.parents for q in found)]


def mount_view(root: Path, netns: Optional[str]) -> None:
    """Overlay the view on the real directories (in this process's mount namespace)."""
    mount = shutil.which("mount") or "/usr/bin/mount"
    for where in _mounts(root):
        subprocess.run([mount, "-t", "overlay", "overlay", "-o",
                        f"lowerdir={root / where.relative_to('/')}:{where}", str(where)],
                       check=True, capture_output=True, timeout=10)
        own = ETC_NETNS / netns if netns else None
        if where == Path("/etc") and own is not None and own.is_dir():
            # The overlay hides ip netns exec's binds of /etc/netns/NS/* over /etc/*: bind
            # them again, as it does.
            for entry in sorted(own.iterdir()):
                if (where / entry.name).exists():
                    subprocess.run([mount, "--bind", str(entry), str(where / entry.name)],
                                   check=True, capture_output=True, timeout=10)


def _private_mounts() -> bool:
    """Does this process have a mount namespace of its own (the one ``ip netns exec`` made,
    which it then execs into us), not its parent's?"""
    try:
        return os.readlink("/proc/self/ns/mnt") != os.readlink(f"/proc/{os.getppid()}/ns/mnt")
    except OSError:
        return False


def main(argv: Optional[list[str]] = None) -> int:
    """``python -m netcheck.lab.view VIEW NETNS -- COMMAND...``"""
    args = list(sys.argv[1:] if argv is None else argv)
    if len(args) < 4 or args[2] != "--":
        sys.stderr.write("usage: python -m netcheck.lab.view VIEW NETNS -- COMMAND...\n")
        return 2
    if not _private_mounts():
        sys.stderr.write("netcheck.lab.view: refusing to mount outside the private mount "
                         "namespace of ip netns exec\n")
        return 2
    mount_view(Path(args[0]), args[1])
    os.execvp(args[3], args[3:])
    return 127  # not reached


if __name__ == "__main__":
    sys.exit(main())
