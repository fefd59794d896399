"""What a TCP session's payload says: its application protocol named from the first data
(TLS, HTTP, SMTP, POP3, SSH, DNS over TCP), then followed: the TLS handshake, HTTP requests
paired with their answers, the mail or SSH dialogue, DNS messages.

:class:`~netcheck.pcap.sessions.Analyzer` calls :meth:`Payloads.segment` once per new data
segment of a session whose protocol is not known to be uninteresting; the parsing itself is
:mod:`netcheck.pcap.protocols`'. What is listed has caps per session and a budget over the
whole capture (bounded memory); past them it is counted, and the report says so.
"""

from __future__ import annotations

from typing import Optional

from netcheck.pcap import protocols as P
from netcheck.pcap.tcpsession import HALF, MASK, Flow, Session
from netcheck.pcap.traffic import DnsLog

MAX_DIALOGUE = 200  # lines of a mail/SSH dialogue listed per session (the rest are counted)
MAX_HTTP = 200  # request/response pairs listed per session (the rest are counted)
# HTTP pairs and dialogue lines listed over the whole capture (~250 bytes each): past it they
# are counted only, so a capture of many chatty sessions stays in bounded memory.
TEXT_BUDGET = 100_000
APP_PROBE_SEGMENTS = 6  # data segments looked at before giving up on naming the protocol


class Payloads:
    """The application protocols of the TCP sessions of one analysis."""

    def __init__(self, dns: DnsLog) -> None:
        """dns: where DNS messages carried over TCP go."""
        self.dns = dns
        self.tls_collecting: dict[int, P.TlsFollower] = {}  # unfinished handshake records
        self.text_budget = TEXT_BUDGET

    def segment(self, s: Session, fwd: Flow, c2s: bool, seq: int, seglen: int, buf: bytes,
             start: int, end: int, tags: Optional[list[tuple]], gap: bool = False) -> None:
        """Name and follow the application protocol of a data segment.

        The payload is ``buf[start:min(end, start + seglen)]`` (less than ``seglen`` when the
        snap length cut it); it is copied out only when something will read it. ``gap``: the
        segments just before this one were not captured.
        """
        stop = start + seglen
        if stop > end:
            stop = end
        app = s.app
        if app is None:
            if start >= stop:
                return
            app = self._guess_app(s, c2s, buf[start:stop])
            if app is None:
                fwd.app_segments += 1
                if fwd.app_segments >= APP_PROBE_SEGMENTS:
                    s.app = ""  # unknown: stop looking (keeps the hot loop cheap)
                return
            s.app = app
        if app == "tls":
            if s.tls is None:
                s.tls = P.TlsInfo()
            follower = fwd.follower
            if follower is None:
                follower = fwd.follower = P.TlsFollower(s.tls, not c2s, self.tls_collecting)
            names = follower.feed(seq, seglen, buf[start:stop])
            if names and tags is not None:
                tags.append(("tls", names, s.tls.sni if "ClientHello" in names else None,
                             P.tls_version_name(s.tls.version)
                             if "ServerHello" in names and s.tls.version else None))
        elif start >= stop:
            return
        elif app == "http":
            if c2s or gap or buf.startswith(b"HTTP/", start):
                self._http(s, fwd, c2s, seq, seglen, buf, start, stop, tags, gap)
            elif P.ends_chunked_body(buf, start, stop):
                # (A body segment, the most frequent kind, without a call more.)
                s.http_next = (seq + seglen) & MASK  # the last chunk: the answer ends
        elif app in ("smtp", "pop3", "ssh"):
            data = buf[start:stop]
            if app != "ssh" and data[:1] == b"\x16" and P.looks_like_tls_record(data):
                # STARTTLS: the rest of the session is TLS.
                s.app = "tls"
                self.segment(s, fwd, c2s, seq, seglen, buf, start, end, tags)
                return
            self._dialogue(s, c2s, app, data, seglen, tags)
        elif app == "dns":
            self.dns.tcp_segment(s, c2s, buf[start:stop])

    def _http(self, s: Session, fwd: Flow, c2s: bool, seq: int, seglen: int, buf: bytes,
              start: int, stop: int, tags: Optional[list[tuple]], gap: bool) -> None:
        """An HTTP data segment: a request line, a status line, or the body of an answer."""
        if c2s:
            if 65 <= buf[start] <= 90:  # requests start with an upper-case method
                line = P.http_request_line(buf[start:stop], known=True)
                if line is not None:
                    self._http_request(s, line, tags)
        elif buf.startswith(b"HTTP/", start):
            status = P.http_status(buf[start:stop])
            if status is not None:
                self._http_status(s, status, tags)
                # Where the next response begins, if this one says how long it is.
                size = P.http_message_size(buf[start:stop])
                s.http_next = (seq + size) & MASK if size >= 0 else -1
                if size < 0 and P.ends_chunked_body(buf, start, stop):
                    s.http_next = (seq + seglen) & MASK
        else:
            if gap:
                self._http_gap(s, fwd, seq, tags)
            if P.ends_chunked_body(buf, start, stop):
                s.http_next = (seq + seglen) & MASK  # the last chunk: the answer ends

    def _http_request(self, s: Session, line: str, tags: Optional[list[tuple]]) -> None:
        if s.http is None:
            s.http = []
        if len(s.http) < MAX_HTTP and self._spend_text():
            s.http.append({"request": line, "status": None})
        else:
            s.http_omitted[0] += 1  # counted, and said in the report: never a silent cut
        if tags is not None:
            tags.append(("http_req", line))

    def _http_status(self, s: Session, status: tuple[int, str],
                     tags: Optional[list[tuple]]) -> None:
        if s.http is None:
            s.http = []
        code = status[0]
        if 100 <= code < 200 and code != 101:
            # An interim answer (100 Continue, 103 Early Hints): the final one follows, so
            # it answers nothing yet; kept with the request it belongs to.
            for item in s.http:
                if item["status"] is None and not item.get("answer_not_captured"):
                    interim = item.setdefault("interim", [])
                    if len(interim) < 4:
                        interim.append(code)
                    break
            if tags is not None:
                tags.append(("http_resp", status[1]))
            return
        s.http_seen_status = True
        for item in s.http:
            if item["status"] is None and not item.get("answer_not_captured"):
                item["status"] = code
                break
        else:
            # Answers come in the order of the requests: once the listed ones are answered,
            # this one answers a request that was only counted (or one not captured).
            if not s.http_omitted[0] and len(s.http) < MAX_HTTP and self._spend_text():
                s.http.append({"request": None, "status": status[0]})
            else:
                s.http_omitted[1] += 1
        if tags is not None:
            tags.append(("http_resp", status[1]))

    def _http_gap(self, s: Session, fwd: Flow, seq: int, tags: Optional[list[tuple]]) -> None:
        """Server data after a gap, where a response was due to begin: the missing segments
        held that response's status line. The oldest request waiting is answered, with a
        status the capture does not show (as Wireshark pairs them), so later answers stay
        with their own requests."""
        start = s.http_next if s.http_next >= 0 else (fwd.base + 1) & MASK
        if s.http_next < 0 and s.http_seen_status:
            return  # the last answer's length is unknown: where it ended cannot be told
        if (seq - start) & MASK >= HALF:
            return  # inside the response already known
        for item in s.http or ():
            if item["status"] is None and not item.get("answer_not_captured"):
                item["answer_not_captured"] = True
                s.http_next = -1
                s.http_seen_status = True
                if tags is not None:
                    tags.append(("http_resp_unseen",))
                return

    def _spend_text(self) -> bool:
        """One more listed HTTP exchange or dialogue line, within the analysis' budget."""
        if self.text_budget <= 0:
            return False
        self.text_budget -= 1
        return True

    def _guess_app(self, s: Session, c2s: bool, data: bytes) -> Optional[str]:
        if P.looks_like_tls_record(data) and (data[0] == 22 or s.sport in P.TLS_PORTS):
            return "tls"  # a handshake anywhere; on a TLS port, any record (mid-stream)
        if (c2s and P.http_request_line(data, known=s.sport in P.HTTP_PORTS)) or (
                not c2s and data.startswith(b"HTTP/")):
            return "http"
        if data.startswith(b"SSH-"):
            return "ssh"
        port = s.sport
        if port in P.SMTP_PORTS or (not c2s and data[:4] == b"220 " and b"SMTP" in data[:200]):
            return "smtp"
        if port in P.POP3_PORTS or (not c2s and data.startswith(b"+OK")):
            return "pop3"
        if port == 53:
            return "dns"
        return None

    def _dialogue(self, s: Session, c2s: bool, app: str, data: bytes, seglen: int,
                  tags: Optional[list[tuple]]) -> None:
        if s.dialogue is None:
            s.dialogue = []
        if app == "ssh":
            if not data.startswith(b"SSH-"):
                return  # the binary protocol after the banners
            line = f"{'C' if c2s else 'S'}: {P.first_line(data)}"
        elif app == "smtp" and c2s and s.smtp_data:
            line = f"C: DATA fragment, {seglen} bytes"
            if data.endswith(b"\r\n.\r\n"):
                s.smtp_data = False
        elif not c2s and not P.is_reply_line(data, app):
            line = f"S: (continuation, {seglen} bytes)"
        else:
            line = P.mail_line(data, not c2s, app)
            if app == "smtp":
                # The message follows the client's DATA (the server's 354 may not be in a
                # one-way capture); a refusal of DATA ends it.
                if c2s and data[:6].upper() in (b"DATA\r\n", b"DATA\n"):
                    s.smtp_data = True
                elif not c2s:
                    s.smtp_data = data.startswith(b"354") or (s.smtp_data
                                                               and data[:1] not in b"45")
        if len(s.dialogue) < MAX_DIALOGUE and self._spend_text():
            s.dialogue.append(line)
        else:
            s.dialogue_omitted += 1  # counted, and said where the dialogue was cut
        if tags is not None:
            tags.append(("line", line))
