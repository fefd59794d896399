"""Running commands for the lab: a system tool found by absolute path (:func:`_tool`), Python
helpers started isolated (:func:`python_argv`, :func:`isolated`), commands run one at a time or
concurrently (:func:`_run`, :func:`_run_all`), never through a shell; :class:`LabError`.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from typing import Optional, Sequence


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
