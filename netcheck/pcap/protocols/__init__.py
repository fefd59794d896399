"""Recognise what the packets carry: TLS, HTTP, DNS, SMTP, POP3, SSH, IKE and ESP.

Everything here works on the bytes of one segment or datagram, without reassembling streams,
and keeps per-direction state small (a TLS record header in progress, at most one TLS
handshake record being collected, bounded by the 18 KiB maximum record size). That is what
lets a 1 GB capture be explained in bounded memory; the price is that a TLS record whose
header sits in a segment that was not captured cannot be followed until the next segment
that starts with a plausible record header (the follower re-synchronises there).

Names follow Wireshark's Info column, written as single words as netcheck-pcap/1 does
(``ClientHello``, ``ServerHelloDone``, ``ChangeCipherSpec``, ``EncryptedAlert``...).

The package, by concern: ``tls`` (records, handshake messages, alerts: TlsFollower, TlsInfo;
MAX_COLLECTING, the bound a test lowers, is looked up there), ``text`` (HTTP and the mail
dialogue lines, the ports they are dissected on), ``datagrams`` (a DNS message, an IKE
header). Every name importable from ``netcheck.pcap.protocols`` before the split is
re-exported here.
"""

from __future__ import annotations

from netcheck.pcap.protocols.datagrams import (
    DNS_RCODES,
    DNS_TYPES,
    IKE_EXCHANGES,
    MAX_ANSWERS,
    parse_dns,
    parse_ike,
)
from netcheck.pcap.protocols.text import (
    HTTP_METHODS,
    HTTP_PORTS,
    MAX_LINE,
    POP3_PORTS,
    SECRET_COMMANDS,
    SMTP_PORTS,
    TLS_PORTS,
    ends_chunked_body,
    first_line,
    http_message_size,
    http_request_line,
    http_status,
    is_reply_line,
    mail_line,
)
from netcheck.pcap.protocols.tls import (
    ALERT_DESCRIPTIONS,
    HANDSHAKE_TYPES,
    HRR_RANDOM,
    MASK,
    MAX_ALERTS,
    MAX_COLLECTING,
    MAX_RECORD,
    TLS_VERSIONS,
    TlsFollower,
    TlsInfo,
    looks_like_tls_record,
    tls_version_name,
)

# Every public name the module had before it became a package.
__all__ = [
    "ALERT_DESCRIPTIONS", "DNS_RCODES", "DNS_TYPES", "HANDSHAKE_TYPES", "HRR_RANDOM",
    "HTTP_METHODS", "HTTP_PORTS", "IKE_EXCHANGES", "MASK", "MAX_ALERTS", "MAX_ANSWERS",
    "MAX_COLLECTING", "MAX_LINE", "MAX_RECORD", "POP3_PORTS", "SECRET_COMMANDS", "SMTP_PORTS",
    "TLS_PORTS", "TLS_VERSIONS", "TlsFollower", "TlsInfo", "ends_chunked_body", "first_line",
    "http_message_size", "http_request_line", "http_status", "is_reply_line",
    "looks_like_tls_record", "mail_line", "parse_dns", "parse_ike", "tls_version_name",
]
