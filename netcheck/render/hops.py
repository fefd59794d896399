"""A trace's hops as lines of text, the way mtr and tracepath print them.

Used by ``netcheck path`` and by the text report's evidence (``-v``) of a root cause whose
location was measured. The input is :meth:`netcheck.probes.hops.Trace.to_json` (what the
JSON carries), so both faces show the same thing. Addresses come from the network: they go
through :func:`netcheck.redact.shown` like any outside text.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from netcheck.i18n import _
from netcheck.redact import shown

if TYPE_CHECKING:
    from netcheck.probes.hops import Limit

# What the target's answer means, in words (the JSON keeps the short names).
_ANSWERS = {
    "syn-ack": "SYN-ACK",
    "rst": "RST",
    "echo-reply": "echo reply",
    "dns": "DNS answer",
    "udp": "UDP answer",
}


def answer_text(answer: Any) -> str:
    """``syn-ack`` -> ``SYN-ACK``; an ICMP error's name stays as it is."""
    return _ANSWERS.get(str(answer), str(answer))


def limit_text(limit: Limit) -> str:
    """What a trace could not do (:class:`netcheck.probes.hops.Limit`), in words."""
    from netcheck.probes import hops

    if limit.code == hops.ECHO_NEEDS_PRIVILEGE:
        return _("ICMP echo needs root, CAP_NET_RAW or a ping_group_range that admits this "
                 "user: no echo requests were sent")
    if limit.code == hops.RESET_TTL_NEEDS_ROOT:
        return _("without root the TTL a reset arrives with cannot be read: a reset's "
                 "distance is told by TTL-limited SYNs only")
    if limit.code == hops.SEND_FAILED:
        return _("some probes could not be sent: {error}").format(error=limit.detail)
    return limit.code


def _ms(value: Any) -> str:
    return f"{value:.1f}" if isinstance(value, (int, float)) else "-"


def hop_table(trace: dict[str, Any], indent: int = 2) -> list[str]:
    """One header line and one line per hop: hop, who answered, sent, loss, RTT best/avg/worst,
    and a note (the target's answer, a hop that limits its ICMP errors)."""
    pad = " " * indent
    rows = []
    every = list(trace.get("hops", []))
    # Silent TTLs past the last answer are one line ("4-16"), not a screenful of stars.
    last = max((i for i, h in enumerate(every) if h.get("received")), default=-1)
    tail = every[last + 2:] if len(every) - last > 3 else []
    shown_hops = every[:len(every) - len(tail)] if tail else every
    for hop in shown_hops:
        addresses = ", ".join(shown(str(a)) for a in hop.get("addresses", [])) or "*"
        loss = hop.get("loss_pct")
        notes = []
        answers = [a for a in hop.get("answers", []) if a not in (
            "TTL exceeded in transit", "hop limit exceeded")]
        if answers:
            notes.append(", ".join(shown(answer_text(a)) for a in answers))
        if hop.get("rate_limited"):
            notes.append(_("limits its ICMP answers: later hops answer, no loss of the flow"))
        elif not hop.get("received"):
            notes.append(_("no answer"))
        rows.append((str(hop.get("hop")), addresses, str(hop.get("sent", 0)),
                     f"{loss:.0f}%" if isinstance(loss, (int, float)) else "-",
                     _ms(hop.get("rtt_min_ms")), _ms(hop.get("rtt_avg_ms")),
                     _ms(hop.get("rtt_max_ms")), "  ".join(notes)))
    if tail:
        sent = sum(int(h.get("sent", 0)) for h in tail)
        rows.append((f"{tail[0].get('hop')}-{tail[-1].get('hop')}", "*", str(sent), "100%",
                     "-", "-", "-", _("no answer")))
    heading = (_("hop"), _("address"), _("sent"), _("loss"), _("best"), _("avg"), _("worst"),
               "")
    width = max([len(heading[1])] + [len(r[1]) for r in rows])
    lines = []
    for row in [heading, *rows]:
        text = (f"{row[0]:>5}  {row[1]:<{width}}  {row[2]:>4}  {row[3]:>5}  {row[4]:>7}  "
                f"{row[5]:>7}  {row[6]:>7}")
        if row[7]:
            text += f"  {row[7]}"
        lines.append(pad + text.rstrip())
    return lines
