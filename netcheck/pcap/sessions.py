"""Fold packets into TCP sessions, DNS exchanges and other flows: the analysis itself.

:class:`Analyzer` consumes the packet tuples of :mod:`netcheck.pcap.reader` (or of a live
capture) and keeps, per TCP session, what Wireshark's TCP analysis would say about it:

- the handshake (SYN, SYN-ACK, ACK with the initial sequence numbers A and B), SYN retries,
  a SYN answered by RST, the initial round-trip time exactly as Wireshark's ``iRTT`` (from the
  last SYN to the first segment with ACK and without SYN);
- sequence and acknowledgement numbers relative to each side's ISN, as Wireshark shows them;
- data bytes each way (each byte counted once), retransmissions (plain, fast and spurious:
  the frames Wireshark marks ``tcp.analysis.retransmission``), duplicate ACKs, zero windows,
  out-of-order segments, keep-alives;
- the close: four-way or three-way FIN, simultaneous FIN, half close, RST, and who began it;
- what the payload is (TLS, HTTP, SMTP, POP3, SSH, DNS over TCP): handed to
  :mod:`netcheck.pcap.payload`, segment by segment.

This module is the TCP state machine and the packet loop; the session it keeps is
:mod:`netcheck.pcap.tcpsession`'s, the state machine's rarer steps are
:mod:`netcheck.pcap.tcpstate`'s, everything but TCP (DNS, UDP flows, IKE, ESP, ICMP, what was
not decoded) is counted by :mod:`netcheck.pcap.traffic`, and the document of a finished
analysis is built by :mod:`netcheck.pcap.document` (:func:`build_document` and
:func:`capture_facts` are importable from here as before).

Sessions are numbered from 1 in the order their first packet appears, and a new SYN with
another ISN on the same addresses and ports starts a new session, as Wireshark's
``tcp.stream`` does (``id`` = ``tcp.stream`` + 1).

Memory stays bounded on any capture: per-session state is a few hundred bytes; only the
first :data:`MAX_SESSIONS` sessions are kept for the report (later ones are counted into one
aggregate once closed or idle); at most :data:`LIVE_LIMIT` sessions are followed at once (a
flood of SYNs from a million sources fills the table: the oldest half-open sessions are then
dropped from it and counted, see :meth:`Analyzer._sweep`); per-packet detail (*events*) is
recorded only for the session asked for, and at most :data:`MAX_EVENTS` of them. DNS
exchanges, other flows, ICMP kinds and the strings kept from payloads have caps too.
"""

from __future__ import annotations

import struct
from typing import Any, Callable, Iterable, Optional

from netcheck.pcap.decode import (
    ETHERTYPE_NAMES,
    FRAGMENT,
    IP_PROTO_NAMES,
    NOT_IP,
    TUNNEL_PROTOS,
    locate,
)
from netcheck.pcap.document import build_document, capture_facts
from netcheck.pcap.filters import Filter
from netcheck.pcap.payload import MAX_DIALOGUE, MAX_HTTP, TEXT_BUDGET, Payloads
from netcheck.pcap.tcpsession import (
    ACK,
    FIN,
    FLAG_LETTERS,
    HALF,
    MASK,
    MAX_EVENTS,
    RST,
    SYN,
    Aggregate,
    Flow,
    Session,
    flag_letters,
)
from netcheck.pcap.tcpstate import (
    ack_role,
    analysis_flags,
    captured_again,
    control,
    record,
    retransmission,
)
from netcheck.pcap.traffic import MAX_DNS, MAX_FLOWS, MAX_KINDS, MAX_TEXT, DnsLog, OtherTraffic

# The names other modules and the tests know this module by, wherever they now live.
__all__ = ["ACK", "FIN", "FLAG_LETTERS", "MAX_DIALOGUE", "MAX_DNS", "MAX_EVENTS", "MAX_FLOWS",
           "MAX_HTTP", "MAX_KINDS", "MAX_SESSIONS", "MAX_TEXT", "RST", "SYN", "TEXT_BUDGET",
           "Aggregate", "Analyzer", "Flow", "Session", "build_document", "capture_facts",
           "flag_letters"]

MAX_SESSIONS = 10_000
# Sessions followed at once. Past it the table is swept down to half (finished ones folded,
# then the oldest half-open ones dropped): about 1 KB each, so the table never holds more
# than ~50 MB whatever the capture.
LIVE_LIMIT = 50_000
IDLE_SECONDS = 120.0
# Two identical frames this close are one packet captured twice, not a retransmission: no TCP
# retransmits within a millisecond of the original with nothing in between (RTO and tail-loss
# probes wait far longer; a fast retransmission follows duplicate ACKs).
DUP_WINDOW = 0.001
WELL_KNOWN_APPS = {80: "http", 8080: "http", 443: "tls", 8443: "tls", 25: "smtp", 587: "smtp",
                   2525: "smtp", 110: "pop3", 22: "ssh", 53: "dns", 465: "tls", 993: "tls",
                   995: "tls", 853: "tls"}

_seg = struct.Struct(">IIBBHH").unpack_from  # seq, ack, data offset, flags, window, sum
_u16 = struct.Struct(">H").unpack_from
# From the EtherType on: EtherType, IPv4 version and header length, total length, ID, flags and
# fragment offset, protocol (TOS and TTL skipped).
_eth_ipv4 = struct.Struct(">HBxHHHxB").unpack_from


class Analyzer:
    """Consume packets; :meth:`document` gives the netcheck-pcap/1 document."""

    def __init__(self, want_session: Optional[int] = None, max_sessions: int = MAX_SESSIONS,
                 packet_filter: Optional[Filter] = None, record_first: bool = True) -> None:
        """want_session: record the events of this session id (1-based).

        record_first: also record session 1's events, so that a capture holding a single
        session can be shown in detail without a second pass.
        """
        self.want = want_session
        self.record_first = record_first and want_session is None
        self.max_sessions = max_sessions
        self.filter = packet_filter.match if packet_filter else None
        self.table: dict[bytes, tuple[Session, bool]] = {}
        self.sessions: list[Session] = []
        self.wanted: Optional[Session] = None  # the session asked for, even beyond the cap
        self.beyond = Aggregate()
        self.not_followed = 0  # sessions dropped from a full table before they ended
        self.next_id = 1
        self.packets = 0
        self.last_t = 0.0
        # The collectors: DNS exchanges, the TCP payloads, and everything but TCP.
        self.dns = DnsLog(MAX_DNS)
        self.payloads = Payloads(self.dns)
        self.max_events = MAX_EVENTS  # events kept of a recorded session
        self.traffic = OtherTraffic(self.table, self.dns, self.max_events)
        self.tls_collecting = self.payloads.tls_collecting
        # Called once per new data segment; an attribute, so it costs no more than a method.
        self._app = self.payloads.segment

    # -- the packet loop --------------------------------------------------------------------

    def feed(self, packets: Iterable[tuple]) -> None:
        """Analyse every packet of an iterable of reader tuples."""
        table = self.table
        flt = self.filter
        tcp = self._tcp
        count = self.packets
        t = 0.0
        try:
            for t, link, buf, off, caplen, wirelen, n in packets:
                count += 1
                if link == 1 and caplen >= 54:
                    # Fast path: Ethernet, IPv4 without options, TCP, not a fragment (nearly
                    # every packet of a real capture). One unpack reads the header fields
                    # (half the time of indexing the bytes one by one); addresses and ports
                    # are contiguous: one 12-byte slice is the session key.
                    ethertype, vhl, total, ipid, frag, proto = _eth_ipv4(buf, off + 12)
                    if vhl == 0x45 and ethertype == 0x0800 and proto == 6 \
                            and not frag & 0x1FFF and flt is None:
                        ip = off + 14
                        key = buf[ip + 12:ip + 24]
                        entry = table.get(key)
                        if entry is None:
                            entry = self._tcp_new(key[:4], key[4:8], t, n, buf, ip + 20)
                        tcp(entry, t, n, buf, ip + 20, (total or wirelen - 14) - 20,
                            off + caplen, ipid)
                        continue
                loc = locate(link, buf, off, caplen, wirelen)
                if loc is None:
                    self.traffic.undecoded += 1
                    continue
                proto, src, dst, l4, l4len, end, ipid = loc
                if proto == NOT_IP:
                    self.traffic.count(self.traffic.non_ip, ETHERTYPE_NAMES.get(l4, "other"))
                    continue
                self._other(proto, src, dst, t, n, buf, l4, l4len, end, flt, ipid)
        finally:
            self.packets = count
            self.last_t = t

    def _other(self, proto: int, src: bytes, dst: bytes, t: float, n: int, buf: bytes,
               l4: int, l4len: int, end: int, flt: Optional[Callable[..., bool]],
               ipid: int = -1) -> None:
        """Everything but the Ethernet/IPv4/TCP fast path (and any packet under a filter)."""
        traffic = self.traffic
        if proto == FRAGMENT:
            traffic.fragments += 1
            return
        sp = dp = 0
        if proto in (6, 17) and l4 + 4 <= end:
            sp, dp = struct.unpack_from(">HH", buf, l4)
        if flt is not None and not flt(proto, src, dst, sp, dp):
            return
        if proto == 6:
            if l4 + 20 > end:
                # The snap length (or a broken header) left no whole TCP header: nothing of
                # it is read, the packet is counted as cut.
                traffic.count(traffic.malformed, "tcp header cut")
                return
            entry = self.table.get(src + dst + buf[l4:l4 + 4])
            if entry is None:
                entry = self._tcp_new(src, dst, t, n, buf, l4)
            self._tcp(entry, t, n, buf, l4, l4len, end, ipid)
        elif proto == 17:
            traffic.udp(src, dst, sp, dp, t, buf, l4, l4len, end)
        elif proto in (1, 58):
            traffic.icmp(proto, src, dst, t, n, buf, l4, end)
        elif proto in (50, 51):
            traffic.ipsec(proto, buf, l4, end)
        else:
            tunnel = TUNNEL_PROTOS.get(proto)
            if tunnel is not None:
                traffic.count(traffic.tunnels, tunnel)
                return
            traffic.count(traffic.non_ip, IP_PROTO_NAMES.get(proto, f"ip-proto-{proto}"))

    # -- TCP --------------------------------------------------------------------------------

    def _tcp_new(self, src: bytes, dst: bytes, t: float, n: int, buf: bytes,
                 l4: int) -> tuple[Session, bool]:
        """First packet of a 5-tuple: decide who is the client, create the session."""
        sp, dp = _u16(buf, l4)[0], _u16(buf, l4 + 2)[0]
        flags = buf[l4 + 13]
        if flags & SYN and flags & ACK:
            client_is_src = False  # a SYN-ACK comes from the server
        elif flags & SYN:
            client_is_src = True
        else:
            # Mid-stream: the well-known (smaller, privileged) port is the server's.
            client_is_src = not (sp < 1024 <= dp or (sp in WELL_KNOWN_APPS
                                                     and dp not in WELL_KNOWN_APPS))
        return self._open(src, dst, sp, dp, client_is_src, t, n)

    def _open(self, src: bytes, dst: bytes, sp: int, dp: int, client_is_src: bool,
              t: float, n: int) -> tuple[Session, bool]:
        sid = self.next_id
        self.next_id += 1
        if client_is_src:
            s = Session(sid, src, dst, sp, dp, t, n)
        else:
            s = Session(sid, dst, src, dp, sp, t, n)
        if sid == self.want or (self.record_first and sid == 1):
            s.events = []
        if sid == self.want:
            self.wanted = s
        elif sid > self.max_sessions:
            s.app = ""  # counted only: naming its protocol would cost time for nothing
        ports_fwd = struct.pack(">HH", sp, dp)
        ports_rev = struct.pack(">HH", dp, sp)
        fwd_key, rev_key = src + dst + ports_fwd, dst + src + ports_rev
        s.ckey = fwd_key if client_is_src else rev_key
        entry = (s, client_is_src)
        self.table[fwd_key] = entry
        self.table[rev_key] = (s, not client_is_src)
        if sid <= self.max_sessions:
            self.sessions.append(s)
        if len(self.table) > 2 * LIVE_LIMIT:  # two keys per session, one each way
            self._sweep(t)
        return entry

    def _sweep(self, now: float) -> None:
        """Bring the table down to half of :data:`LIVE_LIMIT` sessions (bounded memory).

        First the sessions beyond the cap that are finished or idle are folded into the
        aggregate, as they would be at the end. If that is not enough, sessions are dropped
        from the table in this order: closed ones (nothing more to learn from them), then
        half-open ones, oldest first (a SYN flood's), then the least recently active. A
        dropped session that had not ended counts in :attr:`not_followed` (the report says
        so); a later packet of it starts a new, mid-stream session. The session whose detail
        was asked for is never dropped. Sweeping to half keeps the cost per new session
        constant: the next sweep comes only after LIVE_LIMIT / 2 more sessions.
        """
        table = self.table
        live: dict[int, Session] = {}
        for s, _ in table.values():
            live.setdefault(id(s), s)  # table order: the oldest session first
        gone: set[int] = set()
        for s in live.values():
            if s.id > self.max_sessions and (s.closed or now - s.last_t > IDLE_SECONDS):
                gone.add(id(s))
                self.beyond.add(s)
        excess = len(live) - len(gone) - LIVE_LIMIT // 2
        if excess > 0:
            closed: list[Session] = []
            half_open: list[Session] = []
            established: list[Session] = []
            for s in live.values():
                if id(s) in gone or s.events is not None:
                    continue
                if s.closed:
                    closed.append(s)
                elif s.handshake_seen and not s.hs_done:
                    half_open.append(s)
                else:
                    established.append(s)
            if excess > len(closed) + len(half_open):
                established.sort(key=lambda s: s.last_t)
            for s in (closed + half_open + established)[:excess]:
                gone.add(id(s))
                if s.id > self.max_sessions:
                    self.beyond.add(s)
                if not s.closed:
                    self.not_followed += 1
        if gone:
            # In place: feed() holds a reference to this dict.
            for key in [key for key, (s, _) in table.items() if id(s) in gone]:
                del table[key]

    def _tcp(self, entry: tuple[Session, bool], t: float, n: int, buf: bytes, l4: int,
             l4len: int, end: int, ipid: int = -1) -> None:
        """One TCP segment of a known 5-tuple: Wireshark's sequence analysis, in short.

        This runs for every TCP packet: locals instead of repeated attribute loads, and the
        rare cases (SYN, FIN, RST, copies, events to record) in their own functions. Here the
        session and direction, copies, the handshake and the close; then :meth:`_sequence`.
        ``end`` is the end of the captured bytes: nothing at or past it is read.
        """
        s, c2s = entry
        seq, ack, doff, flags, win, csum = _seg(buf, l4 + 4)
        thl = (doff >> 4) << 2
        seglen = l4len - thl
        if seglen < 0:
            seglen = 0
        if c2s:
            fwd = s.c
            rev = s.s
        else:
            fwd = s.s
            rev = s.c
        if flags & 2 and not flags & 16 and fwd.base >= 0 and seq != fwd.base:
            # A new connection reusing the addresses and ports (Wireshark: a new tcp.stream).
            s, c2s = self._reopen(s, c2s, t, n, buf, l4)
            fwd = s.c
            rev = s.s
        # A frame captured twice: the same IP ID and the very same TCP header (checksum
        # included, so the same payload) right after the first copy (see captured_again).
        sig = (c2s, seq, csum, ipid, seglen)
        dup = sig == s.last_sig and t - s.last_t <= DUP_WINDOW
        s.last_sig = sig
        fwd.packets += 1
        s.last_t = t
        tags: Optional[list[tuple]] = None if s.events is None else []
        if dup:
            dup = captured_again(s, ipid, seglen, flags, tags)
        if l4 + thl + seglen > end:
            s.cut += 1  # the snap length cut options or payload: they are unknown, not read
            if tags is not None:
                tags.append(("cut", max(0, end - l4), thl + seglen))
        if fwd.base < 0:
            fwd.base = seq if flags & 2 else (seq - 1) & MASK
        if flags & 16:
            if rev.base < 0:
                rev.base = (ack - 1) & MASK
            if s.irtt < 0 and s.syn_t >= 0 and not flags & 2:
                s.irtt = t - s.syn_t  # Wireshark's iRTT: last SYN to the first ACK w/o SYN
            if tags is not None and rev.nextseq >= 0 and 0 < (ack - rev.nextseq) & MASK < HALF:
                tags.append(("ack_unseen",))  # Wireshark: "ACKed segment that wasn't captured"
        if flags & 7:  # SYN, FIN or RST: the handshake and the close
            control(s, fwd, rev, c2s, flags, seq, ack, seglen, t, buf, l4, thl, end, dup,
                    tags)
        elif flags & 16 and (not s.hs_done or tags is not None):
            ack_role(s, fwd, rev, c2s, ack, tags)
        self._sequence(s, fwd, rev, c2s, t, flags, seq, ack, win, seglen, buf, l4 + thl, end,
                       dup, tags)
        if tags is not None:
            record(s, fwd, rev, c2s, n, t, flags, seq, ack, win, seglen, buf, l4, thl, end,
                   tags, self.max_events)

    def _sequence(self, s: Session, fwd: Flow, rev: Flow, c2s: bool, t: float, flags: int,
                  seq: int, ack: int, win: int, seglen: int, buf: bytes, data: int, end: int,
                  dup: bool, tags: Optional[list[tuple]]) -> None:
        """The middle of :meth:`_tcp`: Wireshark's analysis flags, in its order, the next
        sequence number expected each way, and the data (at ``data`` in ``buf``: counted,
        handed to the protocols)."""
        nextseq = fwd.nextseq
        if seq == nextseq and win and (seglen > 1 or not seglen and (
                ack != fwd.lastack or win != fwd.window)):
            # Nearly every segment: in order, no window probe, not a repeated ACK. None of
            # the flags can apply, so the chain that looks for them is not even entered.
            keepalive = zwp = gap = False
        else:
            keepalive, zwp, gap = analysis_flags(s, fwd, rev, flags, seq, ack, win, seglen,
                                                 dup, tags)
        if ack != fwd.lastack:
            fwd.dupacknum = 0

        again = False  # bytes the capture already showed: not handed to the protocols again
        if seglen or flags & 3:
            syn_fin = 1 if flags & 3 else 0
            if nextseq >= 0 and not keepalive:
                not_adv = (seq - nextseq) & MASK >= HALF
                if not_adv and seglen > 1 and (nextseq - 1) & MASK == seq:
                    not_adv = False
                if not_adv or (seglen and rev.lastack >= 0
                               and (rev.lastack - seq - seglen) & MASK < HALF):
                    again = retransmission(s, fwd, rev, t, seq, seglen, syn_fin, not_adv,
                                           tags)
                    s.dup_retrans += dup and again
            nxt = (seq + seglen + syn_fin) & MASK
            if nextseq < 0 or 0 < (nxt - nextseq) & MASK < HALF and not zwp:
                fwd.nextseq = nxt
                fwd.nextseq_t = t
        elif nextseq < 0:
            fwd.nextseq = seq  # Wireshark: the first segment sets it, even without data
            fwd.nextseq_t = t
        fwd.window = win
        if keepalive or fwd.keepalive_last:
            fwd.keepalive_last = keepalive
        if zwp or fwd.zwp_last:
            fwd.zwp_last = zwp
        if flags & 16:
            fwd.lastack = ack
            fwd.lastack_t = t

        if seglen:
            # Data each way is the sequence space covered (what the application sent): a
            # segment lost before the capture point still counts once its successor is seen,
            # a retransmission never counts twice.
            segend = (seq + seglen) & MASK
            maxend = fwd.maxend
            if maxend < 0 or 0 < (segend - maxend) & MASK < HALF:
                fwd.maxend = segend
            if s.app != "" and (not again or s.app == "tls"):
                # A retransmitted request is one request, not two: Wireshark does not hand
                # retransmitted bytes to HTTP, SMTP or DNS either. (The TLS follower keeps
                # its own place in the stream and skips bytes it has seen.)
                self._app(s, fwd, c2s, seq, seglen, buf, data, end, tags, gap)
        elif tags is not None and flags == 16 and not tags:
            tags.append(("ack",))

    def _reopen(self, old: Session, c2s: bool, t: float, n: int, buf: bytes,
                l4: int) -> tuple[Session, bool]:
        """A SYN with a new ISN on a known 5-tuple: the old session ends, a new one begins."""
        if old.id > self.max_sessions:
            self.beyond.add(old)
        sp, dp = _u16(buf, l4)[0], _u16(buf, l4 + 2)[0]
        src, dst = (old.caddr, old.saddr) if c2s else (old.saddr, old.caddr)
        return self._open(src, dst, sp, dp, True, t, n)

    # -- the report -------------------------------------------------------------------------

    def session(self, sid: int) -> Optional[Session]:
        """The kept session with this id (or the one asked for, even beyond the cap), or None."""
        if self.wanted is not None and self.wanted.id == sid:
            return self.wanted
        if 1 <= sid <= len(self.sessions):
            return self.sessions[sid - 1]
        return None

    def total_sessions(self) -> int:
        """All TCP sessions seen, listed or not."""
        return self.next_id - 1

    def finish(self) -> None:
        """Fold the sessions beyond the cap that are still in the table."""
        seen: set[int] = set()
        for s, _ in self.table.values():
            if s.id > self.max_sessions and id(s) not in seen:
                seen.add(id(s))
                self.beyond.add(s)
        self.table.clear()

    def not_decoded(self) -> list[dict[str, Any]]:
        """What is in the capture but not looked inside: tunnels, and malformed headers or
        messages, each with its packet count (the summary names them, never silence)."""
        return self.traffic.not_decoded(
            sum(s.tls.malformed for s in self.sessions if s.tls is not None))

    def other(self) -> list[dict[str, Any]]:
        """The netcheck-pcap/1 ``other`` list: IKE, ESP/AH, UDP flows, ICMP, non-IP."""
        return self.traffic.other()
