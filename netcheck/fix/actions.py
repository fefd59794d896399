"""What a repair step does and undoes, as data that can be shown, journaled and replayed.

Four kinds of action, each idempotent so that a journal replayed twice (or replayed after
a step that was journaled but never ran) does no harm:

- ``run``: an argv list (never a shell; shown with :func:`shlex.join`), its program looked up
  only in the system directories. Messages that mean "already so" (``tolerate``) count as
  success: deleting a route that is not there any more is done.
- ``write``: a file's new text, written only while the file still holds what was read when
  the plan was made (``expect``, a sha256; ``absent`` when it did not exist). Already holding
  the new text is done. Anything else — someone edited it meanwhile — is a conflict and the
  file is left alone. Written without following links (:mod:`netcheck.safefile`); a file that
  is a mount point of its own (``ip netns exec``'s ``/etc/resolv.conf``, a container's) is
  rewritten in place, since a rename cannot replace it.
- ``remove``: a file removed only while it holds what the repair wrote.
- ``nft-delete-tagged``: every rule of one chain whose comment is the step's tag (rules are
  inserted with a tag because their handle is only known after they exist).
"""

from __future__ import annotations

import hashlib
import json
import os
import shlex
import shutil
import stat
import subprocess
from dataclasses import dataclass, field
from typing import Any, Optional

from netcheck.safefile import check_target, open_for_write

SBIN = "/usr/sbin:/usr/bin:/sbin:/bin"
ABSENT = "absent"
MAX_FILE = 4 << 20
RUN_TIMEOUT = 30.0


@dataclass
class Action:
    """One thing a step does (or undoes). ``shown`` is what a person reads in the plan."""

    kind: str  # run | write | remove | nft-delete-tagged
    argv: list[str] = field(default_factory=list)
    input: Optional[str] = None  # run: text on stdin
    tolerate: list[str] = field(default_factory=list)  # run: stderr that means "already so"
    path: Optional[str] = None  # write / remove
    content: Optional[str] = None  # write: the new text
    expect: list[str] = field(default_factory=list)  # write / remove: sha256s it may replace
    mode: Optional[int] = None  # write: permission bits of a new file
    chain: list[str] = field(default_factory=list)  # nft-delete-tagged: family, table, chain
    tag: Optional[str] = None
    shown: str = ""

    def text(self) -> str:
        """The action as a person reads it."""
        if self.shown:
            return self.shown
        if self.kind == "run":
            line = shlex.join(self.argv)
            return f"{line} <<< {self.input.strip()!r}" if self.input else line
        if self.kind == "nft-delete-tagged":
            return (f"nft delete rule {' '.join(self.chain)} handle <the rule commented "
                    f"{self.tag}>")
        return f"{self.kind} {self.path}"

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"kind": self.kind, "shown": self.text()}
        for key in ("argv", "input", "tolerate", "path", "content", "expect", "mode", "chain",
                    "tag"):
            value = getattr(self, key)
            if value not in (None, [], ""):
                out[key] = value
        return out

    @classmethod
    def from_json(cls, doc: dict[str, Any]) -> Action:
        """An action read back from a journal (unknown keys ignored, types checked)."""
        kind = doc.get("kind")
        if kind not in ("run", "write", "remove", "nft-delete-tagged"):
            raise ValueError(f"unknown action kind {kind!r}")

        def strings(key: str) -> list[str]:
            value = doc.get(key) or []
            if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                raise ValueError(f"{key} must be a list of strings")
            return list(value)

        def text(key: str) -> Optional[str]:
            value = doc.get(key)
            if value is not None and not isinstance(value, str):
                raise ValueError(f"{key} must be a string")
            return value

        mode = doc.get("mode")
        if mode is not None and (not isinstance(mode, int) or not 0 <= mode <= 0o7777):
            raise ValueError("mode must be permission bits")
        return cls(kind, strings("argv"), text("input"), strings("tolerate"), text("path"),
                   text("content"), strings("expect"), mode, strings("chain"), text("tag"),
                   text("shown") or "")


def run(argv: list[str], input: Optional[str] = None, tolerate: Optional[list[str]] = None,
        shown: str = "") -> Action:
    """An argv to run."""
    return Action("run", list(argv), input=input, tolerate=list(tolerate or []), shown=shown)


def write(path: str, content: str, before: Optional[str], mode: Optional[int] = None,
          shown: str = "") -> Action:
    """Write ``content`` to ``path`` if it still holds ``before`` (None: it did not exist)."""
    return Action("write", path=path, content=content, expect=[digest(before)], mode=mode,
                  shown=shown)


def remove(path: str, content: str, shown: str = "") -> Action:
    """Remove ``path`` if it still holds ``content`` (what the repair wrote)."""
    return Action("remove", path=path, expect=[digest(content)], shown=shown)


def nft_delete_tagged(family: str, table: str, chain: str, tag: str, shown: str = "") -> Action:
    """Delete the rules of a chain commented with ``tag``."""
    return Action("nft-delete-tagged", chain=[family, table, chain], tag=tag, shown=shown)


def digest(text: Optional[str]) -> str:
    """sha256 of a file's text, or ``absent``."""
    if text is None:
        return ABSENT
    return hashlib.sha256(text.encode("utf-8", "surrogateescape")).hexdigest()


@dataclass
class Outcome:
    """What running one action gave."""

    ok: bool
    message: str = ""
    already: bool = False  # nothing needed doing

    def to_json(self) -> dict[str, Any]:
        return {"ok": self.ok, "message": self.message, "already": self.already}


def execute(action: Action) -> Outcome:
    """Carry out one action; never raises for a failure of the action itself."""
    try:
        if action.kind == "run":
            return _run(action)
        if action.kind == "write":
            return _write(action)
        if action.kind == "remove":
            return _remove(action)
        if action.kind == "nft-delete-tagged":
            return _nft_delete_tagged(action)
    except OSError as exc:
        return Outcome(False, f"{action.path or action.argv[:1]}: {exc.strerror or exc}")
    return Outcome(False, f"unknown action kind {action.kind}")


def program(name: str) -> Optional[str]:
    """A system program's path, looked up only in the system directories (never $PATH)."""
    if "/" in name:
        return name if os.path.isabs(name) and os.access(name, os.X_OK) else None
    return shutil.which(name, path=SBIN)


def run_argv(argv: list[str], input: Optional[str] = None,
             timeout: float = RUN_TIMEOUT) -> tuple[int, str, str]:
    """Run an argv list with the C locale and the system PATH; (status, stdout, stderr).

    A missing program is status 127, a timeout 124 (as coreutils' timeout says it).
    """
    found = program(argv[0])
    if found is None:
        return 127, "", f"{argv[0]}: not found"
    env = {"LC_ALL": "C", "PATH": SBIN}
    try:
        proc = subprocess.run([found, *argv[1:]], input=input, capture_output=True, text=True,
                              timeout=timeout, env=env,
                              stdin=None if input is not None else subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        return 124, "", f"{argv[0]}: no answer within {timeout:g} s"
    return proc.returncode, proc.stdout, proc.stderr


def _run(action: Action) -> Outcome:
    rc, out, err = run_argv(action.argv, action.input)
    message = " ".join((err or out).split())[:300]
    if rc == 0:
        return Outcome(True, message)
    if any(t in err or t in out for t in action.tolerate):
        return Outcome(True, message, already=True)
    return Outcome(False, message or f"exit status {rc}")


def read_text(path: str) -> Optional[str]:
    """A file's text (None: it does not exist), read without following a link."""
    from netcheck.untrusted import read_regular

    data = read_regular(path, MAX_FILE)
    if data is None:
        return None
    if len(data) > MAX_FILE:
        raise OSError(27, "too large to edit")
    return data.decode("utf-8", "surrogateescape")


def is_mount_point(path: str) -> bool:
    """Is ``path`` itself a mount point (a file bind-mounted over another)?"""
    want = os.path.abspath(path)
    try:
        with open("/proc/self/mountinfo", encoding="utf-8", errors="replace") as fh:
            for line in fh:
                fields = line.split()
                if len(fields) > 4 and _unescape(fields[4]) == want:
                    return True
    except OSError:
        return False
    return False


def _unescape(text: str) -> str:
    """mountinfo's octal escapes (``\\040`` for a space)."""
    if "\\" not in text:
        return text
    return text.encode().decode("unicode_escape").encode("latin-1").decode("utf-8", "replace")


def store(path: str, content: str, mode: Optional[int] = None) -> None:
    """Write ``content`` to ``path`` without following a link planted there.

    A new name renamed into place (:func:`netcheck.safefile.open_for_write`), keeping the
    file's permission bits; a file that is a mount point of its own is rewritten in place.
    """
    check_target(path)
    data = content.encode("utf-8", "surrogateescape")
    try:
        current = os.lstat(path)
        bits = stat.S_IMODE(current.st_mode)
    except FileNotFoundError:
        current, bits = None, (mode if mode is not None else 0o644)
        os.makedirs(os.path.dirname(os.path.abspath(path)), 0o755, exist_ok=True)
    if current is not None and is_mount_point(path):
        fd = os.open(path, os.O_WRONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK)
        try:
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                raise OSError(21, "not a regular file")
            os.ftruncate(fd, 0)
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view):]
            os.fsync(fd)
        finally:
            os.close(fd)
        return
    with open_for_write(path, bits) as fh:
        os.fchmod(fh.fileno(), bits)
        fh.write(data)


def _write(action: Action) -> Outcome:
    assert action.path is not None and action.content is not None
    now = digest(read_text(action.path))
    if now == digest(action.content):
        return Outcome(True, f"{action.path} already holds it", already=True)
    if now not in action.expect:
        return Outcome(False, f"{action.path} was changed by someone else meanwhile: left "
                              "alone")
    store(action.path, action.content, action.mode)
    return Outcome(True, f"wrote {action.path}")


def _remove(action: Action) -> Outcome:
    assert action.path is not None
    now = digest(read_text(action.path))
    if now == ABSENT:
        return Outcome(True, f"{action.path} is not there", already=True)
    if now not in action.expect:
        return Outcome(False, f"{action.path} was changed by someone else meanwhile: left "
                              "alone")
    check_target(action.path)
    os.unlink(action.path)
    folder = os.path.dirname(action.path)
    if folder.endswith(".d"):  # a drop-in directory the repair made: gone when empty
        try:
            os.rmdir(folder)
        except OSError:
            pass
    return Outcome(True, f"removed {action.path}")


def tagged_handles(family: str, table: str, chain: str, tag: str) -> Optional[list[int]]:
    """Handles of the rules of a chain commented ``tag`` (None: the chain cannot be read)."""
    rc, out, _err = run_argv(["nft", "-j", "-a", "list", "chain", family, table, chain])
    if rc != 0:
        return None
    try:
        doc = json.loads(out)
    except ValueError:
        return None
    found = []
    for item in doc.get("nftables", []):
        rule = item.get("rule") if isinstance(item, dict) else None
        if isinstance(rule, dict) and rule.get("comment") == tag \
                and isinstance(rule.get("handle"), int):
            found.append(rule["handle"])
    return found


def _nft_delete_tagged(action: Action) -> Outcome:
    family, table, chain = action.chain
    assert action.tag is not None
    handles = tagged_handles(family, table, chain, action.tag)
    if handles is None:
        return Outcome(True, f"chain {family} {table} {chain} is gone", already=True)
    if not handles:
        return Outcome(True, f"no rule tagged {action.tag}", already=True)
    for handle in handles:
        rc, out, err = run_argv(["nft", "delete", "rule", family, table, chain, "handle",
                                 str(handle)])
        if rc != 0:
            return Outcome(False, " ".join((err or out).split())[:300])
    return Outcome(True, f"deleted {len(handles)} rule(s) tagged {action.tag}")
