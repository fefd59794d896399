"""The repair journal: every undo is on disk before its step runs.

One file of JSON lines per repair in ``/var/lib/netcheck/fix/`` (``NETCHECK_FIX_DIR``
elsewhere), rewritten whole for each new line through :mod:`netcheck.safefile` (no link
followed, a reader sees the old file or the new one, never half a line), beside a lock file
that the repairing process holds with ``flock`` for as long as it runs::

    {"type": "start", "id": ..., "pid": ..., "boot_id": ..., "netns": ..., ...}
    {"type": "undo", "step": 1, "actions": [...], "runtime": true, "text": "..."}
    {"type": "done", "step": 1, "ok": true}
    {"type": "state", "state": "applied"}
    {"type": "undone", "step": 1, "ok": true, "message": "..."}
    {"type": "state", "state": "rolled_back"}

A journal whose last state is neither ``kept`` nor ``rolled_back`` was left behind: the
watchdog (:mod:`netcheck.fix.watchdog`, waiting on the lock) replays it as soon as the
repairing process dies, and ``netcheck fix --rollback`` does the same by hand. A journal
belongs to the network namespace and the boot it was written in: another namespace's is
never replayed, and after a reboot only the steps whose effect survives it (files,
a network manager's stored profiles) are undone.
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
import secrets
import stat
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Optional

from netcheck.fix.actions import Action, Outcome, execute
from netcheck.safefile import open_for_write

DEFAULT_DIR = "/var/lib/netcheck/fix"
MAX_JOURNAL = 8 << 20
FINAL = ("kept", "rolled_back")


class JournalError(OSError):
    """The journal directory or a journal cannot be used; ``strerror`` says why."""


def directory() -> Path:
    """Where journals live (``NETCHECK_FIX_DIR`` overrides the default)."""
    return Path(os.environ.get("NETCHECK_FIX_DIR") or DEFAULT_DIR)


def _own_dir(path: Path) -> None:
    info = os.lstat(path)
    if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.geteuid() or info.st_mode & 0o022:
        raise JournalError(errno.EPERM, f"{path} is not a directory of this user that only it "
                                        "may write to: refusing to keep the journal there")


def ensure_directory(path: Optional[Path] = None) -> Path:
    """Create the journal directory (mode 0700) and check every part of it is ours."""
    where = path or directory()
    if not where.is_absolute():
        raise JournalError(errno.EINVAL, f"{where} is not an absolute path")
    for parent in reversed(where.parents):
        if str(parent) in ("/", "/var", "/var/lib", "/run", "/tmp"):
            continue
        if not parent.exists():
            os.mkdir(parent, 0o755)
        _own_dir(parent)
    if not where.exists():
        os.mkdir(where, 0o700)
    _own_dir(where)
    return where


def boot_id() -> str:
    """This boot's id (changes at every reboot)."""
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        return ""


def netns_inode(pid: str = "self") -> int:
    """The network namespace's inode number (``ls -L -i /proc/self/ns/net``)."""
    try:
        return os.stat(f"/proc/{pid}/ns/net").st_ino
    except OSError:
        return 0


def links_fingerprint() -> list[str]:
    """``name=mac`` of this namespace's interfaces other than lo: a namespace reusing a dead
    one's inode number does not have the same ones."""
    found = []
    try:
        names = sorted(os.listdir("/sys/class/net"))
    except OSError:
        return []
    for name in names:
        if name == "lo":
            continue
        try:
            mac = Path("/sys/class/net", name, "address").read_text().strip()
        except OSError:
            mac = ""
        found.append(f"{name}={mac}")
    return found


def here() -> dict[str, Any]:
    """Where this process runs: the boot, the network namespace, its interfaces."""
    return {"boot_id": boot_id(), "netns": netns_inode(),
            "initial_netns": netns_inode() == netns_inode("1"), "links": links_fingerprint()}


def _process_start(pid: int) -> Optional[int]:
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return int(text.rsplit(")", 1)[1].split()[19])


@dataclass
class Journal:
    """One repair's journal, open for writing by the process that repairs."""

    path: Path
    lines: list[dict[str, Any]] = field(default_factory=list)
    lock_fd: Optional[int] = None

    @property
    def lock_path(self) -> Path:
        return self.path.with_suffix(".lock")

    @property
    def id(self) -> str:
        return self.path.stem

    @classmethod
    def create(cls, meta: dict[str, Any], where: Optional[Path] = None) -> Journal:
        """A new journal with its start line, locked by this process."""
        folder = ensure_directory(where)
        name = f"{time.strftime('%Y%m%dT%H%M%S')}-{os.getpid()}-{secrets.token_hex(3)}"
        journal = cls(folder / f"{name}.jsonl")
        journal.lock()
        pid = os.getpid()
        journal.add({"type": "start", "id": name, "pid": pid, "pid_start": _process_start(pid),
                     "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"), **here(), **meta})
        return journal

    @classmethod
    def open(cls, path: Path) -> Journal:
        """An existing journal, read (not locked)."""
        journal = cls(path)
        journal.lines = read_lines(path)
        return journal

    def lock(self, wait: bool = False) -> bool:
        """Take the journal's lock (False: another process holds it)."""
        fd = os.open(self.lock_path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC,
                     0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
        except BlockingIOError:
            os.close(fd)
            return False
        self.lock_fd = fd
        return True

    def unlock(self) -> None:
        """Let go of the lock (the watchdog then looks at the journal, and leaves)."""
        if self.lock_fd is not None:
            os.close(self.lock_fd)
            self.lock_fd = None

    def add(self, entry: dict[str, Any]) -> None:
        """Append one line: the whole file is written anew and renamed into place."""
        self.lines.append(entry)
        data = "".join(json.dumps(line, ensure_ascii=False) + "\n" for line in self.lines)
        with open_for_write(self.path, 0o600) as fh:
            fh.write(data.encode("utf-8"))

    # -- reading ---------------------------------------------------------------------------

    @property
    def start(self) -> dict[str, Any]:
        return self.lines[0] if self.lines and self.lines[0].get("type") == "start" else {}

    @property
    def state(self) -> str:
        """The last state recorded (``open`` while steps are being applied)."""
        for line in reversed(self.lines):
            if line.get("type") == "state":
                return str(line.get("state"))
        return "open"

    @property
    def pending(self) -> bool:
        """Left behind: changes may be in place that nobody kept or undid."""
        return self.state not in FINAL and any(x.get("type") == "undo" for x in self.lines)

    def undos(self) -> list[tuple[int, list[Action], bool, str]]:
        """(step, undo actions, runtime only, text) of every step not yet undone, last first."""
        undone = {x.get("step") for x in self.lines if x.get("type") == "undone" and x.get("ok")}
        found = []
        for x in self.lines:
            if x.get("type") != "undo" or x.get("step") in undone:
                continue
            actions = [Action.from_json(a) for a in x.get("actions", [])]
            found.append((int(x["step"]), actions, bool(x.get("runtime", True)),
                          str(x.get("text", ""))))
        return sorted(found, key=lambda item: -item[0])

    def belongs_here(self) -> tuple[bool, bool, str]:
        """(may be replayed, runtime steps included, why not) for this process's place."""
        start = self.start
        now = here()
        same_boot = start.get("boot_id") == now["boot_id"]
        if same_boot:
            if start.get("netns") != now["netns"]:
                return False, False, "written in another network namespace"
            if sorted(start.get("links", [])) != sorted(now["links"]):
                return False, False, ("written in a network namespace with other interfaces "
                                      "(this one reuses its number)")
            return True, True, ""
        if start.get("initial_netns") and now["initial_netns"]:
            return True, False, ""
        return False, False, "written before a reboot in a network namespace that is gone"


def read_lines(path: Path) -> list[dict[str, Any]]:
    """The lines of a journal (without following a link; bounded).

    A journal's undos are run as root, so one that is not a regular file of this user, or
    that others may write, is refused: it could hold anybody's commands.
    """
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK)
    with os.fdopen(fd, "rb") as fh:
        info = os.fstat(fh.fileno())
        if not stat.S_ISREG(info.st_mode) or info.st_uid != os.geteuid() \
                or info.st_mode & 0o022:
            raise JournalError(errno.EPERM, f"{path.name} is not a journal of this user that "
                                            "only it may write: not replayed")
        data = fh.read(MAX_JOURNAL + 1)
    if len(data) > MAX_JOURNAL:
        raise JournalError(errno.EFBIG, f"{path.name} is too large to be a journal")
    lines = []
    for raw in data.decode("utf-8", "replace").splitlines():
        if raw.strip():
            try:
                value = json.loads(raw)
            except ValueError:
                continue  # a torn line cannot happen (rename), but never crash on one
            if isinstance(value, dict):
                lines.append(value)
    return lines


def journals(where: Optional[Path] = None) -> list[Path]:
    """Every journal file, oldest first (none unless the directory is ours alone)."""
    folder = where or directory()
    try:
        _own_dir(folder)
        names = sorted(os.listdir(folder))
    except FileNotFoundError:
        return []
    return [folder / n for n in names if n.endswith(".jsonl") and not n.startswith(".")]


def left_behind(where: Optional[Path] = None) -> list[Journal]:
    """Journals of this namespace that still need undoing, newest first."""
    found = []
    for path in journals(where):
        try:
            journal = Journal.open(path)
        except (OSError, ValueError):
            continue
        if journal.pending and journal.belongs_here()[0]:
            found.append(journal)
    return list(reversed(found))


def roll_back(journal: Journal, report: Optional[Callable[[int, str, Outcome], None]] = None,
              runtime: bool = True, from_step: int = 1) -> bool:
    """Undo every step of a journal not yet undone, last first; True if all went well.

    The caller holds the lock. Each undo is recorded as it happens, so an interrupted
    rollback goes on where it stopped. ``runtime=False`` (after a reboot) skips the steps
    whose effect the reboot already undid. ``from_step`` > 1 undoes only the later steps
    (one round of a repair that did not help), and leaves the journal open.
    """
    all_ok = True
    for step, actions, runtime_only, text in journal.undos():
        if step < from_step:
            continue
        if runtime_only and not runtime:
            outcome = Outcome(True, "undone by the reboot", already=True)
        else:
            outcome = Outcome(True, "", already=True)
            for action in actions:
                result = execute(action)
                if not result.ok:
                    outcome = result
                    break
                if not result.already:
                    outcome = Outcome(True, result.message)
        journal.add({"type": "undone", "step": step, **outcome.to_json()})
        if report is not None:
            report(step, text, outcome)
        all_ok = all_ok and outcome.ok
    if from_step <= 1:
        journal.add({"type": "state", "state": "rolled_back" if all_ok else "rollback_failed"})
    return all_ok
