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
- what the payload is (TLS, HTTP, SMTP, POP3, SSH, DNS over TCP) via
  :mod:`netcheck.pcap.protocols`.

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

from netcheck.pcap import protocols as P
from netcheck.pcap.decode import (
    ETHERTYPE_NAMES,
    FRAGMENT,
    IP_PROTO_NAMES,
    NOT_IP,
    TUNNEL_PORTS,
    TUNNEL_PROTOS,
    address,
    endpoint,
    locate,
    tcp_options,
)
from netcheck.pcap.filters import Filter

MASK = 0xFFFFFFFF
HALF = 0x80000000
MAX_SESSIONS = 10_000
MAX_EVENTS = 2_000
MAX_DNS = 5_000
MAX_FLOWS = 1_000
MAX_DIALOGUE = 200  # lines of a mail/SSH dialogue listed per session (the rest are counted)
MAX_HTTP = 200  # request/response pairs listed per session (the rest are counted)
# HTTP pairs and dialogue lines listed over the whole capture (~250 bytes each): past it they
# are counted only, so a capture of many chatty sessions stays in bounded memory.
TEXT_BUDGET = 100_000
# Sessions followed at once. Past it the table is swept down to half (finished ones folded,
# then the oldest half-open ones dropped): about 1 KB each, so the table never holds more
# than ~50 MB whatever the capture.
LIVE_LIMIT = 50_000
MAX_RECEIVERS = 100_000
MAX_KINDS = 64  # distinct ICMP messages, IKE exchanges, TLS alerts listed
MAX_TEXT = 256  # characters kept of a DNS name or answer
IDLE_SECONDS = 120.0
# Two identical frames this close are one packet captured twice, not a retransmission: no TCP
# retransmits within a millisecond of the original with nothing in between (RTO and tail-loss
# probes wait far longer; a fast retransmission follows duplicate ACKs).
DUP_WINDOW = 0.001
APP_PROBE_SEGMENTS = 6  # data segments looked at before giving up on naming the protocol

FIN, SYN, RST, PSH, ACK, URG, ECE, CWR = 1, 2, 4, 8, 16, 32, 64, 128
FLAG_LETTERS = ((FIN, "F"), (SYN, "S"), (RST, "R"), (PSH, "P"), (ACK, "A"), (URG, "U"),
                (ECE, "E"), (CWR, "C"))
WELL_KNOWN_APPS = {80: "http", 8080: "http", 443: "tls", 8443: "tls", 25: "smtp", 587: "smtp",
                   2525: "smtp", 110: "pop3", 22: "ssh", 53: "dns", 465: "tls", 993: "tls",
                   995: "tls", 853: "tls"}

_seg = struct.Struct(">IIBBHH").unpack_from  # seq, ack, data offset, flags, window, sum
_u16 = struct.Struct(">H").unpack_from


def _cut(text: Optional[str]) -> Optional[str]:
    """A name or answer from a packet, at most :data:`MAX_TEXT` characters (bounded memory)."""
    if text is None or len(text) <= MAX_TEXT:
        return text
    return text[:MAX_TEXT - 3] + "..."


def _known(value: int) -> Optional[int]:
    """None for -1 (not known), else the value."""
    return None if value < 0 else value


def flag_letters(flags: int) -> str:
    """``SA`` for SYN+ACK, ``FA`` for FIN+ACK, ``R`` for RST (netcheck-pcap/1 ``flags``)."""
    return "".join(letter for bit, letter in FLAG_LETTERS if flags & bit)


class Flow:
    """One direction of a TCP session."""

    __slots__ = ("base", "nextseq", "nextseq_t", "lastack", "lastack_t", "window", "wscale",
                 "dupacknum", "maxend", "syns", "isn", "mss", "sack_perm",
                 "timestamps", "fin_seq", "fin_n", "rst_n", "keepalive_last", "zwp_last",
                 "follower", "app_segments", "packets")

    def __init__(self) -> None:
        self.base = -1  # relative numbers are (absolute - base) mod 2**32
        self.nextseq = -1
        self.nextseq_t = 0.0
        self.lastack = -1
        self.lastack_t = 0.0
        self.window = -1
        self.wscale = -1  # -1 no SYN seen, -2 SYN without window scale option, else the shift
        self.dupacknum = 0
        self.maxend = -1
        self.syns = 0
        self.isn = -1
        self.mss: Optional[int] = None
        self.sack_perm = False
        self.timestamps = False
        self.fin_seq = -1  # sequence number the FIN occupies
        self.fin_n = 0
        self.rst_n = 0
        self.keepalive_last = False
        self.zwp_last = False
        self.follower: Optional[P.TlsFollower] = None
        self.app_segments = 0
        self.packets = 0  # captured packets this way

    @property
    def data(self) -> int:
        """Data bytes sent: from the first byte after the ISN to the highest seen."""
        if self.maxend < 0 or self.base < 0:
            return 0
        return (self.maxend - self.base - 1) & MASK

    def acked(self, peer: Flow) -> int:
        """Bytes of the peer's data this side acknowledged last (its FIN included), or -1 if
        it acknowledged nothing: proof of what the peer sent even when none of it was
        captured."""
        if self.lastack < 0 or peer.base < 0:
            return -1
        value = (self.lastack - peer.base - 1) & MASK
        return value if value < HALF else -1


class Session:
    """One TCP session (a Wireshark ``tcp.stream``)."""

    __slots__ = ("id", "ckey", "caddr", "saddr", "cport", "sport", "c", "s", "first_t",
                 "last_t", "first_n", "syn_t", "irtt", "synack_n", "hs_done",
                 "refused", "retrans", "fast_retrans", "spurious", "dupacks", "zerowin",
                 "ooo", "keepalives", "lost", "first_closer", "first_rst", "simultaneous",
                 "three_way", "app", "tls", "http", "dialogue", "smtp_data",
                 "events", "events_dropped", "icmp", "syn_retries", "synack_retries",
                 "handshake_seen", "dups", "dup_retrans", "dup_acks", "cut",
                 "last_sig", "synack_isns", "dialogue_omitted", "http_omitted", "http_next",
                 "http_seen_status")

    def __init__(self, sid: int, caddr: bytes, saddr: bytes, cport: int, sport: int,
                 t: float, n: int) -> None:
        self.id = sid
        self.caddr, self.saddr, self.cport, self.sport = caddr, saddr, cport, sport
        self.c = Flow()
        self.s = Flow()
        self.first_t = self.last_t = t
        self.first_n = n
        self.syn_t = -1.0
        self.irtt = -1.0
        self.synack_n = 0
        self.hs_done = False
        self.handshake_seen = False  # the client's SYN was captured
        self.refused = False
        self.retrans = self.fast_retrans = self.spurious = 0
        self.dupacks = self.zerowin = self.ooo = self.keepalives = self.lost = 0
        self.syn_retries = self.synack_retries = 0
        self.first_closer: Optional[str] = None  # "client" / "server": first FIN or RST
        self.first_rst: Optional[str] = None
        self.simultaneous = False
        self.three_way = False
        self.app: Optional[str] = None
        self.tls: Optional[P.TlsInfo] = None
        self.http: Optional[list[dict[str, Any]]] = None
        self.dialogue: Optional[list[str]] = None
        self.smtp_data = False
        self.events: Optional[list[tuple]] = None
        self.events_dropped = 0
        self.icmp: Optional[str] = None
        self.ckey = b""
        # What the capture itself shows (before anything is explained from it):
        self.dups = 0  # frames captured twice (same IP ID and TCP header, adjacent)
        self.dup_retrans = 0  # ... of them counted as retransmissions, as Wireshark does
        self.dup_acks = 0  # ... of them counted as duplicate ACKs, as Wireshark does
        self.cut = 0  # packets the snap length cut (options or payload not captured)
        self.last_sig: Optional[tuple] = None
        self.synack_isns = 0  # SYN-ACKs with another ISN than the first (Wireshark re-bases)
        self.dialogue_omitted = 0
        self.http_omitted = [0, 0]  # requests, responses beyond MAX_HTTP
        self.http_next = -1  # where the next HTTP response begins (absolute seq), if known
        self.http_seen_status = False

    # -- conclusions ------------------------------------------------------------------------

    @property
    def packets(self) -> int:
        """Captured packets of the session, both ways."""
        return self.c.packets + self.s.packets

    @property
    def closed(self) -> bool:
        """True once an RST was seen or both sides sent FIN."""
        return bool(self.first_rst) or (self.c.fin_n > 0 and self.s.fin_n > 0)

    def close_kind(self) -> str:
        """``fin``, ``rst``, ``half`` or ``none`` (netcheck-pcap/1 ``close``)."""
        if self.first_rst:
            return "rst"
        if self.c.fin_n and self.s.fin_n:
            return "fin"
        if self.c.fin_n or self.s.fin_n:
            return "half"
        return "none"

    def close_detail(self) -> str:
        """How exactly it ended, for the explanation."""
        kind = self.close_kind()
        if kind == "rst":
            if self.refused:
                return "refused"
            return "rst-after-fin" if (self.c.fin_n or self.s.fin_n) else "rst"
        if kind == "fin":
            if self.simultaneous:
                return "simultaneous"
            return "three-way" if self.three_way else "four-way"
        return kind

    def evidence(self) -> dict[str, Any]:
        """What the capture can show of this session, established before anything is
        explained from it: which directions were captured, what each side acknowledged of
        the other (proof of packets the capture missed), frames captured twice, packets the
        snap length cut, and gaps."""
        c, s = self.c.packets, self.s.packets
        acked_c, acked_s = self.s.acked(self.c), self.c.acked(self.s)
        # Bytes the peer acknowledged beyond those in the capture (its FIN aside): what the
        # capture missed of a side it otherwise saw.
        unseen = 0
        if c and s:
            for acked, flow in ((acked_c, self.c), (acked_s, self.s)):
                if acked >= 0:
                    unseen += max(0, acked - flow.data - (1 if flow.fin_n else 0))
        return {
            "seen": "both" if c and s else "client" if c else "server",
            "packets": {"client": c, "server": s},
            # Bytes each side's data the other acknowledged (the FIN counts one): what the
            # peer received, even when the capture holds none of it.
            "acked": {"client": _known(acked_c), "server": _known(acked_s)},
            "duplicates": self.dups,
            "duplicates_as_retransmissions": self.dup_retrans,
            "duplicates_as_dup_acks": self.dup_acks,
            "cut": self.cut,
            "gaps": self.lost,
            "acked_unseen": unseen,
        }

    def to_json(self, with_events: bool = False, lang: str = "en") -> dict[str, Any]:
        """The netcheck-pcap/1 session object."""
        # Complete means all three packets are in the capture: a SYN-ACK and an ACK without
        # the SYN that began them is a handshake seen in part.
        hs_complete = self.hs_done and self.handshake_seen
        out: dict[str, Any] = {
            "id": self.id, "proto": "tcp",
            "client": endpoint(self.caddr, self.cport),
            "server": endpoint(self.saddr, self.sport),
            "first_ts": round(self.first_t, 6), "last_ts": round(self.last_t, 6),
            "packets": self.packets,
            "bytes": {"client": self.c.data, "server": self.s.data},
            "handshake": {
                "complete": hs_complete,
                "syn_seen": self.handshake_seen,
                "synack_seen": self.synack_n > 0,
                "ack_seen": self.hs_done,  # the client's ACK of a captured SYN-ACK
                "syn_retries": self.syn_retries,
                # Wireshark's iRTT, whenever it gives one (an answer by RST, or the client's
                # ACK when the SYN-ACK went another way, included).
                "rtt_ms": round(self.irtt * 1000, 3) if self.irtt >= 0 else None,
                "answered_by_rst": self.refused,
                # The client acknowledged the server's ISN: the SYN-ACK reached it, captured
                # or not.
                "synack_acked": self.handshake_seen and self.c.lastack >= 0,
                "synack_new_isns": self.synack_isns,
            },
            "close": self.close_kind(),
            "closed_by": self.first_closer,
            "close_detail": self.close_detail(),
            "retransmissions": self.retrans + self.fast_retrans + self.spurious,
            "dup_acks": self.dupacks,
            "zero_windows": self.zerowin,
            "out_of_order": self.ooo,
            "app": self.app or None,
            "capture": self.evidence(),
        }
        out["tls"] = self.tls.to_json() if self.tls else None
        out["http"] = [dict(h) for h in self.http] if self.http else []
        if any(self.http_omitted):
            out["http_omitted"] = {"requests": self.http_omitted[0],
                                   "responses": self.http_omitted[1]}
        if self.dialogue:
            out["dialogue"] = list(self.dialogue)
            if self.dialogue_omitted:
                out["dialogue_omitted"] = self.dialogue_omitted
        if self.icmp:
            out["icmp"] = self.icmp
        if with_events and self.events is not None:
            from netcheck.pcap.explain import event_json

            out["events"] = [event_json(e, lang) for e in self.events]
            if self.events_dropped:
                out["events_omitted"] = self.events_dropped
        return out


class Aggregate:
    """Sessions beyond :data:`MAX_SESSIONS`, counted together."""

    def __init__(self) -> None:
        self.sessions = 0
        self.packets = 0
        self.bytes_client = 0
        self.bytes_server = 0
        self.retransmissions = 0
        self.incomplete = 0
        self.rst = 0

    def add(self, s: Session) -> None:
        """Fold one finished session in."""
        self.sessions += 1
        self.packets += s.packets
        self.bytes_client += s.c.data
        self.bytes_server += s.s.data
        self.retransmissions += s.retrans + s.fast_retrans + s.spurious
        self.incomplete += not s.hs_done
        self.rst += bool(s.first_rst)

    def to_json(self) -> dict[str, Any]:
        """Counts of the sessions not listed one by one."""
        return {"sessions": self.sessions, "packets": self.packets,
                "bytes": {"client": self.bytes_client, "server": self.bytes_server},
                "retransmissions": self.retransmissions,
                "handshake_incomplete": self.incomplete, "rst": self.rst}


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
        self.tls_collecting: dict[int, P.TlsFollower] = {}  # unfinished handshake records
        self.next_id = 1
        self.packets = 0
        self.last_t = 0.0
        self.dns: list[dict[str, Any]] = []
        self.dns_pending: dict[tuple, dict[str, Any]] = {}
        self.dns_dropped = 0
        self.udp_flows: dict[bytes, list[Any]] = {}
        self.udp_dropped = [0, 0]  # flows, packets
        self.ike: dict[str, Any] = {}
        self.esp: dict[str, list[Any]] = {}
        self.icmp: dict[str, int] = {}
        self.non_ip: dict[str, int] = {}
        self.undecoded = 0
        self.fragments = 0
        self.text_budget = TEXT_BUDGET
        self.malformed: dict[str, int] = {}  # what could not be decoded, by kind
        self.tunnels: dict[str, int] = {}  # tunnels seen and not opened: name -> packets
        self.receivers: set[bytes] = set()  # addresses that received a non-TCP packet

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
                if link == 1 and caplen >= 54 and buf[off + 14] == 0x45 \
                        and buf[off + 12] == 8 and buf[off + 13] == 0:
                    # Fast path: Ethernet, IPv4 without options, TCP, not a fragment (nearly
                    # every packet of a real capture). Addresses and ports are contiguous:
                    # one 12-byte slice is the session key.
                    ip = off + 14
                    if buf[ip + 9] == 6 and not (buf[ip + 6] & 0x1F) | buf[ip + 7] \
                            and flt is None:
                        total = buf[ip + 2] << 8 | buf[ip + 3]
                        key = buf[ip + 12:ip + 24]
                        entry = table.get(key)
                        if entry is None:
                            entry = self._tcp_new(key[:4], key[4:8], t, n, buf, ip + 20)
                        tcp(entry, t, n, buf, ip + 20, (total or wirelen - 14) - 20,
                            off + caplen, buf[ip + 4] << 8 | buf[ip + 5])
                        continue
                loc = locate(link, buf, off, caplen, wirelen)
                if loc is None:
                    self.undecoded += 1
                    continue
                proto, src, dst, l4, l4len, end, ipid = loc
                if proto == NOT_IP:
                    name = ETHERTYPE_NAMES.get(l4, "other")
                    self.non_ip[name] = self.non_ip.get(name, 0) + 1
                    continue
                self._other(proto, src, dst, t, n, buf, l4, l4len, end, flt, ipid)
        finally:
            self.packets = count
            self.last_t = t

    def _other(self, proto: int, src: bytes, dst: bytes, t: float, n: int, buf: bytes,
               l4: int, l4len: int, end: int, flt: Optional[Callable[..., bool]],
               ipid: int = -1) -> None:
        """Everything but the Ethernet/IPv4/TCP fast path (and any packet under a filter)."""
        if proto == FRAGMENT:
            self.fragments += 1
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
                self.malformed["tcp header cut"] = self.malformed.get("tcp header cut", 0) + 1
                return
            entry = self.table.get(src + dst + buf[l4:l4 + 4])
            if entry is None:
                entry = self._tcp_new(src, dst, t, n, buf, l4)
            self._tcp(entry, t, n, buf, l4, l4len, end, ipid)
        elif proto == 17:
            self._udp(src, dst, sp, dp, t, n, buf, l4, l4len, end)
        elif proto in (1, 58):
            self._icmp(proto, src, dst, t, n, buf, l4, end)
        elif proto in (50, 51):
            self._ipsec(proto, buf, l4, end)
        else:
            tunnel = TUNNEL_PROTOS.get(proto)
            if tunnel is not None:
                self.tunnels[tunnel] = self.tunnels.get(tunnel, 0) + 1
                return
            name = IP_PROTO_NAMES.get(proto, f"ip-proto-{proto}")
            self.non_ip[name] = self.non_ip.get(name, 0) + 1

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
        rare cases (SYN, FIN, RST, events to record) in their own methods. ``end`` is the end
        of the captured bytes: nothing at or past it is read.
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
        # A frame captured twice (a capture on two interfaces, a mirror port that copies both
        # ways): the same IP ID and the very same TCP header (checksum included, so the same
        # payload), right after the first copy. Wireshark counts the copy as a retransmission
        # or a duplicate ACK, and so do the counts here; the explanation says what it is.
        # (The TCP checksum covers ports, numbers, flags, window, options and payload.)
        sig = (c2s, seq, csum, ipid, seglen)
        dup = sig == s.last_sig and t - s.last_t <= DUP_WINDOW
        if dup and ipid <= 0 and not seglen and not flags & 7 and not s.dups:
            # Two identical pure ACKs with no IP ID to tell them apart (IPv6, or a stack that
            # sends 0) may be two duplicate ACKs sent back to back: a copy only once this
            # capture has shown copies of other frames of the session.
            dup = False
        s.last_sig = sig
        fwd.packets += 1
        s.last_t = t
        tags: Optional[list[tuple]] = None if s.events is None else []
        if dup:
            s.dups += 1
            if tags is not None:
                tags.append(("dup", ipid))
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
            self._control(s, fwd, rev, c2s, flags, seq, ack, seglen, t, buf, l4, thl, end,
                          dup, tags)
        elif flags & 16 and (not s.hs_done or tags is not None):
            self._ack_role(s, fwd, rev, c2s, ack, tags)

        # -- Wireshark's analysis flags, in its order --
        nextseq = fwd.nextseq
        keepalive = zwp = gap = False
        if seglen == 1 and seq == nextseq and rev.window == 0:
            zwp = True
            if tags is not None:
                tags.append(("zwp",))
        elif nextseq >= 0:
            if win == 0 and not flags & 7:
                s.zerowin += 1
                if tags is not None:
                    tags.append(("zerowin",))
            if seq != nextseq:
                if (seq - nextseq) & MASK < HALF:
                    if not flags & 4:
                        s.lost += 1
                        gap = True
                        if tags is not None:
                            tags.append(("lost",))
                elif seglen <= 1 and seq == (nextseq - 1) & MASK and not flags & 7:
                    keepalive = True
                    s.keepalives += 1
                    if tags is not None:
                        tags.append(("keepalive",))
            elif seglen == 0 and win and win == fwd.window and ack == fwd.lastack \
                    and not flags & 7 and not (rev.keepalive_last or rev.zwp_last):
                # (the ACK of a keep-alive or of a window probe is not a duplicate)
                fwd.dupacknum += 1
                s.dupacks += 1
                s.dup_acks += dup
                if tags is not None:
                    # The receiver waits for a missing segment only if the peer did send
                    # beyond what it acknowledges: otherwise the capture cannot tell.
                    waiting = rev.nextseq >= 0 and 0 < (rev.nextseq - ack) & MASK < HALF
                    tags.append(("dupack", fwd.dupacknum, waiting))
        elif win == 0 and not flags & 7:
            s.zerowin += 1
            if tags is not None:
                tags.append(("zerowin",))
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
                    again = self._retransmission(s, fwd, rev, t, seq, seglen, syn_fin,
                                                 not_adv, tags)
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

        # -- data --
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
                self._app(s, fwd, c2s, seq, seglen, buf, l4 + thl, end, tags, gap)
        elif tags is not None and flags == 16 and not tags:
            tags.append(("ack",))

        if tags is not None:
            self._record(s, fwd, rev, c2s, n, t, flags, seq, ack, win, seglen, buf, l4, thl,
                         end, tags)

    def _retransmission(self, s: Session, fwd: Flow, rev: Flow, t: float, seq: int,
                        seglen: int, syn_fin: int, not_adv: bool,
                        tags: Optional[list[tuple]]) -> bool:
        """Which kind of segment that does not advance the sequence this is, in Wireshark's
        order (fast retransmission, out of order, spurious, retransmission); True if it holds
        bytes already seen (anything but out of order)."""
        if not_adv and rev.dupacknum >= 2 and rev.lastack == seq \
                and t - rev.lastack_t < 0.02:
            s.fast_retrans += 1
            code = "fast_retrans"
        elif not_adv and t - fwd.nextseq_t < (s.irtt if s.irtt > 0 else 0.003) \
                and fwd.nextseq != (seq + seglen + syn_fin) & MASK:
            s.ooo += 1
            code = "ooo"
        elif seglen and rev.lastack >= 0 and (rev.lastack - seq - seglen) & MASK < HALF:
            s.spurious += 1
            code = "spurious"
        elif not_adv:
            s.retrans += 1
            code = "retrans"
        else:
            return False
        if tags is not None:
            tags.append((code,))
        return code != "ooo"

    def _ack_role(self, s: Session, fwd: Flow, rev: Flow, c2s: bool, ack: int,
                  tags: Optional[list[tuple]]) -> None:
        """An ACK without SYN/FIN/RST: the handshake's third packet, or the ACK of a FIN."""
        if not s.hs_done:
            if c2s and s.synack_n:
                s.hs_done = True
                if tags is not None:
                    tags.append(("hs_ack", s.irtt, s.handshake_seen))
            elif c2s and s.handshake_seen and fwd.lastack < 0 and tags is not None:
                # The client's first ACK after its SYN: it acknowledges a SYN-ACK that is
                # not in the capture (it went another way, or was not captured).
                tags.append(("hs_ack_unseen", s.irtt))
            return
        if rev.fin_n and (ack - rev.fin_seq - 1) & MASK < HALF \
                and not (fwd.lastack >= 0 and (fwd.lastack - rev.fin_seq - 1) & MASK < HALF):
            # The first ACK that covers the peer's FIN.
            assert tags is not None
            tags.append(("last_ack",) if fwd.fin_n else
                        ("fin_ack", "client" if c2s else "server"))

    def _reopen(self, old: Session, c2s: bool, t: float, n: int, buf: bytes,
                l4: int) -> tuple[Session, bool]:
        """A SYN with a new ISN on a known 5-tuple: the old session ends, a new one begins."""
        if old.id > self.max_sessions:
            self.beyond.add(old)
        sp, dp = _u16(buf, l4)[0], _u16(buf, l4 + 2)[0]
        src, dst = (old.caddr, old.saddr) if c2s else (old.saddr, old.caddr)
        return self._open(src, dst, sp, dp, True, t, n)

    def _control(self, s: Session, fwd: Flow, rev: Flow, c2s: bool, flags: int, seq: int,
                 ack: int, seglen: int, t: float, buf: bytes, l4: int, thl: int, end: int,
                 dup: bool, tags: Optional[list[tuple]]) -> None:
        """SYN, SYN-ACK, FIN and RST: the handshake and the close."""
        side = "client" if c2s else "server"
        if flags & SYN:
            opts = tcp_options(buf, l4 + 20, l4 + thl, end) if thl > 20 else {}
            if not opts.get("cut"):  # options the snap length cut are unknown, not absent
                fwd.mss = opts.get("mss", fwd.mss)  # type: ignore[assignment]
                fwd.sack_perm = bool(opts.get("sack_perm")) or fwd.sack_perm
                fwd.timestamps = "tsval" in opts or fwd.timestamps
                fwd.wscale = opts["wscale"] if "wscale" in opts else -2  # type: ignore
            retry = fwd.syns > 0 and seq == fwd.isn
            if not flags & ACK:
                s.syn_t = t
                s.handshake_seen = True
                fwd.syns += 1
                fwd.isn = seq
                if retry and not dup:
                    s.syn_retries += 1
                if tags is not None:
                    tags.append(("syn_retry", fwd.syns) if retry else ("syn", seq))
            else:
                new_isn = fwd.syns > 0 and seq != fwd.isn
                fwd.syns += 1
                fwd.isn = seq
                s.synack_n += 1
                if retry and not dup:
                    s.synack_retries += 1
                if new_isn:
                    self._rebase(s, fwd, rev, seq)
                if tags is not None:
                    tags.append(("synack_retry", fwd.syns) if retry else
                                ("synack_new", seq) if new_isn else ("synack", seq, ack))
        if flags & FIN and fwd.fin_n == 0:
            fwd.fin_seq = (seq + seglen) & MASK
            fwd.fin_n = 1
            if s.first_closer is None:
                s.first_closer = side
                if tags is not None:
                    tags.append(("fin_first", side))
            else:
                # The second FIN: does it acknowledge the first one? If not, both sides
                # closed at once (each sent FIN before it saw the other's).
                acks_other = bool(flags & ACK) and rev.fin_seq >= 0 and \
                    (ack - rev.fin_seq - 1) & MASK < HALF
                s.simultaneous = not acks_other
                s.three_way = acks_other and not self._fin_acked_before(fwd, rev)
                if tags is not None:
                    tags.append(("fin_second", side, s.simultaneous))
        elif flags & FIN and tags is not None:
            tags.append(("fin_again", side))
        if flags & RST:
            fwd.rst_n += 1
            if s.first_rst is None:
                s.first_rst = side
                if s.first_closer is None:
                    s.first_closer = side
                refused = not c2s and not s.synack_n and s.handshake_seen and not s.hs_done
                if refused:
                    s.refused = True
                if tags is not None:
                    kind = "refused" if refused else ("after_fin" if (s.c.fin_n or s.s.fin_n)
                                                      else "abort")
                    tags.append(("rst", side, kind))
            elif tags is not None:
                tags.append(("rst", side, "again"))

    def _rebase(self, s: Session, fwd: Flow, rev: Flow, seq: int) -> None:
        """A SYN-ACK with another ISN than the one before: the server started the handshake
        afresh. As Wireshark does, the session stays one and its numbers count from the new
        ISN (bytes included: never the distance between two ISNs); unlike Wireshark, what was
        expected before is forgotten too, so the data that follows is not taken for
        retransmissions (see the corpus tests' tshark quirks)."""
        s.synack_isns += 1
        fwd.base = seq
        fwd.nextseq = -1
        fwd.maxend = -1
        fwd.follower = None
        rev.lastack = -1
        rev.dupacknum = 0

    @staticmethod
    def _fin_acked_before(fwd: Flow, rev: Flow) -> bool:
        """True if this side had already sent a pure ACK for the peer's FIN (four-way)."""
        return fwd.lastack >= 0 and rev.fin_seq >= 0 and \
            (fwd.lastack - rev.fin_seq - 1) & MASK < HALF

    def _app(self, s: Session, fwd: Flow, c2s: bool, seq: int, seglen: int, buf: bytes,
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
        elif app in ("smtp", "pop3", "ssh"):
            data = buf[start:stop]
            if app != "ssh" and data[:1] == b"\x16" and P.looks_like_tls_record(data):
                # STARTTLS: the rest of the session is TLS.
                s.app = "tls"
                self._app(s, fwd, c2s, seq, seglen, buf, start, end, tags)
                return
            self._dialogue(s, c2s, app, data, seglen, tags)
        elif app == "dns":
            self._dns_tcp(s, c2s, buf[start:stop])

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

    def _dns_tcp(self, s: Session, c2s: bool, data: bytes) -> None:
        # DNS over TCP: a 2-byte length, then the message (only whole messages in a segment).
        if len(data) >= 14:
            size = _u16(data, 0)[0]
            if size <= len(data) - 2:
                self._dns_message(data[2:2 + size], s.caddr, s.saddr, s.cport, s.last_t,
                                  not c2s, "tcp")

    def _record(self, s: Session, fwd: Flow, rev: Flow, c2s: bool, n: int, t: float,
                flags: int, seq: int, ack: int, win: int, seglen: int, buf: bytes, l4: int,
                thl: int, end: int, tags: list[tuple]) -> None:
        """Keep one event of the session whose detail was asked for."""
        events = s.events
        assert events is not None
        if len(events) >= MAX_EVENTS:
            s.events_dropped += 1
            return
        opts = tcp_options(buf, l4 + 20, l4 + thl, end) if thl > 20 else {}
        if not flags & SYN and fwd.wscale >= 0 and rev.wscale >= 0:
            win <<= fwd.wscale  # both sides agreed on scaling: Wireshark shows it applied
        rel_seq = (seq - fwd.base) & MASK
        rel_ack = (ack - rev.base) & MASK if flags & ACK and rev.base >= 0 else 0
        if "sack" in opts:
            opts["sack"] = [((a - rev.base) & MASK, (b - rev.base) & MASK)
                            for a, b in opts["sack"]]  # type: ignore[attr-defined]
        events.append((n, t, c2s, flags, rel_seq, rel_ack, win, seglen, opts, tags,
                       (seq, ack)))

    # -- UDP, DNS, ICMP, IPsec ---------------------------------------------------------------

    def _udp(self, src: bytes, dst: bytes, sp: int, dp: int, t: float, n: int, buf: bytes,
             l4: int, l4len: int, end: int) -> None:
        data = buf[l4 + 8:min(end, l4 + l4len)]
        if sp == 53 or dp == 53:
            if self._dns_message(data, src if dp == 53 else dst, dst if dp == 53 else src,
                                 sp if dp == 53 else dp, t, sp == 53, "udp"):
                if sp == 53:
                    self._received(dst)
                return
            self.malformed["DNS message"] = self.malformed.get("DNS message", 0) + 1
        tunnel = TUNNEL_PORTS.get(dp) or TUNNEL_PORTS.get(sp)
        if tunnel is not None:
            self.tunnels[tunnel] = self.tunnels.get(tunnel, 0) + 1
            return
        if sp in (500, 4500) or dp in (500, 4500):
            if (sp == 4500 or dp == 4500) and data[:4] != b"\0\0\0\0":
                if len(data) >= 8:  # ESP in UDP (NAT traversal): starts with the SPI
                    self._esp_spi("esp", data[:4])
                    return
            ike = P.parse_ike(data[4:] if (sp == 4500 or dp == 4500) else data)
            if ike:
                self._ike(ike)
                return
        key = src + dst + buf[l4:l4 + 4]
        flow = self.udp_flows.get(key)
        if flow is None:
            flow = self.udp_flows.get(dst + src + buf[l4 + 2:l4 + 4] + buf[l4:l4 + 2])
        if flow is None:
            if len(self.udp_flows) >= MAX_FLOWS:
                self.udp_dropped[1] += 1
                return
            flow = [endpoint(src, sp), endpoint(dst, dp), 0, 0, t]
            self.udp_flows[key] = flow
        flow[2] += 1
        flow[3] += max(0, l4len - 8)

    def _received(self, address: bytes) -> None:
        """``address`` received a captured packet (bounded: past the cap, not recorded)."""
        if len(self.receivers) < MAX_RECEIVERS:
            self.receivers.add(address)

    def _dns_message(self, data: bytes, client: bytes, server: bytes, cport: int, t: float,
                     response: bool, transport: str) -> bool:
        if len(self.dns) >= MAX_DNS and len(data) >= 12:
            # Past the cap only answers to listed queries matter: the ID and the QR bit tell,
            # without parsing the message (a DNS-heavy capture stays fast).
            key = (client, server, cport, data[0] << 8 | data[1])
            if not (data[2] & 0x80 and key in self.dns_pending):
                self.dns_dropped += 1
                return True
        msg = P.parse_dns(data)
        if msg is None or msg["response"] != response:
            return False
        key = (client, server, cport, msg["id"])
        if not response:
            if key in self.dns_pending:
                return True  # a retry of the same query: Wireshark lists it, we keep one
            if len(self.dns) >= MAX_DNS:
                self.dns_dropped += 1
                return True
            entry = self._dns_entry(msg, t, server, transport)
            if len(self.dns_pending) > MAX_DNS:
                self.dns_pending.pop(next(iter(self.dns_pending)))
            self.dns_pending[key] = entry
            return True
        entry = self.dns_pending.pop(key, None)
        if entry is None:
            if len(self.dns) >= MAX_DNS:
                self.dns_dropped += 1
                return True
            entry = self._dns_entry(msg, t, server, transport)
        else:
            entry["rtt_ms"] = round((t - entry["t"]) * 1000, 3)
        entry["rcode"] = msg["rcode"]
        entry["answers"] = [_cut(answer) for answer in msg["answers"]]
        return True

    def _dns_entry(self, msg: dict[str, Any], t: float, server: bytes,
                   transport: str) -> dict[str, Any]:
        """A new listed DNS exchange (its answer, if any, is filled in by the caller)."""
        entry = {"t": round(t, 6), "id": msg["id"], "query": _cut(msg["query"]),
                 "type": msg["type"], "rcode": None, "answers": [],
                 "server": address(server), "transport": transport, "rtt_ms": None}
        self.dns.append(entry)
        return entry

    def _icmp(self, proto: int, src: bytes, dst: bytes, t: float, n: int, buf: bytes, l4: int,
              end: int) -> None:
        if l4 + 2 > end:
            return
        itype, code = buf[l4], buf[l4 + 1]
        self._received(dst)
        from netcheck.pcap.explain import icmp_name

        name = icmp_name(proto, itype, code)
        if name not in self.icmp and len(self.icmp) >= MAX_KINDS:
            name = "other"  # 65536 type/code pairs must not make 65536 entries
        self.icmp[name] = self.icmp.get(name, 0) + 1
        # An error quoting one of our TCP segments explains that session's silence.
        error = (proto == 1 and itype in (3, 11)) or (proto == 58 and itype in (1, 3))
        if error:
            inner = l4 + 8
            loc = None
            if proto == 1 and inner + 20 <= end:
                from netcheck.pcap.decode import ipv4

                loc = ipv4(buf, inner, end, end)
            elif proto == 58 and inner + 40 <= end:
                from netcheck.pcap.decode import ipv6

                loc = ipv6(buf, inner, end, end)
            if loc and loc[0] == 6 and loc[3] + 4 <= end:
                ip_proto, isrc, idst, il4 = loc[0], loc[1], loc[2], loc[3]
                entry = self.table.get(isrc + idst + buf[il4:il4 + 4])
                if entry is not None and ip_proto == 6:
                    s = entry[0]
                    s.icmp = f"{name} from {address(src)}"
                    if s.events is not None and len(s.events) < MAX_EVENTS:
                        s.events.append((n, t, None, 0, 0, 0, 0, 0, {}, [("icmp", s.icmp)],
                                         None))

    def _ipsec(self, proto: int, buf: bytes, l4: int, end: int) -> None:
        if proto == 50 and l4 + 4 <= end:
            self._esp_spi("esp", buf[l4:l4 + 4])
        elif proto == 51 and l4 + 8 <= end:
            self._esp_spi("ah", buf[l4 + 4:l4 + 8])

    def _esp_spi(self, kind: str, spi: bytes) -> None:
        entry = self.esp.setdefault(kind, [0, []])
        entry[0] += 1
        text = "0x" + spi.hex()
        if text not in entry[1] and len(entry[1]) < 64:
            entry[1].append(text)

    def _ike(self, ike: dict[str, Any]) -> None:
        info = self.ike
        if not info:
            info.update({"packets": 0, "versions": [], "exchanges": [], "spis": []})
        info["packets"] += 1
        if ike["version"] not in info["versions"]:
            info["versions"].append(ike["version"])
        if ike["exchange"] not in info["exchanges"] and len(info["exchanges"]) < MAX_KINDS:
            info["exchanges"].append(ike["exchange"])
        pair = f"{ike['initiator_spi']}/{ike['responder_spi']}"
        if pair not in info["spis"] and len(info["spis"]) < 64:
            info["spis"].append(pair)

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
        out = [{"what": name, "kind": "tunnel", "packets": count}
               for name, count in sorted(self.tunnels.items())]
        malformed = dict(self.malformed)
        if self.undecoded:
            malformed["IP header"] = malformed.get("IP header", 0) + self.undecoded
        tls_bad = sum(s.tls.malformed for s in self.sessions if s.tls is not None)
        if tls_bad:
            malformed["TLS record"] = tls_bad
        out += [{"what": name, "kind": "malformed", "packets": count}
                for name, count in sorted(malformed.items())]
        return out

    def other(self) -> list[dict[str, Any]]:
        """The netcheck-pcap/1 ``other`` list: IKE, ESP/AH, UDP flows, ICMP, non-IP."""
        out: list[dict[str, Any]] = []
        if self.ike:
            out.append({"proto": "isakmp", **self.ike})
        for kind, (count, spis) in self.esp.items():
            out.append({"proto": kind, "packets": count, "spis": list(spis)})
        for client, server, packets, size, t in self.udp_flows.values():
            out.append({"proto": "udp", "client": client, "server": server,
                        "packets": packets, "bytes": size, "first_ts": round(t, 6)})
        if self.udp_dropped[1]:
            out.append({"proto": "udp", "client": None, "server": None,
                        "packets": self.udp_dropped[1], "bytes": None,
                        "note": f"flows beyond the first {MAX_FLOWS}"})
        if self.icmp:
            out.append({"proto": "icmp", "packets": sum(self.icmp.values()),
                        "messages": dict(self.icmp)})
        for name, count in self.non_ip.items():
            out.append({"proto": name, "packets": count})
        if self.fragments:
            out.append({"proto": "ip-fragment", "packets": self.fragments})
        if self.undecoded:
            out.append({"proto": "undecoded", "packets": self.undecoded})
        return out


def build_document(analyzer: Analyzer, file: Optional[str], truncated: bool,
                   warnings: list[str], lang: str = "en",
                   detail: Optional[int] = None) -> dict[str, Any]:
    """The netcheck-pcap/1 document of a finished analysis.

    detail: the session whose events to include; then ``sessions`` holds that session only.
    Without it, a capture with a single TCP session gets that session's events anyway.
    """
    from netcheck.pcap import SCHEMA

    analyzer.finish()
    if detail is not None:
        chosen = analyzer.session(detail)
        picked = [chosen] if chosen else []
    else:
        picked = list(analyzer.sessions)
    single = detail is not None or (analyzer.total_sessions() == 1
                                    and len(analyzer.sessions) == 1)
    sessions = [s.to_json(single, lang) for s in picked]
    _add_context(analyzer, picked, sessions)
    warnings = list(warnings)
    if analyzer.dns_dropped:
        warnings.append(f"only the first {MAX_DNS} DNS exchanges are listed "
                        f"({analyzer.dns_dropped} more)")
    doc: dict[str, Any] = {
        "schema": SCHEMA, "file": file, "packets": analyzer.packets, "truncated": truncated,
        "sessions": sessions, "dns": analyzer.dns, "other": analyzer.other(),
    }
    if analyzer.beyond.sessions or detail is not None:
        doc["sessions_total"] = analyzer.total_sessions()
    if analyzer.beyond.sessions:
        doc["sessions_beyond_cap"] = analyzer.beyond.to_json()
    if analyzer.not_followed:
        doc["sessions_not_followed"] = analyzer.not_followed
    seen = capture_facts(analyzer)
    if seen:
        doc["capture"] = seen
    not_decoded = analyzer.not_decoded()
    if not_decoded:
        doc["not_decoded"] = not_decoded
    if warnings:
        doc["warnings"] = warnings
    return doc


def _add_context(analyzer: Analyzer, picked: list[Session],
                 sessions: list[dict[str, Any]]) -> None:
    """What a session's story needs from the rest of the capture: does the capture hold
    packets *to* its client at all (else a missing answer may simply not have been
    captured), and how long the capture went on after its last packet."""
    receivers = set(analyzer.receivers)
    for s in analyzer.sessions:
        if s.s.packets:
            receivers.add(s.caddr)
        if s.c.packets:
            receivers.add(s.saddr)
    for s, out in zip(picked, sessions):
        cap = out["capture"]
        cap["capture_ends_after_s"] = round(max(0.0, analyzer.last_t - s.last_t), 6)
        cap["return_traffic"] = s.caddr in receivers


def capture_facts(analyzer: Analyzer) -> dict[str, Any]:
    """What the capture as a whole can and cannot show, before any session is explained
    (over the listed sessions): how many were captured one way only, with proof in the ACKs
    of the side seen that the other side did send; how many frames are copies."""
    listed = analyzer.sessions
    one_way = sum(1 for s in listed if not (s.c.packets and s.s.packets)
                  and (s.c.lastack >= 0 if s.c.packets else s.s.lastack >= 0))
    copies = sum(s.dups for s in listed)
    facts: dict[str, Any] = {}
    if one_way:
        facts["one_way_sessions"] = one_way
        facts["sessions"] = len(listed)
    if copies:
        facts["frames_captured_again"] = copies
    return facts
