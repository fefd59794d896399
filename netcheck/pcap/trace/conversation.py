"""The traced connection itself, as a user would make it: the target resolved as the system
resolves it, then a GET, a TLS handshake, a mail or SSH greeting, or a short read of a
banner, with what happened recorded.
"""

from __future__ import annotations

import errno
import socket
import time
from typing import Any, Optional

from netcheck.pcap.command import PcapError

READ_LIMIT = 1 << 20
USER_AGENT = "netcheck-trace"


def resolve(host: str, port: int, family: Optional[int]) -> tuple[int, str]:
    """(address family, address) of the target, the way the system resolves it."""
    fam = {4: socket.AF_INET, 6: socket.AF_INET6}.get(family or 0, socket.AF_UNSPEC)
    try:
        infos = socket.getaddrinfo(host, port, fam, socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise PcapError(f"cannot resolve {host}: {exc.strerror}") from None
    if not infos:
        raise PcapError(f"{host} has no address")
    info = infos[0]
    return info[0], info[4][0]


class Conversation:
    """The client side of the traced connection; records what happened."""

    def __init__(self, target: Any, family: int, address: str, timeout: float,
                 deadline: float, cafile: Optional[str], insecure: bool) -> None:
        """Bind the local port now, so that the capture can filter on it before the SYN."""
        self.target = target
        self.address = address
        self.timeout = timeout
        self.deadline = deadline
        self.cafile = cafile
        self.insecure = insecure
        self.sock = socket.socket(family, socket.SOCK_STREAM)
        self.sock.bind(("::" if family == socket.AF_INET6 else "0.0.0.0", 0))
        self.lport = self.sock.getsockname()[1]
        self.result: dict[str, Any] = {"outcome": None, "detail": None, "http_status": None,
                                       "banner": None}

    def _left(self) -> float:
        return max(0.05, min(self.timeout, self.deadline - time.monotonic()))

    def run(self) -> None:
        """Connect, talk, close; never raises."""
        sock = self.sock
        try:
            sock.settimeout(self._left())
            sock.connect((self.address, self.target.port))
        except ConnectionRefusedError:
            self._end("refused", "the server answered the SYN with RST (nothing listens)")
            return
        except socket.timeout:
            self._end("timeout", "no answer to the SYN within the timeout")
            return
        except OSError as exc:
            kind = "unreachable" if exc.errno in (errno.EHOSTUNREACH, errno.ENETUNREACH,
                                                  errno.EACCES, errno.EPERM) else "error"
            self._end(kind, exc.strerror or str(exc))
            return
        try:
            self._talk()
            if self.result["outcome"] is None:
                self.result["outcome"] = "ok"
        except socket.timeout:
            self.result.update(outcome="ok", detail="the server stopped answering (timeout)")
        except OSError as exc:
            name = type(exc).__name__
            outcome = "tls-error" if name.startswith("SSL") else "error"
            self.result.update(outcome=outcome, detail=str(exc)[:200])
        finally:
            try:
                self.sock.close()
            except OSError:
                pass

    def _end(self, outcome: str, detail: str) -> None:
        self.result.update(outcome=outcome, detail=detail)
        self.sock.close()

    def _talk(self) -> None:
        scheme = self.target.scheme
        if scheme in ("https", "pop3s", "imaps"):
            self._tls()
        if scheme in ("http", "https"):
            self._http()
        elif scheme in ("smtp", "submission"):
            self._lines([b"EHLO netcheck.invalid\r\n", b"QUIT\r\n"])
        elif scheme in ("pop3", "pop3s"):
            self._lines([b"QUIT\r\n"])
        elif scheme in ("imap", "imaps"):
            self._lines([b"a1 LOGOUT\r\n"])
        elif scheme == "ssh":
            self._lines([b"SSH-2.0-netcheck-trace\r\n"])
        else:
            self._banner()

    def _tls(self) -> None:
        import ssl

        context = ssl.create_default_context(cafile=self.cafile)
        if self.insecure:
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        host = self.target.host
        self.sock.settimeout(self._left())
        self.sock = context.wrap_socket(self.sock, server_hostname=host)
        self.result["tls_version"] = self.sock.version()

    def _http(self) -> None:
        host = self.target.host
        if ":" in host:
            host = f"[{host}]"
        default = 443 if self.target.scheme == "https" else 80
        if self.target.port != default:
            host += f":{self.target.port}"
        request = (f"GET {self.target.path} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: "
                   f"{USER_AGENT}\r\nAccept: */*\r\nConnection: close\r\n\r\n")
        self.sock.settimeout(self._left())
        self.sock.sendall(request.encode("ascii", "replace"))
        data = self._read_all()
        line = data.split(b"\r\n", 1)[0]
        if line.startswith(b"HTTP/") and len(line) >= 12 and line[9:12].isdigit():
            self.result["http_status"] = int(line[9:12])
        if hasattr(self.sock, "unwrap"):
            try:  # close_notify, as browsers send it (the seeds' "Encrypted Alert")
                self.sock.settimeout(0.5)
                self.sock = self.sock.unwrap()
            except OSError:
                pass

    def _read_all(self) -> bytes:
        data = b""
        while len(data) < READ_LIMIT:
            self.sock.settimeout(self._left())
            chunk = self.sock.recv(65536)
            if not chunk:
                break
            data += chunk
        return data

    def _banner(self) -> None:
        self.sock.settimeout(min(1.0, self._left()))
        try:
            data = self.sock.recv(4096)
        except socket.timeout:
            return
        if data:
            from netcheck.pcap.protocols import first_line

            self.result["banner"] = first_line(data)

    def _lines(self, commands: list[bytes]) -> None:
        self._banner()
        for command in commands:
            self.sock.settimeout(self._left())
            self.sock.sendall(command)
            try:
                self.sock.settimeout(min(1.0, self._left()))
                if not self.sock.recv(4096):
                    return
            except socket.timeout:
                return
