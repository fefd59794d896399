"""The netcheck-pcap/1 document of a finished analysis (:func:`build_document`): the sessions
picked, what each session's story needs from the rest of the capture, and what the capture as
a whole can and cannot show (:func:`capture_facts`).

It reads a finished :class:`~netcheck.pcap.sessions.Analyzer` and never runs per packet; both
names are importable from :mod:`netcheck.pcap.sessions` as before they moved here.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Optional

from netcheck.pcap.tcpsession import Session

if TYPE_CHECKING:
    from netcheck.pcap.sessions import Analyzer


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
    if analyzer.dns.dropped:
        warnings.append(f"only the first {analyzer.dns.limit} DNS exchanges are listed "
                        f"({analyzer.dns.dropped} more)")
    doc: dict[str, Any] = {
        "schema": SCHEMA, "file": file, "packets": analyzer.packets, "truncated": truncated,
        "sessions": sessions, "dns": analyzer.dns.entries, "other": analyzer.other(),
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
    receivers = set(analyzer.traffic.receivers)
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
