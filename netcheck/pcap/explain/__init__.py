"""The words: what each packet of a session means, and the story of the session, in en/es/ca.

The analysis (:mod:`netcheck.pcap.sessions`) tags events with codes such as
``("syn", isn)`` or ``("rst", "server", "refused")``; here each code becomes a sentence in
the language asked for, in the vocabulary of the course (A and B for the initial sequence
numbers, A+1 and B+1 for what the handshake acknowledges). The session story is built from
the netcheck-pcap/1 session object only, so ``pcap`` and ``trace`` tell it the same way.

The package, by concern: ``texts`` (the words by code, in en/es/ca, and :func:`t`), ``fields``
(ICMP types, TLS messages, TCP flags and options named as Wireshark names them), ``notes`` (what
each packet means: :func:`note`, :func:`event_json`), ``story`` (the session's story and the
summary table's cells). Every name is importable from ``netcheck.pcap.explain`` as before the
split.
"""

from __future__ import annotations

from netcheck.pcap.explain.fields import (
    FLAG_WORDS,
    ICMP4,
    ICMP4_UNREACH,
    ICMP6,
    ICMP6_UNREACH,
    TLS_SPACED,
    flag_words,
    icmp_name,
    options_text,
    tls_names,
)
from netcheck.pcap.explain.notes import event_json, note
from netcheck.pcap.explain.story import TOO_SOON_S, close_cell, handshake_cell, session_story
from netcheck.pcap.explain.texts import LANGS, TEXTS, t

# Every public name the module had before it became a package.
__all__ = [
    "FLAG_WORDS", "ICMP4", "ICMP4_UNREACH", "ICMP6", "ICMP6_UNREACH", "LANGS", "TEXTS",
    "TLS_SPACED", "TOO_SOON_S", "close_cell", "event_json", "flag_words", "handshake_cell",
    "icmp_name", "note", "options_text", "session_story", "t", "tls_names",
]
