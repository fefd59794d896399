"""The TCP state machine's rarer steps, as Wireshark's TCP analysis takes them: the kind of a
segment that does not advance the sequence (retransmission, fast, spurious, out of order),
the handshake (SYN, SYN-ACK and its options, retries, a SYN-ACK with a new ISN), the close
(FIN, RST, who began it, three-way or simultaneous) and the events kept of the session whose
detail was asked for.

:meth:`netcheck.pcap.sessions.Analyzer._tcp` runs for every segment and calls these only
when a segment needs them (a copy of the frame before, Wireshark's analysis flags when one may
apply); they change the :class:`~netcheck.pcap.tcpsession.Session` and
its :class:`~netcheck.pcap.tcpsession.Flow` s in place and append the event tags.
"""

from __future__ import annotations

from typing import Optional

from netcheck.pcap.decode import tcp_options
from netcheck.pcap.tcpsession import ACK, FIN, HALF, MASK, MAX_EVENTS, RST, SYN, Flow, Session


def _ns(seconds: float) -> int:
    """A time difference in whole nanoseconds, as Wireshark compares them: in floats a gap
    equal to the iRTT (both 155 µs on the wire) may come out a hair smaller or larger."""
    return round(seconds * 1e9)


def captured_again(s: Session, ipid: int, seglen: int, flags: int,
                   tags: Optional[list[tuple]]) -> bool:
    """A frame that looks captured twice (the same IP ID and TCP header as the one just
    before, within DUP_WINDOW): count it as a copy and say so; False if it may be a real
    packet after all.

    A capture on two interfaces, a mirror port that copies both ways: the same IP ID and the
    very same TCP header (checksum included, so the same payload), right after the first
    copy. Wireshark counts the copy as a retransmission or a duplicate ACK, and so do the
    counts here; the explanation says what it is. (The TCP checksum covers ports, numbers,
    flags, window, options and payload.)
    """
    if ipid <= 0 and not seglen and not flags & 7 and not s.dups:
        # Two identical pure ACKs with no IP ID to tell them apart (IPv6, or a stack that
        # sends 0) may be two duplicate ACKs sent back to back: a copy only once this
        # capture has shown copies of other frames of the session.
        return False
    s.dups += 1
    if tags is not None:
        tags.append(("dup", ipid))
    return True


def analysis_flags(s: Session, fwd: Flow, rev: Flow, flags: int, seq: int, ack: int,
                   win: int, seglen: int, dup: bool,
                   tags: Optional[list[tuple]]) -> tuple[bool, bool, bool]:
    """Wireshark's analysis flags of a segment, in its order: zero window probe, zero
    window, lost segment (a gap before it), keep-alive, duplicate ACK. Returns (keep-alive,
    window probe, gap). The caller skips this for a segment none of them can apply to."""
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
    return keepalive, zwp, gap


def retransmission(s: Session, fwd: Flow, rev: Flow, t: float, seq: int,
                   seglen: int, syn_fin: int, not_adv: bool,
                   tags: Optional[list[tuple]]) -> bool:
    """Which kind of segment that does not advance the sequence this is, in Wireshark's
    order since 4.0 (spurious, fast retransmission, out of order, retransmission); True if
    it holds bytes already seen (anything but out of order)."""
    # Bytes the peer already acknowledged are spurious first: under load a copy sent soon
    # after the original also falls inside the out-of-order window, and Wireshark 4 names
    # it spurious (3.x asked the other questions first).
    if seglen and rev.lastack >= 0 and (rev.lastack - seq - seglen) & MASK < HALF:
        s.spurious += 1
        code = "spurious"
    elif not_adv and rev.dupacknum >= 2 and rev.lastack == seq \
            and _ns(t - rev.lastack_t) < 20_000_000:
        s.fast_retrans += 1
        code = "fast_retrans"
    elif not_adv and _ns(t - fwd.nextseq_t) < (_ns(s.irtt) if s.irtt > 0 else 3_000_000) \
            and fwd.nextseq != (seq + seglen + syn_fin) & MASK:
        s.ooo += 1
        code = "ooo"
    elif not_adv:
        s.retrans += 1
        code = "retrans"
    else:
        return False
    if tags is not None:
        tags.append((code,))
    return code != "ooo"

def ack_role(s: Session, fwd: Flow, rev: Flow, c2s: bool, ack: int,
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


def control(s: Session, fwd: Flow, rev: Flow, c2s: bool, flags: int, seq: int,
            ack: int, seglen: int, t: float, buf: bytes, l4: int, thl: int, end: int,
            dup: bool, tags: Optional[list[tuple]]) -> None:
    """SYN, SYN-ACK, FIN and RST: the handshake and the close."""
    if flags & SYN:
        _syn(s, fwd, rev, flags, seq, ack, t, buf, l4, thl, end, dup, tags)
    side = "client" if c2s else "server"
    if flags & FIN:
        _fin(s, fwd, rev, side, flags, seq, ack, seglen, tags)
    if flags & RST:
        _rst(s, fwd, c2s, side, tags)


def _syn(s: Session, fwd: Flow, rev: Flow, flags: int, seq: int, ack: int, t: float,
         buf: bytes, l4: int, thl: int, end: int, dup: bool,
         tags: Optional[list[tuple]]) -> None:
    """A SYN or a SYN-ACK: options, retries, and a SYN-ACK that starts afresh."""
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
        return
    new_isn = fwd.syns > 0 and seq != fwd.isn
    fwd.syns += 1
    fwd.isn = seq
    s.synack_n += 1
    if retry and not dup:
        s.synack_retries += 1
    if new_isn:
        _rebase(s, fwd, rev, seq)
    if tags is not None:
        tags.append(("synack_retry", fwd.syns) if retry else
                    ("synack_new", seq) if new_isn else ("synack", seq, ack))


def _fin(s: Session, fwd: Flow, rev: Flow, side: str, flags: int, seq: int, ack: int,
         seglen: int, tags: Optional[list[tuple]]) -> None:
    """A FIN: who closed first, and whether the close was three-way or simultaneous."""
    if fwd.fin_n:
        if tags is not None:
            tags.append(("fin_again", side))
        return
    fwd.fin_seq = (seq + seglen) & MASK
    fwd.fin_n = 1
    if s.first_closer is None:
        s.first_closer = side
        if tags is not None:
            tags.append(("fin_first", side))
        return
    # The second FIN: does it acknowledge the first one? If not, both sides closed at once
    # (each sent FIN before it saw the other's).
    acks_other = bool(flags & ACK) and rev.fin_seq >= 0 and \
        (ack - rev.fin_seq - 1) & MASK < HALF
    s.simultaneous = not acks_other
    s.three_way = acks_other and not _fin_acked_before(fwd, rev)
    if tags is not None:
        tags.append(("fin_second", side, s.simultaneous))


def _rst(s: Session, fwd: Flow, c2s: bool, side: str, tags: Optional[list[tuple]]) -> None:
    """An RST: the first one ends the session (a refusal if it answers a SYN)."""
    fwd.rst_n += 1
    if s.first_rst is not None:
        if tags is not None:
            tags.append(("rst", side, "again"))
        return
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


def _rebase(s: Session, fwd: Flow, rev: Flow, seq: int) -> None:
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

def _fin_acked_before(fwd: Flow, rev: Flow) -> bool:
    """True if this side had already sent a pure ACK for the peer's FIN (four-way)."""
    return fwd.lastack >= 0 and rev.fin_seq >= 0 and \
        (fwd.lastack - rev.fin_seq - 1) & MASK < HALF

def record(s: Session, fwd: Flow, rev: Flow, c2s: bool, n: int, t: float,
           flags: int, seq: int, ack: int, win: int, seglen: int, buf: bytes, l4: int,
           thl: int, end: int, tags: list[tuple], limit: int = MAX_EVENTS) -> None:
    """Keep one event of the session whose detail was asked for (at most ``limit``)."""
    events = s.events
    assert events is not None
    if len(events) >= limit:
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
