"""The target itself asked as a name server (``dig @address -p port qname rdtype``)."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Optional

from netcheck.lazy import asyncio
from netcheck.probes.banner.stream import os_error_name


@dataclass
class DnsTargetAnswer:
    """The answer of a name server to one question."""

    question: str  # "lab.test. SOA"
    transport: str = "udp"
    rcode: Optional[str] = None
    answers: list[str] = field(default_factory=list)
    authoritative: bool = False
    recursion_available: bool = False
    rtt_ms: Optional[float] = None
    error: Optional[str] = None  # timeout | malformed: ... | error text

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"question": self.question, "transport": self.transport}
        if self.rcode is not None:
            out.update(rcode=self.rcode, answers=self.answers[:8], aa=self.authoritative,
                       ra=self.recursion_available)
        if self.rtt_ms is not None:
            out["rtt_ms"] = round(self.rtt_ms, 3)
        if self.error:
            out["error"] = self.error
        return out


async def ask_dns(address: str, port: int, qname: str, rdtype: str, timeout: float,
                  tcp: bool = False) -> DnsTargetAnswer:
    """Ask the server at address:port one question (``dig @address -p port qname rdtype``)."""
    import dns.asyncquery
    import dns.exception
    import dns.flags
    import dns.message
    import dns.rcode

    answer = DnsTargetAnswer(f"{qname} {rdtype}", "tcp" if tcp else "udp")
    query = dns.message.make_query(qname, rdtype)
    query.flags |= dns.flags.RD
    where = address.split("%")[0]
    start = time.monotonic()
    try:
        if tcp:
            response = await dns.asyncquery.tcp(query, where, timeout=timeout, port=port)
        else:
            response = await dns.asyncquery.udp(query, where, timeout=timeout, port=port,
                                                ignore_unexpected=True)
    except (dns.exception.Timeout, asyncio.TimeoutError):
        answer.error = "timeout"
        return answer
    except OSError as exc:
        answer.error = os_error_name(exc)
        answer.rtt_ms = (time.monotonic() - start) * 1000
        return answer
    except (dns.exception.DNSException, ValueError, EOFError) as exc:
        answer.error = f"malformed: {type(exc).__name__}"
        return answer
    answer.rtt_ms = (time.monotonic() - start) * 1000
    answer.rcode = dns.rcode.to_text(response.rcode())
    answer.authoritative = bool(response.flags & dns.flags.AA)
    answer.recursion_available = bool(response.flags & dns.flags.RA)
    for rrset in response.answer:
        answer.answers.extend(f"{rrset.name} {rr.to_text()}" for rr in rrset)
    return answer
