"""A TCP session as the analysis keeps it: both directions' sequence state (:class:`Flow`),
the session's counts and conclusions (:class:`Session`), and the sessions beyond the cap
counted together (:class:`Aggregate`).

:mod:`netcheck.pcap.sessions` fills these in, packet by packet (the TCP state machine);
:mod:`netcheck.pcap.payload` fills in what the payload says (TLS, HTTP, mail, SSH).
"""

from __future__ import annotations

from typing import Any, Optional

from netcheck.pcap import protocols as P
from netcheck.pcap.decode import endpoint

MASK = 0xFFFFFFFF
HALF = 0x80000000
MAX_EVENTS = 2_000

FIN, SYN, RST, PSH, ACK, URG, ECE, CWR = 1, 2, 4, 8, 16, 32, 64, 128
FLAG_LETTERS = ((FIN, "F"), (SYN, "S"), (RST, "R"), (PSH, "P"), (ACK, "A"), (URG, "U"),
                (ECE, "E"), (CWR, "C"))


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

