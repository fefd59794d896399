"""What each packet of a session means: the sentence for one recorded event (:func:`note`) and
the netcheck-pcap/1 event object that carries it (:func:`event_json`).
"""

from __future__ import annotations

from typing import Any

from netcheck.pcap.explain.fields import options_text, tls_names
from netcheck.pcap.explain.texts import t


def note(event: tuple, lang: str = "en") -> str:
    """The sentence for one recorded event (see :func:`netcheck.pcap.tcpstate.record`)."""
    n, _t, c2s, flags, _seq, rel_ack, _win, seglen, _opts, tags, _abs = event
    side = t("client" if c2s else "server", lang)
    client, server = t("client", lang), t("server", lang)
    parts: list[str] = []
    analysis: list[str] = []
    app = False
    # A frame captured twice is said to be that, and nothing the copy would otherwise be
    # taken for (a SYN sent again, a retransmission, a receiver waiting) is claimed.
    dup = next((tag for tag in tags if tag[0] == "dup"), None)
    if dup is not None:
        same = (t("dup_same_id", lang, id=f"0x{dup[1]:04x}") if dup[1] >= 0
                else t("dup_same", lang))
        analysis.append(t("dup", lang, same=same))
        tags = [tag for tag in tags if tag[0] in ("cut", "icmp")]
        if seglen:
            app = True  # the copy's bytes were described with the first copy
    for tag in tags:
        code = tag[0]
        if code in _HANDSHAKE:
            parts.append(_handshake_part(tag, lang, client, server))
        elif code in _CLOSE:
            parts.append(_close_part(tag, lang, side))
        elif code in _APPLICATION:
            parts.append(_application_part(tag, lang))
            app = True
        elif code in _ANALYSIS:
            analysis.append(_analysis_part(tag, lang, side))
        elif code == "ack":
            parts.append(t("ack", lang, side=side, n=max(0, rel_ack - 1)))
        elif code == "icmp":
            parts.append(t("icmp", lang, text=tag[1]))
    if seglen and not app and not any(p for p in parts):
        parts.append(t("data", lang, side=side, n=seglen))
    return " ".join(analysis + ["; ".join(parts)]).strip()


# The event codes by what they tell, each kind worded by its own function below.
_HANDSHAKE = frozenset(("syn", "syn_retry", "synack", "synack_new", "synack_retry", "hs_ack",
                        "hs_ack_unseen"))
_CLOSE = frozenset(("fin_first", "fin_second", "fin_again", "last_ack", "rst_again",
                    "fin_ack", "rst"))
_APPLICATION = frozenset(("http_resp_unseen", "tls", "http_req", "http_resp", "line"))
_ANALYSIS = frozenset(("cut", "ack_unseen", "dupack", "zerowin", "retrans", "fast_retrans",
                       "spurious", "ooo", "zwp", "keepalive", "lost"))


def _handshake_part(tag: tuple, lang: str, client: str, server: str) -> str:
    """A SYN, a SYN-ACK or the handshake's final ACK (with the iRTT when known)."""
    code = tag[0]
    if code == "syn":
        return t("syn", lang, client=client, isn=tag[1])
    if code in ("syn_retry", "synack_retry"):
        return t(code, lang, k=tag[1])
    if code in ("synack", "synack_new"):
        return t(code, lang, server=server, isn=tag[1])
    if code == "hs_ack" and len(tag) > 2 and not tag[2]:
        return t("hs_ack_nosyn", lang, client=client)
    rtt = t("irtt", lang, ms=f"{tag[1] * 1000:.3f}") if tag[1] >= 0 else ""
    return t(code, lang, client=client, rtt=rtt)  # hs_ack or hs_ack_unseen


def _close_part(tag: tuple, lang: str, side: str) -> str:
    """A FIN, the ACK of one, or an RST."""
    code = tag[0]
    if code == "fin_second":
        return t("fin_simul" if tag[2] else "fin_second", lang, side=side)
    if code in ("fin_again", "last_ack", "rst_again"):
        return t(code, lang)
    if code == "rst":
        kind = {"refused": "rst_refused", "after_fin": "rst_after_fin",
                "abort": "rst_abort", "again": "rst_again"}[tag[2]]
        return t(kind, lang, side=side)
    return t(code, lang, side=side)  # fin_first or fin_ack


def _application_part(tag: tuple, lang: str) -> str:
    """What the payload said: TLS messages, an HTTP line, a dialogue line."""
    code = tag[0]
    if code == "http_resp_unseen":
        return t("http_resp_unseen", lang)
    if code == "tls":
        extra = []
        if tag[2]:
            extra.append(t("sni", lang, sni=tag[2]))
        if tag[3]:
            extra.append(tag[3])
        return t("tls", lang, msgs=tls_names(tag[1])) + (f" ({', '.join(extra)})"
                                                         if extra else "")
    return t(code, lang, line=tag[1])  # http_req, http_resp or line


def _analysis_part(tag: tuple, lang: str, side: str) -> str:
    """One of Wireshark's analysis flags, or what the capture missed of the segment."""
    code = tag[0]
    if code == "cut":
        return t("cut", lang, c=tag[1], n=tag[2])
    if code == "dupack":
        waiting = tag[2] if len(tag) > 2 else True
        return t("dupack" if waiting else "dupack_plain", lang, k=tag[1])
    if code == "zerowin":
        return t("zerowin", lang, side=side)
    return t(code, lang)  # ack_unseen, retrans, fast_retrans, spurious, ooo, zwp, ...


def event_json(event: tuple, lang: str = "en") -> dict[str, Any]:
    """One netcheck-pcap/1 event object."""
    n, ts, c2s, flags, seq, ack, win, seglen, opts, _tags, _abs = event
    from netcheck.pcap.sessions import flag_letters

    return {"n": n, "t": round(ts, 6),
            "dir": "icmp" if c2s is None else ("c>s" if c2s else "s>c"),
            "flags": flag_letters(flags), "seq": seq, "ack": ack, "win": win, "len": seglen,
            "options": options_text(opts), "note": note(event, lang)}
