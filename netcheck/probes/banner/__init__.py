"""What a service says first: greetings read with bounded time and bytes, and one exchange.

Many services speak before the client does (SSH's version line, SMTP's ``220``, POP3's
``+OK``, IMAP's ``* OK``); others wait (HTTP, TLS, DNS over TCP). This probe connects, reads
what comes within a short wait, renders it printable, and says what protocol it looks like —
so a check can tell "an SSH server on port 80" from "a silent web server" without guessing.

Where a protocol needs it, one exchange follows: SMTP's ``EHLO`` (the capabilities, STARTTLS
among them) and ``QUIT``. A DNS target is asked a question with dnspython. Nothing here judges;
the checks in ``checks/application/`` do.

The package, by concern (each module imports only those before it): ``kinds`` (bytes made
printable and classified, the ports whose client speaks first), ``stream`` (a connection with
deadline-bounded reads, TLS through memory BIOs: the HTTP client's too), ``conversation``
(:func:`probe`: the greeting, the nudge, SMTP's EHLO), ``nameserver`` (:func:`ask_dns`). Every
name importable from ``netcheck.probes.banner`` before the split is re-exported here.
"""

from __future__ import annotations

# isort: off
from netcheck.probes.banner.kinds import (
    CLIENT_FIRST_PORTS,
    KINDS,
    classify,
    client_speaks_first,
    first_line,
    printable,
)
from netcheck.probes.banner.stream import Stream, open_stream, os_error_name
from netcheck.probes.banner.conversation import (
    EHLO_NAME,
    GENERIC_WAIT,
    MAX_GREETING_BYTES,
    NUDGE_WAIT,
    NUDGES,
    BannerResult,
    probe,
)
from netcheck.probes.banner.nameserver import DnsTargetAnswer, ask_dns
# isort: on

# Every public name the module had before it became a package.
__all__ = [
    "CLIENT_FIRST_PORTS", "EHLO_NAME", "GENERIC_WAIT", "KINDS", "MAX_GREETING_BYTES",
    "NUDGES", "NUDGE_WAIT", "BannerResult", "DnsTargetAnswer", "Stream", "ask_dns", "classify",
    "client_speaks_first", "first_line", "open_stream", "os_error_name", "printable", "probe",
]
