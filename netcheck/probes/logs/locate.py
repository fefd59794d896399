"""Where the logs are: the log files the listening processes hold open, and the places a web
server writes to when it does not say (Debian's and RHEL's layouts).
"""

from __future__ import annotations

import os
from typing import Optional

# What a web server writes where, when it does not say (Debian's and RHEL's layouts).
DEFAULT_LOGS: dict[str, tuple[str, ...]] = {
    "nginx": ("/var/log/nginx/access.log", "/var/log/nginx/error.log"),
    "apache2": ("/var/log/apache2/access.log", "/var/log/apache2/other_vhosts_access.log",
                "/var/log/apache2/error.log"),
    "httpd": ("/var/log/httpd/access_log", "/var/log/httpd/error_log"),
    "lighttpd": ("/var/log/lighttpd/access.log", "/var/log/lighttpd/error.log"),
}


def classify(path: str) -> Optional[str]:
    """``access`` or ``error`` by the file's name, or None."""
    name = os.path.basename(path).lower()
    if "error" in name:
        return "error"
    if "access" in name or "other_vhosts" in name:
        return "access"
    return None


def open_log_files(pids: list[int], procfs: str = "/proc", limit: int = 32) -> list[str]:
    """Log files the processes hold open (their fds), as nginx and Apache keep theirs."""
    found: list[str] = []
    for pid in pids[:16]:
        fd_dir = os.path.join(procfs, str(pid), "fd")
        try:
            fds = os.listdir(fd_dir)
        except OSError:
            continue
        for fd in fds:
            try:
                target = os.readlink(os.path.join(fd_dir, fd))
            except OSError:
                continue
            if not target.startswith("/") or target.endswith(" (deleted)"):
                continue
            if target.startswith(("/dev/", "/proc/", "/sys/")):
                continue
            base = os.path.basename(target).lower()
            if not (base.endswith((".log", "_log")) or "/log/" in target) or \
                    classify(target) is None:
                continue
            if target not in found and os.path.isfile(target):
                found.append(target)
            if len(found) >= limit:
                return found
    return found


def default_logs(names: list[str]) -> list[str]:
    """The usual log files of the web servers named (nginx, apache2, httpd...) that exist."""
    found: list[str] = []
    for name in names:
        for path in DEFAULT_LOGS.get(name.split(".")[0].split("@")[0], ()):
            if os.path.isfile(path) and path not in found:
                found.append(path)
    return found
