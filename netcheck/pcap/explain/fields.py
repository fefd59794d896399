"""A packet's fields named as Wireshark names them: ICMP(v6) types and codes, TLS messages, TCP
flags and options.
"""

from __future__ import annotations

from typing import Any

TLS_SPACED = {
    "ClientHello": "Client Hello", "ServerHello": "Server Hello",
    "HelloRetryRequest": "Hello Retry Request", "Certificate": "Certificate",
    "ServerKeyExchange": "Server Key Exchange", "ServerHelloDone": "Server Hello Done",
    "ClientKeyExchange": "Client Key Exchange", "ChangeCipherSpec": "Change Cipher Spec",
    "EncryptedHandshakeMessage": "Encrypted Handshake Message",
    "ApplicationData": "Application Data", "EncryptedAlert": "Encrypted Alert",
    "NewSessionTicket": "New Session Ticket", "EncryptedExtensions": "Encrypted Extensions",
    "CertificateRequest": "Certificate Request", "CertificateVerify": "Certificate Verify",
    "Finished": "Finished", "Alert": "Alert", "Heartbeat": "Heartbeat",
}


ICMP4 = {0: "echo reply", 3: "destination unreachable", 4: "source quench", 5: "redirect",
         8: "echo request", 11: "time exceeded", 12: "parameter problem"}
ICMP4_UNREACH = {0: "network unreachable", 1: "host unreachable", 2: "protocol unreachable",
                 3: "port unreachable", 4: "fragmentation needed", 9: "network prohibited",
                 10: "host prohibited", 13: "administratively prohibited"}
ICMP6 = {1: "destination unreachable", 2: "packet too big", 3: "time exceeded",
         4: "parameter problem", 128: "echo request", 129: "echo reply",
         133: "router solicitation", 134: "router advertisement",
         135: "neighbor solicitation", 136: "neighbor advertisement"}
ICMP6_UNREACH = {0: "no route", 1: "administratively prohibited", 3: "address unreachable",
                 4: "port unreachable", 5: "source address failed policy",
                 6: "reject route"}


def icmp_name(proto: int, itype: int, code: int) -> str:
    """``destination unreachable: port unreachable`` for ICMP(v6) type and code."""
    if proto == 1:
        name = ICMP4.get(itype, f"type {itype}")
        if itype == 3:
            return f"{name}: {ICMP4_UNREACH.get(code, f'code {code}')}"
        return name if itype in (0, 8) or code == 0 else f"{name} (code {code})"
    name = ICMP6.get(itype, f"type {itype}")
    if itype == 1:
        return f"{name}: {ICMP6_UNREACH.get(code, f'code {code}')}"
    return name


def tls_names(names: list[str]) -> str:
    """``Server Hello, Certificate`` from ``["ServerHello", "Certificate"]``."""
    return ", ".join(TLS_SPACED.get(n, n) for n in names)


FLAG_WORDS = ((2, "SYN"), (1, "FIN"), (4, "RST"), (8, "PSH"), (16, "ACK"), (32, "URG"),
              (64, "ECE"), (128, "CWR"))


def flag_words(flags: int) -> str:
    """``SYN, ACK`` (Wireshark's order)."""
    return ", ".join(word for bit, word in FLAG_WORDS if flags & bit)


def options_text(opts: dict[str, Any]) -> str:
    """TCP options as Wireshark's Info column shows them, in the order they were sent:
    ``MSS=1460 WS=256 SACK_PERM`` (WS is the multiplier, 2 to the shift)."""
    parts = []
    for key, value in opts.items():
        if key == "mss":
            parts.append(f"MSS={value}")
        elif key == "sack_perm":
            parts.append("SACK_PERM")
        elif key == "tsval":
            parts.append(f"TSval={value} TSecr={opts['tsecr']}")
        elif key == "wscale":
            parts.append(f"WS={1 << min(int(value), 14)}")
        elif key == "sack":
            parts.extend(f"SLE={left} SRE={right}" for left, right in value)
        elif key == "tfo":
            parts.append("TFO")
    return " ".join(parts)
