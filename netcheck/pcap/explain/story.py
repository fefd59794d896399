"""The story of a session, from the netcheck-pcap/1 session object only (:func:`session_story`:
what the capture shows, the handshake, data and close, the problems), and the few words of the
summary table's handshake and close columns.
"""

from __future__ import annotations

from typing import Any, Optional

from netcheck.pcap.explain.fields import tls_names
from netcheck.pcap.explain.texts import LANGS, TEXTS, t


def session_story(s: dict[str, Any], lang: str = "en") -> list[str]:
    """Sentences that explain one netcheck-pcap/1 session object, in order.

    First what the capture can show of the session (``capture``: directions seen, frames
    captured twice, packets cut, gaps), then the handshake, data and close. A sentence that
    names a cause (a firewall, an answer that never came) is said only when the capture holds
    the evidence for it; otherwise the story says what is missing from the capture.
    """
    cap = s.get("capture") or {}
    hs = s["handshake"]
    seen = cap.get("seen", "both")
    acked = cap.get("acked") or {}
    lines = _capture_story(cap, lang)
    lines.extend(_handshake_story(s, hs, cap, seen, acked, lang))
    if s.get("icmp"):
        lines.append(t("story_icmp", lang, text=s["icmp"]))
    lines.extend(_data_story(s, seen, acked, lang))
    lines.extend(_payload_story(s, lang))
    close = _close_story(s, hs, seen, lang)
    if close is not None:
        lines.append(close)
    problems = _problems(s, cap, lang)
    if problems:
        lines.append(t("story_problems", lang, items=", ".join(problems)))
    return lines


def _capture_story(cap: dict[str, Any], lang: str) -> list[str]:
    """What the capture itself did to the session: frames captured twice, cut, missing."""
    lines: list[str] = []
    if cap.get("duplicates"):
        lines.append(t("story_dups", lang, n=cap["duplicates"]))
    if cap.get("cut"):
        lines.append(t("story_cut", lang, n=cap["cut"]))
    if cap.get("gaps") or cap.get("acked_unseen"):
        more = (t("story_gaps_acked", lang, n=cap["acked_unseen"])
                if cap.get("acked_unseen") else "")
        lines.append(t("story_gaps", lang, g=cap.get("gaps", 0), acked=more))
    return lines


def _data_story(s: dict[str, Any], seen: str, acked: dict[str, Any],
                lang: str) -> list[str]:
    """The bytes each way, counted from the side(s) the capture holds."""
    lines: list[str] = []
    if seen == "client" and s["bytes"]["client"]:
        lines.append(t("story_bytes_client", lang, c=s["bytes"]["client"]))
    elif seen == "server" and s["bytes"]["server"]:
        lines.append(t("story_bytes_server", lang, s=s["bytes"]["server"]))
    elif seen == "both" and (s["bytes"]["client"] or s["bytes"]["server"]):
        lines.append(t("story_bytes", lang, c=s["bytes"]["client"], s=s["bytes"]["server"]))
    if seen == "server" and acked.get("client"):
        lines.append(t("story_peer_acked", lang, side=t("server", lang), n=acked["client"],
                       peer=t("client", lang)))
    return lines


def _payload_story(s: dict[str, Any], lang: str) -> list[str]:
    """What the application said: the TLS handshake, HTTP exchanges, a mail/SSH dialogue."""
    lines: list[str] = []
    tls = s.get("tls")
    if tls:
        sni = t("story_sni", lang, sni=tls["sni"]) if tls.get("sni") else ""
        version = ", ".join(tls["versions"]) or t("no_version", lang)
        lines.append(t("story_tls", lang, version=version, sni=sni,
                       msgs=tls_names(tls["messages"])))
    if s.get("http"):
        items = []
        for h in s["http"]:
            req = h.get("request") or "?"
            if h.get("status"):
                items.append(f"{req} -> {h['status']}")
            elif h.get("answer_not_captured"):
                items.append(f"{req} -> ({t('answer_not_captured', lang)})")
            else:
                items.append(req)
        lines.append(t("story_http", lang, items="; ".join(items)))
    omitted = s.get("http_omitted")
    if omitted:
        lines.append(t("story_http_cut", lang, m=len(s.get("http") or []),
                       r=omitted["requests"], a=omitted["responses"]))
    if s.get("dialogue"):
        app = (s.get("app") or "").upper()
        shown = s["dialogue"][:8]
        more = " ..." if len(s["dialogue"]) > 8 else ""
        lines.append(t("story_dialogue", lang, app=app, lines=" | ".join(shown) + more))
        if any("credentials in clear text" in line for line in s["dialogue"]):
            lines.append(t("story_secret", lang))
        if s.get("dialogue_omitted"):
            lines.append(t("story_dialogue_cut", lang, m=len(s["dialogue"]),
                           n=s["dialogue_omitted"]))
    return lines


def _close_story(s: dict[str, Any], hs: dict[str, Any], seen: str,
                 lang: str) -> Optional[str]:
    """How the session ended, as far as the capture shows it (None: nothing to say)."""
    detail = s.get("close_detail") or s["close"]
    who = t(s["closed_by"], lang) if s.get("closed_by") else "?"
    key = f"close_{detail}"
    unanswered = seen == "client" and hs.get("syn_seen") and not hs.get("synack_acked")
    if unanswered and detail == "none":
        return None  # nothing was opened, so nothing to close
    if seen != "both" and detail in ("half", "none"):
        # What the unseen side did to close is not in the capture: say that, not "open".
        return t("close_one_way_fin" if detail == "half" else "close_one_way", lang,
                 who=who, side=t(seen, lang))
    if key in TEXTS and TEXTS[key][0]:
        return t(key, lang, who=who)
    return None


def _problems(s: dict[str, Any], cap: dict[str, Any], lang: str) -> list[str]:
    """Retransmissions, duplicate ACKs, zero windows, out of order: how many of each, and
    how many of them are frames captured twice."""
    problems = []
    dup_retrans = cap.get("duplicates_as_retransmissions", 0)
    for field, code in (("retransmissions", "p_retrans"), ("dup_acks", "p_dupacks"),
                        ("zero_windows", "p_zero"), ("out_of_order", "p_ooo")):
        if s.get(field):
            text = t(code, lang, n=s[field])
            of_dups = (dup_retrans if field == "retransmissions" else
                       cap.get("duplicates_as_dup_acks", 0) if field == "dup_acks" else 0)
            if of_dups:
                text += t("p_of_dups", lang, n=of_dups)
            problems.append(text)
    return problems


def _handshake_story(s: dict[str, Any], hs: dict[str, Any], cap: dict[str, Any], seen: str,
                     acked: dict[str, Any], lang: str) -> list[str]:
    """The handshake, said from what the capture holds of it."""
    lines: list[str] = []
    if hs["complete"]:
        rtt = t("story_rtt", lang, ms=f"{hs['rtt_ms']:.3f}") if hs["rtt_ms"] is not None \
            else ""
        lines.append(t("story_hs_ok", lang, rtt=rtt))
        if hs["syn_retries"]:
            lines.append(t("story_syn_retries", lang, k=hs["syn_retries"]))
    elif hs["answered_by_rst"]:
        lines.append(t("story_refused", lang))
    elif seen == "client" and hs.get("syn_seen") and not hs.get("synack_acked"):
        # Only SYNs: whether an answer came cannot be read from this session alone.
        lines.append(t("story_no_answer", lang, k=hs["syn_retries"] + 1))
        if not s.get("icmp"):
            lines.append(_why_no_answer(s, cap, hs, lang))
    elif seen == "client":
        lines.append(t("story_client_only", lang))
        if hs.get("synack_acked"):
            data = (t("story_acked_data", lang, n=acked["server"])
                    if acked.get("server") else "")
            lines.append(t("story_client_acked", lang, data=data))
    elif seen == "server":
        lines.append(t("story_server_only", lang))
    elif not hs.get("syn_seen", True):
        lines.append(t("story_no_syn", lang) if hs.get("synack_seen") and hs.get("ack_seen")
                     else t("story_midstream", lang))
    elif hs.get("synack_seen"):
        lines.append(t("story_no_ack", lang))
    if hs.get("synack_new_isns"):
        lines.append(t("story_new_isn", lang, n=hs["synack_new_isns"]))
    return lines


def _why_no_answer(s: dict[str, Any], cap: dict[str, Any], hs: dict[str, Any],
                   lang: str) -> str:
    """Why no SYN-ACK is in the capture, as far as the capture itself can tell."""
    client = s["client"].rsplit(":", 1)[0].strip("[]")
    server = s["server"].rsplit(":", 1)[0].strip("[]")
    after = cap.get("capture_ends_after_s")
    if after is not None and after < TOO_SOON_S:
        return t("story_too_soon", lang, s=f"{after:.3f}")
    if not cap.get("return_traffic"):
        return t("story_one_way_unknown", lang, client=client)
    if hs["syn_retries"]:
        return t("story_dropped", lang, client=client, server=server)
    return t("story_not_retried", lang, client=client)


# A SYN left unanswered this close to the end of the capture proves nothing: the first
# retry alone comes 1 s later (RFC 6298), and an answer could still have been on its way.
TOO_SOON_S = 1.0


def handshake_cell(s: dict[str, Any], lang: str = "en") -> str:
    """A few words for the summary table's handshake column."""
    hs = s["handshake"]
    words = {"en": ("ok", "refused (RST)", "no answer captured", "not captured",
                    "no final ACK", "client side only", "server side only", "no SYN captured"),
             "es": ("ok", "rechazado (RST)", "sin respuesta capturada", "no capturado",
                    "sin ACK final", "solo lado cliente", "solo lado servidor",
                    "SYN no capturado"),
             "ca": ("ok", "rebutjat (RST)", "sense resposta capturada", "no capturat",
                    "sense ACK final", "només costat client", "només costat servidor",
                    "SYN no capturat")}[lang if lang in LANGS else "en"]
    retries = f" +{hs['syn_retries']} SYN" if hs["syn_retries"] else ""
    seen = (s.get("capture") or {}).get("seen", "both")
    if hs["complete"]:
        return words[0] + retries
    if hs["answered_by_rst"]:
        return words[1]
    if seen == "client" and (hs.get("synack_acked") or not hs.get("syn_seen", True)):
        return words[5]
    if seen == "server":
        return words[6]
    if not hs.get("syn_seen", True):
        return words[7] if hs.get("synack_seen") else words[3]
    if hs.get("synack_seen"):
        return words[4]
    return f"{words[2]} (SYN x{hs['syn_retries'] + 1})"


def close_cell(s: dict[str, Any], lang: str = "en") -> str:
    """A few words for the summary table's close column."""
    who: Optional[str] = s.get("closed_by")
    detail = s.get("close_detail") or s["close"]
    if detail == "refused":
        return "RST"
    if detail == "none":
        return "-"
    label = {"four-way": "FIN", "three-way": "FIN", "simultaneous": "FIN simult.",
             "half": "half FIN", "rst": "RST", "rst-after-fin": "FIN+RST"}.get(detail, detail)
    return f"{label} ({t(who, lang)})" if who else label
