"""The exporter's connections: read each request whole, cheaply, and never run out.

One selector, watched by the exporter's event loop, accepts connections and reads each
request — head and body — within one total deadline, with no thread per connection: a client
that trickles a header line now and then costs a descriptor and nothing more. The number of
open connections is capped below the descriptor limit, with the probes' share kept back; at
the cap the oldest connection still sending its request is answered 503 and closed to make
room, so a scrape that sends its request at once always gets in. A complete request is
answered by a coroutine on the same event loop — no thread per request, none per probe —
within a bound on the answers under way (reached: 503 at once). Every connection answers one
request and closes, so nothing after it — a body, a pipelined request — is ever read as
another request. Should the process still run out of descriptors (EMFILE), the cap is
lowered to what is open, one line says so, and accepting pauses a moment instead of
spinning. Closing after an answer, so no reset destroys it, is :mod:`netcheck.exporter.closing`.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import errno
import re
import selectors
import socket
import threading
import time
from dataclasses import dataclass
from typing import Any, Awaitable, Callable, Optional

from netcheck.exporter.closing import _close, _close_async, _recv_now
from netcheck.redact import shown

# A whole request (head and body) must arrive within this many seconds of the connection:
# a total, not a per-read timeout, so a client sending a byte now and then gains nothing.
REQUEST_READ_TIMEOUT = 10.0
MAX_REQUEST_HEAD = 16 * 1024  # request line and headers: Prometheus sends a few hundred bytes
MAX_REQUEST_BODY = 64 * 1024  # a GET has no use for a body: read and dropped up to this, or 413
WRITE_TIMEOUT = 10.0  # sending one answer, in total
LINGER = 0.5  # after the answer, the client's last bytes are read this long so no RST cuts it
# Descriptors kept back from the limit for the probes themselves (sockets, netlink, /proc):
# a fixed part plus a share per concurrent probe.
FD_RESERVE = 32
FDS_PER_PROBE = 8
MIN_CONNECTIONS = 8
MAX_CONNECTIONS = 512
ACCEPT_BACKOFF = 0.1  # out of descriptors: stop accepting this long
EMFILE_LOG_EVERY = 30.0  # ... and say so at most once in this many seconds
# Why a connection was closed without an answer from the handler (a metric's label).
DROP_REASONS = ("read_timeout", "too_large", "length_required", "bad_request", "busy",
                "evicted", "no_descriptors")
REASONS = {400: "Bad Request", 408: "Request Timeout", 411: "Length Required",
           413: "Content Too Large", 431: "Request Header Fields Too Large",
           503: "Service Unavailable"}
TEXT_TYPE = "text/plain; charset=utf-8"

_HEAD_END = re.compile(rb"\r?\n\r?\n")

# handle(request head, client address, when the connection came): the whole answer to send.
Handle = Callable[[bytes, Any, float], Awaitable[bytes]]


@dataclass
class _Pending:
    """A connection whose request is still arriving."""

    client: Any
    since: float
    data: bytes = b""
    scanned: int = 0  # where the search for the head's end resumes: no quadratic rescans
    head: Optional[bytes] = None
    body_left: int = 0


class _Refuse(Exception):
    def __init__(self, status: int, text: str, reason: str) -> None:
        super().__init__(text)
        self.status, self.text, self.reason = status, text, reason


def connection_cap(concurrency: int) -> int:
    """Connections open at once: below the descriptor limit, with the probes' share kept."""
    import resource

    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY:
        return MAX_CONNECTIONS
    return max(MIN_CONNECTIONS, min(MAX_CONNECTIONS,
                                    soft - FD_RESERVE - FDS_PER_PROBE * concurrency))


def body_length(head: bytes) -> int:
    """How many body bytes follow a request head; _Refuse when it cannot be accepted."""
    lengths: set[bytes] = set()
    for line in head.split(b"\n")[1:]:
        name, sep, value = line.partition(b":")
        if not sep:
            continue
        name = name.strip().lower()
        if name == b"transfer-encoding":
            raise _Refuse(411, "a request body must come with a Content-Length",
                          "length_required")
        if name == b"content-length":
            lengths.update(v.strip() for v in value.split(b","))
    if not lengths:
        return 0
    if len(lengths) != 1 or not next(iter(lengths)).isdigit():
        raise _Refuse(400, "bad Content-Length", "bad_request")
    length = int(next(iter(lengths)))
    if length > MAX_REQUEST_BODY:
        raise _Refuse(413, f"request body too large ({length} bytes; a GET needs none)",
                      "too_large")
    return length


class ConnectionServer:
    """A listening socket, its selector loop, and the answers given on an event loop.

    ``serve_forever()``, ``shutdown()`` (from another thread) and ``server_close()`` as in
    :mod:`socketserver`. ``handle`` runs on ``loop`` (running in another thread), at most
    ``handlers`` at once. ``log`` gets one line per notable event; ``dropped`` the reason of
    every connection closed without reaching ``handle``.
    """

    def __init__(self, address: tuple[str, int], handle: Handle, *,
                 loop: asyncio.AbstractEventLoop, handlers: int,
                 max_connections: int, read_timeout: float = REQUEST_READ_TIMEOUT,
                 log: Callable[[str], None] = lambda line: None,
                 dropped: Callable[[str], None] = lambda reason: None) -> None:
        family = socket.AF_INET6 if ":" in address[0] else socket.AF_INET
        self.socket = socket.socket(family, socket.SOCK_STREAM)
        try:
            self.socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            self.socket.bind(address)
            self.socket.listen(128)
            self.socket.setblocking(False)
        except OSError:
            self.socket.close()
            raise
        self.server_address = self.socket.getsockname()
        self.handle = handle
        self.loop = loop
        self.max_connections = max_connections
        self.read_timeout = read_timeout
        self.log = log
        self.dropped = dropped
        self.handlers = threading.BoundedSemaphore(handlers)
        self._pending: dict[socket.socket, _Pending] = {}  # in the order they came
        self._handling = 0
        self._lock = threading.Lock()
        self._selector = selectors.DefaultSelector()
        self._wake: Optional[asyncio.Event] = None
        self._stop = False
        self._stopped = threading.Event()
        self._stopped.set()
        self._accepting = False
        self._resume_at = 0.0
        self._emfile_logged = -EMFILE_LOG_EVERY
        self._emfile_missed = 0

    def open_connections(self) -> int:
        """Connections being read or answered now."""
        with self._lock:
            return len(self._pending) + self._handling

    # -- the loop ---------------------------------------------------------------------------

    def serve_forever(self, poll_interval: float = 0.5) -> None:
        """Accept, read and dispatch until ``shutdown()``: the work is done on the event loop
        (one thread for the connections and the answers), this thread only waits."""
        self._stop = False
        self._stopped.clear()
        try:
            serving = asyncio.run_coroutine_threadsafe(self._serve(poll_interval), self.loop)
        except RuntimeError:  # the loop is closed
            self._stopped.set()
            return
        try:
            serving.result()
        except (RuntimeError, concurrent.futures.CancelledError):
            pass  # the loop was stopped under it
        except BaseException:  # Ctrl-C in this thread: the loop lets go of the sockets first
            self._stop = True
            if self._wake is not None:
                self.loop.call_soon_threadsafe(self._wake.set)
            try:
                serving.result(timeout=2)
            except Exception:
                pass
            raise
        finally:
            self._stopped.set()

    async def _serve(self, poll_interval: float) -> None:
        """The selector, watched by the event loop: its descriptor is readable whenever one of
        the sockets registered in it is. Expiries are looked at every ``poll_interval`` at
        most, and sooner when the oldest unfinished request's time is up."""
        self._wake = asyncio.Event()
        self.loop.add_reader(self._selector.fileno(), self._ready)
        self._start_accepting()
        try:
            while not self._stop:
                now = time.monotonic()
                wait = poll_interval
                if self._pending:
                    first = next(iter(self._pending.values()))
                    wait = min(wait, max(0.0, first.since + self.read_timeout - now))
                if not self._accepting:
                    wait = min(wait, max(0.0, self._resume_at - now))
                try:
                    await asyncio.wait_for(self._wake.wait(), wait)
                except asyncio.TimeoutError:
                    pass
                self._wake.clear()
                now = time.monotonic()
                self._expire(now)
                if not self._accepting and now >= self._resume_at:
                    self._start_accepting()
        finally:
            self.loop.remove_reader(self._selector.fileno())
            for sock in list(self._pending):
                self._forget(sock)
                sock.close()
            for key in list(self._selector.get_map().values()):
                self._selector.unregister(key.fileobj)
            self._accepting = False

    def _ready(self) -> None:
        """Whatever the selector has ready: new connections, request bytes."""
        for key, _ in self._selector.select(0):
            if key.data == "accept":
                self._accept()
            elif key.fileobj in self._pending:
                self._read(key.fileobj)  # type: ignore[arg-type]
        if not self._accepting and self._wake is not None:
            self._wake.set()  # paused (EMFILE): the serving loop times the resumption

    def shutdown(self) -> None:
        """Stop ``serve_forever`` and wait until it has returned (never from the loop)."""
        self._stop = True
        wake = self._wake
        if wake is not None:
            try:
                self.loop.call_soon_threadsafe(wake.set)
            except RuntimeError:  # the loop is closed: serve_forever has returned
                return
        self._stopped.wait()

    def server_close(self) -> None:
        """Close the listening socket and the selector."""
        self.socket.close()
        self._selector.close()

    def _start_accepting(self) -> None:
        if not self._accepting:
            self._selector.register(self.socket, selectors.EVENT_READ, "accept")
            self._accepting = True

    def _pause_accepting(self, seconds: float) -> None:
        if self._accepting:
            self._selector.unregister(self.socket)
            self._accepting = False
        self._resume_at = time.monotonic() + seconds

    # -- accepting --------------------------------------------------------------------------

    def _accept(self) -> None:
        for _ in range(64):  # then let the loop read and expire too
            if self.open_connections() >= self.max_connections:
                # Full: the oldest connection still sending its request makes room. When every
                # connection is being answered, the new one is told 503 instead.
                if not self._evict_oldest():
                    self._accept_and_refuse()
                    return
            try:
                conn, client = self.socket.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:
                if exc.errno in (errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM):
                    self._out_of_descriptors(exc)
                # ECONNABORTED and the like: that client is gone, nothing to do.
                return
            conn.setblocking(False)
            with self._lock:
                self._pending[conn] = _Pending(client, time.monotonic())
            self._selector.register(conn, selectors.EVENT_READ, "read")

    def _accept_and_refuse(self) -> None:
        try:
            conn, _ = self.socket.accept()
        except OSError:
            return
        self._answer_and_close(conn, 503, "too many connections; try again", "busy")

    def _evict_oldest(self) -> bool:
        if not self._pending:
            return False
        oldest = next(iter(self._pending))
        self._refuse(oldest, 503, "too many connections: the oldest unfinished request "
                              "makes room", "evicted")
        return True

    def _out_of_descriptors(self, exc: OSError) -> None:
        """EMFILE: the cap was above what the process may open. Lower it to what is open now,
        less part of the probes' share, free a descriptor, pause accepting a moment, say so
        in one line — never a traceback, never a loop spinning on a readable listener."""
        self.dropped("no_descriptors")
        self._evict_oldest()
        open_now = self.open_connections()
        self.max_connections = min(self.max_connections,
                                   max(MIN_CONNECTIONS, open_now - FD_RESERVE // 2))
        self._pause_accepting(ACCEPT_BACKOFF)
        now = time.monotonic()
        self._emfile_missed += 1
        if now - self._emfile_logged >= EMFILE_LOG_EVERY:
            self.log(f"out of file descriptors ({errno.errorcode.get(exc.errno or 0, '?')}: "
                     f"{exc.strerror}) with {open_now} connections open: at most "
                     f"{self.max_connections} from now on ({self._emfile_missed} accept(s) "
                     "deferred); raise the limit (ulimit -n) for more")
            self._emfile_logged = now
            self._emfile_missed = 0

    # -- reading ----------------------------------------------------------------------------

    def _read(self, sock: socket.socket) -> None:
        pending = self._pending[sock]
        data = _recv_now(sock)
        if data is None:
            return
        if not data:
            self._forget(sock)
            sock.close()
            return
        try:
            if pending.head is None:
                self._take_head(sock, pending, data)
            else:
                pending.body_left -= len(data)
        except _Refuse as refusal:
            self._refuse(sock, refusal.status, refusal.text, refusal.reason)
            return
        except OSError:
            self._forget(sock)
            sock.close()
            return
        if pending.head is not None and pending.body_left <= 0:
            self._dispatch(sock, pending)

    def _take_head(self, sock: socket.socket, pending: _Pending, data: bytes) -> None:
        pending.data += data
        end = _HEAD_END.search(pending.data, max(0, pending.scanned - 3))
        pending.scanned = len(pending.data)
        if end is None or end.start() > MAX_REQUEST_HEAD:
            if len(pending.data) > MAX_REQUEST_HEAD:
                raise _Refuse(431, "request head too large", "too_large")
            return
        pending.head = pending.data[:end.end()]
        length = body_length(pending.head)
        # Read and dropped: whatever follows the body is never another request.
        pending.body_left = length - (len(pending.data) - end.end())
        pending.data = b""
        if pending.body_left > 0 and b"100-continue" in pending.head.lower():
            sock.send(b"HTTP/1.1 100 Continue\r\n\r\n")

    def _expire(self, now: float) -> None:
        while self._pending:
            sock, pending = next(iter(self._pending.items()))
            if now - pending.since < self.read_timeout:
                return
            self._refuse(sock, 408, f"the request did not arrive within "
                                    f"{self.read_timeout:g} s", "read_timeout")

    # -- answering --------------------------------------------------------------------------

    def _dispatch(self, sock: socket.socket, pending: _Pending) -> None:
        self._forget(sock)
        if not self.handlers.acquire(blocking=False):
            self._answer_and_close(sock, 503, "busy: too many requests being answered",
                                   "busy")
            return
        with self._lock:
            self._handling += 1
        self.loop.create_task(self._answer(sock, pending))

    async def _answer(self, sock: socket.socket, pending: _Pending) -> None:
        """Answer one request on the event loop: the handler's bytes, sent within
        ``WRITE_TIMEOUT`` in total, then the lingering close."""
        try:
            answer = await self.handle(pending.head or b"", pending.client, pending.since)
            try:
                sent = sock.send(answer)  # an answer fits the socket buffer: no waiting
            except (BlockingIOError, InterruptedError):
                sent = 0
            if sent < len(answer):
                await asyncio.wait_for(self.loop.sock_sendall(sock, answer[sent:]),
                                       WRITE_TIMEOUT)
        except (OSError, asyncio.TimeoutError):
            pass  # the scraper gave up (reset, closed, write timeout): nothing to tell it
        except Exception as exc:  # one line, never a traceback: the next request still works
            self.log(f"request from {pending.client[0]} failed: {type(exc).__name__}: "
                     f"{shown(str(exc), 200)}")
        finally:
            try:
                await _close_async(self.loop, sock, LINGER)
            finally:
                self._handled()

    def _handled(self) -> None:
        with self._lock:
            self._handling -= 1
        self.handlers.release()

    def _refuse(self, sock: socket.socket, status: int, text: str, reason: str) -> None:
        """Answer a connection still being read (413, 408, 503...) and close it."""
        self._forget(sock)
        self._answer_and_close(sock, status, text, reason)

    def _answer_and_close(self, sock: socket.socket, status: int, text: str,
                          reason: str) -> None:
        self.dropped(reason)
        body = (text + "\n").encode()
        head = (f"HTTP/1.1 {status} {REASONS.get(status, '')}\r\nContent-Type: {TEXT_TYPE}\r\n"
                f"Content-Length: {len(body)}\r\nConnection: close\r\n"
                + ("Retry-After: 1\r\n" if status == 503 else "") + "\r\n").encode()
        try:
            sock.setblocking(False)
            sock.send(head + body)  # small: it fits the socket buffer, no waiting
        except OSError:
            pass
        _close(sock, 0.0)

    def _forget(self, sock: socket.socket) -> None:
        """Take a connection off the loop (it is then closed, or answered by a handler)."""
        try:
            self._selector.unregister(sock)
        except (KeyError, ValueError):
            pass
        with self._lock:
            self._pending.pop(sock, None)
