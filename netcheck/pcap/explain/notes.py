"""What each packet of a session means: the sentence for one recorded event (:func:`note`) and
the netcheck-pcap/1 event object that carries it (:func:`event_json`).
"""

from __future__ import annotations

from typing import Any

from netcheck.pcap.explain.fields import options_text, tls_names
from netcheck.pcap.explain.texts import t


def note(event: tuple, lang: str = "en") -> str:
    """The sentence for one recorded event (see ``Analyzer._record``)."""
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
        if code == "syn":
            parts.append(t("syn", lang, client=client, isn=tag[1]))
        elif code == "syn_retry":
            parts.append(t("syn_retry", lang, k=tag[1]))
        elif code == "synack":
            parts.append(t("synack", lang, server=server, isn=tag[1]))
        elif code == "synack_new":
            parts.append(t("synack_new", lang, server=server, isn=tag[1]))
        elif code == "synack_retry":
            parts.append(t("synack_retry", lang, k=tag[1]))
        elif code == "hs_ack":
            if len(tag) > 2 and not tag[2]:
                parts.append(t("hs_ack_nosyn", lang, client=client))
                continue
            rtt = t("irtt", lang, ms=f"{tag[1] * 1000:.3f}") if tag[1] >= 0 else ""
            parts.append(t("hs_ack", lang, client=client, rtt=rtt))
        elif code == "hs_ack_unseen":
            rtt = t("irtt", lang, ms=f"{tag[1] * 1000:.3f}") if tag[1] >= 0 else ""
            parts.append(t("hs_ack_unseen", lang, client=client, rtt=rtt))
        elif code == "http_resp_unseen":
            parts.append(t("http_resp_unseen", lang))
            app = True
        elif code == "cut":
            analysis.append(t("cut", lang, c=tag[1], n=tag[2]))
        elif code == "ack_unseen":
            analysis.append(t("ack_unseen", lang))
        elif code == "ack":
            parts.append(t("ack", lang, side=side, n=max(0, rel_ack - 1)))
        elif code == "tls":
            names = tls_names(tag[1])
            extra = []
            if tag[2]:
                extra.append(t("sni", lang, sni=tag[2]))
            if tag[3]:
                extra.append(tag[3])
            parts.append(t("tls", lang, msgs=names) + (f" ({', '.join(extra)})"
                                                       if extra else ""))
            app = True
        elif code in ("http_req", "http_resp", "line"):
            parts.append(t(code, lang, line=tag[1]))
            app = True
        elif code == "fin_first":
            parts.append(t("fin_first", lang, side=side))
        elif code == "fin_second":
            parts.append(t("fin_simul" if tag[2] else "fin_second", lang, side=side))
        elif code in ("fin_again", "last_ack", "rst_again"):
            parts.append(t(code, lang))
        elif code == "fin_ack":
            parts.append(t("fin_ack", lang, side=side))
        elif code == "rst":
            kind = {"refused": "rst_refused", "after_fin": "rst_after_fin",
                    "abort": "rst_abort", "again": "rst_again"}[tag[2]]
            parts.append(t(kind, lang, side=side))
        elif code == "dupack":
            waiting = tag[2] if len(tag) > 2 else True
            analysis.append(t("dupack" if waiting else "dupack_plain", lang, k=tag[1]))
        elif code == "zerowin":
            analysis.append(t("zerowin", lang, side=side))
        elif code in ("retrans", "fast_retrans", "spurious", "ooo", "zwp", "keepalive",
                      "lost"):
            analysis.append(t(code, lang))
        elif code == "icmp":
            parts.append(t("icmp", lang, text=tag[1]))
    if seglen and not app and not any(p for p in parts):
        parts.append(t("data", lang, side=side, n=seglen))
    return " ".join(analysis + ["; ".join(parts)]).strip()


def event_json(event: tuple, lang: str = "en") -> dict[str, Any]:
    """One netcheck-pcap/1 event object."""
    n, ts, c2s, flags, seq, ack, win, seglen, opts, _tags, _abs = event
    from netcheck.pcap.sessions import flag_letters

    return {"n": n, "t": round(ts, 6),
            "dir": "icmp" if c2s is None else ("c>s" if c2s else "s>c"),
            "flags": flag_letters(flags), "seq": seq, "ack": ack, "win": win, "len": seglen,
            "options": options_text(opts), "note": note(event, lang)}
