"""Reading one response off a stream within the fetch's bounds: the head (1xx skipped, a
stall told from silence), then the body as its framing says, counted, with a small sample kept.
:class:`_ResponseReader` is what :class:`netcheck.probes.http.client._Fetcher` reads with.
"""

from __future__ import annotations

import time
from typing import Optional

from netcheck.lazy import asyncio
from netcheck.probes.banner import Stream, os_error_name
from netcheck.probes.http.framing import (
    _HEAD_END,
    REDIRECT_STATUSES,
    ChunkedDecoder,
    Head,
    ProtocolError,
    body_framing,
    could_be_http,
    parse_head,
)
from netcheck.probes.http.result import Hop

MAX_INTERIM = 5  # 1xx responses skipped before the real one (100 Continue, 103 Early Hints)
BODY_SAMPLE_BYTES = 2048  # kept to read an error page's <title>


class _Fail(Exception):
    """Ends a hop: the outcome kind and what to tell."""

    def __init__(self, outcome: str, detail: str, *, first: Optional[bytes] = None) -> None:
        super().__init__(detail)
        self.outcome = outcome
        self.detail = detail
        self.first = first


class _ResponseReader:
    """Reads a response within the bounds of one fetch (set by :class:`_Fetcher`)."""

    until: float  # the whole fetch's deadline (monotonic)
    timeout: float  # each phase's bound
    max_header: int
    max_body: int
    transfer_timeout: float  # one body's transfer

    async def read_head(self, stream: Stream, hop: Hop, sent_at: float) -> Head:
        """Read a status line and headers within ``timeout`` of the request; skip 1xx."""
        head_until = min(self.until, sent_at + self.timeout)
        pending = _PendingHead(sent_at)
        while True:
            head = pending.next_head()
            if head is not None:
                stream.buffer = pending.buf + stream.buffer
                hop.bytes_received = pending.got - len(pending.buf)  # the rest: the body's
                return head
            hop.bytes_received = pending.got
            if len(pending.buf) > self.max_header:
                raise _Fail("header_too_large", f"the response headers exceed "
                                                f"{self.max_header // 1024} KiB",
                            first=pending.buf)
            if not could_be_http(pending.buf):
                raise _Fail("protocol_mismatch", "the answer is not HTTP", first=pending.buf)
            await pending.receive(stream, head_until, hop)

    async def read_body(self, stream: Stream, hop: Hop, head: Head) -> bytes:
        """Read (and count) the body within the byte and time bounds; a small sample kept.

        A redirect's body is read only up to 64 KiB: beyond that the connection is not
        worth keeping alive.
        """
        framing, length = body_framing(head.status, head.headers)
        hop.content_length = length if framing == "length" else None
        final = head.status not in REDIRECT_STATUSES or not head.headers.get("Location")
        limit = self.max_body if final else min(self.max_body, 64 * 1024)
        start = time.monotonic()
        budget_end = min(self.until, start + self.transfer_timeout)
        body = _Body(framing, length, self.max_header)
        last_at = start
        while not body.complete:
            if body.count >= limit:
                hop.truncated = "size"
                break
            try:
                data = await stream.recv(min(budget_end, time.monotonic() + self.timeout))
            except asyncio.TimeoutError:
                # Nothing for a whole timeout is a stall; bytes still coming when the
                # transfer's time is up is only slow.
                idle = time.monotonic() - last_at
                hop.truncated = "stall" if idle >= self.timeout - 0.01 else "time"
                break
            except (OSError, ConnectionError):
                hop.truncated = "reset"
                break
            if not data:
                if framing == "close":
                    body.complete = True
                else:
                    hop.truncated = "closed"
                break
            hop.bytes_received += len(data)
            last_at = time.monotonic()
            try:
                body.feed(data, stream)
            except ProtocolError as exc:
                hop.truncated = "bad chunking"
                hop.error = str(exc)
                break
        hop.body_bytes = body.count
        hop.transfer_ms = (time.monotonic() - start) * 1000 if framing != "none" else 0.0
        connection = (head.headers.get("Connection") or "").lower()
        hop.keep_alive = body.complete and hop.truncated is None and framing != "close" and (
            "close" not in connection) and (head.version != "1.0" or "keep-alive" in connection)
        return body.sample


class _PendingHead:
    """A response head as its bytes arrive: searched for its end without rescanning, and
    what a stall got as far as."""

    def __init__(self, sent_at: float) -> None:
        self.sent_at = sent_at
        self.buf = b""
        self.scanned = 0  # where the search for the empty line resumes (no quadratic rescans)
        self.got = 0  # bytes received in this phase (what a stall got as far as)
        self.first_at: Optional[float] = None
        self.last_at = sent_at
        self.interim = 0

    def next_head(self) -> Optional[Head]:
        """The head complete in the buffer, past up to MAX_INTERIM 1xx ones (None: more
        bytes are needed); what follows it stays in ``buf``."""
        while True:
            if self.buf[:1] in (b"\r", b"\n"):
                self.buf = self.buf.lstrip(b"\r\n")
                self.scanned = 0
            end = _HEAD_END.search(self.buf, max(0, self.scanned - 3))
            self.scanned = len(self.buf)
            if end is None:
                return None
            try:
                head = parse_head(self.buf[:end.start()])
            except ProtocolError as exc:
                raise _Fail("protocol_mismatch", str(exc), first=self.buf) from None
            self.buf = self.buf[end.end():]
            self.scanned = 0
            if 100 <= head.status < 200 and head.status != 101 and self.interim < MAX_INTERIM:
                self.interim += 1  # 100 Continue, 103 Early Hints: the real answer follows
                continue
            return head

    async def receive(self, stream: Stream, until: float, hop: Hop) -> None:
        """More bytes of the head; silence, a stall, a close or an error end the hop."""
        got = self.got
        try:
            data = await stream.recv(until)
        except asyncio.TimeoutError:
            waited = time.monotonic() - self.sent_at
            if self.first_at is None:
                raise _Fail("timeout", f"no answer within {waited:.1f} s of the "
                                       "request") from None
            still = time.monotonic() - self.last_at < 1.0
            raise _Fail("stall", f"{got} bytes of the response in {waited:.1f} s, "
                        + ("still trickling" if still else
                           f"then nothing for {time.monotonic() - self.last_at:.1f} s")
                        + "; the headers never completed", first=self.buf) from None
        except (OSError, ConnectionError) as exc:
            raise _Fail("closed", f"connection failed while reading the response: "
                                  f"{os_error_name(exc)}", first=self.buf) from None
        if not data:
            if not got:
                raise _Fail("closed", "the server closed the connection without a "
                                      "response (empty reply)")
            raise _Fail("closed", f"the server closed the connection after {got} "
                                  "bytes, in the middle of the headers", first=self.buf)
        now = time.monotonic()
        if self.first_at is None:
            self.first_at = now
            hop.ttfb_ms = (now - self.sent_at) * 1000
        self.last_at = now
        self.got += len(data)
        self.buf += data


class _Body:
    """A body's bytes taken as its framing says (a length, chunks, or up to the close):
    counted, a small sample kept, and what comes past its end handed back to the stream."""

    def __init__(self, framing: str, length: Optional[int], max_header: int) -> None:
        self.framing, self.length = framing, length
        self.decoder = ChunkedDecoder(max_header) if framing == "chunked" else None
        self.complete = framing == "none" or (framing == "length" and length == 0)
        self.sample = b""
        self.count = 0

    def feed(self, data: bytes, stream: Stream) -> None:
        """Take ``data``; ProtocolError when its chunking is broken."""
        if self.decoder is not None:
            pieces = self.decoder.feed(data)
            if self.decoder.done:
                stream.buffer = self.decoder.leftover
                self.complete = True
        elif self.framing == "length":
            assert self.length is not None
            need = self.length - self.count
            pieces = [data[:need]]
            if len(data) >= need:
                stream.buffer = data[need:]
                self.complete = True
        else:
            pieces = [data]
        for piece in pieces:
            if len(self.sample) < BODY_SAMPLE_BYTES:
                self.sample += piece[:BODY_SAMPLE_BYTES - len(self.sample)]
            self.count += len(piece)
