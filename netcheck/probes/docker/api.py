"""The engine's API over its unix socket, read-only: ``GET`` requests whose answers are
bounded in size and time, the peer's PID (SO_PEERCRED), and a failure told in one sentence
(:class:`EngineError`).
"""

from __future__ import annotations

import errno
import http.client
import json
import socket
import struct
from typing import Any, Optional

MAX_BODY = 8 << 20


class EngineError(Exception):
    """The engine could not be asked (its text says why, for the report)."""


class _UnixConnection(http.client.HTTPConnection):
    def __init__(self, path: str, timeout: float) -> None:
        super().__init__("localhost", timeout=timeout)
        self.unix_path = path
        self.peer_pid: Optional[int] = None

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        try:
            sock.connect(self.unix_path)
            creds = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED,
                                    struct.calcsize("3i"))
            self.peer_pid = struct.unpack("3i", creds)[0]
        except OSError:
            sock.close()
            raise
        self.sock = sock


def _why(exc: OSError, path: str) -> str:
    if exc.errno == errno.ECONNREFUSED:
        return f"unix://{path} refuses connections: the engine is not running"
    if exc.errno == errno.ENOENT:
        return f"unix://{path} does not exist"
    if exc.errno in (errno.EACCES, errno.EPERM):
        return f"unix://{path}: permission denied (root or the docker group can ask it)"
    if isinstance(exc, socket.timeout):
        return f"unix://{path} did not answer in time"
    return f"unix://{path}: {exc.strerror or exc}"


class Api:
    """GET requests to one engine socket; each answer bounded in size and time."""

    def __init__(self, path: str, timeout: float = 2.0) -> None:
        self.path = path
        self.timeout = timeout
        self.peer_pid: Optional[int] = None

    def get(self, url: str) -> Any:
        """The JSON answer of ``GET url``; EngineError when it cannot be had."""
        conn = _UnixConnection(self.path, self.timeout)
        try:
            conn.request("GET", url, headers={"Host": "docker", "Accept": "application/json"})
            self.peer_pid = conn.peer_pid
            resp = conn.getresponse()
            body = resp.read(MAX_BODY + 1)
        except OSError as exc:
            raise EngineError(_why(exc, self.path)) from exc
        except http.client.HTTPException as exc:
            raise EngineError(f"unix://{self.path}: not an engine's answer ({exc})") from exc
        finally:
            conn.close()
        if len(body) > MAX_BODY:
            raise EngineError(f"GET {url}: answer larger than {MAX_BODY >> 20} MiB")
        if resp.status != 200:
            raise EngineError(f"GET {url}: {resp.status} {body[:200].decode(errors='replace')}")
        try:
            return json.loads(body)
        except ValueError as exc:
            raise EngineError(f"GET {url}: not JSON") from exc
