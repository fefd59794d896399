"""Write a file named by a user without following a symbolic link planted at that name.

netcheck runs as root (``trace -w FILE``, the lab's files). A plain ``open(path, "wb")`` as
root follows a symlink that someone else put at ``path`` (in ``/tmp``, in a shared directory)
and truncates whatever it points to: ``/etc/shadow``, a root-owned config. Here the data goes
to a new file with a random name in the same directory, created with ``O_CREAT | O_EXCL |
O_NOFOLLOW`` (so nothing that already exists, link or not, is ever opened), and only when the
writing is done is it renamed over ``path``. A rename replaces the directory entry, never
what a link points to, and a reader of ``path`` sees the old file or the whole new one.

Before writing, ``path`` is refused when it is a symbolic link, not a regular file, or a file
owned by another user: overwriting any of those is never what the person meant.
"""

from __future__ import annotations

import errno
import io
import os
import secrets
import stat
from typing import Any, Union

PathLike = Union[str, "os.PathLike[str]"]


class UnsafeWriteError(OSError):
    """``path`` must not be written: its ``strerror`` is one line saying why."""


def _refuse(path: str, why: str, code: int) -> UnsafeWriteError:
    return UnsafeWriteError(code, f"{os.path.basename(path) or path} {why}")


def check_target(path: PathLike) -> None:
    """Raise :class:`UnsafeWriteError` if the file at ``path`` must not be replaced.

    Nothing there is fine; a regular file of the user running netcheck is fine; a symbolic
    link (dangling or not), a directory, a device or FIFO, or another user's file is not.
    """
    name = os.fspath(path)
    try:
        info = os.lstat(name)
    except FileNotFoundError:
        return
    if stat.S_ISLNK(info.st_mode):
        raise _refuse(name, "is a symbolic link: refusing to write through it", errno.ELOOP)
    if stat.S_ISDIR(info.st_mode):
        raise _refuse(name, "is a directory", errno.EISDIR)
    if not stat.S_ISREG(info.st_mode):
        raise _refuse(name, "is not a regular file: refusing to write to it", errno.EINVAL)
    if info.st_uid != os.geteuid():
        raise _refuse(name, f"belongs to another user (uid {info.st_uid}): refusing to "
                      "overwrite it", errno.EPERM)


class SafeFile(io.BufferedWriter):
    """A binary file being written under a temporary name; :meth:`close` puts it in place.

    Used as a context manager, an exception inside the ``with`` block removes the temporary
    file and leaves ``path`` as it was; :meth:`discard` does the same by hand.
    """

    def __init__(self, path: str, mode: int = 0o666) -> None:
        """Create the temporary file next to ``path`` (see :func:`open_for_write`)."""
        check_target(path)
        self.path = path
        directory = os.path.dirname(os.path.abspath(path))
        base = os.path.basename(path)
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
        for _ in range(16):
            # A random name that nobody could have prepared; O_EXCL refuses it if they did.
            temp = os.path.join(directory, f".{base[:200]}.{secrets.token_hex(6)}.tmp")
            try:
                fd = os.open(temp, flags, mode)
                break
            except FileExistsError:
                continue
        else:
            raise _refuse(path, "cannot get a temporary name next to it", errno.EEXIST)
        self.temp = temp
        self._done = False
        super().__init__(io.FileIO(fd, "wb"))

    def discard(self) -> None:
        """Drop what was written: remove the temporary file; ``path`` is untouched."""
        if self._done:
            return
        self._done = True
        try:
            super().close()
        finally:
            try:
                os.unlink(self.temp)
            except FileNotFoundError:
                pass

    def close(self) -> None:
        """Flush, then rename the temporary file over ``path`` (checked once more)."""
        if self._done:
            return
        try:
            self.flush()
            os.fsync(self.fileno())
            # Checked again just before the rename: a link planted while we wrote is refused
            # too (and even if one is planted after this check, rename replaces the link
            # itself, never the file it points to).
            check_target(self.path)
        except BaseException:
            self.discard()
            raise
        self._done = True
        try:
            super().close()
            os.replace(self.temp, self.path)
        except BaseException:
            try:
                os.unlink(self.temp)
            except FileNotFoundError:
                pass
            raise

    def __del__(self) -> None:
        # Never committed by the garbage collector: a file nobody closed may be half written.
        if not getattr(self, "_done", True):
            self.discard()

    def __exit__(self, exc_type: Any, *rest: Any) -> None:
        if exc_type is not None:
            self.discard()
        else:
            self.close()


def open_for_write(path: PathLike, mode: int = 0o666) -> SafeFile:
    """A binary file to write ``path`` with, safe to use as root in any directory.

    ``mode`` is the new file's permission bits (less the umask). Raises
    :class:`UnsafeWriteError` (an OSError whose ``strerror`` is one line for the user) when
    ``path`` is a symbolic link, not a regular file, or another user's file; other OSErrors
    as ``open`` would (no such directory, permission denied). Use it with ``with``: the file
    appears at ``path`` when the block ends without an exception.
    """
    return SafeFile(os.fspath(path), mode)
